//! Per-track smoothing of class probabilities over presentation time, against
//! values computed by hand.

use mimic::geometry::{BBox, FaceDetection};
use mimic::track::{ProbabilitySmoother, SmootherConfig, Tracker, TrackerConfig};

fn smoother(half_life_ms: f64) -> ProbabilitySmoother {
    ProbabilitySmoother::new(SmootherConfig { half_life_ms }).unwrap()
}

fn assert_close(got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(
            (f64::from(*g) - w).abs() < 1e-6,
            "got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn smoothing_matches_hand_computed_values_with_irregular_gaps() {
    let mut s = smoother(100.0);
    // First observation: as is.
    assert_close(&s.update(7, 0.0, &[1.0, 0.0]), &[1.0, 0.0]);
    // +100 ms = one half-life: w = 0.5 → 0.5·[1,0] + 0.5·[0,1].
    assert_close(&s.update(7, 100.0, &[0.0, 1.0]), &[0.5, 0.5]);
    // +50 ms: w = 0.5^0.5 = 0.7071068 → [0.3535534 + 0.2928932, 0.3535534].
    assert_close(&s.update(7, 150.0, &[1.0, 0.0]), &[0.6464466, 0.3535534]);
    // +300 ms: w = 0.125 → [0.125·0.6464466, 0.125·0.3535534 + 0.875].
    assert_close(&s.update(7, 450.0, &[0.0, 1.0]), &[0.0808058, 0.9191942]);
}

#[test]
fn smoothing_three_classes_at_250_ms_half_life() {
    let mut s = smoother(250.0);
    s.update(1, 1000.0, &[0.6, 0.3, 0.1]);
    // +40 ms: w = 2^(-40/250) = e^(-0.1109035) = 0.8950251;
    // 0.8950251·[0.6, 0.3, 0.1] + 0.1049749·[0.2, 0.5, 0.3]
    assert_close(
        &s.update(1, 1040.0, &[0.2, 0.5, 0.3]),
        &[0.5580100, 0.3209950, 0.1209950],
    );
    // +215 ms: w = 2^(-0.86) = 0.5509526;
    // 0.5509526·[0.5580100, 0.3209950, 0.1209950] + 0.4490474·[0, 0.1, 0.9]
    assert_close(
        &s.update(1, 1255.0, &[0.0, 0.1, 0.9]),
        &[0.3074371, 0.2217578, 0.4708052],
    );
}

#[test]
fn output_is_renormalised_when_the_input_does_not_sum_to_one() {
    let mut s = smoother(100.0);
    assert_close(&s.update(1, 0.0, &[2.0, 2.0]), &[0.5, 0.5]);
    // w = 0.5: 0.5·[0.5, 0.5] + 0.5·[3, 1] = [1.75, 0.75] → / 2.5
    assert_close(&s.update(1, 100.0, &[3.0, 1.0]), &[0.7, 0.3]);
}

#[test]
fn smoothing_depends_on_time_not_frame_count() {
    // The same step from class 0 to class 1 at 30 and at 60 fps: the last
    // class-0 frame is at 1000 ms in both; 500 ms later (two half-lives) class 0
    // keeps exactly 0.5² = 0.25 at both rates.
    for fps in [30.0, 60.0] {
        let mut s = smoother(250.0);
        let step = 1000.0 / fps;
        let mut last = Vec::new();
        let mut k = 0;
        loop {
            let t = k as f64 * step;
            if t > 1500.0 + 1e-9 {
                break;
            }
            let p = if t <= 1000.0 + 1e-9 {
                [1.0, 0.0]
            } else {
                [0.0, 1.0]
            };
            last = s.update(1, t, &p);
            k += 1;
        }
        assert_close(&last, &[0.25, 0.75]);
    }
}

#[test]
fn tracks_are_smoothed_independently_and_forgotten_on_request() {
    let mut s = smoother(100.0);
    s.update(1, 0.0, &[1.0, 0.0]);
    s.update(2, 0.0, &[0.0, 1.0]);
    assert_close(&s.update(1, 100.0, &[0.0, 1.0]), &[0.5, 0.5]);
    assert_close(&s.update(2, 100.0, &[0.0, 1.0]), &[0.0, 1.0]);
    s.forget(1);
    assert_eq!(s.len(), 1);
    assert_close(&s.update(1, 110.0, &[0.3, 0.7]), &[0.3, 0.7]);
}

#[test]
fn a_retired_track_loses_its_smoothing_state() {
    let face = FaceDetection {
        bbox: BBox {
            x1: 100.0,
            y1: 100.0,
            x2: 160.0,
            y2: 160.0,
        },
        score: 0.99,
        landmarks: [[0.0; 2]; 5],
    };
    let mut tracker = Tracker::new(TrackerConfig::default()).unwrap();
    let mut s = smoother(250.0);
    let mut step = |t: f64, faces: &[FaceDetection], probs: [f32; 2]| {
        let assignments = tracker.update(t, faces, None);
        for id in tracker.drain_retired() {
            s.forget(id);
        }
        let out: Vec<(u64, Vec<f32>)> = assignments
            .iter()
            .map(|a| (a.track_id, s.update(a.track_id, t, &probs)))
            .collect();
        (out, s.len())
    };
    step(0.0, &[face], [1.0, 0.0]);
    let (out, _) = step(250.0, &[face], [0.0, 1.0]);
    assert_eq!(out[0].0, 1);
    assert_close(&out[0].1, &[0.5, 0.5]);
    // Gone for 1.5 s: track 1 retires, its state goes.
    let (_, live) = step(1800.0, &[], [0.0, 0.0]);
    assert_eq!(live, 0);
    let (out, _) = step(1833.0, &[face], [0.2, 0.8]);
    assert_eq!(out[0].0, 2);
    assert_close(&out[0].1, &[0.2, 0.8]);
}
