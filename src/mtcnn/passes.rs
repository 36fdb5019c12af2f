//! How much of a detection one pass on a GPU may take.
//!
//! Every buffer of a pass must fit the device's largest buffer (wgpu's
//! `max_storage_buffer_binding_size`, bounded by `max_buffer_size`: 128 MiB on WebGPU's
//! defaults and on lavapipe; cubecl reports it as `max_page_size`). Batch mode puts
//! several frames in one pass, and a crowded frame sends hundreds of crops to R-Net, so
//! a pass is sized here from the buffers that grow with it:
//! - per frame: the uploaded frame (`[3, h, w]` f32), the whole pyramid (one launch
//!   writes all levels), and P-Net's widest activation on the first level (conv1's 10
//!   channels at the level's size; burn's convolutions allocate their outputs only);
//! - per crop: R-Net's conv1 output (`[28, 22, 22]`) or O-Net's (`[32, 46, 46]`).
//!
//! A batch larger than that is split into passes; a single frame that cannot fit is an
//! error naming the sizes.

use super::boxes;
use crate::gpu::GpuError;

/// Bytes of an f32.
const F32: u64 = 4;
/// P-Net's widest layer: conv1, 10 channels at (nearly) the level's size.
const PNET_WIDEST_CHANNELS: u64 = 10;
/// R-Net's widest activation per 24x24 crop: conv1, `[28, 22, 22]`.
const RNET_CROP_BYTES: u64 = 28 * 22 * 22 * F32;
/// O-Net's widest activation per 48x48 crop: conv1, `[32, 46, 46]`.
const ONET_CROP_BYTES: u64 = 32 * 46 * 46 * F32;

/// The second and third nets, which run on crops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CropNet {
    RNet,
    ONet,
}

/// The largest buffer one pass may allocate, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassLimit {
    max_buffer_bytes: u64,
}

impl PassLimit {
    /// No limit (the host path, or a device that states none).
    pub const NONE: PassLimit = PassLimit {
        max_buffer_bytes: u64::MAX,
    };

    pub fn new(max_buffer_bytes: u64) -> Self {
        Self { max_buffer_bytes }
    }

    pub fn max_buffer_bytes(&self) -> u64 {
        self.max_buffer_bytes
    }

    /// Frames of `width x height` that one pass may take, with the pyramid of `scales`
    /// (as [`boxes::pyramid_scales`] gives them for these frames); at least 1, or an
    /// error when one frame alone does not fit.
    pub fn frames_per_pass(
        &self,
        width: u32,
        height: u32,
        scales: &[f64],
    ) -> Result<usize, GpuError> {
        let levels: Vec<u64> = scales
            .iter()
            .map(|&s| {
                let (h, w) = boxes::scaled_size(width, height, s);
                (h * w) as u64
            })
            .collect();
        let frame = 3 * F32 * u64::from(width) * u64::from(height);
        let pyramid = 3 * F32 * levels.iter().sum::<u64>();
        let pnet = PNET_WIDEST_CHANNELS * F32 * levels.iter().copied().max().unwrap_or(0);
        let per_frame = frame.max(pyramid).max(pnet);
        match self.max_buffer_bytes / per_frame.max(1) {
            0 => Err(GpuError::TooLarge {
                what: format!(
                    "a {width}x{height} frame needs a buffer of {} MiB (its pixels, its \
                     pyramid or P-Net's first level), the device allows {} MiB; a larger \
                     --min-face shrinks the pyramid",
                    per_frame.div_ceil(1 << 20),
                    self.max_buffer_bytes >> 20
                ),
            }),
            n => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }

    /// Crops that one pass of `net` may take; at least 1.
    pub fn crops_per_pass(&self, net: CropNet) -> usize {
        let per_crop = match net {
            CropNet::RNet => RNET_CROP_BYTES,
            CropNet::ONet => ONET_CROP_BYTES,
        };
        usize::try_from((self.max_buffer_bytes / per_crop).max(1)).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn frames_per_pass_is_set_by_the_largest_buffer_of_a_frame() {
        let limit = PassLimit::new(128 * MIB);
        // 1080p at a 60-pixel smallest face: the frame's own f32 planes (24.9 MB) lead.
        let scales = boxes::pyramid_scales(1920, 1080, 60.0, 0.709);
        assert_eq!(limit.frames_per_pass(1920, 1080, &scales).unwrap(), 5);
        // 1080p at 20 pixels: P-Net's conv1 on the 1153x649 level (29.9 MB) leads.
        let scales = boxes::pyramid_scales(1920, 1080, 20.0, 0.709);
        let (h, w) = boxes::scaled_size(1920, 1080, scales[0]);
        assert_eq!((h, w), (649, 1153));
        let per_frame = 10 * 4 * (h * w) as u64;
        assert_eq!(
            limit.frames_per_pass(1920, 1080, &scales).unwrap() as u64,
            128 * MIB / per_frame
        );
        // No limit: any batch is one pass.
        assert!(
            PassLimit::NONE
                .frames_per_pass(1920, 1080, &scales)
                .unwrap()
                > 1 << 20
        );
    }

    #[test]
    fn a_frame_too_large_for_one_buffer_is_an_error_naming_its_size() {
        let scales = boxes::pyramid_scales(7680, 4320, 20.0, 0.709);
        let err = PassLimit::new(128 * MIB)
            .frames_per_pass(7680, 4320, &scales)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("7680x4320") && err.contains("128 MiB"),
            "{err}"
        );
    }

    #[test]
    fn crops_per_pass_keeps_each_nets_widest_activation_within_the_limit() {
        let limit = PassLimit::new(128 * MIB);
        assert_eq!(limit.crops_per_pass(CropNet::RNet), 2475);
        assert_eq!(limit.crops_per_pass(CropNet::ONet), 495);
        // Never zero, even under an absurd limit.
        assert_eq!(PassLimit::new(1).crops_per_pass(CropNet::ONet), 1);
    }
}
