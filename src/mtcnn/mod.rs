//! MTCNN face detector (Zhang et al. 2016): P-Net over an image pyramid, R-Net, O-Net,
//! written with burn, reproducing facenet-pytorch 2.6.0's `detect_face` step for step.
//!
//! - [`nets`]: the three networks as burn modules, loaded from `models/mtcnn/*.safetensors`
//!   (converted from facenet-pytorch's weights by `scripts/convert_mtcnn.py`);
//! - [`host`]: the same nets on the host, channels last, the fast path on burn's CPU
//!   backend;
//! - [`boxes`]: the fixed box maths (pyramid, candidate boxes, NMS, regression, squaring,
//!   crop rectangles), pure functions;
//! - [`resample`]: the area resize (torch `interpolate(mode="area")`) and normalisation;
//! - [`passes`]: how many frames or crops one pass on a GPU may take;
//! - [`detector`]: [`FaceDetector`], the three stages put together.
//!
//! Output follows facenet's convention: box `x1, y1, x2, y2` in frame pixels (floats),
//! score = O-Net face probability, 5 landmarks, largest box first.

pub mod boxes;
pub mod detector;
mod direct_conv;
pub mod host;
pub mod nets;
pub mod passes;
pub mod resample;
mod weights;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use detector::{FaceDetector, FollowedFace};

/// Detector settings; the defaults are facenet-pytorch's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MtcnnConfig {
    /// Smallest face side searched for, in frame pixels (sets the pyramid's first scale).
    /// `f64` like facenet's Python arithmetic, so the pyramid sizes match exactly.
    pub min_face_size: f64,
    /// When set, the smallest face searched for is also at least the frame's shorter
    /// side divided by this: `max(min_face_size, min(w, h) / divisor)`, to the nearest
    /// level of facenet's pyramid ([`pyramid_scales`](Self::pyramid_scales)). The
    /// pyramid's largest level is then about the same size whatever the resolution, so
    /// P-Net costs about as much on 1080p as on 360p (facenet has no such setting:
    /// `None`). A divisor rather than a share so that 360 / 18 is exactly 20 and the
    /// pyramid is facenet's there.
    pub min_face_divisor: Option<f64>,
    /// Score thresholds of P-Net (`>=`), R-Net and O-Net (`>`).
    pub thresholds: [f32; 3],
    /// Ratio between successive pyramid scales, in (0, 1); `f64` as `min_face_size`.
    pub factor: f64,
}

impl Default for MtcnnConfig {
    fn default() -> Self {
        Self {
            min_face_size: 20.0,
            min_face_divisor: None,
            thresholds: [0.6, 0.7, 0.7],
            factor: 0.709,
        }
    }
}

impl MtcnnConfig {
    /// The analyzer's default: facenet's settings, and the smallest face at least the
    /// frame's shorter side / [`ANALYZER_MIN_FACE_DIVISOR`] (20 px on a 360-line frame,
    /// as facenet; 40 on 720, 60 on 1080).
    pub fn analyzer_default() -> Self {
        Self {
            min_face_divisor: Some(ANALYZER_MIN_FACE_DIVISOR),
            ..Self::default()
        }
    }

    /// Smallest face side searched for in a `width × height` frame, in pixels.
    pub fn min_face_for(&self, width: u32, height: u32) -> f64 {
        let short = f64::from(width.min(height));
        match self.min_face_divisor {
            Some(divisor) => self.min_face_size.max(short / divisor),
            None => self.min_face_size,
        }
    }

    /// The P-Net pyramid's scales for a `width × height` frame.
    ///
    /// With no divisor, facenet's pyramid for `min_face_size`. With one, the levels of
    /// that same pyramid from the one nearest (within half a step, in scale) to the
    /// smallest face [`min_face_for`](Self::min_face_for) asks for: the finer levels, which
    /// find only smaller faces, are left out, and every level kept is the one facenet
    /// builds, pixel for pixel, so the faces it finds are found as they are in the full
    /// pyramid.
    pub fn pyramid_scales(&self, width: u32, height: u32) -> Vec<f64> {
        let all = boxes::pyramid_scales(width, height, self.min_face_size, self.factor);
        let wanted = 12.0 / self.min_face_for(width, height);
        let first = all
            .iter()
            .position(|&scale| scale <= wanted / self.factor.sqrt())
            .unwrap_or(all.len());
        all[first..].to_vec()
    }

    /// Checks the ranges; called by [`FaceDetector::load`].
    pub fn validate(&self) -> Result<(), MtcnnError> {
        let bad = |what: String| Err(MtcnnError::InvalidConfig(what));
        if !(self.min_face_size >= 1.0 && self.min_face_size.is_finite()) {
            return bad(format!("min_face_size {} must be >= 1", self.min_face_size));
        }
        if let Some(divisor) = self.min_face_divisor
            && !(divisor >= 1.0 && divisor.is_finite())
        {
            return bad(format!("min_face_divisor {divisor} must be >= 1"));
        }
        if !(self.factor > 0.0 && self.factor < 1.0) {
            return bad(format!("factor {} must be in (0, 1)", self.factor));
        }
        if let Some(t) = self.thresholds.iter().find(|t| !(0.0..=1.0).contains(*t)) {
            return bad(format!("threshold {t} must be in [0, 1]"));
        }
        Ok(())
    }
}

/// The analyzer's smallest face is at least the frame's shorter side divided by this:
/// 20 px of 360.
pub const ANALYZER_MIN_FACE_DIVISOR: f64 = 18.0;

/// Why the detector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MtcnnError {
    #[error("cannot read MTCNN weights {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("MTCNN weights {} are not a valid safetensors file: {source}", path.display())]
    Format {
        path: PathBuf,
        source: safetensors::SafeTensorError,
    },
    #[error("MTCNN weights {}: tensor `{name}` is missing", path.display())]
    MissingTensor { path: PathBuf, name: String },
    #[error("MTCNN weights {}: tensor `{name}` is {found}, expected {expected}", path.display())]
    BadTensor {
        path: PathBuf,
        name: String,
        found: String,
        expected: String,
    },
    #[error("invalid MTCNN configuration: {0}")]
    InvalidConfig(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_are_facenets_and_round_trip_through_json() {
        let c = MtcnnConfig::default();
        assert_eq!(
            (c.min_face_size, c.thresholds, c.factor),
            (20.0, [0.6, 0.7, 0.7], 0.709)
        );
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<MtcnnConfig>(&json).unwrap(), c);
        let partial: MtcnnConfig = serde_json::from_str(r#"{"min_face_size": 40}"#).unwrap();
        assert_eq!(partial.min_face_size, 40.0);
        assert_eq!(partial.factor, 0.709);
    }

    #[test]
    fn the_analyzers_smallest_face_grows_with_the_frame_and_never_below_the_pixels() {
        let c = MtcnnConfig::analyzer_default();
        assert_eq!(
            c.min_face_for(640, 360),
            20.0,
            "exactly facenet's on 360 lines"
        );
        assert_eq!(c.min_face_for(1280, 720), 40.0);
        assert_eq!(c.min_face_for(1080, 1920), 60.0, "portrait");
        assert_eq!(c.min_face_for(427, 240), 20.0, "never below min_face_size");
        assert_eq!(MtcnnConfig::default().min_face_for(1920, 1080), 20.0);
        let bad = MtcnnConfig {
            min_face_divisor: Some(0.5),
            ..MtcnnConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn a_relative_smallest_face_keeps_facenets_coarser_levels() {
        let c = MtcnnConfig::analyzer_default();
        let full = |w, h| boxes::pyramid_scales(w, h, 20.0, 0.709);
        assert_eq!(
            c.pyramid_scales(640, 360),
            full(640, 360),
            "all of them on 360 lines"
        );
        // 40 px on 720 lines: from facenet's 0.6 · 0.709² = 0.3016 (a 39.8 px face).
        assert_eq!(c.pyramid_scales(1280, 720), full(1280, 720)[2..]);
        // 60 px on 1080 lines: from 0.6 · 0.709³ = 0.2138 (56 px), not 0.1516 (79 px).
        assert_eq!(c.pyramid_scales(1920, 1080), full(1920, 1080)[3..]);
        let facenet = MtcnnConfig::default();
        assert_eq!(facenet.pyramid_scales(1920, 1080), full(1920, 1080));
    }

    #[test]
    fn config_out_of_range_is_rejected() {
        for bad in [
            MtcnnConfig {
                factor: 1.0,
                ..Default::default()
            },
            MtcnnConfig {
                min_face_size: 0.0,
                ..Default::default()
            },
            MtcnnConfig {
                thresholds: [0.6, 1.5, 0.7],
                ..Default::default()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(MtcnnError::InvalidConfig(_))),
                "{bad:?}"
            );
        }
        assert!(MtcnnConfig::default().validate().is_ok());
    }
}
