//! Where results go: a table of rows (CSV or JSON Lines), an annotated video, a live
//! preview window.
//!
//! Every sink receives every [`FrameResult`] in decode order (the pipeline's promise)
//! and checks it: per source, a frame index is 0 (a new pass over the input) or one
//! more than the previous one. The table sinks write one row per (frame, face), one
//! row for a frame without a face and one for a skipped frame, so that every decoded
//! frame appears exactly once, and flush after each frame: a reader tailing the file,
//! or a process killed mid-run, sees only complete rows.

mod csv_sink;
mod draw;
mod jsonl_sink;
mod parquet_sink;
mod preview_sink;
mod rows;
mod video_sink;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::frame::SourceId;
use crate::record::FrameResult;

pub use csv_sink::CsvSink;
pub use draw::{draw_results, rgb_to_bgr_mat};
pub use jsonl_sink::JsonlSink;
pub use parquet_sink::ParquetSink;
pub use preview_sink::PreviewSink;
pub use rows::TableLayout;
pub use video_sink::AnnotatedVideoSink;

/// A consumer of analysed frames.
pub trait Sink: Send {
    /// Takes the next frame's result (in decode order).
    fn write(&mut self, result: &FrameResult) -> Result<(), SinkError>;

    /// Flushes and closes what the sink holds; call once after the last `write`.
    fn finish(&mut self) -> Result<(), SinkError>;
}

/// What can go wrong writing results.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot create output file {path}: {reason}")]
    Create { path: PathBuf, reason: String },

    #[error("cannot write to {target}: {source}")]
    Write {
        target: String,
        #[source]
        source: io::Error,
    },

    /// The reader went away (`mimic ... -o - | head`): not a failure, stop quietly.
    #[error("the output was closed by its reader")]
    Closed,

    #[error("invalid class names for the output columns: {0}")]
    ClassNames(String),

    /// The pipeline broke its contract (frames out of order, wrong probability count,
    /// a frame to draw without pixels): a bug, reported rather than written wrongly.
    #[error("result of {input} frame {frame} cannot be written: {reason}")]
    BadResult {
        input: String,
        frame: u64,
        reason: String,
    },

    #[error("annotated video {path}: {reason}")]
    Video { path: PathBuf, reason: String },

    #[error("preview window: {0}")]
    Display(String),
}

impl SinkError {
    /// Maps an I/O error of `target`; a broken pipe means the reader closed it.
    fn from_io(target: &str, e: io::Error) -> SinkError {
        if e.kind() == io::ErrorKind::BrokenPipe {
            SinkError::Closed
        } else {
            SinkError::Write {
                target: target.to_string(),
                source: e,
            }
        }
    }
}

/// Where a table sink writes: `-` is standard output, anything else a file path.
pub(crate) fn open_output(path: &Path) -> Result<(Box<dyn Write + Send>, String), SinkError> {
    if path.as_os_str() == "-" {
        return Ok((Box::new(io::stdout()), "standard output".to_string()));
    }
    Ok((Box::new(create_file(path)?), path.display().to_string()))
}

/// Creates (truncates) `path`, with an error that says why it cannot be.
pub(crate) fn create_file(path: &Path) -> Result<File, SinkError> {
    let fail = |reason: String| SinkError::Create {
        path: path.to_path_buf(),
        reason,
    };
    if path.is_dir() {
        return Err(fail("it is a folder".into()));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        return Err(fail(format!("folder {} does not exist", parent.display())));
    }
    File::create(path).map_err(|e| fail(e.to_string()))
}

/// Checks the decode-order contract: per source, each index is the previous plus one,
/// or 0 when the same input is read again.
#[derive(Debug, Default)]
pub(crate) struct OrderGuard {
    next: HashMap<SourceId, u64>,
}

impl OrderGuard {
    pub fn check(&mut self, r: &FrameResult) -> Result<(), SinkError> {
        let expected = self.next.get(&r.source).copied().unwrap_or(0);
        if r.index != expected && r.index != 0 {
            return Err(SinkError::BadResult {
                input: r.source.to_string(),
                frame: r.index,
                reason: format!("out of order: frame {expected} was expected next"),
            });
        }
        self.next.insert(r.source.clone(), r.index + 1);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Results to feed sinks in tests.
    use crate::frame::SourceId;
    use crate::geometry::{BBox, FaceDetection};
    use crate::record::{FaceResult, FrameResult, FrameStatus};

    pub fn classes() -> Vec<String> {
        ["neutral", "happiness", "surprise"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    pub fn face(i: usize, x: f32, probs: [f32; 3], smoothed: Option<[f32; 3]>) -> FaceResult {
        let mut landmarks = [[0.0f32; 2]; 5];
        for (k, lm) in landmarks.iter_mut().enumerate() {
            *lm = [x + 10.0 + k as f32, 20.0 + k as f32 * 0.5];
        }
        FaceResult {
            pose: None,
            face: i,
            track_id: Some(7 + i as u64),
            detection: FaceDetection {
                bbox: BBox {
                    x1: x,
                    y1: 10.25,
                    x2: x + 40.5,
                    y2: 60.0,
                },
                score: 0.998_765,
                landmarks,
            },
            probs: probs.to_vec(),
            smoothed: smoothed.map(|s| s.to_vec()),
        }
    }

    pub fn result(index: u64, status: FrameStatus, faces: Vec<FaceResult>) -> FrameResult {
        FrameResult {
            source: SourceId::new("clip.mp4"),
            index,
            pts_ms: index as f64 * 33.366_666,
            status,
            faces,
            latency_ms: (status == FrameStatus::Analyzed).then_some(12.5),
            image: None,
        }
    }
}
