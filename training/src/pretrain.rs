//! `mimic-train pretrain`: MAE pre-training of the ViT on general images.
//!
//! Each epoch visits every image once in a seeded random order, as a random
//! resized crop (scale 0.2–1, MAE's setting) with a random horizontal flip,
//! normalised with the ImageNet mean/std; 75 % of the patches are masked. The
//! run folder gets, besides the checkpoint and `metrics.csv`:
//! - `encoder.safetensors` + `encoder.json`: the encoder after the last
//!   finished epoch (timm names), what `finetune --init` reads;
//! - `samples/epoch_NNN.png`: originals / masked inputs / reconstructions
//!   (visible patches pasted back) of 8 fixed images.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use mimic::model::{IMAGENET_MEAN, IMAGENET_STD, write_atomically, write_safetensors};
use mimic::vit::{VitConfig, unpatchify};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::control::{EpochProgress, Outcome, format_duration, prefetch};
use crate::data_parallel::{PartLoss, data_parallel_gradients, seed_replicas, split_evenly};
use crate::device::select;
use crate::images::{ImageStore, Normalization, PixelAugment, random_resized_crop, render};
use crate::mae::{Mae, MaeConfig, MaskPlan, random_masking};
use crate::mae_package::{MaePackage, same_shape};
use crate::optim::{AdamWOptions, adamw, clip_grad_norm, trainable_params};
use crate::plot::tile_grid;
use crate::run::{RunDir, SessionOptions, Throughput, TrainState, derive_seed, stream};
use crate::schedule::{rewarm_factor, warmup_cosine};

/// Options of `mimic-train pretrain`.
#[derive(clap::Args, Clone, Debug, Serialize, Deserialize)]
pub struct PretrainOptions {
    /// Folder of general images (ImageFolder or flat; searched recursively).
    #[arg(long)]
    pub data: PathBuf,
    /// Run folder (checkpoints, metrics, samples, encoder); re-running the
    /// same command resumes the run in it.
    #[arg(long)]
    pub out: PathBuf,
    /// Encoder preset (tiny, small, mini, micro, mini64).
    #[arg(long, default_value = "mini")]
    pub preset: String,
    #[command(flatten)]
    #[serde(flatten)]
    pub shape: ShapeOverrides,
    /// Use at most this many images (evenly spread over the folder tree).
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 128)]
    pub decoder_dim: usize,
    #[arg(long, default_value_t = 2)]
    pub decoder_depth: usize,
    #[arg(long, default_value_t = 4)]
    pub decoder_heads: usize,
    /// Share of patches masked.
    #[arg(long, default_value_t = 0.75)]
    pub mask_ratio: f64,
    /// Reconstruct raw (normalised-image) pixels instead of per-patch
    /// normalised ones.
    #[arg(long)]
    pub no_norm_pix_loss: bool,
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Base learning rate per 256 images (MAE: lr = blr · batch / 256).
    #[arg(long, default_value_t = 1.5e-4)]
    pub blr: f64,
    /// Absolute peak learning rate (overrides --blr).
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long, default_value_t = 0.0)]
    pub min_lr: f64,
    #[arg(long, default_value_t = 5.0)]
    pub warmup_epochs: f64,
    #[arg(long, default_value_t = 0.05)]
    pub weight_decay: f64,
    /// Clip gradients to this global L2 norm (off when absent).
    #[arg(long)]
    pub clip_grad: Option<f64>,
    /// Smallest crop area share of the random resized crop.
    #[arg(long, default_value_t = 0.2)]
    pub crop_min_scale: f64,
    /// No random horizontal flip.
    #[arg(long)]
    pub no_flip: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    #[serde(flatten)]
    pub session: SessionOptions,
    /// Continue a shipped MAE package (`models/mae-…`, written by
    /// `package-mae`): its weights, step and history; the same schedule
    /// (`--epochs` is the whole schedule's length), a fresh optimizer.
    #[arg(long)]
    #[serde(default)]
    pub from: Option<PathBuf>,
    /// With --from: linear re-warm-up of the learning rate over this many
    /// epochs, for the optimizer's fresh moments.
    #[arg(long, default_value_t = 0.25)]
    #[serde(default = "quarter")]
    pub rewarmup_epochs: f64,
    /// Data parallelism: split each batch over this many devices (see `finetune
    /// --replicas`).
    #[arg(long, default_value_t = 1)]
    #[serde(default = "one_replica")]
    pub replicas: usize,
}

fn one_replica() -> usize {
    1
}

fn quarter() -> f64 {
    0.25
}

impl PretrainOptions {
    pub fn mae_config(&self) -> Result<MaeConfig> {
        let vit = self.shape.apply(&self.preset)?;
        if !(0.0..1.0).contains(&self.mask_ratio) {
            bail!("--mask-ratio {} must be in [0, 1)", self.mask_ratio);
        }
        Ok(MaeConfig::new(vit)
            .with_decoder_dim(self.decoder_dim)
            .with_decoder_depth(self.decoder_depth)
            .with_decoder_heads(self.decoder_heads)
            .with_mask_ratio(self.mask_ratio)
            .with_norm_pix_loss(!self.no_norm_pix_loss))
    }

    pub fn peak_lr(&self) -> f64 {
        self.lr.unwrap_or(self.blr * self.batch_size as f64 / 256.0)
    }
}

/// The encoder's shape on the command line: a preset's, with any of its sizes overridden.
#[derive(clap::Args, Clone, Debug, Default, Serialize, Deserialize)]
pub struct ShapeOverrides {
    /// Override the preset's input size (pixels).
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Override the preset's token width.
    #[arg(long)]
    pub dim: Option<usize>,
    /// Override the preset's number of blocks.
    #[arg(long)]
    pub depth: Option<usize>,
    /// Override the preset's attention heads.
    #[arg(long)]
    pub heads: Option<usize>,
    /// Override the preset's patch size.
    #[arg(long)]
    pub patch_size: Option<usize>,
}

impl ShapeOverrides {
    /// `preset`'s shape with these overrides, validated.
    pub fn apply(&self, preset: &str) -> Result<VitConfig> {
        let mut vit = VitConfig::preset(preset).with_context(|| {
            format!("unknown preset {preset:?}; one of {:?}", VitConfig::PRESETS)
        })?;
        vit.image_size = self.image_size.unwrap_or(vit.image_size);
        vit.patch_size = self.patch_size.unwrap_or(vit.patch_size);
        vit.dim = self.dim.unwrap_or(vit.dim);
        vit.depth = self.depth.unwrap_or(vit.depth);
        vit.heads = self.heads.unwrap_or(vit.heads);
        vit.validate()?;
        Ok(vit)
    }
}

const NORM: Normalization = Normalization {
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
};

/// Images shown in the per-epoch sample grid.
const SAMPLE_IMAGES: usize = 8;

/// One rendered training batch.
struct Batch {
    images: Vec<f32>,
    /// One masking plan per replica's rows (one for the whole batch without
    /// `--replicas`).
    plans: Vec<MaskPlan>,
}

/// Runs (or resumes) MAE pre-training.
pub fn pretrain(opts: &PretrainOptions, stop: Arc<AtomicBool>) -> Result<Outcome> {
    let cfg = opts.mae_config()?;
    if opts.batch_size == 0 {
        bail!("--batch-size must be positive");
    }
    let run = RunDir::new(&opts.out);
    run.open(opts, &SessionOptions::NAMES)?;
    let (device, description) = select(opts.session.device)?;
    eprintln!("device: {description}");

    eprintln!("loading images under {} …", opts.data.display());
    let images = crate::data::load_unlabeled_images(&opts.data, opts.limit).with_context(|| {
        format!(
            "cannot load pre-training images from {}",
            opts.data.display()
        )
    })?;
    let store = Arc::new(ImageStore::from_rgb(&images));
    drop(images);
    let n = store.len();
    let steps_per_epoch = n / opts.batch_size;
    if steps_per_epoch == 0 {
        bail!(
            "{} images are fewer than one batch of {}",
            n,
            opts.batch_size
        );
    }
    eprintln!(
        "{n} images of {}x{}, {steps_per_epoch} steps of {} per epoch",
        store.width, store.height, opts.batch_size
    );

    let ad = device.clone().autodiff();
    ad.seed(derive_seed(opts.seed, stream::INIT, 0));
    let replicas = crate::device::replica_devices(&device, opts.replicas)?
        .into_iter()
        .map(Device::autodiff)
        .collect::<Vec<_>>();
    let mae = cfg.init(&ad);
    let adamw_options = AdamWOptions {
        weight_decay: opts.weight_decay,
        beta1: 0.9,
        beta2: 0.95,
    };
    let (mut mae, mut optim, resumed) =
        run.load_checkpoint(mae, |m| adamw(&trainable_params(m), &adamw_options))?;
    let mut state = match (resumed, &opts.from) {
        (None, Some(dir)) => {
            let package = MaePackage::read(dir)?;
            if !same_shape(&package.mae_config(), &cfg) {
                bail!(
                    "{} is an MAE of another shape (encoder {}x{} px patches {}, width {}, {} blocks; \
                     decoder width {}, {} blocks): give the options it was trained with ({})",
                    dir.display(),
                    package.vit.image_size,
                    package.vit.image_size,
                    package.vit.patch_size,
                    package.vit.dim,
                    package.vit.depth,
                    package.decoder_dim,
                    package.decoder_depth,
                    package.pretrain_command
                );
            }
            if package.batch_size != opts.batch_size || package.images != n {
                bail!(
                    "{} was trained on {} images in batches of {}; this run has {n} in batches of {}: \
                     a continuation needs the same data and batch size to keep its schedule",
                    dir.display(),
                    package.images,
                    package.batch_size,
                    opts.batch_size
                );
            }
            mae = package.load_mae(dir, &ad)?;
            optim = adamw(&trainable_params(&mae), &adamw_options);
            eprintln!(
                "continuing {} at epoch {} batch {} (step {}, {} slices so far), fresh optimizer",
                dir.display(),
                package.steps / steps_per_epoch + 1,
                package.steps % steps_per_epoch,
                package.steps,
                package.slices.len()
            );
            package.continue_state()
        }
        (resumed, _) => match resumed {
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
                let enc = cfg.encoder_config();
                eprintln!(
                    "MAE: encoder {} ({:.2} M params, {:.3} GMACs/image full), decoder {}x{}, mask {:.0} %",
                    opts.preset,
                    enc.num_params() as f64 / 1e6,
                    enc.macs() as f64 / 1e9,
                    cfg.decoder_depth,
                    cfg.decoder_dim,
                    cfg.mask_ratio * 100.0
                );
                TrainState::default()
            }
        },
    };
    state.steps_per_epoch = Some(steps_per_epoch);
    state.train_images = Some(n);
    if state.epoch >= opts.epochs {
        eprintln!(
            "{} epochs of {} are done already: nothing to train (raise --epochs to lengthen the schedule)",
            state.epoch, opts.epochs
        );
    }

    let total_steps = opts.epochs * steps_per_epoch;
    let warmup = (opts.warmup_epochs * steps_per_epoch as f64).round() as usize;
    let rewarmup = (opts.rewarmup_epochs * steps_per_epoch as f64).round() as usize;
    let size = cfg.encoder.image_size;
    let visible = cfg.visible_patches();
    let patches = cfg.encoder.num_patches();
    let sample_ids: Vec<usize> = (0..SAMPLE_IMAGES.min(n))
        .map(|i| i * n / SAMPLE_IMAGES.min(n))
        .collect();
    let mut control = opts.session.loop_control(stop);

    while state.epoch < opts.epochs {
        let epoch = state.epoch;
        let mut order: Vec<usize> = (0..n).collect();
        rand::seq::SliceRandom::shuffle(
            order.as_mut_slice(),
            &mut StdRng::seed_from_u64(derive_seed(opts.seed, stream::SHUFFLE, epoch as u64)),
        );
        let batches = {
            let store = store.clone();
            let opts = opts.clone();
            let bs = opts.batch_size;
            prefetch(state.batch..steps_per_epoch, 2, move |b| {
                let mut rng = StdRng::seed_from_u64(derive_seed(
                    opts.seed,
                    stream::BATCH,
                    (epoch * steps_per_epoch + b) as u64,
                ));
                let mut images = vec![0.0f32; bs * 3 * size * size];
                for (k, out) in images.chunks_mut(3 * size * size).enumerate() {
                    let idx = order[b * bs + k];
                    let crop = random_resized_crop(
                        store.width,
                        store.height,
                        (opts.crop_min_scale as f32, 1.0),
                        (3.0 / 4.0, 4.0 / 3.0),
                        &mut rng,
                    );
                    let flip = !opts.no_flip && rand::Rng::random_bool(&mut rng, 0.5);
                    render(
                        &store,
                        idx,
                        crop,
                        flip,
                        PixelAugment::NONE,
                        &NORM,
                        size,
                        out,
                    );
                }
                let plans = split_evenly(bs, opts.replicas)
                    .into_iter()
                    .map(|rows| random_masking(rows.len(), patches, visible, &mut rng))
                    .collect();
                Batch { images, plans }
            })
        };
        let mut progress = EpochProgress::new(epoch, opts.epochs, steps_per_epoch, state.batch);
        let mut speed = Throughput::start();
        // Wall time of the whole epoch (`speed` restarts at each mid-epoch checkpoint).
        let epoch_clock = std::time::Instant::now();
        let mut loss_sum = state.epoch_sums.get("loss").copied().unwrap_or(0.0);
        let mut loss_count = state.epoch_sums.get("batches").copied().unwrap_or(0.0) as usize;
        let mut last_lr = 0.0;
        let mut stopped = false;
        for batch in batches {
            let lr = warmup_cosine(state.step, total_steps, warmup, opts.peak_lr(), opts.min_lr)
                * rewarm_factor(state.step, state.continued_from_step, rewarmup);
            last_lr = lr;
            seed_replicas(&replicas, opts.seed, state.step);
            let per_image = 3 * size * size;
            let parts: Vec<((Vec<f32>, MaskPlan), usize)> =
                split_evenly(opts.batch_size, replicas.len())
                    .into_iter()
                    .zip(batch.plans)
                    .map(|(rows, plan)| {
                        let images =
                            batch.images[rows.start * per_image..rows.end * per_image].to_vec();
                        ((images, plan), rows.len())
                    })
                    .collect();
            let (mut grads, report) =
                data_parallel_gradients(&mae, &replicas, parts, |m, (images, plan), dev| {
                    let x = Tensor::<4>::from_data(
                        TensorData::new(images, [plan.batch, 3, size, size]),
                        dev,
                    );
                    let (loss, _) = m.forward(x, &plan);
                    PartLoss {
                        report: vec![loss.clone().into_scalar::<f32>() as f64],
                        loss,
                    }
                });
            let loss_value = report[0];
            if !loss_value.is_finite() {
                bail!(
                    "loss became {loss_value} at step {} (epoch {}); lower --lr",
                    state.step,
                    epoch + 1
                );
            }
            if let Some(c) = opts.clip_grad {
                grads = clip_grad_norm(&mae, grads, c);
            }
            mae = optim.step(lr, mae, grads);
            state.step += 1;
            state.batch += 1;
            loss_sum += loss_value;
            loss_count += 1;
            speed.add(opts.batch_size);
            let remaining = (total_steps - state.step) as f64 * opts.batch_size as f64
                / speed.images_per_second().max(1e-9);
            progress.step(format!(
                "loss {:.4} lr {:.2e} {:.0} img/s | run ETA {}",
                loss_sum / loss_count as f64,
                lr,
                speed.images_per_second(),
                format_duration(remaining)
            ));
            state.epoch_sums = BTreeMap::from([
                ("loss".to_string(), loss_sum),
                ("batches".to_string(), loss_count as f64),
            ]);
            if run.after_step(&mut control, &mae, &optim, &mut state, &mut speed)? {
                stopped = true;
                break;
            }
        }
        state.seconds += speed.seconds();
        progress.finish();
        if stopped {
            return run.stop_here(&mae, &optim, &state, epoch);
        }
        let mean_loss = loss_sum / loss_count.max(1) as f64;
        eprintln!(
            "epoch {}/{}: loss {mean_loss:.4}, lr {last_lr:.2e}, {:.1} img/s",
            epoch + 1,
            opts.epochs,
            speed.images_per_second()
        );
        save_samples(&run, &mae, &store, &sample_ids, &cfg, opts.seed, epoch)?;
        save_encoder(&run.root, &mae, &cfg, epoch + 1)?;
        state.metrics.push(BTreeMap::from([
            ("epoch".to_string(), (epoch + 1) as f64),
            ("train_loss".to_string(), mean_loss),
            ("lr".to_string(), last_lr),
            ("images_per_s".to_string(), speed.images_per_second()),
            (
                "epoch_seconds".to_string(),
                epoch_clock.elapsed().as_secs_f64(),
            ),
            ("total_seconds".to_string(), state.seconds),
        ]));
        state.epoch += 1;
        state.batch = 0;
        state.epoch_sums.clear();
        run.save_checkpoint(&mae, &optim, &state)?;
        control.checkpoint_written();
    }
    Ok(Outcome::Finished)
}

/// File names of the exported encoder inside a pre-training run folder.
pub const ENCODER_WEIGHTS: &str = "encoder.safetensors";
pub const ENCODER_CONFIG: &str = "encoder.json";

/// What `encoder.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EncoderInfo {
    pub vit: VitConfig,
    /// Finished pre-training epochs.
    pub epochs: usize,
}

/// Writes the encoder weights (timm names, f32) and its config.
fn save_encoder(dir: &Path, mae: &Mae, cfg: &MaeConfig, epochs: usize) -> Result<()> {
    write_safetensors(
        &dir.join(ENCODER_WEIGHTS),
        &mae.encoder.state_dict(),
        false,
        None,
    )?;
    let info = EncoderInfo {
        vit: cfg.encoder_config(),
        epochs,
    };
    write_atomically(
        &dir.join(ENCODER_CONFIG),
        serde_json::to_string_pretty(&info)?.as_bytes(),
    )?;
    Ok(())
}

/// Mean reconstruction loss of `mae` over `images` with a fixed masking seed
/// (no gradient): what the tests use to see that training lowers it.
pub fn evaluate_reconstruction(
    mae: &Mae,
    images: &[f32],
    batch: usize,
    cfg: &MaeConfig,
    seed: u64,
    device: &Device,
) -> f32 {
    let size = cfg.encoder.image_size;
    let mut rng = StdRng::seed_from_u64(seed);
    let plan = random_masking(
        batch,
        cfg.encoder.num_patches(),
        cfg.visible_patches(),
        &mut rng,
    );
    let x = Tensor::<4>::from_data(
        TensorData::new(images.to_vec(), [batch, 3, size, size]),
        device,
    );
    let (loss, _) = mae.valid().forward(x, &plan);
    loss.into_scalar::<f32>()
}

/// Draws `samples/epoch_NNN.png`: per image, original / masked / reconstruction.
fn save_samples(
    run: &RunDir,
    mae: &Mae,
    store: &ImageStore,
    ids: &[usize],
    cfg: &MaeConfig,
    seed: u64,
    epoch: usize,
) -> Result<()> {
    let size = cfg.encoder.image_size;
    let p = cfg.encoder.patch_size;
    let device = mae.encoder.cls_token.val().device().inner();
    let model = mae.valid();
    let b = ids.len();
    let mut images = vec![0.0f32; b * 3 * size * size];
    for (k, out) in images.chunks_mut(3 * size * size).enumerate() {
        let full = crate::images::CropBox::full(store.width, store.height);
        render(
            store,
            ids[k],
            full,
            false,
            PixelAugment::NONE,
            &NORM,
            size,
            out,
        );
    }
    let mut rng = StdRng::seed_from_u64(derive_seed(seed, stream::SAMPLES, 0));
    let plan = random_masking(
        b,
        cfg.encoder.num_patches(),
        cfg.visible_patches(),
        &mut rng,
    );
    let x = Tensor::<4>::from_data(TensorData::new(images, [b, 3, size, size]), &device);
    let (_, pred) = model.forward(x.clone(), &plan);
    let target = model.encoder.patchify(x.clone());
    // Undo the per-patch normalisation with the true patch statistics (as
    // MAE's visualisation does) so the prediction is in image units.
    let pred = if cfg.norm_pix_loss {
        let [_, _, v] = target.dims();
        let mean = target.clone().mean_dim(2);
        let var = (target.clone() - mean.clone())
            .square()
            .sum_dim(2)
            .div_scalar((v - 1) as f64);
        pred * (var + 1e-6).sqrt() + mean
    } else {
        pred
    };
    let mask = Tensor::<3>::from_data(
        TensorData::new(plan.mask.clone(), [b, plan.patches, 1]),
        &device,
    );
    let masked_input =
        target.clone() * (mask.clone().neg() + 1.0) + mask.clone() * grey_value(&NORM);
    let pasted = target.clone() * (mask.clone().neg() + 1.0) + pred.clone() * mask;
    let to_images = |t: Tensor<3>| -> Vec<image::RgbImage> {
        let img = unpatchify(t, p, 3);
        let data = img.into_data().try_into_vec::<f32>().expect("f32");
        data.chunks(3 * size * size)
            .map(|c| denormalize(c, size))
            .collect()
    };
    let rows = vec![
        to_images(target),
        to_images(masked_input),
        to_images(pasted),
    ];
    let grid = tile_grid(&rows, 2, 2);
    let dir = run.root.join("samples");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("epoch_{:03}.png", epoch + 1));
    grid.save(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The normalised value of mid-grey (0.5) — what masked patches are shown as.
/// One value for all channels is close enough for a picture.
fn grey_value(norm: &Normalization) -> f32 {
    (0.5 - norm.mean[1]) / norm.std[1]
}

/// Normalised `[3, size, size]` → 8-bit RGB.
fn denormalize(chw: &[f32], size: usize) -> image::RgbImage {
    let plane = size * size;
    image::RgbImage::from_fn(size as u32, size as u32, |x, y| {
        let i = y as usize * size + x as usize;
        image::Rgb(std::array::from_fn(|c| {
            ((chw[c * plane + i] * NORM.std[c] + NORM.mean[c]).clamp(0.0, 1.0) * 255.0).round()
                as u8
        }))
    })
}
