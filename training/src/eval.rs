//! `mimic-train eval`: accuracy of a model package on a dataset split under
//! the majority protocol (FER+: the majority emotion of the 8, images whose
//! majority is `unknown` or `NF` excluded by the reader), per-class accuracy
//! and the confusion matrix — printed, and saved as CSV and PNG.
//!
//! The package is run through [`ExpressionModel::predict_probs`], the same
//! code path as `mimic analyze`, so the numbers are those of the shipped model.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mimic::model::ExpressionModel;
use serde::{Deserialize, Serialize};

use crate::balance::{BalanceMode, ClassBalance};
use crate::data::{LabelMode, LabeledSet, Split};
use crate::device::{DeviceChoice, select};
use crate::finetune::{BEST_DIR, dataset_kind};
use crate::metrics::{Confusion, argmax};
use crate::plot::confusion_png;

/// Options of `mimic-train eval`.
#[derive(clap::Args, Clone, Debug, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Model package folder (e.g. models/<name>), or a fine-tuning run
    /// folder (its best/ package is used).
    #[arg(long)]
    pub model: PathBuf,
    /// Dataset root.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, default_value = "ferplus")]
    pub dataset: String,
    /// Split to evaluate: train, valid or test.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Folder for confusion.csv, per_class.csv, confusion.png, summary.json
    /// (default: eval-<model name>-<split>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    /// Average each face's prediction with its mirror image's (true) or not
    /// (false), whatever the package says (default: as the package says).
    #[arg(long)]
    pub flip_average: Option<bool>,
    /// Post-hoc logit adjustment of strength τ: add −τ·log π (π: the train split's
    /// class prior under the majority protocol) to the logits, whatever the package
    /// says (0: none).
    #[arg(long, value_name = "TAU")]
    pub logit_adjust: Option<f64>,
}

/// Post-hoc logit-adjustment offsets `−τ·log π` of the train split of `data` (`None`
/// for τ = 0).
pub fn prior_offsets(dataset: &str, data: &Path, tau: f64) -> Result<Option<Vec<f32>>> {
    if tau == 0.0 {
        return Ok(None);
    }
    if !(tau.is_finite() && tau > 0.0) {
        bail!("--logit-adjust {tau} must be zero or positive");
    }
    let train = crate::data::load(
        dataset_kind(dataset)?,
        data,
        Split::Train,
        LabelMode::Majority,
    )
    .with_context(|| {
        format!(
            "the train split of {} gives the class prior",
            data.display()
        )
    })?;
    let targets: Vec<Vec<f32>> = train.samples.iter().map(|s| s.target.clone()).collect();
    let balance = ClassBalance::new(BalanceMode::LogitAdjust, tau, &targets, train.classes.len());
    Ok(Some(balance.posthoc_offsets()))
}

/// What `summary.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalSummary {
    pub model: String,
    #[serde(default)]
    pub flip_average: bool,
    pub dataset: String,
    pub split: String,
    pub images: usize,
    pub accuracy: f64,
    pub mean_class_accuracy: f64,
    pub per_class_accuracy: Vec<(String, Option<f64>)>,
}

/// The model package a `--model` path names.
pub fn package_dir(path: &Path) -> PathBuf {
    if path.join(mimic::model::CONFIG_FILE).exists() {
        path.to_path_buf()
    } else {
        path.join(BEST_DIR)
    }
}

/// Confusion of `model` on `set` (majority labels), predicting in batches.
pub fn evaluate_package(
    model: &ExpressionModel,
    set: &LabeledSet,
    batch_size: usize,
) -> Result<Confusion> {
    if model.classes() != set.classes.as_slice() {
        bail!(
            "the model's classes {:?} are not the dataset's {:?}",
            model.classes(),
            set.classes
        );
    }
    let mut confusion = Confusion::new(set.classes.clone());
    for chunk in set.samples.chunks(batch_size.max(1)) {
        let crops: Vec<image::RgbImage> = chunk.iter().map(|s| s.image.to_rgb8()).collect();
        for (sample, probs) in chunk.iter().zip(model.predict_probs(&crops)) {
            confusion.add(sample.label(), argmax(&probs));
        }
    }
    Ok(confusion)
}

/// Runs `mimic-train eval`; returns the summary it wrote.
pub fn eval(opts: &EvalOptions) -> Result<EvalSummary> {
    let kind = dataset_kind(&opts.dataset)?;
    let split: Split = opts.split.parse()?;
    let (device, description) = select(opts.device)?;
    let dir = package_dir(&opts.model);
    let model = ExpressionModel::load(&dir, &device)?;
    let model = match opts.flip_average {
        Some(on) => model.with_flip_average(on),
        None => model,
    };
    let model = match opts.logit_adjust {
        Some(tau) => model.with_logit_offsets(prior_offsets(&opts.dataset, &opts.data, tau)?),
        None => model,
    };
    eprintln!(
        "model {} on {description}{}",
        dir.display(),
        if model.config().flip_average {
            ", each face averaged with its mirror image"
        } else {
            ""
        }
    );
    let set = crate::data::load(kind, &opts.data, split, LabelMode::Majority)?;
    let started = std::time::Instant::now();
    let confusion = evaluate_package(&model, &set, opts.batch_size)?;
    eprintln!(
        "{} images in {:.1} s ({:.0} faces/s)",
        set.len(),
        started.elapsed().as_secs_f64(),
        set.len() as f64 / started.elapsed().as_secs_f64()
    );
    println!("{} {} split, {}", opts.dataset, split, dir.display());
    println!("{}", confusion.report());
    let name = model.config().name.clone();
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("eval-{name}-{split}")));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    confusion.write_csv(&out.join("confusion.csv"), &out.join("per_class.csv"))?;
    let png = out.join("confusion.png");
    confusion_png(&confusion.counts, &confusion.classes)
        .save(&png)
        .with_context(|| format!("cannot write {}", png.display()))?;
    let summary = EvalSummary {
        model: dir.display().to_string(),
        flip_average: model.config().flip_average,
        dataset: opts.dataset.clone(),
        split: split.to_string(),
        images: confusion.total(),
        accuracy: confusion.accuracy(),
        mean_class_accuracy: confusion.mean_class_accuracy(),
        per_class_accuracy: confusion
            .classes
            .iter()
            .cloned()
            .zip(confusion.per_class_accuracy())
            .collect(),
    };
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    eprintln!("wrote {}", out.display());
    Ok(summary)
}
