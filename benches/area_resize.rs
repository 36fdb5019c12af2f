//! The detector's area resize on the host, alone: the summed-area table of a frame, the
//! P-Net pyramid the analyzer's default takes from it, and R-Net/O-Net crops (177 and 25
//! per frame, what the shared clip averages), at 640x360, 1280x720 and 1920x1080, on
//! one thread. Median milliseconds per frame.
//!
//!   cargo bench --bench area_resize

use std::time::Instant;

use mimic::frame::RgbImage;
use mimic::mtcnn::MtcnnConfig;
use mimic::mtcnn::boxes::{CropRect, scaled_size};
use mimic::mtcnn::resample::IntegralImage;

/// The clip's first frame (a fixture) scaled to `width x height`.
fn frame(width: u32, height: u32) -> RgbImage {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/mtcnn/frame_000.png"
    );
    let image = image::open(path).expect("the fixture frame").to_rgb8();
    image::imageops::resize(&image, width, height, image::imageops::FilterType::Triangle)
}

/// `n` square boxes of 20–120 px at 360 lines (scaled with the frame), anywhere in it.
fn boxes(width: usize, height: usize, n: usize, seed: u32) -> Vec<CropRect> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (s >> 8) as usize
    };
    let scale = height as f64 / 360.0;
    (0..n)
        .map(|_| {
            let side = ((20 + next() % 100) as f64 * scale) as usize;
            let (x0, y0) = (next() % (width - side), next() % (height - side));
            CropRect {
                x0,
                y0,
                x1: x0 + side,
                y1: y0 + side,
            }
        })
        .collect()
}

fn median(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

fn main() {
    println!("frame       table  pyramid  crops  total (ms per frame, one thread, median)");
    for (width, height, rounds) in [(640u32, 360u32, 200), (1280, 720, 80), (1920, 1080, 40)] {
        let image = frame(width, height);
        let levels: Vec<(usize, usize)> = MtcnnConfig::analyzer_default()
            .pyramid_scales(width, height)
            .into_iter()
            .map(|scale| scaled_size(width, height, scale))
            .collect();
        let crops = [
            (boxes(width as usize, height as usize, 177, 1), 24),
            (boxes(width as usize, height as usize, 25, 2), 48),
        ];
        let (mut table_ms, mut pyramid_ms, mut crops_ms) = (Vec::new(), Vec::new(), Vec::new());
        let mut checksum = 0.0f64;
        for _ in 0..rounds {
            let start = Instant::now();
            let table = IntegralImage::new(&image);
            table_ms.push(start.elapsed().as_secs_f64() * 1e3);
            let start = Instant::now();
            for &(h, w) in &levels {
                let mut out = vec![0.0; 3 * h * w];
                table.resize_area_normalised(table.full_rect(), h, w, &mut out);
                checksum += f64::from(out[0]);
            }
            pyramid_ms.push(start.elapsed().as_secs_f64() * 1e3);
            let start = Instant::now();
            for (rects, side) in &crops {
                let mut out = vec![0.0; rects.len() * 3 * side * side];
                for (chunk, &rect) in out.chunks_exact_mut(3 * side * side).zip(rects) {
                    table.resize_area_normalised(rect, *side, *side, chunk);
                }
                checksum += f64::from(out[1]);
            }
            crops_ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let (t, p, c) = (median(table_ms), median(pyramid_ms), median(crops_ms));
        println!(
            "{:>9}  {t:6.2}  {p:7.2}  {c:5.2}  {:5.2}   (checksum {checksum:.3})",
            format!("{width}x{height}"),
            t + p + c
        );
    }
}
