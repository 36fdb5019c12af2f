//! Head pose from the detector's five landmarks: a perspective-n-point solve
//! (OpenCV's `solvePnP`, SQPnP then Levenberg–Marquardt refinement) of a generic
//! 3-D face template against the landmarks, with a pinhole camera whose focal length
//! is the frame's larger side (a ~53° field of view; the true one is unknown) and
//! whose centre is the frame's.
//!
//! **Angles**, in degrees, of the head relative to the camera (0, 0, 0: facing it,
//! upright):
//! - `yaw`: positive when the person turns to *their* left, i.e. the nose moves to
//!   the image's right;
//! - `pitch`: positive when the person looks up (the nose moves up in the image);
//! - `roll`: positive when the head tilts towards the person's left shoulder, i.e. the
//!   line from their right eye (image left) to their left eye turns clockwise in the
//!   image (image y points down).
//!
//! The head rotation is `R = Ry(−yaw) · Rx(−pitch) · Rz(roll)` in camera coordinates
//! (x right, y down, z away from the camera), applied to the template. With five
//! points, the nose the only one out of the eye–mouth plane, yaw and pitch beyond about
//! ±60° are unreliable (MTCNN's landmarks themselves are, there). The error on exact
//! synthetic landmarks is bounded in the tests.

use opencv::core::{Mat, Point2f, Point3f, Vector};
use opencv::prelude::*;

use crate::geometry::Landmarks;

/// The five landmarks of a generic adult face in millimetres, in camera-like
/// coordinates of a frontal, upright head (x to the image's right, y down, z away from
/// the camera), the nose tip at the origin. The eye–mouth layout is the model's face
/// template (`FERPLUS_FACE_TEMPLATE`) scaled to a 63 mm interocular distance; the
/// depths are anthropometric means (eyes 28 mm and mouth corners 24 mm behind the
/// nose tip). Order as MTCNN's: right eye (image left), left eye, nose, right and left
/// mouth corners.
pub const FACE_TEMPLATE_3D: [[f32; 3]; 5] = [
    [-31.5, -36.0, 28.0],
    [31.5, -36.0, 28.0],
    [0.0, 0.0, 0.0],
    [-26.8, 30.0, 24.0],
    [26.8, 30.0, 24.0],
];

/// Head rotation in degrees; see the module doc for the signs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeadPose {
    pub yaw: f32,
    pub pitch: f32,
    pub roll: f32,
}

/// The pose of the face with `landmarks` in a `width × height` frame; `None` when the
/// landmarks are missing (`--crops`) or the solve fails.
pub fn estimate_head_pose(landmarks: &Landmarks, width: u32, height: u32) -> Option<HeadPose> {
    if landmarks.iter().flatten().any(|v| !v.is_finite()) {
        return None;
    }
    solve(landmarks, width, height).ok().flatten()
}

fn solve(landmarks: &Landmarks, width: u32, height: u32) -> opencv::Result<Option<HeadPose>> {
    let object: Vector<Point3f> = FACE_TEMPLATE_3D
        .iter()
        .map(|p| Point3f::new(p[0], p[1], p[2]))
        .collect();
    let image: Vector<Point2f> = landmarks.iter().map(|p| Point2f::new(p[0], p[1])).collect();
    let camera = camera_matrix(width, height);
    let camera = Mat::from_slice_2d(&camera)?;
    let no_distortion = Mat::default();
    let mut rvec = Mat::default();
    let mut tvec = Mat::default();
    let found = opencv::calib3d::solve_pnp(
        &object,
        &image,
        &camera,
        &no_distortion,
        &mut rvec,
        &mut tvec,
        false,
        opencv::calib3d::SOLVEPNP_SQPNP,
    )?;
    if !found {
        return Ok(None);
    }
    // SQPnP's global optimum, refined by Levenberg–Marquardt on the reprojection error.
    opencv::calib3d::solve_pnp(
        &object,
        &image,
        &camera,
        &no_distortion,
        &mut rvec,
        &mut tvec,
        true,
        opencv::calib3d::SOLVEPNP_ITERATIVE,
    )?;
    if *tvec.at::<f64>(2)? <= 0.0 {
        return Ok(None); // behind the camera: not a face
    }
    let mut rotation = Mat::default();
    opencv::calib3d::rodrigues(&rvec, &mut rotation, &mut opencv::core::no_array())?;
    let mut r = [[0.0f64; 3]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = *rotation.at_2d::<f64>(i as i32, j as i32)?;
        }
    }
    Ok(Some(angles_of(&r)))
}

/// The pinhole camera assumed for a `width × height` frame.
fn camera_matrix(width: u32, height: u32) -> [[f64; 3]; 3] {
    let f = f64::from(width.max(height));
    [
        [f, 0.0, f64::from(width) / 2.0],
        [0.0, f, f64::from(height) / 2.0],
        [0.0, 0.0, 1.0],
    ]
}

/// Yaw, pitch, roll of `R = Ry(−yaw) · Rx(−pitch) · Rz(roll)`.
fn angles_of(r: &[[f64; 3]; 3]) -> HeadPose {
    // Ry(a)·Rx(b)·Rz(c): r[1][2] = −sin b, r[0][2] = sin a cos b, r[2][2] = cos a cos b,
    // r[1][0] = cos b sin c, r[1][1] = cos b cos c.
    let b = (-r[1][2]).clamp(-1.0, 1.0).asin();
    let a = r[0][2].atan2(r[2][2]);
    let c = r[1][0].atan2(r[1][1]);
    HeadPose {
        yaw: (-a).to_degrees() as f32,
        pitch: (-b).to_degrees() as f32,
        roll: c.to_degrees() as f32,
    }
}

/// `R = Ry(−yaw) · Rx(−pitch) · Rz(roll)` (degrees), the rotation [`angles_of`] inverts.
pub fn rotation_of(pose: HeadPose) -> [[f64; 3]; 3] {
    let (a, b, c) = (
        f64::from(-pose.yaw).to_radians(),
        f64::from(-pose.pitch).to_radians(),
        f64::from(pose.roll).to_radians(),
    );
    let ry = [
        [a.cos(), 0.0, a.sin()],
        [0.0, 1.0, 0.0],
        [-a.sin(), 0.0, a.cos()],
    ];
    let rx = [
        [1.0, 0.0, 0.0],
        [0.0, b.cos(), -b.sin()],
        [0.0, b.sin(), b.cos()],
    ];
    let rz = [
        [c.cos(), -c.sin(), 0.0],
        [c.sin(), c.cos(), 0.0],
        [0.0, 0.0, 1.0],
    ];
    matmul(&matmul(&ry, &rx), &rz)
}

fn matmul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut m = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    m
}

/// Where the template's landmarks land in a `width × height` frame for a head at
/// `pose`, its nose tip `distance_mm` in front of the camera at image point `at`.
pub fn project_template(
    pose: HeadPose,
    distance_mm: f64,
    at: [f64; 2],
    width: u32,
    height: u32,
) -> Landmarks {
    let r = rotation_of(pose);
    let k = camera_matrix(width, height);
    // The nose tip's camera position puts it at image point `at`.
    let t = [
        (at[0] - k[0][2]) / k[0][0] * distance_mm,
        (at[1] - k[1][2]) / k[1][1] * distance_mm,
        distance_mm,
    ];
    FACE_TEMPLATE_3D.map(|p| {
        let p = p.map(f64::from);
        let c: Vec<f64> = (0..3)
            .map(|i| r[i][0] * p[0] + r[i][1] * p[1] + r[i][2] * p[2] + t[i])
            .collect();
        [
            (k[0][0] * c[0] / c[2] + k[0][2]) as f32,
            (k[1][1] * c[1] / c[2] + k[1][2]) as f32,
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRONTAL: HeadPose = HeadPose {
        yaw: 0.0,
        pitch: 0.0,
        roll: 0.0,
    };

    #[test]
    fn rotations_and_angles_invert_each_other() {
        for (yaw, pitch, roll) in [(30.0, -20.0, 10.0), (-45.0, 15.0, -25.0), (0.0, 0.0, 0.0)] {
            let pose = HeadPose { yaw, pitch, roll };
            let back = angles_of(&rotation_of(pose));
            assert!(
                (back.yaw - yaw).abs() < 1e-4
                    && (back.pitch - pitch).abs() < 1e-4
                    && (back.roll - roll).abs() < 1e-4,
                "{back:?}"
            );
        }
    }

    #[test]
    fn the_signs_follow_the_documented_conventions() {
        let (w, h) = (1280, 720);
        let centre = [640.0, 360.0];
        let frontal = project_template(FRONTAL, 600.0, centre, w, h);
        let eyes_mid = |lm: Landmarks| [(lm[0][0] + lm[1][0]) / 2.0, (lm[0][1] + lm[1][1]) / 2.0];
        // Yaw > 0: the nose moves right relative to the eyes.
        let turned = project_template(
            HeadPose {
                yaw: 30.0,
                ..FRONTAL
            },
            600.0,
            centre,
            w,
            h,
        );
        assert!(turned[2][0] - eyes_mid(turned)[0] > frontal[2][0] - eyes_mid(frontal)[0] + 5.0);
        // Pitch > 0 (looking up): the nose moves up relative to the eyes.
        let up = project_template(
            HeadPose {
                pitch: 20.0,
                ..FRONTAL
            },
            600.0,
            centre,
            w,
            h,
        );
        assert!(up[2][1] - eyes_mid(up)[1] < frontal[2][1] - eyes_mid(frontal)[1] - 5.0);
        // Roll > 0: the eye line turns clockwise (its right end goes down).
        let tilted = project_template(
            HeadPose {
                roll: 15.0,
                ..FRONTAL
            },
            600.0,
            centre,
            w,
            h,
        );
        assert!(tilted[1][1] > tilted[0][1] + 10.0);
    }

    #[test]
    fn exact_synthetic_landmarks_give_the_angles_back_within_a_degree() {
        let (w, h) = (1280, 720);
        let mut worst: f32 = 0.0;
        for yaw in [-50.0f32, -25.0, 0.0, 20.0, 45.0] {
            for pitch in [-30.0f32, 0.0, 25.0] {
                for roll in [-20.0f32, 0.0, 15.0] {
                    let pose = HeadPose { yaw, pitch, roll };
                    for (distance, at) in [(500.0, [640.0, 360.0]), (1500.0, [300.0, 200.0])] {
                        let lm = project_template(pose, distance, at, w, h);
                        let got = estimate_head_pose(&lm, w, h).expect("a pose");
                        let err = (got.yaw - yaw)
                            .abs()
                            .max((got.pitch - pitch).abs())
                            .max((got.roll - roll).abs());
                        worst = worst.max(err);
                    }
                }
            }
        }
        assert!(worst < 1.0, "worst angle error {worst}°");
    }

    #[test]
    fn missing_landmarks_have_no_pose() {
        assert!(estimate_head_pose(&[[f32::NAN; 2]; 5], 640, 360).is_none());
    }
}
