//! The exact (erf) GELU of timm's `nn.GELU()`, fast on burn's CPU backend.
//!
//! burn's CPU backend computes GELU one element at a time on one core, with libm's
//! `erff`. That is a fifth of the ViT's inference time there (`perf record` on
//! `mimic bench --vit-batches 8`). For an f32 tensor on that backend without autodiff (the
//! analyzer, evaluation) [`gelu`] computes it on the host instead, split over the cores,
//! with [`erf`] (Abramowitz & Stegun 7.1.26: absolute error 1.5e-7 in exact arithmetic, below
//! 5e-7 in f32; the GELU values stay within 1e-6 of burn's). Everywhere
//! else, training included, it is burn's own `gelu`.

use burn::tensor::activation;
use burn::tensor::{DType, Device, Tensor, TensorData};
use rayon::prelude::*;

/// `0.5 x (1 + erf(x / √2))`.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if device != Device::flex() || device.is_autodiff() || x.dtype() != DType::F32 {
        return activation::gelu(x);
    }
    let dims = x.dims();
    let mut values = x
        .into_data()
        .try_into_vec::<f32>()
        .expect("an f32 tensor (checked above)");
    values
        .par_chunks_mut(4096)
        .for_each(|chunk| chunk.iter_mut().for_each(|v| *v = gelu_f32(*v)));
    Tensor::from_data(TensorData::new(values, dims), &device)
}

fn gelu_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// The error function within 5e-7 in f32 (Abramowitz & Stegun 7.1.26).
pub fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152_1,
        1.061_405_4,
    ];
    let z = x.abs();
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let y = 1.0 - poly * (-z * z).exp();
    y.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_within_its_bound_of_libm() {
        let mut worst = 0.0f32;
        for i in -6000..=6000 {
            let x = i as f32 * 1e-3;
            worst = worst.max((erf(x) - libm::erff(x)).abs());
        }
        assert!(worst < 5e-7, "max |erf - libm erff| = {worst}");
    }

    #[test]
    fn host_gelu_matches_burns_gelu_on_the_cpu_backend() {
        let device = Device::flex();
        let x = Tensor::<2>::random(
            [37, 700],
            burn::tensor::Distribution::Normal(0.0, 3.0),
            &device,
        );
        let ours = gelu(x.clone()).into_data().try_into_vec::<f32>().unwrap();
        let theirs = activation::gelu(x)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let worst = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-6, "max |ours - burn| = {worst}");
    }
}
