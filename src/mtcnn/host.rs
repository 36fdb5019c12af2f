//! MTCNN's three nets run on the host. This is the detector's fast path when burn runs on the
//! CPU: the same layers and weights as [`super::nets`], with the same outputs.
//!
//! burn's CPU backend spends most of MTCNN's time outside its matrix products. The nets
//! have few channels, so layout changes, the 3-channel first convolution, max-pools and
//! PReLU dominate: 194 ms per frame of the shared clip, where this module takes about
//! 30 ms (`BENCHMARKS.md`). Here the activations stay channels-last in host memory, so
//! that:
//! - on CPUs with AVX2 and FMA, each layer (convolution or dense) reads its windows in
//!   place and applies bias and PReLU to its sums before storing them
//!   ([`super::direct_conv`]);
//! - elsewhere, each layer is one matrix product on its im2col rows (`gemm`, the kernel
//!   burn's CPU backend calls too), then bias and PReLU in place. This path is also the
//!   reference the fast one is tested against;
//! - max-pools run over whole rows, then over contiguous channels.
//!
//! The work is cut into independent pieces run in parallel (rayon): groups of crops for
//! R-Net and O-Net, and bands of output rows for P-Net. Each piece is small enough to stay
//! in the cache. Bands give the same values as the whole frame: a P-Net output row reads
//! input rows `2 r .. 2 r + 12` alone.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, PRelu};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::direct_conv::TiledWeights;

/// Activations of a batch, `[n, h, w, c]` row-major (channels last).
#[derive(Debug)]
struct FeatureMap {
    data: Vec<f32>,
    n: usize,
    h: usize,
    w: usize,
    c: usize,
}

impl FeatureMap {
    /// Rows `rows` of images `images` of `planar: [n, c, h, w]` (channel-major, as the
    /// nets' inputs are stored), channels last.
    fn from_planar(
        planar: &[f32],
        (c, h, w): (usize, usize, usize),
        images: std::ops::Range<usize>,
        rows: std::ops::Range<usize>,
    ) -> Self {
        let (n, band) = (images.len(), rows.len());
        let mut data = Vec::with_capacity(n * band * w * c);
        for b in images {
            let image = &planar[b * c * h * w..(b + 1) * c * h * w];
            for y in rows.clone() {
                for x in 0..w {
                    data.extend((0..c).map(|ch| image[(ch * h + y) * w + x]));
                }
            }
        }
        Self {
            data,
            n,
            h: band,
            w,
            c,
        }
    }
}

/// `x W + b` on each row of `x`, then PReLU when the layer has one.
#[derive(Debug)]
struct Affine {
    /// `[inputs, outputs]` row-major.
    weight: Vec<f32>,
    bias: Vec<f32>,
    prelu: Option<Vec<f32>>,
    /// The same layer for [`super::direct_conv`], on CPUs with AVX2 and FMA.
    tiled: Option<TiledWeights>,
}

impl Affine {
    fn new(weight: Vec<f32>, bias: Vec<f32>, prelu: Option<Vec<f32>>) -> Self {
        Self {
            tiled: TiledWeights::for_this_cpu(&weight, &bias, prelu.as_deref()),
            weight,
            bias,
            prelu,
        }
    }

    fn outputs(&self) -> usize {
        self.bias.len()
    }

    fn inputs(&self) -> usize {
        self.weight.len() / self.outputs()
    }

    /// `x: [rows, inputs]` → `[rows, outputs]`.
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let k = self.inputs();
        assert_eq!(x.len() % k, 0, "rows of {k} inputs expected");
        match &self.tiled {
            // A row of `rows` pixels of `inputs` channels, under a 1x1 window.
            Some(tiled) => tiled.conv(x, (1, 1, x.len() / k, k), 1),
            None => self.forward_gemm(x),
        }
    }

    /// [`forward`](Self::forward) as one `gemm` product, then bias and PReLU.
    fn forward_gemm(&self, x: &[f32]) -> Vec<f32> {
        let (k, n) = (self.inputs(), self.outputs());
        let m = x.len() / k;
        let mut y = vec![0.0; m * n];
        // SAFETY: `y` is `[m, n]`, `x` is `[m, k]` and `weight` is `[k, n]`, all
        // row-major and contiguous (row stride = columns, column stride 1): every access
        // the strides describe lies inside the three slices, and `y` aliases neither input.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                y.as_mut_ptr(),
                1,
                n as isize,
                false,
                x.as_ptr(),
                1,
                k as isize,
                self.weight.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for row in y.chunks_exact_mut(n) {
            match &self.prelu {
                Some(alpha) => {
                    for ((v, &b), &a) in row.iter_mut().zip(&self.bias).zip(alpha) {
                        // Branch-free (the sign of a conv output is a coin toss), and
                        // without `f32::max`'s NaN care (none can occur here): this
                        // compiles to packed max/min.
                        let t = *v + b;
                        let (pos, neg) =
                            (if t > 0.0 { t } else { 0.0 }, if t < 0.0 { t } else { 0.0 });
                        *v = pos + a * neg;
                    }
                }
                None => {
                    for (v, &b) in row.iter_mut().zip(&self.bias) {
                        *v += b;
                    }
                }
            }
        }
        y
    }
}

/// A square convolution, unpadded, stride 1, then PReLU if it has one.
#[derive(Debug)]
struct Conv {
    side: usize,
    affine: Affine,
}

impl Conv {
    /// From burn's layers: the weight `[c_out, c_in, k, k]` becomes the matrix
    /// `[(dy, dx, c_in), c_out]` that multiplies im2col rows of a channels-last map.
    fn new(conv: &Conv2d, prelu: Option<&PRelu>) -> Self {
        let [c_out, c_in, side, side_x] = conv.weight.dims();
        assert_eq!(side, side_x, "MTCNN's kernels are square");
        let w = values(conv.weight.val());
        let mut weight = vec![0.0; w.len()];
        for o in 0..c_out {
            for i in 0..c_in {
                for dy in 0..side {
                    for dx in 0..side {
                        let row = (dy * side + dx) * c_in + i;
                        weight[row * c_out + o] = w[((o * c_in + i) * side + dy) * side + dx];
                    }
                }
            }
        }
        Self {
            side,
            affine: Affine::new(
                weight,
                bias_values(conv.bias.as_ref(), c_out),
                prelu.map(|p| values(p.alpha.val())),
            ),
        }
    }

    fn forward(&self, x: &FeatureMap) -> FeatureMap {
        let k = self.side;
        let (oh, ow) = (x.h + 1 - k, x.w + 1 - k);
        let data = match &self.affine.tiled {
            Some(tiled) => tiled.conv(&x.data, (x.n, x.h, x.w, x.c), k),
            None => self.forward_im2col(x),
        };
        FeatureMap {
            data,
            n: x.n,
            h: oh,
            w: ow,
            c: self.affine.outputs(),
        }
    }

    /// [`forward`](Self::forward)'s values through im2col rows and one `gemm` product.
    fn forward_im2col(&self, x: &FeatureMap) -> Vec<f32> {
        let k = self.side;
        let (oh, ow) = (x.h + 1 - k, x.w + 1 - k);
        let window_row = k * x.c;
        let mut cols = Vec::with_capacity(x.n * oh * ow * k * window_row);
        for b in 0..x.n {
            let image = &x.data[b * x.h * x.w * x.c..][..x.h * x.w * x.c];
            for y in 0..oh {
                for xo in 0..ow {
                    for dy in 0..k {
                        let start = ((y + dy) * x.w + xo) * x.c;
                        cols.extend_from_slice(&image[start..start + window_row]);
                    }
                }
            }
        }
        self.affine.forward_gemm(&cols)
    }
}

/// Max-pool with kernel `k` (2 or 3, MTCNN's), stride 2 and `ceil_mode` (a last,
/// partial window is kept).
///
/// Per output row, the maxima over the window's rows come first (long runs over whole
/// rows), then over each window's columns (runs of `c` channels).
fn max_pool(x: &FeatureMap, k: usize) -> FeatureMap {
    assert!((2..=3).contains(&k), "MTCNN pools 2x2 or 3x3 windows");
    /// `dst = max(first, last, middle)` lane by lane. A window of one row (column) passes
    /// it as first and last: no run is a plain copy, which would be a `memcpy` call.
    fn window_max(dst: &mut [f32], first: &[f32], last: &[f32], middle: Option<&[f32]>) {
        // Packed max, without `f32::max`'s NaN care (no NaN here).
        let max = |a: f32, b: f32| if b > a { b } else { a };
        match middle {
            None => {
                for ((d, &a), &b) in dst.iter_mut().zip(first).zip(last) {
                    *d = max(a, b);
                }
            }
            Some(middle) => {
                for (((d, &a), &b), &m) in dst.iter_mut().zip(first).zip(last).zip(middle) {
                    *d = max(max(a, b), m);
                }
            }
        }
    }
    let out = |len: usize| (len - k).div_ceil(2) + 1;
    let (oh, ow, c) = (out(x.h), out(x.w), x.c);
    let row = x.w * c;
    let mut data = vec![0.0; x.n * oh * ow * c];
    let mut rows_max = vec![0.0; row];
    for (image, pooled) in x
        .data
        .chunks_exact(x.h * row)
        .zip(data.chunks_exact_mut(oh * ow * c))
    {
        let line = |y: usize| &image[y * row..][..row];
        for (i, pooled) in pooled.chunks_exact_mut(ow * c).enumerate() {
            let (y0, y1) = (2 * i, (2 * i + k).min(x.h) - 1);
            window_max(
                &mut rows_max,
                line(y0),
                line(y1),
                (y1 > y0 + 1).then(|| line(y0 + 1)),
            );
            let pixel = |x: usize| &rows_max[x * c..][..c];
            for (j, dst) in pooled.chunks_exact_mut(c).enumerate() {
                let (x0, x1) = (2 * j, (2 * j + k).min(x.w) - 1);
                window_max(
                    dst,
                    pixel(x0),
                    pixel(x1),
                    (x1 > x0 + 1).then(|| pixel(x0 + 1)),
                );
            }
        }
    }
    FeatureMap {
        data,
        n: x.n,
        h: oh,
        w: ow,
        c,
    }
}

/// A dense layer reading a channels-last `[h, w, c]` map. burn's layer reads it
/// flattened in `(w, h, c)` order, the Caffe weights' order (see `nets::flatten_whc`).
/// `map = None` is a dense layer on a plain vector.
fn dense(linear: &Linear, prelu: Option<&PRelu>, map: Option<(usize, usize, usize)>) -> Affine {
    let [inputs, outputs] = linear.weight.dims();
    let w = values(linear.weight.val());
    let weight = match map {
        None => w,
        Some((h, wd, c)) => {
            assert_eq!(h * wd * c, inputs, "dense layer of {inputs} inputs");
            let mut weight = vec![0.0; w.len()];
            for y in 0..h {
                for x in 0..wd {
                    for ch in 0..c {
                        let ours = (y * wd + x) * c + ch;
                        let theirs = (x * h + y) * c + ch;
                        weight[ours * outputs..][..outputs]
                            .copy_from_slice(&w[theirs * outputs..][..outputs]);
                    }
                }
            }
            weight
        }
    };
    Affine::new(
        weight,
        bias_values(linear.bias.as_ref(), outputs),
        prelu.map(|p| values(p.alpha.val())),
    )
}

/// Several output layers on the same input side by side: one product for all heads.
fn heads(layers: &[Affine]) -> Affine {
    let inputs = layers[0].inputs();
    let outputs: usize = layers.iter().map(Affine::outputs).sum();
    let mut weight = Vec::with_capacity(inputs * outputs);
    for row in 0..inputs {
        for layer in layers {
            let n = layer.outputs();
            weight.extend_from_slice(&layer.weight[row * n..(row + 1) * n]);
        }
    }
    Affine::new(
        weight,
        layers.iter().flat_map(|l| l.bias.iter().copied()).collect(),
        None,
    )
}

fn bias_values(bias: Option<&Param<Tensor<1>>>, outputs: usize) -> Vec<f32> {
    bias.map_or_else(|| vec![0.0; outputs], |b| values(b.val()))
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("converted to f32")
}

/// Output rows of P-Net per parallel piece.
const PNET_BAND: usize = 8;
/// Crops per parallel piece.
const RNET_GROUP: usize = 32;
const ONET_GROUP: usize = 4;

/// P-Net on the host.
#[derive(Debug)]
pub struct HostPNet {
    conv1: Conv,
    conv2: Conv,
    conv3: Conv,
    /// conv4_1 (2 class logits) and conv4_2 (4 offsets), 1x1.
    head: Affine,
}

impl HostPNet {
    pub(super) fn new(
        [conv1, conv2, conv3]: [(&Conv2d, &PRelu); 3],
        [class, offsets]: [&Conv2d; 2],
    ) -> Self {
        let one_by_one = |c: &Conv2d| Conv::new(c, None).affine;
        Self {
            conv1: Conv::new(conv1.0, Some(conv1.1)),
            conv2: Conv::new(conv2.0, Some(conv2.1)),
            conv3: Conv::new(conv3.0, Some(conv3.1)),
            head: heads(&[one_by_one(class), one_by_one(offsets)]),
        }
    }

    /// `x: [n, 3, h, w]` normalised pixels → `(face_prob: [n, h', w'], reg: [n, 4, h', w'],
    /// h', w')`: [`PNet::forward`](super::nets::PNet::forward)'s `prob[:, 1]` and `reg`.
    pub fn forward(
        &self,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
    ) -> (Vec<f32>, Vec<f32>, usize, usize) {
        assert_eq!(x.len(), n * 3 * h * w, "x must be [n, 3, h, w]");
        assert!(h >= 12 && w >= 12, "P-Net needs 12x12 pixels");
        let oh = (h - 2 - 2).div_ceil(2) + 1 - 4;
        let ow = (w - 2 - 2).div_ceil(2) + 1 - 4;
        let bands: Vec<(usize, usize)> = (0..n)
            .flat_map(|b| (0..oh).step_by(PNET_BAND).map(move |r0| (b, r0)))
            .collect();
        let outputs: Vec<FeatureMap> = bands
            .par_iter()
            .map(|&(b, r0)| {
                let r1 = (r0 + PNET_BAND).min(oh);
                let rows = 2 * r0..(2 * (r1 - 1) + 12).min(h);
                self.band(&FeatureMap::from_planar(x, (3, h, w), b..b + 1, rows))
            })
            .collect();
        let plane = oh * ow;
        let mut face_prob = vec![0.0; n * plane];
        let mut reg = vec![0.0; n * 4 * plane];
        for (&(b, r0), out) in bands.iter().zip(&outputs) {
            for (cell, v) in out.data.chunks_exact(6).enumerate() {
                let at = r0 * ow + cell; // band rows are whole output rows
                face_prob[b * plane + at] = softmax2(v[0], v[1])[1];
                for (i, &offset) in v[2..].iter().enumerate() {
                    reg[(b * 4 + i) * plane + at] = offset;
                }
            }
        }
        (face_prob, reg, oh, ow)
    }

    /// One band of rows of one image → `[1, rows', w', 6]` (2 logits, 4 offsets).
    fn band(&self, x: &FeatureMap) -> FeatureMap {
        let x = max_pool(&self.conv1.forward(x), 2);
        let x = self.conv3.forward(&self.conv2.forward(&x));
        FeatureMap {
            data: self.head.forward(&x.data),
            c: self.head.outputs(),
            ..x
        }
    }
}

/// R-Net on the host.
#[derive(Debug)]
pub struct HostRNet {
    conv1: Conv,
    conv2: Conv,
    conv3: Conv,
    dense4: Affine,
    /// dense5_1 (2 class logits) and dense5_2 (4 offsets).
    head: Affine,
}

impl HostRNet {
    pub(super) fn new(
        [conv1, conv2, conv3]: [(&Conv2d, &PRelu); 3],
        dense4: (&Linear, &PRelu),
        [class, offsets]: [&Linear; 2],
    ) -> Self {
        Self {
            conv1: Conv::new(conv1.0, Some(conv1.1)),
            conv2: Conv::new(conv2.0, Some(conv2.1)),
            conv3: Conv::new(conv3.0, Some(conv3.1)),
            dense4: dense(dense4.0, Some(dense4.1), Some((3, 3, 64))),
            head: heads(&[dense(class, None, None), dense(offsets, None, None)]),
        }
    }

    /// `x: [n, 3, 24, 24]` normalised crops → `(reg: [n, 4], prob: [n, 2])`, as
    /// [`RNet::forward`](super::nets::RNet::forward).
    pub fn forward(&self, x: &[f32], n: usize) -> (Vec<f32>, Vec<f32>) {
        let out = by_groups(x, n, 24, RNET_GROUP, |x| {
            let x = max_pool(&self.conv1.forward(x), 3);
            let x = max_pool(&self.conv2.forward(&x), 3);
            let x = self.conv3.forward(&x);
            self.head.forward(&self.dense4.forward(&x.data))
        });
        let (mut reg, mut prob) = (Vec::with_capacity(4 * n), Vec::with_capacity(2 * n));
        for v in out.chunks_exact(6) {
            prob.extend(softmax2(v[0], v[1]));
            reg.extend_from_slice(&v[2..6]);
        }
        (reg, prob)
    }
}

/// O-Net on the host.
#[derive(Debug)]
pub struct HostONet {
    conv1: Conv,
    conv2: Conv,
    conv3: Conv,
    conv4: Conv,
    dense5: Affine,
    /// dense6_1 (2 class logits), dense6_2 (4 offsets) and dense6_3 (10 landmarks).
    head: Affine,
}

impl HostONet {
    pub(super) fn new(
        [conv1, conv2, conv3, conv4]: [(&Conv2d, &PRelu); 4],
        dense5: (&Linear, &PRelu),
        [class, offsets, landmarks]: [&Linear; 3],
    ) -> Self {
        Self {
            conv1: Conv::new(conv1.0, Some(conv1.1)),
            conv2: Conv::new(conv2.0, Some(conv2.1)),
            conv3: Conv::new(conv3.0, Some(conv3.1)),
            conv4: Conv::new(conv4.0, Some(conv4.1)),
            dense5: dense(dense5.0, Some(dense5.1), Some((3, 3, 128))),
            head: heads(&[
                dense(class, None, None),
                dense(offsets, None, None),
                dense(landmarks, None, None),
            ]),
        }
    }

    /// `x: [n, 3, 48, 48]` normalised crops → `(reg: [n, 4], landmarks: [n, 10],
    /// prob: [n, 2])`, as [`ONet::forward`](super::nets::ONet::forward).
    pub fn forward(&self, x: &[f32], n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let out = by_groups(x, n, 48, ONET_GROUP, |x| {
            let x = max_pool(&self.conv1.forward(x), 3);
            let x = max_pool(&self.conv2.forward(&x), 3);
            let x = max_pool(&self.conv3.forward(&x), 2);
            let x = self.conv4.forward(&x);
            self.head.forward(&self.dense5.forward(&x.data))
        });
        let mut reg = Vec::with_capacity(4 * n);
        let mut landmarks = Vec::with_capacity(10 * n);
        let mut prob = Vec::with_capacity(2 * n);
        for v in out.chunks_exact(16) {
            prob.extend(softmax2(v[0], v[1]));
            reg.extend_from_slice(&v[2..6]);
            landmarks.extend_from_slice(&v[6..16]);
        }
        (reg, landmarks, prob)
    }
}

/// `net` on groups of `group` crops of `x: [n, 3, side, side]` in parallel, its per-crop
/// output rows concatenated in order.
fn by_groups(
    x: &[f32],
    n: usize,
    side: usize,
    group: usize,
    net: impl Fn(&FeatureMap) -> Vec<f32> + Sync,
) -> Vec<f32> {
    assert_eq!(
        x.len(),
        n * 3 * side * side,
        "x must be [n, 3, {side}, {side}]"
    );
    let starts: Vec<usize> = (0..n).step_by(group).collect();
    let outputs: Vec<Vec<f32>> = starts
        .par_iter()
        .map(|&start| {
            let images = start..(start + group).min(n);
            net(&FeatureMap::from_planar(
                x,
                (3, side, side),
                images,
                0..side,
            ))
        })
        .collect();
    outputs.concat()
}

fn softmax2(a: f32, b: f32) -> [f32; 2] {
    let m = a.max(b);
    let (ea, eb) = ((a - m).exp(), (b - m).exp());
    [ea / (ea + eb), eb / (ea + eb)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(n: usize, h: usize, w: usize, c: usize, f: impl Fn(usize) -> f32) -> FeatureMap {
        FeatureMap {
            data: (0..n * h * w * c).map(f).collect(),
            n,
            h,
            w,
            c,
        }
    }

    #[test]
    fn max_pool_in_ceil_mode_keeps_the_partial_last_window() {
        // 1 image, 5x5, 1 channel, values 0..25 row-major: kernel 2 stride 2 → 3x3, the
        // last row and column of windows hold one input row/column.
        let x = map(1, 5, 5, 1, |i| i as f32);
        let y = max_pool(&x, 2);
        assert_eq!((y.h, y.w), (3, 3));
        assert_eq!(
            y.data,
            vec![6.0, 8.0, 9.0, 16.0, 18.0, 19.0, 21.0, 23.0, 24.0]
        );
        // kernel 3 stride 2 on 5x5 → 2x2 (windows 0..3 and 2..5).
        let y = max_pool(&x, 3);
        assert_eq!(y.data, vec![12.0, 14.0, 22.0, 24.0]);
    }

    #[test]
    fn affine_applies_bias_then_prelu_per_output() {
        let layer = Affine::new(
            vec![1.0, -1.0, 2.0, 0.5], // [2 inputs, 2 outputs]
            vec![0.0, 1.0],
            Some(vec![0.1, 0.5]),
        );
        // row [1, 1]: [1 + 2, -1 + 0.5 + 1] = [3, 0.5]; row [-1, 0]: [-1, 2] → [-0.1, 2]
        let x = [1.0, 1.0, -1.0, 0.0];
        let want = [3.0, 0.5, -0.1, 2.0];
        for y in [layer.forward(&x), layer.forward_gemm(&x)] {
            for (a, b) in y.iter().zip(want) {
                assert!((a - b).abs() < 1e-6, "{y:?}");
            }
        }
    }

    #[test]
    fn convolution_gives_the_same_values_through_im2col_and_in_place() {
        // R-Net's second layer's shape: 28 channels in, 48 out, 3x3, on 2 crops of 11x11.
        let (c_in, c_out, side) = (28, 48, 3);
        let wave = |i: usize, f: f32| (i as f32 * f).sin() * 0.5;
        let conv = Conv {
            side,
            affine: Affine::new(
                (0..side * side * c_in * c_out)
                    .map(|i| wave(i, 0.37))
                    .collect(),
                (0..c_out).map(|i| wave(i, 1.3)).collect(),
                Some((0..c_out).map(|i| wave(i, 0.7).abs()).collect()),
            ),
        };
        let x = map(2, 11, 11, c_in, |i| wave(i, 0.11));
        let through_im2col = conv.forward_im2col(&x);
        let y = conv.forward(&x);
        assert_eq!((y.n, y.h, y.w, y.c), (2, 9, 9, c_out));
        assert_eq!(y.data.len(), through_im2col.len());
        for (a, b) in y.data.iter().zip(&through_im2col) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} against {b}");
        }
    }

    #[test]
    fn planar_input_becomes_channels_last() {
        // [1, 2, 2, 3] planar: channel c, row y, column x holds 100c + 10y + x.
        let planar: Vec<f32> = (0..2)
            .flat_map(|c| {
                (0..2).flat_map(move |y| (0..3).map(move |x| (100 * c + 10 * y + x) as f32))
            })
            .collect();
        let m = FeatureMap::from_planar(&planar, (2, 2, 3), 0..1, 1..2);
        assert_eq!((m.n, m.h, m.w, m.c), (1, 1, 3, 2));
        assert_eq!(m.data, vec![10.0, 110.0, 11.0, 111.0, 12.0, 112.0]);
    }
}
