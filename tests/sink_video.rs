//! The annotated video sink writes a video our own decoder reads back: one frame per
//! result, the source's size, the boxes drawn.

use std::path::Path;

use mimic::decode::{InputSpec, open};
use mimic::geometry::{BBox, FaceDetection};
use mimic::record::{FaceResult, FrameResult, FrameStatus};
use mimic::sink::{AnnotatedVideoSink, Sink, SinkError};

fn classes() -> Vec<String> {
    ["neutral", "happiness", "surprise"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn face() -> FaceResult {
    FaceResult {
        pose: Some(mimic::head_pose::HeadPose {
            yaw: 20.0,
            pitch: -5.0,
            roll: 3.0,
        }),
        face: 0,
        track_id: None,
        detection: FaceDetection {
            bbox: BBox {
                x1: 200.0,
                y1: 60.0,
                x2: 320.0,
                y2: 200.0,
            },
            score: 0.99,
            landmarks: [
                [230.0, 110.0],
                [290.0, 110.0],
                [260.0, 140.0],
                [235.0, 170.0],
                [285.0, 170.0],
            ],
        },
        probs: vec![0.1, 0.8, 0.1],
        smoothed: None,
    }
}

#[test]
fn annotated_video_has_one_frame_per_result_at_the_source_size() {
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip.mp4");
    let mut source = open(&InputSpec::Video(clip)).unwrap();
    let info = source.info();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("annotated.mp4");
    let mut sink =
        AnnotatedVideoSink::create(&out, info.fps, info.width, info.height, &classes()).unwrap();

    let mut originals = Vec::new();
    for frame in source.by_ref().take(12) {
        let frame = frame.unwrap();
        // Frame 5 plays a live frame dropped by the pipeline: no pixels, marked skipped.
        let skipped = frame.index == 5;
        let result = FrameResult {
            source: frame.source.clone(),
            index: frame.index,
            pts_ms: frame.pts_ms,
            status: if skipped {
                FrameStatus::Skipped
            } else {
                FrameStatus::Analyzed
            },
            faces: if skipped { vec![] } else { vec![face()] },
            latency_ms: None,
            image: (!skipped).then(|| frame.image.clone()),
        };
        sink.write(&result).unwrap();
        originals.push(frame.image);
    }
    sink.finish().unwrap();
    assert_eq!(sink.frames_written(), 12);

    let mut written = open(&InputSpec::Video(out.clone())).unwrap();
    let info = written.info();
    assert_eq!((info.width, info.height), (640, 360));
    let frames: Vec<_> = written.by_ref().map(|f| f.unwrap()).collect();
    assert_eq!(frames.len(), 12, "codec {}", sink.codec());
    // The box's left edge (x = 200) is drawn in green; the source there is not green.
    let drawn = frames[0].image.get_pixel(200, 130);
    let source = originals[0].get_pixel(200, 130);
    assert!(
        drawn[1] as i32 > drawn[0] as i32 + 60,
        "drawn {drawn:?} (source {source:?})"
    );
    assert!(
        (source[1] as i32) < source[0] as i32 + 60,
        "source {source:?}"
    );
}

#[test]
fn annotated_video_in_a_missing_folder_fails_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("missing/annotated.mp4");
    let err = AnnotatedVideoSink::create(&out, Some(30.0), 64, 36, &classes())
        .err()
        .unwrap();
    assert!(matches!(err, SinkError::Create { .. }), "{err:?}");
    assert!(err.to_string().contains("missing/annotated.mp4"), "{err}");
}
