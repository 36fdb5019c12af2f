//! The three MTCNN networks (Zhang et al. 2016) as burn modules, layer for layer as
//! facenet-pytorch's `PNet`, `RNet`, `ONet`, with the same parameter names.
//!
//! All convolutions are unpadded with stride 1; all max-pools use `ceil_mode` (a last,
//! partial window is kept), as in the Caffe original.

use std::path::Path;

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, PRelu};
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Device, Tensor, TensorData};

use super::MtcnnError;
use super::weights::WeightsFile;

fn max_pool(kernel: usize, stride: usize) -> MaxPool2d {
    MaxPool2dConfig::new([kernel, kernel])
        .with_strides([stride, stride])
        .with_ceil_mode(true)
        .init()
}

/// Proposal net: fully convolutional, scores every 12x12 window at stride 2.
#[derive(Module, Debug)]
pub struct PNet {
    conv1: Conv2d,
    prelu1: PRelu,
    pool1: MaxPool2d,
    conv2: Conv2d,
    prelu2: PRelu,
    conv3: Conv2d,
    prelu3: PRelu,
    conv4_1: Conv2d,
    conv4_2: Conv2d,
}

impl PNet {
    /// Loads `path` (a `pnet.safetensors`).
    pub fn load(path: &Path, device: &Device) -> Result<Self, MtcnnError> {
        let w = WeightsFile::read(path)?;
        Ok(Self {
            conv1: w.conv("conv1", [3, 10], 3, device)?,
            prelu1: w.prelu("prelu1", 10, device)?,
            pool1: max_pool(2, 2),
            conv2: w.conv("conv2", [10, 16], 3, device)?,
            prelu2: w.prelu("prelu2", 16, device)?,
            conv3: w.conv("conv3", [16, 32], 3, device)?,
            prelu3: w.prelu("prelu3", 32, device)?,
            conv4_1: w.conv("conv4_1", [32, 2], 1, device)?,
            conv4_2: w.conv("conv4_2", [32, 4], 1, device)?,
        })
    }

    /// `x: [batch, 3, h, w]` normalised pixels → `(reg: [batch, 4, h', w'],
    /// prob: [batch, 2, h', w'])` with `h' = ceil((h - 2) / 2) - 4` (likewise `w'`):
    /// per output cell, the box offsets and the softmax (non-face, face) of the 12x12
    /// input window at `(2 y', 2 x')`. Needs `h, w >= 12`. The reference path, on any device.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let x = self
            .pool1
            .forward(self.prelu1.forward(self.conv1.forward(x)));
        let (reg, logits) = self.after_pool1(x);
        (reg, softmax(logits, 1))
    }

    /// The same net on [`PoolPhasePatches`] of the input (kernel 2), the fast path on the
    /// CPU backend → `(reg: [batch, 4, h', w'], face_prob: [batch, 1, h', w'])`, where
    /// `face_prob` is [`forward`](Self::forward)'s `prob[:, 1]` computed as
    /// `sigmoid(logit_face - logit_non_face)` (the same value as the 2-way softmax).
    pub fn forward_phased(
        &self,
        patches: PoolPhasePatches,
        device: &Device,
    ) -> (Tensor<4>, Tensor<4>) {
        let x = first_stage(&self.conv1, &self.prelu1, patches, device);
        let (reg, logits) = self.after_pool1(x);
        let face_prob = sigmoid(logits.clone().narrow(1, 1, 1) - logits.narrow(1, 0, 1));
        (reg, face_prob)
    }

    /// `x: [batch, 10, h1, w1]` after the first pool → `(reg, class logits)`.
    fn after_pool1(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let x = self.prelu2.forward(self.conv2.forward(x));
        let x = self.prelu3.forward(self.conv3.forward(x));
        let logits = self.conv4_1.forward(x.clone());
        let reg = self.conv4_2.forward(x);
        (reg, logits)
    }
}

/// Refinement net: scores and regresses 24x24 crops.
#[derive(Module, Debug)]
pub struct RNet {
    conv1: Conv2d,
    prelu1: PRelu,
    pool1: MaxPool2d,
    conv2: Conv2d,
    prelu2: PRelu,
    pool2: MaxPool2d,
    conv3: Conv2d,
    prelu3: PRelu,
    dense4: Linear,
    prelu4: PRelu,
    dense5_1: Linear,
    dense5_2: Linear,
}

impl RNet {
    /// Loads `path` (an `rnet.safetensors`).
    pub fn load(path: &Path, device: &Device) -> Result<Self, MtcnnError> {
        let w = WeightsFile::read(path)?;
        Ok(Self {
            conv1: w.conv("conv1", [3, 28], 3, device)?,
            prelu1: w.prelu("prelu1", 28, device)?,
            pool1: max_pool(3, 2),
            conv2: w.conv("conv2", [28, 48], 3, device)?,
            prelu2: w.prelu("prelu2", 48, device)?,
            pool2: max_pool(3, 2),
            conv3: w.conv("conv3", [48, 64], 2, device)?,
            prelu3: w.prelu("prelu3", 64, device)?,
            dense4: w.linear("dense4", [576, 128], device)?,
            prelu4: w.prelu("prelu4", 128, device)?,
            dense5_1: w.linear("dense5_1", [128, 2], device)?,
            dense5_2: w.linear("dense5_2", [128, 4], device)?,
        })
    }

    /// `x: [batch, 3, 24, 24]` normalised crops → `(reg: [batch, 4], prob: [batch, 2])`.
    /// The reference path, on any device.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        self.after_pool1(
            self.pool1
                .forward(self.prelu1.forward(self.conv1.forward(x))),
        )
    }

    /// The same on [`PoolPhasePatches`] of the crops (kernel 3): the fast path on the CPU
    /// backend, same outputs.
    pub fn forward_phased(
        &self,
        patches: PoolPhasePatches,
        device: &Device,
    ) -> (Tensor<2>, Tensor<2>) {
        self.after_pool1(first_stage(&self.conv1, &self.prelu1, patches, device))
    }

    /// `x: [batch, 28, 11, 11]` after the first pool.
    fn after_pool1(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let x = self
            .pool2
            .forward(self.prelu2.forward(self.conv2.forward(x)));
        let x = self.prelu3.forward(self.conv3.forward(x)); // [batch, 64, 3, 3]
        let x = flatten_whc(x);
        let x = self.prelu4.forward(self.dense4.forward(x));
        let prob = softmax(self.dense5_1.forward(x.clone()), 1);
        let reg = self.dense5_2.forward(x);
        (reg, prob)
    }
}

/// Output net: scores, regresses and places 5 landmarks on 48x48 crops.
#[derive(Module, Debug)]
pub struct ONet {
    conv1: Conv2d,
    prelu1: PRelu,
    pool1: MaxPool2d,
    conv2: Conv2d,
    prelu2: PRelu,
    pool2: MaxPool2d,
    conv3: Conv2d,
    prelu3: PRelu,
    pool3: MaxPool2d,
    conv4: Conv2d,
    prelu4: PRelu,
    dense5: Linear,
    prelu5: PRelu,
    dense6_1: Linear,
    dense6_2: Linear,
    dense6_3: Linear,
}

impl ONet {
    /// Loads `path` (an `onet.safetensors`).
    pub fn load(path: &Path, device: &Device) -> Result<Self, MtcnnError> {
        let w = WeightsFile::read(path)?;
        Ok(Self {
            conv1: w.conv("conv1", [3, 32], 3, device)?,
            prelu1: w.prelu("prelu1", 32, device)?,
            pool1: max_pool(3, 2),
            conv2: w.conv("conv2", [32, 64], 3, device)?,
            prelu2: w.prelu("prelu2", 64, device)?,
            pool2: max_pool(3, 2),
            conv3: w.conv("conv3", [64, 64], 3, device)?,
            prelu3: w.prelu("prelu3", 64, device)?,
            pool3: max_pool(2, 2),
            conv4: w.conv("conv4", [64, 128], 2, device)?,
            prelu4: w.prelu("prelu4", 128, device)?,
            dense5: w.linear("dense5", [1152, 256], device)?,
            prelu5: w.prelu("prelu5", 256, device)?,
            dense6_1: w.linear("dense6_1", [256, 2], device)?,
            dense6_2: w.linear("dense6_2", [256, 4], device)?,
            dense6_3: w.linear("dense6_3", [256, 10], device)?,
        })
    }

    /// `x: [batch, 3, 48, 48]` normalised crops → `(reg: [batch, 4], landmarks:
    /// [batch, 10] (x0..x4, y0..y4 as fractions of the crop), prob: [batch, 2])`.
    /// The reference path, on any device.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
        self.after_pool1(
            self.pool1
                .forward(self.prelu1.forward(self.conv1.forward(x))),
        )
    }

    /// The same on [`PoolPhasePatches`] of the crops (kernel 3): the fast path on the CPU
    /// backend, same outputs.
    pub fn forward_phased(
        &self,
        patches: PoolPhasePatches,
        device: &Device,
    ) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
        self.after_pool1(first_stage(&self.conv1, &self.prelu1, patches, device))
    }

    /// `x: [batch, 32, 23, 23]` after the first pool.
    fn after_pool1(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
        let x = self
            .pool2
            .forward(self.prelu2.forward(self.conv2.forward(x)));
        let x = self
            .pool3
            .forward(self.prelu3.forward(self.conv3.forward(x)));
        let x = self.prelu4.forward(self.conv4.forward(x)); // [batch, 128, 3, 3]
        let x = flatten_whc(x);
        let x = self.prelu5.forward(self.dense5.forward(x));
        let prob = softmax(self.dense6_1.forward(x.clone()), 1);
        let reg = self.dense6_2.forward(x.clone());
        let landmarks = self.dense6_3.forward(x);
        (reg, landmarks, prob)
    }
}

/// `x: [batch, c, h, w]` → `[batch, w * h * c]` in (w, h, c) order: the Caffe-era weights
/// of the dense layers expect this order (facenet's `permute(0, 3, 2, 1)` before `view`).
fn flatten_whc(x: Tensor<4>) -> Tensor<2> {
    let [batch, c, h, w] = x.dims();
    x.permute([0, 3, 2, 1]).reshape([batch, w * h * c])
}

/// A net's input rearranged for its first stage — 3x3 conv, PReLU, max-pool (kernel `k`,
/// stride 2, ceil mode) — so that the stage is one matrix product and a max over
/// contiguous blocks, which burn's CPU backend runs several times faster than its
/// `conv2d` on 3 input channels followed by `max_pool2d`.
///
/// Row `(phase, b, i, j)` holds the 27 input values (`c, dy, dx` order, as the conv weight
/// `[c_out, 3, 3, 3]` flattens) that conv output `(2i + ky, 2j + kx)` reads, for the
/// window offset `phase = (ky, kx)` of pool output `(i, j)`. Where ceil mode cuts a
/// window short at the border, the missing offsets repeat the window's first position:
/// a max ignores repeats, so the result is exactly the pooled conv. With `k = 2` the
/// phases tile the conv output (each position once, up to those repeats); with `k = 3`
/// windows overlap and 2.25x the conv positions are computed, still far cheaper.
pub struct PoolPhasePatches {
    /// `[k * k, batch, out_h, out_w, 27]` row-major.
    data: Vec<f32>,
    batch: usize,
    out_h: usize,
    out_w: usize,
    phases: usize,
}

impl PoolPhasePatches {
    /// From `x: [batch, 3, h, w]` (channel-major planes, as the nets take them) for a pool of
    /// kernel `k` (2 or 3). Needs `h - 2 >= k` and `w - 2 >= k`.
    pub fn new(x: &[f32], batch: usize, h: usize, w: usize, k: usize) -> Self {
        assert_eq!(x.len(), batch * 3 * h * w, "x must be [batch, 3, h, w]");
        let (conv_h, conv_w) = (h - 2, w - 2);
        assert!(
            conv_h >= k && conv_w >= k,
            "input {h}x{w} too small for the first stage"
        );
        // PyTorch's ceil-mode size; with no padding the last window always starts inside.
        let out_h = (conv_h - k).div_ceil(2) + 1;
        let out_w = (conv_w - k).div_ceil(2) + 1;
        let mut data = Vec::with_capacity(k * k * batch * out_h * out_w * 27);
        let plane = h * w;
        for ky in 0..k {
            for kx in 0..k {
                for b in 0..batch {
                    let image = &x[b * 3 * plane..(b + 1) * 3 * plane];
                    for i in 0..out_h {
                        let r = if 2 * i + ky < conv_h {
                            2 * i + ky
                        } else {
                            2 * i
                        };
                        for j in 0..out_w {
                            let col = if 2 * j + kx < conv_w {
                                2 * j + kx
                            } else {
                                2 * j
                            };
                            for c in 0..3 {
                                for dy in 0..3 {
                                    let row = &image[c * plane + (r + dy) * w + col..][..3];
                                    data.extend_from_slice(row);
                                }
                            }
                        }
                    }
                }
            }
        }
        Self {
            data,
            batch,
            out_h,
            out_w,
            phases: k * k,
        }
    }

    /// `(batch, out_h, out_w)`: the shape of the pooled first-stage output.
    pub fn output_size(&self) -> (usize, usize, usize) {
        (self.batch, self.out_h, self.out_w)
    }
}

/// conv1 (3x3) → PReLU → max-pool on [`PoolPhasePatches`] → `[batch, c_out, out_h, out_w]`
/// (an NCHW view of channel-last memory).
fn first_stage(
    conv1: &Conv2d,
    prelu1: &PRelu,
    patches: PoolPhasePatches,
    device: &Device,
) -> Tensor<4> {
    let [c_out, c_in, kh, kw] = conv1.weight.dims();
    let k = c_in * kh * kw;
    let PoolPhasePatches {
        data,
        batch,
        out_h,
        out_w,
        phases,
    } = patches;
    let rows = batch * out_h * out_w;
    let x = Tensor::<2>::from_data(TensorData::new(data, [phases * rows, k]), device);
    let weight = conv1.weight.val().reshape([c_out, k]).transpose();
    let mut y = x.matmul(weight);
    if let Some(bias) = &conv1.bias {
        y = y + bias.val().reshape([1, c_out]);
    }
    let y = prelu1.forward(y); // [phases * rows, c_out]: channel is dim 1, as PReLU wants
    let pooled = (1..phases).fold(y.clone().narrow(0, 0, rows), |m, p| {
        m.max_pair(y.clone().narrow(0, p * rows, rows))
    });
    pooled
        .reshape([batch, out_h, out_w, c_out])
        .permute([0, 3, 1, 2])
}
