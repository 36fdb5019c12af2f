//! A shipped masked autoencoder: `models/mae-<preset>/`, the stage-1 result
//! that users fine-tune on their own expression data and that each lease of a
//! machine continues (`pretrain --from`).
//!
//! ```text
//! models/mae-micro/
//!     mae.json            MaePackage: shape, how far training got, the schedule, the history
//!     mae.safetensors     encoder (timm names) + decoder (MAE's names), f16
//!     MODEL_CARD.md       data, epochs, slices, the loss curve, reconstructions
//!     loss.svg            reconstruction loss per epoch
//!     reconstructions.png originals / masked inputs / reconstructions of the last epoch
//!     metrics.csv         one row per finished epoch
//! ```
//!
//! `finetune --init models/mae-micro` reads the encoder out of
//! `mae.safetensors` (a classifier ignores the decoder's tensors).
//!
//! The package holds the weights, not the optimizer state (that would triple
//! its size in git): a continuation restarts AdamW's moments with a short
//! re-warm-up of the learning rate (`pretrain --rewarmup-epochs`) and
//! otherwise follows the same schedule, data order and masking seeds as one
//! uninterrupted run would.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::Device;
use mimic::chart::{LineChart, Series};
use mimic::model::{read_safetensors, write_atomically, write_safetensors};
use mimic::vit::VitConfig;
use serde::{Deserialize, Serialize};

use crate::control::format_duration;
use crate::export::command_line;
use crate::mae::{Mae, MaeConfig};
use crate::pretrain::PretrainOptions;
use crate::run::{RunDir, TrainState};

pub const MAE_INFO: &str = "mae.json";
pub const MAE_WEIGHTS: &str = "mae.safetensors";
const LOSS_CHART: &str = "loss.svg";
const RECONSTRUCTIONS: &str = "reconstructions.png";

/// Layout version of `mae.json`.
pub const MAE_FORMAT_VERSION: u32 = 1;

/// What `mae.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MaePackage {
    pub format_version: u32,
    pub name: String,
    /// The encoder's shape (no head; what `finetune --init` builds on).
    pub vit: VitConfig,
    pub decoder_dim: usize,
    pub decoder_depth: usize,
    pub decoder_heads: usize,
    pub mask_ratio: f64,
    pub norm_pix_loss: bool,
    /// Finished epochs (what `finetune` reports as the MAE's epochs).
    pub epochs: usize,
    /// Optimizer steps done, all slices together (may end inside an epoch).
    pub steps: usize,
    pub steps_per_epoch: usize,
    pub batch_size: usize,
    /// Training images (one epoch).
    pub images: usize,
    /// The image folder's name (e.g. `tiny-imagenet-50k`).
    pub data: String,
    /// The command of the last slice: its `--epochs` is the length of the
    /// whole schedule, which every slice shares.
    pub pretrain_command: String,
    /// Training seconds, all slices together.
    pub seconds: f64,
    /// One entry per slice of training that made this package.
    pub slices: Vec<Slice>,
    /// Metrics rows of the finished epochs (as the run's `metrics.csv`).
    pub history: Vec<BTreeMap<String, f64>>,
}

/// One session of training (a lease of a card, or a CPU session).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Slice {
    /// UTC date the slice was packaged.
    pub date: String,
    /// `--device` of the slice (cpu, wgpu, vulkan).
    pub device: String,
    pub from_step: usize,
    pub to_step: usize,
    pub seconds: f64,
    pub images_per_second: f64,
}

impl MaePackage {
    /// Reads `dir/mae.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MAE_INFO);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the MAE package {}", path.display()))?;
        let info: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not an MAE package description", path.display()))?;
        if info.format_version > MAE_FORMAT_VERSION {
            bail!(
                "{} has format_version {}, newer than this program reads ({MAE_FORMAT_VERSION})",
                path.display(),
                info.format_version
            );
        }
        Ok(info)
    }

    /// Whether `dir` holds an MAE package.
    pub fn is_package(dir: &Path) -> bool {
        dir.join(MAE_INFO).is_file() && dir.join(MAE_WEIGHTS).is_file()
    }

    /// The MAE shape this package was trained as.
    pub fn mae_config(&self) -> MaeConfig {
        MaeConfig::new(self.vit.clone())
            .with_decoder_dim(self.decoder_dim)
            .with_decoder_depth(self.decoder_depth)
            .with_decoder_heads(self.decoder_heads)
            .with_mask_ratio(self.mask_ratio)
            .with_norm_pix_loss(self.norm_pix_loss)
    }

    /// The package's weights as an MAE of its shape on `device`.
    pub fn load_mae(&self, dir: &Path, device: &Device) -> Result<Mae> {
        let path = dir.join(MAE_WEIGHTS);
        let sd = read_safetensors(&path)?;
        Mae::from_state_dict(&self.mae_config(), &sd, device).with_context(|| {
            format!(
                "{} does not fit {}",
                path.display(),
                dir.join(MAE_INFO).display()
            )
        })
    }

    /// Where training stands for a run continuing this package.
    pub fn continue_state(&self) -> TrainState {
        TrainState {
            epoch: self.steps / self.steps_per_epoch.max(1),
            batch: self.steps % self.steps_per_epoch.max(1),
            step: self.steps,
            seconds: self.seconds,
            metrics: self.history.clone(),
            continued_from_step: Some(self.steps),
            ..TrainState::default()
        }
    }
}

/// True when two MAE shapes are the same network.
pub fn same_shape(a: &MaeConfig, b: &MaeConfig) -> bool {
    let (ea, eb) = (a.encoder_config(), b.encoder_config());
    [
        ea.image_size,
        ea.patch_size,
        ea.in_channels,
        ea.dim,
        ea.depth,
        ea.heads,
    ] == [
        eb.image_size,
        eb.patch_size,
        eb.in_channels,
        eb.dim,
        eb.depth,
        eb.heads,
    ] && ea.mlp_ratio == eb.mlp_ratio
        && [a.decoder_dim, a.decoder_depth, a.decoder_heads]
            == [b.decoder_dim, b.decoder_depth, b.decoder_heads]
        && a.mask_ratio == b.mask_ratio
        && a.norm_pix_loss == b.norm_pix_loss
}

/// Options of `mimic-train package-mae`.
#[derive(clap::Args, Clone, Debug)]
pub struct PackageMaeOptions {
    /// The pre-training run folder (its last checkpoint is packaged).
    #[arg(long)]
    pub run: PathBuf,
    /// Package name: written to <models-dir>/<name>/.
    #[arg(long)]
    pub name: String,
    #[arg(long, default_value = "models")]
    pub models_dir: PathBuf,
}

/// Writes the package of a pre-training run; returns its folder.
pub fn package_mae(opts: &PackageMaeOptions) -> Result<PathBuf> {
    let run = RunDir::new(&opts.run);
    let options_text = std::fs::read_to_string(run.options())
        .with_context(|| format!("{} is not a pre-training run folder", opts.run.display()))?;
    let options: PretrainOptions = serde_json::from_str(&options_text)
        .with_context(|| format!("{} is not a pretrain options file", run.options().display()))?;
    let cfg = options.mae_config()?;
    let checkpoint = run
        .find_checkpoint()
        .with_context(|| format!("{} has no checkpoint to package", opts.run.display()))?;
    let state: TrainState =
        serde_json::from_str(&std::fs::read_to_string(checkpoint.join("state.json"))?)
            .with_context(|| {
                format!(
                    "{} is not a training state",
                    checkpoint.join("state.json").display()
                )
            })?;
    let device = Device::flex();
    let mae = cfg
        .init(&device)
        .try_load_file(checkpoint.join("model.bpk"))
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot load {}: {e:?}",
                checkpoint.join("model.bpk").display()
            )
        })?;

    // The slices before this run, when it continued a package.
    let earlier = match &options.from {
        Some(dir) => Some(MaePackage::read(dir)?),
        None => None,
    };
    let (Some(steps_per_epoch), Some(images)) = (state.steps_per_epoch, state.train_images) else {
        bail!(
            "{} was written by an older mimic-train (no epoch size in its state); resume it once with this one",
            checkpoint.display()
        );
    };
    let from_step = state.continued_from_step.unwrap_or(0);
    let earlier_seconds = earlier.as_ref().map_or(0.0, |p| p.seconds);
    let slice_seconds = (state.seconds - earlier_seconds).max(0.0);
    let mut slices = earlier
        .as_ref()
        .map(|p| p.slices.clone())
        .unwrap_or_default();
    slices.push(Slice {
        date: time::OffsetDateTime::now_utc().date().to_string(),
        device: format!("{:?}", options.session.device).to_lowercase(),
        from_step,
        to_step: state.step,
        seconds: slice_seconds,
        images_per_second: ((state.step - from_step) * options.batch_size) as f64
            / slice_seconds.max(1e-9),
    });
    let data = options.data.file_name().map_or_else(
        || options.data.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut command_options = serde_json::to_value(&options)?;
    if let Some(map) = command_options.as_object_mut() {
        for key in ["max_steps", "max_minutes", "checkpoint_minutes"] {
            map.remove(key);
        }
    }
    let package = MaePackage {
        format_version: MAE_FORMAT_VERSION,
        name: opts.name.clone(),
        vit: cfg.encoder_config(),
        decoder_dim: cfg.decoder_dim,
        decoder_depth: cfg.decoder_depth,
        decoder_heads: cfg.decoder_heads,
        mask_ratio: cfg.mask_ratio,
        norm_pix_loss: cfg.norm_pix_loss,
        epochs: state.epoch,
        steps: state.step,
        steps_per_epoch,
        batch_size: options.batch_size,
        images,
        data,
        pretrain_command: command_line("pretrain", &command_options),
        seconds: state.seconds,
        slices,
        history: state.metrics.clone(),
    };

    let out = opts.models_dir.join(&opts.name);
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    write_safetensors(&out.join(MAE_WEIGHTS), &mae.state_dict(), true, None)?;
    write_atomically(
        &out.join(MAE_INFO),
        serde_json::to_string_pretty(&package)?.as_bytes(),
    )?;
    std::fs::copy(run.metrics_csv(), out.join("metrics.csv"))
        .with_context(|| format!("cannot copy {}", run.metrics_csv().display()))?;
    write_atomically(
        &out.join(LOSS_CHART),
        loss_chart(&package.history).as_bytes(),
    )?;
    let samples = newest_sample(&run.root.join("samples"));
    if let Some(png) = &samples {
        std::fs::copy(png, out.join(RECONSTRUCTIONS))
            .with_context(|| format!("cannot copy {}", png.display()))?;
    }
    write_atomically(
        &out.join(mimic::model::CARD_FILE),
        card(&package, samples.is_some()).as_bytes(),
    )?;
    eprintln!(
        "packaged {} epochs ({} steps) of {} into {}",
        package.epochs,
        package.steps,
        opts.run.display(),
        out.display()
    );
    Ok(out)
}

/// The newest `samples/epoch_NNN.png` of a run.
fn newest_sample(dir: &Path) -> Option<PathBuf> {
    let mut pngs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    pngs.sort();
    pngs.pop()
}

/// Reconstruction loss per finished epoch.
fn loss_chart(history: &[BTreeMap<String, f64>]) -> String {
    let points = history
        .iter()
        .filter_map(|row| Some((*row.get("epoch")?, *row.get("train_loss")?)))
        .collect();
    LineChart::new(
        "MAE reconstruction loss (masked patches, per-patch normalised pixels)",
        "epoch",
        "loss",
    )
    .with_series(Series {
        name: "train loss".into(),
        colour: "#1f77b4".into(),
        points,
    })
    .to_svg()
}

fn card(p: &MaePackage, has_samples: bool) -> String {
    let v = &p.vit;
    // What the card may say about the data: only Tiny-ImageNet is known to hold no face set.
    let general = p.data == "tiny-imagenet-50k";
    let mut s = format!("# {}\n\n", p.name);
    writeln!(
        s,
        "Masked-autoencoder pre-training (He et al. 2022) of the ViT that `mimic analyze` \
         classifies faces with: stage 1 of MIMIC, on {}. Fine-tune it on expression data with \
         `mimic-train finetune --init <this folder>`; continue its pre-training with \
         `mimic-train pretrain --from <this folder>` (what `scripts/campaign.sh` does on each \
         lease of a machine).\n",
        if general {
            "general (non-face) images"
        } else {
            "the images of `data` below"
        }
    )
    .unwrap();
    s += "## Network\n\n";
    writeln!(
        s,
        "Encoder: ViT, {} px input, {} px patches ({} tokens + class token), width {}, {} blocks, \
         {} heads, {:.2} M parameters. Decoder: width {}, {} blocks, {} heads. {:.0} % of the \
         patches masked; the loss is the mean squared error over the masked patches of {} pixels. \
         Weights stored as f16 (`mae.safetensors`).\n",
        v.image_size,
        v.patch_size,
        v.num_patches(),
        v.dim,
        v.depth,
        v.heads,
        v.num_params() as f64 / 1e6,
        p.decoder_dim,
        p.decoder_depth,
        p.decoder_heads,
        p.mask_ratio * 100.0,
        if p.norm_pix_loss {
            "per-patch normalised"
        } else {
            "raw"
        }
    )
    .unwrap();
    s += "## Data\n\n";
    let faces = if general {
        " No face dataset was used (the classes are objects and animals; some pictures show people)."
    } else {
        ""
    };
    writeln!(
        s,
        "`{}`: {} images per epoch (`../shared/data/`; see its README for provenance and \
         licence).{faces}\n",
        p.data, p.images
    )
    .unwrap();
    s += "## Training so far\n\n";
    writeln!(
        s,
        "{} finished epochs ({} steps of {} images; {:.2} epochs), {} of training time. The \
         schedule all slices share (warm-up + cosine over `--epochs`):\n\n```\n{}\n```\n",
        p.epochs,
        p.steps,
        p.batch_size,
        p.steps as f64 / p.steps_per_epoch.max(1) as f64,
        format_duration(p.seconds),
        p.pretrain_command
    )
    .unwrap();
    s += "| slice | date | device | steps | time | images/s |\n|---:|---|---|---|---:|---:|\n";
    for (i, sl) in p.slices.iter().enumerate() {
        writeln!(
            s,
            "| {} | {} | {} | {} → {} | {} | {:.0} |",
            i + 1,
            sl.date,
            sl.device,
            sl.from_step,
            sl.to_step,
            format_duration(sl.seconds),
            sl.images_per_second
        )
        .unwrap();
    }
    s += "\n![reconstruction loss per epoch](loss.svg)\n\n";
    if let (Some(first), Some(last)) = (p.history.first(), p.history.last()) {
        writeln!(
            s,
            "Loss {:.4} after epoch {:.0}, {:.4} after epoch {:.0}.\n",
            first.get("train_loss").copied().unwrap_or(f64::NAN),
            first.get("epoch").copied().unwrap_or(0.0),
            last.get("train_loss").copied().unwrap_or(f64::NAN),
            last.get("epoch").copied().unwrap_or(0.0)
        )
        .unwrap();
    }
    if has_samples {
        s += "Reconstructions after the last finished epoch (rows: originals, masked inputs, \
              reconstructions with the visible patches pasted back):\n\n\
              ![reconstructions](reconstructions.png)\n\n";
    }
    if general {
        s += "Licence: the weights derive from Tiny-ImageNet (ImageNet terms, non-commercial \
              research); use them under those terms.\n";
    } else {
        writeln!(
            s,
            "Licence: the weights derive from `{}`: use them under its terms (`../shared/data/README.md`).",
            p.data
        )
        .unwrap();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_shape_compares_encoder_and_decoder() {
        let a = MaeConfig::new(VitConfig::preset("micro").unwrap());
        let b = MaeConfig::new(VitConfig::preset("micro").unwrap());
        assert!(same_shape(&a, &b));
        assert!(!same_shape(&a, &b.clone().with_decoder_dim(64)));
        assert!(!same_shape(
            &a,
            &MaeConfig::new(VitConfig::preset("mini").unwrap())
        ));
    }
}
