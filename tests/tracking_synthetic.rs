//! The tracker on synthetic trajectories with known identities: each test
//! builds a scene (who is where, when), runs the tracker over it, and checks
//! the track id each face gets.

use std::collections::{BTreeMap, HashMap, HashSet};

use mimic::geometry::{BBox, FaceDetection};
use mimic::track::{Association, Tracker, TrackerConfig};

/// A face seen in one frame: its true identity and its box.
#[derive(Clone, Debug)]
struct Seen {
    who: &'static str,
    bbox: BBox,
}

/// What the tracker said about one face of one frame.
#[derive(Clone, Debug)]
struct Tracked {
    who: &'static str,
    pts_ms: f64,
    id: u64,
    association: Association,
}

fn square(cx: f64, cy: f64, side: f64) -> BBox {
    let h = side / 2.0;
    BBox {
        x1: (cx - h) as f32,
        y1: (cy - h) as f32,
        x2: (cx + h) as f32,
        y2: (cy + h) as f32,
    }
}

/// Deterministic detector noise in [-1, 1) from a frame index and a salt.
fn jitter(frame: usize, salt: u64) -> f64 {
    let mut z = (frame as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ salt.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 31)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 29;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// Adds ±`px` of independent noise to each side of `bbox`.
fn noisy(bbox: BBox, frame: usize, salt: u64, px: f64) -> BBox {
    let n = |k: u64| (jitter(frame, salt * 4 + k) * px) as f32;
    BBox {
        x1: bbox.x1 + n(0),
        y1: bbox.y1 + n(1),
        x2: bbox.x2 + n(2),
        y2: bbox.y2 + n(3),
    }
}

fn detection(bbox: BBox) -> FaceDetection {
    FaceDetection {
        bbox,
        score: 0.99,
        landmarks: [[0.0; 2]; 5],
    }
}

/// Runs `tracker` over the frames at `times_ms`, the faces of each given by
/// `scene`, and, if `features` is given, one appearance vector per face from
/// it. Detections are handed over in name order on even frames and reversed on
/// odd ones, so nothing can depend on the detector's ordering.
fn run(
    tracker: &mut Tracker,
    times_ms: &[f64],
    scene: impl Fn(usize, f64) -> Vec<Seen>,
    features: Option<&dyn Fn(&'static str) -> Vec<f32>>,
) -> Vec<Tracked> {
    let mut out = Vec::new();
    for (k, &t) in times_ms.iter().enumerate() {
        let mut seen = scene(k, t);
        // Faces in name order, so the first ids follow the names (A = 1, B = 2,
        // ...), reversed on odd frames.
        seen.sort_by_key(|s| s.who);
        if k % 2 == 1 {
            seen.reverse();
        }
        let detections: Vec<FaceDetection> = seen.iter().map(|s| detection(s.bbox)).collect();
        let feats: Option<Vec<Vec<f32>>> =
            features.map(|f| seen.iter().map(|s| f(s.who)).collect());
        let assignments = tracker.update(t, &detections, feats.as_deref());
        assert_eq!(assignments.len(), seen.len());
        let mut in_frame = HashSet::new();
        for (i, a) in assignments.iter().enumerate() {
            assert_eq!(a.detection, i, "assignments come in detection order");
            assert!(
                in_frame.insert(a.track_id),
                "frame at {t} ms: id {} given twice",
                a.track_id
            );
            out.push(Tracked {
                who: seen[i].who,
                pts_ms: t,
                id: a.track_id,
                association: a.association,
            });
        }
    }
    out
}

/// Asserts that every face got exactly the id listed for it, in every frame.
fn assert_ids(tracked: &[Tracked], expected: &[(&str, u64)]) {
    let mut got: BTreeMap<&str, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for t in tracked {
        got.entry(t.who)
            .or_default()
            .entry(t.id)
            .or_default()
            .push(t.pts_ms);
    }
    let expected_faces: BTreeMap<&str, u64> = expected.iter().copied().collect();
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        expected_faces.keys().copied().collect::<Vec<_>>(),
        "faces seen"
    );
    for (who, ids) in &got {
        let summary: Vec<(u64, usize, f64)> =
            ids.iter().map(|(id, ts)| (*id, ts.len(), ts[0])).collect();
        assert_eq!(
            ids.keys().copied().collect::<Vec<_>>(),
            vec![expected_faces[who]],
            "face {who}: (id, frames, first seen ms) = {summary:?}"
        );
    }
}

fn frames_at_30fps(seconds: f64) -> Vec<f64> {
    (0..(seconds * 30.0).round() as usize)
        .map(|k| k as f64 * 1000.0 / 30.0)
        .collect()
}

fn tracker() -> Tracker {
    Tracker::new(TrackerConfig::default()).unwrap()
}

#[test]
fn two_faces_crossing_paths_keep_their_ids() {
    // A walks right, B walks left, 30 px apart vertically: their boxes overlap
    // (IoU up to 0.33) for ~0.4 s around the crossing at t = 1.33 s.
    let scene = |k: usize, t: f64| {
        let s = t / 1000.0;
        vec![
            Seen {
                who: "A",
                bbox: noisy(square(100.0 + 150.0 * s, 100.0, 60.0), k, 1, 1.5),
            },
            Seen {
                who: "B",
                bbox: noisy(square(500.0 - 150.0 * s, 130.0, 60.0), k, 2, 1.5),
            },
        ]
    };
    let tracked = run(&mut tracker(), &frames_at_30fps(3.0), scene, None);
    assert_ids(&tracked, &[("A", 1), ("B", 2)]);
}

#[test]
fn face_hidden_behind_another_while_crossing_is_reassociated_on_the_far_side() {
    // Same line: B is hidden behind A while their centres are closer than a face
    // width (~0.4 s), and reappears on A's other side. Only the motion model can
    // tell that the face reappearing left of A is B and not a newcomer.
    let scene = |k: usize, t: f64| {
        let s = t / 1000.0;
        let (xa, xb) = (100.0 + 150.0 * s, 505.0 - 150.0 * s);
        let mut faces = vec![Seen {
            who: "A",
            bbox: noisy(square(xa, 100.0, 60.0), k, 1, 1.5),
        }];
        if (xa - xb).abs() >= 60.0 {
            faces.push(Seen {
                who: "B",
                bbox: noisy(square(xb, 100.0, 60.0), k, 2, 1.5),
            });
        }
        faces
    };
    let tracked = run(&mut tracker(), &frames_at_30fps(3.0), scene, None);
    assert_ids(&tracked, &[("A", 1), ("B", 2)]);
    let hidden_frames = 90 - tracked.iter().filter(|t| t.who == "B").count();
    assert!(
        hidden_frames >= 10,
        "B was hidden for {hidden_frames} frames"
    );
    assert_eq!(
        tracked
            .iter()
            .filter(|t| t.association == Association::Reassociated)
            .count(),
        1,
        "B is re-associated exactly once"
    );
}

#[test]
fn face_occluded_for_under_max_lost_ms_is_reassociated() {
    // A drifts right at 40 px/s and is hidden from 1.0 s to 1.7 s (700 ms);
    // B stands still nearby the whole time.
    let scene = |k: usize, t: f64| {
        let s = t / 1000.0;
        let mut faces = vec![Seen {
            who: "B",
            bbox: noisy(square(420.0, 200.0, 80.0), k, 2, 2.0),
        }];
        if !(1000.0..1700.0).contains(&t) {
            faces.push(Seen {
                who: "A",
                bbox: noisy(square(200.0 + 40.0 * s, 200.0, 80.0), k, 1, 2.0),
            });
        }
        faces
    };
    let tracked = run(&mut tracker(), &frames_at_30fps(3.0), scene, None);
    assert_ids(&tracked, &[("A", 1), ("B", 2)]);
    let back = tracked
        .iter()
        .find(|t| t.who == "A" && t.pts_ms >= 1700.0)
        .unwrap();
    assert_eq!(back.association, Association::Reassociated);
}

/// A face hidden for 3 s (three times `max_lost_ms`) next to a still one.
fn long_gap_scene(k: usize, t: f64) -> Vec<Seen> {
    let mut faces = vec![Seen {
        who: "B",
        bbox: noisy(square(420.0, 200.0, 80.0), k, 2, 2.0),
    }];
    if !(1000.0..4000.0).contains(&t) {
        faces.push(Seen {
            who: "A",
            bbox: noisy(square(200.0, 200.0, 80.0), k, 1, 2.0),
        });
    }
    faces
}

/// Appearance features: one direction per person, so cosine 1 within a person
/// and 0 between people.
fn person_feature(who: &'static str) -> Vec<f32> {
    let mut v = vec![0.0; 8];
    v[who.as_bytes()[0] as usize % 8] = 1.0;
    v
}

#[test]
fn face_gone_longer_than_max_lost_ms_gets_a_new_id_without_appearance() {
    let tracked = run(&mut tracker(), &frames_at_30fps(5.0), long_gap_scene, None);
    let ids_of_a: HashSet<u64> = tracked
        .iter()
        .filter(|t| t.who == "A")
        .map(|t| t.id)
        .collect();
    assert_eq!(ids_of_a, HashSet::from([1, 3]));
    assert!(
        tracked
            .iter()
            .filter(|t| t.who == "A" && t.pts_ms >= 4000.0)
            .all(|t| t.id == 3)
    );
    assert!(tracked.iter().filter(|t| t.who == "B").all(|t| t.id == 2));
}

#[test]
fn face_gone_longer_than_max_lost_ms_is_recovered_by_appearance() {
    let mut t = tracker();
    let tracked = run(
        &mut t,
        &frames_at_30fps(5.0),
        long_gap_scene,
        Some(&person_feature),
    );
    assert_ids(&tracked, &[("A", 1), ("B", 2)]);
    let back = tracked
        .iter()
        .find(|t| t.who == "A" && t.pts_ms >= 4000.0)
        .unwrap();
    assert_eq!(back.association, Association::Reidentified);
    assert_eq!(t.drain_retired(), vec![1], "A was retired during the gap");
}

#[test]
fn appearance_does_not_merge_a_different_person_into_a_retired_track() {
    // A leaves; 3 s later C (another person) appears where A was.
    let scene = |k: usize, t: f64| {
        let mut faces = vec![Seen {
            who: "B",
            bbox: noisy(square(420.0, 200.0, 80.0), k, 2, 2.0),
        }];
        if t < 1000.0 {
            faces.push(Seen {
                who: "A",
                bbox: noisy(square(200.0, 200.0, 80.0), k, 1, 2.0),
            });
        } else if t >= 4000.0 {
            faces.push(Seen {
                who: "C",
                bbox: noisy(square(200.0, 200.0, 80.0), k, 3, 2.0),
            });
        }
        faces
    };
    let tracked = run(
        &mut tracker(),
        &frames_at_30fps(5.0),
        scene,
        Some(&person_feature),
    );
    assert_ids(&tracked, &[("A", 1), ("B", 2), ("C", 3)]);
}

#[test]
fn beyond_the_reid_window_a_returning_face_gets_a_new_id() {
    let mut config = TrackerConfig::default();
    config.reid.window_ms = 2000.0;
    let mut t = Tracker::new(config).unwrap();
    let tracked = run(
        &mut t,
        &frames_at_30fps(5.0),
        long_gap_scene,
        Some(&person_feature),
    );
    assert!(
        tracked
            .iter()
            .filter(|t| t.who == "A" && t.pts_ms >= 4000.0)
            .all(|t| t.id == 3)
    );
}

#[test]
fn faces_entering_and_leaving_get_new_ids_and_old_ones_retire() {
    // A sits from 0 to 2 s. B walks in from the left edge at 1 s and out of the
    // right edge. C sits where A sat, from 4 s (after A retired) to 5 s.
    let scene = |k: usize, t: f64| {
        let s = t / 1000.0;
        let mut faces = Vec::new();
        if t < 2000.0 {
            faces.push(Seen {
                who: "A",
                bbox: noisy(square(150.0, 150.0, 70.0), k, 1, 2.0),
            });
        }
        let xb = -35.0 + 300.0 * (s - 1.0);
        if (1.0..).contains(&s) && xb < 675.0 {
            faces.push(Seen {
                who: "B",
                bbox: noisy(square(xb.max(10.0), 300.0, 50.0), k, 2, 1.5),
            });
        }
        if t >= 4000.0 {
            faces.push(Seen {
                who: "C",
                bbox: noisy(square(150.0, 150.0, 70.0), k, 3, 2.0),
            });
        }
        faces
    };
    let mut t = tracker();
    let times = frames_at_30fps(6.0);
    let tracked = run(&mut t, &times[..105], scene, None);
    assert_eq!(t.drain_retired(), vec![1], "A retired 1 s after leaving");
    let rest = run(&mut t, &times[105..], scene, None);
    let all: Vec<Tracked> = tracked.into_iter().chain(rest).collect();
    assert_ids(&all, &[("A", 1), ("B", 2), ("C", 3)]);
    assert_eq!(t.live_tracks(), 1, "only C is live at the end");
}

#[test]
fn many_faces_at_once_keep_one_id_each() {
    // 200 faces on a 20×10 grid, 100 px apart, each on its own slow ellipse,
    // each detection missed one frame in ten at random.
    let n = 200;
    let names: Vec<&'static str> = (0..n).map(|i| &*format!("face{i}").leak()).collect();
    let scene = |k: usize, t: f64| {
        let s = t / 1000.0;
        (0..n)
            .filter(|&i| jitter(k, 1000 + i as u64) > -0.8)
            .map(|i| {
                let phase = i as f64 * 0.7;
                let cx = 60.0 + 100.0 * (i % 20) as f64 + 25.0 * (1.5 * s + phase).cos();
                let cy = 60.0 + 100.0 * (i / 20) as f64 + 15.0 * (1.5 * s + phase).sin();
                Seen {
                    who: names[i],
                    bbox: noisy(square(cx, cy, 44.0), k, i as u64, 1.5),
                }
            })
            .collect()
    };
    let tracked = run(&mut tracker(), &frames_at_30fps(4.0), scene, None);
    let mut ids_per_face: HashMap<&str, HashSet<u64>> = HashMap::new();
    for t in &tracked {
        ids_per_face.entry(t.who).or_default().insert(t.id);
    }
    assert_eq!(ids_per_face.len(), n);
    let broken: Vec<_> = ids_per_face
        .iter()
        .filter(|(_, ids)| ids.len() != 1)
        .collect();
    assert!(broken.is_empty(), "faces with several ids: {broken:?}");
    let distinct: HashSet<u64> = ids_per_face.values().flatten().copied().collect();
    assert_eq!(distinct.len(), n, "no two faces share an id");
}

#[test]
fn irregular_timestamps_are_followed_by_time_aware_prediction() {
    // Two fast faces (400 px/s, 40 px wide) side by side 100 px apart, frames
    // 10 to 150 ms apart: a 150 ms gap moves a face 1.5 face widths, beyond
    // the gate of a prediction that ignored time.
    // Regular for the first 5 frames (the filter learns the velocity), then
    // irregular.
    let mut times: Vec<f64> = (0..5).map(|k| k as f64 * 33.0).collect();
    for k in 0..80 {
        let gap = 10.0 + 140.0 * (0.5 + 0.5 * jitter(k, 77));
        times.push(times.last().unwrap() + gap);
    }
    let scene = |k: usize, t: f64| {
        let s = t / 1000.0;
        vec![
            Seen {
                who: "A",
                bbox: noisy(square(50.0 + 400.0 * s, 100.0, 40.0), k, 1, 1.0),
            },
            Seen {
                who: "B",
                bbox: noisy(square(50.0 + 400.0 * s, 200.0, 40.0), k, 2, 1.0),
            },
        ]
    };
    assert!(times.windows(2).any(|w| w[1] - w[0] > 120.0));
    let tracked = run(&mut tracker(), &times, scene, None);
    assert_ids(&tracked, &[("A", 1), ("B", 2)]);
}

#[test]
fn a_small_fast_face_is_followed_from_its_second_frame() {
    // 20 px face moving 12 px per frame: IoU 0.25 between consecutive boxes,
    // below min_iou, before the filter knows the velocity.
    let scene = |k: usize, t: f64| {
        vec![Seen {
            who: "A",
            bbox: noisy(square(30.0 + 0.36 * t, 100.0, 20.0), k, 1, 0.5),
        }]
    };
    let tracked = run(&mut tracker(), &frames_at_30fps(1.5), scene, None);
    assert_ids(&tracked, &[("A", 1)]);
}

#[test]
fn a_far_away_detection_is_a_new_face_not_a_jump() {
    let scene = |k: usize, t: f64| {
        let x = if t < 500.0 { 100.0 } else { 400.0 };
        vec![Seen {
            who: if t < 500.0 { "A" } else { "B" },
            bbox: noisy(square(x, 100.0, 50.0), k, 1, 1.0),
        }]
    };
    let tracked = run(&mut tracker(), &frames_at_30fps(1.0), scene, None);
    assert_ids(&tracked, &[("A", 1), ("B", 2)]);
}

/// Property: over random scenes (faces born, dying, jumping, detections
/// missed, spurious boxes, irregular times, with and without appearance), no
/// id is ever given to two detections of a frame, new ids only grow, an id
/// comes back after retirement only by appearance within the window, and
/// re-association by motion stays within `max_lost_ms`.
#[test]
fn ids_are_never_reused_on_random_scenes() {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for seed in 0..12u64 {
        let with_appearance = seed % 2 == 0;
        let mut tracker = tracker();
        let config = tracker.config().clone();
        let mut highest = 0u64;
        let mut seen_ids = HashSet::new();
        let mut retired = HashSet::new();
        let mut t = 0.0;
        // Up to 12 random walkers; each frame some die, some are born.
        let mut walkers: Vec<(f64, f64, f64, u64)> = Vec::new();
        for k in 0..400usize {
            let r = |salt: u64| 0.5 + 0.5 * jitter(k, seed * 1_000 + salt);
            t += 5.0 + 200.0 * r(1).powi(3);
            let mut n = 0;
            walkers.retain(|_| {
                n += 1;
                r(200 + n) > 0.03
            });
            if walkers.len() < 12 && r(3) < 0.3 {
                walkers.push((640.0 * r(4), 360.0 * r(5), 20.0 + 80.0 * r(6), k as u64));
            }
            let mut detections = Vec::new();
            let mut features = Vec::new();
            for (i, w) in walkers.iter_mut().enumerate() {
                w.0 += 30.0 * jitter(k, seed * 1_000 + 10 + i as u64);
                w.1 += 30.0 * jitter(k, seed * 1_000 + 50 + i as u64);
                if r(100 + i as u64) < 0.8 {
                    detections.push(detection(square(w.0, w.1, w.2)));
                    // A random direction per walker (cosine between walkers ~0 ± 0.35).
                    features.push(
                        (0..8)
                            .map(|d| jitter(w.3 as usize, seed * 100 + d) as f32)
                            .collect(),
                    );
                }
            }
            if r(7) < 0.1 {
                detections.push(detection(square(640.0 * r(8), 360.0 * r(9), 30.0)));
                features.push(
                    (0..8)
                        .map(|d| jitter(k, seed * 100 + 50 + d) as f32)
                        .collect(),
                );
            }
            let assignments = tracker.update(
                t,
                &detections,
                with_appearance.then_some(features.as_slice()),
            );
            for id in tracker.drain_retired() {
                assert!(
                    retired.insert(id),
                    "seed {seed}: id {id} retired twice without coming back"
                );
            }
            let mut in_frame = HashSet::new();
            for a in &assignments {
                *counts
                    .entry(format!("{:?}", a.association).leak())
                    .or_default() += 1;
                assert!(
                    in_frame.insert(a.track_id),
                    "seed {seed}: id {} twice in a frame",
                    a.track_id
                );
                match a.association {
                    Association::New => {
                        assert!(
                            a.track_id > highest,
                            "seed {seed}: new id {} not above {highest}",
                            a.track_id
                        );
                        highest = a.track_id;
                        assert!(seen_ids.insert(a.track_id));
                    }
                    Association::Tracked | Association::Reassociated => {
                        assert!(seen_ids.contains(&a.track_id));
                        assert!(
                            !retired.contains(&a.track_id),
                            "seed {seed}: retired id {} back by motion",
                            a.track_id
                        );
                        assert!(a.gap_ms <= config.max_lost_ms);
                    }
                    Association::Reidentified => {
                        assert!(with_appearance);
                        assert!(seen_ids.contains(&a.track_id));
                        assert!(a.gap_ms <= config.reid.window_ms);
                        retired.remove(&a.track_id);
                    }
                }
            }
        }
        assert!(
            highest > 20,
            "seed {seed}: the scene made only {highest} tracks"
        );
    }
    // Every path of the tracker was exercised.
    for kind in ["New", "Tracked", "Reassociated", "Reidentified"] {
        assert!(
            counts.get(kind).copied().unwrap_or(0) > 10,
            "{kind}: {counts:?}"
        );
    }
    eprintln!("associations over all seeds: {counts:?}");
}
