//! Constant-velocity Kalman filter of a face box (centre and size), driven by
//! presentation time.
//!
//! The state is the box centre `cx, cy` and size `w, h`, each with its rate of
//! change: eight numbers, as in SORT/DeepSORT. We run it as **four independent
//! two-state filters** (value, velocity), one per box coordinate. This is not an
//! approximation: the motion of each coordinate is independent (block-diagonal
//! transition and process noise), the detector measures each coordinate with
//! independent noise (diagonal R), and the initial covariance is block diagonal,
//! so the 8×8 covariance stays block diagonal forever and the 8-state filter
//! equals four 2-state ones — with no matrix library and 2×2 algebra written out.
//!
//! **Motion noise is continuous white-noise acceleration** (Bar-Shalom's CWNA
//! model): over a gap `dt` the process noise is `q·[[dt³/3, dt²/2], [dt²/2, dt]]`.
//! Unlike the per-frame noise of SORT it does not depend on how time is cut:
//! predicting 20 ms then 13 ms gives the same state as predicting 33 ms, so
//! irregular timestamps, dropped frames and variable frame rate need nothing
//! special. All noises scale with the face's size (`sqrt(w·h)`), so the filter
//! behaves the same for a 20 px face and a 400 px one.
//!
//! Units: positions in pixels, time in seconds inside the filter (milliseconds
//! at the API), noise parameters in face sizes (see [`MotionConfig`]).

use serde::{Deserialize, Serialize};

use crate::geometry::BBox;

/// Noise parameters of the box filter, all relative to the face size
/// `s = sqrt(w·h)` so that one setting fits small and large faces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MotionConfig {
    /// Standard deviation of the detector's error on each box coordinate
    /// (centre x/y, width, height), in face sizes. Default 0.05: MTCNN boxes of
    /// a still face jitter by a few percent of the face size between frames.
    pub measurement_std: f64,
    /// Standard deviation of the unknown velocity of a newly seen face, in face
    /// sizes per second. Default 1.0: a face rarely crosses more than its own
    /// width per second, and the second detection pins the velocity down anyway.
    pub initial_velocity_std: f64,
    /// Square root of the white-noise acceleration density of the centre, in
    /// face sizes per second^1.5: after one second unobserved the centre's
    /// velocity is uncertain by this many sizes/s and its position by
    /// `value/√3` sizes. Default 2.0: heads start, stop and turn within a
    /// fraction of a second; lower values trust the constant velocity more.
    pub acceleration_noise: f64,
    /// Same for the width and height. Default 0.5: a face's apparent size changes
    /// far more slowly than its position (walking towards the camera).
    pub size_acceleration_noise: f64,
}

impl Default for MotionConfig {
    fn default() -> Self {
        Self {
            measurement_std: 0.05,
            initial_velocity_std: 1.0,
            acceleration_noise: 2.0,
            size_acceleration_noise: 0.5,
        }
    }
}

/// Kalman filter of one coordinate under constant velocity: state `[value,
/// velocity]` with covariance `[[pp, pv], [pv, vv]]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConstantVelocity {
    pub value: f64,
    pub velocity: f64,
    pub pp: f64,
    pub pv: f64,
    pub vv: f64,
}

impl ConstantVelocity {
    /// A filter that has seen one measurement `value` (variance `value_var`)
    /// and knows nothing of the velocity but its prior variance `velocity_var`.
    pub fn new(value: f64, value_var: f64, velocity_var: f64) -> Self {
        Self {
            value,
            velocity: 0.0,
            pp: value_var,
            pv: 0.0,
            vv: velocity_var,
        }
    }

    /// Moves the state `dt` seconds forward: `x ← F x`, `P ← F P Fᵀ + Q` with
    /// `F = [[1, dt], [0, 1]]` and CWNA noise `Q = q·[[dt³/3, dt²/2], [dt²/2, dt]]`
    /// (`q`: acceleration density, value-units² per s³). A non-positive or
    /// non-finite `dt` leaves the filter unchanged.
    pub fn predict(&mut self, dt: f64, q: f64) {
        if dt <= 0.0 || !dt.is_finite() {
            return;
        }
        let dt2 = dt * dt;
        self.value += self.velocity * dt;
        self.pp += 2.0 * dt * self.pv + dt2 * self.vv + q * dt2 * dt / 3.0;
        self.pv += dt * self.vv + q * dt2 / 2.0;
        self.vv += q * dt;
    }

    /// Folds in a measurement `z` of the value with variance `r`.
    pub fn update(&mut self, z: f64, r: f64) {
        let s = self.pp + r;
        let k_value = self.pp / s;
        let k_velocity = self.pv / s;
        let innovation = z - self.value;
        self.value += k_value * innovation;
        self.velocity += k_velocity * innovation;
        // P ← (I − K H) P, written out; stays symmetric.
        let vv = self.vv - k_velocity * self.pv;
        let pv = self.pv * (1.0 - k_value);
        let pp = self.pp * (1.0 - k_value);
        self.pp = pp;
        self.pv = pv;
        self.vv = vv;
    }
}

/// The face box as four [`ConstantVelocity`] filters: centre x, centre y,
/// width, height.
#[derive(Clone, Debug, PartialEq)]
pub struct BoxFilter {
    cx: ConstantVelocity,
    cy: ConstantVelocity,
    w: ConstantVelocity,
    h: ConstantVelocity,
}

/// Smallest width/height (px) the filter reports or scales noise by, so that a
/// box shrinking under extrapolation never turns empty or inside out.
const MIN_SIDE_PX: f64 = 1.0;

impl BoxFilter {
    /// A filter started from one detected box.
    pub fn new(bbox: &BBox, config: &MotionConfig) -> Self {
        let [cx, cy] = bbox.center();
        let (w, h) = (f64::from(bbox.width()), f64::from(bbox.height()));
        let size = face_size(w, h);
        let r = (config.measurement_std * size).powi(2);
        let v = (config.initial_velocity_std * size).powi(2);
        Self {
            cx: ConstantVelocity::new(f64::from(cx), r, v),
            cy: ConstantVelocity::new(f64::from(cy), r, v),
            w: ConstantVelocity::new(w, r, v),
            h: ConstantVelocity::new(h, r, v),
        }
    }

    /// Moves the box `dt_s` seconds forward under constant velocity.
    pub fn predict(&mut self, dt_s: f64, config: &MotionConfig) {
        let size = self.size();
        let q_centre = (config.acceleration_noise * size).powi(2);
        let q_size = (config.size_acceleration_noise * size).powi(2);
        self.cx.predict(dt_s, q_centre);
        self.cy.predict(dt_s, q_centre);
        self.w.predict(dt_s, q_size);
        self.h.predict(dt_s, q_size);
    }

    /// Folds in a detected box.
    pub fn update(&mut self, bbox: &BBox, config: &MotionConfig) {
        let [cx, cy] = bbox.center();
        let (w, h) = (f64::from(bbox.width()), f64::from(bbox.height()));
        let r = (config.measurement_std * face_size(w, h)).powi(2);
        self.cx.update(f64::from(cx), r);
        self.cy.update(f64::from(cy), r);
        self.w.update(w, r);
        self.h.update(h, r);
    }

    /// The box the filter believes in now (sides at least 1 px).
    pub fn bbox(&self) -> BBox {
        let half_w = self.w.value.max(MIN_SIDE_PX) / 2.0;
        let half_h = self.h.value.max(MIN_SIDE_PX) / 2.0;
        BBox {
            x1: (self.cx.value - half_w) as f32,
            y1: (self.cy.value - half_h) as f32,
            x2: (self.cx.value + half_w) as f32,
            y2: (self.cy.value + half_h) as f32,
        }
    }

    /// Face size `sqrt(w·h)` of the current estimate, px.
    pub fn size(&self) -> f64 {
        face_size(self.w.value, self.h.value)
    }

    /// Standard deviation of the centre's position (the larger of x and y), px:
    /// small right after a detection, growing while the face is unobserved.
    pub fn centre_std(&self) -> f64 {
        self.cx.pp.max(self.cy.pp).max(0.0).sqrt()
    }

    /// Velocity of the centre, px/s.
    pub fn centre_velocity(&self) -> [f64; 2] {
        [self.cx.velocity, self.cy.velocity]
    }
}

/// `sqrt(w·h)` with each side at least [`MIN_SIDE_PX`].
fn face_size(w: f64, h: f64) -> f64 {
    (w.max(MIN_SIDE_PX) * h.max(MIN_SIDE_PX)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn predict_adds_cwna_noise_and_moves_by_velocity() {
        let mut f = ConstantVelocity {
            value: 10.0,
            velocity: 2.0,
            pp: 1.0,
            pv: 0.5,
            vv: 4.0,
        };
        f.predict(0.5, 3.0);
        assert!(close(f.value, 11.0));
        // pp + 2 dt pv + dt² vv + q dt³/3 = 1 + 0.5 + 1 + 0.125
        assert!(close(f.pp, 2.625));
        // pv + dt vv + q dt²/2 = 0.5 + 2 + 0.375
        assert!(close(f.pv, 2.875));
        // vv + q dt = 4 + 1.5
        assert!(close(f.vv, 5.5));
    }

    #[test]
    fn prediction_does_not_depend_on_how_the_gap_is_split() {
        let start = ConstantVelocity {
            value: -3.0,
            velocity: 7.0,
            pp: 0.3,
            pv: 0.1,
            vv: 2.0,
        };
        let mut once = start;
        once.predict(0.033, 5.0);
        let mut twice = start;
        twice.predict(0.020, 5.0);
        twice.predict(0.013, 5.0);
        for (a, b) in [
            (once.value, twice.value),
            (once.pp, twice.pp),
            (once.pv, twice.pv),
            (once.vv, twice.vv),
        ] {
            assert!(close(a, b), "{a} vs {b}");
        }
    }

    #[test]
    fn update_matches_hand_computed_gain() {
        let mut f = ConstantVelocity {
            value: 0.0,
            velocity: 1.0,
            pp: 3.0,
            pv: 1.0,
            vv: 2.0,
        };
        f.update(4.0, 1.0);
        // S = 4, K = [0.75, 0.25], innovation 4
        assert!(close(f.value, 3.0));
        assert!(close(f.velocity, 2.0));
        assert!(close(f.pp, 0.75));
        assert!(close(f.pv, 0.25));
        assert!(close(f.vv, 1.75));
    }

    #[test]
    fn non_positive_gap_leaves_the_filter_unchanged() {
        let start = ConstantVelocity {
            value: 1.0,
            velocity: 1.0,
            pp: 1.0,
            pv: 0.0,
            vv: 1.0,
        };
        for dt in [0.0, -0.5, f64::NAN] {
            let mut f = start;
            f.predict(dt, 1.0);
            assert_eq!(f, start);
        }
    }

    #[test]
    fn box_filter_learns_a_constant_velocity() {
        let config = MotionConfig::default();
        let at = |t: f64| {
            let x = 100.0 + 300.0 * t;
            BBox {
                x1: x as f32,
                y1: 50.0,
                x2: (x + 40.0) as f32,
                y2: 90.0,
            }
        };
        let mut f = BoxFilter::new(&at(0.0), &config);
        for k in 1..=30 {
            f.predict(1.0 / 30.0, &config);
            f.update(&at(k as f64 / 30.0), &config);
        }
        assert!(
            (f.centre_velocity()[0] - 300.0).abs() < 5.0,
            "{:?}",
            f.centre_velocity()
        );
        f.predict(0.5, &config);
        let predicted = f.bbox();
        let truth = at(1.5);
        assert!(predicted.iou(&truth) > 0.9, "{predicted:?} vs {truth:?}");
    }
}
