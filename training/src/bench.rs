//! `mimic-train bench`: throughput of the training steps and of inference for
//! a preset, on synthetic inputs (so that it needs no dataset).
//!
//! - pretrain: one MAE step (masking, encoder on visible patches, decoder,
//!   loss, backward, AdamW) per batch;
//! - finetune: one MIMIC step (forward, CE + mix-SupCon with half the batch
//!   mixed targets, backward, AdamW with layer-wise decay);
//! - infer: [`ExpressionModel::predict_probs`] on face crops at the batch
//!   sizes given (pre-processing included), as `mimic analyze` calls it.
//!
//! Each stage runs two untimed warm-up steps, then as many steps as fit in
//! `--seconds`. The real training loops add host-side augmentation on a
//! separate thread; their progress bars report the images/s they achieve.

use std::time::Instant;

use anyhow::{Context, Result};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use mimic::model::{ExpressionModel, ModelConfig};
use mimic::vit::{GlobalPool, VitConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::device::{DeviceChoice, select};
use crate::finetune::Classifier;
use crate::mae::{MaeConfig, random_masking};
use crate::mix_supcon::{mix_supcon_loss, soft_cross_entropy};
use crate::optim::{AdamWOptions, LrGroups, adamw, trainable_params, vit_layer_id};
use crate::schedule::layer_decay_scales;

/// Options of `mimic-train bench`.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchOptions {
    /// Presets to measure (comma separated).
    #[arg(long, default_value = "mini", value_delimiter = ',')]
    pub presets: Vec<String>,
    /// Stages to measure (comma separated): pretrain, finetune, infer.
    #[arg(long, default_value = "pretrain,finetune,infer", value_delimiter = ',')]
    pub stages: Vec<String>,
    /// Seconds of timed work per measurement.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 128)]
    pub pretrain_batch: usize,
    #[arg(long, default_value_t = 64)]
    pub finetune_batch: usize,
    /// Inference batch sizes (comma separated).
    #[arg(long, default_value = "8,32", value_delimiter = ',')]
    pub infer_batch: Vec<usize>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
}

/// One measurement.
#[derive(Clone, Debug)]
pub struct BenchResult {
    pub preset: String,
    pub stage: String,
    pub batch: usize,
    pub images_per_second: f64,
    pub steps: usize,
}

/// Runs the measurements and prints a table.
pub fn bench(opts: &BenchOptions) -> Result<Vec<BenchResult>> {
    let (device, description) = select(opts.device)?;
    println!("device: {description}");
    println!(
        "{:<8} {:<9} {:>5} {:>10} {:>6}",
        "preset", "stage", "batch", "images/s", "steps"
    );
    let mut results = Vec::new();
    for preset in &opts.presets {
        let vit = VitConfig::preset(preset).with_context(|| {
            format!("unknown preset {preset:?}; one of {:?}", VitConfig::PRESETS)
        })?;
        for stage in &opts.stages {
            let runs: Vec<(usize, f64, usize)> = match stage.as_str() {
                "pretrain" => vec![bench_pretrain(
                    &vit,
                    opts.pretrain_batch,
                    opts.seconds,
                    &device,
                )],
                "finetune" => vec![bench_finetune(
                    &vit,
                    opts.finetune_batch,
                    opts.seconds,
                    &device,
                )],
                "infer" => opts
                    .infer_batch
                    .iter()
                    .map(|&b| bench_infer(&vit, b, opts.seconds, &device))
                    .collect(),
                other => anyhow::bail!("unknown stage {other:?}: pretrain, finetune or infer"),
            };
            for (batch, ips, steps) in runs {
                println!("{preset:<8} {stage:<9} {batch:>5} {ips:>10.1} {steps:>6}");
                results.push(BenchResult {
                    preset: preset.clone(),
                    stage: stage.clone(),
                    batch,
                    images_per_second: ips,
                    steps,
                });
            }
        }
    }
    Ok(results)
}

/// Runs `step` twice untimed, then for `seconds`; returns (steps, images/s).
fn timed(batch: usize, seconds: f64, mut step: impl FnMut()) -> (usize, f64, usize) {
    step();
    step();
    let start = Instant::now();
    let mut steps = 0;
    while start.elapsed().as_secs_f64() < seconds || steps == 0 {
        step();
        steps += 1;
    }
    (
        batch,
        (steps * batch) as f64 / start.elapsed().as_secs_f64(),
        steps,
    )
}

fn random_images(batch: usize, size: usize, rng: &mut StdRng) -> Vec<f32> {
    (0..batch * 3 * size * size)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect()
}

fn bench_pretrain(
    vit: &VitConfig,
    batch: usize,
    seconds: f64,
    device: &Device,
) -> (usize, f64, usize) {
    let ad = device.clone().autodiff();
    let cfg = MaeConfig::new(vit.clone());
    let mut mae = cfg.init(&ad);
    let mut optim = adamw(
        &trainable_params(&mae),
        &AdamWOptions {
            weight_decay: 0.05,
            beta1: 0.9,
            beta2: 0.95,
        },
    );
    let mut rng = StdRng::seed_from_u64(0);
    let size = vit.image_size;
    timed(batch, seconds, || {
        let plan = random_masking(batch, vit.num_patches(), cfg.visible_patches(), &mut rng);
        let x = Tensor::<4>::from_data(
            TensorData::new(random_images(batch, size, &mut rng), [batch, 3, size, size]),
            &ad,
        );
        let (loss, _) = mae.forward(x, &plan);
        let _ = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &mae);
        mae = optim.step(1e-4, mae.clone(), grads);
    })
}

fn bench_finetune(
    vit: &VitConfig,
    batch: usize,
    seconds: f64,
    device: &Device,
) -> (usize, f64, usize) {
    let ad = device.clone().autodiff();
    let classes = 8;
    let cfg = vit
        .clone()
        .with_num_classes(classes)
        .with_global_pool(GlobalPool::Mean)
        .with_drop_path(0.1);
    let mut model = Classifier::new(cfg.init(&ad), 128, &ad);
    let params = trainable_params(&model);
    let mut optim = adamw(
        &params,
        &AdamWOptions {
            weight_decay: 0.05,
            beta1: 0.9,
            beta2: 0.999,
        },
    );
    let groups = LrGroups::layer_wise(&params, &layer_decay_scales(cfg.depth, 0.75), |p| {
        vit_layer_id(p, cfg.depth)
    });
    let mut rng = StdRng::seed_from_u64(0);
    let size = vit.image_size;
    timed(batch, seconds, || {
        let targets: Vec<Vec<f32>> = (0..batch)
            .map(|k| {
                let mut t = vec![0.0; classes];
                t[rng.random_range(0..classes)] += if k % 2 == 0 { 1.0 } else { 0.6 };
                t[rng.random_range(0..classes)] += if k % 2 == 0 { 0.0 } else { 0.4 };
                t
            })
            .collect();
        let x = Tensor::<4>::from_data(
            TensorData::new(random_images(batch, size, &mut rng), [batch, 3, size, size]),
            &ad,
        );
        let y = Tensor::<2>::from_data(
            TensorData::new(
                targets.iter().flatten().copied().collect::<Vec<f32>>(),
                [batch, classes],
            ),
            &ad,
        );
        let (logits, pooled) = model.forward(x);
        let ce = soft_cross_entropy(logits, y);
        let sc = mix_supcon_loss(model.project(pooled), &targets, 0.1);
        let loss = ce + sc.mul_scalar(0.1);
        let _ = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(groups.at(1e-4), model.clone(), grads);
    })
}

fn bench_infer(
    vit: &VitConfig,
    batch: usize,
    seconds: f64,
    device: &Device,
) -> (usize, f64, usize) {
    let classes: Vec<String> = (0..8).map(|i| format!("c{i}")).collect();
    let cfg = vit
        .clone()
        .with_num_classes(classes.len())
        .with_global_pool(GlobalPool::Mean);
    let model = ExpressionModel::from_parts(
        cfg.init(device),
        ModelConfig::new("bench", cfg.clone(), classes),
        device,
    );
    let mut rng = StdRng::seed_from_u64(0);
    let s = vit.image_size as u32;
    let crops: Vec<image::RgbImage> = (0..batch)
        .map(|_| {
            image::RgbImage::from_fn(s, s, |_, _| {
                image::Rgb([rng.random(), rng.random(), rng.random()])
            })
        })
        .collect();
    timed(batch, seconds / 2.0, || {
        let _ = model.predict_probs(&crops);
    })
}
