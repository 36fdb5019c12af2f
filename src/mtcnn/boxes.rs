//! The fixed box maths of MTCNN, as facenet-pytorch 2.6.0 does it (`detect_face.py`):
//! pyramid scales, candidate boxes from the P-Net map, NMS, box regression, squaring
//! and the clipped crop rectangle. Pure functions, no tensors.
//!
//! Arithmetic is `f32` wherever facenet's is (its tensors are float32), and `f64` where
//! it computes in Python floats (the pyramid scales), so that rounding at integer
//! boundaries (`floor`, `trunc`) falls the same way.

/// A face candidate between stages: corners in frame pixels (MTCNN convention, `x2 - x1`
/// or `x2 - x1 + 1` is the width depending on the step, see each function), the score
/// of the net that kept it, and that net's 4 box-regression offsets.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Candidate {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    pub score: f32,
    /// Offsets `[dx1, dy1, dx2, dy2]` in units of the box size.
    pub reg: [f32; 4],
}

/// The scales of the P-Net image pyramid for a `width x height` frame.
///
/// The first scale maps `min_face_size` to P-Net's 12-pixel window; each next one is
/// `factor` times the previous, while the shorter side scaled stays at least 12 px.
/// Computed in `f64` like facenet's Python loop (the running `minl` is multiplied, not
/// recomputed, so the number of levels matches exactly).
pub fn pyramid_scales(width: u32, height: u32, min_face_size: f64, factor: f64) -> Vec<f64> {
    let m = 12.0 / min_face_size;
    let mut minl = f64::from(width.min(height)) * m;
    let mut scale = m;
    let mut scales = Vec::new();
    // Guard against a factor >= 1 (configurable), which would never end.
    while minl >= 12.0 && scales.len() < 64 {
        scales.push(scale);
        scale *= factor;
        minl *= factor;
    }
    scales
}

/// Size `(height, width)` of the pyramid level at `scale`: `int(h * scale + 1)`, as facenet.
pub fn scaled_size(width: u32, height: u32, scale: f64) -> (usize, usize) {
    (
        (f64::from(height) * scale + 1.0) as usize,
        (f64::from(width) * scale + 1.0) as usize,
    )
}

/// P-Net's stride over its input and the side of the window it scores.
const PNET_STRIDE: f32 = 2.0;
const PNET_CELL: f32 = 12.0;

/// Candidates from one P-Net output map (facenet's `generateBoundingBox`).
///
/// - `face_prob`: `[h, w]` row-major, probability of "face" (softmax channel 1);
/// - `reg`: `[4, h, w]` channel-major box offsets;
///
/// Every cell with `face_prob >= threshold` gives the window it sees, mapped back to the
/// frame: `floor((2*x + 1) / scale)` .. `floor((2*x + 12) / scale)`. Cells are taken in
/// row-major order, like `mask.nonzero()`.
pub fn pnet_candidates(
    face_prob: &[f32],
    reg: &[f32],
    h: usize,
    w: usize,
    scale: f64,
    threshold: f32,
) -> Vec<Candidate> {
    assert_eq!(face_prob.len(), h * w, "face_prob must be [h, w]");
    assert_eq!(reg.len(), 4 * h * w, "reg must be [4, h, w]");
    // torch divides a float32 tensor by a Python float in float32.
    let scale = scale as f32;
    let plane = h * w;
    let mut out = Vec::new();
    for (i, &p) in face_prob.iter().enumerate() {
        if p >= threshold {
            let (y, x) = ((i / w) as f32, (i % w) as f32);
            out.push(Candidate {
                x1: ((PNET_STRIDE * x + 1.0) / scale).floor(),
                y1: ((PNET_STRIDE * y + 1.0) / scale).floor(),
                x2: ((PNET_STRIDE * x + PNET_CELL - 1.0 + 1.0) / scale).floor(),
                y2: ((PNET_STRIDE * y + PNET_CELL - 1.0 + 1.0) / scale).floor(),
                score: p,
                reg: [
                    reg[i],
                    reg[plane + i],
                    reg[2 * plane + i],
                    reg[3 * plane + i],
                ],
            });
        }
    }
    out
}

/// How NMS measures the overlap of two boxes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlap {
    /// `torchvision.ops.nms`: intersection over union, box width `x2 - x1`.
    Union,
    /// facenet's numpy NMS with method `'Min'`: intersection over the smaller box,
    /// box width `x2 - x1 + 1` (inclusive pixel corners).
    MinInclusive,
}

/// Greedy non-maximum suppression: indices of the kept candidates, best score first.
///
/// Visits candidates by decreasing score (stable for equal scores) and drops every later
/// one whose overlap with a kept one is `> threshold`. `Overlap::Union` is exactly
/// torchvision's CPU `nms` (float32), `Overlap::MinInclusive` facenet's `nms_numpy(.., 'Min')`.
pub fn nms(boxes: &[Candidate], threshold: f32, overlap: Overlap) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| boxes[b].score.total_cmp(&boxes[a].score));
    let one = match overlap {
        Overlap::Union => 0.0,
        Overlap::MinInclusive => 1.0,
    };
    let area = |b: &Candidate| (b.x2 - b.x1 + one) * (b.y2 - b.y1 + one);
    let mut suppressed = vec![false; boxes.len()];
    let mut keep = Vec::new();
    for (k, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        let a = &boxes[i];
        let area_a = area(a);
        for &j in &order[k + 1..] {
            if suppressed[j] {
                continue;
            }
            let b = &boxes[j];
            let iw = (a.x2.min(b.x2) - a.x1.max(b.x1) + one).max(0.0);
            let ih = (a.y2.min(b.y2) - a.y1.max(b.y1) + one).max(0.0);
            let inter = iw * ih;
            let o = match overlap {
                Overlap::Union => inter / (area_a + area(b) - inter),
                Overlap::MinInclusive => inter / area_a.min(area(b)),
            };
            if o > threshold {
                suppressed[j] = true;
            }
        }
    }
    keep
}

/// Applies P-Net's offsets (facenet's inline step after the first NMS): the box size is
/// `x2 - x1` here (no `+ 1`), unlike [`regress`].
pub fn regress_pnet(c: &Candidate) -> Candidate {
    let (w, h) = (c.x2 - c.x1, c.y2 - c.y1);
    Candidate {
        x1: c.x1 + c.reg[0] * w,
        y1: c.y1 + c.reg[1] * h,
        x2: c.x2 + c.reg[2] * w,
        y2: c.y2 + c.reg[3] * h,
        ..*c
    }
}

/// Applies R-Net's or O-Net's offsets `reg` (facenet's `bbreg`): box size `x2 - x1 + 1`.
pub fn regress(c: &Candidate, reg: [f32; 4]) -> Candidate {
    let (w, h) = (c.x2 - c.x1 + 1.0, c.y2 - c.y1 + 1.0);
    Candidate {
        x1: c.x1 + reg[0] * w,
        y1: c.y1 + reg[1] * h,
        x2: c.x2 + reg[2] * w,
        y2: c.y2 + reg[3] * h,
        ..*c
    }
}

/// Makes the box square about its centre with side `max(w, h)` (facenet's `rerec`).
pub fn rerec(c: &Candidate) -> Candidate {
    let (w, h) = (c.x2 - c.x1, c.y2 - c.y1);
    let l = w.max(h);
    let x1 = c.x1 + w * 0.5 - l * 0.5;
    let y1 = c.y1 + h * 0.5 - l * 0.5;
    Candidate {
        x1,
        y1,
        x2: x1 + l,
        y2: y1 + l,
        ..*c
    }
}

/// A rectangle of frame pixels: rows `y0..y1`, columns `x0..x1` (end exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropRect {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl CropRect {
    pub fn width(&self) -> usize {
        self.x1 - self.x0
    }

    pub fn height(&self) -> usize {
        self.y1 - self.y0
    }
}

/// The pixels R-Net or O-Net sees for a box (facenet's `pad` and slice
/// `img[y-1:ey, x-1:ex]`): corners truncated toward zero, then *clipped* to the frame
/// (facenet does not zero-pad, so a box over the edge gives a non-square crop that is
/// then stretched to the net's input). `None` when nothing of the box is inside.
pub fn crop_rect(c: &Candidate, width: u32, height: u32) -> Option<CropRect> {
    // `as i64` truncates toward zero like torch's `trunc().int()` (and saturates on overflow).
    let x = (c.x1.trunc() as i64).max(1);
    let y = (c.y1.trunc() as i64).max(1);
    let ex = (c.x2.trunc() as i64).min(i64::from(width));
    let ey = (c.y2.trunc() as i64).min(i64::from(height));
    if ex > x - 1 && ey > y - 1 {
        Some(CropRect {
            x0: (x - 1) as usize,
            y0: (y - 1) as usize,
            x1: ex as usize,
            y1: ey as usize,
        })
    } else {
        None
    }
}

/// O-Net's landmark outputs `[x0..x4, y0..y4]` (fractions of the box) to frame pixels,
/// relative to the box *before* O-Net's regression: `(x2 - x1 + 1) * p + x1 - 1`.
pub fn landmarks_to_frame(c: &Candidate, points: &[f32; 10]) -> [[f32; 2]; 5] {
    let (w, h) = (c.x2 - c.x1 + 1.0, c.y2 - c.y1 + 1.0);
    std::array::from_fn(|k| [w * points[k] + c.x1 - 1.0, h * points[k + 5] + c.y1 - 1.0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(x1: f32, y1: f32, x2: f32, y2: f32, score: f32) -> Candidate {
        Candidate {
            x1,
            y1,
            x2,
            y2,
            score,
            reg: [0.0; 4],
        }
    }

    #[test]
    fn pyramid_of_a_640x360_frame_has_nine_levels_starting_at_0_6() {
        let scales = pyramid_scales(640, 360, 20.0, 0.709);
        assert_eq!(scales.len(), 9);
        assert!((scales[0] - 0.6).abs() < 1e-12);
        assert!((scales[8] - 0.6 * 0.709f64.powi(8)).abs() < 1e-12);
        // The golden P-Net input of the fixtures is level 3 of this pyramid: 77 x 137.
        assert_eq!(scaled_size(640, 360, scales[3]), (77, 137));
        assert_eq!(scaled_size(640, 360, scales[0]), (217, 385));
    }

    #[test]
    fn pyramid_is_empty_when_the_frame_is_smaller_than_the_minimum_face() {
        assert!(pyramid_scales(19, 100, 20.0, 0.709).is_empty());
        assert_eq!(pyramid_scales(20, 100, 20.0, 0.709).len(), 1);
    }

    #[test]
    fn pnet_candidates_map_cells_back_to_frame_windows() {
        // 2 x 3 map, one cell over threshold at (y=1, x=2), scale 0.5.
        let prob = [0.1, 0.2, 0.3, 0.4, 0.5, 0.9];
        let mut reg = [0.0f32; 24];
        for (c, v) in [0.1, 0.2, 0.3, 0.4].into_iter().enumerate() {
            reg[c * 6 + 5] = v;
        }
        let got = pnet_candidates(&prob, &reg, 2, 3, 0.5, 0.6);
        assert_eq!(got.len(), 1);
        let c = got[0];
        // x: (2*2+1)/0.5 = 10, (2*2+12)/0.5 = 32; y: (2*1+1)/0.5 = 6, (2+12)/0.5 = 28.
        assert_eq!((c.x1, c.y1, c.x2, c.y2), (10.0, 6.0, 32.0, 28.0));
        assert_eq!(c.score, 0.9);
        assert_eq!(c.reg, [0.1, 0.2, 0.3, 0.4]);
        // threshold is inclusive
        assert_eq!(pnet_candidates(&prob, &reg, 2, 3, 0.5, 0.5).len(), 2);
    }

    #[test]
    fn nms_union_keeps_the_best_of_overlapping_boxes_in_score_order() {
        let boxes = [
            cand(0.0, 0.0, 10.0, 10.0, 0.8),
            cand(1.0, 0.0, 11.0, 10.0, 0.9), // IoU with the first: 90/110 = 0.818
            cand(20.0, 20.0, 30.0, 30.0, 0.7),
        ];
        assert_eq!(nms(&boxes, 0.5, Overlap::Union), vec![1, 2]);
        // Suppression needs overlap strictly above the threshold.
        assert_eq!(nms(&boxes, 90.0 / 110.0, Overlap::Union), vec![1, 0, 2]);
    }

    #[test]
    fn nms_min_measures_overlap_over_the_smaller_inclusive_box() {
        // A small box inside a big one: IoU is small, but the 'Min' overlap is 1.
        let boxes = [
            cand(0.0, 0.0, 99.0, 99.0, 0.9),
            cand(10.0, 10.0, 19.0, 19.0, 0.95),
        ];
        assert_eq!(nms(&boxes, 0.7, Overlap::Union), vec![1, 0]);
        assert_eq!(nms(&boxes, 0.7, Overlap::MinInclusive), vec![1]);
        // Inclusive widths: boxes touching at x = 10 share one pixel column.
        let touching = [
            cand(0.0, 0.0, 10.0, 0.0, 0.9),
            cand(10.0, 0.0, 20.0, 0.0, 0.8),
        ];
        // overlap 1/11 = 0.091
        assert_eq!(nms(&touching, 0.1, Overlap::MinInclusive), vec![0, 1]);
        assert_eq!(nms(&touching, 0.09, Overlap::MinInclusive), vec![0]);
    }

    #[test]
    fn regressions_scale_offsets_by_exclusive_or_inclusive_size() {
        let c = Candidate {
            reg: [0.1, -0.1, 0.2, 0.0],
            ..cand(10.0, 20.0, 30.0, 60.0, 1.0)
        };
        let p = regress_pnet(&c);
        assert_eq!((p.x1, p.y1, p.x2, p.y2), (12.0, 16.0, 34.0, 60.0));
        let r = regress(&c, [0.5, 0.25, -0.5, 1.0]);
        // w = 21, h = 41
        assert_eq!((r.x1, r.y1, r.x2, r.y2), (20.5, 30.25, 19.5, 101.0));
    }

    #[test]
    fn rerec_squares_a_box_about_its_centre() {
        let r = rerec(&cand(10.0, 20.0, 30.0, 60.0, 1.0));
        assert_eq!((r.x1, r.y1, r.x2, r.y2), (0.0, 20.0, 40.0, 60.0));
        let r = rerec(&cand(0.0, 0.0, 10.0, 4.0, 1.0));
        assert_eq!((r.x1, r.y1, r.x2, r.y2), (0.0, -3.0, 10.0, 7.0));
    }

    #[test]
    fn crop_rect_truncates_and_clips_to_the_frame() {
        // x1 = 5.7 -> 5 -> column 4; x2 = 20.9 -> 20 (exclusive end); negatives clip to 0.
        let r = crop_rect(&cand(5.7, -3.2, 20.9, 15.5, 1.0), 100, 50).unwrap();
        assert_eq!(
            r,
            CropRect {
                x0: 4,
                y0: 0,
                x1: 20,
                y1: 15
            }
        );
        let r = crop_rect(&cand(90.0, 40.0, 130.0, 80.0, 1.0), 100, 50).unwrap();
        assert_eq!(
            r,
            CropRect {
                x0: 89,
                y0: 39,
                x1: 100,
                y1: 50
            }
        );
        assert_eq!(
            crop_rect(&cand(-30.0, 0.0, -10.0, 10.0, 1.0), 100, 50),
            None
        );
        assert_eq!(
            crop_rect(&cand(120.0, 0.0, 140.0, 10.0, 1.0), 100, 50),
            None
        );
    }

    #[test]
    fn landmarks_are_fractions_of_the_inclusive_box() {
        let c = cand(10.0, 20.0, 29.0, 59.0, 1.0); // w = 20, h = 40
        let p = [0.0, 0.5, 1.0, 0.25, 0.75, 0.0, 0.5, 1.0, 0.25, 0.75];
        let lm = landmarks_to_frame(&c, &p);
        assert_eq!(lm[0], [9.0, 19.0]);
        assert_eq!(lm[1], [19.0, 39.0]);
        assert_eq!(lm[2], [29.0, 59.0]);
    }
}
