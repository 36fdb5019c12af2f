//! Convolution without im2col for x86-64 CPUs with AVX2 and FMA: the fast path of
//! [`super::host`]'s layers, dense layers included (a 1x1 window on a row of vectors).
//!
//! The im2col path copies every window into a row, `gemm` packs those rows again for its
//! kernel, and bias and PReLU take a third pass over the product. Here the windows are
//! read in place, in the channels-last input, and bias and PReLU are applied to the sums
//! before they are stored.
//!
//! A tile is 6 output pixels × 16 output channels: twelve 8-lane sums in registers, the
//! shape of `gemm`'s own f32 kernel. For each tap of the window, the 6 input values are
//! broadcast and multiplied with 16 weights of the layer's weight matrix. Output pixels
//! are numbered through rows and images, so that a tile can span two rows or two crops:
//! only the last tile of a call is partial.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Output pixels per tile.
const PIXELS: usize = 6;
/// Output channels per tile: two 8-lane registers.
const CHANNELS: usize = 16;

/// A layer's weights `[taps, outputs]`, bias and PReLU slopes, with the outputs padded
/// with zeros to whole tiles of [`CHANNELS`].
#[derive(Debug)]
pub(super) struct TiledWeights {
    /// `[taps, cols]` row-major.
    weight: Vec<f32>,
    bias: Vec<f32>,
    alpha: Option<Vec<f32>>,
    taps: usize,
    outputs: usize,
    cols: usize,
}

impl TiledWeights {
    /// The weights tiled for this CPU, or `None` where it lacks AVX2 or FMA.
    pub(super) fn for_this_cpu(
        weight: &[f32],
        bias: &[f32],
        alpha: Option<&[f32]>,
    ) -> Option<Self> {
        cpu_has_avx2_fma().then(|| Self::new(weight, bias, alpha))
    }

    fn new(weight: &[f32], bias: &[f32], alpha: Option<&[f32]>) -> Self {
        let outputs = bias.len();
        let taps = weight.len() / outputs;
        assert_eq!(
            taps * outputs,
            weight.len(),
            "weight must be [taps, outputs]"
        );
        let cols = outputs.div_ceil(CHANNELS) * CHANNELS;
        let pad = |v: &[f32]| {
            let mut padded = v.to_vec();
            padded.resize(cols, 0.0);
            padded
        };
        Self {
            weight: weight.chunks_exact(outputs).flat_map(pad).collect(),
            bias: pad(bias),
            alpha: alpha.map(pad),
            taps,
            outputs,
            cols,
        }
    }

    /// The layer on `input: [n, h, w, c]` (channels last) with a `side x side` window,
    /// stride 1, unpadded: `[n, h - side + 1, w - side + 1, outputs]`.
    pub(super) fn conv(
        &self,
        input: &[f32],
        (n, h, w, c): (usize, usize, usize, usize),
        side: usize,
    ) -> Vec<f32> {
        assert_eq!(input.len(), n * h * w * c, "input must be [n, h, w, c]");
        assert_eq!(side * side * c, self.taps, "window of {} taps", self.taps);
        assert!(h >= side && w >= side, "input smaller than the window");
        assert!(
            cpu_has_avx2_fma(),
            "TiledWeights exist on AVX2 + FMA CPUs only"
        );
        let shape = ConvShape {
            h,
            w,
            c,
            side,
            oh: h + 1 - side,
            ow: w + 1 - side,
        };
        let pixels = n * shape.oh * shape.ow;
        // Room for the last pixel's spill (see `store`).
        let mut out = Vec::with_capacity(pixels * self.outputs + CHANNELS);
        // SAFETY: the CPU has AVX2 and FMA (asserted above); `conv_fma` reads inside
        // `input`, writes inside `out`'s capacity, and leaves every one of the first
        // `pixels * outputs` values written (see its comment) when the length is set.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            self.conv_fma(input, &shape, pixels, out.as_mut_ptr());
            out.set_len(pixels * self.outputs);
        };
        out
    }

    /// # Safety
    /// The CPU has AVX2 and FMA; `input` is `[n, h, w, c]`, `out` has room for `[pixels
    /// = n oh ow, outputs]` and `self.taps == side² c`.
    /// - Reads: pixel `q`'s window starts at input offset `((b h + y) w + x) c` and its
    ///   tap `(dy, j)` reads `+ dy w c + j` with `j < side c`: at most `((b h + y + side -
    ///   1) w + x + side - 1) c + c - 1`, inside image `b` since `y + side - 1 < h` and `x
    ///   + side - 1 < w`. Weight rows are `cols` long and `col + 16 <= cols`.
    /// - Writes: tile `(first, col)` writes values `(first + p) · outputs + col + l` for
    ///   `p < count` (`first + count <= pixels`) and `l < 16` with `l < outputs - col`
    ///   rounded up to 8: every value of `[pixels, outputs]`, and at most 15 values past
    ///   it (`out` has room for 16 more). A value beyond a pixel's last output lies in the
    ///   next pixel's first column tile. That tile is stored after it: later in the same
    ///   row of tiles when the layer has one column tile (pixels go in order), else for
    ///   the same pixel `first + p + 1` later (column tiles go last first) or in the next
    ///   row of tiles. So each value ends with the layer's output for it.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn conv_fma(&self, input: &[f32], s: &ConvShape, pixels: usize, out: *mut f32) {
        let plane = s.oh * s.ow;
        let window = |q: usize| {
            let (b, r) = (q / plane, q % plane);
            ((b * s.h + r / s.ow) * s.w + r % s.ow) * s.c
        };
        for first in (0..pixels).step_by(PIXELS) {
            let count = (pixels - first).min(PIXELS);
            // A partial last tile repeats its last pixel (computed, not stored).
            let starts: [*const f32; PIXELS] = std::array::from_fn(|p| unsafe {
                input.as_ptr().add(window(first + p.min(count - 1)))
            });
            for col in (0..self.cols).step_by(CHANNELS).rev() {
                unsafe {
                    let sums = self.tile(starts, s, col);
                    self.store(sums, out.add(first * self.outputs), count, col);
                }
            }
        }
    }

    /// The sums of one tile: `[pixel][register]`, columns `col .. col + 16`.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn tile(
        &self,
        starts: [*const f32; PIXELS],
        s: &ConvShape,
        col: usize,
    ) -> [[__m256; 2]; PIXELS] {
        unsafe {
            let mut sums = [[_mm256_setzero_ps(); 2]; PIXELS];
            let mut weights = self.weight.as_ptr().add(col);
            let run = s.side * s.c;
            for dy in 0..s.side {
                let rows: [*const f32; PIXELS] =
                    std::array::from_fn(|p| starts[p].add(dy * s.w * s.c));
                for j in 0..run {
                    let w0 = _mm256_loadu_ps(weights);
                    let w1 = _mm256_loadu_ps(weights.add(8));
                    weights = weights.add(self.cols);
                    for p in 0..PIXELS {
                        let x = _mm256_broadcast_ss(&*rows[p].add(j));
                        sums[p][0] = _mm256_fmadd_ps(x, w0, sums[p][0]);
                        sums[p][1] = _mm256_fmadd_ps(x, w1, sums[p][1]);
                    }
                }
            }
            sums
        }
    }

    /// Bias, PReLU, then the tile's first `count` pixels into `out` (`[pixels, outputs]`,
    /// from the tile's first pixel): 16 values per pixel from column `col`. In the last
    /// column tile of a layer whose outputs are not a multiple of 16, the values beyond
    /// the last output spill into the next pixel's first outputs (or past the last
    /// pixel, into the room [`conv`](Self::conv) leaves): they are rewritten later, since
    /// column tiles are stored last first (see `conv_fma`). Whole 8-lane stores: AMD's
    /// masked stores are several times slower.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn store(&self, sums: [[__m256; 2]; PIXELS], out: *mut f32, count: usize, col: usize) {
        unsafe {
            let zero = _mm256_setzero_ps();
            let bias = [0, 8].map(|v| _mm256_loadu_ps(self.bias.as_ptr().add(col + v)));
            let alpha = self
                .alpha
                .as_ref()
                .map(|a| [0, 8].map(|v| _mm256_loadu_ps(a.as_ptr().add(col + v))));
            let valid = (self.outputs - col).min(CHANNELS);
            for (p, sums) in sums.iter().enumerate().take(count) {
                let row = out.add(p * self.outputs + col);
                // A register without a valid lane is not stored.
                for v in (0..2).take_while(|v| 8 * v < valid) {
                    let mut t = _mm256_add_ps(sums[v], bias[v]);
                    if let Some(alpha) = alpha {
                        let neg = _mm256_min_ps(t, zero);
                        t = _mm256_fmadd_ps(alpha[v], neg, _mm256_max_ps(t, zero));
                    }
                    _mm256_storeu_ps(row.add(8 * v), t);
                }
            }
        }
    }
}

struct ConvShape {
    h: usize,
    w: usize,
    c: usize,
    side: usize,
    oh: usize,
    ow: usize,
}

fn cpu_has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution as its definition reads, in f64.
    fn reference(
        input: &[f32],
        (n, h, w, c): (usize, usize, usize, usize),
        side: usize,
        weight: &[f32],
        bias: &[f32],
        alpha: Option<&[f32]>,
    ) -> Vec<f32> {
        let outputs = bias.len();
        let (oh, ow) = (h + 1 - side, w + 1 - side);
        let mut out = Vec::new();
        for b in 0..n {
            for y in 0..oh {
                for x in 0..ow {
                    for o in 0..outputs {
                        let mut t = bias[o] as f64;
                        for dy in 0..side {
                            for dx in 0..side {
                                for i in 0..c {
                                    let v = input[((b * h + y + dy) * w + x + dx) * c + i];
                                    let tap = (dy * side + dx) * c + i;
                                    t += v as f64 * weight[tap * outputs + o] as f64;
                                }
                            }
                        }
                        if let Some(a) = alpha {
                            t = t.max(0.0) + a[o] as f64 * t.min(0.0);
                        }
                        out.push(t as f32);
                    }
                }
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        // A small LCG: deterministic values in [-1, 1).
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn tiled_convolution_matches_the_definition_on_the_nets_shapes() {
        if !cpu_has_avx2_fma() {
            eprintln!("this CPU lacks AVX2/FMA: the tiled path is not used here");
            return;
        }
        // (n, h, w, c, side, outputs, prelu): P-Net's first layer (10 outputs: one partial
        // column tile), R-Net's first (28: a whole and a partial column tile) and second
        // (48), a dense layer (1 x 1 window on a row of vectors), O-Net's 2x2 fourth;
        // pixel counts that leave a partial last tile.
        let cases = [
            (2, 13, 11, 3, 3, 10, true),
            (2, 9, 8, 3, 3, 28, true),
            (3, 11, 11, 28, 3, 48, true),
            (1, 1, 7, 576, 1, 128, true),
            (2, 4, 4, 64, 2, 128, true),
            (5, 1, 1, 128, 1, 6, false),
        ];
        for (k, &(n, h, w, c, side, outputs, prelu)) in cases.iter().enumerate() {
            let seed = k as u32 * 4;
            let input = values(n * h * w * c, seed);
            let weight = values(side * side * c * outputs, seed + 1);
            let bias = values(outputs, seed + 2);
            let alpha = prelu.then(|| values(outputs, seed + 3));
            let tiled = TiledWeights::new(&weight, &bias, alpha.as_deref());
            let got = tiled.conv(&input, (n, h, w, c), side);
            let want = reference(&input, (n, h, w, c), side, &weight, &bias, alpha.as_deref());
            assert_eq!(got.len(), want.len(), "case {k}");
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                    "case {k}, value {i}: {g} against {e}"
                );
            }
        }
    }
}
