//! `--annotate out.mp4`: the input video with the analysis drawn on it, one output
//! frame per decoded frame, in order.

use std::path::{Path, PathBuf};

use opencv::core::{CV_8UC3, Mat, MatTraitConst, Scalar, Size};
use opencv::imgproc;
use opencv::videoio::{self, VideoWriter, VideoWriterTrait, VideoWriterTraitConst};

use super::draw::{draw_results, rgb_to_bgr_mat};
use super::{OrderGuard, Sink, SinkError, create_file};
use crate::record::{FrameResult, FrameStatus};

/// Codecs tried in order: H.264 (plays everywhere) when OpenCV's FFmpeg has an
/// encoder for it, else MPEG-4 part 2.
const FOURCCS: [[char; 4]; 2] = [['a', 'v', 'c', '1'], ['m', 'p', '4', 'v']];

/// Frame rate used when the source states none.
pub const DEFAULT_FPS: f64 = 25.0;

pub struct AnnotatedVideoSink {
    path: PathBuf,
    writer: VideoWriter,
    size: Size,
    class_names: Vec<String>,
    order: OrderGuard,
    /// The last frame written, repeated for a frame that has no pixels (skipped).
    last: Option<Mat>,
    frames_written: u64,
    codec: String,
}

impl AnnotatedVideoSink {
    /// A video at `path` of `width`×`height` at `fps` (the source's; None or ≤ 0 gives
    /// [`DEFAULT_FPS`]). Frames of another size (a second input) are resized to it.
    pub fn create(
        path: &Path,
        fps: Option<f64>,
        width: u32,
        height: u32,
        class_names: &[String],
    ) -> Result<Self, SinkError> {
        let fail = |reason: String| SinkError::Video {
            path: path.to_path_buf(),
            reason,
        };
        if width == 0 || height == 0 {
            return Err(fail(format!("invalid frame size {width}x{height}")));
        }
        // Fails with the OS's reason (missing folder, permission) before OpenCV, which
        // would only say "not opened".
        drop(create_file(path)?);
        let fps = fps
            .filter(|f| f.is_finite() && *f > 0.0)
            .unwrap_or(DEFAULT_FPS);
        let size = Size::new(width as i32, height as i32);
        // OpenCV logs each codec it fails to open; we report the outcome ourselves.
        let _ = opencv::core::set_log_level(opencv::core::LogLevel::LOG_LEVEL_ERROR);
        let mut tried = Vec::new();
        for code in FOURCCS {
            let fourcc = VideoWriter::fourcc(code[0], code[1], code[2], code[3])
                .map_err(|e| fail(e.to_string()))?;
            let writer =
                VideoWriter::new_with_backend(path, videoio::CAP_FFMPEG, fourcc, fps, size, true)
                    .map_err(|e| fail(e.to_string()))?;
            let codec: String = code.iter().collect();
            if writer.is_opened().unwrap_or(false) {
                return Ok(Self {
                    path: path.to_path_buf(),
                    writer,
                    size,
                    class_names: class_names.to_vec(),
                    order: OrderGuard::default(),
                    last: None,
                    frames_written: 0,
                    codec,
                });
            }
            tried.push(codec);
        }
        Err(fail(format!(
            "OpenCV cannot encode video with any of {}",
            tried.join(", ")
        )))
    }

    /// Frames written so far.
    pub fn frames_written(&self) -> u64 {
        self.frames_written
    }

    /// The codec in use (`avc1` or `mp4v`).
    pub fn codec(&self) -> &str {
        &self.codec
    }

    fn fail(&self, e: impl ToString) -> SinkError {
        SinkError::Video {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    fn frame_for(&mut self, result: &FrameResult) -> Result<Mat, SinkError> {
        let Some(image) = &result.image else {
            if result.status == FrameStatus::Analyzed {
                return Err(SinkError::BadResult {
                    input: result.source.to_string(),
                    frame: result.index,
                    reason: "no pixels to draw on (the pipeline must keep images for --annotate)"
                        .into(),
                });
            }
            // A skipped live frame: hold the previous picture so timing stays right.
            return match &self.last {
                Some(m) => m.try_clone().map_err(|e| self.fail(e)),
                None => Mat::new_size_with_default(self.size, CV_8UC3, Scalar::all(0.0))
                    .map_err(|e| self.fail(e)),
            };
        };
        let mut mat = rgb_to_bgr_mat(image).map_err(|e| self.fail(e))?;
        draw_results(&mut mat, result, &self.class_names).map_err(|e| self.fail(e))?;
        if mat.size().map_err(|e| self.fail(e))? != self.size {
            let mut resized = Mat::default();
            imgproc::resize(&mat, &mut resized, self.size, 0.0, 0.0, imgproc::INTER_AREA)
                .map_err(|e| self.fail(e))?;
            mat = resized;
        }
        Ok(mat)
    }
}

impl Sink for AnnotatedVideoSink {
    fn write(&mut self, result: &FrameResult) -> Result<(), SinkError> {
        self.order.check(result)?;
        let mat = self.frame_for(result)?;
        self.writer.write(&mat).map_err(|e| self.fail(e))?;
        self.frames_written += 1;
        self.last = Some(mat);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.writer.release().map_err(|e| self.fail(e))
    }
}
