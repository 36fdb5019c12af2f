//! `mimic bench`: throughput of the analyzer on this machine.
//!
//! 1. End to end: the real pipeline on a video (looped to `--frames`), rows
//!    discarded, with frames/s, busy time per stage and memory (peak RSS, and
//!    RSS sampled each second to show whether it stays flat).
//! 2. The expression model alone: faces/s at each `--vit-batches` size.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mimic::decode::{InputSpec, SourceInfo, open};
use mimic::device::select_device;
use mimic::model::ExpressionModel;
use mimic::mtcnn::{FaceDetector, MtcnnConfig};
use mimic::pipeline::{
    self, FaceFinder, InputFailure, PipelineOptions, ProgressObserver, StopFlag,
};
use mimic::record::FrameResult;
use mimic::sink::{Sink, SinkError};

use crate::analyze::{DEFAULT_MODEL, DETECTOR_MODEL, models_dir};
use crate::cli::BenchArgs;
use crate::progress::print_summary;

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let device = select_device(args.device)?;
    let model_dir = args
        .model
        .unwrap_or_else(|| models_dir().join(DEFAULT_MODEL));
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

    if let Some(video) = args.video {
        let detector = FaceDetector::load(&detector_dir, MtcnnConfig::default(), &device.burn)
            .with_context(|| format!("loading {}", detector_dir.display()))?;
        bench_pipeline(video, args.frames, FaceFinder::Detect(detector), load()?)?;
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

/// The real pipeline over `video` repeated until `frames` frames, to a sink
/// that drops rows.
fn bench_pipeline(
    video: PathBuf,
    frames: u64,
    finder: FaceFinder,
    model: ExpressionModel,
) -> Result<()> {
    let spec = InputSpec::Video(video.clone());
    let per_pass = count_frames(&spec)?;
    if per_pass == 0 {
        bail!("{}: no frames", video.display());
    }
    let passes = frames.div_ceil(per_pass).max(1);
    let inputs = vec![spec; passes as usize];
    println!(
        "pipeline: {} x {} frames of {}",
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
        tracking: None,
        queue_frames: 4,
    };
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(DiscardRows)];
    let summary = pipeline::run(
        inputs,
        finder,
        model,
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
    Ok(())
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

struct DiscardRows;

impl Sink for DiscardRows {
    fn write(&mut self, _: &FrameResult) -> Result<(), SinkError> {
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
