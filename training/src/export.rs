//! `mimic-train export`: a fine-tuning run's best model → `models/<name>/`.
//!
//! The package gets the class list and pre-processing constants in
//! `config.json`, the weights (f16 by default) in `model.safetensors`, and a
//! `MODEL_CARD.md` written from the run: network, the exact commands of the
//! recipe (pre-training and fine-tuning), epochs and wall time, and the
//! accuracies measured on the exported weights themselves (valid always when
//! `--data` is given, test with `--test`), f32 beside f16.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mimic::model::ExpressionModel;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::{LabelMode, Split};
use crate::eval::{evaluate_package, package_dir};
use crate::finetune::dataset_kind;
use crate::metrics::Confusion;
use crate::run::{RunDir, TrainState};

/// Options of `mimic-train export`.
#[derive(clap::Args, Clone, Debug, Serialize, Deserialize)]
pub struct ExportOptions {
    /// Fine-tuning run folder (its best/ package is exported) or a package folder.
    #[arg(long)]
    pub run: PathBuf,
    /// Package name: written to <models-dir>/<name>/.
    #[arg(long)]
    pub name: String,
    #[arg(long, default_value = "models")]
    pub models_dir: PathBuf,
    /// Weight storage: f16 (half the size) or f32.
    #[arg(long, default_value = "f16")]
    pub dtype: String,
    /// Dataset root to measure the exported model on (valid split).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value = "ferplus")]
    pub dataset: String,
    /// Also measure the test split (do this once, for the final model).
    #[arg(long)]
    pub test: bool,
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// The package averages each face's prediction with its mirror image's
    /// (twice the cost per face; measure it with `eval --flip-average true` first).
    #[arg(long)]
    pub flip_average: bool,
    /// Store post-hoc logit-adjustment offsets of strength τ (−τ·log π of the train
    /// split of --data) in the package; measure with `eval --logit-adjust τ` first.
    #[arg(long, value_name = "TAU")]
    pub logit_adjust: Option<f64>,
}

/// Writes the package; returns its folder.
pub fn export(opts: &ExportOptions) -> Result<PathBuf> {
    if !["f16", "f32"].contains(&opts.dtype.as_str()) {
        bail!("--dtype must be f16 or f32, not {:?}", opts.dtype);
    }
    let source = package_dir(&opts.run);
    let device = burn::tensor::Device::flex();
    let mut model = ExpressionModel::load(&source, &device)?.with_flip_average(opts.flip_average);
    if let Some(tau) = opts.logit_adjust {
        let data = opts
            .data
            .as_ref()
            .context("--logit-adjust needs --data: the train split gives the class prior")?;
        model = model.with_logit_offsets(crate::eval::prior_offsets(&opts.dataset, data, tau)?);
    }
    let run_dir = if source.ends_with(crate::finetune::BEST_DIR) {
        source.parent().map(Path::to_path_buf)
    } else {
        None
    };
    let finetune_options = run_dir
        .as_ref()
        .and_then(|d| read_json(&RunDir::new(d).options()));
    let finetune_state = run_dir.as_ref().and_then(|d| read_state(&RunDir::new(d)));
    let pretrain_dir = finetune_options
        .as_ref()
        .and_then(|o| o.get("init"))
        .and_then(Value::as_str)
        .map(|p| {
            let p = PathBuf::from(p);
            if p.is_dir() {
                p
            } else {
                p.parent().map(Path::to_path_buf).unwrap_or(p)
            }
        });
    let pretrain_options = pretrain_dir
        .as_ref()
        .and_then(|d| read_json(&RunDir::new(d).options()));
    let pretrain_state = pretrain_dir
        .as_ref()
        .and_then(|d| read_state(&RunDir::new(d)));

    let mut config = model.config().clone();
    config.name = opts.name.clone();
    config.weights_dtype = opts.dtype.clone();
    let mut provenance: HashMap<String, String> = HashMap::from([
        ("exported_from".to_string(), source.display().to_string()),
        (
            "exporter".to_string(),
            format!("mimic-train {}", env!("CARGO_PKG_VERSION")),
        ),
    ]);
    if let Some(o) = &finetune_options {
        provenance.insert("finetune_command".into(), command_line("finetune", o));
    }
    if let Some(o) = &pretrain_options {
        provenance.insert("pretrain_command".into(), command_line("pretrain", o));
    }
    // A run that continued a fine-tuned package: that package's own recipe
    // comes first.
    if let Some(earlier) = pretrain_dir
        .as_ref()
        .and_then(|d| mimic::model::read_config(&d.join(mimic::model::CONFIG_FILE)).ok())
    {
        for key in ["pretrain_command", "finetune_command"] {
            if let Some(cmd) = earlier.provenance.get(key) {
                provenance.insert(format!("earlier_{key}"), cmd.clone());
            }
        }
        provenance.insert("earlier_package".into(), earlier.name);
    }
    if let Some(tau) = opts.logit_adjust {
        provenance.insert("logit_adjust_tau".into(), tau.to_string());
    }
    config.provenance = provenance;

    let out = opts.models_dir.join(&opts.name);
    let packaged = ExpressionModel::from_parts(model.vit().clone(), config.clone(), &device);
    packaged.save(&out, "(card being written)\n")?;
    let exported = ExpressionModel::load(&out, &device)?;

    let mut measured: Vec<(String, Confusion, Confusion)> = Vec::new();
    if let Some(data) = &opts.data {
        let kind = dataset_kind(&opts.dataset)?;
        let mut splits = vec![Split::Valid];
        if opts.test {
            splits.push(Split::Test);
        }
        for split in splits {
            let set = crate::data::load(kind, data, split, LabelMode::Majority)
                .with_context(|| format!("cannot load the {split} split to measure the export"))?;
            let original = evaluate_package(&model, &set, opts.batch_size)?;
            let stored = evaluate_package(&exported, &set, opts.batch_size)?;
            eprintln!(
                "{split}: accuracy {:.2} % (f32) / {:.2} % ({})",
                original.accuracy() * 100.0,
                stored.accuracy() * 100.0,
                opts.dtype
            );
            measured.push((split.to_string(), original, stored));
        }
    }
    // The measured figures go into config.json too, where the analyzer's report reads
    // them (`<dataset>_<split>_accuracy`, `…_mean_class_accuracy`, of the stored weights).
    if !measured.is_empty() {
        for (split, _, stored) in &measured {
            let key = format!("{}_{split}", opts.dataset);
            config.provenance.insert(
                format!("{key}_accuracy"),
                format!("{:.6}", stored.accuracy()),
            );
            config.provenance.insert(
                format!("{key}_mean_class_accuracy"),
                format!("{:.6}", stored.mean_class_accuracy()),
            );
        }
        mimic::model::write_atomically(
            &out.join(mimic::model::CONFIG_FILE),
            serde_json::to_string_pretty(&config)?.as_bytes(),
        )?;
    }
    let card = model_card(
        &config,
        &opts.dtype,
        &measured,
        finetune_state.as_ref(),
        pretrain_state.as_ref(),
        opts,
    );
    std::fs::write(out.join(mimic::model::CARD_FILE), card)
        .with_context(|| format!("cannot write the model card in {}", out.display()))?;
    eprintln!("exported {}", out.display());
    Ok(out)
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn read_state(run: &RunDir) -> Option<TrainState> {
    let dir = run.find_checkpoint()?;
    serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).ok()?).ok()
}

/// The command that reproduces a run from its recorded options:
/// `mimic-train <sub> --key value …` (booleans as flags, absent values left out).
pub fn command_line(sub: &str, options: &Value) -> String {
    let mut s = format!("mimic-train {sub}");
    if let Some(map) = options.as_object() {
        for (k, v) in map {
            let flag = format!("--{}", k.replace('_', "-"));
            match v {
                Value::Null | Value::Bool(false) => {}
                Value::Bool(true) => write!(s, " {flag}").unwrap(),
                Value::String(t) => write!(s, " {flag} {}", shell_word(t)).unwrap(),
                other => write!(s, " {flag} {other}").unwrap(),
            }
        }
    }
    s
}

fn shell_word(t: &str) -> String {
    if t.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./+=:".contains(c))
    {
        t.to_string()
    } else {
        format!("'{}'", t.replace('\'', "'\\''"))
    }
}

fn model_card(
    config: &mimic::model::ModelConfig,
    dtype: &str,
    measured: &[(String, Confusion, Confusion)],
    finetune: Option<&TrainState>,
    pretrain: Option<&TrainState>,
    opts: &ExportOptions,
) -> String {
    let v = &config.vit;
    let mut s = format!("# {}\n\n", config.name);
    s += "Facial-expression classifier for `mimic analyze`: a plain vision Transformer \
          pre-trained as a masked autoencoder and fine-tuned with MIMIC \
          (cross-entropy + mix-supervised contrastive loss) by `mimic-train`.\n\n";
    s += "## Network\n\n";
    writeln!(
        s,
        "ViT: {} px input, {} px patches ({} tokens + class token), width {}, {} blocks, {} heads, \
         MLP ×{}, {:?} pooling, {} classes. {:.2} M parameters, {:.3} GMACs per face. \
         Weights stored as {dtype} (computed in f32).\n",
        v.image_size,
        v.patch_size,
        v.num_patches(),
        v.dim,
        v.depth,
        v.heads,
        v.mlp_ratio,
        v.global_pool,
        v.num_classes,
        v.num_params() as f64 / 1e6,
        v.macs() as f64 / 1e9
    )
    .unwrap();
    writeln!(
        s,
        "Classes (output order): {}.\n",
        config.classes.join(", ")
    )
    .unwrap();
    writeln!(
        s,
        "Input: an aligned face crop of {0}×{0} px (5-point similarity alignment onto the \
         template in `config.json`){1}, scaled to [0, 1], normalised with mean {2:?} and std {3:?}.\n",
        config.input_size,
        if config.grey { ", converted to grey (BT.601 luma) on all three channels" } else { "" },
        config.mean,
        config.std
    )
    .unwrap();
    if let Some(tau) = config.provenance.get("logit_adjust_tau") {
        writeln!(
            s,
            "The logits are corrected for FER+ Train's class prior π before the softmax \
             (post-hoc logit adjustment, `logit_offsets` = −{tau}·log π in `config.json`): \
             fewer faces fall to the common classes (neutral, happiness), more to the rare \
             ones, at some cost in plain accuracy.\n"
        )
        .unwrap();
    }
    if config.flip_average {
        s += "Each face is classified twice, as it is and mirrored left-right, and the two \
              probability vectors are averaged (`flip_average` in `config.json`; twice the \
              network's cost per face).\n\n";
    }
    s += "## Recipe\n\n";
    if let Some(earlier) = config.provenance.get("earlier_package") {
        writeln!(
            s,
            "Continues the fine-tuned package `{earlier}`, itself made by these commands:\n"
        )
        .unwrap();
        for key in ["earlier_pretrain_command", "earlier_finetune_command"] {
            if let Some(cmd) = config.provenance.get(key) {
                writeln!(s, "```\n{cmd}\n```\n").unwrap();
            }
        }
        s += "and then:\n\n";
    }
    for key in ["pretrain_command", "finetune_command"] {
        if let Some(cmd) = config.provenance.get(key) {
            writeln!(s, "```\n{cmd}\n```\n").unwrap();
        }
    }
    for (stage, state) in [("Pre-training", pretrain), ("Fine-tuning", finetune)] {
        if let Some(st) = state {
            writeln!(
                s,
                "{stage}: {} epochs, {} optimizer steps, {} of training wall time.",
                st.epoch,
                st.step,
                crate::control::format_duration(st.seconds)
            )
            .unwrap();
        }
    }
    if let Some(st) = finetune
        && let Some(e) = st.best_epoch
    {
        writeln!(s, "Checkpoint chosen on the valid split: epoch {e}.").unwrap();
    }
    s += "\n## Measured accuracy (majority protocol)\n\n";
    if measured.is_empty() {
        s += "Not measured at export (run `mimic-train export --data …`, or `mimic-train eval`).\n\n";
    }
    for (split, original, stored) in measured {
        writeln!(
            s,
            "### {} {split}\n\naccuracy {:.2} % with f32 weights, {:.2} % with the stored {dtype} weights \
             ({} images).\n\n```\n{}```\n",
            opts.dataset,
            original.accuracy() * 100.0,
            stored.accuracy() * 100.0,
            stored.total(),
            stored.report()
        )
        .unwrap();
    }
    s += "## Known limits\n\n";
    s += "- Trained on FER+ faces: 48×48 grey, low resolution, mostly frontal, from web searches \
          (FER2013), with that data's demographic and labelling biases; colour is discarded.\n\
          - Expressions are the 8 FER+ categories of posed or spontaneous web images; they are \
          appearance labels, not measurements of felt emotion.\n\
          - Accuracy on video faces depends on detection and alignment matching the FER+ crops.\n";
    s
}
