//! The table both CSV and JSON Lines write: which columns, and the rows of one frame.
//!
//! Columns, in order:
//! `source, frame, pts_ms, status, face, face_count, track_id, x, y, w, h, det_score,
//! lm0_x, lm0_y, …, lm4_x, lm4_y, yaw, pitch, roll, label, confidence, <one per class>`,
//! then, when the
//! layout has smoothed values, `smooth_label, smooth_confidence, smooth_<class>…`, and
//! `latency_ms` last. `x, y` is the box's top-left corner, `w, h` its size, in pixels
//! of the (upright) frame. A row of a frame without a face, or of a skipped frame, has
//! `face_count` 0 and every face column empty.
//!
//! `yaw, pitch, roll`: head pose in degrees ([`crate::head_pose`] gives the signs).
//!
//! Fixed precisions: times 3 decimals (µs), pixels 2, angles 2, detector score 4,
//! probabilities 5, latency 2.

use crate::geometry::Landmarks;
use crate::head_pose::HeadPose;
use crate::record::{FaceResult, FrameResult, FrameStatus, argmax};

use super::SinkError;

pub(crate) const PTS_DECIMALS: usize = 3;
pub(crate) const PIXEL_DECIMALS: usize = 2;
pub(crate) const ANGLE_DECIMALS: usize = 2;
pub(crate) const SCORE_DECIMALS: usize = 4;
pub(crate) const PROB_DECIMALS: usize = 5;
pub(crate) const LATENCY_DECIMALS: usize = 2;

const LEADING_COLUMNS: &[&str] = &[
    "source",
    "frame",
    "pts_ms",
    "status",
    "face",
    "face_count",
    "track_id",
    "x",
    "y",
    "w",
    "h",
    "det_score",
];

/// The columns of a table: fixed ones plus one per class of the model.
#[derive(Clone, Debug, PartialEq)]
pub struct TableLayout {
    class_names: Vec<String>,
    smoothed: bool,
}

impl TableLayout {
    /// `class_names`: the model's classes in its output order (each becomes a column);
    /// `smoothed`: add the `smooth_*` columns (the tracker's smoothed probabilities).
    pub fn new(class_names: &[String], smoothed: bool) -> Result<Self, SinkError> {
        if class_names.is_empty() {
            return Err(SinkError::ClassNames("the model has no classes".into()));
        }
        let layout = Self {
            class_names: class_names.to_vec(),
            smoothed,
        };
        let header = layout.header();
        for (i, name) in header.iter().enumerate() {
            if name.trim().is_empty() {
                return Err(SinkError::ClassNames("a class name is empty".into()));
            }
            if header[..i].contains(name) {
                return Err(SinkError::ClassNames(format!(
                    "column {name:?} would appear twice"
                )));
            }
        }
        Ok(layout)
    }

    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    pub fn smoothed(&self) -> bool {
        self.smoothed
    }

    /// The column names, in order.
    pub fn header(&self) -> Vec<String> {
        let mut h: Vec<String> = LEADING_COLUMNS.iter().map(|s| s.to_string()).collect();
        for k in 0..5 {
            h.push(format!("lm{k}_x"));
            h.push(format!("lm{k}_y"));
        }
        h.extend(["yaw", "pitch", "roll"].map(String::from));
        h.push("label".into());
        h.push("confidence".into());
        h.extend(self.class_names.iter().cloned());
        if self.smoothed {
            h.push("smooth_label".into());
            h.push("smooth_confidence".into());
            h.extend(self.class_names.iter().map(|c| format!("smooth_{c}")));
        }
        h.push("latency_ms".into());
        h
    }
}

/// One row, typed; CSV formats it as text, JSON Lines as an object.
#[derive(Clone, Debug)]
pub(crate) struct Row<'a> {
    pub source: &'a str,
    pub frame: u64,
    pub pts_ms: f64,
    pub status: &'static str,
    pub face_count: usize,
    pub face: Option<FaceRow<'a>>,
    pub latency_ms: Option<f64>,
}

#[derive(Clone, Debug)]
pub(crate) struct FaceRow<'a> {
    pub face: usize,
    pub track_id: Option<u64>,
    /// Top-left corner and size.
    pub xywh: [f32; 4],
    pub det_score: f32,
    pub landmarks: Landmarks,
    pub pose: Option<HeadPose>,
    pub label: &'a str,
    pub confidence: f32,
    pub probs: &'a [f32],
    /// Label, confidence and probabilities of the smoothed track, when the layout has
    /// smoothed columns and the face has smoothed values.
    pub smoothed: Option<(&'a str, f32, &'a [f32])>,
}

pub(crate) fn status_name(status: FrameStatus) -> &'static str {
    match status {
        FrameStatus::Analyzed => "analyzed",
        FrameStatus::Skipped => "skipped",
    }
}

/// The rows of one frame: one per face, or a single face-less row.
pub(crate) fn frame_rows<'a>(
    r: &'a FrameResult,
    layout: &'a TableLayout,
) -> Result<Vec<Row<'a>>, SinkError> {
    let base = Row {
        source: r.source.as_str(),
        frame: r.index,
        pts_ms: r.pts_ms,
        status: status_name(r.status),
        face_count: r.faces.len(),
        face: None,
        latency_ms: r.latency_ms,
    };
    if r.faces.is_empty() {
        return Ok(vec![base]);
    }
    r.faces
        .iter()
        .map(|f| {
            Ok(Row {
                face: Some(face_row(r, f, layout)?),
                ..base.clone()
            })
        })
        .collect()
}

fn face_row<'a>(
    r: &FrameResult,
    f: &'a FaceResult,
    layout: &'a TableLayout,
) -> Result<FaceRow<'a>, SinkError> {
    let n = layout.class_names.len();
    let bad = |reason: String| SinkError::BadResult {
        input: r.source.to_string(),
        frame: r.index,
        reason,
    };
    if f.probs.len() != n {
        return Err(bad(format!(
            "face {} has {} probabilities for {n} classes",
            f.face,
            f.probs.len()
        )));
    }
    let (best, confidence) = argmax(&f.probs);
    let smoothed = match (&f.smoothed, layout.smoothed) {
        (Some(s), true) => {
            if s.len() != n {
                return Err(bad(format!(
                    "face {} has {} smoothed probabilities for {n} classes",
                    f.face,
                    s.len()
                )));
            }
            let (sb, sc) = argmax(s);
            Some((layout.class_names[sb].as_str(), sc, s.as_slice()))
        }
        _ => None,
    };
    let b = f.detection.bbox;
    Ok(FaceRow {
        face: f.face,
        track_id: f.track_id,
        xywh: [b.x1, b.y1, b.width(), b.height()],
        det_score: f.detection.score,
        landmarks: f.detection.landmarks,
        pose: f.pose,
        label: layout.class_names[best].as_str(),
        confidence,
        probs: &f.probs,
        smoothed,
    })
}

/// `v` rounded to `decimals` places, for JSON numbers that read like the CSV's.
pub(crate) fn round_to(v: f64, decimals: usize) -> f64 {
    let scale = 10f64.powi(decimals as i32);
    (v * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::test_support::*;

    #[test]
    fn header_lists_fixed_columns_classes_and_latency_last() {
        let layout = TableLayout::new(&classes(), false).unwrap();
        let h = layout.header();
        assert_eq!(&h[..12], LEADING_COLUMNS);
        assert_eq!(&h[12..14], ["lm0_x", "lm0_y"]);
        assert_eq!(
            &h[20..29],
            [
                "lm4_x",
                "lm4_y",
                "yaw",
                "pitch",
                "roll",
                "label",
                "confidence",
                "neutral",
                "happiness"
            ]
        );
        assert_eq!(h.last().unwrap(), "latency_ms");
        assert_eq!(h.len(), 12 + 10 + 3 + 2 + 3 + 1);
        let smooth = TableLayout::new(&classes(), true).unwrap().header();
        assert_eq!(
            &smooth[30..35],
            [
                "smooth_label",
                "smooth_confidence",
                "smooth_neutral",
                "smooth_happiness",
                "smooth_surprise"
            ]
        );
    }

    #[test]
    fn class_names_that_collide_with_columns_are_refused() {
        let names = vec!["label".to_string(), "x".to_string()];
        assert!(matches!(
            TableLayout::new(&names, false),
            Err(SinkError::ClassNames(_))
        ));
        let dup = vec!["a".to_string(), "a".to_string()];
        assert!(TableLayout::new(&dup, false).is_err());
        assert!(TableLayout::new(&[], false).is_err());
    }

    #[test]
    fn one_row_per_face_or_one_faceless_row() {
        let layout = TableLayout::new(&classes(), true).unwrap();
        let two = result(
            3,
            FrameStatus::Analyzed,
            vec![
                face(0, 5.0, [0.1, 0.7, 0.2], Some([0.2, 0.3, 0.5])),
                face(1, 100.0, [0.6, 0.3, 0.1], None),
            ],
        );
        let rows = frame_rows(&two, &layout).unwrap();
        assert_eq!(rows.len(), 2);
        let f0 = rows[0].face.as_ref().unwrap();
        assert_eq!((f0.label, f0.confidence), ("happiness", 0.7));
        assert_eq!(f0.xywh, [5.0, 10.25, 40.5, 49.75]);
        assert_eq!(f0.smoothed.map(|s| (s.0, s.1)), Some(("surprise", 0.5)));
        assert!(rows[1].face.as_ref().unwrap().smoothed.is_none());
        assert!(rows.iter().all(|r| r.face_count == 2));

        let none = result(4, FrameStatus::Analyzed, vec![]);
        let rows = frame_rows(&none, &layout).unwrap();
        assert_eq!(rows.len(), 1);
        assert!(rows[0].face.is_none());
        assert_eq!(rows[0].face_count, 0);

        let skipped = result(5, FrameStatus::Skipped, vec![]);
        assert_eq!(frame_rows(&skipped, &layout).unwrap()[0].status, "skipped");
    }

    #[test]
    fn wrong_probability_count_is_reported_not_written() {
        let layout = TableLayout::new(&classes(), false).unwrap();
        let mut r = result(
            0,
            FrameStatus::Analyzed,
            vec![face(0, 5.0, [0.1, 0.7, 0.2], None)],
        );
        r.faces[0].probs.pop();
        assert!(matches!(
            frame_rows(&r, &layout),
            Err(SinkError::BadResult { .. })
        ));
    }

    #[test]
    fn argmax_ignores_nan() {
        assert_eq!(argmax(&[f32::NAN, 0.2, 0.5, 0.3]), (2, 0.5));
        assert_eq!(round_to(0.123456, 4), 0.1235);
    }
}
