//! The `mimic` command: errors are printed once here, with their whole chain.
//!
//! Exit codes: 0 success; 1 an error (an input that failed, a model that would
//! not load, an unwritable output — every row produced before it is written);
//! 2 a usage error; 130 stopped by Ctrl-C (rows up to the last processed frame
//! are written).

mod analyze;
mod bench;
mod cli;
mod merge;
mod out_dir;
mod progress;
mod report_cmd;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    // SAFETY: first thing in main, before any thread is spawned.
    unsafe { mimic::device::quiet_vulkan_probing() };
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Analyze(args) => analyze::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Report(args) => report_cmd::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("mimic: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
