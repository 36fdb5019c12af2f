//! `mimic merge DIR -o FILE`: see [`mimic::batch::merge_outputs`].

use std::process::ExitCode;

use anyhow::Result;
use mimic::batch::merge_outputs;

use crate::cli::MergeArgs;

pub fn run(args: MergeArgs) -> Result<ExitCode> {
    let report = merge_outputs(&args.dir, &args.output)?;
    eprintln!(
        "mimic: merged {} inputs, {} frames, {} rows into {}",
        report.inputs,
        report.frames,
        report.rows,
        args.output.display()
    );
    if !report.failed.is_empty() {
        eprintln!(
            "mimic: {} of them failed part-way (their rows up to the failure are merged): {}",
            report.failed.len(),
            report.failed.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
