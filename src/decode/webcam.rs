//! Cameras through OpenCV's VideoCapture (the V4L2 backend on Linux).
//!
//! Times: the capture clock (`CAP_PROP_POS_MSEC`: the driver's buffer timestamp on
//! V4L2) when the camera gives a positive one on the first frame, else the wall clock;
//! either way measured from the first frame (which is at 0) and kept non-decreasing.
//! A camera that stops delivering (unplugged: V4L2 returns ENODEV at once; stalled:
//! OpenCV's V4L2 `select` times out after 10 s) ends the source with
//! [`DecodeError::WebcamLost`], never a hang.

use std::path::Path;
use std::time::Instant;

use opencv::core::{Mat, MatTraitConst, MatTraitConstManual};
use opencv::imgproc;
use opencv::videoio::{self, VideoCapture, VideoCaptureTrait, VideoCaptureTraitConst};

use super::{DecodeError, FrameSource, SourceInfo, WebcamSpec};
use crate::frame::{Frame, RgbImage, SourceId};

#[cfg(target_os = "linux")]
const BACKEND: i32 = videoio::CAP_V4L2;
#[cfg(not(target_os = "linux"))]
const BACKEND: i32 = videoio::CAP_ANY;

pub(crate) struct WebcamSource {
    info: SourceInfo,
    capture: VideoCapture,
    next_index: u64,
    /// Capture-clock time of frame 0, when the capture clock is used.
    first_capture_ms: Option<f64>,
    first_frame_at: Option<Instant>,
    last_pts_ms: f64,
    bgr: Mat,
    rgb: Mat,
    done: bool,
}

impl WebcamSource {
    pub fn open(spec: &WebcamSpec, source: SourceId) -> Result<Self, DecodeError> {
        let name = source.to_string();
        let fail = |reason: String| DecodeError::Webcam {
            input: name.clone(),
            reason,
        };
        quiet_opencv();
        let capture = match spec {
            WebcamSpec::Index(i) => VideoCapture::new(*i, BACKEND),
            WebcamSpec::Device(path) => {
                if !Path::new(path).exists() {
                    return Err(fail("no such device".into()));
                }
                VideoCapture::from_file(path, BACKEND)
            }
        }
        .map_err(|e| fail(e.to_string()))?;
        if !capture.is_opened().unwrap_or(false) {
            return Err(fail(
                "no camera answers there (unplugged, busy, or not a capture device)".into(),
            ));
        }
        let prop = |id| capture.get(id).ok().filter(|v| v.is_finite() && *v > 0.0);
        let info = SourceInfo {
            source,
            frame_count_estimate: None,
            fps: prop(videoio::CAP_PROP_FPS),
            duration_ms: None,
            live: true,
            width: prop(videoio::CAP_PROP_FRAME_WIDTH).map_or(0, |v| v as u32),
            height: prop(videoio::CAP_PROP_FRAME_HEIGHT).map_or(0, |v| v as u32),
        };
        Ok(Self {
            info,
            capture,
            next_index: 0,
            first_capture_ms: None,
            first_frame_at: None,
            last_pts_ms: 0.0,
            bgr: Mat::default(),
            rgb: Mat::default(),
            done: false,
        })
    }

    fn lost(&self, reason: String) -> DecodeError {
        DecodeError::WebcamLost {
            input: self.info.source.to_string(),
            frames: self.next_index,
            reason,
        }
    }

    fn grab(&mut self) -> Result<Frame, DecodeError> {
        let got = self
            .capture
            .read(&mut self.bgr)
            .map_err(|e| self.lost(e.to_string()))?;
        if !got || self.bgr.empty() {
            return Err(self.lost("no frame (unplugged or stalled)".into()));
        }
        let now = Instant::now();
        let pts_ms = self.frame_time(now);
        let image = mat_to_rgb(&self.bgr, &mut self.rgb).map_err(|e| self.lost(e))?;
        let frame = Frame {
            source: self.info.source.clone(),
            index: self.next_index,
            pts_ms,
            captured_at: now,
            image,
        };
        self.next_index += 1;
        Ok(frame)
    }

    fn frame_time(&mut self, now: Instant) -> f64 {
        let capture_ms = self
            .capture
            .get(videoio::CAP_PROP_POS_MSEC)
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0);
        let ms = if self.next_index == 0 {
            self.first_capture_ms = capture_ms;
            self.first_frame_at = Some(now);
            0.0
        } else {
            match (self.first_capture_ms, capture_ms) {
                (Some(first), Some(t)) => t - first,
                _ => {
                    now.duration_since(self.first_frame_at.unwrap_or(now))
                        .as_secs_f64()
                        * 1000.0
                }
            }
        };
        self.last_pts_ms = ms.max(self.last_pts_ms);
        self.last_pts_ms
    }
}

/// Any 8-bit OpenCV picture (BGR, BGRA or grey) → packed RGB8.
fn mat_to_rgb(src: &Mat, rgb: &mut Mat) -> Result<RgbImage, String> {
    if src.depth() != opencv::core::CV_8U {
        return Err(format!("unsupported pixel depth {}", src.depth()));
    }
    let code = match src.channels() {
        1 => imgproc::COLOR_GRAY2RGB,
        3 => imgproc::COLOR_BGR2RGB,
        4 => imgproc::COLOR_BGRA2RGB,
        n => return Err(format!("unsupported channel count {n}")),
    };
    imgproc::cvt_color_def(src, rgb, code).map_err(|e| e.to_string())?;
    let (w, h) = (rgb.cols() as u32, rgb.rows() as u32);
    let bytes = rgb.data_bytes().map_err(|e| e.to_string())?;
    RgbImage::from_raw(w, h, bytes.to_vec()).ok_or_else(|| "frame buffer has the wrong size".into())
}

/// OpenCV prints a warning for every camera it fails to open; we report it ourselves.
pub(crate) fn quiet_opencv() {
    let _ = opencv::core::set_log_level(opencv::core::LogLevel::LOG_LEVEL_ERROR);
}

impl Iterator for WebcamSource {
    type Item = Result<Frame, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let frame = self.grab();
        if frame.is_err() {
            self.done = true;
            let _ = self.capture.release();
        }
        Some(frame)
    }
}

impl FrameSource for WebcamSource {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }
}
