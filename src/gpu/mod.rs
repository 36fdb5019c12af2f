//! The GPU pre-processing path: WGSL compute shaders (`shaders/*.wgsl`) run on burn's
//! wgpu device, on burn tensors' buffers, so that a frame is uploaded once and everything
//! up to the networks' inputs happens on the GPU:
//!
//! 1. [`colour`]: the decoder's picture (YUV 4:2:0, NV12 or RGB24 bytes, one upload) →
//!    planar RGB `[3, h, w]` (8-bit values in f32), bit-identical to swscale's conversion
//!    on our decode path;
//! 2. [`area`]: MTCNN's area resampling — the whole image pyramid of a batch of frames
//!    in one launch, and the R-Net/O-Net box crops in one launch each;
//! 3. [`crops`]: the aligned face crops of every face of a batch, normalised, written
//!    straight into the ViT input `[faces, 3, size, size]`.
//!
//! Each shader has a CPU twin built on the CPU path's own functions
//! (`mtcnn::resample`, `align`, `model::normalize_crop`); `tests/gpu_shaders.rs` runs
//! both on random inputs and states the error bound of each.
//!
//! How the shaders reach burn's buffers is in [`kernel`]: a custom operation on burn's
//! fusion stream launching a WGSL template kernel through cubecl, burn's
//! `custom-wgpu-kernel` pattern. It needs the runtime to compile WGSL, which it does on
//! every adapter with burn's `wgpu` feature. With burn's `vulkan` feature, cubecl
//! compiles SPIR-V on Vulkan adapters and refuses WGSL templates (there is no WGSL
//! pass-through on its SPIR-V path), so the shaders would then need porting to CubeCL
//! kernels; `Device::wgpu` devices keep working either way.

pub mod area;
pub mod colour;
pub mod crops;
pub mod kernel;

use burn::tensor::{Device, Tensor};

use crate::frame::RgbImage;

pub use area::{AreaJob, area_resize, mtcnn_crops, mtcnn_pyramid};
pub use colour::{DecodedPicture, PixelLayout, Plane, YuvMatrix, decoded_to_rgb};
pub use crops::{CropStyle, FaceCrop, face_crops};
pub use kernel::max_buffer_bytes;

/// Why a GPU pre-processing step could not be queued. Device failures during execution
/// (lost device, out of memory) surface where burn reads results back.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("the GPU shaders need burn's wgpu device, got {device}")]
    NotWgpu { device: String },
    #[error("the GPU shaders work on f32 tensors, got {found}")]
    DType { found: String },
    #[error("too large for one shader launch: {what}")]
    TooLarge { what: String },
    #[error("invalid picture: {reason}")]
    BadPicture { reason: String },
    #[error("invalid job {index}: {reason}")]
    BadJob { index: usize, reason: String },
}

/// Several pictures of one size uploaded and converted: `[n, 3, h, w]` of 8-bit values.
pub fn pictures_to_rgb(
    pictures: &[DecodedPicture],
    device: &Device,
) -> Result<Tensor<4>, GpuError> {
    let first = pictures.first().ok_or_else(|| GpuError::BadPicture {
        reason: "no pictures".into(),
    })?;
    let mut planes = Vec::with_capacity(pictures.len());
    for p in pictures {
        if (p.width, p.height) != (first.width, first.height) {
            return Err(GpuError::BadPicture {
                reason: format!(
                    "{}x{} in a batch of {}x{}",
                    p.width, p.height, first.width, first.height
                ),
            });
        }
        planes.push(decoded_to_rgb(p, device)?);
    }
    Ok(Tensor::stack(planes, 0))
}

/// Whether the shaders can run on `device`: burn's wgpu runtime (see [`kernel`]).
pub fn runs_shaders(device: &Device) -> bool {
    kernel::wgpu_device(device).is_ok()
}

/// Frames in memory (packed RGB, one size) uploaded once and converted on `device`:
/// `[n, 3, h, w]` of 8-bit values, what the detector's and the crops' shaders read.
pub fn upload_frames(images: &[&RgbImage], device: &Device) -> Result<Tensor<4>, GpuError> {
    let pictures: Vec<DecodedPicture> = images
        .iter()
        .map(|image| DecodedPicture::from_rgb(image))
        .collect();
    pictures_to_rgb(&pictures, device)
}
