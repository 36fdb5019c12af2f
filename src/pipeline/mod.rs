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

mod item;
mod latest;
mod stats;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};

pub use item::{InputFailure, Item, SkippedFrame};
pub use latest::LatestFrameQueue;
pub use stats::{Stage, StageClock, StageClocks};

use burn::tensor::Tensor;

use crate::align::align_face;
use crate::decode::{DecodeOptions, InputSpec, SourceInfo, open_with};
use crate::frame::{Frame, RgbImage};
use crate::geometry::{BBox, FaceDetection, Landmarks};
use crate::gpu::{self, CropStyle, FaceCrop, GpuError};
use crate::model::{ExpressionModel, Prediction};
use crate::mtcnn::{FaceDetector, FollowedFace};
use crate::record::{FaceResult, FrameResult, FrameStatus};
use crate::sink::{Sink, SinkError};
use crate::track::{
    ProbabilitySmoother, ShotCutConfig, ShotCutDetector, SmootherConfig, Tracker, TrackerConfig,
};

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
    /// Capture-to-row latency of analysed frames: mean and max, in ms.
    pub latency_ms: Option<(f64, f64)>,
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

/// A frame with the faces found in it.
struct DetectedFrame {
    frame: Frame,
    faces: Vec<FaceDetection>,
    /// The frame as the detector uploaded it to the GPU, when it runs there: the frames
    /// uploaded together (`[n, 3, h, w]`) and this one's index among them. The face crops
    /// are cut from this copy, so each frame is uploaded once.
    on_device: Option<(Tensor<4>, usize)>,
}

/// A frame with one model-ready crop per face.
struct AlignedFrame {
    frame: Frame,
    faces: Vec<FaceDetection>,
    crops: Crops,
}

/// The model-ready crops of one frame's faces.
enum Crops {
    /// 8-bit crops in memory, normalised by [`ExpressionModel::preprocess`].
    Host(Vec<RgbImage>),
    /// Already the model's input `[faces, 3, size, size]` on the GPU
    /// ([`gpu::face_crops`]).
    Device(Tensor<4>),
}

impl Default for Crops {
    fn default() -> Self {
        Crops::Host(Vec::new())
    }
}

impl Crops {
    fn len(&self) -> usize {
        match self {
            Crops::Host(crops) => crops.len(),
            Crops::Device(input) => input.dims()[0],
        }
    }
}

/// A frame with the model's prediction per face.
struct ScoredFrame {
    frame: Frame,
    faces: Vec<FaceDetection>,
    predictions: Vec<Prediction>,
}

/// A finished result with the instant its frame was captured, so that the
/// writer measures capture-to-row latency when the row is written.
struct Finished {
    result: FrameResult,
    captured_at: Instant,
}

/// Runs the whole pipeline over `inputs`, writing every frame to `sinks`.
pub fn run(
    inputs: Vec<InputSpec>,
    finder: FaceFinder,
    model: ExpressionModel,
    options: PipelineOptions,
    sinks: &mut [Box<dyn Sink>],
    stop: &StopFlag,
    progress: &mut dyn ProgressObserver,
) -> Result<RunSummary, PipelineError> {
    let started = Instant::now();
    let clocks = Arc::new(StageClocks::default());
    let first_error: Arc<Mutex<Option<PipelineError>>> = Arc::default();
    let cap = options.queue_frames.max(1);
    let input_count = inputs.len();
    let frames_per_detection = detect_batch(&options, &finder);

    let (feed_tx, feed_rx) = if options.live {
        let queue = Arc::new(LatestFrameQueue::new());
        (FeedSender::Live(queue.clone()), FeedReceiver::Live(queue))
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
        ..DecodeOptions::default()
    };
    let model = Arc::new(model);

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
            Box::new(move || {
                decode_stage(inputs, &decode_options, feed_tx, &stop, &clocks, keep_going);
                Ok(())
            })
        }),
        spawn("detect", {
            let clocks = clocks.clone();
            let every = options.detect_every;
            let batch = frames_per_detection;
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
    let write_result = write_stage(result_rx, sinks, &clocks, progress, &mut summary);
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

/// The decoder's end of the first hand-over.
enum FeedSender {
    Bounded(Sender<Item<Frame>>),
    Live(Arc<LatestFrameQueue>),
}

impl FeedSender {
    /// False when the next stage is gone.
    fn send(&self, item: Item<Frame>) -> bool {
        match self {
            FeedSender::Bounded(tx) => tx.send(item).is_ok(),
            FeedSender::Live(queue) => {
                queue.put(item);
                true
            }
        }
    }
}

impl Drop for FeedSender {
    fn drop(&mut self) {
        if let FeedSender::Live(queue) = self {
            queue.close();
        }
    }
}

enum FeedReceiver {
    Bounded(Receiver<Item<Frame>>),
    Live(Arc<LatestFrameQueue>),
}

impl FeedReceiver {
    fn recv(&self) -> Option<Item<Frame>> {
        match self {
            FeedReceiver::Bounded(rx) => rx.recv().ok(),
            FeedReceiver::Live(queue) => queue.take(),
        }
    }

    /// The next item if one is already waiting (never in live mode, where the newest
    /// frame is taken alone).
    fn try_recv(&self) -> Option<Item<Frame>> {
        match self {
            FeedReceiver::Bounded(rx) => rx.try_recv().ok(),
            FeedReceiver::Live(_) => None,
        }
    }
}

fn decode_stage(
    inputs: Vec<InputSpec>,
    decode_options: &DecodeOptions,
    feed: FeedSender,
    stop: &StopFlag,
    clocks: &StageClocks,
    keep_going: bool,
) {
    let clock = clocks.get(Stage::Decode);
    for spec in inputs {
        if stop.is_raised() {
            return;
        }
        let failure = |e: &dyn std::fmt::Display| {
            Item::Failed(InputFailure {
                input: spec.source_id().to_string(),
                message: e.to_string(),
            })
        };
        let mut source = match open_with(&spec, decode_options) {
            Ok(source) => source,
            Err(e) => {
                if !feed.send(failure(&e)) || !keep_going {
                    stop.raise();
                    return;
                }
                continue;
            }
        };
        if !feed.send(Item::Start(source.info())) {
            return;
        }
        while !stop.is_raised() {
            match clock.time(1, || source.next()) {
                None => break,
                Some(Ok(frame)) => {
                    if !feed.send(Item::Work(frame)) {
                        return;
                    }
                }
                Some(Err(e)) => {
                    if !feed.send(failure(&e)) || !keep_going {
                        stop.raise();
                        return;
                    }
                    break;
                }
            }
        }
    }
}

/// A whole image taken as one face (`--crops`): no landmarks.
fn whole_image_face(image: &RgbImage) -> FaceDetection {
    FaceDetection {
        bbox: BBox {
            x1: 0.0,
            y1: 0.0,
            x2: image.width() as f32,
            y2: image.height() as f32,
        },
        score: 1.0,
        landmarks: [[f32::NAN; 2]; 5],
    }
}

/// Frames per detector pass: see [`PipelineOptions::detect_batch`].
fn detect_batch(options: &PipelineOptions, finder: &FaceFinder) -> usize {
    let on_gpu = matches!(finder, FaceFinder::Detect(d) if d.runs_on_gpu());
    match options.detect_batch {
        _ if options.live || options.detect_every.get() > 1 => 1,
        Some(n) => n.get(),
        None if on_gpu => GPU_DETECT_BATCH,
        None => 1,
    }
}

fn detect_stage(
    feed: FeedReceiver,
    out: Sender<Item<DetectedFrame>>,
    finder: &FaceFinder,
    detect_every: NonZeroUsize,
    batch: usize,
    clocks: &StageClocks,
) -> Result<(), PipelineError> {
    let clock = clocks.get(Stage::Detect);
    let mut follower = Follower::new(detect_every);
    while let Some(first) = feed.recv() {
        // Batch mode: the frames already waiting, up to `batch`, stopping at an input's
        // start or failure (which must keep its place between frames).
        let mut items = vec![first];
        while items.len() < batch && matches!(items.last(), Some(Item::Work(_))) {
            match feed.try_recv() {
                Some(item) => items.push(item),
                None => break,
            }
        }
        if items
            .iter()
            .any(|i| matches!(i, Item::Start(_) | Item::Failed(_)))
        {
            follower.forget();
        }
        let frames: Vec<&Frame> = items
            .iter()
            .filter_map(|item| match item {
                Item::Work(frame) => Some(frame),
                _ => None,
            })
            .collect();
        let mut found = clock
            .time(frames.len() as u64, || {
                find_faces(finder, &frames, &mut follower)
            })?
            .into_iter();
        for item in items {
            let item = item.map(|frame| {
                let (faces, on_device) = found.next().expect("one result per frame");
                DetectedFrame {
                    frame,
                    faces,
                    on_device,
                }
            });
            if out.send(item).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The faces of each of `frames` (consecutive frames of one input), and where the GPU
/// path left the frames' pixels: `(faces, Some((pixels, index)))`, `pixels` shared by the
/// frames uploaded together.
type FoundFaces = (Vec<FaceDetection>, Option<(Tensor<4>, usize)>);

fn find_faces(
    finder: &FaceFinder,
    frames: &[&Frame],
    follower: &mut Follower,
) -> Result<Vec<FoundFaces>, PipelineError> {
    let FaceFinder::Detect(detector) = finder else {
        return Ok(frames
            .iter()
            .map(|f| (vec![whole_image_face(&f.image)], None))
            .collect());
    };
    let mut results = Vec::with_capacity(frames.len());
    // Runs of equal-size frames share each pass (a stream's size can change).
    for run in frames.chunk_by(|a, b| a.image.dimensions() == b.image.dimensions()) {
        let images: Vec<&RgbImage> = run.iter().map(|f| &f.image).collect();
        let (found, pixels) = if detector.runs_on_gpu() {
            let pixels = gpu::upload_frames(&images, detector.device())?;
            let found = match follower.previous_to_follow() {
                Some(previous) => vec![detector.follow_on_device(pixels.clone(), previous)?],
                None => detector.detect_on_device(pixels.clone())?,
            };
            (found, Some(pixels))
        } else {
            let found = match follower.previous_to_follow() {
                Some(previous) => vec![detector.follow(images[0], previous)],
                None => detector.detect_batch_followable(&images),
            };
            (found, None)
        };
        for (index, faces) in found.into_iter().enumerate() {
            let on_device = pixels.as_ref().map(|p| (p.clone(), index));
            results.push((follower.remember(faces), on_device));
        }
    }
    Ok(results)
}

/// `--detect-every K`: which frames are detected in full and which follow the faces of
/// the frame before ([`FaceDetector::follow`]). With K > 1 the stage hands it one frame
/// at a time.
struct Follower {
    every: usize,
    /// The faces of the previous analysed frame of the current input.
    previous: Option<Vec<FollowedFace>>,
    /// Frames analysed since the last full detection.
    since_full: usize,
}

impl Follower {
    fn new(every: NonZeroUsize) -> Self {
        Self {
            every: every.get(),
            previous: None,
            since_full: 0,
        }
    }

    /// A new input: its first frame is detected in full.
    fn forget(&mut self) {
        self.previous = None;
    }

    /// The faces the next frame should follow, or `None` when it is detected in full.
    fn previous_to_follow(&mut self) -> Option<&[FollowedFace]> {
        match &self.previous {
            Some(faces) if self.since_full < self.every => {
                self.since_full += 1;
                Some(faces.as_slice())
            }
            _ => {
                self.since_full = 1;
                None
            }
        }
    }

    /// Keeps a frame's faces for the next one; returns the detections.
    fn remember(&mut self, faces: Vec<FollowedFace>) -> Vec<FaceDetection> {
        let detections = faces.iter().map(|f| f.face).collect();
        self.previous = Some(faces);
        detections
    }
}

fn align_stage(
    input: Receiver<Item<DetectedFrame>>,
    out: Sender<Item<AlignedFrame>>,
    template: &Landmarks,
    style: &CropStyle,
    clocks: &StageClocks,
) -> Result<(), PipelineError> {
    let clock = clocks.get(Stage::Align);
    for item in input {
        let item = item.try_map(|detected| {
            let crops = clock.time(1, || align_crops(&detected, template, style))?;
            let DetectedFrame { frame, faces, .. } = detected;
            Ok::<_, PipelineError>(AlignedFrame {
                frame,
                faces,
                crops,
            })
        })?;
        if out.send(item).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// One model-ready crop per face of a frame: cut on the GPU from the frame the detector
/// uploaded, else on the host (aligned onto `template`; a face without landmarks, from
/// `--crops`, is the whole image resized).
fn align_crops(
    detected: &DetectedFrame,
    template: &Landmarks,
    style: &CropStyle,
) -> Result<Crops, GpuError> {
    let DetectedFrame {
        frame,
        faces,
        on_device,
    } = detected;
    if let Some((pixels, index)) = on_device {
        let crops: Vec<FaceCrop> = faces
            .iter()
            .map(|face| FaceCrop::from_landmarks(*index, &face.landmarks, template))
            .collect();
        return Ok(Crops::Device(gpu::face_crops(
            pixels.clone(),
            &crops,
            style,
        )?));
    }
    let size = style.size;
    Ok(Crops::Host(
        faces
            .iter()
            .map(|face| {
                if face.landmarks[0][0].is_finite() {
                    align_face(&frame.image, &face.landmarks, template, size)
                } else {
                    image::imageops::resize(
                        &frame.image,
                        size,
                        size,
                        image::imageops::FilterType::Triangle,
                    )
                }
            })
            .collect(),
    ))
}

/// Classifies faces in batches that span frames: it takes whatever frames are
/// already waiting (up to `batch` faces) so the model sees full batches when
/// the detector is ahead, and never waits for a batch to fill.
fn infer_stage(
    input: Receiver<Item<AlignedFrame>>,
    out: Sender<Item<ScoredFrame>>,
    model: &ExpressionModel,
    batch: usize,
    clocks: &StageClocks,
) -> Result<(), PipelineError> {
    let clock = clocks.get(Stage::Infer);
    let crop_count = |item: &Item<AlignedFrame>| match item {
        Item::Work(frame) => frame.crops.len(),
        _ => 0,
    };
    while let Ok(first) = input.recv() {
        let mut faces = crop_count(&first);
        let mut pending = vec![first];
        while faces < batch {
            let Ok(item) = input.try_recv() else { break };
            faces += crop_count(&item);
            pending.push(item);
        }
        let crops: Vec<Crops> = pending
            .iter_mut()
            .filter_map(|item| match item {
                Item::Work(frame) => Some(std::mem::take(&mut frame.crops)),
                _ => None,
            })
            .collect();
        let mut predictions = clock
            .time(faces as u64, || predict_crops(model, crops))
            .into_iter();
        for item in pending {
            let item = item.map(|AlignedFrame { frame, faces, .. }| ScoredFrame {
                predictions: predictions.by_ref().take(faces.len()).collect(),
                frame,
                faces,
            });
            if out.send(item).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The model's predictions for the crops of several frames, in order, from one forward
/// pass.
fn predict_crops(model: &ExpressionModel, parts: Vec<Crops>) -> Vec<Prediction> {
    // Consecutive host crops are normalised together; on the CPU path that is all of
    // them, in one input.
    let mut inputs: Vec<Tensor<4>> = Vec::new();
    let mut host: Vec<RgbImage> = Vec::new();
    for part in parts {
        match part {
            Crops::Host(crops) => host.extend(crops),
            Crops::Device(input) => {
                if !host.is_empty() {
                    inputs.push(model.preprocess(&std::mem::take(&mut host)));
                }
                inputs.push(input);
            }
        }
    }
    if !host.is_empty() {
        inputs.push(model.preprocess(&host));
    }
    match inputs.len() {
        0 => Vec::new(),
        1 => model.predict_input(inputs.remove(0)),
        _ => model.predict_input(Tensor::cat(inputs, 0)),
    }
}

/// Per-input tracking state: a new input starts with fresh tracks.
struct TrackState {
    tracker: Tracker,
    smoother: ProbabilitySmoother,
    cuts: Option<ShotCutDetector>,
}

impl TrackState {
    fn new(options: &TrackingOptions) -> Result<Self, PipelineError> {
        let invalid = |e: crate::track::TrackConfigError| PipelineError::Tracking(e.to_string());
        Ok(Self {
            tracker: Tracker::new(options.tracker.clone()).map_err(invalid)?,
            smoother: ProbabilitySmoother::new(options.smoother.clone()).map_err(invalid)?,
            cuts: options
                .shot_cuts
                .clone()
                .map(ShotCutDetector::new)
                .transpose()
                .map_err(invalid)?,
        })
    }

    /// Track ids and smoothed probabilities of one frame's faces, in place.
    fn update(&mut self, frame: &Frame, faces: &mut [FaceResult], features: &[Vec<f32>]) {
        if let Some(cuts) = self.cuts.as_mut() {
            if cuts.is_cut(&frame.image) {
                self.tracker.new_shot();
            }
        }
        let detections: Vec<FaceDetection> = faces.iter().map(|f| f.detection).collect();
        let appearance = (features.len() == faces.len()).then_some(features);
        for assignment in self.tracker.update(frame.pts_ms, &detections, appearance) {
            let face = &mut faces[assignment.detection];
            face.track_id = Some(assignment.track_id);
            face.smoothed = Some(self.smoother.update(
                assignment.track_id,
                frame.pts_ms,
                &face.probs,
            ));
        }
        for retired in self.tracker.drain_retired() {
            self.smoother.forget(retired);
        }
    }
}

/// Gives faces their track ids and smoothed probabilities (one tracker per
/// input) and turns frames into results.
fn track_stage(
    input: Receiver<Item<ScoredFrame>>,
    out: Sender<Item<Finished>>,
    tracking: Option<TrackingOptions>,
    keep_images: bool,
    clocks: &StageClocks,
) -> Result<(), PipelineError> {
    let clock = clocks.get(Stage::Track);
    let mut state = None;
    for item in input {
        if let (Item::Start(_), Some(options)) = (&item, &tracking) {
            state = Some(TrackState::new(options)?);
        }
        let item = item.map(
            |ScoredFrame {
                 frame,
                 faces,
                 predictions,
             }| {
                let (probs, features): (Vec<_>, Vec<_>) = predictions
                    .into_iter()
                    .map(|p| (p.probs, p.feature))
                    .unzip();
                let mut results: Vec<FaceResult> = faces
                    .into_iter()
                    .zip(probs)
                    .enumerate()
                    .map(|(face, (detection, probs))| FaceResult {
                        face,
                        track_id: None,
                        detection,
                        probs,
                        smoothed: None,
                    })
                    .collect();
                if let Some(state) = state.as_mut() {
                    clock.time(1, || state.update(&frame, &mut results, &features));
                }
                Finished {
                    captured_at: frame.captured_at,
                    result: FrameResult {
                        source: frame.source,
                        index: frame.index,
                        pts_ms: frame.pts_ms,
                        status: FrameStatus::Analyzed,
                        faces: results,
                        latency_ms: None,
                        image: keep_images.then_some(frame.image),
                    },
                }
            },
        );
        if out.send(item).is_err() {
            break;
        }
    }
    Ok(())
}

/// Writes every frame to every sink, in order, on the calling thread (so that
/// a preview window lives on the thread that created it).
fn write_stage(
    input: Receiver<Item<Finished>>,
    sinks: &mut [Box<dyn Sink>],
    clocks: &StageClocks,
    progress: &mut dyn ProgressObserver,
    summary: &mut RunSummary,
) -> Result<(), SinkError> {
    let clock = clocks.get(Stage::Write);
    let mut latency_sum = 0.0;
    let mut latency_max: f64 = 0.0;
    for item in input {
        let result = match item {
            Item::Start(info) => {
                progress.input_started(&info);
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
                latency_sum += latency;
                latency_max = latency_max.max(latency);
                result.latency_ms = Some(latency);
                result
            }
        };
        clock.time(1, || {
            sinks.iter_mut().try_for_each(|sink| sink.write(&result))
        })?;
        summary.frames += 1;
        match result.status {
            FrameStatus::Analyzed => summary.analyzed_frames += 1,
            FrameStatus::Skipped => summary.skipped_frames += 1,
        }
        summary.faces += result.faces.len() as u64;
        progress.frame_written(&result);
    }
    if summary.analyzed_frames > 0 {
        summary.latency_ms = Some((latency_sum / summary.analyzed_frames as f64, latency_max));
    }
    Ok(())
}
