//! The exact (erf) GELU of timm's `nn.GELU()`, split over the cores on burn's CPU backend.
//!
//! burn's CPU backend (Flex) computes GELU and its gradient one element at a time on one
//! core, with libm's `erff`. That was a fifth of the ViT's inference time there (`perf record`
//! on `mimic bench --vit-batches 8`) and an eighth of a training step. On that backend, with
//! or without autodiff, [`gelu`] is a backend extension ([`ParallelGelu`]) that runs the
//! forward pass and, in training, its own backward pass over the cores in chunks, with [`erf`]
//! (Abramowitz & Stegun 7.1.26: absolute error 1.5e-7 in exact arithmetic, below 5e-7 in
//! f32; values stay within 1e-6 of burn's, gradients within 2e-6). The backward pass reuses the
//! forward's exponential: `exp(−x²/2)` is both erf's factor and the normal density. On every
//! other device (the GPU runtimes) it is burn's own `gelu`.

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
        .for_each(|chunk| {
            for v in chunk {
                let (cdf, _) = normal_cdf_pdf(*v);
                *v *= cdf;
            }
        });
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
        .for_each(|(gs, xs)| {
            for (g, &x) in gs.iter_mut().zip(xs) {
                let (cdf, pdf) = normal_cdf_pdf(x);
                *g *= cdf + x * pdf;
            }
        });
    FlexTensor::from_data(data)
}

/// The standard normal's distribution function Φ(x) = (1 + erf(x/√2)) / 2 and density
/// φ(x) = exp(−x²/2) / √(2π), sharing one exponential. GELU(x) = x Φ(x), GELU'(x) = Φ(x) + x φ(x).
fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    let gauss = (-z * z).exp();
    let cdf = 0.5 * (1.0 + erf_given_gauss(z, gauss));
    // 1/√(2π)
    let pdf = 0.398_942_3 * gauss;
    (cdf, pdf)
}

/// The error function within 5e-7 in f32 (Abramowitz & Stegun 7.1.26).
pub fn erf(x: f32) -> f32 {
    erf_given_gauss(x, (-x * x).exp())
}

/// `erf(z)`, given `gauss = exp(−z²)`.
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
