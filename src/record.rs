//! What the pipeline produces for each decoded frame: the unit every sink writes.

use crate::frame::{RgbImage, SourceId};
use crate::geometry::FaceDetection;
use crate::head_pose::HeadPose;

/// One analysed face of a frame.
#[derive(Clone, Debug)]
pub struct FaceResult {
    /// 0-based position of the face within its frame (detector order).
    pub face: usize,
    /// Identity that persists across frames (None until the tracker runs).
    pub track_id: Option<u64>,
    pub detection: FaceDetection,
    /// Class probabilities of this frame alone, in the model's class order.
    pub probs: Vec<f32>,
    /// Causally smoothed probabilities of this face's track (None without tracking).
    pub smoothed: Option<Vec<f32>>,
    /// Head pose from the landmarks (None without landmarks, e.g. `--crops`).
    pub pose: Option<HeadPose>,
}

/// Why a frame has no analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameStatus {
    /// Detected and classified.
    Analyzed,
    /// Live mode dropped it because inference fell behind (newest frame wins).
    Skipped,
}

/// Everything known about one decoded frame once it leaves the pipeline.
/// Every decoded frame yields exactly one `FrameResult`, in decode order.
#[derive(Clone, Debug)]
pub struct FrameResult {
    pub source: SourceId,
    pub index: u64,
    pub pts_ms: f64,
    pub status: FrameStatus,
    /// Empty for a frame without a face and for a skipped frame.
    pub faces: Vec<FaceResult>,
    /// Capture-to-result latency in milliseconds (set for analysed frames).
    pub latency_ms: Option<f64>,
    /// The pixels, kept for sinks that draw (annotated video, preview);
    /// None for skipped frames or when no sink needs them.
    pub image: Option<RgbImage>,
}

/// Index and value of the largest probability (NaN never wins).
pub fn argmax(probs: &[f32]) -> (usize, f32) {
    probs
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, p)| !p.is_nan())
        .fold((0, f32::NAN), |best, (i, p)| {
            if best.1.is_nan() || p > best.1 {
                (i, p)
            } else {
                best
            }
        })
}
