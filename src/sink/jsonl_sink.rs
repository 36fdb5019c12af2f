//! JSON Lines (`--format jsonl`): one object per row, the CSV's fields under the same
//! names, except `landmarks` (an array of five `[x, y]`) and `probs` /
//! `smooth_probs` (objects class → probability, in the model's class order). Absent
//! values are `null`; numbers are rounded like the CSV's.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::rows::{
    ANGLE_DECIMALS, LATENCY_DECIMALS, PIXEL_DECIMALS, PROB_DECIMALS, PTS_DECIMALS, Row,
    SCORE_DECIMALS, TableLayout, frame_rows, round_to,
};
use super::{OrderGuard, Sink, SinkError, open_output};
use crate::record::FrameResult;

pub struct JsonlSink {
    out: Box<dyn Write + Send>,
    /// The lines of one frame, built in memory and written with one call, so that a
    /// reader (or a kill) never sees part of a line.
    frame_bytes: Vec<u8>,
    target: String,
    layout: TableLayout,
    order: OrderGuard,
    closed: bool,
}

impl JsonlSink {
    /// A JSON Lines file at `path` (`-`: standard output).
    pub fn create(path: &Path, class_names: &[String], smoothed: bool) -> Result<Self, SinkError> {
        let layout = TableLayout::new(class_names, smoothed)?;
        let (out, target) = open_output(path)?;
        Ok(Self::from_writer(out, target, layout))
    }

    /// JSON Lines written to any writer (`target` names it in errors).
    pub fn from_writer(out: Box<dyn Write + Send>, target: String, layout: TableLayout) -> Self {
        Self {
            out,
            frame_bytes: Vec::new(),
            target,
            layout,
            order: OrderGuard::default(),
            closed: false,
        }
    }

    fn io(&mut self, e: std::io::Error) -> SinkError {
        let err = SinkError::from_io(&self.target, e);
        if matches!(err, SinkError::Closed) {
            self.closed = true;
        }
        err
    }
}

/// Serializes one row as a JSON object with fields in column order.
struct JsonRow<'a> {
    row: &'a Row<'a>,
    layout: &'a TableLayout,
}

/// Class → probability, in class order.
struct Probs<'a> {
    names: &'a [String],
    values: &'a [f32],
}

impl Serialize for Probs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.names.len()))?;
        for (name, p) in self.names.iter().zip(self.values) {
            map.serialize_entry(name, &round_to(*p as f64, PROB_DECIMALS))?;
        }
        map.end()
    }
}

impl Serialize for JsonRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.row;
        let f = r.face.as_ref();
        let px = |v: f32| round_to(v as f64, PIXEL_DECIMALS);
        let prob = |v: f32| round_to(v as f64, PROB_DECIMALS);
        let names = self.layout.class_names();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("source", r.source)?;
        m.serialize_entry("frame", &r.frame)?;
        m.serialize_entry("pts_ms", &round_to(r.pts_ms, PTS_DECIMALS))?;
        m.serialize_entry("status", r.status)?;
        m.serialize_entry("face", &f.map(|f| f.face))?;
        m.serialize_entry("face_count", &r.face_count)?;
        m.serialize_entry("track_id", &f.and_then(|f| f.track_id))?;
        for (k, name) in ["x", "y", "w", "h"].iter().enumerate() {
            m.serialize_entry(name, &f.map(|f| px(f.xywh[k])))?;
        }
        m.serialize_entry(
            "det_score",
            &f.map(|f| round_to(f.det_score as f64, SCORE_DECIMALS)),
        )?;
        let landmarks = f.map(|f| f.landmarks.map(|[x, y]| [px(x), px(y)]));
        m.serialize_entry("landmarks", &landmarks)?;
        let pose = f.and_then(|f| f.pose);
        let angle = |a: f32| round_to(f64::from(a), ANGLE_DECIMALS);
        m.serialize_entry("yaw", &pose.map(|p| angle(p.yaw)))?;
        m.serialize_entry("pitch", &pose.map(|p| angle(p.pitch)))?;
        m.serialize_entry("roll", &pose.map(|p| angle(p.roll)))?;
        m.serialize_entry("label", &f.map(|f| f.label))?;
        m.serialize_entry("confidence", &f.map(|f| prob(f.confidence)))?;
        m.serialize_entry(
            "probs",
            &f.map(|f| Probs {
                names,
                values: f.probs,
            }),
        )?;
        if self.layout.smoothed() {
            let sm = f.and_then(|f| f.smoothed);
            m.serialize_entry("smooth_label", &sm.map(|s| s.0))?;
            m.serialize_entry("smooth_confidence", &sm.map(|s| prob(s.1)))?;
            m.serialize_entry("smooth_probs", &sm.map(|s| Probs { names, values: s.2 }))?;
        }
        m.serialize_entry(
            "latency_ms",
            &r.latency_ms.map(|l| round_to(l, LATENCY_DECIMALS)),
        )?;
        m.end()
    }
}

impl Sink for JsonlSink {
    fn write(&mut self, result: &FrameResult) -> Result<(), SinkError> {
        if self.closed {
            return Err(SinkError::Closed);
        }
        self.order.check(result)?;
        self.frame_bytes.clear();
        for row in frame_rows(result, &self.layout)? {
            let json = JsonRow {
                row: &row,
                layout: &self.layout,
            };
            // Serializing into memory fails only for non-string map keys: a bug.
            serde_json::to_writer(&mut self.frame_bytes, &json).map_err(|e| SinkError::Write {
                target: self.target.clone(),
                source: std::io::Error::other(e),
            })?;
            self.frame_bytes.push(b'\n');
        }
        let written = self
            .out
            .write_all(&self.frame_bytes)
            .and_then(|()| self.out.flush());
        written.map_err(|e| self.io(e))
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        if self.closed {
            return Ok(());
        }
        self.out.flush().map_err(|e| self.io(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::FrameStatus;
    use crate::sink::test_support::*;
    use serde_json::Value;

    /// The parsed objects, and the file's text.
    fn write_all(smoothed: bool, results: &[FrameResult]) -> (Vec<Value>, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut s = JsonlSink::create(&path, &classes(), smoothed).unwrap();
        for r in results {
            s.write(r).unwrap();
            // Flushed per frame: the file already holds complete lines.
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.ends_with('\n'));
        }
        s.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        (
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            text,
        )
    }

    #[test]
    fn objects_carry_the_csv_fields_with_arrays_and_class_maps() {
        let (rows, text) = write_all(
            true,
            &[
                result(
                    0,
                    FrameStatus::Analyzed,
                    vec![face(0, 5.0, [0.1, 0.7, 0.2], Some([0.6, 0.3, 0.1]))],
                ),
                result(1, FrameStatus::Skipped, vec![]),
                result(
                    2,
                    FrameStatus::Analyzed,
                    vec![
                        face(0, 5.0, [0.1, 0.7, 0.2], None),
                        face(1, 50.0, [0.9, 0.05, 0.05], None),
                    ],
                ),
            ],
        );
        assert_eq!(rows.len(), 4);
        let r = &rows[0];
        assert_eq!(r["source"], "clip.mp4");
        assert_eq!(r["frame"], 0);
        assert_eq!(r["face"], 0);
        assert_eq!(r["face_count"], 1);
        assert_eq!(r["track_id"], 7);
        assert_eq!(r["x"], 5.0);
        assert_eq!(r["w"], 40.5);
        assert_eq!(r["det_score"], 0.9988);
        assert_eq!(r["landmarks"][4], serde_json::json!([19.0, 22.0]));
        assert_eq!(r["label"], "happiness");
        assert_eq!(r["confidence"], 0.7);
        assert_eq!(
            r["probs"],
            serde_json::json!({"neutral": 0.1, "happiness": 0.7, "surprise": 0.2})
        );
        assert_eq!(r["smooth_label"], "neutral");
        assert_eq!(r["latency_ms"], 12.5);
        // Field order follows the CSV columns.
        let first = text.lines().next().unwrap();
        assert!(first.starts_with(
            "{\"source\":\"clip.mp4\",\"frame\":0,\"pts_ms\":0.0,\"status\":\"analyzed\""
        ));
        assert!(first.find("\"probs\"").unwrap() < first.find("\"smooth_label\"").unwrap());
        assert!(first.ends_with("\"latency_ms\":12.5}"));

        let skipped = &rows[1];
        assert_eq!(skipped["status"], "skipped");
        assert_eq!(skipped["face_count"], 0);
        assert!(
            skipped["face"].is_null()
                && skipped["probs"].is_null()
                && skipped["latency_ms"].is_null()
        );
        assert_eq!(rows[2]["frame"], 2);
        assert_eq!(rows[3]["face"], 1);
        assert!(rows[2]["smooth_label"].is_null());
    }

    #[test]
    fn without_smoothing_there_are_no_smooth_fields() {
        let (rows, _) = write_all(false, &[result(0, FrameStatus::Analyzed, vec![])]);
        assert!(rows[0].get("smooth_label").is_none());
        assert!(rows[0]["label"].is_null());
    }
}
