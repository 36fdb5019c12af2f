//! Aligned face crops on the GPU (`shaders/face_crops.wgsl`): one launch samples every
//! face of a batch of frames through its 5-point similarity transform and writes the
//! normalised pixels straight into the ViT's input `[faces, 3, size, size]`.
//!
//! The CPU path is [`align::align_face`] (an 8-bit crop) followed by
//! [`model::normalize_crop`]; [`face_crops_reference`] chains exactly those two, and the
//! host side here computes the transforms with [`align::similarity_transform`], so only
//! the per-pixel sampling runs twice. The shader mirrors the sampling rule of `align`
//! operation for operation, but a GPU may contract `a u - b v + tx` into a fused
//! multiply-add, so a sample can land a hair away and its 8-bit rounding flip by one
//! level. Bound: per value, 1e-5 where the 8-bit crop values agree, else one level,
//! `1 / (255 · std)` (+1e-5); in practice a handful of pixels per crop, none on lavapipe.

use std::sync::Arc;

use burn::tensor::{Shape, Tensor};

use super::GpuError;
use super::kernel::{self, Arg, FACE_CROPS};
use crate::align::{self, Similarity};
use crate::frame::RgbImage;
use crate::geometry::Landmarks;
use crate::model;

/// One face to crop: which frame of the batch, and the crop-to-frame transform (`None`:
/// degenerate landmarks, the crop is black as `align::align_face` makes it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceCrop {
    pub frame: usize,
    pub to_frame: Option<Similarity>,
}

impl FaceCrop {
    /// The crop putting `landmarks` (frame pixels) on `template` (crop pixels), as
    /// `align::align_face` computes it.
    pub fn from_landmarks(frame: usize, landmarks: &Landmarks, template: &Landmarks) -> Self {
        Self {
            frame,
            to_frame: align::similarity_transform(landmarks, template).inverse(),
        }
    }
}

/// How crops become the model's input: side, colour mode and normalisation (the model
/// package's `input_size`, `grey`, `mean`, `std`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropStyle {
    pub size: u32,
    pub grey: bool,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl CropStyle {
    /// The style of a loaded model's configuration.
    pub fn of_model(config: &model::ModelConfig) -> Self {
        Self {
            size: config.input_size,
            grey: config.grey,
            mean: config.mean,
            std: config.std,
        }
    }
}

/// The shader's parameter block (see `shaders/face_crops.wgsl`).
fn crop_words(
    crops: &[FaceCrop],
    style: &CropStyle,
    frames: usize,
    height: usize,
    width: usize,
) -> Result<Vec<u32>, GpuError> {
    let size = style.size as usize;
    if size == 0
        || 3 * crops.len() * size * size >= u32::MAX as usize
        || 3 * frames * height * width >= u32::MAX as usize
    {
        return Err(GpuError::TooLarge {
            what: format!("{} crops of {size} px", crops.len()),
        });
    }
    if style.std.iter().any(|s| !(*s > 0.0)) {
        return Err(GpuError::BadJob {
            index: 0,
            reason: format!("std {:?} must be positive", style.std),
        });
    }
    let mut words = vec![
        crops.len() as u32,
        height as u32,
        width as u32,
        style.size,
        u32::from(style.grey),
        0,
    ];
    words.extend(style.mean.iter().chain(&style.std).map(|v| v.to_bits()));
    for (index, crop) in crops.iter().enumerate() {
        if crop.frame >= frames {
            return Err(GpuError::BadJob {
                index,
                reason: format!("frame {} of {frames}", crop.frame),
            });
        }
        let (valid, t) = match crop.to_frame {
            Some(t) if [t.a, t.b, t.tx, t.ty].iter().all(|v| v.is_finite()) => (1, t),
            _ => (0, Similarity::IDENTITY),
        };
        words.extend([
            crop.frame as u32,
            valid,
            t.a.to_bits(),
            t.b.to_bits(),
            t.tx.to_bits(),
            t.ty.to_bits(),
        ]);
    }
    Ok(words)
}

/// `frames: [n, 3, h, w]` (8-bit values as f32) → the model's input
/// `[crops, 3, size, size]`, normalised as `ExpressionModel::preprocess` does.
pub fn face_crops(
    frames: Tensor<4>,
    crops: &[FaceCrop],
    style: &CropStyle,
) -> Result<Tensor<4>, GpuError> {
    let [n, c, h, w] = frames.dims();
    if c != 3 {
        return Err(GpuError::BadPicture {
            reason: format!("frames have {c} channels, not 3"),
        });
    }
    let size = style.size as usize;
    if crops.is_empty() {
        return Ok(Tensor::empty([0, 3, size, size], &frames.device()));
    }
    let words = crop_words(crops, style, n, h, w)?;
    let device = frames.device();
    let out = kernel::launch(
        &device,
        &FACE_CROPS,
        (crops.len() * size * size) as u64,
        vec![
            Arg::Input(kernel::primitive(frames)?),
            Arg::Words(Arc::from(words)),
            Arg::Output(Shape::new([crops.len(), 3, size, size])),
        ],
    )?;
    Ok(kernel::tensor(out.into_iter().next().expect("one output")))
}

/// CPU twin of [`face_crops`]: `align`'s 8-bit crop, then `model::normalize_crop`;
/// `[crops · 3 · size · size]` values.
pub fn face_crops_reference(
    frames: &[RgbImage],
    crops: &[FaceCrop],
    style: &CropStyle,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(crops.len() * 3 * (style.size * style.size) as usize);
    for crop in crops {
        let image = match crop.to_frame {
            Some(t) if [t.a, t.b, t.tx, t.ty].iter().all(|v| v.is_finite()) => {
                align::warp_similarity(&frames[crop.frame], &t, style.size)
            }
            _ => RgbImage::new(style.size, style.size),
        };
        out.extend(model::normalize_crop(
            &image, style.grey, style.mean, style.std,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_words_carry_the_style_and_one_transform_per_crop() {
        let style = CropStyle {
            size: 4,
            grey: true,
            mean: [0.5; 3],
            std: [0.25; 3],
        };
        let t = Similarity {
            a: 2.0,
            b: -1.0,
            tx: 3.5,
            ty: 7.0,
        };
        let crops = [
            FaceCrop {
                frame: 1,
                to_frame: Some(t),
            },
            FaceCrop {
                frame: 0,
                to_frame: None,
            },
        ];
        let w = crop_words(&crops, &style, 2, 10, 20).unwrap();
        assert_eq!(&w[..6], &[2, 10, 20, 4, 1, 0]);
        assert_eq!(f32::from_bits(w[6]), 0.5);
        assert_eq!(f32::from_bits(w[11]), 0.25);
        assert_eq!(&w[12..14], &[1, 1]);
        assert_eq!(f32::from_bits(w[14]), 2.0);
        assert_eq!(f32::from_bits(w[17]), 7.0);
        assert_eq!(&w[18..20], &[0, 0]);
        assert!(
            crop_words(
                &[FaceCrop {
                    frame: 2,
                    to_frame: None
                }],
                &style,
                2,
                10,
                20
            )
            .is_err()
        );
        let bad_std = CropStyle {
            std: [0.0; 3],
            ..style
        };
        assert!(crop_words(&crops, &bad_std, 2, 10, 20).is_err());
    }

    #[test]
    fn reference_is_align_then_normalize() {
        let frame = RgbImage::from_fn(30, 20, |x, y| {
            image::Rgb([(x * 8) as u8, (y * 12) as u8, 100])
        });
        let landmarks: Landmarks = [
            [10.0, 8.0],
            [20.0, 8.5],
            [15.0, 12.0],
            [11.0, 16.0],
            [19.0, 16.0],
        ];
        let template = align::scale_template(&align::ARCFACE_112, 112, 16);
        let style = CropStyle {
            size: 16,
            grey: false,
            mean: [0.4; 3],
            std: [0.2; 3],
        };
        let crop = FaceCrop::from_landmarks(0, &landmarks, &template);
        let out = face_crops_reference(std::slice::from_ref(&frame), &[crop], &style);
        let aligned = align::align_face(&frame, &landmarks, &template, 16);
        assert_eq!(
            out,
            model::normalize_crop(&aligned, false, style.mean, style.std)
        );
    }
}
