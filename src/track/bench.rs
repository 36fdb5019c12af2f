//! Cost of tracking per frame, on a synthetic crowd: for `mimic bench` and
//! BENCHMARKS.md (a measurement to print, never a timed test).
//!
//! The scene: `faces` faces of 40 px on a grid 100 px apart, each drifting on
//! its own slow ellipse (about 1 face size per second) with ±1 px detector
//! jitter, 30 fps, and each detection missed with probability 5 % (so lost
//! tracks and re-association are exercised). Detections and features are
//! generated before the clock starts; the timed part is exactly what the
//! pipeline runs per frame: `Tracker::update`, `drain_retired`, and
//! `ProbabilitySmoother::update` for every face (8 classes).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::{ProbabilitySmoother, SmootherConfig, Tracker, TrackerConfig};
use crate::geometry::{BBox, FaceDetection};

/// What to measure.
#[derive(Clone, Debug)]
pub struct TrackerBench {
    pub faces: usize,
    pub frames: usize,
    /// Pass an appearance feature of this length per detection (the ViT's
    /// pooled feature), or none.
    pub feature_dim: Option<usize>,
}

/// What was measured.
#[derive(Clone, Debug)]
pub struct TrackerCost {
    pub faces: usize,
    pub frames: usize,
    pub total: Duration,
    /// Mean wall time per frame, µs.
    pub per_frame_us: f64,
    /// Mean wall time per detected face, µs.
    pub per_face_us: f64,
    /// Distinct track ids handed out: `faces` when no identity broke.
    pub distinct_ids: usize,
}

/// Runs the synthetic crowd through a default tracker and smoother.
pub fn measure(bench: &TrackerBench) -> TrackerCost {
    let scene = crowd_scene(bench.faces, bench.frames, bench.feature_dim);
    let mut tracker = Tracker::new(TrackerConfig::default()).expect("default config is valid");
    let mut smoother =
        ProbabilitySmoother::new(SmootherConfig::default()).expect("default config is valid");
    let probs = [0.3f32, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05];
    let mut ids = HashSet::new();
    let mut detected = 0usize;
    let start = Instant::now();
    for frame in &scene {
        let assignments =
            tracker.update(frame.pts_ms, &frame.detections, frame.features.as_deref());
        for id in tracker.drain_retired() {
            smoother.forget(id);
        }
        for a in &assignments {
            std::hint::black_box(smoother.update(a.track_id, frame.pts_ms, &probs));
            ids.insert(a.track_id);
        }
        detected += assignments.len();
    }
    let total = start.elapsed();
    TrackerCost {
        faces: bench.faces,
        frames: bench.frames,
        total,
        per_frame_us: total.as_secs_f64() * 1e6 / bench.frames.max(1) as f64,
        per_face_us: total.as_secs_f64() * 1e6 / detected.max(1) as f64,
        distinct_ids: ids.len(),
    }
}

/// One synthetic frame.
pub struct SyntheticFrame {
    pub pts_ms: f64,
    pub detections: Vec<FaceDetection>,
    pub features: Option<Vec<Vec<f32>>>,
}

/// The crowd described in the module docs; deterministic.
pub fn crowd_scene(faces: usize, frames: usize, feature_dim: Option<usize>) -> Vec<SyntheticFrame> {
    let mut rng = SplitMix64(0x5eed);
    let columns = (faces as f64).sqrt().ceil().max(1.0) as usize;
    let phases: Vec<f64> = (0..faces)
        .map(|_| rng.unit() * std::f64::consts::TAU)
        .collect();
    let identities: Vec<Vec<f32>> = (0..faces)
        .map(|_| {
            (0..feature_dim.unwrap_or(0))
                .map(|_| rng.unit() as f32 - 0.5)
                .collect()
        })
        .collect();
    (0..frames)
        .map(|k| {
            let t = k as f64 / 30.0;
            let mut detections = Vec::new();
            let mut features = Vec::new();
            for f in 0..faces {
                if rng.unit() < 0.05 {
                    continue;
                }
                let (row, col) = (f / columns, f % columns);
                let cx =
                    60.0 + 100.0 * col as f64 + 20.0 * (t + phases[f]).cos() + rng.unit() * 2.0
                        - 1.0;
                let cy =
                    60.0 + 100.0 * row as f64 + 10.0 * (t + phases[f]).sin() + rng.unit() * 2.0
                        - 1.0;
                let bbox = BBox {
                    x1: (cx - 20.0) as f32,
                    y1: (cy - 20.0) as f32,
                    x2: (cx + 20.0) as f32,
                    y2: (cy + 20.0) as f32,
                };
                detections.push(FaceDetection {
                    bbox,
                    score: 0.99,
                    landmarks: [[0.0; 2]; 5],
                });
                features.push(
                    identities[f]
                        .iter()
                        .map(|&v| v + 0.05 * (rng.unit() as f32 - 0.5))
                        .collect(),
                );
            }
            SyntheticFrame {
                pts_ms: t * 1000.0,
                detections,
                features: feature_dim.map(|_| features),
            }
        })
        .collect()
}

/// A tiny deterministic generator (SplitMix64), enough for synthetic scenes.
struct SplitMix64(u64);

impl SplitMix64 {
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synthetic_crowd_keeps_one_id_per_face() {
        let cost = measure(&TrackerBench {
            faces: 25,
            frames: 60,
            feature_dim: Some(16),
        });
        assert_eq!(cost.distinct_ids, 25);
        assert_eq!(cost.frames, 60);
    }
}
