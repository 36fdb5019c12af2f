//! Reading one net's weights from a safetensors file written by `scripts/convert_mtcnn.py`.
//!
//! We read the file with the `safetensors` crate and build the burn tensors ourselves
//! rather than going through burn-store: the three nets are small and fixed, every tensor
//! is fetched by its torch name with its expected shape, and each failure becomes an
//! [`MtcnnError`] that names the file and the tensor.

use std::path::{Path, PathBuf};

use burn::module::{Param, ParamId};
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, PRelu, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

use super::MtcnnError;

/// The raw bytes of one weights file, with its path for error messages.
pub(crate) struct WeightsFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl WeightsFile {
    pub(crate) fn read(path: &Path) -> Result<Self, MtcnnError> {
        let bytes = std::fs::read(path).map_err(|source| MtcnnError::Io {
            path: path.to_owned(),
            source,
        })?;
        // Validate the header once here, so that a corrupt file is reported as such.
        SafeTensors::deserialize(&bytes).map_err(|source| MtcnnError::Format {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            bytes,
        })
    }

    /// The float32 tensor `name`, which must have exactly `shape`.
    pub(crate) fn tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        device: &Device,
    ) -> Result<Tensor<D>, MtcnnError> {
        let file = SafeTensors::deserialize(&self.bytes).map_err(|source| MtcnnError::Format {
            path: self.path.clone(),
            source,
        })?;
        let view = file.tensor(name).map_err(|_| MtcnnError::MissingTensor {
            path: self.path.clone(),
            name: name.to_owned(),
        })?;
        if view.dtype() != Dtype::F32 || view.shape() != shape {
            return Err(MtcnnError::BadTensor {
                path: self.path.clone(),
                name: name.to_owned(),
                found: format!("{:?} {:?}", view.dtype(), view.shape()),
                expected: format!("F32 {shape:?}"),
            });
        }
        // safetensors data is little-endian and not necessarily 4-byte aligned.
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// A stride-1, unpadded conv `{name}.weight` `[c_out, c_in, k, k]` + `{name}.bias`.
    pub(crate) fn conv(
        &self,
        name: &str,
        [c_in, c_out]: [usize; 2],
        k: usize,
        device: &Device,
    ) -> Result<Conv2d, MtcnnError> {
        let weight = self.tensor(&format!("{name}.weight"), [c_out, c_in, k, k], device)?;
        let bias = self.tensor(&format!("{name}.bias"), [c_out], device)?;
        Ok(Conv2d {
            weight: param(weight),
            bias: Some(param(bias)),
            stride: [1, 1],
            kernel_size: [k, k],
            dilation: [1, 1],
            groups: 1,
            padding: PaddingConfig2d::Valid,
        })
    }

    /// A per-channel PReLU `{name}.weight` `[channels]`.
    pub(crate) fn prelu(
        &self,
        name: &str,
        channels: usize,
        device: &Device,
    ) -> Result<PRelu, MtcnnError> {
        let alpha = self.tensor(&format!("{name}.weight"), [channels], device)?;
        Ok(PRelu {
            alpha: param(alpha),
            alpha_value: 0.25,
        })
    }

    /// A dense layer stored torch-style, `{name}.weight` `[d_out, d_in]`, transposed to
    /// burn's `[d_in, d_out]`.
    pub(crate) fn linear(
        &self,
        name: &str,
        [d_in, d_out]: [usize; 2],
        device: &Device,
    ) -> Result<Linear, MtcnnError> {
        let weight = self.tensor(&format!("{name}.weight"), [d_out, d_in], device)?;
        let bias = self.tensor(&format!("{name}.bias"), [d_out], device)?;
        // Materialise the transpose once at load time rather than on every forward.
        let weight = Tensor::from_data(weight.transpose().into_data(), device);
        Ok(Linear {
            weight: param(weight),
            bias: Some(param(bias)),
        })
    }
}

fn param<const D: usize>(tensor: Tensor<D>) -> Param<Tensor<D>> {
    Param::initialized(ParamId::new(), tensor)
}
