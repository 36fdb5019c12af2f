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

/// Bits per channel in a table value: three channels share one `u64`.
const FIELD_BITS: u32 = 21;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;
/// The most pixels a window read in one piece may hold: its channel sums (at most 255 per
/// pixel) then fit a field. 8,224 pixels: a window of 90 x 90.
const MAX_PIECE_PIXELS: usize = (FIELD_MASK / 255) as usize;

/// One pixel as a table value: `r + g 2^21 + b 2^42`.
fn pack(pixel: &[u8]) -> u64 {
    u64::from(pixel[0])
        | u64::from(pixel[1]) << FIELD_BITS
        | u64::from(pixel[2]) << (2 * FIELD_BITS)
}

/// A window's channel sums from the four-corner difference of table values.
fn unpack(v: u64) -> [u32; 3] {
    [0, 1, 2].map(|c| ((v >> (c * FIELD_BITS)) & FIELD_MASK) as u32)
}

/// Summed-area table of an RGB image: `sum(y, x)` holds the sums of the three channels
/// over rows `0..y`, columns `0..x`, packed as `r + g 2^21 + b 2^42` in a wrapping `u64`
/// (`[(h + 1), (w + 1)]`). Packing is linear, so a window's four-corner difference is its
/// packed channel sums, which come apart exactly when each is below 2^21: for windows of
/// at most [`MAX_PIECE_PIXELS`]; larger windows are summed in pieces. One value per pixel
/// instead of three `u32`s: a third less memory to write and read (16.6 MB at 1080p) and
/// one load per corner.
pub struct IntegralImage {
    width: usize,
    height: usize,
    sums: Vec<u64>,
}

impl IntegralImage {
    pub fn new(image: &RgbImage) -> Self {
        let (width, height) = (image.width() as usize, image.height() as usize);
        let stride = width + 1;
        // Row by row, each a copy of the one above plus this row's running sums: the
        // table is written once, not zeroed first.
        let mut sums = Vec::with_capacity((height + 1) * stride);
        sums.resize(stride, 0u64);
        for (y, row) in image.as_raw().chunks_exact((width * 3).max(1)).enumerate() {
            sums.extend_from_within(y * stride..(y + 1) * stride);
            // Column 0 stays 0.
            let below = &mut sums[(y + 1) * stride + 1..];
            let mut run = 0u64;
            for (pixel, sum) in row.chunks_exact(3).zip(below) {
                run = run.wrapping_add(pack(pixel));
                *sum = sum.wrapping_add(run);
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

    /// The channel sums over rows `y0..y1`, columns `x0..x1`, in pieces of at most
    /// [`MAX_PIECE_PIXELS`].
    fn window_sums(&self, (y0, y1): (usize, usize), (x0, x1): (usize, usize)) -> [u32; 3] {
        let at = |y: usize, x: usize| self.sums[y * (self.width + 1) + x];
        let piece_w = (x1 - x0).min(MAX_PIECE_PIXELS);
        let piece_h = (MAX_PIECE_PIXELS / piece_w).max(1);
        let mut total = [0u32; 3];
        for ya in (y0..y1).step_by(piece_h) {
            let yb = (ya + piece_h).min(y1);
            for xa in (x0..x1).step_by(piece_w) {
                let xb = (xa + piece_w).min(x1);
                let packed = at(yb, xb)
                    .wrapping_sub(at(ya, xb))
                    .wrapping_sub(at(yb, xa))
                    .wrapping_add(at(ya, xa));
                for (t, v) in total.iter_mut().zip(unpack(packed)) {
                    *t = t.wrapping_add(v);
                }
            }
        }
        total
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
        let widest = cols.iter().map(|&(c0, c1)| c1 - c0).max().unwrap_or(0);
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
        let stride = self.width + 1;
        // Per output row: the table's bottom row minus its top row at the edges, whose
        // differences between a window's two edges are its sums.
        let mut band = vec![0u64; edges.len()];
        // One output row's window sums, channel-major, so that the divisions below run
        // over contiguous lanes.
        let mut sums = vec![0u32; 3 * out_w];
        for i in 0..out_h {
            let (r0, r1) = area_window(i, in_h, out_h);
            let kh = (r1 - r0) as f32;
            let mut put = |j: usize, window: [u32; 3]| {
                for (c, v) in window.into_iter().enumerate() {
                    sums[c * out_w + j] = v;
                }
            };
            if (r1 - r0) * widest <= MAX_PIECE_PIXELS {
                let table_row = |y: usize| &self.sums[y * stride + rect.x0..][..in_w + 1];
                let (top, bottom) = (table_row(rect.y0 + r0), table_row(rect.y0 + r1));
                for (d, &e) in band.iter_mut().zip(&edges) {
                    *d = bottom[e].wrapping_sub(top[e]);
                }
                for (j, &(e0, e1)) in windows.iter().enumerate() {
                    put(j, unpack(band[e1].wrapping_sub(band[e0])));
                }
            } else {
                // Windows too large for one piece: the coarsest pyramid levels of large
                // frames, crops of huge boxes.
                let rows = (rect.y0 + r0, rect.y0 + r1);
                for (j, &(c0, c1)) in cols.iter().enumerate() {
                    put(j, self.window_sums(rows, (rect.x0 + c0, rect.x0 + c1)));
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

    /// The resize as its definition reads: each window summed pixel by pixel.
    fn by_definition(image: &RgbImage, rect: CropRect, out_h: usize, out_w: usize) -> Vec<f32> {
        let mut out = vec![0.0; 3 * out_h * out_w];
        for c in 0..3 {
            for i in 0..out_h {
                let (r0, r1) = area_window(i, rect.height(), out_h);
                for j in 0..out_w {
                    let (c0, c1) = area_window(j, rect.width(), out_w);
                    let mut sum = 0u32;
                    for y in rect.y0 + r0..rect.y0 + r1 {
                        for x in rect.x0 + c0..rect.x0 + c1 {
                            sum += u32::from(image.get_pixel(x as u32, y as u32)[c]);
                        }
                    }
                    let v = sum as f32 / (r1 - r0) as f32 / (c1 - c0) as f32;
                    out[(c * out_h + i) * out_w + j] = normalise(v);
                }
            }
        }
        out
    }

    fn noise(width: u32, height: u32, seed: u32) -> RgbImage {
        let mut s = seed;
        RgbImage::from_fn(width, height, |_, _| {
            image::Rgb(std::array::from_fn(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                // Mostly bright: the packed channel sums run near their fields' limit.
                (s >> 24) as u8 | 0xc0
            }))
        })
    }

    #[test]
    fn windows_small_and_larger_than_one_packed_piece_sum_exactly() {
        let image = noise(310, 205, 3);
        let table = IntegralImage::new(&image);
        let whole = table.full_rect();
        // (rect, out_h, out_w): one-piece windows (shrinking, stretching), windows of
        // 155 x 102 pixels (in pieces of rows), a crop at the frame's corner.
        let crop = CropRect {
            x0: 290,
            y0: 180,
            x1: 310,
            y1: 205,
        };
        let cases = [
            (whole, 24, 24),
            (whole, 2, 2),
            (whole, 3, 1),
            (crop, 48, 48),
            (crop, 7, 5),
        ];
        for (rect, out_h, out_w) in cases {
            let mut got = vec![0.0; 3 * out_h * out_w];
            table.resize_area_normalised(rect, out_h, out_w, &mut got);
            assert_eq!(
                got,
                by_definition(&image, rect, out_h, out_w),
                "{rect:?} to {out_h}x{out_w}"
            );
        }
        // One row wider than a piece: pieces of columns too.
        let wide = noise(9000, 2, 5);
        let table = IntegralImage::new(&wide);
        let mut got = vec![0.0; 3];
        table.resize_area_normalised(table.full_rect(), 1, 1, &mut got);
        assert_eq!(got, by_definition(&wide, table.full_rect(), 1, 1));
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
