//! `mimic merge DIR -o all.csv`: the outputs of an `--out-dir` run (all its shards)
//! concatenated in input order, after checking that each is what its manifest line
//! says and that every frame of every input appears exactly once.

use std::collections::BTreeSet;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{InputStatus, Manifest, ManifestEntry, ManifestError, file_sha256};

/// What a merge wrote.
#[derive(Debug, Default, PartialEq)]
pub struct MergeReport {
    pub inputs: usize,
    pub frames: u64,
    pub rows: u64,
    /// Inputs whose manifest line says they failed part-way (their rows are merged).
    pub failed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{}: no manifest*.jsonl: not the --out-dir of a run", dir.display())]
    NoManifest { dir: PathBuf },
    #[error("cannot read or write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Output { path: PathBuf, reason: String },
}

/// Writes every output listed in `dir`'s manifests to `out` (CSV or JSON Lines, the
/// outputs' own format, told by `out`'s extension), in input order.
pub fn merge_outputs(dir: &Path, out: &Path) -> Result<MergeReport, MergeError> {
    let manifest = Manifest::open(dir, "manifest.jsonl")?;
    let mut entries: Vec<&ManifestEntry> = manifest.entries().collect();
    if entries.is_empty() {
        return Err(MergeError::NoManifest {
            dir: dir.to_path_buf(),
        });
    }
    entries.sort_by_key(|e| e.index);
    let jsonl = out
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson"));
    let mut outputs = BTreeSet::new();
    let mut indices = BTreeSet::new();
    for e in &entries {
        let path = dir.join(&e.output);
        let bad = |reason: String| MergeError::Output {
            path: path.clone(),
            reason,
        };
        if !outputs.insert(e.output.as_str()) {
            return Err(bad("listed for two inputs".into()));
        }
        if !indices.insert(e.index) {
            return Err(bad(format!(
                "input index {} appears twice in the manifests",
                e.index
            )));
        }
        let is_jsonl = e.output.ends_with(".jsonl");
        if is_jsonl != jsonl {
            return Err(bad(format!(
                "the outputs are {}; merge them into a .{} file",
                if is_jsonl { "JSON Lines" } else { "CSV" },
                if is_jsonl { "jsonl" } else { "csv" }
            )));
        }
        let hash = file_sha256(&path).map_err(|source| MergeError::Io {
            path: path.clone(),
            source,
        })?;
        if hash != e.sha256 {
            return Err(bad(
                "differs from what its manifest line records (sha256)".into()
            ));
        }
    }

    let tmp = out.with_extension("merge-part");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MergeError::Io { path, source }
    };
    let mut w = BufWriter::new(std::fs::File::create(&tmp).map_err(io(&tmp))?);
    let mut report = MergeReport::default();
    let mut header: Option<String> = None;
    for e in entries {
        let path = dir.join(&e.output);
        let file = std::fs::File::open(&path).map_err(io(&path))?;
        let mut lines = std::io::BufReader::new(file).lines();
        let mut frames = FrameCheck::default();
        let frame_column =
            if jsonl {
                None
            } else {
                let first = lines
                    .next()
                    .transpose()
                    .map_err(io(&path))?
                    .ok_or_else(|| MergeError::Output {
                        path: path.clone(),
                        reason: "empty (no header)".into(),
                    })?;
                match &header {
                    None => {
                        writeln!(w, "{first}").map_err(io(&tmp))?;
                        header = Some(first.clone());
                    }
                    Some(h) if *h == first => {}
                    Some(_) => {
                        return Err(MergeError::Output {
                            path,
                            reason: "its columns differ from the first output's".into(),
                        });
                    }
                }
                Some(first.split(',').position(|c| c == "frame").ok_or_else(|| {
                    MergeError::Output {
                        path: path.clone(),
                        reason: "no frame column".into(),
                    }
                })?)
            };
        for (n, line) in lines.enumerate() {
            let line = line.map_err(io(&path))?;
            let frame = match frame_column {
                Some(col) => csv_field(&line, col).and_then(|f| f.parse::<u64>().ok()),
                None => serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v.get("frame").and_then(serde_json::Value::as_u64)),
            };
            let frame = frame.ok_or_else(|| MergeError::Output {
                path: path.clone(),
                reason: format!("row {} has no frame number", n + 1),
            })?;
            frames.see(frame).map_err(|reason| MergeError::Output {
                path: path.clone(),
                reason,
            })?;
            writeln!(w, "{line}").map_err(io(&tmp))?;
            report.rows += 1;
        }
        if frames.count() != e.frames {
            return Err(MergeError::Output {
                path,
                reason: format!(
                    "{} frames, its manifest line says {}",
                    frames.count(),
                    e.frames
                ),
            });
        }
        report.frames += frames.count();
        report.inputs += 1;
        if e.status == InputStatus::Failed {
            report.failed.push(e.input.clone());
        }
    }
    w.flush().map_err(io(&tmp))?;
    drop(w);
    std::fs::rename(&tmp, out).map_err(io(out))?;
    Ok(report)
}

/// Field `col` of a CSV line (quoted fields may hold commas).
fn csv_field(line: &str, col: usize) -> Option<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line.as_bytes());
    let record = reader.records().next()?.ok()?;
    record.get(col).map(str::to_string)
}

/// Frames of one output: 0, 1, 2 … each in one run of rows (a frame with several faces
/// has several rows), none missing, none twice.
#[derive(Default)]
struct FrameCheck {
    current: Option<u64>,
}

impl FrameCheck {
    fn see(&mut self, frame: u64) -> Result<(), String> {
        match self.current {
            Some(c) if frame == c => Ok(()),
            Some(c) if frame == c + 1 => {
                self.current = Some(frame);
                Ok(())
            }
            None if frame == 0 => {
                self.current = Some(0);
                Ok(())
            }
            Some(c) if frame <= c => Err(format!("frame {frame} appears again after frame {c}")),
            Some(c) => Err(format!("frames {} to {} are missing", c + 1, frame - 1)),
            None => Err(format!("starts at frame {frame}, not 0")),
        }
    }

    fn count(&self) -> u64 {
        self.current.map_or(0, |c| c + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_must_count_up_from_zero_once_each() {
        let mut f = FrameCheck::default();
        for frame in [0, 0, 1, 2, 2, 2, 3] {
            f.see(frame).unwrap();
        }
        assert_eq!(f.count(), 4);
        assert!(f.see(2).unwrap_err().contains("again"));
        assert!(f.see(6).unwrap_err().contains("missing"));
        assert!(FrameCheck::default().see(1).unwrap_err().contains("not 0"));
    }
}
