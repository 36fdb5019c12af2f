//! `--detect-every K`: between full detections, O-Net alone follows the faces of the
//! previous frame ([`FaceDetector::follow`]).

mod cli_common;

use burn::tensor::Device;
use cli_common::{Rows, analyze, assert_success, root};
use mimic::decode::{InputSpec, open};
use mimic::mtcnn::{FaceDetector, MtcnnConfig};

fn detector() -> FaceDetector {
    FaceDetector::load(
        &root().join("models/mtcnn"),
        MtcnnConfig::default(),
        &Device::flex(),
    )
    .expect("the shipped MTCNN weights")
}

fn frame(name: &str) -> image::RgbImage {
    image::open(root().join("tests/fixtures/mtcnn").join(name))
        .unwrap()
        .to_rgb8()
}

#[test]
fn following_a_still_picture_keeps_each_face_where_it_is() {
    let image = frame("frame_030.png");
    let detector = detector();
    let mut faces = detector.detect_followable(&image);
    assert!(!faces.is_empty(), "the fixture frame shows faces");
    let first = faces.clone();
    for _ in 0..5 {
        faces = detector.follow(&image, &faces);
        assert_eq!(faces.len(), first.len(), "every face is followed");
        for (now, then) in faces.iter().zip(&first) {
            let overlap = now.face.bbox.iou(&then.face.bbox);
            assert!(overlap > 0.99, "the box drifted: IoU {overlap}");
        }
    }
}

#[test]
fn following_finds_the_faces_a_frame_later_where_detection_finds_them() {
    // Frames 0 and 4 of the fixture clip (0.13 s apart): people move a little.
    let clip = InputSpec::Video(root().join("tests/fixtures/clip.mp4"));
    let frames: Vec<_> = open(&clip)
        .unwrap()
        .take(5)
        .map(|f| f.unwrap().image)
        .collect();
    let detector = detector();
    let before = detector.detect_followable(&frames[0]);
    let later = &frames[4];
    let detected = detector.detect(later);
    let followed = detector.follow(later, &before);
    assert_eq!(followed.len(), before.len(), "every face is still there");
    for f in &followed {
        let best = detected
            .iter()
            .map(|d| d.bbox.iou(&f.face.bbox))
            .fold(0.0f32, f32::max);
        assert!(
            best > 0.6,
            "a followed face is where detection finds one (IoU {best})"
        );
    }
}

#[test]
fn follow_finds_no_new_face() {
    let detector = detector();
    assert!(detector.follow(&frame("frame_030.png"), &[]).is_empty());
}

#[test]
fn analyze_with_detect_every_writes_every_frame_with_faces_followed() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("k3.csv");
    let out = analyze(&[
        "tests/fixtures/clip.mp4",
        "--detect-every",
        "3",
        "--model",
        "tests/fixtures/vit/cls",
        "-o",
        csv.to_str().unwrap(),
    ]);
    assert_success(&out);
    let csv = Rows::read(&csv);
    let (frame, face) = (csv.column("frame"), csv.column("face"));
    let mut frames = Vec::new();
    let mut with_face = std::collections::BTreeSet::new();
    for row in &csv.rows {
        let index: u64 = row[frame].parse().unwrap();
        frames.push(index);
        if !row[face].is_empty() {
            with_face.insert(index);
        }
    }
    frames.dedup();
    assert_eq!(frames, (0..60).collect::<Vec<u64>>());
    // Frames 1, 2, 4, 5 … have only followed faces: the clip shows faces throughout.
    let followed = (0..60)
        .filter(|i| i % 3 != 0 && with_face.contains(i))
        .count();
    assert!(
        followed >= 36,
        "faces on {followed} of the 40 followed frames"
    );
}
