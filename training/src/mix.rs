//! Mixed images for MIMIC fine-tuning: mixup (Zhang et al. 2018) and cutmix
//! (Yun et al. 2019), with `λ ~ Beta(α, α)`.
//!
//! A mixed image of sources `a` and `b` carries the class distribution
//! `λ·y_a + (1 − λ)·y_b`, where `λ` is the share of `a` in the image (for
//! cutmix, the area actually kept from `a` after the box is clipped to the
//! image). Images are channel-major `f32` buffers `[channels, size, size]`.

use rand::Rng;
use rand_distr::{Beta, Distribution};

/// Which mixing a fine-tuning run uses.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum MixMode {
    /// No mixed images (plain supervised contrastive learning).
    None,
    Mixup,
    Cutmix,
    /// Each mixed image is mixup or cutmix with probability ½.
    Both,
}

/// A sample of `Beta(α, α)`.
pub fn sample_lambda(alpha: f64, rng: &mut impl Rng) -> f32 {
    Beta::new(alpha, alpha)
        .expect("alpha > 0 is checked when options are parsed")
        .sample(rng) as f32
}

/// Mixup: `λ·a + (1 − λ)·b`.
pub fn mixup(a: &[f32], b: &[f32], lambda: f32) -> Vec<f32> {
    a.iter()
        .zip(b)
        .map(|(x, y)| lambda * x + (1.0 - lambda) * y)
        .collect()
}

/// The cutmix box `(top, left, height, width)` for share `lambda` of the
/// first image, centred uniformly at random and clipped to the image (timm's
/// `rand_bbox`): side `size · √(1 − λ)`.
pub fn cutmix_box(size: usize, lambda: f32, rng: &mut impl Rng) -> (usize, usize, usize, usize) {
    let cut = (size as f32 * (1.0 - lambda).sqrt()).round() as isize;
    let cy = rng.random_range(0..size) as isize;
    let cx = rng.random_range(0..size) as isize;
    let clip = |v: isize| v.clamp(0, size as isize) as usize;
    let (y0, y1) = (clip(cy - cut / 2), clip(cy + cut / 2));
    let (x0, x1) = (clip(cx - cut / 2), clip(cx + cut / 2));
    (y0, x0, y1 - y0, x1 - x0)
}

/// Cutmix: `a` with the box `(top, left, height, width)` taken from `b`.
/// Returns the image and the actual share of `a`, `1 − box area / image area`.
pub fn cutmix(
    a: &[f32],
    b: &[f32],
    size: usize,
    bbox: (usize, usize, usize, usize),
) -> (Vec<f32>, f32) {
    let (top, left, h, w) = bbox;
    let plane = size * size;
    let mut out = a.to_vec();
    for ch in 0..a.len() / plane {
        for y in top..top + h {
            let row = ch * plane + y * size;
            out[row + left..row + left + w].copy_from_slice(&b[row + left..row + left + w]);
        }
    }
    (out, 1.0 - (h * w) as f32 / plane as f32)
}

/// `λ·y_a + (1 − λ)·y_b`.
pub fn mix_targets(ya: &[f32], yb: &[f32], lambda: f32) -> Vec<f32> {
    mixup(ya, yb, lambda)
}

/// Mixes `a` (target `ya`) with `b` (target `yb`) as `mode` says; `Both`
/// picks mixup or cutmix with probability ½. Returns the image and target.
#[allow(clippy::too_many_arguments)]
pub fn mix_pair(
    mode: MixMode,
    alpha: f64,
    a: &[f32],
    ya: &[f32],
    b: &[f32],
    yb: &[f32],
    size: usize,
    rng: &mut impl Rng,
) -> (Vec<f32>, Vec<f32>) {
    let use_cutmix = match mode {
        MixMode::None => return (a.to_vec(), ya.to_vec()),
        MixMode::Mixup => false,
        MixMode::Cutmix => true,
        MixMode::Both => rng.random_bool(0.5),
    };
    let lambda = sample_lambda(alpha, rng);
    if use_cutmix {
        let bbox = cutmix_box(size, lambda, rng);
        let (img, share) = cutmix(a, b, size, bbox);
        (img, mix_targets(ya, yb, share))
    } else {
        (mixup(a, b, lambda), mix_targets(ya, yb, lambda))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mixup_blends_images_and_targets_with_the_same_lambda() {
        let img = mixup(&[1.0, 0.0], &[0.0, 1.0], 0.3);
        assert_eq!(img, vec![0.3, 0.7]);
        let y = mix_targets(&[1.0, 0.0, 0.0], &[0.0, 0.5, 0.5], 0.3);
        assert!(
            (y[0] - 0.3).abs() < 1e-6 && (y[1] - 0.35).abs() < 1e-6 && (y[2] - 0.35).abs() < 1e-6
        );
        assert!((y.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn cutmix_share_is_the_area_kept_from_the_first_image() {
        // 4x4, one channel, box of 2x2 at (1, 1): 4 of 16 pixels from b.
        let a = vec![1.0; 16];
        let b = vec![0.0; 16];
        let (img, share) = cutmix(&a, &b, 4, (1, 1, 2, 2));
        assert_eq!(share, 0.75);
        assert_eq!(img.iter().filter(|v| **v == 0.0).count(), 4);
        assert_eq!(img[5], 0.0);
        assert_eq!(img[0], 1.0);
        // The target follows the realised share, not the sampled lambda.
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for _ in 0..50 {
            let (img, y) = mix_pair(
                MixMode::Cutmix,
                1.0,
                &a,
                &[1.0, 0.0],
                &b,
                &[0.0, 1.0],
                4,
                &mut rng,
            );
            let kept = img.iter().sum::<f32>() / 16.0;
            assert!((y[0] - kept).abs() < 1e-6, "{y:?} vs {kept}");
        }
    }

    #[test]
    fn cutmix_box_stays_inside_and_matches_lambda_when_unclipped() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for _ in 0..100 {
            let (t, l, h, w) = cutmix_box(48, 0.75, &mut rng);
            assert!(t + h <= 48 && l + w <= 48);
            assert!(h <= 24 && w <= 24, "side 48·√0.25 = 24");
        }
    }

    #[test]
    fn lambda_follows_beta_alpha_alpha() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let n = 20_000;
        let xs: Vec<f32> = (0..n).map(|_| sample_lambda(0.4, &mut rng)).collect();
        let mean = xs.iter().sum::<f32>() / n as f32;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n as f32;
        // Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)) = 0.1389 for a = 0.4.
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        assert!((var - 0.1389).abs() < 0.005, "{var}");
    }
}
