//! The analyzer's pipeline: decode → detect → align → infer → track → write.
//!
//! Each stage runs on its own named thread; bounded channels join them, so a slow
//! stage holds the ones before it back (back-pressure) instead of queueing
//! frames without bound. Work flows as [`Item`]s, which keep every input's
//! start, frames, skipped frames and failure in order; the writer, on the
//! calling thread, turns each frame into exactly one [`FrameResult`].
//!
//! Shutdown is a flag and a message, never a panic: Ctrl-C, a closed preview
//! window or a failed input (without `--keep-going`) raises the [`StopFlag`];
//! the decoder stops reading and drops its sender; every later stage drains
//! what is in flight and ends when its input channel closes. A stage that fails
//! records the error, raises the flag and drops its receiver, which stops the
//! stages before it; the stages after it drain and finish, so every row already
//! produced is written.
//!
//! | file | stage |
//! |---|---|
//! | `decode.rs` | inputs opened in turn, frames handed on (bounded, or in live mode newest-wins, one frame in flight) |
//! | `detect.rs` | MTCNN per frame or per batch of waiting frames; `--detect-every` following |
//! | `align.rs` | one aligned, model-ready crop per face (GPU or host) |
//! | `infer.rs` | the expression model on batches of crops spanning frames |
//! | `track.rs` | track ids, smoothed probabilities, the frame's result |
//! | `write.rs` | every frame to every sink, on the calling thread |

mod align;
mod decode;
mod detect;
mod infer;
mod item;
mod latency;
mod latest;
mod stats;
mod track;
mod write;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;

pub use item::{InputFailure, InputNotice, Item, SkippedFrame};
pub use latency::{LatencyHistogram, LatencySummary};
pub use latest::LatestFrameQueue;
pub use stats::{Stage, StageClock, StageClocks};

use crate::decode::{DecodeOptions, InputSpec, SourceInfo};
use crate::gpu::{CropStyle, GpuError};
use crate::model::ExpressionModel;
use crate::mtcnn::FaceDetector;
use crate::record::FrameResult;
use crate::sink::{Sink, SinkError};
use crate::track::{ShotCutConfig, SmootherConfig, TrackerConfig};

use align::{AlignedFrame, align_stage};
pub use decode::ReconnectPolicy;
use decode::{FeedReceiver, FeedSender, decode_stage};
use detect::{DetectedFrame, detect_batch, detect_stage};
use infer::{ScoredFrame, infer_stage};
use track::{Finished, track_stage};
use write::write_stage;

/// A request to stop, shared by every stage and by whoever may ask for it
/// (Ctrl-C handler, preview window).
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// A stop flag that is `flag` (e.g. a preview window's close request).
    pub fn from_shared(flag: Arc<AtomicBool>) -> Self {
        Self(flag)
    }

    /// The flag itself, for APIs that take an `Arc<AtomicBool>`.
    pub fn shared(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

/// What turns a frame into face crops.
pub enum FaceFinder {
    /// MTCNN detection, then alignment onto the model's face template.
    Detect(FaceDetector),
    /// The inputs are face crops already: each image is one face.
    WholeImage,
}

/// How the pipeline runs.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    /// Newest frame wins when analysis falls behind (webcams, streams).
    pub live: bool,
    /// Faces per expression-model batch.
    pub batch_faces: usize,
    /// Keep each frame's pixels until the writer (for drawing sinks).
    pub keep_images: bool,
    /// Go on with the next input after one fails.
    pub keep_going: bool,
    /// Tracking and smoothing settings; None turns tracking off.
    pub tracking: Option<TrackingOptions>,
    /// Capacity of each channel between stages, in frames.
    pub queue_frames: usize,
    /// Run the full detector on every K-th frame of a video and, in between, follow the
    /// faces of the previous frame with O-Net alone ([`FaceDetector::follow`]). 1 = every
    /// frame.
    pub detect_every: NonZeroUsize,
    /// Batch mode, when detecting on every frame: up to this many consecutive frames
    /// already waiting go through the detector together (on the GPU: uploaded as one
    /// tensor, each P-Net/R-Net/O-Net pass shared). 1 = one frame at a time, the lowest
    /// latency. `None`: [`GPU_DETECT_BATCH`] on the GPU, 1 on the CPU (where batching
    /// frames through P-Net measured slower). Live mode always takes the newest frame
    /// alone.
    pub detect_batch: Option<NonZeroUsize>,
    /// A network stream that delivers nothing for this long has stalled.
    pub stall_timeout: Duration,
    /// Reconnection of network inputs that stall or drop.
    pub reconnect: ReconnectPolicy,
}

/// Frames per detector pass in batch mode on the GPU, unless set.
pub const GPU_DETECT_BATCH: usize = 8;

/// Face tracking and probability smoothing (validated settings).
#[derive(Clone, Debug)]
pub struct TrackingOptions {
    pub tracker: TrackerConfig,
    pub smoother: SmootherConfig,
    /// Shot-cut detection: a cut starts new tracks instead of carrying boxes
    /// across unrelated pictures. None turns it off.
    pub shot_cuts: Option<ShotCutConfig>,
}

/// What the writer reports as the pipeline runs.
pub trait ProgressObserver {
    fn input_started(&mut self, info: &SourceInfo);
    fn frame_written(&mut self, result: &FrameResult);
    fn input_failed(&mut self, failure: &InputFailure);
    /// A stall taken as the end of a stream, a reconnection.
    fn input_notice(&mut self, notice: &InputNotice) {
        let _ = notice;
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub inputs: usize,
    pub frames: u64,
    pub analyzed_frames: u64,
    pub skipped_frames: u64,
    pub faces: u64,
    pub elapsed: Duration,
    /// Busy time of each stage, in pipeline order.
    pub stage_busy: Vec<(Stage, Duration)>,
    pub failures: Vec<InputFailure>,
    /// What happened to inputs without failing them (stalls, reconnections).
    pub notices: Vec<InputNotice>,
    /// Capture-to-row latency of the analysed frames.
    pub latency: Option<LatencySummary>,
    /// Set when the run stopped early on request (Ctrl-C, preview closed, closed stdout).
    pub interrupted: bool,
}

impl RunSummary {
    pub fn frames_per_second(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A stage that failed, ending the run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("tracking: {0}")]
    Tracking(String),
    #[error("GPU pre-processing: {0}")]
    Gpu(#[from] GpuError),
    #[error("the {0} stage failed: {1}")]
    StagePanicked(&'static str, String),
}

/// Runs the whole pipeline over `inputs`, writing every frame to `sinks`.
pub fn run(
    inputs: Vec<InputSpec>,
    finder: Arc<FaceFinder>,
    model: Arc<ExpressionModel>,
    options: PipelineOptions,
    sinks: &mut [Box<dyn Sink>],
    stop: &StopFlag,
    progress: &mut dyn ProgressObserver,
) -> Result<RunSummary, PipelineError> {
    let started = Instant::now();
    let clocks = Arc::new(StageClocks::default());
    let first_error: Arc<Mutex<Option<PipelineError>>> = Arc::default();
    // Live mode has one frame in flight (see `latest.rs`): queues of one suffice.
    let cap = if options.live {
        1
    } else {
        options.queue_frames.max(1)
    };
    let input_count = inputs.len();
    let frames_per_detection = detect_batch(&options, &finder);

    // Live mode: the writer tells the queue when a frame's row is out (one frame in flight).
    let live_queue = options.live.then(|| Arc::new(LatestFrameQueue::new()));
    let (feed_tx, feed_rx) = if let Some(queue) = &live_queue {
        (
            FeedSender::Live(queue.clone()),
            FeedReceiver::Live(queue.clone()),
        )
    } else {
        // Room for a whole detector batch to wait.
        let (tx, rx) = bounded(cap.max(frames_per_detection));
        (FeedSender::Bounded(tx), FeedReceiver::Bounded(rx))
    };
    let (detected_tx, detected_rx) = bounded::<Item<DetectedFrame>>(cap);
    let (aligned_tx, aligned_rx) = bounded::<Item<AlignedFrame>>(cap);
    let (scored_tx, scored_rx) = bounded::<Item<ScoredFrame>>(cap);
    let (result_tx, result_rx) = bounded::<Item<Finished>>(cap);

    let template = model.face_template_px();
    let style = CropStyle::of_model(model.config());
    let decode_options = DecodeOptions {
        cancel: Some(stop.shared()),
        stall_timeout: options.stall_timeout,
        ..DecodeOptions::default()
    };

    // Each stage runs on its own named thread. A stage that fails or panics
    // records the first error and raises the stop flag; dropping its channel
    // ends the stages around it.
    let spawn = |name: &'static str,
                 body: Box<dyn FnOnce() -> Result<(), PipelineError> + Send>| {
        let (stop, first_error) = (stop.clone(), first_error.clone());
        thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
                    .unwrap_or_else(|panic| {
                        Err(PipelineError::StagePanicked(name, panic_message(&panic)))
                    });
                if let Err(e) = outcome {
                    stop.raise();
                    first_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(e);
                }
            })
            .expect("spawning a pipeline thread")
    };
    let handles = [
        spawn("decode", {
            let (stop, clocks, keep_going) = (stop.clone(), clocks.clone(), options.keep_going);
            let reconnect = options.reconnect;
            Box::new(move || {
                decode_stage(
                    inputs,
                    &decode_options,
                    reconnect,
                    feed_tx,
                    &stop,
                    &clocks,
                    keep_going,
                );
                Ok(())
            })
        }),
        spawn("detect", {
            let clocks = clocks.clone();
            let every = options.detect_every;
            let batch = frames_per_detection;
            let finder = finder.clone();
            Box::new(move || detect_stage(feed_rx, detected_tx, &finder, every, batch, &clocks))
        }),
        spawn("align", {
            let clocks = clocks.clone();
            Box::new(move || align_stage(detected_rx, aligned_tx, &template, &style, &clocks))
        }),
        spawn("infer", {
            let (clocks, model, batch) =
                (clocks.clone(), model.clone(), options.batch_faces.max(1));
            Box::new(move || infer_stage(aligned_rx, scored_tx, &model, batch, &clocks))
        }),
        spawn("track", {
            let (clocks, tracking, keep_images) = (
                clocks.clone(),
                options.tracking.clone(),
                options.keep_images,
            );
            Box::new(move || track_stage(scored_rx, result_tx, tracking, keep_images, &clocks))
        }),
    ];

    let mut summary = RunSummary {
        inputs: input_count,
        ..RunSummary::default()
    };
    let write_result = write_stage(
        result_rx,
        sinks,
        live_queue.as_deref(),
        &clocks,
        progress,
        &mut summary,
    );
    if write_result.is_err() {
        stop.raise();
    }
    // write_stage dropped its receiver, which unblocks the stages before it.
    for handle in handles {
        // Panics were caught inside the thread and recorded as errors.
        let _ = handle.join();
    }
    for sink in sinks.iter_mut() {
        match sink.finish() {
            Ok(()) | Err(SinkError::Closed) => {}
            Err(e) => return Err(e.into()),
        }
    }

    summary.elapsed = started.elapsed();
    summary.stage_busy = Stage::ALL
        .iter()
        .map(|&s| (s, clocks.get(s).busy()))
        .collect();
    summary.interrupted |= stop.is_raised() && summary.failures.is_empty();
    match write_result {
        Ok(()) | Err(SinkError::Closed) => {}
        Err(e) => return Err(e.into()),
    }
    if let Some(e) = first_error.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(e);
    }
    Ok(summary)
}

/// The text of a caught panic.
fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".to_string())
}
