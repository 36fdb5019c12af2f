//! Causal smoothing of each track's class probabilities over presentation time.
//!
//! Per-frame expression labels flicker: the same face classified on
//! consecutive frames wavers between neighbouring classes. We smooth each
//! track's probability vector with an exponential moving average whose memory
//! is set in **milliseconds, not frames**: after a gap `dt` the past keeps the
//! weight `0.5^(dt / half_life)`, the new observation the rest. A 60 fps and a
//! 15 fps video, or a live stream that drops frames, are smoothed alike, and a
//! face that reappears after a long gap starts almost afresh. It is causal
//! (uses only frames up to now), so live mode can write it immediately.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{TrackConfigError, check_range};

/// Settings of [`ProbabilitySmoother`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmootherConfig {
    /// Time after which an observation's weight has halved, ms; 0 turns
    /// smoothing off (the output is the raw vector). Default 250 ms: at 30 fps
    /// each frame keeps ~91 % of the past (an effective window of ~11 frames,
    /// time constant 360 ms), enough to quiet frame-to-frame flicker, while a
    /// real expression change (macro-expressions last 0.5–4 s) is half-way
    /// through within a quarter of a second.
    pub half_life_ms: f64,
}

impl Default for SmootherConfig {
    fn default() -> Self {
        Self {
            half_life_ms: 250.0,
        }
    }
}

impl SmootherConfig {
    /// Checks the half-life is finite and not negative.
    pub fn validate(&self) -> Result<(), TrackConfigError> {
        check_range("half_life_ms", self.half_life_ms, 0.0, f64::INFINITY)
    }
}

/// Weight the past keeps after a gap of `dt_ms`: `0.5^(dt_ms / half_life_ms)`.
/// A non-positive gap keeps the past whole (weight 1); a zero half-life keeps
/// nothing (weight 0), i.e. no smoothing.
pub fn past_weight(dt_ms: f64, half_life_ms: f64) -> f64 {
    if half_life_ms <= 0.0 {
        return 0.0;
    }
    if dt_ms.is_nan() || dt_ms <= 0.0 {
        return 1.0;
    }
    0.5f64.powf(dt_ms / half_life_ms)
}

/// `past·w + new·(1 − w)`, renormalised to sum 1 (the inputs already nearly
/// do; this removes rounding drift and copes with inputs that do not).
/// `past` and `new`: [classes]. Returns `new` unchanged when the blend cannot
/// be normalised (a zero or non-finite sum).
pub fn blend(past: &[f64], new: &[f32], w: f64) -> Vec<f64> {
    let mixed: Vec<f64> = past
        .iter()
        .zip(new)
        .map(|(&p, &n)| w * p + (1.0 - w) * f64::from(n))
        .collect();
    let sum: f64 = mixed.iter().sum();
    if sum > 0.0 && sum.is_finite() {
        mixed.into_iter().map(|p| p / sum).collect()
    } else {
        new.iter().map(|&n| f64::from(n)).collect()
    }
}

/// The smoothed state of one track.
#[derive(Clone, Debug)]
struct TrackState {
    pts_ms: f64,
    probs: Vec<f64>,
}

/// Per-track exponential smoothing of probability vectors over presentation
/// time. Feed each (track, frame) once, in presentation order per track, and
/// call [`ProbabilitySmoother::forget`] for the ids the tracker retires.
#[derive(Clone, Debug)]
pub struct ProbabilitySmoother {
    config: SmootherConfig,
    tracks: HashMap<u64, TrackState>,
}

impl ProbabilitySmoother {
    pub fn new(config: SmootherConfig) -> Result<Self, TrackConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            tracks: HashMap::new(),
        })
    }

    /// Folds this frame's raw probabilities `probs` ([classes]) of track
    /// `track_id` at `pts_ms` into the track's average and returns the smoothed
    /// vector (sums to 1). The first observation of a track is returned as is
    /// (renormalised); so is an observation whose class count differs from the
    /// track's past (the state restarts). A timestamp that does not move forward
    /// counts as a zero gap (the past keeps its whole weight). `pts_ms` must be
    /// finite, as decoded presentation times are.
    pub fn update(&mut self, track_id: u64, pts_ms: f64, probs: &[f32]) -> Vec<f32> {
        let past = self
            .tracks
            .get(&track_id)
            .filter(|state| state.probs.len() == probs.len());
        let (smoothed, pts_ms) = match past {
            Some(state) => {
                let w = past_weight(pts_ms - state.pts_ms, self.config.half_life_ms);
                // Time never runs backwards in the state, whatever the input does.
                (blend(&state.probs, probs, w), pts_ms.max(state.pts_ms))
            }
            None => (blend(&vec![0.0; probs.len()], probs, 0.0), pts_ms),
        };
        let out = smoothed.iter().map(|&p| p as f32).collect();
        self.tracks.insert(
            track_id,
            TrackState {
                pts_ms,
                probs: smoothed,
            },
        );
        out
    }

    /// Drops the state of a retired track.
    pub fn forget(&mut self, track_id: u64) {
        self.tracks.remove(&track_id);
    }

    /// Number of tracks with a state.
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_weight_halves_per_half_life() {
        assert_eq!(past_weight(100.0, 100.0), 0.5);
        assert_eq!(past_weight(300.0, 100.0), 0.125);
        assert!((past_weight(50.0, 100.0) - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-15);
        assert_eq!(past_weight(0.0, 100.0), 1.0);
        assert_eq!(past_weight(-5.0, 100.0), 1.0);
        assert_eq!(past_weight(40.0, 0.0), 0.0);
    }

    #[test]
    fn blend_renormalises() {
        let b = blend(&[0.5, 0.5], &[2.0, 0.0], 0.5);
        assert!((b[0] - 1.25 / 1.5).abs() < 1e-12 && (b[1] - 0.25 / 1.5).abs() < 1e-12);
        assert_eq!(blend(&[0.0, 0.0], &[0.0, 0.0], 0.5), vec![0.0, 0.0]);
    }

    #[test]
    fn zero_half_life_returns_raw_probabilities() {
        let mut s = ProbabilitySmoother::new(SmootherConfig { half_life_ms: 0.0 }).unwrap();
        s.update(1, 0.0, &[0.2, 0.8]);
        assert_eq!(s.update(1, 33.0, &[0.9, 0.1]), vec![0.9, 0.1]);
    }

    #[test]
    fn invalid_half_life_is_rejected() {
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(ProbabilitySmoother::new(SmootherConfig { half_life_ms: bad }).is_err());
        }
    }

    #[test]
    fn class_count_change_restarts_the_track() {
        let mut s = ProbabilitySmoother::new(SmootherConfig::default()).unwrap();
        s.update(3, 0.0, &[1.0, 0.0]);
        assert_eq!(s.update(3, 10.0, &[0.0, 0.5, 0.5]), vec![0.0, 0.5, 0.5]);
    }
}
