//! The drawing both the annotated video and the preview window show: per face its box,
//! its five landmarks, an arrow from the nose where the head faces (its pose),
//! `label confidence #track` above the box and the three most likely classes with bars
//! (in the class colours of [`crate::colours`]) below it. Drawn with OpenCV's imgproc on a BGR picture.

use opencv::core::{CV_8UC3, Mat, MatTraitConst, MatTraitManual, Point, Rect, Scalar, Size};
use opencv::imgproc;

use crate::colours::class_colour;
use crate::frame::RgbImage;
use crate::head_pose::rotation_of;
use crate::record::{FaceResult, FrameResult, FrameStatus, argmax};

/// Box colours (BGR), picked by track id (or face position without tracking), so one
/// person keeps one colour across frames.
const PALETTE: [(f64, f64, f64); 8] = [
    (80.0, 220.0, 80.0),
    (255.0, 160.0, 40.0),
    (60.0, 80.0, 255.0),
    (240.0, 80.0, 220.0),
    (40.0, 220.0, 240.0),
    (220.0, 220.0, 60.0),
    (160.0, 100.0, 255.0),
    (255.0, 255.0, 255.0),
];

const FONT: i32 = imgproc::FONT_HERSHEY_SIMPLEX;

/// An RGB image as an OpenCV BGR `Mat` (8UC3, continuous).
pub fn rgb_to_bgr_mat(image: &RgbImage) -> opencv::Result<Mat> {
    let (w, h) = image.dimensions();
    let mut mat = Mat::new_rows_cols_with_default(h as i32, w as i32, CV_8UC3, Scalar::all(0.0))?;
    let dst = mat.data_bytes_mut()?;
    for (d, s) in dst.chunks_exact_mut(3).zip(image.as_raw().chunks_exact(3)) {
        d[0] = s[2];
        d[1] = s[1];
        d[2] = s[0];
    }
    Ok(mat)
}

/// Draws the faces of `result` on `image` (BGR, the frame's size). Uses each face's
/// smoothed probabilities when it has them (steadier on video), else its own.
pub fn draw_results(
    image: &mut Mat,
    result: &FrameResult,
    class_names: &[String],
) -> opencv::Result<()> {
    let scale = (image.rows().max(image.cols()) as f64 / 1280.0).clamp(0.35, 1.2);
    let thickness = ((2.0 * scale).round() as i32).max(1);
    for face in &result.faces {
        draw_face(image, face, class_names, scale, thickness)?;
    }
    if result.status == FrameStatus::Skipped {
        let org = Point::new(8, (24.0 * scale).round() as i32 + 8);
        label(
            image,
            "skipped",
            org,
            scale,
            Scalar::new(0.0, 0.0, 255.0, 0.0),
            thickness,
        )?;
    }
    Ok(())
}

fn draw_face(
    image: &mut Mat,
    face: &FaceResult,
    class_names: &[String],
    scale: f64,
    thickness: i32,
) -> opencv::Result<()> {
    let (b, g, r) = PALETTE[face.track_id.unwrap_or(face.face as u64) as usize % PALETTE.len()];
    let color = Scalar::new(b, g, r, 0.0);
    let bbox = face.detection.bbox;
    let rect = Rect::new(
        bbox.x1.round() as i32,
        bbox.y1.round() as i32,
        bbox.width().round().max(1.0) as i32,
        bbox.height().round().max(1.0) as i32,
    );
    imgproc::rectangle(image, rect, color, thickness, imgproc::LINE_AA, 0)?;
    let radius = ((2.5 * scale).round() as i32).max(1);
    for [x, y] in face.detection.landmarks {
        let center = Point::new(x.round() as i32, y.round() as i32);
        imgproc::circle(
            image,
            center,
            radius,
            color,
            imgproc::FILLED,
            imgproc::LINE_AA,
            0,
        )?;
    }

    if let Some(pose) = face.pose {
        // Where the head faces: the template's forward axis (towards the camera when
        // frontal, so the arrow shrinks to a point), projected, as long as the box is wide.
        let r = rotation_of(pose);
        let length = f64::from(bbox.width()) * 0.8;
        let [nx, ny] = face.detection.landmarks[2];
        let tip = Point::new(
            (f64::from(nx) - r[0][2] * length).round() as i32,
            (f64::from(ny) - r[1][2] * length).round() as i32,
        );
        let nose = Point::new(nx.round() as i32, ny.round() as i32);
        imgproc::arrowed_line(image, nose, tip, color, thickness, imgproc::LINE_AA, 0, 0.2)?;
    }

    let probs = face.smoothed.as_deref().unwrap_or(&face.probs);
    if probs.is_empty() {
        return Ok(());
    }
    let name = |i: usize| class_names.get(i).map_or("?", |s| s.as_str());
    let (best, confidence) = argmax(probs);
    let mut title = format!("{} {:.2}", name(best), confidence);
    if let Some(id) = face.track_id {
        title.push_str(&format!(" #{id}"));
    }
    let above = Point::new(
        rect.x,
        (rect.y - (6.0 * scale) as i32).max((20.0 * scale) as i32),
    );
    label(image, &title, above, scale, color, thickness)?;

    // The three most likely classes, with bars, under the box.
    let mut order: Vec<usize> = (0..probs.len()).filter(|i| !probs[*i].is_nan()).collect();
    order.sort_by(|a, b| probs[*b].total_cmp(&probs[*a]));
    let line = (22.0 * scale).round().max(10.0) as i32;
    let bar_max = (80.0 * scale).round().max(20.0) as i32;
    for (k, &i) in order.iter().take(3).enumerate() {
        let y = rect.y + rect.height + line * (k as i32 + 1);
        let bar = Rect::new(
            rect.x,
            y - line / 2 - 2,
            ((probs[i] as f64) * bar_max as f64).round() as i32,
            line / 2,
        );
        if bar.width > 0 {
            // Bars in the class's colour (the report's charts use the same).
            let [cr, cg, cb] = class_colour(i);
            let class = Scalar::new(f64::from(cb), f64::from(cg), f64::from(cr), 0.0);
            imgproc::rectangle(image, bar, class, imgproc::FILLED, imgproc::LINE_8, 0)?;
        }
        let text = format!("{} {:.2}", name(i), probs[i]);
        label(
            image,
            &text,
            Point::new(rect.x + bar_max + 4, y),
            0.7 * scale,
            color,
            1,
        )?;
    }
    Ok(())
}

/// Text with a dark backing box so it reads on any background.
fn label(
    image: &mut Mat,
    text: &str,
    origin: Point,
    font_scale: f64,
    color: Scalar,
    thickness: i32,
) -> opencv::Result<()> {
    let mut baseline = 0;
    let size: Size = imgproc::get_text_size(text, FONT, font_scale, thickness, &mut baseline)?;
    let back = Rect::new(
        origin.x - 2,
        origin.y - size.height - 2,
        size.width + 4,
        size.height + baseline + 4,
    );
    imgproc::rectangle(
        image,
        back,
        Scalar::all(0.0),
        imgproc::FILLED,
        imgproc::LINE_8,
        0,
    )?;
    imgproc::put_text(
        image,
        text,
        origin,
        FONT,
        font_scale,
        color,
        thickness,
        imgproc::LINE_AA,
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::test_support::*;
    use opencv::core::MatTraitConstManual;

    #[test]
    fn rgb_becomes_bgr() {
        let img = RgbImage::from_fn(2, 1, |x, _| image::Rgb([10 + x as u8, 20, 30]));
        let mat = rgb_to_bgr_mat(&img).unwrap();
        assert_eq!(mat.data_bytes().unwrap(), &[30, 20, 10, 30, 20, 11]);
    }

    #[test]
    fn drawing_marks_the_box_and_leaves_the_rest() {
        let img = RgbImage::new(200, 120);
        let mut mat = rgb_to_bgr_mat(&img).unwrap();
        let r = result(
            0,
            FrameStatus::Analyzed,
            vec![face(0, 5.0, [0.1, 0.7, 0.2], None)],
        );
        draw_results(&mut mat, &r, &classes()).unwrap();
        let bytes = mat.data_bytes().unwrap();
        let px = |x: usize, y: usize| &bytes[(y * 200 + x) * 3..(y * 200 + x) * 3 + 3];
        // The box's left edge (x = 5) at mid-height is drawn, a far corner is not.
        assert_ne!(px(5, 35), &[0, 0, 0]);
        assert_eq!(px(195, 5), &[0, 0, 0]);
    }
}
