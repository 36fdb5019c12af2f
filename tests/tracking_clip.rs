//! Identity switches on real footage: our decoder, our MTCNN and the tracker run
//! over tests/fixtures/clip.mp4 (60 frames, a performer, then a cut to an
//! audience of four), and the track ids are checked against the hand-checked
//! identities of tests/fixtures/tracking/clip_identities.json (how they were
//! made and checked: README.md beside it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use burn::tensor::Device;
use mimic::decode::{self, InputSpec};
use mimic::frame::{Frame, RgbImage};
use mimic::geometry::{BBox, FaceDetection};
use mimic::mtcnn::{FaceDetector, MtcnnConfig};
use mimic::track::assign::{Candidate, max_affinity_matching};
use mimic::track::{ShotCutConfig, ShotCutDetector, Tracker, TrackerConfig};
use serde::Deserialize;

/// IoU at which a detection is taken to be an annotated face.
const MATCH_IOU: f32 = 0.5;
/// Frames per detector call.
const BATCH: usize = 8;

#[derive(Deserialize)]
struct Annotation {
    frames: Vec<AnnotatedFrame>,
}

#[derive(Deserialize)]
struct AnnotatedFrame {
    frame: u64,
    faces: Vec<AnnotatedFace>,
}

#[derive(Deserialize)]
struct AnnotatedFace {
    identity: String,
    #[serde(rename = "box")]
    bbox: [f32; 4],
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn annotation() -> Annotation {
    let path = root().join("tests/fixtures/tracking/clip_identities.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One decoded frame of the clip: its time, its detections, whether the cut
/// detector saw a new shot.
struct DetectedFrame {
    index: u64,
    pts_ms: f64,
    detections: Vec<FaceDetection>,
    cut: bool,
}

fn detect_clip() -> Vec<DetectedFrame> {
    let detector = FaceDetector::load(
        &root().join("models/mtcnn"),
        MtcnnConfig::default(),
        &Device::flex(),
    )
    .expect("models/mtcnn holds the converted weights");
    let mut cuts = ShotCutDetector::new(ShotCutConfig::default()).unwrap();
    let clip = root().join("tests/fixtures/clip.mp4");
    let source = decode::open(&InputSpec::Video(clip.clone()))
        .unwrap_or_else(|e| panic!("{}: {e}", clip.display()));
    let decoded: Vec<Frame> = source
        .map(|frame| frame.unwrap_or_else(|e| panic!("{}: {e}", clip.display())))
        .collect();
    // Frames in batches, as the pipeline does (P-Net passes are shared).
    let mut out = Vec::new();
    for batch in decoded.chunks(BATCH) {
        let images: Vec<&RgbImage> = batch.iter().map(|f| &f.image).collect();
        for (frame, detections) in batch.iter().zip(detector.detect_batch(&images)) {
            out.push(DetectedFrame {
                index: frame.index,
                pts_ms: frame.pts_ms,
                detections,
                cut: cuts.is_cut(&frame.image),
            });
        }
    }
    out
}

/// How the track ids compare with the annotated identities.
#[derive(Debug, Default)]
struct Score {
    /// Annotated faces, and those a detection matched (IoU ≥ [`MATCH_IOU`]).
    annotated: usize,
    matched: usize,
    /// An identity's track id differs from the one it had at its previous
    /// matched frame: (frame, identity, old id, new id).
    switches: Vec<(u64, String, u64, u64)>,
    /// Track ids given to more than one identity.
    merged: BTreeMap<u64, BTreeSet<String>>,
}

/// Runs a default tracker over `frames` (calling `new_shot` at detected cuts
/// when `use_cuts`) and scores it against `truth`.
fn score(frames: &[DetectedFrame], truth: &Annotation, use_cuts: bool) -> Score {
    let truth: BTreeMap<u64, &AnnotatedFrame> = truth.frames.iter().map(|f| (f.frame, f)).collect();
    let mut tracker = Tracker::new(TrackerConfig::default()).unwrap();
    let mut score = Score::default();
    let mut last_id: BTreeMap<String, u64> = BTreeMap::new();
    let mut identities_of: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for frame in frames {
        if use_cuts && frame.cut {
            tracker.new_shot();
        }
        let assignments = tracker.update(frame.pts_ms, &frame.detections, None);
        let Some(annotated) = truth.get(&frame.index) else {
            continue;
        };
        let mut candidates = Vec::new();
        for (row, face) in annotated.faces.iter().enumerate() {
            let [x1, y1, x2, y2] = face.bbox;
            let truth_box = BBox { x1, y1, x2, y2 };
            for (col, det) in frame.detections.iter().enumerate() {
                let iou = truth_box.iou(&det.bbox);
                if iou >= MATCH_IOU {
                    candidates.push(Candidate {
                        row,
                        col,
                        affinity: iou,
                    });
                }
            }
        }
        score.annotated += annotated.faces.len();
        for (row, col) in
            max_affinity_matching(annotated.faces.len(), frame.detections.len(), &candidates)
        {
            score.matched += 1;
            let identity = &annotated.faces[row].identity;
            let id = assignments[col].track_id;
            if let Some(&old) = last_id.get(identity)
                && old != id
            {
                score
                    .switches
                    .push((frame.index, identity.clone(), old, id));
            }
            last_id.insert(identity.clone(), id);
            identities_of
                .entry(id)
                .or_default()
                .insert(identity.clone());
        }
    }
    score.merged = identities_of
        .into_iter()
        .filter(|(_, who)| who.len() > 1)
        .collect();
    score
}

#[test]
fn tracking_the_fixture_clip_makes_no_identity_switch() {
    let truth = annotation();
    let frames = detect_clip();
    assert_eq!(frames.len(), 60, "frames decoded from clip.mp4");
    let cuts: Vec<u64> = frames.iter().filter(|f| f.cut).map(|f| f.index).collect();
    assert_eq!(
        cuts,
        vec![27],
        "the clip cuts once, from the performer to the audience"
    );

    let with_cuts = score(&frames, &truth, true);
    println!("with shot cuts: {with_cuts:?}");
    // The test means something only if our detector finds the annotated faces.
    assert!(
        with_cuts.matched as f64 >= 0.95 * with_cuts.annotated as f64,
        "matched {} of {} annotated faces",
        with_cuts.matched,
        with_cuts.annotated
    );
    assert!(
        with_cuts.switches.is_empty(),
        "identity switches: {:?}",
        with_cuts.switches
    );
    assert!(
        with_cuts.merged.is_empty(),
        "ids shared by several people: {:?}",
        with_cuts.merged
    );

    // And the cut is what keeps the performer's id off the audience: by motion
    // alone his track carries on onto the man whose face overlaps his box.
    let motion_only = score(&frames, &truth, false);
    println!("motion only: {motion_only:?}");
    assert_eq!(
        motion_only.merged.values().cloned().collect::<Vec<_>>(),
        vec![BTreeSet::from([
            "man_centre".to_string(),
            "performer".to_string()
        ])],
    );
}
