//! Tracker cost per frame on a synthetic crowd — a measurement, not a test
//! (it asserts nothing about time). Run it with
//! `cargo test --release --test tracking_bench -- --ignored --nocapture --test-threads=1`;
//! the figures go to BENCHMARKS.md.

use mimic::track::bench::{TrackerBench, measure};

#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn print_tracker_cost_per_frame() {
    println!();
    println!("| faces | appearance | frames | µs/frame (median of 5) | min | µs/face | ids |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for faces in [1, 4, 16, 64, 256] {
        for feature_dim in [None, Some(192)] {
            let frames = (30_000 / faces).clamp(300, 3_000);
            let bench = TrackerBench {
                faces,
                frames,
                feature_dim,
            };
            measure(&TrackerBench {
                frames: frames / 10,
                ..bench.clone()
            }); // warm-up
            let mut runs: Vec<_> = (0..5).map(|_| measure(&bench)).collect();
            runs.sort_by(|a, b| a.per_frame_us.total_cmp(&b.per_frame_us));
            let median = &runs[2];
            println!(
                "| {} | {} | {} | {:.1} | {:.1} | {:.2} | {} |",
                faces,
                feature_dim.map_or("none".to_string(), |d| format!("{d}-d")),
                frames,
                median.per_frame_us,
                runs[0].per_frame_us,
                median.per_face_us,
                median.distinct_ids,
            );
        }
    }
}

#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn print_shot_cut_detector_cost_per_frame() {
    use mimic::track::{ShotCutConfig, ShotCutDetector};
    use std::time::Instant;
    println!();
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
