//! How well a detection fits a track: the motion gate and affinity, and the
//! appearance similarity used for re-identification.

use super::assign::Candidate;
use crate::geometry::BBox;

/// The motion gate's settings (copied from [`super::TrackerConfig`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MotionGate {
    /// A pair whose IoU reaches this is admissible whatever its centre distance.
    pub min_iou: f32,
    /// Centre distance, in face sizes, admissible beyond the filter's own
    /// uncertainty.
    pub max_center_distance: f32,
    /// How many standard deviations of the predicted centre widen the gate.
    pub gate_sigmas: f32,
    /// Largest ratio between the predicted and detected face sizes.
    pub max_size_ratio: f32,
}

/// Affinity of a track's predicted box and a detected box, or `None` when the
/// pair is outside the gate. `centre_std_px` is the standard deviation of the
/// predicted centre (small for a track seen on the last frame, growing while it
/// is lost).
///
/// Admissible: the face sizes (`sqrt(area)`) differ by at most
/// `max_size_ratio`, and either IoU ≥ `min_iou` or the centres are closer than
/// the gate radius `R = max_center_distance·size + gate_sigmas·centre_std`
/// (`size`: mean of both face sizes). The centre test is what lets small or
/// fast faces match: a 20 px face that moves 12 px between frames has IoU 0.25
/// with its previous box, before the filter has learnt its velocity.
///
/// Affinity, in (0, 2]: `IoU + (1 − d/R)·(R₀/R)` with `d` the centre distance
/// and `R₀ = max_center_distance·size` the gate without uncertainty. The last
/// factor keeps an uncertain (long-lost) track from scoring higher than a
/// confident one for the same distance merely because its gate is wider.
pub fn motion_affinity(
    predicted: &BBox,
    centre_std_px: f32,
    detected: &BBox,
    gate: &MotionGate,
) -> Option<f32> {
    let size_p = predicted.area().sqrt().max(1.0);
    let size_d = detected.area().sqrt().max(1.0);
    let ratio = (size_p / size_d).max(size_d / size_p);
    // Sizes are at least 1 px, so the ratio is finite.
    if ratio > gate.max_size_ratio {
        return None;
    }
    let iou = predicted.iou(detected);
    let [px, py] = predicted.center();
    let [dx, dy] = detected.center();
    let distance = (px - dx).hypot(py - dy);
    let size = 0.5 * (size_p + size_d);
    let base_radius = gate.max_center_distance * size;
    let radius = base_radius + gate.gate_sigmas * centre_std_px.max(0.0);
    let closeness = if radius > 0.0 {
        (1.0 - distance / radius).max(0.0) * (base_radius / radius)
    } else {
        0.0
    };
    let admissible = iou >= gate.min_iou || (radius > 0.0 && distance < radius);
    let affinity = iou + closeness;
    (admissible && affinity > 0.0 && affinity.is_finite()).then_some(affinity)
}

/// All admissible (track, detection) pairs with their [`motion_affinity`].
/// `predicted`: each track's predicted box and centre standard deviation (px);
/// `detected`: the detected boxes.
///
/// Equal to testing every pair, but a face can only pair with boxes within a
/// bounded horizontal reach of it, so the detections are sorted by centre x
/// and each track looks only at those within its reach: the cost stays near
/// `O((tracks + detections)·log)` for a crowd instead of `tracks × detections`.
/// The reach bounds both ways in: an IoU > 0 needs the boxes to overlap
/// (`|dx| < half width + widest detected half width`), and the centre gate needs
/// `|dx| ≤ d < R`, where the size gate bounds the detected size and so `R`.
pub fn motion_candidates(
    predicted: &[(BBox, f32)],
    detected: &[BBox],
    gate: &MotionGate,
) -> Vec<Candidate> {
    let centre_x = |b: &BBox| b.center()[0];
    let mut by_x: Vec<(f32, usize)> = detected
        .iter()
        .enumerate()
        .map(|(i, b)| (centre_x(b), i))
        .collect();
    by_x.sort_by(|a, b| a.0.total_cmp(&b.0));
    let widest_half = detected
        .iter()
        .map(|b| b.width().max(0.0) / 2.0)
        .fold(0.0f32, f32::max);
    let mut candidates = Vec::new();
    for (row, (p, centre_std)) in predicted.iter().enumerate() {
        let size_p = p.area().sqrt().max(1.0);
        let centre_reach = gate.max_center_distance * size_p * (1.0 + gate.max_size_ratio) / 2.0
            + gate.gate_sigmas * centre_std.max(0.0);
        let overlap_reach = p.width().max(0.0) / 2.0 + widest_half;
        let reach = if gate.min_iou > 0.0 {
            centre_reach.max(overlap_reach) + 1.0
        } else {
            f32::INFINITY
        };
        let px = centre_x(p);
        let first = by_x.partition_point(|&(x, _)| x < px - reach);
        for &(x, col) in by_x[first..].iter().take_while(|&&(x, _)| x <= px + reach) {
            debug_assert!(x >= px - reach);
            if let Some(affinity) = motion_affinity(p, *centre_std, &detected[col], gate) {
                candidates.push(Candidate { row, col, affinity });
            }
        }
    }
    candidates
}

/// Cosine similarity of two feature vectors, `None` if their lengths differ or
/// either is zero or not finite.
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> Option<f32> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    let cos = dot / (na.sqrt() * nb.sqrt());
    cos.is_finite().then_some(cos as f32)
}

/// `v / |v|`, or `None` for a zero or non-finite vector.
pub fn unit(v: &[f32]) -> Option<Vec<f32>> {
    let norm = v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    (norm > 0.0 && norm.is_finite())
        .then(|| v.iter().map(|&x| (f64::from(x) / norm) as f32).collect())
}

/// A track's appearance after seeing feature `observed`: the unit vector of
/// `momentum·past + (1 − momentum)·unit(observed)` (the running mean of
/// JDE/FairMOT), or of `observed` alone when there is no usable past (none, or
/// of another length). Returns `past` unchanged when `observed` is unusable.
pub fn updated_appearance(
    past: Option<&[f32]>,
    observed: &[f32],
    momentum: f32,
) -> Option<Vec<f32>> {
    let Some(observed) = unit(observed) else {
        return past.map(<[f32]>::to_vec);
    };
    match past {
        Some(past) if past.len() == observed.len() => {
            let mixed: Vec<f32> = past
                .iter()
                .zip(&observed)
                .map(|(&p, &o)| momentum * p + (1.0 - momentum) * o)
                .collect();
            unit(&mixed).or(Some(observed))
        }
        _ => Some(observed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATE: MotionGate = MotionGate {
        min_iou: 0.3,
        max_center_distance: 1.0,
        gate_sigmas: 3.0,
        max_size_ratio: 1.5,
    };

    fn square(x: f32, y: f32, side: f32) -> BBox {
        BBox {
            x1: x,
            y1: y,
            x2: x + side,
            y2: y + side,
        }
    }

    #[test]
    fn identical_boxes_have_the_highest_affinity() {
        let b = square(10.0, 10.0, 40.0);
        assert_eq!(motion_affinity(&b, 0.0, &b, &GATE), Some(2.0));
    }

    #[test]
    fn small_fast_face_passes_the_centre_gate_despite_low_iou() {
        let p = square(100.0, 100.0, 20.0);
        let d = square(112.0, 100.0, 20.0);
        assert!(p.iou(&d) < 0.3);
        // R = 20, d = 12: affinity = IoU + (1 - 12/20)
        let a = motion_affinity(&p, 0.0, &d, &GATE).unwrap();
        assert!((a - (p.iou(&d) + 0.4)).abs() < 1e-6, "{a}");
        // Two face sizes away it is out.
        assert_eq!(
            motion_affinity(&p, 0.0, &square(140.0, 100.0, 20.0), &GATE),
            None
        );
    }

    #[test]
    fn uncertainty_widens_the_gate_without_raising_the_score() {
        let p = square(0.0, 0.0, 20.0);
        let d = square(30.0, 0.0, 20.0);
        assert_eq!(motion_affinity(&p, 0.0, &d, &GATE), None);
        let wide = motion_affinity(&p, 10.0, &d, &GATE).unwrap();
        // R = 20 + 30 = 50, closeness (1 - 30/50)·(20/50) = 0.16
        assert!((wide - 0.16).abs() < 1e-6, "{wide}");
        let near = square(5.0, 0.0, 20.0);
        let confident = motion_affinity(&p, 0.0, &near, &GATE).unwrap();
        let uncertain = motion_affinity(&p, 10.0, &near, &GATE).unwrap();
        assert!(confident > uncertain);
    }

    #[test]
    fn very_different_sizes_are_not_admissible() {
        let p = square(0.0, 0.0, 40.0);
        let d = square(10.0, 10.0, 20.0);
        assert_eq!(motion_affinity(&p, 0.0, &d, &GATE), None);
    }

    #[test]
    fn sweep_finds_exactly_the_pairs_a_full_scan_finds() {
        // Pseudo-random boxes of mixed sizes, some overlapping, some far apart.
        let mut seed = 12345u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as f32 / (1u64 << 31) as f32
        };
        for gate in [
            GATE,
            MotionGate {
                min_iou: 0.0,
                ..GATE
            },
            MotionGate {
                max_size_ratio: 4.0,
                ..GATE
            },
        ] {
            let mut random_box = || square(600.0 * next(), 300.0 * next(), 10.0 + 90.0 * next());
            let detected: Vec<BBox> = (0..120).map(|_| random_box()).collect();
            let tracks: Vec<(BBox, f32)> =
                (0..120).map(|k| (random_box(), (k % 11) as f32)).collect();
            let mut full = Vec::new();
            for (row, (p, std)) in tracks.iter().enumerate() {
                for (col, d) in detected.iter().enumerate() {
                    if let Some(affinity) = motion_affinity(p, *std, d, &gate) {
                        full.push(Candidate { row, col, affinity });
                    }
                }
            }
            let mut swept = motion_candidates(&tracks, &detected, &gate);
            swept.sort_by_key(|c| (c.row, c.col));
            assert!(full.len() > 50, "{}", full.len());
            assert_eq!(swept, full);
        }
    }

    #[test]
    fn cosine_similarity_of_known_vectors() {
        assert_eq!(cosine_similarity(&[1.0, 0.0], &[0.0, 2.0]), Some(0.0));
        assert!((cosine_similarity(&[1.0, 1.0], &[2.0, 0.0]).unwrap() - 0.70710677).abs() < 1e-6);
        assert_eq!(cosine_similarity(&[1.0], &[1.0, 0.0]), None);
        assert_eq!(cosine_similarity(&[0.0, 0.0], &[1.0, 0.0]), None);
    }

    #[test]
    fn appearance_is_a_normalised_running_mean() {
        let first = updated_appearance(None, &[3.0, 4.0], 0.9).unwrap();
        assert_eq!(first, vec![0.6, 0.8]);
        let next = updated_appearance(Some(&first), &[0.0, 10.0], 0.5).unwrap();
        // unit(0.5·[0.6,0.8] + 0.5·[0,1]) = unit([0.3, 0.9])
        let n = (0.09f32 + 0.81).sqrt();
        assert!((next[0] - 0.3 / n).abs() < 1e-6 && (next[1] - 0.9 / n).abs() < 1e-6);
        assert_eq!(
            updated_appearance(Some(&first), &[0.0, 0.0], 0.5),
            Some(first)
        );
    }
}
