//! The multi-face tracker: persistent identities from per-frame detections.
//!
//! Each call to [`Tracker::update`] handles one frame:
//!
//! 1. **Predict** every live track to the frame's presentation time with its
//!    constant-velocity Kalman filter ([`super::kalman`]); the gap comes from
//!    the timestamps, so dropped frames and variable frame rate just mean a
//!    longer prediction.
//! 2. **Retire** tracks unseen for longer than `max_lost_ms`. A retired track
//!    with an appearance is kept in a re-identification gallery for
//!    `reid.window_ms`, then forgotten.
//! 3. **Associate by motion**: one optimal assignment ([`super::assign`]) of all
//!    live tracks — those seen on the previous frame and those lost within
//!    `max_lost_ms` — to the detections, over pairs inside the motion gate
//!    ([`super::affinity::motion_affinity`]). A lost track's gate widens with
//!    its prediction's uncertainty, so a face that reappears after a short
//!    occlusion is re-associated. We solve it jointly rather than as DeepSORT's
//!    cascade (recent tracks first): in a cascade, when a face hides behind its
//!    neighbour, the neighbour's still-visible track can take the hidden face's
//!    detection as it reappears, merely because it was seen more recently.
//! 4. **Associate by appearance** (only when features are given): detections
//!    still unmatched against lost and recently retired tracks by cosine
//!    similarity of the ViT's pooled feature, to recover a face after a longer
//!    gap or a jump the motion gate cannot follow.
//! 5. **Start** a track with a fresh id for each detection left. Ids count up
//!    from 1 and are never reused.

use serde::{Deserialize, Serialize};

use super::affinity::{MotionGate, cosine_similarity, motion_candidates, updated_appearance};
use super::assign::{Candidate, max_affinity_matching};
use super::kalman::{BoxFilter, MotionConfig};
use super::{TrackConfigError, check_range};
use crate::geometry::{BBox, FaceDetection};

/// Settings of the appearance cue (used only when features are passed in).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReidConfig {
    /// How long after it was last seen a retired track can still be recovered
    /// by appearance, ms. Default 10 s: long enough for a person to look away,
    /// leave the frame briefly, or be hidden by a passer-by; short enough that
    /// the gallery stays small and that a new person is rarely mistaken for an
    /// old one (the risk grows with the gallery).
    pub window_ms: f64,
    /// Least cosine similarity between a detection's feature and a track's
    /// mean feature to recover the track. Default 0.85, deliberately strict:
    /// the ViT is trained to tell expressions, not people, so two people with
    /// the same expression can look alike to it; a false recovery (two people
    /// merged) is worse than a missed one (a new id). Calibrate on real footage.
    pub min_similarity: f32,
    /// Weight of the past in a track's running mean feature, per observation.
    /// Default 0.9, as JDE/FairMOT: about the last ten detections count.
    pub momentum: f32,
}

impl Default for ReidConfig {
    fn default() -> Self {
        Self {
            window_ms: 10_000.0,
            min_similarity: 0.85,
            momentum: 0.9,
        }
    }
}

/// Settings of [`Tracker`]. Every field has a default; a JSON object may give
/// any subset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    /// How long a track may go undetected and still be re-associated by
    /// motion, ms. Default 1000: a short occlusion (a hand, a head turn, a
    /// person passing in front, a few missed detections) lasts under a second;
    /// this is DeepSORT's `max_age` of 30 frames at 30 fps, stated in time.
    /// Beyond it the constant-velocity prediction is no longer worth trusting.
    pub max_lost_ms: f64,
    /// IoU between predicted and detected box that admits a pair whatever
    /// the centre distance. Default 0.3, SORT's threshold.
    pub min_iou: f32,
    /// Centre distance from the prediction, in face sizes (`sqrt(w·h)`), that
    /// admits a pair even with a low IoU, before widening by the prediction's
    /// uncertainty. Default 1.0: covers small or fast faces whose boxes barely
    /// overlap between frames, while two distinct faces side by side are
    /// usually at least a face apart (and the optimal assignment settles the
    /// rest).
    pub max_center_distance: f32,
    /// Standard deviations of the predicted centre added to the gate radius.
    /// Default 3.0 (99.7 % of a Gaussian): the gate of a long-lost track grows
    /// as its position becomes uncertain.
    pub gate_sigmas: f32,
    /// Largest ratio of face sizes between prediction and detection. Default
    /// 1.5: detector boxes of one face vary by far less between frames, while a
    /// small background face next to a large one is kept apart.
    pub max_size_ratio: f32,
    /// Motion model noise.
    pub motion: MotionConfig,
    /// Appearance cue.
    pub reid: ReidConfig,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            max_lost_ms: 1000.0,
            min_iou: 0.3,
            max_center_distance: 1.0,
            gate_sigmas: 3.0,
            max_size_ratio: 1.5,
            motion: MotionConfig::default(),
            reid: ReidConfig::default(),
        }
    }
}

impl TrackerConfig {
    /// Checks every field is in its range.
    pub fn validate(&self) -> Result<(), TrackConfigError> {
        let inf = f64::INFINITY;
        let motion = &self.motion;
        check_range("max_lost_ms", self.max_lost_ms, 0.0, inf)?;
        check_range("min_iou", self.min_iou.into(), 0.0, 1.0)?;
        check_range(
            "max_center_distance",
            self.max_center_distance.into(),
            0.0,
            inf,
        )?;
        check_range("gate_sigmas", self.gate_sigmas.into(), 0.0, inf)?;
        check_range("max_size_ratio", self.max_size_ratio.into(), 1.0, inf)?;
        check_range("motion.measurement_std", motion.measurement_std, 1e-6, inf)?;
        check_range(
            "motion.initial_velocity_std",
            motion.initial_velocity_std,
            0.0,
            inf,
        )?;
        check_range(
            "motion.acceleration_noise",
            motion.acceleration_noise,
            0.0,
            inf,
        )?;
        check_range(
            "motion.size_acceleration_noise",
            motion.size_acceleration_noise,
            0.0,
            inf,
        )?;
        check_range("reid.window_ms", self.reid.window_ms, 0.0, inf)?;
        check_range(
            "reid.min_similarity",
            self.reid.min_similarity.into(),
            -1.0,
            1.0,
        )?;
        check_range("reid.momentum", self.reid.momentum.into(), 0.0, 1.0)
    }

    fn gate(&self) -> MotionGate {
        MotionGate {
            min_iou: self.min_iou,
            max_center_distance: self.max_center_distance,
            gate_sigmas: self.gate_sigmas,
            max_size_ratio: self.max_size_ratio,
        }
    }
}

/// How a detection got its track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Association {
    /// A new face: a fresh id.
    New,
    /// The track was seen on the previous frame.
    Tracked,
    /// The track was lost (unmatched on the previous frame, within
    /// `max_lost_ms`) and is found again by motion.
    Reassociated,
    /// The track was lost or retired and is found again by appearance.
    Reidentified,
}

/// The track of one detection of the frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackAssignment {
    /// Index of the detection in the slice given to [`Tracker::update`].
    pub detection: usize,
    pub track_id: u64,
    pub association: Association,
    /// Time since the track was last seen, ms (0 for a new track; about one
    /// frame interval for a tracked one).
    pub gap_ms: f64,
}

/// A live track: seen within `max_lost_ms`.
#[derive(Clone, Debug)]
struct Track {
    id: u64,
    filter: BoxFilter,
    /// Tracker-clock time the filter state refers to.
    filter_ms: f64,
    last_seen_ms: f64,
    /// True when the track had no detection at the most recent update.
    lost: bool,
    /// Unit-norm running mean of the appearance features, if any were given.
    appearance: Option<Vec<f32>>,
}

/// A retired track kept for re-identification by appearance.
#[derive(Clone, Debug)]
struct RetiredTrack {
    id: u64,
    last_seen_ms: f64,
    appearance: Vec<f32>,
}

/// Which kind of track a row of the appearance stage is.
#[derive(Clone, Copy, Debug)]
enum ReidRow {
    Live(usize),
    Retired(usize),
}

/// Follows faces across the frames of **one** source. See the module docs for
/// the steps; [`TrackerConfig`] for the settings.
///
/// Time: the tracker keeps its own clock, advanced by each positive step of
/// `pts_ms` between calls. Presentation times are monotonic per source, but if
/// one ever steps backwards (a live stream restarting) or is not finite, that
/// step counts as no time at all instead of confusing ages and predictions.
#[derive(Clone, Debug)]
pub struct Tracker {
    config: TrackerConfig,
    live: Vec<Track>,
    gallery: Vec<RetiredTrack>,
    retired_since_drain: Vec<u64>,
    next_id: u64,
    clock_ms: f64,
    last_pts_ms: Option<f64>,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Result<Self, TrackConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            live: Vec::new(),
            gallery: Vec::new(),
            retired_since_drain: Vec::new(),
            next_id: 1,
            clock_ms: 0.0,
            last_pts_ms: None,
        })
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Assigns a track to each detection of the frame at `pts_ms`, one
    /// [`TrackAssignment`] per detection, in detection order. No two
    /// detections of a frame share a track.
    ///
    /// `appearance`, when given, holds one feature vector per detection (the
    /// ViT's pooled feature: [detections][dim]); it enables recovery of lost and
    /// recently retired tracks by appearance.
    ///
    /// # Panics
    /// If `appearance` is given with a length other than `detections.len()`
    /// (a bug in the caller, not bad input).
    pub fn update(
        &mut self,
        pts_ms: f64,
        detections: &[FaceDetection],
        appearance: Option<&[Vec<f32>]>,
    ) -> Vec<TrackAssignment> {
        if let Some(features) = appearance {
            assert_eq!(
                features.len(),
                detections.len(),
                "Tracker::update: one appearance feature per detection"
            );
        }
        let now = self.advance_clock(pts_ms);
        for track in &mut self.live {
            track
                .filter
                .predict((now - track.filter_ms) / 1000.0, &self.config.motion);
            track.filter_ms = now;
        }
        self.retire_stale(now);

        let mut assignment: Vec<Option<TrackAssignment>> = vec![None; detections.len()];
        let mut track_taken = vec![false; self.live.len()];

        // Motion: all live tracks against all detections, jointly.
        let predicted: Vec<(BBox, f32)> = self
            .live
            .iter()
            .map(|track| (track.filter.bbox(), track.filter.centre_std() as f32))
            .collect();
        let detected: Vec<BBox> = detections.iter().map(|d| d.bbox).collect();
        let candidates = motion_candidates(&predicted, &detected, &self.config.gate());
        for (row, col) in max_affinity_matching(self.live.len(), detections.len(), &candidates) {
            let track = &mut self.live[row];
            let association = if track.lost {
                Association::Reassociated
            } else {
                Association::Tracked
            };
            let gap_ms = now - track.last_seen_ms;
            track
                .filter
                .update(&detections[col].bbox, &self.config.motion);
            track.last_seen_ms = now;
            track.lost = false;
            if let Some(features) = appearance {
                track.appearance = updated_appearance(
                    track.appearance.as_deref(),
                    &features[col],
                    self.config.reid.momentum,
                );
            }
            track_taken[row] = true;
            assignment[col] = Some(TrackAssignment {
                detection: col,
                track_id: track.id,
                association,
                gap_ms,
            });
        }

        // Appearance: what motion left, against lost and retired tracks.
        if let Some(features) = appearance {
            self.reidentify(now, detections, features, &mut assignment, &mut track_taken);
        }

        for (track, taken) in self.live.iter_mut().zip(&track_taken) {
            if !taken {
                track.lost = true;
            }
        }

        // New faces.
        for (col, slot) in assignment.iter_mut().enumerate() {
            if slot.is_none() {
                let id = self.next_id;
                self.next_id += 1;
                let appearance = appearance.and_then(|features| {
                    updated_appearance(None, &features[col], self.config.reid.momentum)
                });
                self.live.push(Track {
                    id,
                    filter: BoxFilter::new(&detections[col].bbox, &self.config.motion),
                    filter_ms: now,
                    last_seen_ms: now,
                    lost: false,
                    appearance,
                });
                *slot = Some(TrackAssignment {
                    detection: col,
                    track_id: id,
                    association: Association::New,
                    gap_ms: 0.0,
                });
            }
        }
        assignment
            .into_iter()
            .map(|a| a.expect("every detection assigned"))
            .collect()
    }

    /// Predicted boxes, at `pts_ms`, of the tracks that were detected at the
    /// most recent update (lost tracks are left out: where their face is, is
    /// too uncertain to refine), sorted by track id. This is what
    /// `--detect-every K` refines between full detections.
    pub fn predict(&self, pts_ms: f64) -> Vec<(u64, BBox)> {
        let now = self.clock_at(pts_ms);
        let mut boxes: Vec<(u64, BBox)> = self
            .live
            .iter()
            .filter(|track| !track.lost)
            .map(|track| {
                let mut filter = track.filter.clone();
                filter.predict((now - track.filter_ms) / 1000.0, &self.config.motion);
                (track.id, filter.bbox())
            })
            .collect();
        boxes.sort_by_key(|(id, _)| *id);
        boxes
    }

    /// Ids of the tracks retired since the last call (each retirement once;
    /// a track recovered by appearance and retired again is listed again).
    /// Use it to drop per-track state elsewhere, e.g.
    /// [`super::ProbabilitySmoother::forget`].
    pub fn drain_retired(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.retired_since_drain)
    }

    /// Retires every live track at once, because the next frame starts another
    /// shot (edited footage cut to another camera: see
    /// [`super::ShotCutDetector`]): no face of it may continue a track by
    /// motion, however its box overlaps one of the last shot. With appearance
    /// features a face can still be recovered by re-identification (an edit
    /// that cuts back to a person). Call it before [`Tracker::update`] of the
    /// frame after the cut.
    pub fn new_shot(&mut self) {
        for track in std::mem::take(&mut self.live) {
            self.retire(track);
        }
    }

    /// Number of live tracks (seen within `max_lost_ms`).
    pub fn live_tracks(&self) -> usize {
        self.live.len()
    }

    /// Advances the tracker clock to the frame at `pts_ms` and returns it.
    fn advance_clock(&mut self, pts_ms: f64) -> f64 {
        self.clock_ms = self.clock_at(pts_ms);
        if pts_ms.is_finite() {
            self.last_pts_ms = Some(pts_ms);
        }
        self.clock_ms
    }

    /// The tracker-clock time of `pts_ms`, without moving the clock.
    fn clock_at(&self, pts_ms: f64) -> f64 {
        match self.last_pts_ms {
            Some(last) if pts_ms.is_finite() && pts_ms > last => self.clock_ms + (pts_ms - last),
            _ => self.clock_ms,
        }
    }

    /// Moves tracks unseen for more than `max_lost_ms` out of the live set (into
    /// the gallery when they have an appearance), and forgets gallery entries
    /// older than the re-identification window.
    fn retire_stale(&mut self, now: f64) {
        let max_lost = self.config.max_lost_ms;
        let (stale, live): (Vec<Track>, Vec<Track>) = std::mem::take(&mut self.live)
            .into_iter()
            .partition(|t| now - t.last_seen_ms > max_lost);
        self.live = live;
        for track in stale {
            self.retire(track);
        }
        let window = self.config.reid.window_ms;
        self.gallery.retain(|t| now - t.last_seen_ms <= window);
    }

    /// Reports `track` as retired and keeps it in the gallery if it has an
    /// appearance.
    fn retire(&mut self, track: Track) {
        self.retired_since_drain.push(track.id);
        if let Some(appearance) = track.appearance {
            self.gallery.push(RetiredTrack {
                id: track.id,
                last_seen_ms: track.last_seen_ms,
                appearance,
            });
        }
    }

    /// Matches unassigned detections to lost live tracks and gallery tracks by
    /// appearance (cosine similarity ≥ `reid.min_similarity`, optimal
    /// assignment). A recovered gallery track comes back to life with its old
    /// id and a new motion filter.
    fn reidentify(
        &mut self,
        now: f64,
        detections: &[FaceDetection],
        features: &[Vec<f32>],
        assignment: &mut [Option<TrackAssignment>],
        track_taken: &mut Vec<bool>,
    ) {
        let open: Vec<usize> = (0..detections.len())
            .filter(|&c| assignment[c].is_none())
            .collect();
        if open.is_empty() {
            return;
        }
        let mut rows: Vec<(ReidRow, &[f32])> = Vec::new();
        for (i, track) in self.live.iter().enumerate() {
            if track.lost
                && !track_taken[i]
                && let Some(a) = &track.appearance
            {
                rows.push((ReidRow::Live(i), a));
            }
        }
        for (i, retired) in self.gallery.iter().enumerate() {
            rows.push((ReidRow::Retired(i), &retired.appearance));
        }
        let min_similarity = self.config.reid.min_similarity;
        let mut candidates = Vec::new();
        for (row, (_, track_feature)) in rows.iter().enumerate() {
            for (col, &det) in open.iter().enumerate() {
                if let Some(similarity) = cosine_similarity(track_feature, &features[det])
                    && similarity >= min_similarity
                {
                    // Shifted into (0, 2] so a similarity ≤ 0 (possible with a
                    // negative threshold) still counts as admissible.
                    candidates.push(Candidate {
                        row,
                        col,
                        affinity: 1.0 + similarity.max(-1.0 + 1e-6),
                    });
                }
            }
        }
        let matches = max_affinity_matching(rows.len(), open.len(), &candidates);
        let rows: Vec<ReidRow> = rows.into_iter().map(|(r, _)| r).collect();
        let momentum = self.config.reid.momentum;
        let mut revived = Vec::new();
        for (row, col) in matches {
            let det = open[col];
            let (id, gap_ms) = match rows[row] {
                ReidRow::Live(i) => {
                    let track = &mut self.live[i];
                    let gap_ms = now - track.last_seen_ms;
                    // The prediction was wrong (the motion gate refused it):
                    // restart the filter at the detection.
                    track.filter = BoxFilter::new(&detections[det].bbox, &self.config.motion);
                    track.filter_ms = now;
                    track.last_seen_ms = now;
                    track.lost = false;
                    track.appearance =
                        updated_appearance(track.appearance.as_deref(), &features[det], momentum);
                    track_taken[i] = true;
                    (track.id, gap_ms)
                }
                ReidRow::Retired(i) => {
                    let retired = &self.gallery[i];
                    revived.push(i);
                    self.live.push(Track {
                        id: retired.id,
                        filter: BoxFilter::new(&detections[det].bbox, &self.config.motion),
                        filter_ms: now,
                        last_seen_ms: now,
                        lost: false,
                        appearance: updated_appearance(
                            Some(&retired.appearance),
                            &features[det],
                            momentum,
                        ),
                    });
                    track_taken.push(true);
                    (retired.id, now - retired.last_seen_ms)
                }
            };
            assignment[det] = Some(TrackAssignment {
                detection: det,
                track_id: id,
                association: Association::Reidentified,
                gap_ms,
            });
        }
        revived.sort_unstable();
        for i in revived.into_iter().rev() {
            self.gallery.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32, y: f32, side: f32) -> FaceDetection {
        FaceDetection {
            bbox: BBox {
                x1: x,
                y1: y,
                x2: x + side,
                y2: y + side,
            },
            score: 0.99,
            landmarks: [[0.0; 2]; 5],
        }
    }

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        TrackerConfig::default().validate().unwrap();
        let bad = TrackerConfig {
            min_iou: 1.5,
            ..TrackerConfig::default()
        };
        let err = Tracker::new(bad).unwrap_err();
        assert!(err.to_string().contains("min_iou"), "{err}");
        let bad = TrackerConfig {
            max_lost_ms: f64::NAN,
            ..TrackerConfig::default()
        };
        assert!(
            Tracker::new(bad)
                .unwrap_err()
                .to_string()
                .contains("max_lost_ms")
        );
    }

    #[test]
    fn config_reads_partial_json_and_rejects_unknown_fields() {
        let c: TrackerConfig =
            serde_json::from_str(r#"{"max_lost_ms": 500, "reid": {"window_ms": 2000}}"#).unwrap();
        assert_eq!(c.max_lost_ms, 500.0);
        assert_eq!(c.reid.window_ms, 2000.0);
        assert_eq!(c.min_iou, TrackerConfig::default().min_iou);
        assert!(serde_json::from_str::<TrackerConfig>(r#"{"max_lost": 500}"#).is_err());
    }

    #[test]
    fn a_still_face_keeps_its_id_and_the_first_is_one() {
        let mut t = Tracker::new(TrackerConfig::default()).unwrap();
        let first = t.update(0.0, &[face(10.0, 10.0, 50.0)], None);
        assert_eq!(first[0].track_id, 1);
        assert_eq!(first[0].association, Association::New);
        let second = t.update(33.0, &[face(11.0, 10.0, 50.0)], None);
        assert_eq!(second[0].track_id, 1);
        assert_eq!(second[0].association, Association::Tracked);
        assert_eq!(second[0].gap_ms, 33.0);
    }

    #[test]
    fn a_track_is_retired_after_max_lost_ms_and_reported_once() {
        let mut t = Tracker::new(TrackerConfig::default()).unwrap();
        t.update(0.0, &[face(10.0, 10.0, 50.0)], None);
        t.update(1000.0, &[], None);
        assert_eq!(t.live_tracks(), 1);
        assert!(t.drain_retired().is_empty());
        t.update(1001.0, &[], None);
        assert_eq!(t.live_tracks(), 0);
        assert_eq!(t.drain_retired(), vec![1]);
        assert!(t.drain_retired().is_empty());
        let again = t.update(1034.0, &[face(10.0, 10.0, 50.0)], None);
        assert_eq!(again[0].track_id, 2);
    }

    #[test]
    fn backwards_timestamps_count_as_no_time() {
        let mut t = Tracker::new(TrackerConfig::default()).unwrap();
        t.update(5000.0, &[face(10.0, 10.0, 50.0)], None);
        // The stream restarts at 0: 900 ms of real progress after the jump.
        t.update(0.0, &[], None);
        t.update(900.0, &[], None);
        let back = t.update(f64::NAN, &[face(10.0, 10.0, 50.0)], None);
        assert_eq!(back[0].track_id, 1);
        assert_eq!(back[0].association, Association::Reassociated);
        assert_eq!(back[0].gap_ms, 900.0);
    }

    #[test]
    fn predict_follows_the_velocity_and_skips_lost_tracks() {
        let mut t = Tracker::new(TrackerConfig::default()).unwrap();
        for k in 0..20 {
            let x = 100.0 + 3.0 * k as f32;
            t.update(
                k as f64 * 33.0,
                &[face(x, 50.0, 40.0), face(400.0, 50.0, 40.0)],
                None,
            );
        }
        // Face 2 goes missing: only face 1 is predicted.
        t.update(20.0 * 33.0, &[face(160.0, 50.0, 40.0)], None);
        let p = t.predict(21.0 * 33.0);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, 1);
        assert!((p[0].1.x1 - 163.0).abs() < 1.0, "{:?}", p[0].1);
    }

    #[test]
    fn after_a_new_shot_overlapping_faces_get_new_ids() {
        let mut t = Tracker::new(TrackerConfig::default()).unwrap();
        t.update(0.0, &[face(10.0, 10.0, 50.0)], None);
        t.update(33.0, &[face(10.0, 10.0, 50.0)], None);
        t.new_shot();
        assert_eq!(t.drain_retired(), vec![1]);
        let after = t.update(66.0, &[face(12.0, 10.0, 50.0)], None);
        assert_eq!(
            (after[0].track_id, after[0].association),
            (2, Association::New)
        );
    }

    #[test]
    #[should_panic(expected = "one appearance feature per detection")]
    fn appearance_of_the_wrong_length_is_a_caller_bug() {
        let mut t = Tracker::new(TrackerConfig::default()).unwrap();
        t.update(0.0, &[face(0.0, 0.0, 10.0)], Some(&[]));
    }
}
