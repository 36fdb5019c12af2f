//! End-to-end tests of the training commands on the committed fixtures
//! (`tests/fixtures/datasets/`: 11 general images, a 400 + 200 face FER+ cut).
//! Networks are tiny so each test stays well under 30 s on 2 cores.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};

use burn::module::Module;
use burn::tensor::Device;
use clap::Parser;
use mimic::model::{ExpressionModel, read_safetensors};
use mimic_train::control::Outcome;
use mimic_train::data::{LabelMode, Split, load_ferplus};
use mimic_train::eval::{EvalOptions, eval, evaluate_package};
use mimic_train::export::{ExportOptions, export};
use mimic_train::finetune::{BEST_DIR, FinetuneOptions, finetune};
use mimic_train::images::{CropBox, ImageStore, Normalization, PixelAugment, render};
use mimic_train::mae_package::{MaePackage, PackageMaeOptions, package_mae};
use mimic_train::pretrain::{PretrainOptions, evaluate_reconstruction, pretrain};
use mimic_train::run::{RunDir, TrainState};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datasets")
}

#[derive(Parser)]
struct Pre {
    #[command(flatten)]
    o: PretrainOptions,
}

#[derive(Parser)]
struct Fine {
    #[command(flatten)]
    o: FinetuneOptions,
}

/// burn's CPU device has one random generator per process (seeded by the
/// runs for initialisation and stochastic depth): tests that train take
/// turns, so that a seeded run is repeatable.
static DEVICE_RNG: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn no_stop() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

/// A 32 px, 8 px-patch, 2-block, 32-wide MAE on the 11 fixture images.
fn tiny_pretrain(out: &Path, extra: &[&str]) -> PretrainOptions {
    tiny_pretrain_shaped(out, ["32", "32", "2", "2"], extra)
}

/// `shape`: image size, width, heads, blocks.
fn tiny_pretrain_shaped(out: &Path, shape: [&str; 4], extra: &[&str]) -> PretrainOptions {
    let data = fixtures().join("unlabeled");
    let mut args = vec![
        "pretrain",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--preset",
        "micro",
        "--image-size",
        shape[0],
        "--dim",
        shape[1],
        "--heads",
        shape[2],
        "--depth",
        shape[3],
        "--decoder-dim",
        "32",
        "--decoder-depth",
        "1",
        "--decoder-heads",
        "2",
        "--batch-size",
        "4",
        "--lr",
        "2e-3",
        "--warmup-epochs",
        "1",
        "--device",
        "cpu",
        "--seed",
        "3",
    ];
    args.extend_from_slice(extra);
    Pre::parse_from(args).o
}

/// A 48 px, 8 px-patch, 64-wide, 3-block ViT on the FER+ cut
/// (`shape`: width, blocks, heads).
fn tiny_finetune(out: &Path, extra: &[&str], shape: [&str; 3]) -> FinetuneOptions {
    let data = fixtures().join("ferplus-cut");
    let mut args = vec![
        "finetune",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--preset",
        "micro",
        "--dim",
        shape[0],
        "--depth",
        shape[1],
        "--heads",
        shape[2],
        "--batch-size",
        "32",
        "--device",
        "cpu",
    ];
    // Defaults of the tests, unless `extra` sets them.
    for (flag, value) in [
        ("--lr", "1e-3"),
        ("--warmup-epochs", "1"),
        ("--layer-decay", "0.9"),
        ("--drop-path", "0.05"),
        ("--seed", "5"),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    Fine::parse_from(args).o
}

/// Width, blocks, heads of the small test ViT.
const SMALL: [&str; 3] = ["64", "3", "4"];

fn state(run: &Path) -> TrainState {
    let dir = RunDir::new(run).find_checkpoint().expect("a checkpoint");
    serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap()).unwrap()
}

#[test]
fn tiny_mae_run_lowers_reconstruction_loss_on_real_images() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let opts = tiny_pretrain(tmp.path(), &["--epochs", "40"]);
    let cfg = opts.mae_config().unwrap();
    // The 11 fixture images, whole, as the network sees them.
    let images = mimic_train::data::load_unlabeled_images(&opts.data, None).unwrap();
    let store = ImageStore::from_rgb(&images);
    let norm = Normalization {
        mean: mimic::model::IMAGENET_MEAN,
        std: mimic::model::IMAGENET_STD,
    };
    let size = 32;
    let mut x = vec![0.0; store.len() * 3 * size * size];
    for (i, chunk) in x.chunks_mut(3 * size * size).enumerate() {
        render(
            &store,
            i,
            CropBox::full(store.width, store.height),
            false,
            PixelAugment::NONE,
            &norm,
            size,
            chunk,
        );
    }
    let device = Device::flex();
    device.seed(mimic_train::run::derive_seed(
        3,
        mimic_train::run::stream::INIT,
        0,
    ));
    let before = cfg.init(&device);
    let loss_before = evaluate_reconstruction(&before, &x, store.len(), &cfg, 99, &device);

    assert_eq!(pretrain(&opts, no_stop()).unwrap(), Outcome::Finished);
    let after = cfg
        .init(&device)
        .try_load_file(tmp.path().join("checkpoint/model.bpk"))
        .unwrap();
    let loss_after = evaluate_reconstruction(&after, &x, store.len(), &cfg, 99, &device);
    assert!(
        loss_after < 0.85 * loss_before,
        "reconstruction loss {loss_before} → {loss_after}"
    );
    // What a person and the fine-tuning stage use.
    assert!(tmp.path().join("samples/epoch_040.png").exists());
    assert!(tmp.path().join("encoder.safetensors").exists());
    let metrics = std::fs::read_to_string(tmp.path().join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 41, "header + one row per epoch");
}

#[test]
fn tiny_finetune_beats_chance_on_held_out_faces() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    // Faces at 24 px in 4 px patches, a 2-block 48-wide ViT from scratch,
    // mixing and the contrastive loss on, mild augmentation.
    let opts = tiny_finetune(
        tmp.path(),
        &[
            "--epochs",
            "25",
            "--image-size",
            "24",
            "--patch-size",
            "4",
            "--lr",
            "2e-3",
            "--warmup-epochs",
            "2",
            "--layer-decay",
            "1",
            "--drop-path",
            "0",
            "--reprob",
            "0",
            "--color-jitter",
            "0",
            "--label-smoothing",
            "0",
            "--crop-min-scale",
            "0.9",
            "--seed",
            "3",
        ],
        ["48", "2", "3"],
    );
    assert_eq!(finetune(&opts, no_stop()).unwrap(), Outcome::Finished);
    // The last epoch, which no choice was made on: 200 held-out faces, 8
    // classes. Chance is 12.5 % (σ = 2.3 %), always answering the largest
    // class 17 %; 17.5 % is above both (p < 0.02 under chance).
    let s = state(tmp.path());
    let last = s.metrics.last().unwrap();
    assert!(
        last["valid_accuracy"] >= 0.175 && last["valid_mean_class_accuracy"] > 0.15,
        "held-out accuracy {:.3}, mean class accuracy {:.3}",
        last["valid_accuracy"],
        last["valid_mean_class_accuracy"]
    );
    // best/ is the epoch the run chose, and the analyzer's code path scores
    // it exactly as the training loop did.
    let model = ExpressionModel::load(&tmp.path().join(BEST_DIR), &Device::flex()).unwrap();
    let valid = load_ferplus(&opts.data, Split::Valid, LabelMode::Majority).unwrap();
    let confusion = evaluate_package(&model, &valid, 64).unwrap();
    assert!((s.best_metric.unwrap() - confusion.accuracy()).abs() < 1e-9);
}

#[test]
fn finetune_resumed_after_an_interruption_ends_as_an_uninterrupted_run() {
    let _serial = serial();
    let straight = tempfile::tempdir().unwrap();
    let resumed = tempfile::tempdir().unwrap();
    let epochs = ["--epochs", "2", "--supcon-weight", "0.2"];
    assert_eq!(
        finetune(&tiny_finetune(straight.path(), &epochs, SMALL), no_stop()).unwrap(),
        Outcome::Finished
    );

    // Interrupted mid-epoch 1 (12 steps per epoch), then the same command again.
    let mut first = epochs.to_vec();
    first.extend(["--max-steps", "5"]);
    assert_eq!(
        finetune(&tiny_finetune(resumed.path(), &first, SMALL), no_stop()).unwrap(),
        Outcome::Stopped
    );
    let s = state(resumed.path());
    assert_eq!((s.epoch, s.batch, s.step), (0, 5, 5));
    assert_eq!(
        finetune(&tiny_finetune(resumed.path(), &epochs, SMALL), no_stop()).unwrap(),
        Outcome::Finished
    );

    let (a, b) = (state(straight.path()), state(resumed.path()));
    assert_eq!((a.epoch, a.step), (b.epoch, b.step));
    assert_eq!(a.metrics.len(), b.metrics.len());
    for (ra, rb) in a.metrics.iter().zip(&b.metrics) {
        for key in ["train_ce", "valid_accuracy"] {
            assert!(
                (ra[key] - rb[key]).abs() < 1e-5,
                "{key}: {} vs {}",
                ra[key],
                rb[key]
            );
        }
    }
    let wa = read_safetensors(&straight.path().join("best/model.safetensors")).unwrap();
    let wb = read_safetensors(&resumed.path().join("best/model.safetensors")).unwrap();
    assert_same_weights(&wa, &wb);
}

/// Every tensor of `a` equals `b`'s within 1e-4.
fn assert_same_weights(a: &mimic::vit::StateDict, b: &mimic::vit::StateDict) {
    for (name, (_, va)) in &a.tensors {
        let vb = &b.tensors[name].1;
        let diff = va
            .iter()
            .zip(vb)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "{name} differs by {diff}");
    }
}

#[test]
fn pretrain_resumes_from_its_checkpoint_and_refuses_other_options() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let stopped = tiny_pretrain(tmp.path(), &["--epochs", "2", "--max-steps", "1"]);
    assert_eq!(pretrain(&stopped, no_stop()).unwrap(), Outcome::Stopped);
    assert_eq!(state(tmp.path()).step, 1);
    let other = tiny_pretrain(tmp.path(), &["--epochs", "2", "--mask-ratio", "0.5"]);
    let err = pretrain(&other, no_stop()).unwrap_err();
    assert!(format!("{err:#}").contains("mask_ratio"), "{err:#}");
    let again = tiny_pretrain(tmp.path(), &["--epochs", "2"]);
    assert_eq!(pretrain(&again, no_stop()).unwrap(), Outcome::Finished);
    let s = state(tmp.path());
    assert_eq!(
        (s.epoch, s.step),
        (2, 4),
        "11 images, batch 4: 2 steps per epoch"
    );
}

#[test]
fn export_then_load_in_the_analyzer_gives_the_same_probabilities() {
    let _serial = serial();
    let run = tempfile::tempdir().unwrap();
    let pre = tempfile::tempdir().unwrap();
    // Start from a (tiny) MAE encoder so export records both stages' recipes.
    let p = tiny_pretrain_shaped(pre.path(), ["48", "64", "4", "3"], &["--epochs", "1"]);
    pretrain(&p, no_stop()).unwrap();
    let init = pre.path().to_str().unwrap().to_string();
    let opts = tiny_finetune(run.path(), &["--epochs", "1", "--init", &init], SMALL);
    finetune(&opts, no_stop()).unwrap();

    let models = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let best = ExpressionModel::load(&run.path().join(BEST_DIR), &device).unwrap();
    let valid = load_ferplus(&opts.data, Split::Valid, LabelMode::Majority).unwrap();
    let crops: Vec<image::RgbImage> = valid.samples[..16]
        .iter()
        .map(|s| s.image.to_rgb8())
        .collect();
    let reference = best.predict_probs(&crops);
    for (dtype, tolerance) in [("f32", 1e-6f32), ("f16", 2e-2)] {
        let out = export(&ExportOptions {
            run: run.path().to_path_buf(),
            name: format!("test-{dtype}"),
            models_dir: models.path().to_path_buf(),
            dtype: dtype.into(),
            data: None,
            dataset: "ferplus".into(),
            test: false,
            batch_size: 64,
            flip_average: false,
            logit_adjust: None,
        })
        .unwrap();
        let loaded = ExpressionModel::load(&out, &device).unwrap();
        assert_eq!(loaded.classes(), best.classes());
        assert_eq!(loaded.config().weights_dtype, dtype);
        for (a, b) in reference.iter().zip(loaded.predict_probs(&crops)) {
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() <= tolerance, "{dtype}: {a:?} vs {b:?}");
            }
        }
        let card = std::fs::read_to_string(out.join("MODEL_CARD.md")).unwrap();
        assert!(
            card.contains("mimic-train pretrain") && card.contains("mimic-train finetune"),
            "{card}"
        );
    }
}

#[test]
fn eval_writes_accuracy_confusion_csv_and_png() {
    let _serial = serial();
    let run = tempfile::tempdir().unwrap();
    let opts = tiny_finetune(run.path(), &["--epochs", "1"], SMALL);
    finetune(&opts, no_stop()).unwrap();
    let out = run.path().join("eval");
    let summary = eval(&EvalOptions {
        model: run.path().to_path_buf(),
        data: opts.data.clone(),
        dataset: "ferplus".into(),
        split: "valid".into(),
        out: Some(out.clone()),
        batch_size: 64,
        device: mimic_train::device::DeviceChoice::Cpu,
        flip_average: None,
        logit_adjust: None,
    })
    .unwrap();
    assert_eq!(summary.images, 200);
    assert!((summary.accuracy - state(run.path()).best_metric.unwrap()).abs() < 1e-9);
    for f in [
        "confusion.csv",
        "per_class.csv",
        "confusion.png",
        "summary.json",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let csv = std::fs::read_to_string(out.join("confusion.csv")).unwrap();
    assert_eq!(csv.lines().count(), 9, "header + 8 classes");
}

#[test]
fn command_line_errors_name_the_missing_dataset() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mimic-train"))
        .args([
            "finetune",
            "--data",
            "/nonexistent/ferplus",
            "--device",
            "cpu",
            "--out",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/ferplus"), "{stderr}");
}

#[test]
fn an_mae_package_is_continued_by_the_next_slice_and_fine_tuned_from() {
    let _serial = serial();
    let (first, second, other, models, tuned) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let shape = ["48", "64", "4", "3"];
    // Slice 1 stops inside epoch 2 (11 images, batch 4: 2 steps per epoch).
    let slice1 = tiny_pretrain_shaped(first.path(), shape, &["--epochs", "3", "--max-steps", "3"]);
    assert_eq!(pretrain(&slice1, no_stop()).unwrap(), Outcome::Stopped);
    let package = |run: &Path| {
        package_mae(&PackageMaeOptions {
            run: run.to_path_buf(),
            name: "mae-test".into(),
            models_dir: models.path().to_path_buf(),
        })
        .unwrap()
    };
    let dir = package(first.path());
    let p1 = MaePackage::read(&dir).unwrap();
    assert_eq!((p1.steps, p1.epochs, p1.slices.len()), (3, 1, 1));
    assert!(dir.join("loss.svg").exists());
    // Not Tiny-ImageNet: the card claims nothing about faces in the data.
    let card = std::fs::read_to_string(dir.join("MODEL_CARD.md")).unwrap();
    assert!(
        card.contains("## Data") && !card.contains("No face dataset") && !card.contains("non-face"),
        "{card}"
    );

    // Slice 2 continues the package to the end of the same 3-epoch schedule.
    let from = dir.to_str().unwrap().to_string();
    let slice2 = tiny_pretrain_shaped(second.path(), shape, &["--epochs", "3", "--from", &from]);
    assert_eq!(pretrain(&slice2, no_stop()).unwrap(), Outcome::Finished);
    let s = state(second.path());
    assert_eq!((s.step, s.epoch, s.continued_from_step), (6, 3, Some(3)));
    assert_eq!(
        s.metrics.len(),
        3,
        "the package's epoch, then this slice's two"
    );
    package(second.path());
    let p2 = MaePackage::read(&dir).unwrap();
    assert_eq!((p2.steps, p2.epochs), (6, 3));
    assert_eq!(
        p2.slices
            .iter()
            .map(|x| (x.from_step, x.to_step))
            .collect::<Vec<_>>(),
        vec![(0, 3), (3, 6)]
    );

    // A continuation of another shape is refused, naming the package.
    let wrong = tiny_pretrain_shaped(
        other.path(),
        ["48", "32", "2", "2"],
        &["--epochs", "3", "--from", &from],
    );
    let err = format!("{:#}", pretrain(&wrong, no_stop()).unwrap_err());
    assert!(
        err.contains("another shape") && err.contains("mae-test"),
        "{err}"
    );

    // Fine-tuning starts from the package's encoder.
    let ft = tiny_finetune(tuned.path(), &["--epochs", "1", "--init", &from], SMALL);
    assert_eq!(finetune(&ft, no_stop()).unwrap(), Outcome::Finished);
}

#[test]
fn a_fine_tuned_package_restarts_with_its_head_and_trains_balanced_and_distilled() {
    let _serial = serial();
    let (base, frozen, balanced) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let opts = tiny_finetune(base.path(), &["--epochs", "1"], SMALL);
    finetune(&opts, no_stop()).unwrap();
    let package = base.path().join(BEST_DIR);
    let package_arg = package.to_str().unwrap().to_string();
    let device = Device::flex();
    let valid = load_ferplus(&opts.data, Split::Valid, LabelMode::Majority).unwrap();
    let before = evaluate_package(
        &ExpressionModel::load(&package, &device).unwrap(),
        &valid,
        64,
    )
    .unwrap()
    .accuracy();

    // At learning rate 0 the restarted network is the package, head included.
    let still = tiny_finetune(
        frozen.path(),
        &[
            "--epochs",
            "1",
            "--init",
            &package_arg,
            "--lr",
            "0",
            "--min-lr",
            "0",
            "--drop-path",
            "0",
        ],
        SMALL,
    );
    finetune(&still, no_stop()).unwrap();
    let after = state(frozen.path()).metrics[0]["valid_accuracy"];
    assert!((after - before).abs() < 1e-9, "{before} → {after}");

    // Class-balanced (logit-adjusted) training distilled from the package.
    let tuned = tiny_finetune(
        balanced.path(),
        &[
            "--epochs",
            "1",
            "--init",
            &package_arg,
            "--balance",
            "logit-adjust",
            "--teacher",
            &package_arg,
            "--label-mode",
            "probability",
            "--select",
            "average",
        ],
        SMALL,
    );
    assert_eq!(finetune(&tuned, no_stop()).unwrap(), Outcome::Finished);
    let row = &state(balanced.path()).metrics[0];
    assert!(
        row["train_kd"].is_finite() && row["train_kd"] > 0.0,
        "{row:?}"
    );
    assert!(row["train_ce"].is_finite());
    let wrong_teacher = tiny_finetune(
        balanced.path().join("x").as_path(),
        &["--epochs", "1", "--teacher", "/nonexistent/teacher"],
        SMALL,
    );
    let err = format!("{:#}", finetune(&wrong_teacher, no_stop()).unwrap_err());
    assert!(err.contains("/nonexistent/teacher"), "{err}");
}

#[test]
fn two_replicas_train_like_one_device_on_the_whole_batch() {
    let _serial = serial();
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Per-sample losses only (no contrastive term, no mixing across the batch).
    let exact = [
        "--epochs",
        "1",
        "--supcon-weight",
        "0",
        "--mix",
        "none",
        "--drop-path",
        "0",
    ];
    let single = tiny_finetune(one.path(), &exact, SMALL);
    finetune(&single, no_stop()).unwrap();
    let replicas: Vec<&str> = exact.iter().copied().chain(["--replicas", "2"]).collect();
    let split = tiny_finetune(two.path(), &replicas, SMALL);
    finetune(&split, no_stop()).unwrap();
    let device = Device::flex();
    let a = ExpressionModel::load(&one.path().join(BEST_DIR), &device).unwrap();
    let b = ExpressionModel::load(&two.path().join(BEST_DIR), &device).unwrap();
    assert_same_weights(&a.vit().state_dict(), &b.vit().state_dict());
}
