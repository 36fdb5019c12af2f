//! The exact (erf) GELU of timm's `nn.GELU()`, split over the cores on burn's CPU backend.
//!
//! burn's CPU backend (Flex) computes GELU and its gradient one element at a time on one
//! core, with libm's `erff`. That was a fifth of the ViT's inference time there (`perf record`
//! on `mimic bench --vit-batches 8`) and an eighth of a training step. On that backend, with
//! or without autodiff, [`gelu`] is a backend extension ([`ParallelGelu`]) that runs the
//! forward pass and, in training, its own backward pass over the cores in chunks, with erf by
//! Abramowitz & Stegun 7.1.26 (absolute error 1.5e-7 in exact arithmetic, below 5e-7 in
//! f32; values stay within 1e-6 of burn's, gradients within 2e-6). The backward pass reuses the
//! forward's exponential: `exp(−x²/2)` is both erf's factor and the normal density. That
//! exponential is written out (`exp_nonpositive`) so that both loops have no branch and no
//! library call and vectorize, compiled per SIMD extension. On every other device (the GPU
//! runtimes) it is burn's own `gelu`.

use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind, unary},
};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Dispatch, Flex, backend_extension};
use burn::tensor::activation;
use burn::tensor::{DType, Device, Tensor};
use multiversion::multiversion;
use rayon::prelude::*;

/// Elements per rayon task: large enough that scheduling costs nothing, small enough that
/// the MLP activations of one face (37 tokens × 768) still split over two cores.
const CHUNK: usize = 8192;

/// `0.5 x (1 + erf(x / √2))`, any shape.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.device().without_autodiff() != Device::flex() || x.dtype() != DType::F32 {
        return activation::gelu(x);
    }
    Tensor::from_dispatch(<Dispatch as ParallelGelu>::parallel_gelu(x.into_dispatch()))
}

/// GELU as one operation of its own on burn's CPU backend, so that its forward and backward
/// passes can run over the cores.
#[backend_extension(Flex, Autodiff)]
pub trait ParallelGelu: burn::backend::Backend {
    /// `x: any shape, f32` → `GELU(x)`, same shape.
    fn parallel_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl ParallelGelu for Flex {
    fn parallel_gelu(x: FlexTensor) -> FlexTensor {
        forward(x)
    }
}

impl<C: CheckpointStrategy> ParallelGelu for Autodiff<Flex, C> {
    fn parallel_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        /// The gradient of GELU; its state is the forward pass's input.
        #[derive(Debug)]
        struct GeluBackward;

        impl Backward<Flex, 1> for GeluBackward {
            type State = FlexTensor;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let input = ops.state;
                unary::<Flex, _>(ops.parents, ops.node, grads, |grad| backward(&input, grad));
            }
        }

        match GeluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let input = x.primitive().clone();
                prep.finish(input.clone(), forward(input))
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x.into_primitive())),
        }
    }
}

/// `x: any shape` → `GELU(x)`, in `x`'s own buffer when no other tensor shares it.
fn forward(x: FlexTensor) -> FlexTensor {
    if x.dtype() != DType::F32 {
        return Flex::gelu(x);
    }
    let mut data = x.into_data();
    data.as_mut_slice::<f32>()
        .expect("an f32 tensor (checked above)")
        .par_chunks_mut(CHUNK)
        .for_each(gelu_in_place);
    FlexTensor::from_data(data)
}

/// `input, grad: same shape` → `grad · GELU'(input)`, in `grad`'s buffer when unshared.
fn backward(input: &FlexTensor, grad: FlexTensor) -> FlexTensor {
    if input.dtype() != DType::F32 || grad.dtype() != DType::F32 {
        return Flex::gelu_backward(input.clone(), grad);
    }
    let contiguous;
    let xs = match input.as_slice::<f32>() {
        Some(xs) => xs,
        None => {
            contiguous = input.to_contiguous();
            contiguous
                .as_slice::<f32>()
                .expect("a contiguous f32 tensor")
        }
    };
    let mut data = grad.into_data();
    let gs = data
        .as_mut_slice::<f32>()
        .expect("an f32 tensor (checked above)");
    assert_eq!(
        xs.len(),
        gs.len(),
        "GELU's gradient and input differ in size"
    );
    gs.par_chunks_mut(CHUNK)
        .zip(xs.par_chunks(CHUNK))
        .for_each(|(gs, xs)| multiply_by_gelu_slope(gs, xs));
    FlexTensor::from_data(data)
}

/// `values[i] ← GELU(values[i])`. Each clone is compiled for one SIMD extension and the
/// widest the CPU has is chosen at run time: the loop has no branch, so it vectorizes.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2", "aarch64+neon"))]
fn gelu_in_place(values: &mut [f32]) {
    for v in values {
        let (cdf, _) = normal_cdf_pdf(*v);
        *v *= cdf;
    }
}

/// `grads[i] ← grads[i] · GELU'(inputs[i])`, vectorized as [`gelu_in_place`].
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2", "aarch64+neon"))]
fn multiply_by_gelu_slope(grads: &mut [f32], inputs: &[f32]) {
    for (g, &x) in grads.iter_mut().zip(inputs) {
        let (cdf, pdf) = normal_cdf_pdf(x);
        *g *= cdf + x * pdf;
    }
}

/// The standard normal's distribution function Φ(x) = (1 + erf(x/√2)) / 2 and density
/// φ(x) = exp(−x²/2) / √(2π), sharing one exponential. GELU(x) = x Φ(x), GELU'(x) = Φ(x) + x φ(x).
#[inline(always)]
fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    let gauss = exp_nonpositive(-z * z);
    let cdf = 0.5 * (1.0 + erf_given_gauss(z, gauss));
    // 1/√(2π)
    let pdf = 0.398_942_3 * gauss;
    (cdf, pdf)
}

/// The error function `erf(z)` within 5e-7 in f32 (Abramowitz & Stegun 7.1.26), given
/// `gauss = exp(−z²)`.
#[inline(always)]
fn erf_given_gauss(z: f32, gauss: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152_1,
        1.061_405_4,
    ];
    let t = 1.0 / (1.0 + P * z.abs());
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    (1.0 - poly * gauss).copysign(z)
}

/// `exp(y)` for `y ≤ 0` (`y < −87` gives `exp(−87)`, below 2e-38), within 2e-7 of it
/// relative, without a branch or a library call, so that the loops around it vectorize
/// (libm's `expf` is a call per element). `y = n ln 2 + r` with `n` rounded to the nearest
/// integer and `|r| ≤ ln 2 / 2`; `e^r` by a degree-7 polynomial (Cephes' coefficients for
/// `expf`), `2^n` written into the exponent bits.
#[inline(always)]
fn exp_nonpositive(y: f32) -> f32 {
    // ln 2 in two parts, so that `n ln 2` is exact in the first.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2²³: adding it rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let y = y.max(-87.0);
    let shifted = y * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = y - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e_r = p * r * r + r + 1.0;
    // 2^n: the biased exponent n + 127 (≥ 1 for n ≥ −126) in the exponent field.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    e_r * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn max_abs_difference<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let values = |t: Tensor<D>| t.into_data().try_into_vec::<f32>().unwrap();
        let (a, b) = (values(a), values(b));
        a.iter()
            .zip(&b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    fn erf(x: f32) -> f32 {
        erf_given_gauss(x, exp_nonpositive(-x * x))
    }

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
    fn exp_is_within_its_bound_of_std() {
        let mut worst = 0.0f32;
        for i in 0..=100_000 {
            let y = i as f32 * -8.7e-4;
            worst = worst.max((exp_nonpositive(y) / y.exp() - 1.0).abs());
        }
        assert!(worst < 2e-7, "max relative |exp - std exp| = {worst}");
        assert!(exp_nonpositive(-1e4) < 2e-38 && exp_nonpositive(f32::NEG_INFINITY) < 2e-38);
    }

    #[test]
    fn matches_burns_gelu_on_the_cpu_backend() {
        let x = Tensor::<2>::random([37, 700], Distribution::Normal(0.0, 3.0), &Device::flex());
        let worst = max_abs_difference(gelu(x.clone()), activation::gelu(x.clone()));
        assert!(worst < 1e-6, "max |ours - burn| = {worst}");
        // A transposed (non-contiguous) input.
        let worst =
            max_abs_difference(gelu(x.clone().transpose()), activation::gelu(x.transpose()));
        assert!(worst < 1e-6, "transposed: max |ours - burn| = {worst}");
    }

    #[test]
    fn gradient_matches_burns_in_training() {
        let device = Device::flex().autodiff();
        let x = Tensor::<3>::random([4, 37, 96], Distribution::Normal(0.0, 3.0), &device);
        let weights = Tensor::<3>::random([4, 37, 96], Distribution::Normal(0.0, 1.0), &device);
        let gradient = |f: fn(Tensor<3>) -> Tensor<3>| {
            let x = x.clone().require_grad();
            // Through a transpose, so that the incoming gradient is not contiguous either.
            let y = f(x.clone().swap_dims(1, 2)).swap_dims(1, 2);
            let grads = (y.clone() * weights.clone()).sum().backward();
            (y.without_autodiff(), x.grad(&grads).expect("x is tracked"))
        };
        let (ours, our_grad) = gradient(gelu);
        let (theirs, their_grad) = gradient(activation::gelu);
        let worst = max_abs_difference(ours, theirs);
        assert!(worst < 1e-6, "values: max |ours - burn| = {worst}");
        let worst = max_abs_difference(our_grad, their_grad);
        assert!(worst < 2e-6, "gradients: max |ours - burn| = {worst}");
    }
}
