//! `mimic-train finetune`: MIMIC fine-tuning of the ViT on an expression
//! dataset, from an MAE encoder or from scratch.
//!
//! Each batch of `B` images holds `B − M` clean augmented faces and `M =
//! mix_fraction · B` images mixed (mixup / cutmix, `λ ~ Beta(α, α)`) from two
//! faces of the batch, each with its class distribution. The loss is
//! `CE(logits, smoothed targets) + w · L_mix-supcon(projections, targets)`
//! ([`crate::mix_supcon`]), the projection head an MLP on the pooled feature.
//! The cross-entropy term can be corrected for the class prior
//! ([`crate::balance`]) and joined by a teacher's soft targets
//! ([`crate::distill`]). After every epoch the model is evaluated on the valid
//! split (majority labels); the best epoch by `--select` is kept as a model
//! package in `<run>/best/`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use mimic::model::{
    ExpressionModel, IMAGENET_MEAN, IMAGENET_STD, ModelConfig, read_config, read_safetensors,
};
use mimic::vit::{GlobalPool, Vit, xavier_linear};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::balance::{BalanceMode, ClassBalance};
use crate::control::{EpochProgress, Outcome, format_duration, prefetch};
use crate::data::{DatasetError, DatasetKind, LabelMode, LabeledSet, Split};
use crate::data_parallel::{PartLoss, data_parallel_gradients, seed_replicas, split_evenly};
use crate::device::select;
use crate::distill::{Teacher, distillation_loss};
use crate::images::{
    CropBox, ImageStore, Normalization, PixelAugment, random_erase, random_resized_crop, render,
};
use crate::mae_package::{MAE_INFO, MAE_WEIGHTS, MaePackage};
use crate::metrics::{Confusion, Selection, argmax};
use crate::mix::{MixMode, mix_pair};
use crate::mix_supcon::{mix_supcon_loss, smooth_labels, soft_cross_entropy};
use crate::optim::{AdamWOptions, LrGroups, adamw, clip_grad_norm, trainable_params, vit_layer_id};
use crate::pretrain::{ENCODER_CONFIG, ENCODER_WEIGHTS, EncoderInfo, ShapeOverrides};
use crate::run::{RunDir, SessionOptions, Throughput, TrainState, derive_seed, stream};
use crate::schedule::{layer_decay_scales, warmup_cosine};

/// Pooling choice on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolChoice {
    /// Mean of the patch tokens + fc_norm (MAE fine-tuning).
    Mean,
    /// The class token.
    Cls,
}

/// Options of `mimic-train finetune`.
#[derive(clap::Args, Clone, Debug, Serialize, Deserialize)]
pub struct FinetuneOptions {
    /// Dataset root (for FER+: the folder holding FER2013Train/ …).
    #[arg(long)]
    pub data: PathBuf,
    /// Dataset layout: ferplus, rafdb, affectnet, fer2013, imagefolder.
    #[arg(long, default_value = "ferplus")]
    pub dataset: String,
    /// Training targets: majority (one-hot) or probability (vote distribution).
    #[arg(long, default_value = "majority")]
    pub label_mode: String,
    /// Run folder; re-running the same command resumes the run in it.
    #[arg(long)]
    pub out: PathBuf,
    /// Where to start: an MAE pre-training run folder, a shipped MAE package
    /// or an `encoder.safetensors` (the encoder; a new head), or a fine-tuned
    /// model package (the whole network, head included, to continue
    /// fine-tuning it). From scratch when absent.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Preset when training from scratch, with the overrides below (with --init the
    /// encoder's shape is used).
    #[arg(long, default_value = "mini")]
    pub preset: String,
    #[command(flatten)]
    #[serde(flatten)]
    pub shape: ShapeOverrides,
    /// Train on a seeded random subset of this many training images.
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, value_enum, default_value_t = PoolChoice::Mean)]
    pub pool: PoolChoice,
    #[arg(long, default_value_t = 50)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Base learning rate per 256 images (lr = blr · batch / 256).
    #[arg(long, default_value_t = 1e-3)]
    pub blr: f64,
    /// Absolute peak learning rate (overrides --blr).
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long, default_value_t = 1e-6)]
    pub min_lr: f64,
    #[arg(long, default_value_t = 5.0)]
    pub warmup_epochs: f64,
    #[arg(long, default_value_t = 0.05)]
    pub weight_decay: f64,
    /// Layer-wise learning-rate decay (1 = off).
    #[arg(long, default_value_t = 0.75)]
    pub layer_decay: f64,
    /// Stochastic depth of the last block.
    #[arg(long, default_value_t = 0.1)]
    pub drop_path: f64,
    /// Clip gradients to this global L2 norm (off when absent).
    #[arg(long)]
    pub clip_grad: Option<f64>,
    /// Label smoothing ε of the cross-entropy targets.
    #[arg(long, default_value_t = 0.1)]
    pub label_smoothing: f64,
    /// Random-erasing probability.
    #[arg(long, default_value_t = 0.25)]
    pub reprob: f64,
    /// Brightness / contrast jitter strength (0 = off).
    #[arg(long, default_value_t = 0.4)]
    pub color_jitter: f64,
    /// Smallest crop area share of the random resized crop.
    #[arg(long, default_value_t = 0.8)]
    pub crop_min_scale: f64,
    /// No random horizontal flip.
    #[arg(long)]
    pub no_flip: bool,
    /// Mixed images in each batch: none, mixup, cutmix or both.
    #[arg(long, value_enum, default_value_t = MixMode::Both)]
    pub mix: MixMode,
    /// α of λ ~ Beta(α, α).
    #[arg(long, default_value_t = 0.8)]
    pub mix_alpha: f64,
    /// Share of each batch that is mixed images.
    #[arg(long, default_value_t = 0.5)]
    pub mix_fraction: f64,
    /// Weight w of the mix-supervised contrastive loss (0 = CE only).
    #[arg(long, default_value_t = 0.1)]
    pub supcon_weight: f64,
    /// Temperature τ of the contrastive loss.
    #[arg(long, default_value_t = 0.1)]
    pub temperature: f64,
    /// Output width of the projection head.
    #[arg(long, default_value_t = 128)]
    pub proj_dim: usize,
    /// Correct the cross-entropy for the training set's class prior so that
    /// rare classes get predicted: none, logit-adjust or reweight.
    #[arg(long, value_enum, default_value_t = BalanceMode::None)]
    #[serde(default)]
    pub balance: BalanceMode,
    /// Strength τ of --balance (logit adjustment adds τ·log prior; re-weighting
    /// weighs a class by prior^−τ).
    #[arg(long, default_value_t = 1.0)]
    #[serde(default = "one")]
    pub balance_tau: f64,
    /// A fine-tuned model package whose soft predictions the student also
    /// learns (knowledge distillation).
    #[arg(long)]
    #[serde(default)]
    pub teacher: Option<PathBuf>,
    /// Weight α of the distillation term: (1 − α)·CE + α·T²·CE(student/T, teacher/T).
    #[arg(long, default_value_t = 0.5)]
    #[serde(default = "half")]
    pub distill_weight: f64,
    /// Temperature T of the distillation term.
    #[arg(long, default_value_t = 2.0)]
    #[serde(default = "two")]
    pub distill_temperature: f64,
    /// Valid-split figure that chooses the best epoch: accuracy, mean-class
    /// (mean of the per-class accuracies) or average (the mean of the two).
    #[arg(long, value_enum, default_value_t = Selection::Accuracy)]
    #[serde(default)]
    pub select: Selection,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    #[serde(flatten)]
    pub session: SessionOptions,
    /// Batch size of the validation pass.
    #[arg(long, default_value_t = 256)]
    pub eval_batch: usize,
    /// Data parallelism: split each batch over this many devices (discrete GPUs 0…N−1
    /// with --device wgpu; on the CPU, replicas taking turns on its one device, which
    /// only tests the path).
    #[arg(long, default_value_t = 1)]
    #[serde(default = "one_replica")]
    pub replicas: usize,
}

fn one_replica() -> usize {
    1
}

fn one() -> f64 {
    1.0
}

fn half() -> f64 {
    0.5
}

fn two() -> f64 {
    2.0
}

/// Folder of the best epoch's model package inside a fine-tuning run.
pub const BEST_DIR: &str = "best";

impl FinetuneOptions {
    pub fn peak_lr(&self) -> f64 {
        self.lr.unwrap_or(self.blr * self.batch_size as f64 / 256.0)
    }

    fn check(&self) -> Result<()> {
        if self.batch_size < 2 {
            bail!("--batch-size must be at least 2");
        }
        if !(0.0..=1.0).contains(&self.mix_fraction) {
            bail!("--mix-fraction {} must be in [0, 1]", self.mix_fraction);
        }
        if self.mix_alpha <= 0.0 || self.temperature <= 0.0 {
            bail!("--mix-alpha and --temperature must be positive");
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            bail!("--label-smoothing must be in [0, 1)");
        }
        if !self.balance_tau.is_finite() || self.balance_tau < 0.0 {
            bail!(
                "--balance-tau {} must be zero or positive",
                self.balance_tau
            );
        }
        if !(0.0..=1.0).contains(&self.distill_weight) || self.distill_temperature <= 0.0 {
            bail!("--distill-weight must be in [0, 1] and --distill-temperature positive");
        }
        Ok(())
    }

    /// Mixed images per batch.
    pub fn mixed_per_batch(&self) -> usize {
        if self.mix == MixMode::None {
            0
        } else {
            ((self.batch_size as f64 * self.mix_fraction).round() as usize).min(self.batch_size)
        }
    }
}

/// The network being fine-tuned: the ViT with its head, and the projection
/// head of the contrastive loss (dropped at export).
#[derive(Module, Debug)]
pub struct Classifier {
    pub vit: Vit,
    pub proj: ProjectionHead,
}

/// SupCon's projection MLP: `dim → dim → proj_dim`, ReLU between.
#[derive(Module, Debug)]
pub struct ProjectionHead {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Classifier {
    pub fn new(vit: Vit, proj_dim: usize, device: &Device) -> Self {
        let d = vit.config().dim;
        Self {
            vit,
            proj: ProjectionHead {
                fc1: xavier_linear(d, d, device),
                fc2: xavier_linear(d, proj_dim, device),
            },
        }
    }

    /// `images: [batch, 3, H, W]` → `(logits [batch, classes], pooled [batch, dim])`.
    pub fn forward(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let pooled = self.vit.pool(self.vit.forward_features(images));
        (self.vit.forward_head(pooled.clone()), pooled)
    }

    /// `pooled: [batch, dim]` → projections `[batch, proj_dim]` (not normalised).
    pub fn project(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.proj.fc2.forward(relu(self.proj.fc1.forward(pooled)))
    }
}

/// A labelled set ready for training: pixels and class distributions.
pub struct PreparedSet {
    pub classes: Vec<String>,
    pub store: ImageStore,
    pub targets: Vec<Vec<f32>>,
}

impl PreparedSet {
    /// Stores the images at their own size when they all share one square
    /// size, else resized to `input_size`.
    pub fn new(set: &LabeledSet, input_size: usize) -> Self {
        let first = set
            .samples
            .first()
            .map(|s| (s.image.width(), s.image.height()));
        let size = match first {
            Some((w, h))
                if w == h
                    && set
                        .samples
                        .iter()
                        .all(|s| (s.image.width(), s.image.height()) == (w, h)) =>
            {
                w
            }
            _ => input_size as u32,
        };
        Self {
            classes: set.classes.clone(),
            store: ImageStore::from_dynamic(set.samples.iter().map(|s| &s.image), size),
            targets: set.samples.iter().map(|s| s.target.clone()).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The images `ids` rendered whole at `size`, no augmentation.
    pub fn render_plain(&self, ids: &[usize], size: usize, norm: &Normalization) -> Vec<f32> {
        let mut out = vec![0.0; ids.len() * 3 * size * size];
        for (k, chunk) in out.chunks_mut(3 * size * size).enumerate() {
            let full = CropBox::full(self.store.width, self.store.height);
            render(
                &self.store,
                ids[k],
                full,
                false,
                PixelAugment::NONE,
                norm,
                size,
                chunk,
            );
        }
        out
    }
}

/// Parses the dataset options.
pub fn dataset_kind(name: &str) -> Result<DatasetKind> {
    name.parse::<DatasetKind>().map_err(anyhow::Error::from)
}

pub fn label_mode(name: &str) -> Result<LabelMode> {
    name.parse::<LabelMode>().map_err(anyhow::Error::from)
}

/// The ViT shape and the starting weights for a fine-tuning run.
fn initial_model(
    opts: &FinetuneOptions,
    classes: usize,
    device: &Device,
) -> Result<(Vit, Option<String>)> {
    let pool = match opts.pool {
        PoolChoice::Mean => GlobalPool::Mean,
        PoolChoice::Cls => GlobalPool::Cls,
    };
    let Some(init) = &opts.init else {
        let vit = opts.shape.apply(&opts.preset)?;
        let cfg = vit
            .with_num_classes(classes)
            .with_global_pool(pool)
            .with_drop_path(opts.drop_path);
        cfg.validate()?;
        return Ok((cfg.init(device), None));
    };
    if init.join(mimic::model::CONFIG_FILE).exists()
        && init.join(mimic::model::WEIGHTS_FILE).exists()
    {
        return fine_tuned_start(init, classes, opts, device);
    }
    let (weights, config) = if MaePackage::is_package(init) {
        (init.join(MAE_WEIGHTS), init.join(MAE_INFO))
    } else if init.is_dir() {
        (init.join(ENCODER_WEIGHTS), init.join(ENCODER_CONFIG))
    } else {
        (init.clone(), init.with_file_name(ENCODER_CONFIG))
    };
    let text = std::fs::read_to_string(&config)
        .with_context(|| format!("cannot read the encoder config {}", config.display()))?;
    let info: EncoderInfo = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an encoder config", config.display()))?;
    let sd = read_safetensors(&weights)?;
    let cfg = info
        .vit
        .clone()
        .with_num_classes(classes)
        .with_global_pool(pool)
        .with_drop_path(opts.drop_path);
    let vit = Vit::from_state_dict(&cfg, &sd, &["fc_norm", "head"], device)
        .with_context(|| format!("cannot start from {}", weights.display()))?;
    Ok((
        vit,
        Some(format!(
            "{} ({} MAE epochs)",
            weights.display(),
            info.epochs
        )),
    ))
}

/// The whole network of a fine-tuned package (head included), to continue
/// fine-tuning it, with this run's stochastic depth.
fn fine_tuned_start(
    dir: &Path,
    classes: usize,
    opts: &FinetuneOptions,
    device: &Device,
) -> Result<(Vit, Option<String>)> {
    let package = read_config(&dir.join(mimic::model::CONFIG_FILE))?;
    let cfg = package.vit.clone().with_drop_path(opts.drop_path);
    if cfg.num_classes != classes {
        bail!(
            "the model package {} has {} classes, the training data {classes}",
            dir.display(),
            cfg.num_classes
        );
    }
    let pool = match opts.pool {
        PoolChoice::Mean => GlobalPool::Mean,
        PoolChoice::Cls => GlobalPool::Cls,
    };
    if cfg.global_pool != pool {
        bail!(
            "the model package {} pools with {:?}; pass --pool {}",
            dir.display(),
            cfg.global_pool,
            format!("{:?}", cfg.global_pool).to_lowercase()
        );
    }
    let sd = read_safetensors(&dir.join(mimic::model::WEIGHTS_FILE))?;
    let vit = Vit::from_state_dict(&cfg, &sd, &[], device)
        .with_context(|| format!("cannot start from {}", dir.display()))?;
    Ok((
        vit,
        Some(format!(
            "the fine-tuned package {} ({})",
            dir.display(),
            package.name
        )),
    ))
}

/// One rendered fine-tuning batch.
struct Batch {
    images: Vec<f32>,
    /// Class distributions (contrastive weights).
    targets: Vec<Vec<f32>>,
    /// Smoothed distributions (cross-entropy).
    ce_targets: Vec<f32>,
}

/// The rows of a batch one replica takes, with the teacher's soft targets of those rows
/// when distilling.
struct BatchPart {
    images: Vec<f32>,
    targets: Vec<Vec<f32>>,
    ce_targets: Vec<f32>,
    teacher: Option<Vec<f32>>,
}

impl Batch {
    fn part(&self, rows: std::ops::Range<usize>, teacher: Option<&[f32]>) -> BatchPart {
        let per_image = self.images.len() / self.targets.len().max(1);
        let classes = self.ce_targets.len() / self.targets.len().max(1);
        BatchPart {
            images: self.images[rows.start * per_image..rows.end * per_image].to_vec(),
            targets: self.targets[rows.clone()].to_vec(),
            ce_targets: self.ce_targets[rows.start * classes..rows.end * classes].to_vec(),
            teacher: teacher.map(|t| t[rows.start * classes..rows.end * classes].to_vec()),
        }
    }
}

/// What every part's loss needs besides its rows.
struct LossContext {
    classes: usize,
    size: usize,
    /// Logit adjustment's `τ·log π`, added inside the cross-entropy.
    logit_offsets: Option<Vec<f32>>,
    /// Distillation's weight α and temperature T.
    distill: Option<(f64, f64)>,
    /// The contrastive term's weight and temperature.
    supcon: Option<(f64, f64)>,
}

/// The fine-tuning loss of one part on `device`:
/// `(1 − α)·CE + α·KD + w·L_mix-supcon`; reports `[ce, supcon, kd]`.
fn part_loss(
    model: &Classifier,
    part: BatchPart,
    ctx: &LossContext,
    device: &Device,
) -> PartLoss<Vec<f64>> {
    let n = part.targets.len();
    let (c, s) = (ctx.classes, ctx.size);
    let x = Tensor::<4>::from_data(TensorData::new(part.images, [n, 3, s, s]), device);
    let y = Tensor::<2>::from_data(TensorData::new(part.ce_targets, [n, c]), device);
    let (logits, pooled) = model.forward(x);
    let ce = match &ctx.logit_offsets {
        Some(o) => {
            let offsets = Tensor::<2>::from_data(TensorData::new(o.clone(), [1, c]), device);
            soft_cross_entropy(logits.clone() + offsets, y)
        }
        None => soft_cross_entropy(logits.clone(), y),
    };
    let scalar = |t: &Tensor<1>| t.clone().into_scalar::<f32>() as f64;
    let ce_value = scalar(&ce);
    let (mut loss, mut kd_value) = (ce, 0.0);
    if let (Some((alpha, temperature)), Some(soft)) = (ctx.distill, part.teacher) {
        let soft = Tensor::<2>::from_data(TensorData::new(soft, [n, c]), device);
        let kd = distillation_loss(logits, soft, temperature);
        kd_value = scalar(&kd);
        loss = loss.mul_scalar(1.0 - alpha) + kd.mul_scalar(alpha);
    }
    let mut sc_value = 0.0;
    if let Some((weight, temperature)) = ctx.supcon {
        let sc = mix_supcon_loss(model.project(pooled), &part.targets, temperature);
        sc_value = scalar(&sc);
        loss = loss + sc.mul_scalar(weight);
    }
    PartLoss {
        loss,
        report: vec![ce_value, sc_value, kd_value],
    }
}

/// Runs (or resumes) fine-tuning; returns how it ended.
pub fn finetune(opts: &FinetuneOptions, stop: Arc<AtomicBool>) -> Result<Outcome> {
    opts.check()?;
    let kind = dataset_kind(&opts.dataset)?;
    let mode = label_mode(&opts.label_mode)?;
    let run = RunDir::new(&opts.out);
    let may_change: Vec<&str> = SessionOptions::NAMES
        .into_iter()
        .chain(["eval_batch"])
        .collect();
    run.open(opts, &may_change)?;
    let (device, description) = select(opts.session.device)?;
    eprintln!("device: {description}");

    eprintln!("loading {} from {} …", opts.dataset, opts.data.display());
    let train_set = crate::data::load(kind, &opts.data, Split::Train, mode)?;
    let (train_set, valid_set) =
        match crate::data::load(kind, &opts.data, Split::Valid, LabelMode::Majority) {
            Ok(valid) => (train_set, valid),
            Err(DatasetError::SplitNotAvailable { .. }) => {
                eprintln!(
                    "{} has no valid split: holding out 10 % of train for validation",
                    opts.dataset
                );
                hold_out(train_set, 0.1, opts.seed)
            }
            Err(e) => return Err(e.into()),
        };
    let train_set = match opts.limit {
        Some(k) if k < train_set.len() => subset(train_set, k, opts.seed),
        _ => train_set,
    };
    if train_set.classes != valid_set.classes {
        bail!("train and valid splits have different classes");
    }
    let classes = train_set.classes.clone();

    let ad = device.clone().autodiff();
    ad.seed(derive_seed(opts.seed, stream::INIT, 0));
    let (vit, init_note) = initial_model(opts, classes.len(), &ad)?;
    let vit_cfg = vit.config();
    let size = vit_cfg.image_size;
    let train = Arc::new(PreparedSet::new(&train_set, size));
    let valid = PreparedSet::new(&valid_set, size);
    drop((train_set, valid_set));
    let n = train.len();
    let steps_per_epoch = n / opts.batch_size;
    if steps_per_epoch == 0 {
        bail!(
            "{n} training images are fewer than one batch of {}",
            opts.batch_size
        );
    }
    let balance = Arc::new(ClassBalance::new(
        opts.balance,
        opts.balance_tau,
        &train.targets,
        classes.len(),
    ));
    if opts.balance != BalanceMode::None {
        eprintln!("{}", balance.describe(&classes));
    }
    let replicas = crate::device::replica_devices(&device, opts.replicas)?
        .into_iter()
        .map(Device::autodiff)
        .collect::<Vec<_>>();
    if replicas.len() > 1 {
        eprintln!(
            "data parallel over {} replicas (batches of {} split {:?})",
            replicas.len(),
            opts.batch_size,
            split_evenly(opts.batch_size, replicas.len())
                .iter()
                .map(|r| r.len())
                .collect::<Vec<_>>()
        );
    }
    let teacher = match &opts.teacher {
        Some(dir) => {
            let teacher = Teacher::load(dir, &classes, train.store.channels == 1, &device)?;
            eprintln!(
                "distilling from {} ({}; α {}, T {})",
                dir.display(),
                teacher.name(),
                opts.distill_weight,
                opts.distill_temperature
            );
            Some(teacher)
        }
        None => None,
    };
    let model = Classifier::new(vit, opts.proj_dim, &ad);
    let adamw_options = AdamWOptions {
        weight_decay: opts.weight_decay,
        beta1: 0.9,
        beta2: 0.999,
    };
    let (mut model, mut optim, resumed) =
        run.load_checkpoint(model, |m| adamw(&trainable_params(m), &adamw_options))?;
    // Groups by parameter id: built from the loaded model, whose ids the
    // checkpoint restored.
    let lr_groups = LrGroups::layer_wise(
        &trainable_params(&model),
        &layer_decay_scales(vit_cfg.depth, opts.layer_decay),
        |p| vit_layer_id(p, vit_cfg.depth),
    );
    let mut state = match resumed {
        Some(s) => {
            eprintln!(
                "resuming {} at epoch {} batch {} (step {})",
                opts.out.display(),
                s.epoch + 1,
                s.batch,
                s.step
            );
            s
        }
        None => {
            eprintln!(
                "fine-tuning a ViT of {} px, patch {}, width {}, {} blocks ({:.2} M params, {:.3} GMACs/image) from {}; {n} train / {} valid images, {} classes",
                size,
                vit_cfg.patch_size,
                vit_cfg.dim,
                vit_cfg.depth,
                vit_cfg.num_params() as f64 / 1e6,
                vit_cfg.macs() as f64 / 1e9,
                init_note.as_deref().unwrap_or("scratch"),
                valid.len(),
                classes.len()
            );
            TrainState::default()
        }
    };

    let norm = Normalization {
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
    };
    let total_steps = opts.epochs * steps_per_epoch;
    let warmup = (opts.warmup_epochs * steps_per_epoch as f64).round() as usize;
    let bs = opts.batch_size;
    let context = LossContext {
        classes: classes.len(),
        size,
        logit_offsets: balance.logit_offset_values(),
        distill: teacher
            .is_some()
            .then_some((opts.distill_weight, opts.distill_temperature)),
        supcon: (opts.supcon_weight > 0.0).then_some((opts.supcon_weight, opts.temperature)),
    };
    let mut control = opts.session.loop_control(stop);

    while state.epoch < opts.epochs {
        let epoch = state.epoch;
        let mut order: Vec<usize> = (0..n).collect();
        rand::seq::SliceRandom::shuffle(
            order.as_mut_slice(),
            &mut StdRng::seed_from_u64(derive_seed(opts.seed, stream::SHUFFLE, epoch as u64)),
        );
        let batches = {
            let train = train.clone();
            let balance = balance.clone();
            let opts = opts.clone();
            prefetch(state.batch..steps_per_epoch, 2, move |b| {
                let mut rng = StdRng::seed_from_u64(derive_seed(
                    opts.seed,
                    stream::BATCH,
                    (epoch * steps_per_epoch + b) as u64,
                ));
                make_batch(
                    &train,
                    &order[b * bs..(b + 1) * bs],
                    &opts,
                    &balance,
                    size,
                    &norm,
                    &mut rng,
                )
            })
        };
        let mut progress = EpochProgress::new(epoch, opts.epochs, steps_per_epoch, state.batch);
        let mut speed = Throughput::start();
        // Wall time of the whole epoch (`speed` restarts at each mid-epoch checkpoint).
        let epoch_clock = std::time::Instant::now();
        let sum = |k: &str| state.epoch_sums.get(k).copied().unwrap_or(0.0);
        let (mut ce_sum, mut sc_sum, mut kd_sum, mut count) =
            (sum("ce"), sum("supcon"), sum("kd"), sum("batches") as usize);
        let mut last_lr = 0.0;
        let mut stopped = false;
        for batch in batches {
            let lr = warmup_cosine(state.step, total_steps, warmup, opts.peak_lr(), opts.min_lr);
            last_lr = lr;
            seed_replicas(&replicas, opts.seed, state.step);
            let teacher_targets = teacher.as_ref().map(|t| {
                t.soft_targets_of(&batch.images, bs, size, opts.distill_temperature, &device)
            });
            let parts: Vec<(BatchPart, usize)> = split_evenly(bs, replicas.len())
                .into_iter()
                .map(|rows| {
                    (
                        batch.part(rows.clone(), teacher_targets.as_deref()),
                        rows.len(),
                    )
                })
                .collect();
            let (mut grads, terms) =
                data_parallel_gradients(&model, &replicas, parts, |m, part, dev| {
                    part_loss(m, part, &context, dev)
                });
            let [ce_value, sc_value, kd_value] = [terms[0], terms[1], terms[2]];
            sc_sum += sc_value;
            kd_sum += kd_value;
            if !ce_value.is_finite() {
                bail!(
                    "loss became {ce_value} at step {} (epoch {}); lower --lr",
                    state.step,
                    epoch + 1
                );
            }
            if let Some(c) = opts.clip_grad {
                grads = clip_grad_norm(&model, grads, c);
            }
            model = optim.step(lr_groups.at(lr), model, grads);
            state.step += 1;
            state.batch += 1;
            ce_sum += ce_value;
            count += 1;
            speed.add(bs);
            let remaining =
                (total_steps - state.step) as f64 * bs as f64 / speed.images_per_second().max(1e-9);
            progress.step(format!(
                "ce {:.4} supcon {:.4}{} lr {:.2e} {:.0} img/s | run ETA {}",
                ce_sum / count as f64,
                sc_sum / count as f64,
                if teacher.is_some() {
                    format!(" kd {:.4}", kd_sum / count as f64)
                } else {
                    String::new()
                },
                lr,
                speed.images_per_second(),
                format_duration(remaining)
            ));
            state.epoch_sums = BTreeMap::from([
                ("ce".to_string(), ce_sum),
                ("supcon".to_string(), sc_sum),
                ("kd".to_string(), kd_sum),
                ("batches".to_string(), count as f64),
            ]);
            if run.after_step(&mut control, &model, &optim, &mut state, &mut speed)? {
                stopped = true;
                break;
            }
        }
        state.seconds += speed.seconds();
        progress.finish();
        if stopped {
            return run.stop_here(&model, &optim, &state, epoch);
        }
        let train_speed = speed.images_per_second();
        let confusion = evaluate(&model.vit.valid(), &valid, &norm, opts.eval_batch, &device);
        let acc = confusion.accuracy();
        let score = opts.select.score(&confusion);
        let improved = state.best_metric.is_none_or(|b| score > b);
        eprintln!(
            "epoch {}/{}: ce {:.4}, supcon {:.4}, lr {last_lr:.2e}, {train_speed:.1} img/s, valid accuracy {:.2} %, mean class {:.2} %{}",
            epoch + 1,
            opts.epochs,
            ce_sum / count.max(1) as f64,
            sc_sum / count.max(1) as f64,
            acc * 100.0,
            confusion.mean_class_accuracy() * 100.0,
            if improved { " (best)" } else { "" }
        );
        state.metrics.push(BTreeMap::from([
            ("epoch".to_string(), (epoch + 1) as f64),
            ("train_ce".to_string(), ce_sum / count.max(1) as f64),
            ("train_supcon".to_string(), sc_sum / count.max(1) as f64),
            ("train_kd".to_string(), kd_sum / count.max(1) as f64),
            ("lr".to_string(), last_lr),
            ("images_per_s".to_string(), train_speed),
            ("valid_accuracy".to_string(), acc),
            (
                "valid_mean_class_accuracy".to_string(),
                confusion.mean_class_accuracy(),
            ),
            (
                "epoch_seconds".to_string(),
                epoch_clock.elapsed().as_secs_f64(),
            ),
            ("total_seconds".to_string(), state.seconds),
        ]));
        state.epoch += 1;
        state.batch = 0;
        state.epoch_sums.clear();
        if improved {
            state.best_metric = Some(score);
            state.best_epoch = Some(epoch + 1);
            save_best(&run, &model, &classes, opts, &state, &confusion, &device)?;
        }
        run.save_checkpoint(&model, &optim, &state)?;
        control.checkpoint_written();
    }
    Ok(Outcome::Finished)
}

/// Renders one batch: clean augmented faces, then the mixed ones.
#[allow(clippy::too_many_arguments)]
fn make_batch(
    train: &PreparedSet,
    ids: &[usize],
    opts: &FinetuneOptions,
    balance: &ClassBalance,
    size: usize,
    norm: &Normalization,
    rng: &mut StdRng,
) -> Batch {
    let bs = ids.len();
    let per = 3 * size * size;
    let mut clean = vec![0.0f32; bs * per];
    let mut targets: Vec<Vec<f32>> = ids.iter().map(|&i| train.targets[i].clone()).collect();
    for (k, out) in clean.chunks_mut(per).enumerate() {
        let crop = random_resized_crop(
            train.store.width,
            train.store.height,
            (opts.crop_min_scale as f32, 1.0),
            (3.0 / 4.0, 4.0 / 3.0),
            rng,
        );
        let flip = !opts.no_flip && rng.random_bool(0.5);
        let jitter = PixelAugment::random(opts.color_jitter as f32, rng);
        render(&train.store, ids[k], crop, flip, jitter, norm, size, out);
    }
    let mut images = clean.clone();
    let mixed = opts.mixed_per_batch();
    for k in bs - mixed..bs {
        let mut j = rng.random_range(0..bs - 1);
        if j >= k {
            j += 1;
        }
        let (img, y) = mix_pair(
            opts.mix,
            opts.mix_alpha,
            &clean[k * per..(k + 1) * per],
            &train.targets[ids[k]],
            &clean[j * per..(j + 1) * per],
            &train.targets[ids[j]],
            size,
            rng,
        );
        images[k * per..(k + 1) * per].copy_from_slice(&img);
        targets[k] = y;
    }
    let grey = train.store.channels == 1;
    for img in images.chunks_mut(per) {
        random_erase(img, size, opts.reprob as f32, grey, rng);
    }
    // Re-weighting scales a sample's cross-entropy by scaling its target.
    let ce_targets = targets
        .iter()
        .flat_map(|t| {
            let weight = balance.sample_weight(t);
            smooth_labels(t, opts.label_smoothing as f32)
                .into_iter()
                .map(move |v| v * weight)
        })
        .collect();
    Batch {
        images,
        targets,
        ce_targets,
    }
}

/// Majority-label confusion of `vit` (non-autodiff) on `set`.
pub fn evaluate(
    vit: &Vit,
    set: &PreparedSet,
    norm: &Normalization,
    batch: usize,
    device: &Device,
) -> Confusion {
    let size = vit.config().image_size;
    let mut confusion = Confusion::new(set.classes.clone());
    let ids: Vec<usize> = (0..set.len()).collect();
    for chunk in ids.chunks(batch.max(1)) {
        let x = Tensor::<4>::from_data(
            TensorData::new(
                set.render_plain(chunk, size, norm),
                [chunk.len(), 3, size, size],
            ),
            device,
        );
        let logits = vit
            .forward(x)
            .into_data()
            .try_into_vec::<f32>()
            .expect("f32 logits");
        for (k, row) in logits.chunks(set.classes.len()).enumerate() {
            confusion.add(argmax(&set.targets[chunk[k]]), argmax(row));
        }
    }
    confusion
}

/// A seeded random `k` samples of `set`.
fn subset(mut set: LabeledSet, k: usize, seed: u64) -> LabeledSet {
    let mut rng = StdRng::seed_from_u64(derive_seed(seed, stream::SHUFFLE, u64::MAX - 1));
    rand::seq::SliceRandom::shuffle(set.samples.as_mut_slice(), &mut rng);
    set.samples.truncate(k);
    set
}

/// Moves a seeded random `share` of `set` into a second set.
fn hold_out(mut set: LabeledSet, share: f64, seed: u64) -> (LabeledSet, LabeledSet) {
    let mut rng = StdRng::seed_from_u64(derive_seed(seed, stream::SHUFFLE, u64::MAX));
    rand::seq::SliceRandom::shuffle(set.samples.as_mut_slice(), &mut rng);
    let k = ((set.samples.len() as f64) * share).round().max(1.0) as usize;
    let held = set.samples.split_off(set.samples.len() - k);
    let valid = LabeledSet {
        classes: set.classes.clone(),
        samples: held,
    };
    (set, valid)
}

/// The model package of a fine-tuned network (f32 weights) with provenance.
pub fn package_config(
    vit: &Vit,
    classes: &[String],
    name: &str,
    provenance: HashMap<String, String>,
) -> ModelConfig {
    let mut cfg = ModelConfig::new(name, vit.config().with_drop_path(0.0), classes.to_vec());
    cfg.weights_dtype = "f32".into();
    cfg.provenance = provenance;
    cfg
}

/// Writes `<run>/best/` (config.json, model.safetensors, MODEL_CARD.md) for
/// the epoch that just improved the valid accuracy.
fn save_best(
    run: &RunDir,
    model: &Classifier,
    classes: &[String],
    opts: &FinetuneOptions,
    state: &TrainState,
    confusion: &Confusion,
    device: &Device,
) -> Result<()> {
    let vit = model.vit.valid();
    let vit = strip_drop_path(vit);
    let provenance = HashMap::from([
        ("trainer".to_string(), "mimic-train finetune".to_string()),
        ("options".to_string(), serde_json::to_string(opts)?),
        (
            "epoch".to_string(),
            state.best_epoch.unwrap_or(0).to_string(),
        ),
        (
            "valid_accuracy".to_string(),
            format!("{:.6}", confusion.accuracy()),
        ),
        ("train_seconds".to_string(), format!("{:.0}", state.seconds)),
    ]);
    let cfg = package_config(&vit, classes, "best", provenance);
    let card = format!(
        "# Best epoch of {}\n\nEpoch {}, valid accuracy {:.2} % (majority labels).\n\n```\n{}```\n",
        run.root.display(),
        state.best_epoch.unwrap_or(0),
        confusion.accuracy() * 100.0,
        confusion.report()
    );
    ExpressionModel::from_parts(vit, cfg, device).save(&run.root.join(BEST_DIR), &card)?;
    Ok(())
}

/// The same network with stochastic depth off (an exported model's config
/// should not carry the training-only rate).
fn strip_drop_path(mut vit: Vit) -> Vit {
    for b in vit.blocks.iter_mut() {
        b.drop_path = 0.0;
    }
    vit
}

/// The best model package of a fine-tuning run folder.
pub fn best_package(run: &Path) -> PathBuf {
    run.join(BEST_DIR)
}
