//! Reading back what `mimic analyze` wrote (CSV or JSON Lines) as typed rows.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

/// The face columns of one row (absent for a frame without a face).
#[derive(Clone, Debug, PartialEq)]
pub struct FaceColumns {
    pub face: u32,
    pub track_id: Option<u64>,
    /// `x, y, w, h` in frame pixels.
    pub xywh: [f32; 4],
    pub det_score: f32,
    pub label: String,
    /// In the classes' order.
    pub probs: Vec<f32>,
    pub smooth_label: Option<String>,
    pub smooth_probs: Option<Vec<f32>>,
}

/// One row of a results file.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultRow {
    pub source: String,
    pub frame: u64,
    pub pts_ms: f64,
    pub skipped: bool,
    pub face: Option<FaceColumns>,
}

/// A whole results file.
#[derive(Clone, Debug, PartialEq)]
pub struct Results {
    pub path: PathBuf,
    pub classes: Vec<String>,
    pub rows: Vec<ResultRow>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a results file of mimic analyze: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
    #[error("{}:{line}: {reason}", path.display())]
    Row {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Reads a `.csv` or `.jsonl` results file.
pub fn read_results(path: &Path) -> Result<Results, ResultsError> {
    let jsonl = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson"));
    if jsonl {
        read_jsonl(path)
    } else {
        read_csv(path)
    }
}

fn read_csv(path: &Path) -> Result<Results, ResultsError> {
    let format = |reason: String| ResultsError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let mut reader = csv::Reader::from_path(path).map_err(|e| format(e.to_string()))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format(e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    let at: HashMap<&str, usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let col = |name: &str| {
        at.get(name)
            .copied()
            .ok_or_else(|| format(format!("no {name} column")))
    };
    let first_class = col("confidence")? + 1;
    let end = at
        .get("smooth_label")
        .or_else(|| at.get("latency_ms"))
        .copied()
        .unwrap_or(header.len());
    let classes = header[first_class..end].to_vec();
    if classes.is_empty() {
        return Err(format("no class columns".into()));
    }
    let smooth: Option<Vec<usize>> = at.get("smooth_label").map(|_| {
        classes
            .iter()
            .filter_map(|c| at.get(format!("smooth_{c}").as_str()).copied())
            .collect()
    });
    let [
        source,
        frame,
        pts,
        status,
        face,
        track,
        x,
        y,
        w,
        h,
        score,
        label,
    ] = [
        "source",
        "frame",
        "pts_ms",
        "status",
        "face",
        "track_id",
        "x",
        "y",
        "w",
        "h",
        "det_score",
        "label",
    ]
    .map(|n| col(n));
    let (source, frame, pts, status, face, track) = (source?, frame?, pts?, status?, face?, track?);
    let (x, y, w, h, score, label) = (x?, y?, w?, h?, score?, label?);
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let bad = |reason: String| ResultsError::Row {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let record = record.map_err(|e| bad(e.to_string()))?;
        let get = |k: usize| record.get(k).unwrap_or("");
        let num = |k: usize| -> Result<f64, ResultsError> {
            get(k).parse::<f64>().map_err(|_| {
                bad(format!(
                    "{:?} in column {} is not a number",
                    get(k),
                    header[k]
                ))
            })
        };
        let face_columns = if get(face).is_empty() {
            None
        } else {
            let probs = (first_class..end)
                .map(|k| num(k).map(|v| v as f32))
                .collect::<Result<_, _>>()?;
            let smooth_probs = match &smooth {
                Some(cols) if !get(cols[0]).is_empty() => Some(
                    cols.iter()
                        .map(|&k| num(k).map(|v| v as f32))
                        .collect::<Result<_, _>>()?,
                ),
                _ => None,
            };
            Some(FaceColumns {
                face: num(face)? as u32,
                track_id: if get(track).is_empty() {
                    None
                } else {
                    Some(num(track)? as u64)
                },
                xywh: [
                    num(x)? as f32,
                    num(y)? as f32,
                    num(w)? as f32,
                    num(h)? as f32,
                ],
                det_score: num(score)? as f32,
                label: get(label).to_string(),
                probs,
                smooth_label: at
                    .get("smooth_label")
                    .map(|&k| get(k).to_string())
                    .filter(|s| !s.is_empty()),
                smooth_probs,
            })
        };
        rows.push(ResultRow {
            source: get(source).to_string(),
            frame: num(frame)? as u64,
            pts_ms: num(pts)?,
            skipped: get(status) == "skipped",
            face: face_columns,
        });
    }
    Ok(Results {
        path: path.to_path_buf(),
        classes,
        rows,
    })
}

/// A JSON Lines row as the JSONL sink writes it.
#[derive(Deserialize)]
struct JsonRow {
    source: String,
    frame: u64,
    pts_ms: f64,
    status: String,
    face: Option<u32>,
    track_id: Option<u64>,
    x: Option<f32>,
    y: Option<f32>,
    w: Option<f32>,
    h: Option<f32>,
    det_score: Option<f32>,
    label: Option<String>,
    probs: Option<OrderedProbs>,
    #[serde(default)]
    smooth_label: Option<String>,
    #[serde(default)]
    smooth_probs: Option<OrderedProbs>,
}

/// A `{class: probability}` object, in the file's order (which is the classes').
struct OrderedProbs(Vec<(String, f32)>);

impl<'de> Deserialize<'de> for OrderedProbs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedProbs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of class probabilities")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<OrderedProbs, M::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, f32>()? {
                    out.push((k, v));
                }
                Ok(OrderedProbs(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn read_jsonl(path: &Path) -> Result<Results, ResultsError> {
    let text = std::fs::read_to_string(path).map_err(|source| ResultsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut classes: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |reason: String| ResultsError::Row {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        let r: JsonRow = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let face = match (r.face, r.probs) {
            (Some(face), Some(OrderedProbs(probs))) => {
                let names: Vec<String> = probs.iter().map(|(k, _)| k.clone()).collect();
                match &classes {
                    None => classes = Some(names),
                    Some(c) if *c == names => {}
                    Some(_) => return Err(bad("its classes differ from the first face's".into())),
                }
                let [x, y, w, h] = [r.x, r.y, r.w, r.h].map(|v| v.unwrap_or(f32::NAN));
                Some(FaceColumns {
                    face,
                    track_id: r.track_id,
                    xywh: [x, y, w, h],
                    det_score: r.det_score.unwrap_or(f32::NAN),
                    label: r.label.unwrap_or_default(),
                    probs: probs.into_iter().map(|(_, v)| v).collect(),
                    smooth_label: r.smooth_label,
                    smooth_probs: r
                        .smooth_probs
                        .map(|p| p.0.into_iter().map(|(_, v)| v).collect()),
                })
            }
            _ => None,
        };
        rows.push(ResultRow {
            source: r.source,
            frame: r.frame,
            pts_ms: r.pts_ms,
            skipped: r.status == "skipped",
            face,
        });
    }
    Ok(Results {
        path: path.to_path_buf(),
        classes: classes.unwrap_or_default(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::FrameStatus;
    use crate::sink::test_support::{classes, face, result};
    use crate::sink::{CsvSink, JsonlSink, Sink};

    fn write_both(dir: &Path) -> (PathBuf, PathBuf) {
        let (csv, jsonl) = (dir.join("r.csv"), dir.join("r.jsonl"));
        let mut sinks: Vec<Box<dyn Sink>> = vec![
            Box::new(CsvSink::create(&csv, &classes(), true).unwrap()),
            Box::new(JsonlSink::create(&jsonl, &classes(), true).unwrap()),
        ];
        for s in sinks.iter_mut() {
            s.write(&result(
                0,
                FrameStatus::Analyzed,
                vec![
                    face(0, 5.0, [0.1, 0.7, 0.2], Some([0.2, 0.6, 0.2])),
                    face(1, 90.0, [0.6, 0.2, 0.2], None),
                ],
            ))
            .unwrap();
            s.write(&result(1, FrameStatus::Analyzed, vec![])).unwrap();
            s.write(&result(2, FrameStatus::Skipped, vec![])).unwrap();
            s.finish().unwrap();
        }
        (csv, jsonl)
    }

    #[test]
    fn csv_and_json_lines_read_back_alike() {
        let dir = tempfile::tempdir().unwrap();
        let (csv, jsonl) = write_both(dir.path());
        let a = read_results(&csv).unwrap();
        let b = read_results(&jsonl).unwrap();
        assert_eq!(a.classes, classes());
        assert_eq!(a.classes, b.classes);
        assert_eq!(a.rows, b.rows);
        assert_eq!(a.rows.len(), 4);
        let f = a.rows[0].face.as_ref().unwrap();
        assert_eq!(
            (f.label.as_str(), f.track_id, f.probs[1]),
            ("happiness", Some(7), 0.7)
        );
        assert_eq!(f.smooth_label.as_deref(), Some("happiness"));
        assert!(a.rows[2].face.is_none() && a.rows[3].skipped && !a.rows[2].skipped);
    }

    #[test]
    fn a_file_that_is_not_results_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "a,b\n1,2\n").unwrap();
        let err = read_results(&p).unwrap_err().to_string();
        assert!(err.contains("x.csv") && err.contains("confidence"), "{err}");
    }
}
