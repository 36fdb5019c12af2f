//! Tracks and counts from a results file: what the page shows.

use std::collections::{BTreeSet, HashMap};

use super::results::Results;

/// The face a track is shown by: its highest detection score.
#[derive(Clone, Debug, PartialEq)]
pub struct BestFace {
    pub frame: u64,
    pub xywh: [f32; 4],
    pub det_score: f32,
}

/// One person (one track of one input).
#[derive(Clone, Debug, PartialEq)]
pub struct TrackSummary {
    pub source: String,
    /// The tracker's id; `None` groups the faces of a run made with `--no-track` by
    /// their position in the frame.
    pub track_id: Option<u64>,
    pub face_position: u32,
    pub rows: usize,
    pub first_ms: f64,
    pub last_ms: f64,
    pub best: BestFace,
    /// `(pts_ms, probabilities)`: the smoothed ones where the run has them.
    pub timeline: Vec<(f64, Vec<f32>)>,
    /// Share of the track's frames with each label (smoothed where available), in the
    /// classes' order.
    pub label_share: Vec<f64>,
}

impl TrackSummary {
    pub fn title(&self) -> String {
        match self.track_id {
            Some(id) => format!("track {id}"),
            None => format!("face {} (no tracking)", self.face_position),
        }
    }
}

/// The whole run.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportSummary {
    pub classes: Vec<String>,
    pub sources: Vec<String>,
    pub frames: u64,
    pub skipped_frames: u64,
    pub faces: u64,
    /// Face rows per label (smoothed where available), in the classes' order.
    pub label_counts: Vec<u64>,
    pub tracks: Vec<TrackSummary>,
}

/// Groups the rows into tracks and counts.
pub fn summarise(results: &Results) -> ReportSummary {
    let classes = &results.classes;
    let class_index: HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let mut sources: Vec<String> = Vec::new();
    let mut frames = BTreeSet::new();
    let mut skipped = 0u64;
    let mut faces = 0u64;
    let mut label_counts = vec![0u64; classes.len()];
    let mut tracks: Vec<TrackSummary> = Vec::new();
    let mut track_of: HashMap<(String, Option<u64>, u32), usize> = HashMap::new();
    for row in &results.rows {
        if !sources.contains(&row.source) {
            sources.push(row.source.clone());
        }
        if frames.insert((row.source.clone(), row.frame)) && row.skipped {
            skipped += 1;
        }
        let Some(face) = &row.face else { continue };
        faces += 1;
        let label = face.smooth_label.as_deref().unwrap_or(&face.label);
        let class = class_index.get(label).copied();
        if let Some(c) = class {
            label_counts[c] += 1;
        }
        let position = if face.track_id.is_some() {
            0
        } else {
            face.face
        };
        let key = (row.source.clone(), face.track_id, position);
        let index = *track_of.entry(key).or_insert_with(|| {
            tracks.push(TrackSummary {
                source: row.source.clone(),
                track_id: face.track_id,
                face_position: position,
                rows: 0,
                first_ms: row.pts_ms,
                last_ms: row.pts_ms,
                best: BestFace {
                    frame: row.frame,
                    xywh: face.xywh,
                    det_score: f32::NEG_INFINITY,
                },
                timeline: Vec::new(),
                label_share: vec![0.0; classes.len()],
            });
            tracks.len() - 1
        });
        let track = &mut tracks[index];
        track.rows += 1;
        track.last_ms = row.pts_ms;
        if face.det_score > track.best.det_score {
            track.best = BestFace {
                frame: row.frame,
                xywh: face.xywh,
                det_score: face.det_score,
            };
        }
        let probs = face
            .smooth_probs
            .clone()
            .unwrap_or_else(|| face.probs.clone());
        track.timeline.push((row.pts_ms, probs));
        if let Some(c) = class {
            track.label_share[c] += 1.0;
        }
    }
    for t in &mut tracks {
        let n = t.rows.max(1) as f64;
        t.label_share.iter_mut().for_each(|s| *s /= n);
    }
    ReportSummary {
        classes: classes.clone(),
        sources,
        frames: frames.len() as u64,
        skipped_frames: skipped,
        faces,
        label_counts,
        tracks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::results::{FaceColumns, ResultRow};

    fn row(frame: u64, track: Option<u64>, score: f32, label: &str) -> ResultRow {
        ResultRow {
            source: "a.mp4".into(),
            frame,
            pts_ms: frame as f64 * 40.0,
            skipped: false,
            face: Some(FaceColumns {
                face: 0,
                track_id: track,
                xywh: [1.0, 2.0, 3.0, 4.0],
                det_score: score,
                label: label.into(),
                probs: if label == "a" {
                    vec![0.9, 0.1]
                } else {
                    vec![0.2, 0.8]
                },
                smooth_label: None,
                smooth_probs: None,
            }),
        }
    }

    #[test]
    fn tracks_keep_their_best_face_and_label_shares() {
        let results = Results {
            path: "r.csv".into(),
            classes: vec!["a".into(), "b".into()],
            rows: vec![
                row(0, Some(1), 0.9, "a"),
                row(1, Some(1), 0.99, "b"),
                row(1, Some(2), 0.95, "a"),
                row(2, Some(1), 0.97, "a"),
                ResultRow {
                    source: "a.mp4".into(),
                    frame: 3,
                    pts_ms: 120.0,
                    skipped: true,
                    face: None,
                },
            ],
        };
        let s = summarise(&results);
        assert_eq!((s.frames, s.skipped_frames, s.faces), (4, 1, 4));
        assert_eq!(s.label_counts, vec![3, 1]);
        assert_eq!(s.tracks.len(), 2);
        let t1 = &s.tracks[0];
        assert_eq!(
            (t1.title().as_str(), t1.rows, t1.best.frame),
            ("track 1", 3, 1)
        );
        assert!((t1.label_share[0] - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(t1.timeline.len(), 3);
        assert_eq!((t1.first_ms, t1.last_ms), (0.0, 80.0));
    }
}
