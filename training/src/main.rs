//! `mimic-train`: pre-train (MAE), fine-tune (MIMIC), evaluate, export and
//! benchmark the expression ViT. See the README section "Training".
//!
//! Exit codes: 0 done (or stopped by `--max-steps`, checkpoint written),
//! 1 error, 130 interrupted by Ctrl-C (checkpoint written; the same command
//! resumes).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};
use mimic_train::control::Outcome;
use mimic_train::{bench, eval, export, finetune, mae_package, pretrain};

#[derive(Parser)]
#[command(
    name = "mimic-train",
    version,
    about = "MIMIC training of the mimic expression ViT"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Masked-autoencoder pre-training on a folder of general images.
    Pretrain(pretrain::PretrainOptions),
    /// MIMIC fine-tuning (CE + mix-supervised contrastive) on an expression dataset.
    Finetune(finetune::FinetuneOptions),
    /// Accuracy, per-class accuracy and confusion matrix of a model on a split.
    Eval(eval::EvalOptions),
    /// Write a fine-tuned model as a package under models/.
    Export(export::ExportOptions),
    /// Write a pre-training run as an MAE package under models/ (what
    /// `finetune --init` starts from and `pretrain --from` continues).
    PackageMae(mae_package::PackageMaeOptions),
    /// Training and inference throughput of presets on synthetic inputs.
    Bench(bench::BenchOptions),
}

fn main() -> ExitCode {
    // SAFETY: first thing in main, before any thread is spawned.
    unsafe { mimic::device::quiet_vulkan_probing() };
    // SAFETY: the same.
    unsafe { reuse_freed_memory() };
    let cli = Cli::parse();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // A second Ctrl-C while the checkpoint is being written kills the
        // process the usual way: the previous checkpoint stays complete.
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\ninterrupt: finishing this step and writing a checkpoint …");
        });
    }
    let result = match &cli.command {
        Command::Pretrain(o) => pretrain::pretrain(o, stop.clone()).map(Some),
        Command::Finetune(o) => finetune::finetune(o, stop.clone()).map(Some),
        Command::Eval(o) => eval::eval(o).map(|_| None),
        Command::Export(o) => export::export(o).map(|_| None),
        Command::PackageMae(o) => mae_package::package_mae(o).map(|_| None),
        Command::Bench(o) => bench::bench(o).map(|_| None),
    };
    match result {
        Ok(Some(Outcome::Stopped)) if stop.load(Ordering::SeqCst) => ExitCode::from(130),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Keeps the memory of freed tensors in the heap for the next step instead of handing it
/// back to the kernel.
///
/// On burn's CPU backend a training step allocates and frees tensors of tens of MB (MAE
/// `micro` at batch 512: the decoder's MLP activations are 39 MB), above the largest size
/// glibc serves from its heap (its mmap threshold grows to 32 MiB at most). So each one
/// was a fresh `mmap`, its pages faulted in and zeroed, its `munmap` a TLB shootdown on
/// every core: a fifth of a campaign slice's `perf record` samples were in the kernel.
/// With mmap off and no trimming, MAE `micro` at batch 512 runs 41 % more images/s on 2
/// cores (`BENCHMARKS.md`); the process keeps its peak heap (the campaign slice: 2.3 GB
/// resident instead of 1.3 GB). A `glibc.malloc` setting in `GLIBC_TUNABLES` is kept.
///
/// # Safety
///
/// Call it at the start of `main`, before any other thread exists.
unsafe fn reuse_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if !std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc")) {
        // SAFETY: mallopt only sets the allocator's parameters; no other thread allocates yet.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        }
    }
}
