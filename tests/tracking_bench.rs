//! Tracker cost per frame on a synthetic crowd — a measurement, not a test
//! (it asserts nothing about time). Run it with
//! `cargo test --release --test tracking_bench -- --ignored --nocapture`;
//! the figures go to BENCHMARKS.md.

use mimic::track::bench::{TrackerBench, measure};

#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn print_tracker_cost_per_frame() {
    println!("| faces | appearance | frames | µs/frame | µs/face | ids |");
    println!("|---:|---|---:|---:|---:|---:|");
    for faces in [1, 4, 16, 64, 256] {
        for feature_dim in [None, Some(192)] {
            let frames = (30_000 / faces).clamp(300, 3_000);
            // One warm-up run, then the measured one.
            measure(&TrackerBench {
                faces,
                frames: frames / 10,
                feature_dim,
            });
            let cost = measure(&TrackerBench {
                faces,
                frames,
                feature_dim,
            });
            println!(
                "| {} | {} | {} | {:.1} | {:.2} | {} |",
                cost.faces,
                feature_dim.map_or("none".to_string(), |d| format!("{d}-d")),
                cost.frames,
                cost.per_frame_us,
                cost.per_face_us,
                cost.distinct_ids,
            );
        }
    }
}

#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn print_shot_cut_detector_cost_per_frame() {
    use mimic::track::{ShotCutConfig, ShotCutDetector};
    use std::time::Instant;
    println!("| frame size | µs/frame |");
    println!("|---|---:|");
    for (w, h) in [(640u32, 360u32), (1280, 720), (1920, 1080)] {
        // Two alternating frames of noise-like content, so no branch is trivial.
        let frames: Vec<image::RgbImage> = (0..2u32)
            .map(|k| {
                image::RgbImage::from_fn(w, h, |x, y| {
                    let v = x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503) ^ k;
                    image::Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
                })
            })
            .collect();
        let mut cuts = ShotCutDetector::new(ShotCutConfig::default()).unwrap();
        let runs = 2_000;
        let start = Instant::now();
        for i in 0..runs {
            std::hint::black_box(cuts.is_cut(&frames[i % 2]));
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / runs as f64;
        println!("| {w}×{h} | {us:.1} |");
    }
}
