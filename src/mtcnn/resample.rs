//! MTCNN's image resampling: torch's `interpolate(mode="area")` (adaptive average
//! pooling) from 8-bit RGB to the nets' normalised float input.
//!
//! Output cell `i` of a side resized from `n_in` to `n_out` averages input indices
//! `floor(i * n_in / n_out) .. ceil((i + 1) * n_in / n_out)` (end exclusive); windows may
//! overlap by one pixel, and when upsampling they hold one or two pixels. facenet applies
//! this both to the whole frame (the P-Net pyramid) and to each box crop (R-Net 24x24,
//! O-Net 48x48).
//!
//! The window sums are sums of 8-bit integers, so we take them from an integral image in
//! exact integer arithmetic, then divide like torch's CPU kernel does, `(sum / kh) / kw`
//! in `f32`. The result is bit-identical to torch's, which the golden test checks.

use super::boxes::CropRect;
use crate::frame::RgbImage;

/// The normalisation facenet applies to the resized pixels: `(v - 127.5) * 0.0078125`.
pub fn normalise(v: f32) -> f32 {
    (v - 127.5) * 0.0078125
}

/// Input window `[start, end)` of output index `i` when resizing `n_in` to `n_out`.
pub fn area_window(i: usize, n_in: usize, n_out: usize) -> (usize, usize) {
    let start = i * n_in / n_out;
    let end = ((i + 1) * n_in).div_ceil(n_out);
    (start, end)
}

/// Per-channel summed-area table of an RGB image: `sum(y, x)[c]` is the sum of channel
/// `c` over rows `0..y`, columns `0..x`. Stored `[(h + 1), (w + 1), 3]`, wrapping `u32`
/// (differences of wrapped sums are exact while a window's sum fits in 32 bits, that is
/// for any window of fewer than 16.8 million pixels).
pub struct IntegralImage {
    width: usize,
    height: usize,
    sums: Vec<u32>,
}

impl IntegralImage {
    pub fn new(image: &RgbImage) -> Self {
        let (width, height) = (image.width() as usize, image.height() as usize);
        let stride = (width + 1) * 3;
        // Row by row, each a copy of the one above plus this row's running sums: the
        // table (25 MB at 1080p) is written once, not zeroed first.
        let mut sums = Vec::with_capacity((height + 1) * stride);
        sums.resize(stride, 0u32);
        for (y, row) in image.as_raw().chunks_exact((width * 3).max(1)).enumerate() {
            sums.extend_from_within(y * stride..(y + 1) * stride);
            // Column 0 stays 0.
            let below = &mut sums[(y + 1) * stride + 3..];
            let mut run = [0u32; 3];
            for (pixel, sum) in row.chunks_exact(3).zip(below.chunks_exact_mut(3)) {
                for c in 0..3 {
                    run[c] = run[c].wrapping_add(u32::from(pixel[c]));
                    sum[c] = sum[c].wrapping_add(run[c]);
                }
            }
        }
        Self {
            width,
            height,
            sums,
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Area-resizes the pixels of `rect` to `out_h x out_w`, normalises them and writes
    /// them channel-major into `out: [3, out_h, out_w]`.
    pub fn resize_area_normalised(
        &self,
        rect: CropRect,
        out_h: usize,
        out_w: usize,
        out: &mut [f32],
    ) {
        assert!(rect.x1 <= self.width && rect.y1 <= self.height && rect.x0 < rect.x1);
        assert!(rect.y0 < rect.y1);
        assert_eq!(
            out.len(),
            3 * out_h * out_w,
            "out must be [3, out_h, out_w]"
        );
        let (in_h, in_w) = (rect.height(), rect.width());
        let cols: Vec<(usize, usize)> = (0..out_w).map(|j| area_window(j, in_w, out_w)).collect();
        let widths: Vec<f32> = cols.iter().map(|&(c0, c1)| (c1 - c0) as f32).collect();
        // The columns where some window starts or ends, in order (both grow with `j`), and
        // each window as two indices into them: a row costs O(out_w), not O(in_w), so a
        // pyramid level of a large frame costs what its own size does.
        let mut edges: Vec<usize> = cols.iter().flat_map(|&(c0, c1)| [c0, c1]).collect();
        edges.sort_unstable();
        edges.dedup();
        let edge = |c: usize| edges.partition_point(|&e| e < c);
        let windows: Vec<(usize, usize)> =
            cols.iter().map(|&(c0, c1)| (edge(c0), edge(c1))).collect();
        let plane = out_h * out_w;
        let stride = (self.width + 1) * 3;
        // Per output row: the integral's bottom row minus its top row at the edges, whose
        // differences between a window's two edges are its sums.
        let mut band = vec![0u32; edges.len() * 3];
        // One output row's window sums, channel-major, so that the divisions below run
        // over contiguous lanes.
        let mut sums = vec![0u32; 3 * out_w];
        for i in 0..out_h {
            let (r0, r1) = area_window(i, in_h, out_h);
            let kh = (r1 - r0) as f32;
            let integral_row = |y: usize| &self.sums[y * stride + rect.x0 * 3..][..(in_w + 1) * 3];
            let (top, bottom) = (integral_row(rect.y0 + r0), integral_row(rect.y0 + r1));
            for (d, &e) in band.chunks_exact_mut(3).zip(&edges) {
                for c in 0..3 {
                    d[c] = bottom[e * 3 + c].wrapping_sub(top[e * 3 + c]);
                }
            }
            for (j, &(e0, e1)) in windows.iter().enumerate() {
                for c in 0..3 {
                    sums[c * out_w + j] = band[e1 * 3 + c].wrapping_sub(band[e0 * 3 + c]);
                }
            }
            for (c, sums) in sums.chunks_exact(out_w).enumerate() {
                let row = &mut out[c * plane + i * out_w..][..out_w];
                for ((v, &sum), &kw) in row.iter_mut().zip(sums).zip(&widths) {
                    // Exact while the sum is below 2^24 (windows under 65,793 pixels).
                    *v = normalise(sum as f32 / kh / kw);
                }
            }
        }
    }

    /// The whole frame as a crop rectangle.
    pub fn full_rect(&self) -> CropRect {
        CropRect {
            x0: 0,
            y0: 0,
            x1: self.width,
            y1: self.height,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_windows_cover_the_input_and_overlap_when_not_divisible() {
        assert_eq!(area_window(0, 4, 2), (0, 2));
        assert_eq!(area_window(1, 4, 2), (2, 4));
        // 5 -> 3: [0, 2), [1, 4), [3, 5)
        assert_eq!(
            (0..3).map(|i| area_window(i, 5, 3)).collect::<Vec<_>>(),
            vec![(0, 2), (1, 4), (3, 5)]
        );
        // upsampling 2 -> 3: [0, 1), [0, 2), [1, 2)
        assert_eq!(
            (0..3).map(|i| area_window(i, 2, 3)).collect::<Vec<_>>(),
            vec![(0, 1), (0, 2), (1, 2)]
        );
    }

    #[test]
    fn area_resize_averages_windows_of_a_crop() {
        // 4x3 image, red = 10*x + y, green = 100, blue = x.
        let image = RgbImage::from_fn(4, 3, |x, y| image::Rgb([(10 * x + y) as u8, 100, x as u8]));
        let integral = IntegralImage::new(&image);
        let rect = CropRect {
            x0: 1,
            y0: 0,
            x1: 4,
            y1: 3,
        }; // 3x3 crop
        let mut out = vec![0.0; 3 * 2 * 2];
        integral.resize_area_normalised(rect, 2, 2, &mut out);
        // 3 -> 2 windows: [0, 2), [1, 3). Output (0, 0) averages crop rows 0..2, cols 0..2,
        // i.e. image x in 1..3, y in 0..2: red (10+0 + 20+0 + 10+1 + 20+1) / 4 = 15.5.
        let red = |i: usize, j: usize| out[i * 2 + j];
        assert_eq!(red(0, 0), normalise(15.5));
        // (1, 1): x in 2..4, y in 1..3: (21 + 31 + 22 + 32) / 4 = 26.5
        assert_eq!(red(1, 1), normalise(26.5));
        assert!(out[4..8].iter().all(|&g| g == normalise(100.0)));
        assert_eq!(out[8], normalise(1.5));
    }

    #[test]
    fn identity_resize_of_the_full_frame_only_normalises() {
        let image = RgbImage::from_fn(5, 4, |x, y| {
            image::Rgb([(x * 50) as u8, (y * 60) as u8, 255])
        });
        let integral = IntegralImage::new(&image);
        let mut out = vec![0.0; 3 * 4 * 5];
        integral.resize_area_normalised(integral.full_rect(), 4, 5, &mut out);
        for (x, y, p) in image.enumerate_pixels() {
            for c in 0..3 {
                assert_eq!(
                    out[c * 20 + y as usize * 5 + x as usize],
                    normalise(f32::from(p[c]))
                );
            }
        }
    }
}
