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
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

use super::MtcnnError;
use super::host::{HostONet, HostPNet, HostRNet};
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
        let x = self.prelu2.forward(self.conv2.forward(x));
        let x = self.prelu3.forward(self.conv3.forward(x));
        let prob = softmax(self.conv4_1.forward(x.clone()), 1);
        let reg = self.conv4_2.forward(x);
        (reg, prob)
    }

    /// The same net on the host, for burn's CPU backend.
    pub fn on_host(&self) -> HostPNet {
        HostPNet::new(
            [
                (&self.conv1, &self.prelu1),
                (&self.conv2, &self.prelu2),
                (&self.conv3, &self.prelu3),
            ],
            [&self.conv4_1, &self.conv4_2],
        )
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
        let x = self
            .pool1
            .forward(self.prelu1.forward(self.conv1.forward(x)));
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

    /// The same net on the host, for burn's CPU backend.
    pub fn on_host(&self) -> HostRNet {
        HostRNet::new(
            [
                (&self.conv1, &self.prelu1),
                (&self.conv2, &self.prelu2),
                (&self.conv3, &self.prelu3),
            ],
            (&self.dense4, &self.prelu4),
            [&self.dense5_1, &self.dense5_2],
        )
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
        let x = self
            .pool1
            .forward(self.prelu1.forward(self.conv1.forward(x)));
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

    /// The same net on the host, for burn's CPU backend.
    pub fn on_host(&self) -> HostONet {
        HostONet::new(
            [
                (&self.conv1, &self.prelu1),
                (&self.conv2, &self.prelu2),
                (&self.conv3, &self.prelu3),
                (&self.conv4, &self.prelu4),
            ],
            (&self.dense5, &self.prelu5),
            [&self.dense6_1, &self.dense6_2, &self.dense6_3],
        )
    }
}

/// `x: [batch, c, h, w]` → `[batch, w * h * c]` in (w, h, c) order: the Caffe-era weights
/// of the dense layers expect this order (facenet's `permute(0, 3, 2, 1)` before `view`).
fn flatten_whc(x: Tensor<4>) -> Tensor<2> {
    let [batch, c, h, w] = x.dims();
    x.permute([0, 3, 2, 1]).reshape([batch, w * h * c])
}
