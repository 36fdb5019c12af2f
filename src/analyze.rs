//! `mimic analyze`: arguments → validated run → pipeline → summary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use mimic::decode::{InputSpec, expand_inputs, open};
use mimic::device::{DeviceChoice, select_device};
use mimic::model::ExpressionModel;
use mimic::mtcnn::{FaceDetector, MtcnnConfig};
use mimic::pipeline::{self, FaceFinder, PipelineOptions, StopFlag, TrackingOptions};
use mimic::sink::{AnnotatedVideoSink, CsvSink, JsonlSink, PreviewSink, Sink};
use mimic::track::{ShotCutConfig, SmootherConfig, TrackerConfig};

use crate::cli::{AnalyzeArgs, OutputFormat};
use crate::progress::{ProgressReport, print_summary};

/// Name of the shipped default expression model under `models/`.
pub const DEFAULT_MODEL: &str = "mimic-ferplus";
/// Folder of the MTCNN weights under `models/`.
pub const DETECTOR_MODEL: &str = "mtcnn";

/// Everything `analyze` needs, checked before any model is loaded.
struct AnalyzeRun {
    inputs: Vec<InputSpec>,
    output: PathBuf,
    format: OutputFormat,
    model_dir: PathBuf,
    detector_dir: PathBuf,
    detector: MtcnnConfig,
    device: DeviceChoice,
    options: PipelineOptions,
    crops: bool,
    annotate: Option<PathBuf>,
    preview: bool,
    quiet: bool,
}

impl AnalyzeRun {
    fn from_args(args: AnalyzeArgs) -> Result<Self> {
        let mut inputs = if args.inputs.is_empty() {
            Vec::new()
        } else {
            expand_inputs(&args.inputs)?
        };
        if let Some(cam) = &args.webcam {
            inputs.push(InputSpec::webcam(cam));
        }
        if inputs.is_empty() {
            bail!("nothing to analyse: give video files, folders, images or URLs, or --webcam N");
        }
        if args.crops && inputs.iter().any(|i| !matches!(i, InputSpec::Still(_))) {
            bail!("--crops takes images of faces only (no videos, streams or webcams)");
        }
        if args.batch == 0 {
            bail!("--batch must be at least 1");
        }
        let detector = MtcnnConfig {
            min_face_size: f64::from(args.min_face),
            thresholds: [args.thresholds[0], args.thresholds[1], args.thresholds[2]],
            factor: f64::from(args.pyramid_factor),
        };
        detector.validate()?;
        let format = args
            .format
            .unwrap_or_else(|| format_from_extension(&args.output));
        let live = args.live || inputs.iter().any(InputSpec::is_live_hint);
        let tracking = if args.crops || args.no_track {
            None
        } else {
            let options = TrackingOptions {
                tracker: TrackerConfig::default(),
                smoother: SmootherConfig {
                    half_life_ms: args.smooth_half_life_ms,
                },
                shot_cuts: Some(ShotCutConfig::default()),
            };
            options.smoother.validate()?;
            Some(options)
        };
        Ok(Self {
            inputs,
            output: PathBuf::from(&args.output),
            format,
            model_dir: args
                .model
                .unwrap_or_else(|| models_dir().join(DEFAULT_MODEL)),
            detector_dir: args
                .detector
                .unwrap_or_else(|| models_dir().join(DETECTOR_MODEL)),
            detector,
            device: args.device,
            options: PipelineOptions {
                live,
                batch_faces: args.batch,
                keep_images: args.annotate.is_some() || args.preview,
                keep_going: args.keep_going,
                tracking,
                queue_frames: 4,
                detect_every: args.detect_every,
                detect_batch: args.detect_batch,
            },
            crops: args.crops,
            annotate: args.annotate,
            preview: args.preview,
            quiet: args.quiet,
        })
    }
}

fn format_from_extension(output: &str) -> OutputFormat {
    match Path::new(output).extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("jsonl") || ext.eq_ignore_ascii_case("ndjson") => {
            OutputFormat::Jsonl
        }
        _ => OutputFormat::Csv,
    }
}

/// The folder holding the shipped models: `$MIMIC_MODELS`, else `./models`
/// when it exists, else the `models/` folder of the source tree this binary
/// was built from.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MIMIC_MODELS") {
        return PathBuf::from(dir);
    }
    let local = PathBuf::from("models");
    if local.join(DEFAULT_MODEL).is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

pub fn run(args: AnalyzeArgs) -> Result<ExitCode> {
    let run = AnalyzeRun::from_args(args)?;
    let device = select_device(run.device)?;
    let model = ExpressionModel::load(&run.model_dir, &device.burn).with_context(|| {
        format!(
            "loading the expression model from {}",
            run.model_dir.display()
        )
    })?;
    let finder = if run.crops {
        FaceFinder::WholeImage
    } else {
        FaceFinder::Detect(
            FaceDetector::load(&run.detector_dir, run.detector.clone(), &device.burn)
                .with_context(|| {
                    format!(
                        "loading the MTCNN face detector from {}",
                        run.detector_dir.display()
                    )
                })?,
        )
    };
    let (mut sinks, preview_stop) = open_sinks(&run, model.classes())?;
    // Closing the preview window stops the run like Ctrl-C does.
    let stop = preview_stop.map(StopFlag::from_shared).unwrap_or_default();
    {
        let stop = stop.clone();
        // A second Ctrl-C while draining ends the process at once; rows are
        // flushed per frame, so the file is still complete up to that frame.
        ctrlc::set_handler(move || {
            if stop.is_raised() {
                std::process::exit(130);
            }
            stop.raise();
        })
        .context("installing the Ctrl-C handler")?;
    }
    if !run.quiet {
        eprintln!(
            "mimic: {} input(s) on {}; model {} ({} classes); writing {}",
            run.inputs.len(),
            device.description,
            run.model_dir.display(),
            model.classes().len(),
            run.output.display()
        );
    }

    let mut progress = ProgressReport::new(run.quiet, &run.inputs);
    let outcome = pipeline::run(
        run.inputs,
        finder,
        model,
        run.options,
        &mut sinks,
        &stop,
        &mut progress,
    );
    drop(progress);
    let summary = outcome?;
    if !run.quiet {
        print_summary(&summary);
    }
    if !summary.failures.is_empty() {
        bail!(
            "{} input(s) failed (rows of every frame decoded before a failure were written): {}",
            summary.failures.len(),
            summary
                .failures
                .iter()
                .map(|f| f.input.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(if summary.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// Creates every sink before any frame is decoded, so that an unwritable path
/// fails at once. Also returns the preview window's stop flag, if any.
fn open_sinks(
    run: &AnalyzeRun,
    classes: &[String],
) -> Result<(Vec<Box<dyn Sink>>, Option<Arc<AtomicBool>>)> {
    let smoothed = run.options.tracking.is_some();
    let mut sinks: Vec<Box<dyn Sink>> = vec![match run.format {
        OutputFormat::Csv => Box::new(CsvSink::create(&run.output, classes, smoothed)?),
        OutputFormat::Jsonl => Box::new(JsonlSink::create(&run.output, classes, smoothed)?),
    }];
    if let Some(path) = &run.annotate {
        // The video takes the input's size and frame rate: open it once to learn them.
        let [input] = run.inputs.as_slice() else {
            bail!("--annotate draws one input: give exactly one video");
        };
        let info = open(input)?.info();
        sinks.push(Box::new(AnnotatedVideoSink::create(
            path,
            info.fps,
            info.width,
            info.height,
            classes,
        )?));
    }
    let mut preview_stop = None;
    if run.preview {
        let preview = PreviewSink::create("mimic", classes)?;
        preview_stop = Some(preview.stop_flag());
        sinks.push(Box::new(preview));
    }
    Ok((sinks, preview_stop))
}
