//! The decoder on the committed fixtures (tests/fixtures/, made by
//! tests/fixtures/make_decode_fixtures.sh): frame counts, sizes, timestamps checked
//! against ffprobe's, rotation against FFmpeg's own output, and each bad input.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mimic::decode::{
    DecodeError, DecodeOptions, InputSpec, WebcamSpec, expand_inputs, load_still, open, open_with,
};
use mimic::frame::Frame;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// All items of a source: the frames, and the error it ended with (if any).
fn drain(spec: &InputSpec) -> (Vec<Frame>, Option<DecodeError>) {
    let mut frames = Vec::new();
    let mut source = open(spec).unwrap_or_else(|e| panic!("open {spec:?}: {e}"));
    while let Some(item) = source.next() {
        match item {
            Ok(f) => frames.push(f),
            Err(e) => {
                assert!(
                    source.next().is_none(),
                    "the source must end after an error"
                );
                return (frames, Some(e));
            }
        }
    }
    (frames, None)
}

fn pts(frames: &[Frame]) -> Vec<f64> {
    frames.iter().map(|f| f.pts_ms).collect()
}

/// `ffprobe -select_streams v -show_entries frame=best_effort_timestamp clip.mp4`:
/// 0, 400, 800, … in a 1/11988 s time base, stream start 0.
fn clip_pts_ms(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| (400 * i) as f64 * 1000.0 / 11988.0)
        .collect()
}

fn assert_close(actual: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!((a - e).abs() <= tol, "frame {i}: {a} ms, expected {e} ms");
    }
}

#[test]
fn clip_decodes_every_frame_with_ffprobe_timestamps() {
    let spec = InputSpec::Video(fixture("clip.mp4"));
    let info = open(&spec).unwrap().info();
    assert_eq!((info.width, info.height), (640, 360));
    assert_eq!(info.frame_count_estimate, Some(60));
    assert!((info.fps.unwrap() - 29.97).abs() < 0.01);
    assert!((info.duration_ms.unwrap() - 2002.0).abs() < 1.0);
    assert!(!info.live);

    let (frames, err) = drain(&spec);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 60);
    assert_close(&pts(&frames), &clip_pts_ms(60), 1e-6);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.index, i as u64);
        assert_eq!((f.width(), f.height()), (640, 360));
        assert_eq!(f.source.as_str(), fixture("clip.mp4").display().to_string());
    }
    // Real pictures, not blank buffers: the stage is lit, so the mean is well above black.
    let mean = frames[10]
        .image
        .as_raw()
        .iter()
        .map(|v| *v as f64)
        .sum::<f64>()
        / frames[10].image.as_raw().len() as f64;
    assert!(mean > 20.0, "mean pixel value {mean}");
}

#[test]
fn display_rotation_is_applied_like_ffmpeg_does() {
    let spec = InputSpec::Video(fixture("decode/rotated90.mp4"));
    let (frames, err) = drain(&spec);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 10);
    // Stored 160x90 with a display matrix of 90° counter-clockwise: shown 90x160.
    assert_eq!((frames[0].width(), frames[0].height()), (90, 160));
    assert_eq!(open(&spec).unwrap().info().width, 90);

    // FFmpeg's own auto-rotated first frame (same decoder; colour conversion may
    // differ by a unit or two).
    let reference = image::open(fixture("decode/rotated90_frame0_ffmpeg.png"))
        .unwrap()
        .into_rgb8();
    let mad = |a: &image::RgbImage, b: &image::RgbImage| {
        assert_eq!(a.dimensions(), b.dimensions());
        a.as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| (*x as f64 - *y as f64).abs())
            .sum::<f64>()
            / a.as_raw().len() as f64
    };
    let ours = &frames[0].image;
    let same = mad(ours, &reference);
    assert!(same < 3.0, "mean abs difference to FFmpeg's frame: {same}");
    // The other direction would be far off: the check can tell the two apart.
    let wrong_way = image::imageops::rotate180(ours);
    assert!(mad(&wrong_way, &reference) > 5.0 * same.max(1.0));
}

#[test]
fn variable_frame_rate_times_are_the_stream_timestamps() {
    // ffprobe: best_effort_timestamp_time 0.500, 0.533, 0.567, 0.700, … with stream
    // start 0.5 s (Matroska, 1 ms time base).
    let expected = [
        0.0, 33.0, 67.0, 200.0, 234.0, 267.0, 400.0, 434.0, 467.0, 601.0, 634.0, 667.0, 801.0,
        834.0, 868.0,
    ];
    let (frames, err) = drain(&InputSpec::Video(fixture("decode/vfr.mkv")));
    assert!(err.is_none(), "{err:?}");
    assert_close(&pts(&frames), &expected, 1e-9);
}

#[test]
fn truncated_file_yields_its_frames_then_one_error_saying_where() {
    let (frames, err) = drain(&InputSpec::Video(fixture("decode/truncated.mp4")));
    assert!(
        frames.len() >= 20 && frames.len() < 60,
        "{} frames",
        frames.len()
    );
    assert_close(&pts(&frames), &clip_pts_ms(frames.len()), 1e-6);
    let err = err.expect("a truncated file must end with an error");
    assert!(matches!(err, DecodeError::Stopped { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("truncated.mp4"), "{msg}");
    assert!(msg.contains("decoding stopped at"), "{msg}");
    assert!(
        msg.contains(&format!("after {} frames", frames.len())),
        "{msg}"
    );
}

#[test]
fn a_corrupt_packet_is_skipped_and_counted() {
    let spec = InputSpec::Video(fixture("decode/corrupt_packet.mkv"));
    let mut source = open(&spec).unwrap();
    let frames: Vec<Frame> = source
        .by_ref()
        .map(|f| f.expect("recoverable: no error"))
        .collect();
    assert_eq!(source.corrupt_packets(), 1);
    // ffprobe: frame at 0.133 s is missing (its JPEG data zeroed).
    assert_close(
        &pts(&frames),
        &[0.0, 33.0, 67.0, 100.0, 167.0, 200.0, 234.0, 267.0, 300.0],
        1e-9,
    );
    assert_eq!(
        frames.iter().map(|f| f.index).collect::<Vec<_>>(),
        (0..9).collect::<Vec<_>>()
    );
    assert_eq!((frames[0].width(), frames[0].height()), (64, 36));
}

#[test]
fn bad_files_fail_at_open_naming_the_file() {
    let cases = [
        ("decode/no_such_file.mp4", "no such file"),
        ("decode/empty.mp4", "empty (0 bytes)"),
        ("decode/not_a_video.mp4", "not a video"),
    ];
    for (name, what) in cases {
        let path = fixture(name);
        let err = open(&InputSpec::Video(path.clone()))
            .err()
            .unwrap_or_else(|| panic!("{name} opened"));
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(what), "{name}: {msg}");
    }
    let err = open(&InputSpec::Still(fixture("decode/not_a_video.mp4")))
        .err()
        .unwrap();
    assert!(err.to_string().contains("not_a_video.mp4"), "{err}");
}

#[test]
fn an_unopenable_webcam_is_an_error_naming_it() {
    let err = open(&InputSpec::Webcam(WebcamSpec::Index(97)))
        .err()
        .unwrap();
    assert!(matches!(err, DecodeError::Webcam { .. }), "{err:?}");
    assert!(err.to_string().contains("webcam:97"), "{err}");
    let err = open(&InputSpec::webcam("/dev/video97")).err().unwrap();
    assert!(err.to_string().contains("/dev/video97"), "{err}");
}

#[test]
fn stills_are_turned_by_their_exif_orientation() {
    // Stored 32x16, left half red, right half blue, EXIF orientation 6 (turn 90°
    // clockwise to view): viewed it is 16x32 with red on top.
    let img = load_still(&fixture("decode/orientation6.jpg")).unwrap();
    assert_eq!(img.dimensions(), (16, 32));
    let top = img.get_pixel(8, 4);
    let bottom = img.get_pixel(8, 28);
    assert!(top[0] > 200 && top[2] < 60, "top {top:?}");
    assert!(bottom[2] > 200 && bottom[0] < 60, "bottom {bottom:?}");

    let mut source = open(&InputSpec::Still(fixture("decode/orientation6.jpg"))).unwrap();
    let frame = source.next().unwrap().unwrap();
    assert_eq!((frame.index, frame.pts_ms, frame.width()), (0, 0.0, 16));
    assert!(source.next().is_none());
}

#[test]
fn a_fixture_folder_expands_to_its_media_files_in_path_order() {
    let specs = expand_inputs(&[fixture("decode").display().to_string()]).unwrap();
    let names: Vec<String> = specs
        .iter()
        .map(|s| match s {
            InputSpec::Video(p) | InputSpec::Still(p) => {
                p.file_name().unwrap().to_string_lossy().into_owned()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    assert!(
        names.contains(&"vfr.mkv".to_string()) && names.contains(&"orientation6.jpg".to_string())
    );
    assert!(matches!(
        specs[names.iter().position(|n| n == "orientation6.jpg").unwrap()],
        InputSpec::Still(_)
    ));
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with(".md") || n.ends_with(".sh"))
    );
}

#[test]
fn cancelling_ends_the_source_quietly() {
    let cancel = Arc::new(AtomicBool::new(false));
    let options = DecodeOptions {
        cancel: Some(cancel.clone()),
        ..DecodeOptions::default()
    };
    let mut source = open_with(&InputSpec::Video(fixture("clip.mp4")), &options).unwrap();
    for _ in 0..5 {
        source.next().unwrap().unwrap();
    }
    cancel.store(true, Ordering::Relaxed);
    assert!(source.next().is_none());
}

#[test]
fn shared_clip_starts_at_zero_despite_its_stream_start_time() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/videos/short_hamilton_clip.mp4");
    if !path.exists() {
        eprintln!(
            "skipped: {} is absent (shared data not available)",
            path.display()
        );
        return;
    }
    // ffprobe: 275 frames, stream start_time 0.852019 s, 29.97 fps.
    let (frames, err) = drain(&InputSpec::Video(path));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 275);
    assert_eq!(frames[0].pts_ms, 0.0);
    assert!(
        (frames[274].pts_ms - 274.0 * 1000.0 / 29.97).abs() < 1.0,
        "{}",
        frames[274].pts_ms
    );
    assert!(frames.windows(2).all(|w| w[1].pts_ms > w[0].pts_ms));
}
