//! Progress on stderr while the pipeline runs, and the end-of-run summary.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mimic::decode::{InputSpec, SourceInfo};
use mimic::pipeline::{InputFailure, InputNotice, ProgressObserver, RunSummary};
use mimic::record::FrameResult;

/// An indicatif bar per video: frames done, frames/s and ETA for files; a
/// spinner with frames/s and capture-to-row latency for live inputs; one bar
/// over all still images (thousands of face crops make one bar, not thousands).
pub struct ProgressReport {
    bar: Option<ProgressBar>,
    stills_bar: Option<ProgressBar>,
    stills: u64,
    quiet: bool,
    /// The current input is live: show capture-to-row latency.
    live: bool,
}

impl ProgressReport {
    pub fn new(quiet: bool, inputs: &[InputSpec]) -> Self {
        let stills = inputs
            .iter()
            .filter(|i| matches!(i, InputSpec::Still(_)))
            .count() as u64;
        Self {
            bar: None,
            stills_bar: None,
            stills,
            quiet,
            live: false,
        }
    }

    fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }

    /// Prints a line without tearing the bar.
    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

impl ProgressObserver for ProgressReport {
    fn input_started(&mut self, info: &SourceInfo) {
        self.live = info.live;
        if self.quiet {
            return;
        }
        if self.stills > 1 && info.frame_count_estimate == Some(1) && !info.live {
            if self.stills_bar.is_none() {
                self.finish_bar();
                let bar = ProgressBar::new(self.stills).with_style(
                    ProgressStyle::with_template(
                        "images [{bar:30}] {pos}/{len}  {per_sec:.1}  ETA {eta}",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                );
                bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(8));
                self.stills_bar = Some(bar.clone());
                self.bar = Some(bar);
            }
            return;
        }
        self.finish_bar();
        self.stills_bar = None;
        let bar = match (info.live, info.frame_count_estimate) {
            (false, Some(frames)) => ProgressBar::new(frames).with_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:30}] {pos}/{len} frames  {per_sec:.1}  ETA {eta}  {msg}",
                )
                .expect("static template")
                .progress_chars("=> "),
            ),
            _ => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix:.bold} {pos} frames  {per_sec:.1}  {msg}",
                )
                .expect("static template"),
            ),
        };
        bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(8));
        bar.set_prefix(info.source.to_string());
        bar.enable_steady_tick(Duration::from_millis(250));
        self.bar = Some(bar);
    }

    fn frame_written(&mut self, result: &FrameResult) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if bar.position() % 8 == 0 {
                let at = format!("t={:.1}s", result.pts_ms / 1e3);
                match result.latency_ms.filter(|_| self.live) {
                    Some(latency) => bar.set_message(format!("{at}  latency {latency:.0} ms")),
                    None => bar.set_message(at),
                }
            }
        }
    }

    fn input_failed(&mut self, failure: &InputFailure) {
        self.println(&format!("mimic: {}", failure.message));
    }

    fn input_notice(&mut self, notice: &InputNotice) {
        self.println(&format!("mimic: {}", notice.message));
    }
}

impl Drop for ProgressReport {
    fn drop(&mut self) {
        self.finish_bar();
    }
}

/// The end-of-run summary: frames, faces, mean frames/s, time per stage.
pub fn print_summary(summary: &RunSummary) {
    let secs = summary.elapsed.as_secs_f64();
    eprintln!(
        "mimic: {} frames ({} analysed, {} skipped) from {} input(s), {} faces, {:.1} s, {:.1} frames/s{}",
        summary.frames,
        summary.analyzed_frames,
        summary.skipped_frames,
        summary.inputs,
        summary.faces,
        secs,
        summary.frames_per_second(),
        if summary.interrupted {
            " (stopped early)"
        } else {
            ""
        },
    );
    let stages: Vec<String> = summary
        .stage_busy
        .iter()
        .map(|(stage, busy)| {
            let per_frame = busy.as_secs_f64() * 1e3 / summary.frames.max(1) as f64;
            format!("{} {:.1} ms", stage.name(), per_frame)
        })
        .collect();
    eprintln!("mimic: busy time per frame: {}", stages.join(", "));
    if let Some(l) = &summary.latency {
        eprintln!(
            "mimic: capture-to-row latency: median {:.0} ms, p95 {:.0} ms, max {:.0} ms (mean {:.0})",
            l.p50_ms, l.p95_ms, l.max_ms, l.mean_ms
        );
    }
}
