//! `mimic analyze`: arguments → validated run → pipeline → summary. One output file
//! for all inputs here; one per input with `--out-dir` ([`crate::out_dir`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use mimic::batch::{Shard, output_names};
use mimic::decode::{InputSpec, expand_inputs, open};
use mimic::device::{DeviceChoice, select_device};
use mimic::model::ExpressionModel;
use mimic::model_choice::{FAST_MODEL, ModelRequest, choose_model};
use mimic::mtcnn::{FaceDetector, MtcnnConfig};
use mimic::pipeline::{
    self, FaceFinder, PipelineOptions, ReconnectPolicy, RunSummary, StopFlag, TrackingOptions,
};
use mimic::report::{RunInfo, write_report};
use mimic::sink::{AnnotatedVideoSink, CsvSink, JsonlSink, ParquetSink, PreviewSink, Sink};
use mimic::track::{ShotCutConfig, SmootherConfig, TrackerConfig};

use crate::cli::{AnalyzeArgs, MinFace, OutputFormat};
use crate::progress::{ProgressReport, print_summary};

/// Folder of the MTCNN weights under `models/`.
pub const DETECTOR_MODEL: &str = "mtcnn";

/// One input of the run: its place in the whole input list (before `--shard`) and its
/// output file name under `--out-dir`.
pub struct PlannedInput {
    pub index: usize,
    pub spec: InputSpec,
    pub output_name: String,
}

/// Where the rows go.
pub enum Destination {
    /// Every input's rows into one file (`-o`, `-` for standard output).
    File(PathBuf),
    /// One file per input, and a manifest (`--out-dir`).
    Folder { dir: PathBuf, resume: bool },
}

/// Everything `analyze` needs, checked before any model is loaded.
pub struct AnalyzeRun {
    pub inputs: Vec<PlannedInput>,
    pub destination: Destination,
    pub shard: Option<Shard>,
    pub format: OutputFormat,
    model: ModelRequest,
    detector_dir: PathBuf,
    detector: MtcnnConfig,
    device: DeviceChoice,
    pub options: PipelineOptions,
    crops: bool,
    annotate: Option<PathBuf>,
    report: Option<PathBuf>,
    preview: bool,
    pub quiet: bool,
}

impl AnalyzeRun {
    fn from_args(args: AnalyzeArgs) -> Result<Self> {
        let mut names = args.inputs.clone();
        if let Some(list) = &args.inputs_from {
            names.extend(read_input_list(list)?);
        }
        let mut inputs = if names.is_empty() {
            Vec::new()
        } else {
            expand_inputs(&names)?
        };
        if let Some(cam) = &args.webcam {
            inputs.push(InputSpec::webcam(cam));
        }
        if inputs.is_empty() {
            bail!("nothing to analyse: give video files, folders, images or URLs, or --webcam N");
        }
        if args.out_dir.is_some() && (args.annotate.is_some() || args.preview) {
            bail!("--annotate and --preview draw one input; they do not go with --out-dir");
        }
        if args.crops && inputs.iter().any(|i| !matches!(i, InputSpec::Still(_))) {
            bail!("--crops takes images of faces only (no videos, streams or webcams)");
        }
        if args.batch == 0 {
            bail!("--batch must be at least 1");
        }
        let detector = MtcnnConfig {
            thresholds: [args.thresholds[0], args.thresholds[1], args.thresholds[2]],
            factor: f64::from(args.pyramid_factor),
            ..match args.min_face {
                MinFace::Pixels(px) => MtcnnConfig {
                    min_face_size: px,
                    ..MtcnnConfig::default()
                },
                MinFace::OfShortSide(n) => MtcnnConfig {
                    min_face_divisor: Some(n),
                    ..MtcnnConfig::analyzer_default()
                },
            }
        };
        detector.validate()?;
        if !(args.stall_timeout.is_finite() && args.stall_timeout > 0.0) {
            bail!("--stall-timeout must be a positive number of seconds");
        }
        let stall_timeout = std::time::Duration::from_secs_f64(args.stall_timeout);
        let format = args.format.unwrap_or_else(|| match &args.out_dir {
            Some(_) => OutputFormat::Csv,
            None => format_from_extension(&args.output),
        });
        let live = args.live || inputs.iter().any(InputSpec::is_live_hint);
        // Names over the whole list, then the shard: every worker names an input alike.
        let extension = match format {
            OutputFormat::Csv => "csv",
            OutputFormat::Jsonl => "jsonl",
            OutputFormat::Parquet => "parquet",
        };
        let file_names = output_names(&inputs, extension);
        let inputs: Vec<PlannedInput> = inputs
            .into_iter()
            .zip(file_names)
            .enumerate()
            .map(|(index, (spec, output_name))| PlannedInput {
                index,
                spec,
                output_name,
            })
            .filter(|p| {
                args.shard
                    .is_none_or(|s| s.takes(p.spec.source_id().as_str()))
            })
            .collect();
        if args.report.is_some()
            && (args.out_dir.is_some() || args.output == "-" || format == OutputFormat::Parquet)
        {
            bail!(
                "--report reads the rows back: it needs -o FILE in CSV or JSON Lines (not -, Parquet or --out-dir; use mimic report on each output)"
            );
        }
        let destination = match args.out_dir {
            Some(dir) => Destination::Folder {
                dir,
                resume: args.resume,
            },
            None => Destination::File(PathBuf::from(&args.output)),
        };
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
            destination,
            shard: args.shard,
            format,
            model: args.model.unwrap_or_default(),
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
                stall_timeout,
                reconnect: ReconnectPolicy {
                    attempts: args.reconnect,
                },
            },
            crops: args.crops,
            annotate: args.annotate,
            report: args.report,
            preview: args.preview,
            quiet: args.quiet,
        })
    }
}

/// The lines of an `--inputs-from` file (`-`: standard input): blank lines and `#`
/// comments skipped, surrounding spaces trimmed.
fn read_input_list(list: &str) -> Result<Vec<String>> {
    let text = if list == "-" {
        std::io::read_to_string(std::io::stdin())
            .context("reading the input list from standard input")?
    } else {
        std::fs::read_to_string(list)
            .with_context(|| format!("--inputs-from {list}: cannot read it"))?
    };
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if lines.is_empty() {
        bail!("--inputs-from {list}: no inputs in it");
    }
    Ok(lines)
}

fn format_from_extension(output: &str) -> OutputFormat {
    match Path::new(output).extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("jsonl") || ext.eq_ignore_ascii_case("ndjson") => {
            OutputFormat::Jsonl
        }
        Some(ext) if ext.eq_ignore_ascii_case("parquet") => OutputFormat::Parquet,
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
    if local.join(FAST_MODEL).is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

pub fn run(args: AnalyzeArgs) -> Result<ExitCode> {
    let run = AnalyzeRun::from_args(args)?;
    if run.inputs.is_empty() {
        let shard = run
            .shard
            .map_or_else(String::new, |s| format!(" (shard {s})"));
        eprintln!("mimic: no input falls to this worker{shard}: nothing to do");
        return Ok(ExitCode::SUCCESS);
    }
    let device = select_device(run.device)?;
    let chosen = choose_model(&run.model, &models_dir(), device.is_gpu)?;
    let model = ExpressionModel::load(&chosen.dir, &device.burn)
        .with_context(|| format!("loading the expression model from {}", chosen.dir.display()))?;
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
    let (model, finder) = (Arc::new(model), Arc::new(finder));
    let written_to = match &run.destination {
        Destination::File(path) => path.display().to_string(),
        Destination::Folder { dir, .. } => format!("one file per input into {}", dir.display()),
    };
    if !run.quiet {
        eprintln!(
            "mimic: {} input(s) on {}; model {chosen}, {} classes; writing {written_to}",
            run.inputs.len(),
            device.description,
            model.classes().len(),
        );
    }
    match &run.destination {
        Destination::Folder { dir, resume } => {
            let stop = StopFlag::new();
            install_stop_handler(&stop)?;
            crate::out_dir::run_folder(&run, dir, *resume, finder, model, &stop)
        }
        Destination::File(output) => {
            let (mut sinks, preview_stop) = open_sinks(&run, output, model.classes())?;
            // Closing the preview window stops the run like Ctrl-C does.
            let stop = preview_stop.map(StopFlag::from_shared).unwrap_or_default();
            install_stop_handler(&stop)?;
            let specs: Vec<InputSpec> = run.inputs.iter().map(|p| p.spec.clone()).collect();
            let model_config = model.config().clone();
            let mut progress = ProgressReport::new(run.quiet, &specs);
            let outcome = pipeline::run(
                specs,
                finder,
                model,
                run.options.clone(),
                &mut sinks,
                &stop,
                &mut progress,
            );
            drop(progress);
            let summary = outcome?;
            if !run.quiet {
                print_summary(&summary);
            }
            if let Some(report) = &run.report {
                let info = RunInfo {
                    device: Some(device.description.clone()),
                    frames_per_second: Some(summary.frames_per_second()),
                    seconds: Some(summary.elapsed.as_secs_f64()),
                    ..RunInfo::from_model(&model_config)
                };
                write_report(output, report, &info)
                    .with_context(|| format!("writing the report {}", report.display()))?;
                if !run.quiet {
                    eprintln!("mimic: report written to {}", report.display());
                }
            }
            exit_code(
                &summary,
                "rows of every frame decoded before a failure were written",
            )
        }
    }
}

/// A run's exit code: an error naming the failed inputs (`kept` says where their rows
/// are), 130 when stopped by a signal, else success.
pub fn exit_code(summary: &RunSummary, kept: &str) -> Result<ExitCode> {
    if !summary.failures.is_empty() {
        let names: Vec<&str> = summary.failures.iter().map(|f| f.input.as_str()).collect();
        bail!(
            "{} input(s) failed ({kept}): {}",
            names.len(),
            names.join(", ")
        );
    }
    Ok(if summary.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// Ctrl-C and SIGTERM raise `stop`: the stages drain and every row produced is written.
/// A second signal while draining ends the process at once; rows are flushed per
/// frame, so the file is still complete up to that frame.
fn install_stop_handler(stop: &StopFlag) -> Result<()> {
    let stop = stop.clone();
    ctrlc::set_handler(move || {
        if stop.is_raised() {
            std::process::exit(130);
        }
        stop.raise();
    })
    .context("installing the Ctrl-C / SIGTERM handler")
}

/// Creates every sink before any frame is decoded, so that an unwritable path
/// fails at once. Also returns the preview window's stop flag, if any.
fn open_sinks(
    run: &AnalyzeRun,
    output: &Path,
    classes: &[String],
) -> Result<(Vec<Box<dyn Sink>>, Option<Arc<AtomicBool>>)> {
    let mut sinks = vec![rows_sink(run, output, classes)?];
    if let Some(path) = &run.annotate {
        // The video takes the input's size and frame rate: open it once to learn them.
        let [input] = run.inputs.as_slice() else {
            bail!("--annotate draws one input: give exactly one video");
        };
        let info = open(&input.spec)?.info();
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

/// The CSV or JSON Lines sink of the run's format at `output`.
pub fn rows_sink(run: &AnalyzeRun, output: &Path, classes: &[String]) -> Result<Box<dyn Sink>> {
    let smoothed = run.options.tracking.is_some();
    Ok(match run.format {
        OutputFormat::Csv => Box::new(CsvSink::create(output, classes, smoothed)?),
        OutputFormat::Jsonl => Box::new(JsonlSink::create(output, classes, smoothed)?),
        OutputFormat::Parquet => Box::new(ParquetSink::create(output, classes, smoothed)?),
    })
}
