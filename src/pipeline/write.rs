//! The write stage, on the calling thread: every frame to every sink, in
//! order, and the run's counts and latency.

use crossbeam_channel::Receiver;

use super::track::Finished;
use super::{
    Item, LatencyHistogram, LatestFrameQueue, ProgressObserver, RunSummary, SkippedFrame, Stage,
    StageClocks,
};
use crate::record::{FrameResult, FrameStatus};
use crate::sink::{Sink, SinkError};

/// Writes every frame to every sink, in order, on the calling thread (so that
/// a preview window lives on the thread that created it). In live mode, each analysed
/// frame written lets `live_queue` hand out the next.
pub(super) fn write_stage(
    input: Receiver<Item<Finished>>,
    sinks: &mut [Box<dyn Sink>],
    live_queue: Option<&LatestFrameQueue>,
    clocks: &StageClocks,
    progress: &mut dyn ProgressObserver,
    summary: &mut RunSummary,
) -> Result<(), SinkError> {
    let clock = clocks.get(Stage::Write);
    let mut latencies = LatencyHistogram::default();
    for item in input {
        let result = match item {
            Item::Start(info) => {
                progress.input_started(&info);
                continue;
            }
            Item::Notice(notice) => {
                progress.input_notice(&notice);
                summary.notices.push(notice);
                continue;
            }
            Item::Failed(failure) => {
                progress.input_failed(&failure);
                summary.failures.push(failure);
                continue;
            }
            Item::Skipped(SkippedFrame {
                source,
                index,
                pts_ms,
            }) => FrameResult {
                source,
                index,
                pts_ms,
                status: FrameStatus::Skipped,
                faces: Vec::new(),
                latency_ms: None,
                image: None,
            },
            Item::Work(Finished {
                mut result,
                captured_at,
            }) => {
                let latency = captured_at.elapsed().as_secs_f64() * 1e3;
                latencies.add(latency);
                result.latency_ms = Some(latency);
                result
            }
        };
        clock.time(1, || {
            sinks.iter_mut().try_for_each(|sink| sink.write(&result))
        })?;
        if let (Some(queue), FrameStatus::Analyzed) = (live_queue, result.status) {
            queue.frame_done();
        }
        summary.frames += 1;
        match result.status {
            FrameStatus::Analyzed => summary.analyzed_frames += 1,
            FrameStatus::Skipped => summary.skipped_frames += 1,
        }
        summary.faces += result.faces.len() as u64;
        progress.frame_written(&result);
    }
    summary.latency = latencies.summary();
    Ok(())
}
