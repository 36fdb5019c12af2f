//! `mimic analyze --out-dir DIR`: each input through the pipeline on its own, its rows
//! into `DIR/.<name>.part`, renamed to `DIR/<name>` once the input is done, then one
//! manifest line (see [`mimic::batch::Manifest`]). A killed run loses at most the input
//! in progress; `--resume` skips the inputs whose output is complete and unchanged.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use mimic::batch::{InputStatus, Manifest, ManifestEntry, file_sha256, manifest_file_name};
use mimic::decode::InputSpec;
use mimic::model::ExpressionModel;
use mimic::pipeline::{self, FaceFinder, RunSummary, StopFlag};

use crate::analyze::{AnalyzeRun, PlannedInput, exit_code, rows_sink};
use crate::progress::{ProgressReport, print_summary};

/// Analyses the run's inputs into `dir`; see the module doc.
pub fn run_folder(
    run: &AnalyzeRun,
    dir: &std::path::Path,
    resume: bool,
    finder: Arc<FaceFinder>,
    model: Arc<ExpressionModel>,
    stop: &StopFlag,
) -> Result<ExitCode> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("--out-dir {}: cannot create it", dir.display()))?;
    let mut manifest = Manifest::open(dir, &manifest_file_name(run.shard))?;
    let started = Instant::now();
    let mut total = RunSummary::default();
    let (mut done, mut skipped) = (0usize, 0usize);
    for input in &run.inputs {
        if stop.is_raised() {
            break;
        }
        let source = input.spec.source_id().to_string();
        let size = input_size(&input.spec);
        if resume && manifest.is_done(&source, size) {
            skipped += 1;
            continue;
        }
        let summary = analyse_one(run, dir, input, &finder, &model, stop)?;
        let interrupted = summary.interrupted;
        if interrupted {
            // The input in progress is not finished: its .part stays out of the manifest
            // and `--resume` analyses it again.
            total.interrupted = true;
            accumulate(&mut total, summary);
            break;
        }
        let output = dir.join(&input.output_name);
        std::fs::rename(part_path(dir, input), &output)
            .with_context(|| format!("cannot rename the finished {}", output.display()))?;
        let failure = summary.failures.first().map(|f| f.message.clone());
        manifest.append(ManifestEntry {
            input: source,
            index: input.index,
            size,
            frames: summary.frames,
            faces: summary.faces,
            status: if failure.is_some() {
                InputStatus::Failed
            } else {
                InputStatus::Complete
            },
            message: failure.clone(),
            seconds: summary.elapsed.as_secs_f64(),
            output: input.output_name.clone(),
            sha256: file_sha256(&output)
                .with_context(|| format!("cannot read back {}", output.display()))?,
        })?;
        done += 1;
        accumulate(&mut total, summary);
        if failure.is_some() && !run.options.keep_going {
            break;
        }
    }
    total.inputs = done;
    total.elapsed = started.elapsed();
    if !run.quiet {
        if skipped > 0 {
            eprintln!(
                "mimic: {skipped} input(s) already complete in the manifest: skipped (--resume)"
            );
        }
        print_summary(&total);
    }
    exit_code(
        &total,
        &format!("their rows up to the failure are in {}", dir.display()),
    )
}

/// One input through the pipeline into its `.part` file.
fn analyse_one(
    run: &AnalyzeRun,
    dir: &std::path::Path,
    input: &PlannedInput,
    finder: &Arc<FaceFinder>,
    model: &Arc<ExpressionModel>,
    stop: &StopFlag,
) -> Result<RunSummary> {
    let mut sinks = vec![rows_sink(run, &part_path(dir, input), model.classes())?];
    let specs = vec![input.spec.clone()];
    let mut progress = ProgressReport::new(run.quiet, &specs);
    let summary = pipeline::run(
        specs,
        finder.clone(),
        model.clone(),
        run.options.clone(),
        &mut sinks,
        stop,
        &mut progress,
    )?;
    Ok(summary)
}

/// Where an input's rows are written until it is done.
fn part_path(dir: &std::path::Path, input: &PlannedInput) -> std::path::PathBuf {
    dir.join(format!(".{}.part", input.output_name))
}

/// The size of an input file, what `--resume` checks besides the output.
fn input_size(spec: &InputSpec) -> Option<u64> {
    match spec {
        InputSpec::Video(p) | InputSpec::Still(p) => std::fs::metadata(p).ok().map(|m| m.len()),
        InputSpec::Url(_) | InputSpec::Webcam(_) => None,
    }
}

fn accumulate(total: &mut RunSummary, one: RunSummary) {
    total.frames += one.frames;
    total.analyzed_frames += one.analyzed_frames;
    total.skipped_frames += one.skipped_frames;
    total.faces += one.faces;
    total.failures.extend(one.failures);
    total.notices.extend(one.notices);
    if total.stage_busy.is_empty() {
        total.stage_busy = one.stage_busy;
    } else {
        for ((_, sum), (_, busy)) in total.stage_busy.iter_mut().zip(one.stage_busy) {
            *sum += busy;
        }
    }
}
