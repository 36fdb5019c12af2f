//! Face tracking across frames and per-track temporal smoothing.
//!
//! - [`Tracker`] gives every detected face a `track_id` that persists across the
//!   frames of one source: a constant-velocity Kalman filter per face
//!   ([`kalman`]), gated IoU/centre-distance affinities ([`affinity`]) and an
//!   optimal assignment ([`assign`]), re-association after short occlusions,
//!   optional re-identification by appearance after longer gaps.
//! - [`ShotCutDetector`] sees where edited footage cuts to another shot, so
//!   that no track carries on across the cut ([`cut`]).
//! - [`ProbabilitySmoother`] smooths each track's class probabilities causally
//!   over presentation time ([`smooth`]).
//!
//! Per frame of a source, the pipeline does:
//! ```text
//! if cuts.is_cut(&frame.image) { tracker.new_shot(); }
//! let assignments = tracker.update(frame.pts_ms, &detections, features.as_deref());
//! for id in tracker.drain_retired() { smoother.forget(id); }
//! for a in &assignments {
//!     smoothed[a.detection] = smoother.update(a.track_id, frame.pts_ms, &probs[a.detection]);
//! }
//! ```
//! Everything here is pure logic: no I/O, no tensors.

pub mod affinity;
pub mod assign;
pub mod bench;
pub mod cut;
pub mod kalman;
pub mod smooth;
pub mod tracker;

pub use cut::{ShotCutConfig, ShotCutDetector};
pub use kalman::MotionConfig;
pub use smooth::{ProbabilitySmoother, SmootherConfig};
pub use tracker::{Association, ReidConfig, TrackAssignment, Tracker, TrackerConfig};

/// A tracking or smoothing setting out of its range.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrackConfigError {
    #[error("invalid tracking setting {name} = {value}: expected {expected}")]
    Invalid {
        name: &'static str,
        value: f64,
        expected: String,
    },
}

/// `Ok` if `value` is finite and in `[min, max]`, else an error naming the
/// setting.
pub(crate) fn check_range(
    name: &'static str,
    value: f64,
    min: f64,
    max: f64,
) -> Result<(), TrackConfigError> {
    if value.is_finite() && (min..=max).contains(&value) {
        return Ok(());
    }
    let expected = if max.is_finite() {
        format!("a number in [{min}, {max}]")
    } else {
        format!("a finite number >= {min}")
    };
    Err(TrackConfigError::Invalid {
        name,
        value,
        expected,
    })
}
