//! Class-balanced fine-tuning: the cross-entropy term of the loss corrected
//! for the training set's class prior, so that rare classes get predicted.
//!
//! FER+ Train is 37 % neutral and under 1 % contempt or disgust; plain
//! cross-entropy lets the majority win every doubt. Two corrections, both
//! scaled by a strength `τ` (0 = plain cross-entropy):
//!
//! - **Logit adjustment** (Menon et al. 2021, "Long-tail learning via logit
//!   adjustment"): train on `softmax(logits + τ · log π)`, predict with
//!   `softmax(logits)`. At `τ = 1` the trained model's plain argmax
//!   approximates the balanced (mean-class) error's Bayes rule.
//! - **Re-weighting**: each sample's cross-entropy is weighted by
//!   `Σ_c y_c · w_c` with `w_c ∝ π_c^{−τ}`, normalised so that the mean weight
//!   over the training set is 1 (the loss keeps its scale).
//!
//! `π` is the class prior of the training targets: the mean of their class
//! distributions (vote shares for probability labels).

use serde::{Deserialize, Serialize};

/// `--balance`: how the cross-entropy is corrected for the class prior.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BalanceMode {
    /// Plain cross-entropy.
    #[default]
    None,
    /// Logit adjustment: `τ · log π` added to the logits inside the loss.
    LogitAdjust,
    /// Per-sample weights `∝ π_c^{−τ}` of the target classes.
    Reweight,
}

/// The class prior of a training set and the correction derived from it.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassBalance {
    pub mode: BalanceMode,
    pub tau: f64,
    /// `π_c`: mean of the targets, sums to 1.
    pub prior: Vec<f64>,
    /// Re-weighting's per-class weights (all 1 for the other modes).
    pub class_weights: Vec<f64>,
}

/// Smallest prior a class is given, so that a class absent from the
/// training set does not make `log π` or `π^{−τ}` infinite.
const MIN_PRIOR: f64 = 1e-4;

impl ClassBalance {
    /// The prior of `targets` (each a class distribution of `classes` values)
    /// and the correction of `mode` at strength `tau`.
    pub fn new(mode: BalanceMode, tau: f64, targets: &[Vec<f32>], classes: usize) -> Self {
        let mut prior = vec![0.0f64; classes];
        for t in targets {
            for (p, y) in prior.iter_mut().zip(t) {
                *p += f64::from(*y);
            }
        }
        let total: f64 = prior.iter().sum();
        let share: Vec<f64> = prior
            .iter()
            .map(|p| p / total.max(f64::MIN_POSITIVE))
            .collect();
        let prior: Vec<f64> = share.iter().map(|p| p.max(MIN_PRIOR)).collect();
        let mut class_weights = vec![1.0; classes];
        if mode == BalanceMode::Reweight {
            let raw: Vec<f64> = prior.iter().map(|p| p.powf(-tau)).collect();
            // Mean weight over the training samples, Σ_c share_c · w_c, is 1.
            let mean: f64 = raw.iter().zip(&share).map(|(w, p)| w * p).sum();
            class_weights = raw.iter().map(|w| w / mean).collect();
        }
        Self {
            mode,
            tau,
            prior,
            class_weights,
        }
    }

    /// The weight of a sample with class distribution `target` (1 unless
    /// re-weighting).
    pub fn sample_weight(&self, target: &[f32]) -> f32 {
        target
            .iter()
            .zip(&self.class_weights)
            .map(|(y, w)| f64::from(*y) * w)
            .sum::<f64>() as f32
    }

    /// Logit adjustment's offsets `τ · log π_c`, to add to the logits inside the loss;
    /// `None` for the other modes.
    pub fn logit_offset_values(&self) -> Option<Vec<f32>> {
        (self.mode == BalanceMode::LogitAdjust && self.tau != 0.0).then(|| {
            self.prior
                .iter()
                .map(|p| (self.tau * p.ln()) as f32)
                .collect()
        })
    }

    /// Post-hoc logit adjustment's offsets `−τ · log π_c`, added to a trained model's
    /// logits at prediction ([`mimic::model::ModelConfig::logit_offsets`]).
    pub fn posthoc_offsets(&self) -> Vec<f32> {
        self.prior
            .iter()
            .map(|p| (-self.tau * p.ln()) as f32)
            .collect()
    }

    /// One line for the log: the mode, τ and the prior.
    pub fn describe(&self, classes: &[String]) -> String {
        let prior: Vec<String> = classes
            .iter()
            .zip(&self.prior)
            .map(|(c, p)| format!("{c} {:.1} %", p * 100.0))
            .collect();
        format!(
            "class balance {:?} (τ {}); train prior: {}",
            self.mode,
            self.tau,
            prior.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> Vec<Vec<f32>> {
        // Three of class 0, one of class 1, none of class 2.
        vec![
            vec![1.0, 0.0, 0.0],
            vec![1.0, 0.0, 0.0],
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
        ]
    }

    #[test]
    fn prior_is_the_mean_target_with_a_floor_for_absent_classes() {
        let b = ClassBalance::new(BalanceMode::None, 1.0, &targets(), 3);
        assert!((b.prior[0] - 0.75).abs() < 1e-12 && (b.prior[1] - 0.25).abs() < 1e-12);
        assert_eq!(b.prior[2], MIN_PRIOR);
        assert_eq!(b.sample_weight(&[0.0, 1.0, 0.0]), 1.0, "no re-weighting");
    }

    #[test]
    fn reweighting_makes_classes_count_equally_and_keeps_the_mean_weight_at_one() {
        let b = ClassBalance::new(BalanceMode::Reweight, 1.0, &targets(), 3);
        let t = targets();
        let weights: Vec<f32> = t.iter().map(|y| b.sample_weight(y)).collect();
        let mean = weights.iter().sum::<f32>() / weights.len() as f32;
        assert!((mean - 1.0).abs() < 1e-5, "{weights:?}");
        // Class 0's three samples weigh as much together as class 1's one.
        assert!((3.0 * weights[0] - weights[3]).abs() < 1e-5, "{weights:?}");
        // A mixed target's weight is the mix of the two class weights.
        let half = b.sample_weight(&[0.5, 0.5, 0.0]);
        assert!((half - 0.5 * (weights[0] + weights[3])).abs() < 1e-5);
    }

    #[test]
    fn logit_offsets_are_tau_log_prior_and_absent_without_logit_adjustment() {
        let b = ClassBalance::new(BalanceMode::LogitAdjust, 0.5, &targets(), 3);
        let v = b.logit_offset_values().unwrap();
        assert_eq!(v.len(), 3);
        assert!((v[0] - 0.5 * 0.75f32.ln()).abs() < 1e-6);
        assert!((v[1] - 0.5 * 0.25f32.ln()).abs() < 1e-6);
        let post = b.posthoc_offsets();
        assert!(
            v.iter().zip(&post).all(|(a, b)| (a + b).abs() < 1e-6),
            "post-hoc is the opposite"
        );
        assert!(
            ClassBalance::new(BalanceMode::Reweight, 1.0, &targets(), 3)
                .logit_offset_values()
                .is_none()
        );
        assert!(
            ClassBalance::new(BalanceMode::LogitAdjust, 0.0, &targets(), 3)
                .logit_offset_values()
                .is_none()
        );
    }
}
