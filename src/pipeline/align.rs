//! The align stage: one model-ready crop per face, aligned by a 5-point
//! similarity onto the model's template — on the GPU from the frame the
//! detector uploaded, else on the host.

use burn::tensor::Tensor;
use crossbeam_channel::{Receiver, Sender};

use super::detect::DetectedFrame;
use super::{Item, PipelineError, Stage, StageClocks};
use crate::align::align_face;
use crate::frame::{Frame, RgbImage};
use crate::geometry::{FaceDetection, Landmarks};
use crate::gpu::{self, CropStyle, FaceCrop, GpuError};

/// A frame with one model-ready crop per face.
pub(super) struct AlignedFrame {
    pub(super) frame: Frame,
    pub(super) faces: Vec<FaceDetection>,
    pub(super) crops: Crops,
}

/// The model-ready crops of one frame's faces.
pub(super) enum Crops {
    /// 8-bit crops in memory, normalised by [`ExpressionModel::preprocess`].
    Host(Vec<RgbImage>),
    /// Already the model's input `[faces, 3, size, size]` on the GPU
    /// ([`gpu::face_crops`]).
    Device(Tensor<4>),
}

impl Default for Crops {
    fn default() -> Self {
        Crops::Host(Vec::new())
    }
}

impl Crops {
    pub(super) fn len(&self) -> usize {
        match self {
            Crops::Host(crops) => crops.len(),
            Crops::Device(input) => input.dims()[0],
        }
    }
}

pub(super) fn align_stage(
    input: Receiver<Item<DetectedFrame>>,
    out: Sender<Item<AlignedFrame>>,
    template: &Landmarks,
    style: &CropStyle,
    clocks: &StageClocks,
) -> Result<(), PipelineError> {
    let clock = clocks.get(Stage::Align);
    for item in input {
        let item = item.try_map(|detected| {
            let crops = clock.time(1, || align_crops(&detected, template, style))?;
            let DetectedFrame { frame, faces, .. } = detected;
            Ok::<_, PipelineError>(AlignedFrame {
                frame,
                faces,
                crops,
            })
        })?;
        if out.send(item).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// One model-ready crop per face of a frame: cut on the GPU from the frame the detector
/// uploaded, else on the host (aligned onto `template`; a face without landmarks, from
/// `--crops`, is the whole image resized).
pub(super) fn align_crops(
    detected: &DetectedFrame,
    template: &Landmarks,
    style: &CropStyle,
) -> Result<Crops, GpuError> {
    let DetectedFrame {
        frame,
        faces,
        on_device,
    } = detected;
    if let Some((pixels, index)) = on_device {
        let crops: Vec<FaceCrop> = faces
            .iter()
            .map(|face| FaceCrop::from_landmarks(*index, &face.landmarks, template))
            .collect();
        return Ok(Crops::Device(gpu::face_crops(
            pixels.clone(),
            &crops,
            style,
        )?));
    }
    let size = style.size;
    Ok(Crops::Host(
        faces
            .iter()
            .map(|face| {
                if face.landmarks[0][0].is_finite() {
                    align_face(&frame.image, &face.landmarks, template, size)
                } else {
                    image::imageops::resize(
                        &frame.image,
                        size,
                        size,
                        image::imageops::FilterType::Triangle,
                    )
                }
            })
            .collect(),
    ))
}
