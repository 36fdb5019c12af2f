//! GPU benchmarks, run by `scripts/gpu_bench.sh` on a lent GPU (ignored in normal test
//! runs: they measure, they do not check). Each prints one JSON line per figure, also
//! appended to `$MIMIC_BENCH_OUT` when set.
//!
//! - `bench_vit`: ViT images/s at batch 1, 64 and 256, for the default model's shape
//!   (`$MIMIC_BENCH_MODEL`, a package folder; else the first package under `models/`)
//!   and for ViT-S/16 at 224 px (the shape of the PyTorch anchor figures);
//! - `bench_shaders`: the pre-processing shaders alone (colour conversion, pyramid, crops);
//! - `bench_end_to_end`: batch mode on the frames of a clip looped to
//!   `$MIMIC_BENCH_FRAMES` (default 3000): upload → MTCNN on wgpu → GPU face crops → ViT,
//!   frames/s and seconds per stage, the analyzer's GPU path (`FaceDetector::
//!   detect_on_device`, `gpu::face_crops`, `ExpressionModel`). The frames come decoded, as raw
//!   RGB24 in `$MIMIC_BENCH_RAW` (`$MIMIC_BENCH_RAW_SIZE` = `WxH`; the script writes them
//!   with OpenCV on the GPU machine): decoding is a CPU stage measured on its own, and
//!   keeping FFmpeg out of this binary keeps it small enough to carry to a lent GPU.
//!
//! The device is `--device gpu`'s choice (`MIMIC_ALLOW_SOFTWARE_GPU=1` lets it run on
//! lavapipe, for trying the benches out).

mod gpu_common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Distribution, FloatDType, Tensor};
use gpu_common::Rng;
use mimic::device::{DeviceChoice, select_device};
use mimic::gpu::area::mtcnn_pyramid;
use mimic::gpu::colour::{DecodedPicture, PixelLayout, YuvMatrix, decoded_to_rgb};
use mimic::gpu::crops::{CropStyle, FaceCrop, face_crops};
use mimic::gpu::pictures_to_rgb;
use mimic::model::{ExpressionModel, ModelConfig, read_config};
use mimic::mtcnn::boxes::pyramid_scales;
use mimic::mtcnn::{FaceDetector, MtcnnConfig};
use mimic::vit::VitConfig;
use serde_json::json;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn device() -> (Device, String) {
    let d = select_device(DeviceChoice::Gpu).expect("the benchmarks need a GPU adapter");
    (d.burn, d.description)
}

fn record(value: serde_json::Value) {
    let line = value.to_string();
    println!("{line}");
    if let Ok(path) = std::env::var("MIMIC_BENCH_OUT") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(f, "{line}").unwrap();
    }
}

/// Runs `step` until at least `budget` has passed (after `warmup` untimed runs, which
/// also let burn's autotuner settle); returns (runs, seconds).
fn time_loop(warmup: usize, budget: Duration, mut step: impl FnMut()) -> (usize, f64) {
    for _ in 0..warmup {
        step();
    }
    let start = Instant::now();
    let mut runs = 0;
    while runs == 0 || start.elapsed() < budget {
        step();
        runs += 1;
    }
    (runs, start.elapsed().as_secs_f64())
}

/// The default model's package: `$MIMIC_BENCH_MODEL`, else the first folder under
/// `models/` with a model `config.json`.
fn default_package() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("MIMIC_BENCH_MODEL") {
        return Some(PathBuf::from(dir));
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("models"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| read_config(&p.join("config.json")).is_ok())
        .collect();
    dirs.sort();
    dirs.into_iter().next()
}

fn vit_s16() -> ModelConfig {
    let vit = VitConfig::small().with_num_classes(8);
    ModelConfig::new(
        "vit-s16-224-random",
        vit,
        (0..8).map(|i| format!("c{i}")).collect(),
    )
}

#[test]
#[ignore = "benchmark: run by scripts/gpu_bench.sh"]
fn bench_vit() {
    let (mut device, description) = device();
    // `MIMIC_BENCH_PRECISION=f16|bf16` runs the networks in half precision (set before any
    // tensor exists on the device, which fixes its float type).
    let precision = std::env::var("MIMIC_BENCH_PRECISION").unwrap_or_else(|_| "f32".into());
    let dtype = match precision.as_str() {
        "f16" => Some(FloatDType::F16),
        "bf16" => Some(FloatDType::BF16),
        _ => None,
    };
    if let Some(dtype) = dtype {
        if !device.supports_dtype(dtype) {
            record(
                json!({"bench": "vit", "precision": precision, "skipped": "not supported by the device"}),
            );
            return;
        }
        device
            .configure(dtype)
            .expect("configure the float type before any tensor");
    }
    let mut models: Vec<(String, ExpressionModel)> = Vec::new();
    if let Some(dir) = default_package() {
        match ExpressionModel::load(&dir, &device) {
            Ok(m) => models.push((format!("default ({})", dir.display()), m)),
            Err(e) => eprintln!("default model {} not loaded: {e}", dir.display()),
        }
    }
    // `MIMIC_BENCH_VIT_BATCHES=1,64` (default 1,64,256): fewer sizes for a smoke run on a
    // software adapter.
    let vit_batches: Vec<usize> = std::env::var("MIMIC_BENCH_VIT_BATCHES")
        .unwrap_or_else(|_| "1,64,256".into())
        .split(',')
        .map(|b| {
            b.trim()
                .parse()
                .expect("MIMIC_BENCH_VIT_BATCHES: batch sizes, comma-separated")
        })
        .collect();
    let s16 = vit_s16();
    models.push((
        "ViT-S/16 224 (random weights)".into(),
        ExpressionModel::from_parts(s16.vit.init(&device), s16, &device),
    ));
    for (name, model) in &models {
        let size = model.input_size() as usize;
        for &batch in &vit_batches {
            let input = Tensor::<4>::random(
                [batch, 3, size, size],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let (runs, secs) = time_loop(3, Duration::from_secs(3), || {
                let probs = softmax(model.vit().forward(input.clone()), 1);
                let _ = probs.into_data();
            });
            record(json!({
                "bench": "vit", "model": name, "vit": model.config().vit, "batch": batch,
                "images_per_s": (runs * batch) as f64 / secs, "ms_per_batch": 1e3 * secs / runs as f64,
                "device": description, "precision": precision,
            }));
        }
    }
}

#[test]
#[ignore = "benchmark: run by scripts/gpu_bench.sh"]
fn bench_shaders() {
    let (device, description) = device();
    let mut rng = Rng::new(1);
    let (w, h) = (640u32, 360u32);
    let (cw, ch) = (w as usize / 2, h as usize / 2);
    let pictures: Vec<DecodedPicture> = (0..64)
        .map(|_| {
            let (y, u, v) = (
                rng.bytes((w * h) as usize),
                rng.bytes(cw * ch),
                rng.bytes(cw * ch),
            );
            DecodedPicture::from_planes(
                PixelLayout::Yuv420p,
                w,
                h,
                &[(&y, w as usize), (&u, cw), (&v, cw)],
                YuvMatrix::bt709(false),
            )
            .unwrap()
        })
        .collect();
    // burn runs the kernels lazily: reading one value of each output makes every timed
    // step run them (a device sync alone measured nothing on lavapipe: 135k frames/s).
    let read_one = |t: &Tensor<4>| {
        let _ = t.clone().slice([0..1, 0..1, 0..1, 0..1]).into_data();
    };
    let (runs, secs) = time_loop(2, Duration::from_secs(2), || {
        for p in &pictures {
            let rgb = decoded_to_rgb(p, &device).unwrap();
            read_one(&rgb.unsqueeze());
        }
    });
    record(
        json!({"bench": "shader", "stage": "decoded_to_rgb (yuv420p 640x360, upload + convert)",
        "frames_per_s": (runs * 64) as f64 / secs, "device": description}),
    );

    // 16 frames per pyramid launch: 64 at once (177 MB of levels) is past lavapipe's
    // largest storage buffer (128 MiB).
    let batch = 16;
    let frames = pictures_to_rgb(&pictures[..batch], &device).unwrap();
    let scales = pyramid_scales(w, h, 20.0, 0.709);
    let (runs, secs) = time_loop(2, Duration::from_secs(2), || {
        for level in mtcnn_pyramid(frames.clone(), &scales).unwrap() {
            read_one(&level);
        }
    });
    record(
        json!({"bench": "shader", "stage": format!("mtcnn_pyramid ({batch} frames x {} levels, one launch)", scales.len()),
        "frames_per_s": (runs * batch) as f64 / secs, "device": description}),
    );

    // 64 faces at 224 px (38 MB; 256, 154 MB, exceed lavapipe's largest buffer).
    let faces = 64;
    let crops: Vec<FaceCrop> = (0..faces)
        .map(|i| FaceCrop {
            frame: i % batch,
            to_frame: Some(mimic::align::Similarity {
                a: 0.5,
                b: 0.1,
                tx: (i % 300) as f32,
                ty: 40.0,
            }),
        })
        .collect();
    let style = CropStyle {
        size: 224,
        grey: true,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
    let (runs, secs) = time_loop(2, Duration::from_secs(2), || {
        read_one(&face_crops(frames.clone(), &crops, &style).unwrap());
    });
    record(
        json!({"bench": "shader", "stage": format!("face_crops ({faces} faces, 224 px)"),
        "faces_per_s": (runs * faces) as f64 / secs, "device": description}),
    );
}

/// The decoded frames of the benchmark clip: `$MIMIC_BENCH_RAW` (raw RGB24 frames of
/// `$MIMIC_BENCH_RAW_SIZE` = `WxH`), else the fixture frames of `tests/fixtures/mtcnn`.
fn bench_frames() -> Vec<image::RgbImage> {
    if let (Ok(path), Ok(size)) = (
        std::env::var("MIMIC_BENCH_RAW"),
        std::env::var("MIMIC_BENCH_RAW_SIZE"),
    ) {
        let (w, h) = size.split_once('x').expect("MIMIC_BENCH_RAW_SIZE is WxH");
        let (w, h): (u32, u32) = (w.parse().unwrap(), h.parse().unwrap());
        let bytes = std::fs::read(&path).unwrap();
        let frame = (3 * w * h) as usize;
        return bytes
            .chunks_exact(frame)
            .map(|c| image::RgbImage::from_raw(w, h, c.to_vec()).unwrap())
            .collect();
    }
    let dir = root().join("tests/fixtures/mtcnn");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("frame_"))
        })
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| image::open(p).unwrap().to_rgb8())
        .collect()
}

#[test]
#[ignore = "benchmark: run by scripts/gpu_bench.sh"]
fn bench_end_to_end() {
    let (device, description) = device();
    let target: usize = std::env::var("MIMIC_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let batch: usize = std::env::var("MIMIC_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let clip = bench_frames();
    assert!(!clip.is_empty(), "no frames to benchmark");
    let detector = FaceDetector::load(
        &root().join("models/mtcnn"),
        MtcnnConfig::default(),
        &device,
    )
    .unwrap();
    let model = match default_package() {
        Some(dir) => ExpressionModel::load(&dir, &device).unwrap(),
        None => {
            let s16 = vit_s16();
            ExpressionModel::from_parts(s16.vit.init(&device), s16, &device)
        }
    };
    let template = model.face_template_px();
    let style = CropStyle::of_model(model.config());

    let mut stage = [0.0f64; 4];
    let names = [
        "upload (RGB24 + convert)",
        "detect (MTCNN on wgpu)",
        "crops (shader)",
        "infer (ViT + readback)",
    ];
    let (mut frames_done, mut faces_done) = (0usize, 0usize);
    let start = Instant::now();
    while frames_done < target {
        let n = batch.min(target - frames_done);
        let images: Vec<&image::RgbImage> = (frames_done..frames_done + n)
            .map(|i| &clip[i % clip.len()])
            .collect();

        let t = Instant::now();
        let pictures: Vec<DecodedPicture> = images
            .iter()
            .map(|im| DecodedPicture::from_rgb(im))
            .collect();
        let on_device = pictures_to_rgb(&pictures, &device).unwrap();
        stage[0] += t.elapsed().as_secs_f64();

        let t = Instant::now();
        let faces: Vec<Vec<_>> = detector
            .detect_on_device(on_device.clone())
            .unwrap()
            .into_iter()
            .map(|found| found.into_iter().map(|f| f.face).collect::<Vec<_>>())
            .collect();
        stage[1] += t.elapsed().as_secs_f64();

        let t = Instant::now();
        let requests: Vec<FaceCrop> = faces
            .iter()
            .enumerate()
            .flat_map(|(f, found)| found.iter().map(move |d| (f, d.landmarks)))
            .map(|(f, lm)| FaceCrop::from_landmarks(f, &lm, &template))
            .collect();
        let input =
            (!requests.is_empty()).then(|| face_crops(on_device, &requests, &style).unwrap());
        stage[2] += t.elapsed().as_secs_f64();

        let t = Instant::now();
        if let Some(input) = input {
            let _ = softmax(model.vit().forward(input), 1).into_data();
        }
        stage[3] += t.elapsed().as_secs_f64();
        frames_done += images.len();
        faces_done += requests.len();
    }
    let total = start.elapsed().as_secs_f64();
    let per_stage: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(stage)
        .map(|(n, s)| (n.to_string(), json!(s)))
        .collect();
    record(json!({
        "bench": "end_to_end", "distinct_frames": clip.len(), "frames": frames_done, "faces": faces_done,
        "batch": batch, "frames_per_s": frames_done as f64 / total, "seconds": total,
        "seconds_per_stage": per_stage, "model": model.config().name, "device": description,
    }));
}
