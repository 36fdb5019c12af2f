//! Face alignment: a 5-point similarity transform of the detector's landmarks onto a
//! canonical template, and the crop it defines, sampled bilinearly.
//!
//! # Conventions (the GPU shader mirrors these exactly)
//!
//! - **Coordinates.** A point `(x, y)` is in pixel units with pixel centres at *integer*
//!   coordinates: pixel `(col, row)` covers `[col - 0.5, col + 0.5)`. This is the
//!   convention of MTCNN's landmarks and of OpenCV's `warpAffine`, so a template written
//!   for `cv2.warpAffine` (e.g. [`ARCFACE_112`]) means the same here.
//! - **Transform.** [`Similarity`] maps `(x, y)` to `(a x - b y + tx, b x + a y + ty)`:
//!   rotation + uniform scale + translation, no reflection, no shear.
//! - **Sampling.** Output pixel `(u, v)` (integers) takes the frame value at
//!   `(x, y) = inverse(u, v)` by bilinear interpolation of the 4 pixels around it:
//!   `x0 = floor(x)`, `fx = x - x0` (likewise `y`), value
//!   `(1 - fy) ((1 - fx) p(x0, y0) + fx p(x0 + 1, y0)) + fy ((1 - fx) p(x0, y0 + 1) + fx p(x0 + 1, y0 + 1))`
//!   in `f32`, where a pixel outside the frame counts as 0 (black), then rounded to the
//!   nearest integer (`floor(v + 0.5)`) and clamped to `0..=255`.

use crate::frame::RgbImage;
use crate::geometry::Landmarks;

/// A 2-D similarity `p -> s R p + t`, stored as `a = s cos θ`, `b = s sin θ`, `t`:
/// `(x, y) -> (a x - b y + tx, b x + a y + ty)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Similarity {
    pub a: f32,
    pub b: f32,
    pub tx: f32,
    pub ty: f32,
}

impl Similarity {
    pub const IDENTITY: Similarity = Similarity {
        a: 1.0,
        b: 0.0,
        tx: 0.0,
        ty: 0.0,
    };

    pub fn apply(&self, [x, y]: [f32; 2]) -> [f32; 2] {
        [
            self.a * x - self.b * y + self.tx,
            self.b * x + self.a * y + self.ty,
        ]
    }

    /// Scale factor `s`.
    pub fn scale(&self) -> f32 {
        self.a.hypot(self.b)
    }

    /// The inverse map; `None` when the scale is 0 (all source points coincide).
    pub fn inverse(&self) -> Option<Similarity> {
        let d = self.a * self.a + self.b * self.b;
        if !(d > 0.0 && d.is_finite()) {
            return None;
        }
        // (s R)^-1 = R^T / s = [a b; -b a] / d
        let (a, b) = (self.a / d, -self.b / d);
        Some(Similarity {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        })
    }
}

/// The least-squares similarity taking `src` onto `dst`: minimises
/// `Σ |T(src_i) - dst_i|²` over rotations, uniform scales and translations (Umeyama 1991
/// restricted to proper rotations; in 2-D this has the closed form below). Computed in
/// `f64`. Degenerate `src` (all points equal) gives a pure translation.
pub fn similarity_transform(src: &Landmarks, dst: &Landmarks) -> Similarity {
    let n = src.len() as f64;
    let mean = |p: &Landmarks| {
        let (sx, sy) = p.iter().fold((0.0, 0.0), |(sx, sy), q| {
            (sx + f64::from(q[0]), sy + f64::from(q[1]))
        });
        (sx / n, sy / n)
    };
    let (msx, msy) = mean(src);
    let (mdx, mdy) = mean(dst);
    // With centred points s, d: a = Σ s·d / Σ|s|², b = Σ s×d / Σ|s|².
    let (mut dot, mut cross, mut norm) = (0.0, 0.0, 0.0);
    for (s, d) in src.iter().zip(dst) {
        let (sx, sy) = (f64::from(s[0]) - msx, f64::from(s[1]) - msy);
        let (dx, dy) = (f64::from(d[0]) - mdx, f64::from(d[1]) - mdy);
        dot += sx * dx + sy * dy;
        cross += sx * dy - sy * dx;
        norm += sx * sx + sy * sy;
    }
    let (a, b) = if norm > 0.0 {
        (dot / norm, cross / norm)
    } else {
        (1.0, 0.0)
    };
    Similarity {
        a: a as f32,
        b: b as f32,
        tx: (mdx - (a * msx - b * msy)) as f32,
        ty: (mdy - (b * msx + a * msy)) as f32,
    }
}

/// The 5-point template of ArcFace / InsightFace for a 112x112 crop (eyes, nose, mouth
/// corners in MTCNN order), in the integer-centre convention above.
pub const ARCFACE_112: Landmarks = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// `template`, defined for a `from x from` crop, rescaled for a `to x to` crop (the
/// pixel squares scale, so centres map by `(p + 0.5) * to / from - 0.5`).
pub fn scale_template(template: &Landmarks, from: u32, to: u32) -> Landmarks {
    let k = to as f32 / from as f32;
    template.map(|[x, y]| [(x + 0.5) * k - 0.5, (y + 0.5) * k - 0.5])
}

/// The `size x size` crop that puts `landmarks` (frame pixels) on `template` (crop pixels),
/// sampled bilinearly; crop pixels that fall outside the frame are black (0).
pub fn align_face(
    image: &RgbImage,
    landmarks: &Landmarks,
    template: &Landmarks,
    size: u32,
) -> RgbImage {
    let to_crop = similarity_transform(landmarks, template);
    match to_crop.inverse() {
        Some(to_frame) => warp_similarity(image, &to_frame, size),
        // All landmarks on one point: no face geometry to align to.
        None => RgbImage::new(size, size),
    }
}

/// The `size x size` image whose pixel `(u, v)` is `image` sampled at `to_frame(u, v)`,
/// by the sampling rule of the module doc.
pub fn warp_similarity(image: &RgbImage, to_frame: &Similarity, size: u32) -> RgbImage {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let pixel = |x: i64, y: i64| -> [f32; 3] {
        if x < 0 || y < 0 || x >= w || y >= h {
            [0.0; 3]
        } else {
            image.get_pixel(x as u32, y as u32).0.map(f32::from)
        }
    };
    RgbImage::from_fn(size, size, |u, v| {
        let [x, y] = to_frame.apply([u as f32, v as f32]);
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (xi, yi) = (x0 as i64, y0 as i64);
        let (p00, p10, p01, p11) = (
            pixel(xi, yi),
            pixel(xi + 1, yi),
            pixel(xi, yi + 1),
            pixel(xi + 1, yi + 1),
        );
        image::Rgb(std::array::from_fn(|c| {
            let top = (1.0 - fx) * p00[c] + fx * p10[c];
            let bottom = (1.0 - fx) * p01[c] + fx * p11[c];
            let v = (1.0 - fy) * top + fy * bottom;
            (v + 0.5).floor().clamp(0.0, 255.0) as u8
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [f32; 2], b: [f32; 2], tol: f32) -> bool {
        (a[0] - b[0]).abs() <= tol && (a[1] - b[1]).abs() <= tol
    }

    #[test]
    fn similarity_transform_recovers_a_known_rotation_scale_and_shift() {
        let (s, theta) = (1.7f32, 0.4f32);
        let known = Similarity {
            a: s * theta.cos(),
            b: s * theta.sin(),
            tx: -12.5,
            ty: 40.25,
        };
        let src: Landmarks = [
            [30.0, 40.0],
            [70.0, 42.0],
            [50.0, 60.0],
            [35.0, 80.0],
            [66.0, 79.0],
        ];
        let dst = src.map(|p| known.apply(p));
        let got = similarity_transform(&src, &dst);
        for (g, k) in [
            (got.a, known.a),
            (got.b, known.b),
            (got.tx, known.tx),
            (got.ty, known.ty),
        ] {
            assert!((g - k).abs() < 1e-4, "{got:?} vs {known:?}");
        }
        assert!((got.scale() - s).abs() < 1e-5);
    }

    #[test]
    fn similarity_transform_is_the_least_squares_fit_of_noisy_points() {
        // dst = src shifted by (5, -3) plus zero-mean noise that is symmetric, so the best
        // fit is still the pure shift: the residual cannot be lowered by rotating or scaling.
        let src: Landmarks = [
            [0.0, 0.0],
            [10.0, 0.0],
            [0.0, 10.0],
            [10.0, 10.0],
            [5.0, 5.0],
        ];
        let noise = [[0.5, 0.0], [-0.5, 0.0], [-0.5, 0.0], [0.5, 0.0], [0.0, 0.0]];
        let dst: Landmarks =
            std::array::from_fn(|i| [src[i][0] + 5.0 + noise[i][0], src[i][1] - 3.0 + noise[i][1]]);
        let t = similarity_transform(&src, &dst);
        // Σ s·d picks up 0.5*(-5) + (-0.5)*5 + (-0.5)*(-5) + 0.5*5 = 0 on x: a stays 1.
        assert!((t.a - 1.0).abs() < 1e-6 && t.b.abs() < 0.02, "{t:?}");
    }

    #[test]
    fn similarity_transform_never_reflects() {
        // dst is src mirrored left-right: the best proper similarity cannot flip it, so
        // it must not map src onto dst exactly.
        let src: Landmarks = [
            [30.0, 40.0],
            [70.0, 40.0],
            [50.0, 60.0],
            [35.0, 80.0],
            [65.0, 80.0],
        ];
        let dst = src.map(|[x, y]| [100.0 - x, y + 7.0]);
        let t = similarity_transform(&src, &dst);
        let worst = src.iter().zip(&dst).map(|(s, d)| {
            let p = t.apply(*s);
            (p[0] - d[0]).hypot(p[1] - d[1])
        });
        assert!(worst.fold(0.0f32, f32::max) > 1.0);
    }

    #[test]
    fn inverse_undoes_the_transform() {
        let t = Similarity {
            a: 0.8,
            b: -0.3,
            tx: 4.0,
            ty: -9.0,
        };
        let inv = t.inverse().unwrap();
        for p in [[0.0, 0.0], [13.0, -7.5], [100.0, 250.0]] {
            assert!(close(inv.apply(t.apply(p)), p, 1e-3));
        }
        assert_eq!(
            Similarity {
                a: 0.0,
                b: 0.0,
                tx: 1.0,
                ty: 1.0
            }
            .inverse(),
            None
        );
    }

    #[test]
    fn identity_warp_copies_pixels_and_outside_is_black() {
        let image = RgbImage::from_fn(4, 3, |x, y| {
            image::Rgb([(x * 60) as u8, (y * 100) as u8, 7])
        });
        let copy = warp_similarity(&image, &Similarity::IDENTITY, 5);
        for v in 0..5 {
            for u in 0..5 {
                let want = if u < 4 && v < 3 {
                    *image.get_pixel(u, v)
                } else {
                    image::Rgb([0, 0, 0])
                };
                assert_eq!(*copy.get_pixel(u, v), want, "({u}, {v})");
            }
        }
    }

    #[test]
    fn half_pixel_shift_averages_neighbours_and_fades_at_the_border() {
        let image = RgbImage::from_fn(3, 1, |x, _| image::Rgb([[10, 20, 40][x as usize], 0, 0]));
        let shift = Similarity {
            tx: 0.5,
            ..Similarity::IDENTITY
        };
        let out = warp_similarity(&image, &shift, 3);
        // (0.5, 0): (10 + 20) / 2 = 15; (1.5, 0): 30; (2.5, 0): (40 + 0) / 2 = 20.
        let reds: Vec<u8> = (0..3).map(|u| out.get_pixel(u, 0)[0]).collect();
        assert_eq!(reds, vec![15, 30, 20]);
    }

    #[test]
    fn align_face_puts_landmarks_on_the_template() {
        // A frame with 5 bright dots at the landmarks; after alignment each template
        // position must be the brightest pixel in its neighbourhood.
        let landmarks: Landmarks = [
            [120.0, 90.0],
            [170.0, 100.0],
            [142.0, 130.0],
            [118.0, 155.0],
            [160.0, 163.0],
        ];
        let mut frame = RgbImage::new(300, 250);
        for [x, y] in landmarks {
            frame.put_pixel(x as u32, y as u32, image::Rgb([255, 255, 255]));
        }
        let template = scale_template(&ARCFACE_112, 112, 224);
        let crop = align_face(&frame, &landmarks, &template, 224);
        let t = similarity_transform(&landmarks, &template);
        for (lm, tp) in landmarks.iter().zip(&template) {
            // The fit is least squares, so a template point is near (not at) its landmark's image.
            let p = t.apply(*lm);
            assert!(close(p, *tp, 12.0), "{p:?} vs {tp:?}");
            let (u, v) = (p[0].round() as u32, p[1].round() as u32);
            let peak = (u - 2..=u + 2)
                .flat_map(|x| (v - 2..=v + 2).map(move |y| (x, y)))
                .max_by_key(|&(x, y)| crop.get_pixel(x, y)[0])
                .unwrap();
            assert!(crop.get_pixel(peak.0, peak.1)[0] > 30, "no dot near {p:?}");
        }
    }

    #[test]
    fn scale_template_maps_pixel_squares() {
        let t = scale_template(
            &[
                [0.0, 0.0],
                [111.0, 111.0],
                [55.5, 55.5],
                [0.0, 0.0],
                [0.0, 0.0],
            ],
            112,
            224,
        );
        assert_eq!(t[0], [0.5, 0.5]);
        assert_eq!(t[1], [222.5, 222.5]);
        assert_eq!(t[2], [111.5, 111.5]);
    }
}
