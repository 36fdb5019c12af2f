//! `mimic report RESULTS -o report.html`: see [`mimic::report`].

use std::process::ExitCode;

use anyhow::{Context, Result};
use mimic::model::read_config;
use mimic::model_choice::choose_model;
use mimic::report::{RunInfo, write_report};

use crate::analyze::models_dir;
use crate::cli::ReportArgs;

pub fn run(args: ReportArgs) -> Result<ExitCode> {
    let chosen = choose_model(&args.model.unwrap_or_default(), &models_dir(), false)?;
    let config = read_config(&chosen.dir.join(mimic::model::CONFIG_FILE))
        .with_context(|| format!("reading the model {}", chosen.dir.display()))?;
    let started = std::time::Instant::now();
    let summary = write_report(&args.results, &args.output, &RunInfo::from_model(&config))?;
    eprintln!(
        "mimic: report of {} frames, {} faces, {} track(s) written to {} in {:.1} s",
        summary.frames,
        summary.faces,
        summary.tracks.len(),
        args.output.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
