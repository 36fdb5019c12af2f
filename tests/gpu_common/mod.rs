//! Shared helpers of the `gpu_*` integration tests: the wgpu device (or a skip) and a
//! small deterministic random source.

#![allow(dead_code)]

use burn::tensor::{Device, Tensor};
use mimic::device::{DeviceChoice, SoftwareGpu, adapters, select_device_with};

/// burn's wgpu device on the best adapter, software (lavapipe) included; `None`, with a
/// message, only when wgpu finds no adapter at all. An adapter that exists but fails to
/// open is a test failure, not a skip.
pub fn gpu_device() -> Option<Device> {
    if adapters().is_empty() {
        eprintln!(
            "SKIPPED: wgpu finds no adapter at all (install a Vulkan driver, e.g. Mesa's \
             lavapipe: apt-get install mesa-vulkan-drivers)"
        );
        return None;
    }
    let selected = select_device_with(DeviceChoice::Gpu, SoftwareGpu::Allow)
        .unwrap_or_else(|e| panic!("an adapter exists but cannot be used: {e}"));
    eprintln!("GPU tests on {}", selected.description);
    Some(selected.burn)
}

/// xorshift64*: reproducible inputs without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    pub fn image(&mut self, w: u32, h: u32) -> image::RgbImage {
        image::RgbImage::from_raw(w, h, self.bytes((3 * w * h) as usize)).unwrap()
    }

    /// A smooth-ish image (gradients plus noise), where bilinear sampling differences show.
    pub fn textured_image(&mut self, w: u32, h: u32) -> image::RgbImage {
        let (a, b, c) = (
            self.uniform(0.5, 3.0),
            self.uniform(0.5, 3.0),
            self.below(60) as f32,
        );
        let mut noise = self.bytes((3 * w * h) as usize).into_iter();
        image::RgbImage::from_fn(w, h, |x, y| {
            let mut px = [0u8; 3];
            for (ch, v) in px.iter_mut().enumerate() {
                let base = (a * x as f32 + b * y as f32 + c * ch as f32) % 200.0;
                *v = (base + f32::from(noise.next().unwrap() % 56)) as u8;
            }
            image::Rgb(px)
        })
    }
}

/// The values of an f32 tensor on the host.
pub fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

/// Largest absolute difference, and where.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> (f32, usize) {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .enumerate()
        .map(|(i, (x, y))| ((x - y).abs(), i))
        .fold(
            (0.0, 0),
            |m, d| if d.0 > m.0 || d.0.is_nan() { d } else { m },
        )
}
