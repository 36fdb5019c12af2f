//! Training images in memory and the host-side augmentations that turn them
//! into network input.
//!
//! A whole dataset is held as 8-bit pixels ([`ImageStore`]: 48×48 grey FER+
//! is 65 MB for 28k faces, 64×64 RGB Tiny-ImageNet 620 MB for 50k images).
//! Each batch is rendered straight into the channel-major `f32` buffer the
//! model takes: crop + resize (bilinear) + flip in one sampling pass, then
//! colour jitter, normalisation, random erasing. All randomness comes from the
//! `rng` passed in, so a batch is a pure function of its seed.

use image::{DynamicImage, RgbImage};
use rand::Rng;

/// Images of one size as 8-bit pixels, channel-last (`[n, h, w, c]`).
#[derive(Clone, Debug)]
pub struct ImageStore {
    pub width: usize,
    pub height: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    data: Vec<u8>,
}

impl ImageStore {
    /// RGB images; any not of the first image's size is resized to it.
    pub fn from_rgb(images: &[RgbImage]) -> Self {
        let (w, h) = images.first().map_or((1, 1), |i| i.dimensions());
        let mut data = Vec::with_capacity(images.len() * (w * h * 3) as usize);
        for img in images {
            if img.dimensions() == (w, h) {
                data.extend_from_slice(img.as_raw());
            } else {
                let r = image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle);
                data.extend_from_slice(r.as_raw());
            }
        }
        Self {
            width: w as usize,
            height: h as usize,
            channels: 3,
            data,
        }
    }

    /// Decoded images of any kind, stored grey when every one is grey, else
    /// RGB; resized to `size × size` when they are not already.
    pub fn from_dynamic<'a>(
        images: impl Iterator<Item = &'a DynamicImage> + Clone,
        size: u32,
    ) -> Self {
        let grey = images.clone().all(|i| {
            matches!(
                i,
                DynamicImage::ImageLuma8(_) | DynamicImage::ImageLuma16(_)
            )
        });
        let channels = if grey { 1 } else { 3 };
        let mut data = Vec::new();
        for img in images {
            let img = if img.width() == size && img.height() == size {
                std::borrow::Cow::Borrowed(img)
            } else {
                std::borrow::Cow::Owned(img.resize_exact(
                    size,
                    size,
                    image::imageops::FilterType::Triangle,
                ))
            };
            if grey {
                data.extend_from_slice(img.to_luma8().as_raw());
            } else {
                data.extend_from_slice(img.to_rgb8().as_raw());
            }
        }
        Self {
            width: size as usize,
            height: size as usize,
            channels,
            data,
        }
    }

    pub fn len(&self) -> usize {
        self.data.len() / (self.width * self.height * self.channels)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The pixels of image `i`, `[h, w, c]`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.width * self.height * self.channels;
        &self.data[i * n..(i + 1) * n]
    }

    /// Image `i` as an RGB image (grey replicated).
    pub fn to_rgb(&self, i: usize) -> RgbImage {
        let px = self.image(i);
        let (w, h) = (self.width as u32, self.height as u32);
        match self.channels {
            3 => RgbImage::from_raw(w, h, px.to_vec()).expect("size matches"),
            _ => RgbImage::from_fn(w, h, |x, y| {
                let v = px[(y * w + x) as usize];
                image::Rgb([v, v, v])
            }),
        }
    }
}

/// A rectangle of a source image in pixel units (may be fractional).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl CropBox {
    pub fn full(width: usize, height: usize) -> Self {
        Self {
            x: 0.0,
            y: 0.0,
            w: width as f32,
            h: height as f32,
        }
    }
}

/// torchvision's `RandomResizedCrop.get_params`: a box of `scale` × the image
/// area and aspect ratio log-uniform in `ratio`, 10 tries, else the central
/// crop of the nearest allowed ratio.
pub fn random_resized_crop(
    width: usize,
    height: usize,
    scale: (f32, f32),
    ratio: (f32, f32),
    rng: &mut impl Rng,
) -> CropBox {
    let area = (width * height) as f32;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.random_range(scale.0..=scale.1);
        let aspect = rng.random_range(lr0..=lr1).exp();
        let w = (target * aspect).sqrt().round() as usize;
        let h = (target / aspect).sqrt().round() as usize;
        if w > 0 && h > 0 && w <= width && h <= height {
            let x = rng.random_range(0..=width - w);
            let y = rng.random_range(0..=height - h);
            return CropBox {
                x: x as f32,
                y: y as f32,
                w: w as f32,
                h: h as f32,
            };
        }
    }
    let in_ratio = width as f32 / height as f32;
    let (w, h) = if in_ratio < ratio.0 {
        (width as f32, (width as f32 / ratio.0).round())
    } else if in_ratio > ratio.1 {
        ((height as f32 * ratio.1).round(), height as f32)
    } else {
        (width as f32, height as f32)
    };
    CropBox {
        x: ((width as f32 - w) / 2.0).floor(),
        y: ((height as f32 - h) / 2.0).floor(),
        w,
        h,
    }
}

/// Per-channel normalisation `(v − mean) / std` of values in `[0, 1]`.
#[derive(Clone, Copy, Debug)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// What to do to one image besides crop and flip.
#[derive(Clone, Copy, Debug, Default)]
pub struct PixelAugment {
    /// Brightness factor (multiplies values).
    pub brightness: f32,
    /// Contrast factor (scales values about the image mean).
    pub contrast: f32,
}

impl PixelAugment {
    pub const NONE: Self = Self {
        brightness: 1.0,
        contrast: 1.0,
    };

    /// Factors uniform in `[1 − s, 1 + s]` (torchvision `ColorJitter`).
    pub fn random(strength: f32, rng: &mut impl Rng) -> Self {
        if strength <= 0.0 {
            return Self::NONE;
        }
        Self {
            brightness: rng.random_range(1.0 - strength..=1.0 + strength),
            contrast: rng.random_range(1.0 - strength..=1.0 + strength),
        }
    }
}

/// Renders image `index` of `store` into `out` (`[3, size, size]`,
/// channel-major): the `crop` resampled bilinearly to `size × size`
/// (mirrored when `flip`), grey replicated over 3 channels, colour-jittered
/// by `pixel`, then normalised.
#[allow(clippy::too_many_arguments)]
pub fn render(
    store: &ImageStore,
    index: usize,
    crop: CropBox,
    flip: bool,
    pixel: PixelAugment,
    norm: &Normalization,
    size: usize,
    out: &mut [f32],
) {
    assert_eq!(out.len(), 3 * size * size);
    let src = store.image(index);
    let (sw, sh, c) = (store.width, store.height, store.channels);
    let plane = size * size;
    let (sx, sy) = (crop.w / size as f32, crop.h / size as f32);
    let mut sum = [0.0f32; 3];
    for oy in 0..size {
        let fy = (crop.y + (oy as f32 + 0.5) * sy - 0.5).clamp(0.0, (sh - 1) as f32);
        let y0 = fy.floor() as usize;
        let y1 = (y0 + 1).min(sh - 1);
        let ty = fy - y0 as f32;
        for ox in 0..size {
            let sxo = if flip { size - 1 - ox } else { ox };
            let fx = (crop.x + (sxo as f32 + 0.5) * sx - 0.5).clamp(0.0, (sw - 1) as f32);
            let x0 = fx.floor() as usize;
            let x1 = (x0 + 1).min(sw - 1);
            let tx = fx - x0 as f32;
            for ch in 0..3 {
                let sc = if c == 1 { 0 } else { ch };
                let p = |x: usize, y: usize| src[(y * sw + x) * c + sc] as f32;
                let top = p(x0, y0) * (1.0 - tx) + p(x1, y0) * tx;
                let bottom = p(x0, y1) * (1.0 - tx) + p(x1, y1) * tx;
                let v = (top * (1.0 - ty) + bottom * ty) / 255.0;
                out[ch * plane + oy * size + ox] = v;
                sum[ch] += v;
            }
        }
    }
    for ch in 0..3 {
        // Contrast about the grey mean of the image (torchvision blends with
        // the mean of the greyscale image).
        let grey_mean = (0.299 * sum[0] + 0.587 * sum[1] + 0.114 * sum[2]) / plane as f32;
        let values = &mut out[ch * plane..(ch + 1) * plane];
        for v in values.iter_mut() {
            let mut x = *v * pixel.brightness;
            x = (x - grey_mean * pixel.brightness) * pixel.contrast + grey_mean * pixel.brightness;
            *v = (x.clamp(0.0, 1.0) - norm.mean[ch]) / norm.std[ch];
        }
    }
}

/// timm's `RandomErasing` (mode `pixel`): with probability `prob`, a box of
/// 2–33 % of the area, aspect log-uniform in (0.3, 3.3), is filled with
/// N(0, 1) noise (in normalised units). `grey` keeps the three channels
/// equal. `img: [3, size, size]`.
pub fn random_erase(img: &mut [f32], size: usize, prob: f32, grey: bool, rng: &mut impl Rng) {
    if prob <= 0.0 || rng.random::<f32>() >= prob {
        return;
    }
    let area = (size * size) as f32;
    for _ in 0..10 {
        let target = area * rng.random_range(0.02f32..=1.0 / 3.0);
        let aspect = rng.random_range(0.3f32.ln()..=(1.0f32 / 0.3).ln()).exp();
        let h = (target * aspect).sqrt().round() as usize;
        let w = (target / aspect).sqrt().round() as usize;
        if w > 0 && h > 0 && w < size && h < size {
            let top = rng.random_range(0..=size - h);
            let left = rng.random_range(0..=size - w);
            let plane = size * size;
            for y in top..top + h {
                for x in left..left + w {
                    let n0 = normal(rng);
                    for ch in 0..3 {
                        let v = if grey || ch == 0 { n0 } else { normal(rng) };
                        img[ch * plane + y * size + x] = v;
                    }
                }
            }
            return;
        }
    }
}

/// A standard normal sample (Box–Muller).
fn normal(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn store_2x2() -> ImageStore {
        let img =
            RgbImage::from_raw(2, 2, vec![0, 0, 0, 255, 255, 255, 0, 0, 0, 255, 255, 255]).unwrap();
        ImageStore::from_rgb(&[img])
    }

    const IDENTITY: Normalization = Normalization {
        mean: [0.0; 3],
        std: [1.0; 3],
    };

    #[test]
    fn rendering_the_full_box_at_source_size_copies_pixels() {
        let s = store_2x2();
        let mut out = vec![0.0; 12];
        render(
            &s,
            0,
            CropBox::full(2, 2),
            false,
            PixelAugment::NONE,
            &IDENTITY,
            2,
            &mut out,
        );
        assert_eq!(&out[..4], &[0.0, 1.0, 0.0, 1.0]);
        render(
            &s,
            0,
            CropBox::full(2, 2),
            true,
            PixelAugment::NONE,
            &IDENTITY,
            2,
            &mut out,
        );
        assert_eq!(&out[..4], &[1.0, 0.0, 1.0, 0.0], "flip mirrors columns");
    }

    #[test]
    fn grey_store_is_replicated_and_normalised_per_channel() {
        let grey = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(3, 3, image::Luma([51])));
        let s = ImageStore::from_dynamic([grey].iter(), 3);
        assert_eq!(s.channels, 1);
        let norm = Normalization {
            mean: [0.1, 0.2, 0.0],
            std: [0.5, 0.5, 0.2],
        };
        let mut out = vec![0.0; 27];
        render(
            &s,
            0,
            CropBox::full(3, 3),
            false,
            PixelAugment::NONE,
            &norm,
            3,
            &mut out,
        );
        assert!(
            (out[0] - 0.2).abs() < 1e-6
                && (out[9] - 0.0).abs() < 1e-6
                && (out[18] - 1.0).abs() < 1e-6
        );
    }

    #[test]
    fn random_resized_crops_stay_inside_the_image() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let b = random_resized_crop(48, 40, (0.08, 1.0), (0.75, 1.333), &mut rng);
            assert!(
                b.x >= 0.0 && b.y >= 0.0 && b.x + b.w <= 48.0 && b.y + b.h <= 40.0,
                "{b:?}"
            );
        }
    }

    #[test]
    fn erasing_keeps_grey_images_grey() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut img = vec![0.5; 3 * 16 * 16];
        random_erase(&mut img, 16, 1.0, true, &mut rng);
        let plane = 256;
        assert!(img.iter().any(|v| *v != 0.5), "something was erased");
        for i in 0..plane {
            assert_eq!(img[i], img[plane + i]);
            assert_eq!(img[i], img[2 * plane + i]);
        }
    }
}
