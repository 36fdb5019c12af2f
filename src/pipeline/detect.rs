//! The detect stage: MTCNN on each frame (or on batches of waiting frames),
//! or, with `--detect-every K`, O-Net alone following the faces of the frame
//! before ([`Follower`]); `--crops` takes each image as one face.

use std::num::NonZeroUsize;

use burn::tensor::Tensor;
use crossbeam_channel::Sender;

use super::decode::FeedReceiver;
use super::{
    FaceFinder, GPU_DETECT_BATCH, Item, PipelineError, PipelineOptions, Stage, StageClocks,
};
use crate::frame::{Frame, RgbImage};
use crate::geometry::{BBox, FaceDetection};
use crate::gpu;
use crate::mtcnn::FollowedFace;

/// A frame with the faces found in it.
pub(super) struct DetectedFrame {
    pub(super) frame: Frame,
    pub(super) faces: Vec<FaceDetection>,
    /// The frame as the detector uploaded it to the GPU, when it runs there: the frames
    /// uploaded together (`[n, 3, h, w]`) and this one's index among them. The face crops
    /// are cut from this copy, so each frame is uploaded once.
    pub(super) on_device: Option<(Tensor<4>, usize)>,
}

/// A whole image taken as one face (`--crops`): no landmarks.
pub(super) fn whole_image_face(image: &RgbImage) -> FaceDetection {
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
pub(super) fn detect_batch(options: &PipelineOptions, finder: &FaceFinder) -> usize {
    let on_gpu = matches!(finder, FaceFinder::Detect(d) if d.runs_on_gpu());
    match options.detect_batch {
        _ if options.live || options.detect_every.get() > 1 => 1,
        Some(n) => n.get(),
        None if on_gpu => GPU_DETECT_BATCH,
        None => 1,
    }
}

pub(super) fn detect_stage(
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
pub(super) type FoundFaces = (Vec<FaceDetection>, Option<(Tensor<4>, usize)>);

pub(super) fn find_faces(
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
    // Runs of equal-size frames share each pass (a stream's size can change), in parts
    // that fit the device's buffers.
    let runs = frames.chunk_by(|a, b| a.image.dimensions() == b.image.dimensions());
    for run in runs {
        let (width, height) = run[0].image.dimensions();
        let per_pass = if detector.runs_on_gpu() {
            detector.frames_per_device_pass(width, height)?
        } else {
            run.len()
        };
        for part in run.chunks(per_pass) {
            let images: Vec<&RgbImage> = part.iter().map(|f| &f.image).collect();
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
    }
    Ok(results)
}

/// `--detect-every K`: which frames are detected in full and which follow the faces of
/// the frame before ([`FaceDetector::follow`]). With K > 1 the stage hands it one frame
/// at a time.
pub(super) struct Follower {
    pub(super) every: usize,
    /// The faces of the previous analysed frame of the current input.
    pub(super) previous: Option<Vec<FollowedFace>>,
    /// Frames analysed since the last full detection.
    pub(super) since_full: usize,
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
