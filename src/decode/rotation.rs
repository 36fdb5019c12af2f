//! Display rotation: a video's "show me turned by N degrees" metadata, applied to pixels.
//!
//! Phones record sensor-oriented pictures and store how to turn them for display,
//! either as a display matrix (ISO BMFF `tkhd` matrix; FFmpeg's
//! `AV_PKT_DATA_DISPLAYMATRIX` side data) or, in older files, as a `rotate` tag.
//! We apply it like FFmpeg's command line does (`-autorotate`, its default): the
//! picture a player shows is the picture we analyse.

use crate::frame::RgbImage;

/// The clockwise rotation in degrees (0, 90, 180 or 270) that a display matrix asks
/// for, rounded to the nearest quarter turn; None for a degenerate matrix.
///
/// `matrix`: the 3×3 matrix as stored, row-major, 16.16 fixed point in the first two
/// columns. The formula is FFmpeg's `av_display_rotation_get` (which returns the
/// counter-clockwise angle); mirroring is ignored, as FFmpeg 5.1's autorotate does.
pub fn rotation_from_display_matrix(matrix: &[i32; 9]) -> Option<u32> {
    let fixed = |v: i32| v as f64 / 65536.0;
    let scale0 = fixed(matrix[0]).hypot(fixed(matrix[3]));
    let scale1 = fixed(matrix[1]).hypot(fixed(matrix[4]));
    if scale0 == 0.0 || scale1 == 0.0 {
        return None;
    }
    let counter_clockwise = -(fixed(matrix[1]) / scale1)
        .atan2(fixed(matrix[0]) / scale0)
        .to_degrees();
    Some(quarter_turns_clockwise(-counter_clockwise))
}

/// Degrees (any sign, any size) → the nearest of 0, 90, 180, 270, clockwise.
pub(crate) fn quarter_turns_clockwise(degrees: f64) -> u32 {
    let quarter = (degrees / 90.0).round() as i64;
    (quarter.rem_euclid(4) * 90) as u32
}

/// The image turned clockwise by 0, 90, 180 or 270 degrees (other angles: unchanged).
pub fn rotate_clockwise(image: RgbImage, degrees: u32) -> RgbImage {
    match degrees {
        90 => image::imageops::rotate90(&image),
        180 => image::imageops::rotate180(&image),
        270 => image::imageops::rotate270(&image),
        _ => image,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A display matrix that rotates by `angle` degrees counter-clockwise (the
    /// layout FFmpeg writes: `[cos, -sin, 0; sin, cos, 0; 0, 0, 1]`).
    fn matrix_for_counter_clockwise(angle: f64) -> [i32; 9] {
        let (s, c) = angle.to_radians().sin_cos();
        let fp = |v: f64| (v * 65536.0).round() as i32;
        [fp(c), fp(-s), 0, fp(s), fp(c), 0, 0, 0, 1 << 30]
    }

    #[test]
    fn display_matrix_angles_map_to_clockwise_quarter_turns() {
        assert_eq!(
            rotation_from_display_matrix(&matrix_for_counter_clockwise(0.0)),
            Some(0)
        );
        assert_eq!(
            rotation_from_display_matrix(&matrix_for_counter_clockwise(90.0)),
            Some(270)
        );
        assert_eq!(
            rotation_from_display_matrix(&matrix_for_counter_clockwise(-90.0)),
            Some(90)
        );
        assert_eq!(
            rotation_from_display_matrix(&matrix_for_counter_clockwise(180.0)),
            Some(180)
        );
        assert_eq!(rotation_from_display_matrix(&[0; 9]), None);
    }

    #[test]
    fn the_fixture_matrix_of_a_rotate_90_tag_reads_as_counter_clockwise() {
        // Bytes of tests/fixtures/decode/rotated90.mp4's display matrix as FFmpeg 5.1
        // exports it (ffprobe: "rotation=90", i.e. 90° counter-clockwise).
        let m = [0, -65536, 0, 65536, 0, 0, 0, 0, 1 << 30];
        assert_eq!(rotation_from_display_matrix(&m), Some(270));
    }

    #[test]
    fn rotating_moves_corners_clockwise() {
        // 3×2 image: pixel (x, y) has red = 10*x + y.
        let img = RgbImage::from_fn(3, 2, |x, y| image::Rgb([(10 * x + y) as u8, 0, 0]));
        let r90 = rotate_clockwise(img.clone(), 90);
        assert_eq!(r90.dimensions(), (2, 3));
        // Clockwise: the bottom-left corner (0,1) goes to the top-left.
        assert_eq!(r90.get_pixel(0, 0)[0], 1);
        assert_eq!(r90.get_pixel(1, 0)[0], 0);
        let r270 = rotate_clockwise(img.clone(), 270);
        // Counter-clockwise: the top-right corner (2,0) goes to the top-left.
        assert_eq!(r270.get_pixel(0, 0)[0], 20);
        let r180 = rotate_clockwise(img.clone(), 180);
        assert_eq!(r180.get_pixel(0, 0)[0], 21);
        assert_eq!(rotate_clockwise(img.clone(), 0), img);
    }
}
