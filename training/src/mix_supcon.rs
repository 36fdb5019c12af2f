//! The fine-tuning losses: soft-label cross-entropy and MIMIC's
//! mix-supervised contrastive loss.
//!
//! Every sample of a batch carries a class distribution `y_i` (one-hot for a
//! clean image with a hard label, the crowd's vote distribution for FER+
//! probability labels, `λ·y_a + (1−λ)·y_b` for an image mixed from `a` and
//! `b`). Two samples are positives in proportion to how much class mass they
//! share, so mixed images widen each class's set of positives by exactly their
//! mixing weights.
//!
//! The sample weights depend only on the labels, which the host knows before
//! the forward pass: they are computed here as plain numbers
//! ([`supcon_coefficients`]) and enter the graph as one constant matrix, so
//! the loss needs no read-back from the device.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};

/// Positive weights `w_ij = Σ_c min(y_ic, y_jc)` (class overlap of two
/// distributions), `w_ii = 0`; row-major `[batch · batch]`.
pub fn positive_weights(targets: &[Vec<f32>]) -> Vec<f32> {
    let n = targets.len();
    let mut w = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            if i != j {
                w[i * n + j] = targets[i]
                    .iter()
                    .zip(&targets[j])
                    .map(|(a, b)| a.min(*b))
                    .sum();
            }
        }
    }
    w
}

/// The constant matrix `C` with `loss = −Σ_ij C_ij · log p_ij`:
/// `C_ij = w_ij / (W_i · A)` where `W_i = Σ_j w_ij` and `A` is the number of
/// anchors with `W_i > 0`; rows of anchors without positives are 0. Returns
/// `(C [batch · batch], A)`.
pub fn supcon_coefficients(targets: &[Vec<f32>]) -> (Vec<f32>, usize) {
    let n = targets.len();
    let mut c = positive_weights(targets);
    let sums: Vec<f32> = c.chunks(n.max(1)).map(|r| r.iter().sum()).collect();
    let anchors = sums.iter().filter(|&&s| s > 0.0).count();
    for (i, row) in c.chunks_mut(n.max(1)).enumerate() {
        let scale = if sums[i] > 0.0 {
            1.0 / (sums[i] * anchors as f32)
        } else {
            0.0
        };
        row.iter_mut().for_each(|v| *v *= scale);
    }
    (c, anchors)
}

/// Added to a sample's similarity with itself so that it drops out of the
/// softmax denominator (`exp` of it is exactly 0 in f32).
const SELF_MASK: f32 = -1e9;

/// Mix-supervised contrastive loss (MIMIC), SupCon with overlap weights.
///
/// With `z_i` the L2-normalised projection of sample `i`, `y_i` its class
/// distribution, `w_ij = Σ_c min(y_ic, y_jc)` and temperature `τ`:
///
/// ```text
/// L_i = −(1 / Σ_{j≠i} w_ij) · Σ_{j≠i} w_ij · log( exp(z_i·z_j/τ) / Σ_{k≠i} exp(z_i·z_k/τ) )
/// L   = mean of L_i over the anchors i with Σ_{j≠i} w_ij > 0
/// ```
///
/// (0 when no anchor has a positive). The fine-tuning objective is
/// `CE + w · L` ([`soft_cross_entropy`]).
///
/// `projections: [batch, d]` (not yet normalised), `targets`: one
/// distribution per sample → scalar `[1]`.
pub fn mix_supcon_loss(
    projections: Tensor<2>,
    targets: &[Vec<f32>],
    temperature: f64,
) -> Tensor<1> {
    let [n, _] = projections.dims();
    assert_eq!(n, targets.len(), "one target per projection");
    let device = projections.device();
    let (coefficients, anchors) = supcon_coefficients(targets);
    if anchors == 0 {
        return (projections.sum() * 0.0).reshape([1]);
    }
    let z = l2_normalize(projections);
    let similarity =
        z.clone().matmul(z.transpose()).div_scalar(temperature) + self_mask(n, &device);
    let log_prob = log_softmax(similarity, 1);
    let c = Tensor::<2>::from_data(TensorData::new(coefficients, [n, n]), &device);
    (log_prob * c).sum().neg().reshape([1])
}

/// `[n, n]` matrix with [`SELF_MASK`] on the diagonal, 0 elsewhere.
fn self_mask(n: usize, device: &Device) -> Tensor<2> {
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        m[i * n + i] = SELF_MASK;
    }
    Tensor::from_data(TensorData::new(m, [n, n]), device)
}

/// Rows scaled to unit L2 norm: `x: [n, d]` → `[n, d]`.
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

/// Cross-entropy against class distributions, mean over the batch:
/// `−(1/n) Σ_i Σ_c y_ic · log softmax(logits_i)_c`.
///
/// `logits: [n, classes]`, `targets: [n, classes]` (rows sum to 1) → `[1]`.
pub fn soft_cross_entropy(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let [n, _] = logits.dims();
    (log_softmax(logits, 1) * targets)
        .sum()
        .neg()
        .div_scalar(n as f64)
        .reshape([1])
}

/// Label smoothing: `(1 − ε)·y + ε/C` for a distribution `y` over `C` classes.
pub fn smooth_labels(target: &[f32], epsilon: f32) -> Vec<f32> {
    let uniform = epsilon / target.len() as f32;
    target
        .iter()
        .map(|y| (1.0 - epsilon) * y + uniform)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(rows: &[[f32; 2]]) -> Tensor<2> {
        let data: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(data, [rows.len(), 2]), &Device::flex())
    }

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_data().try_into_vec::<f32>().unwrap()[0]
    }

    #[test]
    fn positive_weights_are_class_overlaps_without_self_pairs() {
        let t = vec![vec![1.0, 0.0], vec![0.3, 0.7], vec![0.0, 1.0]];
        let w = positive_weights(&t);
        let expect = [0.0, 0.3, 0.0, 0.3, 0.0, 0.7, 0.0, 0.7, 0.0];
        for (a, b) in w.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{w:?}");
        }
    }

    #[test]
    fn coefficients_normalise_each_anchor_and_skip_anchors_without_positives() {
        // Two "A" samples and a lone "B": only the two A anchors count.
        let t = vec![vec![1.0, 0.0], vec![1.0, 0.0], vec![0.0, 1.0]];
        let (c, anchors) = supcon_coefficients(&t);
        assert_eq!(anchors, 2);
        assert_eq!(c, vec![0.0, 0.5, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn hard_label_loss_matches_hand_computation_at_two_temperatures() {
        let z = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]];
        let t = vec![vec![1.0, 0.0], vec![1.0, 0.0], vec![0.0, 1.0]];
        // Anchors 0 and 1: one positive at similarity 1/τ, one negative at 0:
        // L = ln(1 + e^{1/τ}) − 1/τ.
        let l1 = scalar(mix_supcon_loss(tensor(&z), &t, 1.0));
        assert!((l1 - 0.313_261_7).abs() < 1e-5, "{l1}");
        let l05 = scalar(mix_supcon_loss(tensor(&z), &t, 0.5));
        assert!((l05 - 0.126_928_0).abs() < 1e-5, "{l05}");
    }

    #[test]
    fn mixed_label_loss_weights_positives_by_overlap() {
        // y1 is a 0.3/0.7 mix of the classes of samples 0 and 2.
        // By hand (τ = 0.5): L0 = ln(e^1.2+1)−1.2, L2 = ln(1+e^1.6)−1.6,
        // L1 = −(0.3(1.2−Z) + 0.7(1.6−Z)) with Z = ln(e^1.2+e^1.6); mean = 0.360066.
        let z = [[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]];
        let t = vec![vec![1.0, 0.0], vec![0.3, 0.7], vec![0.0, 1.0]];
        let l = scalar(mix_supcon_loss(tensor(&z), &t, 0.5));
        assert!((l - 0.360_066_15).abs() < 1e-5, "{l}");
        // Projections are normalised inside: scaling z changes nothing.
        let z2 = [[3.0, 0.0], [1.2, 1.6], [0.0, 0.5]];
        let l2 = scalar(mix_supcon_loss(tensor(&z2), &t, 0.5));
        assert!((l - l2).abs() < 1e-5);
    }

    #[test]
    fn loss_is_zero_without_any_positive_pair() {
        let t = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let l = scalar(mix_supcon_loss(tensor(&[[1.0, 0.0], [0.0, 1.0]]), &t, 0.1));
        assert_eq!(l, 0.0);
    }

    #[test]
    fn soft_cross_entropy_matches_hand_computation() {
        let d = Device::flex();
        let logits = Tensor::<2>::from_data(TensorData::new(vec![2.0f32, 0.0, -1.0], [1, 3]), &d);
        let y = Tensor::<2>::from_data(TensorData::new(vec![0.7f32, 0.3, 0.0], [1, 3]), &d);
        // −(0.7·(2 − lse) + 0.3·(0 − lse)), lse = ln(e² + 1 + e⁻¹)
        let l = scalar(soft_cross_entropy(logits, y));
        assert!((l - 0.769_846_0).abs() < 1e-5, "{l}");
    }

    #[test]
    fn label_smoothing_moves_epsilon_mass_to_uniform() {
        let s = smooth_labels(&[1.0, 0.0, 0.0, 0.0], 0.1);
        for (a, b) in s.iter().zip([0.925, 0.025, 0.025, 0.025]) {
            assert!((a - b).abs() < 1e-6, "{s:?}");
        }
    }
}
