//! `mimic bench`: throughput of the analyzer on this machine.
//!
//! 1. The expression model alone: faces/s at each `--vit-batches` size.
//! 2. End to end: the real pipeline on a video (looped to `--frames`), tracking on as in
//!    `analyze`, rows kept in memory, with frames/s, busy time per stage (the tracker's
//!    beside the detector's) and memory (peak RSS, and RSS sampled each second to show
//!    whether it stays flat); once per `--detect-every` value, each compared with the
//!    first: the share of its faces found again, and of those, with the same label.

use std::num::NonZeroUsize;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mimic::decode::{InputSpec, SourceInfo, open};
use mimic::device::select_device;
use mimic::geometry::BBox;
use mimic::model::ExpressionModel;
use mimic::model_choice::choose_model;
use mimic::mtcnn::{FaceDetector, MtcnnConfig};
use mimic::pipeline::{
    self, FaceFinder, InputFailure, PipelineOptions, ProgressObserver, StopFlag, TrackingOptions,
};
use mimic::record::{FrameResult, argmax};
use mimic::sink::{Sink, SinkError};
use mimic::track::{ShotCutConfig, SmootherConfig, TrackerConfig};

use crate::analyze::{DETECTOR_MODEL, models_dir};
use crate::cli::BenchArgs;
use crate::progress::print_summary;

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let device = select_device(args.device)?;
    let model_dir = choose_model(
        &args.model.unwrap_or_default(),
        &models_dir(),
        device.is_gpu,
    )?
    .dir;
    let detector_dir = args
        .detector
        .unwrap_or_else(|| models_dir().join(DETECTOR_MODEL));
    println!("device: {}", device.description);
    println!(
        "threads: {}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let load = || {
        ExpressionModel::load(&model_dir, &device.burn)
            .with_context(|| format!("loading {}", model_dir.display()))
    };
    bench_model(&load()?, &args.vit_batches);
    bench_head_pose();

    if let Some(video) = args.video {
        let mut reference: Option<(NonZeroUsize, Vec<Vec<FaceLabel>>)> = None;
        for &every in &args.detect_every {
            let detector =
                FaceDetector::load(&detector_dir, MtcnnConfig::analyzer_default(), &device.burn)
                    .with_context(|| format!("loading {}", detector_dir.display()))?;
            let faces = bench_pipeline(
                &video,
                args.frames,
                every,
                FaceFinder::Detect(detector),
                load()?,
            )?;
            match &reference {
                None => reference = Some((every, faces)),
                Some((first, expected)) => {
                    let (found, same) = agreement(expected, &faces);
                    println!(
                        "detect-every {every} vs {first}: {:.1} % of the faces found again, \
                         {:.1} % of those with the same label",
                        found * 100.0,
                        same * 100.0
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Faces/s of the expression model alone on synthetic crops, per batch size.
fn bench_model(model: &ExpressionModel, batches: &[usize]) {
    let size = model.input_size();
    for &batch in batches {
        let crops: Vec<_> = (0..batch)
            .map(|i| {
                image::RgbImage::from_fn(size, size, |x, y| {
                    image::Rgb([(x * 7 + y * 3 + i as u32) as u8; 3])
                })
            })
            .collect();
        model.predict(&crops); // warm-up (and autotune on a GPU)
        let started = Instant::now();
        let mut faces = 0;
        while started.elapsed() < Duration::from_secs(3) || faces < 4 * batch {
            model.predict(&crops);
            faces += batch;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "model: batch {batch:>4}: {:>8.1} faces/s  ({:.2} ms per batch)",
            faces as f64 / secs,
            secs * 1e3 * batch as f64 / faces as f64
        );
    }
}

/// The cost of the head-pose solve per face, on the projected 3-D template at poses
/// spread over ±45° yaw, ±30° pitch, ±20° roll (what the track stage does for every face).
fn bench_head_pose() {
    use mimic::head_pose::{HeadPose, estimate_head_pose, project_template};
    let faces: Vec<_> = (0..500)
        .map(|i| {
            let t = i as f32 / 500.0;
            let pose = HeadPose {
                yaw: 90.0 * t - 45.0,
                pitch: 30.0 * (7.0 * t).sin(),
                roll: 20.0 * (3.0 * t).cos(),
            };
            project_template(
                pose,
                600.0 + 400.0 * f64::from(t),
                [640.0, 360.0],
                1280,
                720,
            )
        })
        .collect();
    let started = Instant::now();
    let mut solved = 0usize;
    while started.elapsed() < Duration::from_secs(2) {
        for lm in &faces {
            solved += usize::from(estimate_head_pose(lm, 1280, 720).is_some());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "head pose: {:.1} µs per face ({solved} solves, one thread)",
        secs * 1e6 / solved.max(1) as f64
    );
}

/// The real pipeline over `video` repeated until `frames` frames; returns the faces of
/// every frame, in order.
fn bench_pipeline(
    video: &Path,
    frames: u64,
    detect_every: NonZeroUsize,
    finder: FaceFinder,
    model: ExpressionModel,
) -> Result<Vec<Vec<FaceLabel>>> {
    let spec = InputSpec::Video(video.to_path_buf());
    let per_pass = count_frames(&spec)?;
    if per_pass == 0 {
        bail!("{}: no frames", video.display());
    }
    let passes = frames.div_ceil(per_pass).max(1);
    let inputs = vec![spec; passes as usize];
    println!(
        "pipeline: {} x {} frames of {}, detect-every {detect_every}",
        passes,
        per_pass,
        video.display()
    );

    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while sampling.load(Ordering::Relaxed) {
                samples.push(rss_mib("VmRSS"));
                std::thread::sleep(Duration::from_secs(1));
            }
            samples
        })
    };
    let options = PipelineOptions {
        live: false,
        batch_faces: 32,
        keep_images: false,
        keep_going: false,
        tracking: Some(TrackingOptions {
            tracker: TrackerConfig::default(),
            smoother: SmootherConfig::default(),
            shot_cuts: Some(ShotCutConfig::default()),
        }),
        queue_frames: 4,
        detect_every,
        detect_batch: None,
        stall_timeout: mimic::decode::DecodeOptions::default().stall_timeout,
        reconnect: Default::default(),
    };
    let collected = Arc::new(Mutex::new(Vec::new()));
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(CollectFaces(collected.clone()))];
    let summary = pipeline::run(
        inputs,
        Arc::new(finder),
        Arc::new(model),
        options,
        &mut sinks,
        &StopFlag::new(),
        &mut Quiet,
    )?;
    sampling.store(false, Ordering::Relaxed);
    let samples = sampler.join().unwrap_or_default();
    print_summary(&summary);
    println!(
        "pipeline: {} frames, {} faces, {:.2} s, {:.1} frames/s",
        summary.frames,
        summary.faces,
        summary.elapsed.as_secs_f64(),
        summary.frames_per_second()
    );
    for (stage, busy) in &summary.stage_busy {
        println!(
            "stage {:>7}: {:>7.2} ms/frame busy",
            stage.name(),
            busy.as_secs_f64() * 1e3 / summary.frames.max(1) as f64
        );
    }
    // RSS after the first tenth of the run (models loaded, queues full) vs at the end.
    let warm = samples.len() / 10;
    if let (Some(first), Some(max)) = (
        samples.get(warm),
        samples.iter().skip(warm).copied().reduce(f64::max),
    ) {
        println!(
            "memory: RSS {first:.0} MiB after warm-up, max {max:.0} MiB later, peak (VmHWM) {:.0} MiB",
            rss_mib("VmHWM")
        );
    } else {
        println!("memory: peak RSS (VmHWM) {:.0} MiB", rss_mib("VmHWM"));
    }
    let faces = std::mem::take(&mut *collected.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(faces)
}

/// A face's box and raw label, as a run wrote it.
struct FaceLabel {
    bbox: BBox,
    label: usize,
}

/// Of the faces of `expected` (frame by frame), the share that `actual` has too (IoU ≥
/// 0.5, greedy), and of those the share with the same label.
fn agreement(expected: &[Vec<FaceLabel>], actual: &[Vec<FaceLabel>]) -> (f64, f64) {
    let (mut total, mut found, mut same) = (0usize, 0usize, 0usize);
    for (want, got) in expected.iter().zip(actual) {
        let mut taken = vec![false; got.len()];
        for face in want {
            total += 1;
            let best = got
                .iter()
                .enumerate()
                .filter(|(i, _)| !taken[*i])
                .map(|(i, g)| (i, face.bbox.iou(&g.bbox)))
                .filter(|&(_, overlap)| overlap >= 0.5)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((i, _)) = best {
                taken[i] = true;
                found += 1;
                same += usize::from(got[i].label == face.label);
            }
        }
    }
    let share = |n: usize, of: usize| if of == 0 { 1.0 } else { n as f64 / of as f64 };
    (share(found, total), share(same, found))
}

fn count_frames(spec: &InputSpec) -> Result<u64> {
    let source = open(spec)?;
    let mut n = 0;
    for frame in source {
        frame?;
        n += 1;
    }
    Ok(n)
}

/// A `/proc/self/status` memory field (VmRSS, VmHWM) in MiB; 0 where unavailable.
fn rss_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|line| {
                    line.split_whitespace()
                        .nth(1)
                        .and_then(|kb| kb.parse::<f64>().ok())
                })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Keeps each frame's boxes and labels.
struct CollectFaces(Arc<Mutex<Vec<Vec<FaceLabel>>>>);

impl Sink for CollectFaces {
    fn write(&mut self, frame: &FrameResult) -> Result<(), SinkError> {
        let faces = frame
            .faces
            .iter()
            .map(|f| FaceLabel {
                bbox: f.detection.bbox,
                label: argmax(&f.probs).0,
            })
            .collect();
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(faces);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

struct Quiet;

impl ProgressObserver for Quiet {
    fn input_started(&mut self, _: &SourceInfo) {}
    fn frame_written(&mut self, _: &FrameResult) {}
    fn input_failed(&mut self, failure: &InputFailure) {
        eprintln!("bench: {}", failure.message);
    }
}
