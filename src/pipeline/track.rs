//! The track stage: track ids and smoothed probabilities per face (one
//! tracker per input, new tracks after a shot cut), and the frame's result row.

use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::infer::ScoredFrame;
use super::{Item, PipelineError, Stage, StageClocks, TrackingOptions};
use crate::frame::Frame;
use crate::geometry::FaceDetection;
use crate::head_pose::estimate_head_pose;
use crate::record::{FaceResult, FrameResult, FrameStatus};
use crate::track::{ProbabilitySmoother, ShotCutDetector, Tracker};

/// A finished result with the instant its frame was captured, so that the
/// writer measures capture-to-row latency when the row is written.
pub(super) struct Finished {
    pub(super) result: FrameResult,
    pub(super) captured_at: Instant,
}

/// Per-input tracking state: a new input starts with fresh tracks.
pub(super) struct TrackState {
    pub(super) tracker: Tracker,
    pub(super) smoother: ProbabilitySmoother,
    pub(super) cuts: Option<ShotCutDetector>,
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
pub(super) fn track_stage(
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
                        pose: estimate_head_pose(
                            &detection.landmarks,
                            frame.width(),
                            frame.height(),
                        ),
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
