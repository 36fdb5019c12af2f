//! Decoder output (YUV 4:2:0 planar, NV12, packed RGB24) to planar RGB on the GPU
//! (`shaders/decoded_to_rgb.wgsl`), and its CPU twin.
//!
//! The CPU path converts with FFmpeg's swscale (`SWS_BILINEAR`, the stream's YUV matrix
//! and range, see `decode::video_file`). For 4:2:0 at an even height swscale takes its
//! unscaled `yuv2rgb` path, whose x86 code works in 16-bit fixed point:
//!
//! ```text
//! Y' = mulhi(8 Y - yoff, yc)      U' = 8 U - 1024     V' = 8 V - 1024     mulhi(a, b) = (a b) >> 16
//! R = Y' + mulhi(V', vrc)   G = Y' + mulhi(U', ugc) + mulhi(V', vgc)   B = Y' + mulhi(U', ubc)
//! ```
//!
//! clamped to `0..=255`, with the chroma of each 2x2 block (nearest). [`YuvMatrix`] derives
//! the coefficients exactly as swscale's `ff_yuv2rgb_c_init_tables` does from the
//! colour-space table `sws_getCoefficients` returns. The shader and [`convert_reference`]
//! compute exactly this in integers, so they agree bit for bit; against swscale 5.1 on x86
//! (what the decoder runs) they agree exactly on 4:2:0 at even heights, any width (tested
//! on random pictures). Elsewhere swscale takes its generic scaler, which interpolates
//! chroma (odd heights; NV12 input): there the GPU keeps nearest chroma and differs near
//! chroma edges; a decoder feeding the GPU path should hand over RGB24 in those cases
//! ([`PixelLayout::swscale_exact`]).
//!
//! The result is the frame as 8-bit RGB values held in f32, `[3, height, width]`: the same
//! numbers the CPU path's `RgbImage` holds, which the pyramid and crop shaders consume.

use std::sync::Arc;

use burn::tensor::{Device, Shape, Tensor};

use super::GpuError;
use super::kernel::{self, Arg, DECODED_TO_RGB};
use crate::frame::RgbImage;

/// How a decoded picture's bytes are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelLayout {
    /// Three planes: Y (`width x height`), then U and V (`ceil(w/2) x ceil(h/2)`).
    Yuv420p,
    /// Two planes: Y, then interleaved U, V pairs (`ceil(w/2)` pairs x `ceil(h/2)` rows).
    Nv12,
    /// One plane of packed 8-bit R, G, B.
    Rgb24,
}

impl PixelLayout {
    fn code(self) -> u32 {
        match self {
            PixelLayout::Yuv420p => 0,
            PixelLayout::Nv12 => 1,
            PixelLayout::Rgb24 => 2,
        }
    }

    fn plane_count(self) -> usize {
        match self {
            PixelLayout::Yuv420p => 3,
            PixelLayout::Nv12 => 2,
            PixelLayout::Rgb24 => 1,
        }
    }

    /// Whether the conversion is bit-identical to the decoder's swscale conversion for a
    /// picture of this height: 4:2:0 planar at an even height, and RGB24 (no conversion).
    pub fn swscale_exact(self, height: u32) -> bool {
        match self {
            PixelLayout::Yuv420p => height % 2 == 0,
            PixelLayout::Nv12 => false,
            PixelLayout::Rgb24 => true,
        }
    }

    /// `(bytes per row, rows)` that plane `k` needs at least.
    fn plane_extent(self, k: usize, width: usize, height: usize) -> (usize, usize) {
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        match (self, k) {
            (PixelLayout::Rgb24, _) => (3 * width, height),
            (_, 0) => (width, height),
            (PixelLayout::Nv12, _) => (2 * cw, ch),
            (PixelLayout::Yuv420p, _) => (cw, ch),
        }
    }
}

/// swscale's YUV → RGB fixed-point coefficients for one matrix and range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct YuvMatrix {
    pub yc: i32,
    pub vrc: i32,
    pub ubc: i32,
    pub vgc: i32,
    pub ugc: i32,
    pub yoff: i32,
}

/// swscale's `ff_yuv2rgb_coeffs` rows (crv, cbu, cgu, cgv in 16.16) for the common
/// matrices; [`YuvMatrix::for_ffmpeg_colorspace`] reads the same table from FFmpeg.
pub const BT601_TABLE: [i32; 4] = [104_597, 132_201, 25_675, 53_279];
pub const BT709_TABLE: [i32; 4] = [117_489, 138_438, 13_975, 34_925];
pub const BT2020_TABLE: [i32; 4] = [110_013, 140_363, 12_277, 42_626];

impl YuvMatrix {
    /// The coefficients swscale's `ff_yuv2rgb_c_init_tables` derives from a colour-space
    /// table `[crv, cbu, cgu, cgv]` and a range (brightness 0, contrast and saturation 1,
    /// as the decoder sets them).
    pub fn from_swscale_table(table: [i32; 4], full_range: bool) -> Self {
        let (mut crv, mut cbu, mut cgu, mut cgv) = (
            i64::from(table[0]),
            i64::from(table[1]),
            -i64::from(table[2]),
            -i64::from(table[3]),
        );
        let (mut cy, mut oy): (i64, i64) = (1 << 16, 0);
        if full_range {
            // C integer division truncates toward zero, as Rust's does.
            crv = crv * 224 / 255;
            cbu = cbu * 224 / 255;
            cgu = cgu * 224 / 255;
            cgv = cgv * 224 / 255;
        } else {
            cy = cy * 255 / 219;
            oy = 16 << 16;
        }
        // roundToInt16: (f + 2^15) >> 16 (arithmetic), clamped to the i16 range.
        let round16 = |f: i64| ((f + (1 << 15)) >> 16).clamp(-0x7fff, 0x7fff) as i32;
        Self {
            yc: round16(cy << 13),
            vrc: round16(crv << 13),
            ubc: round16(cbu << 13),
            vgc: round16(cgv << 13),
            ugc: round16(cgu << 13),
            yoff: round16(oy << 3),
        }
    }

    /// ITU-R BT.601 (also what swscale assumes for an unspecified colour space).
    pub fn bt601(full_range: bool) -> Self {
        Self::from_swscale_table(BT601_TABLE, full_range)
    }

    /// ITU-R BT.709 (HD video, e.g. the shared clip).
    pub fn bt709(full_range: bool) -> Self {
        Self::from_swscale_table(BT709_TABLE, full_range)
    }

    /// The coefficients the decoder's swscale uses for an FFmpeg `AVColorSpace` value
    /// (`frame->colorspace`), read from FFmpeg's own table with `sws_getCoefficients`.
    pub fn for_ffmpeg_colorspace(colorspace: i32, full_range: bool) -> Self {
        // SAFETY: `sws_getCoefficients` returns a pointer to a static table of 4 ints for
        // any index (out-of-range ones give the default row).
        let table = unsafe {
            let p = ffmpeg_next::ffi::sws_getCoefficients(colorspace);
            [*p, *p.add(1), *p.add(2), *p.add(3)]
        };
        Self::from_swscale_table(table, full_range)
    }

    fn words(&self) -> [u32; 6] {
        [self.yc, self.vrc, self.ubc, self.vgc, self.ugc, self.yoff].map(|v| v as u32)
    }
}

/// Where one plane starts in [`DecodedPicture::bytes`] and how far apart its rows are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plane {
    pub offset: usize,
    pub stride: usize,
}

/// A picture as the decoder hands it over, before any colour conversion: its planes in
/// one byte buffer (rows may be padded, as FFmpeg's are), to be uploaded in one copy.
#[derive(Clone, Debug)]
pub struct DecodedPicture {
    pub layout: PixelLayout,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
    pub planes: Vec<Plane>,
    /// Ignored for [`PixelLayout::Rgb24`].
    pub matrix: YuvMatrix,
}

impl DecodedPicture {
    /// A picture from its planes, each `(bytes, stride)`, copied into one buffer.
    /// Errors when a plane is shorter than the layout needs.
    pub fn from_planes(
        layout: PixelLayout,
        width: u32,
        height: u32,
        planes: &[(&[u8], usize)],
        matrix: YuvMatrix,
    ) -> Result<Self, GpuError> {
        if planes.len() != layout.plane_count() {
            return Err(GpuError::BadPicture {
                reason: format!(
                    "{layout:?} has {} planes, got {}",
                    layout.plane_count(),
                    planes.len()
                ),
            });
        }
        let mut bytes = Vec::with_capacity(planes.iter().map(|(p, _)| p.len()).sum());
        let mut layout_planes = Vec::with_capacity(planes.len());
        for (k, (data, stride)) in planes.iter().enumerate() {
            let (row_bytes, rows) = layout.plane_extent(k, width as usize, height as usize);
            let needed = stride
                .saturating_mul(rows.saturating_sub(1))
                .saturating_add(row_bytes);
            if *stride < row_bytes || data.len() < needed {
                return Err(GpuError::BadPicture {
                    reason: format!(
                        "plane {k} of a {width}x{height} {layout:?} picture: {} bytes with stride \
                         {stride}, needs {needed} with stride >= {row_bytes}",
                        data.len()
                    ),
                });
            }
            layout_planes.push(Plane {
                offset: bytes.len(),
                stride: *stride,
            });
            bytes.extend_from_slice(data);
        }
        let picture = Self {
            layout,
            width,
            height,
            bytes,
            planes: layout_planes,
            matrix,
        };
        picture.validate()?;
        Ok(picture)
    }

    /// A packed RGB image (e.g. a still, or the CPU decoder's output) as a picture.
    pub fn from_rgb(image: &RgbImage) -> Self {
        Self {
            layout: PixelLayout::Rgb24,
            width: image.width(),
            height: image.height(),
            bytes: image.as_raw().clone(),
            planes: vec![Plane {
                offset: 0,
                stride: 3 * image.width() as usize,
            }],
            matrix: YuvMatrix::bt601(false),
        }
    }

    /// Checks sizes and that every plane lies inside `bytes` (the shader reads unchecked).
    pub fn validate(&self) -> Result<(), GpuError> {
        let bad = |reason: String| Err(GpuError::BadPicture { reason });
        let (w, h) = (self.width as usize, self.height as usize);
        if w == 0 || h == 0 {
            return bad(format!("empty picture {w}x{h}"));
        }
        if self.planes.len() != self.layout.plane_count() {
            return bad(format!(
                "{:?} needs {} planes",
                self.layout,
                self.layout.plane_count()
            ));
        }
        for (k, plane) in self.planes.iter().enumerate() {
            let (row_bytes, rows) = self.layout.plane_extent(k, w, h);
            if plane.stride < row_bytes {
                return bad(format!(
                    "plane {k}: stride {} < row of {row_bytes} bytes",
                    plane.stride
                ));
            }
            let end = plane
                .offset
                .saturating_add(plane.stride.saturating_mul(rows - 1))
                .saturating_add(row_bytes);
            if end > self.bytes.len() {
                return bad(format!(
                    "plane {k} ends at byte {end}, buffer has {}",
                    self.bytes.len()
                ));
            }
        }
        if self.bytes.len() >= u32::MAX as usize
            || w.checked_mul(h)
                .is_none_or(|n| n >= (u32::MAX / 3) as usize)
        {
            return bad(format!(
                "picture {w}x{h} ({} bytes) too large",
                self.bytes.len()
            ));
        }
        Ok(())
    }

    /// The words of `bytes` (little-endian, zero-padded to a multiple of 4).
    fn words(&self) -> Vec<u32> {
        self.bytes
            .chunks(4)
            .map(|c| {
                let mut b = [0u8; 4];
                b[..c.len()].copy_from_slice(c);
                u32::from_le_bytes(b)
            })
            .collect()
    }

    /// The shader's parameter block (see `shaders/decoded_to_rgb.wgsl`).
    fn params(&self) -> Vec<u32> {
        let mut p = vec![self.layout.code(), self.width, self.height];
        for k in 0..3 {
            let plane = self.planes.get(k).copied().unwrap_or(Plane {
                offset: 0,
                stride: 0,
            });
            p.extend([plane.offset as u32, plane.stride as u32]);
        }
        p.extend(self.matrix.words());
        p
    }
}

/// `mulhi` of the fixed-point maths: the high half of a 16x16-bit signed product.
fn mulhi(a: i32, b: i32) -> i32 {
    (a * b) >> 16
}

/// One pixel of a 4:2:0 picture, by the formula of the module doc.
pub fn yuv_to_rgb_pixel(y: u8, u: u8, v: u8, m: &YuvMatrix) -> [u8; 3] {
    let yy = mulhi(i32::from(y) * 8 - m.yoff, m.yc);
    let (uu, vv) = (i32::from(u) * 8 - 1024, i32::from(v) * 8 - 1024);
    [
        yy + mulhi(vv, m.vrc),
        yy + mulhi(uu, m.ugc) + mulhi(vv, m.vgc),
        yy + mulhi(uu, m.ubc),
    ]
    .map(|c| c.clamp(0, 255) as u8)
}

/// CPU twin of `decoded_to_rgb.wgsl`: the picture as an RGB image.
pub fn convert_reference(picture: &DecodedPicture) -> Result<RgbImage, GpuError> {
    picture.validate()?;
    let (w, h) = (picture.width, picture.height);
    let b = &picture.bytes;
    let p = &picture.planes;
    let at = |k: usize, x: usize, y: usize| b[p[k].offset + y * p[k].stride + x];
    Ok(RgbImage::from_fn(w, h, |x, y| {
        let (x, y) = (x as usize, y as usize);
        let (cx, cy) = (x / 2, y / 2);
        image::Rgb(match picture.layout {
            PixelLayout::Rgb24 => [at(0, 3 * x, y), at(0, 3 * x + 1, y), at(0, 3 * x + 2, y)],
            PixelLayout::Yuv420p => {
                yuv_to_rgb_pixel(at(0, x, y), at(1, cx, cy), at(2, cx, cy), &picture.matrix)
            }
            PixelLayout::Nv12 => yuv_to_rgb_pixel(
                at(0, x, y),
                at(1, 2 * cx, cy),
                at(1, 2 * cx + 1, cy),
                &picture.matrix,
            ),
        })
    }))
}

/// The picture uploaded once and converted on `device`: `[3, height, width]` f32 holding
/// the 8-bit values (whole numbers 0..=255), in stream order with burn's work.
pub fn decoded_to_rgb(picture: &DecodedPicture, device: &Device) -> Result<Tensor<3>, GpuError> {
    picture.validate()?;
    let (w, h) = (picture.width as usize, picture.height as usize);
    let out = kernel::launch(
        device,
        &DECODED_TO_RGB,
        (w * h) as u64,
        vec![
            Arg::Words(Arc::from(picture.words())),
            Arg::Words(Arc::from(picture.params())),
            Arg::Output(Shape::new([3, h, w])),
        ],
    )?;
    Ok(kernel::tensor(out.into_iter().next().expect("one output")))
}

/// `[3, h, w]` of an RGB image, the layout [`decoded_to_rgb`] produces (for the CPU side
/// of comparisons, and to put host frames on the device).
pub fn rgb_planes(image: &RgbImage) -> Vec<f32> {
    let plane = (image.width() * image.height()) as usize;
    let mut out = vec![0.0; 3 * plane];
    for (i, px) in image.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = f32::from(px[c]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bt601_limited_coefficients_are_swscales() {
        // The values swscale 5.1 puts in yuv2rgb_*_coeff for BT.601 limited range.
        let m = YuvMatrix::bt601(false);
        assert_eq!(
            (m.yc, m.vrc, m.ubc, m.vgc, m.ugc, m.yoff),
            (9539, 13075, 16525, -6660, -3209, 128)
        );
        let full = YuvMatrix::bt601(true);
        assert_eq!((full.yc, full.yoff), (8192, 0));
    }

    #[test]
    fn ffmpeg_colorspace_table_matches_the_constants() {
        // AVCOL_SPC_BT709 = 1, AVCOL_SPC_SMPTE170M (BT.601) = 6, AVCOL_SPC_BT2020_NCL = 9.
        assert_eq!(
            YuvMatrix::for_ffmpeg_colorspace(1, false),
            YuvMatrix::bt709(false)
        );
        assert_eq!(
            YuvMatrix::for_ffmpeg_colorspace(6, false),
            YuvMatrix::bt601(false)
        );
        assert_eq!(
            YuvMatrix::for_ffmpeg_colorspace(9, true),
            YuvMatrix::from_swscale_table(BT2020_TABLE, true)
        );
        // Unspecified (2) is BT.601, as swscale assumes.
        assert_eq!(
            YuvMatrix::for_ffmpeg_colorspace(2, false),
            YuvMatrix::bt601(false)
        );
    }

    #[test]
    fn limited_range_black_white_and_grey_map_to_0_255_and_130() {
        let m = YuvMatrix::bt601(false);
        assert_eq!(yuv_to_rgb_pixel(16, 128, 128, &m), [0, 0, 0]);
        assert_eq!(yuv_to_rgb_pixel(235, 128, 128, &m), [255, 255, 255]);
        // 1.164 * (128 - 16) = 130.4: swscale's fixed point truncates to 130.
        assert_eq!(yuv_to_rgb_pixel(128, 128, 128, &m), [130, 130, 130]);
    }

    #[test]
    fn reference_reads_padded_planes_and_shares_chroma_over_2x2_blocks() {
        // 3x3 picture, strides padded to 8; chroma 2x2 with one red-ish sample.
        let y = [100u8; 8 * 3];
        let mut v = [128u8; 8 * 2];
        v[1] = 200; // chroma (1, 0): luma columns 2, rows 0..2
        let u = [128u8; 8 * 2];
        let m = YuvMatrix::bt601(false);
        let pic = DecodedPicture::from_planes(
            PixelLayout::Yuv420p,
            3,
            3,
            &[(&y, 8), (&u, 8), (&v, 8)],
            m,
        )
        .unwrap();
        let rgb = convert_reference(&pic).unwrap();
        let plain = yuv_to_rgb_pixel(100, 128, 128, &m);
        let red = yuv_to_rgb_pixel(100, 128, 200, &m);
        for (x, yy, px) in rgb.enumerate_pixels() {
            let want = if x == 2 && yy < 2 { red } else { plain };
            assert_eq!(px.0, want, "({x}, {yy})");
        }
    }

    #[test]
    fn rgb_pictures_convert_to_themselves() {
        let image = RgbImage::from_fn(5, 2, |x, y| image::Rgb([x as u8 * 40, y as u8 * 90, 7]));
        let pic = DecodedPicture::from_rgb(&image);
        assert_eq!(convert_reference(&pic).unwrap(), image);
        let planes = rgb_planes(&image);
        assert_eq!(planes[10 + 5 + 1], 90.0); // green of (1, 1)
    }

    #[test]
    fn planes_that_do_not_fit_are_rejected() {
        let y = [0u8; 16];
        let err = DecodedPicture::from_planes(
            PixelLayout::Yuv420p,
            4,
            4,
            &[(&y, 4), (&y[..3], 2), (&y[..4], 2)],
            YuvMatrix::bt601(false),
        )
        .unwrap_err();
        assert!(err.to_string().contains("plane 1"), "{err}");
        let nv12 = DecodedPicture::from_planes(
            PixelLayout::Nv12,
            4,
            4,
            &[(&y, 4), (&y[..8], 4)],
            YuvMatrix::bt601(false),
        );
        assert!(nv12.is_ok());
    }
}
