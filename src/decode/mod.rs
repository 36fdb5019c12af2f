//! Inputs — video files, network streams, webcams, still images and folders of them —
//! decoded into [`Frame`]s of packed RGB8.
//!
//! [`expand_inputs`] turns the command line's input arguments into [`InputSpec`]s
//! (folders expanded), [`open`] turns one spec into a [`FrameSource`]: an iterator of
//! frames in presentation order with indices counting from 0.
//!
//! Backends: FFmpeg (`ffmpeg-next`) for files and URLs ([`video_file`]), OpenCV's
//! VideoCapture for webcams ([`webcam`]), the `image` crate for stills ([`still`]).
//!
//! Error contract of every [`FrameSource`]: bad input that can be seen at once (missing,
//! empty, not a video, unopenable camera) fails in [`open`]; a recoverable fault while
//! decoding (one corrupt packet) is skipped and counted ([`FrameSource::corrupt_packets`]),
//! never yielded; an unrecoverable one (file cut short, stream or camera lost) is
//! yielded as one `Err` after the frames that could be decoded, and then the iterator
//! ends. So every `Err` a source yields is its last item.

mod inputs;
mod pts;
mod rotation;
mod still;
mod video_file;
mod webcam;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::frame::{Frame, SourceId};

pub use inputs::{STILL_EXTENSIONS, VIDEO_EXTENSIONS, expand_inputs};
pub use rotation::{rotate_clockwise, rotation_from_display_matrix};
pub use still::load_still;

/// One input to analyse, as the user named it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputSpec {
    /// A video file, read with FFmpeg (any container/codec it reads).
    Video(PathBuf),
    /// A still image (one frame, pts 0), read with the `image` crate.
    Still(PathBuf),
    /// A URL FFmpeg opens: rtsp://, http(s)://, udp://, rtmp://, srt://, file:// ...
    Url(String),
    /// A camera read with OpenCV's VideoCapture (V4L2 on Linux).
    Webcam(WebcamSpec),
}

/// Which camera: an OpenCV index (`--webcam 0`) or a device path (`/dev/video2`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebcamSpec {
    Index(i32),
    Device(PathBuf),
}

impl InputSpec {
    /// The spec for a `--webcam` argument: a number is an index, anything else a device path.
    pub fn webcam(arg: &str) -> Self {
        match arg.trim().parse::<i32>() {
            Ok(index) => InputSpec::Webcam(WebcamSpec::Index(index)),
            Err(_) => InputSpec::Webcam(WebcamSpec::Device(PathBuf::from(arg))),
        }
    }

    /// The name written in the `source` column: the path as given, the URL with any
    /// password removed, `webcam:N` or the device path.
    pub fn source_id(&self) -> SourceId {
        match self {
            InputSpec::Video(p) | InputSpec::Still(p) => SourceId::new(p.display().to_string()),
            InputSpec::Url(u) => SourceId::new(inputs::redact_url_credentials(u)),
            InputSpec::Webcam(WebcamSpec::Index(i)) => SourceId::new(format!("webcam:{i}")),
            InputSpec::Webcam(WebcamSpec::Device(p)) => SourceId::new(p.display().to_string()),
        }
    }

    /// A network stream (a URL other than file://): it can stall, drop and be
    /// reconnected.
    pub fn is_network(&self) -> bool {
        matches!(self, InputSpec::Url(u) if !u.starts_with("file:"))
    }

    /// Live inputs (cameras, network streams) produce frames in real time and never
    /// end by themselves; the pipeline drops frames rather than fall behind on them.
    /// A URL is taken as live unless it is a file:// URL or an http(s) URL (which
    /// may still turn out live: see [`SourceInfo::live`], decided after opening).
    pub fn is_live_hint(&self) -> bool {
        match self {
            InputSpec::Webcam(_) => true,
            InputSpec::Url(u) => inputs::is_live_scheme(u),
            InputSpec::Video(_) | InputSpec::Still(_) => false,
        }
    }
}

/// What is known about a source once opened.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceInfo {
    pub source: SourceId,
    /// The container's frame count, or one estimated from duration × frame rate;
    /// None for live sources and when the container says nothing.
    pub frame_count_estimate: Option<u64>,
    /// Nominal frames per second (average rate when the container gives it).
    pub fps: Option<f64>,
    pub duration_ms: Option<f64>,
    /// Real-time source (camera, live network stream): it does not wait for us.
    pub live: bool,
    /// Size of the frames as delivered, i.e. after display rotation.
    pub width: u32,
    pub height: u32,
}

/// A decoded input: frames in presentation order, `index` counting from 0, `pts_ms`
/// monotonic non-decreasing (see [`Frame::pts_ms`]). After an `Err` the iterator ends.
pub trait FrameSource: Iterator<Item = Result<Frame, DecodeError>> + Send {
    fn info(&self) -> SourceInfo;

    /// Packets that could not be decoded and were skipped so far (recoverable faults).
    fn corrupt_packets(&self) -> u64 {
        0
    }
}

/// How to open sources.
#[derive(Clone, Debug)]
pub struct DecodeOptions {
    /// FFmpeg decoder threads; 0 lets FFmpeg pick (one per core).
    pub threads: usize,
    /// A network stream that delivers nothing for this long ends with an error.
    pub stall_timeout: Duration,
    /// When set to true, a blocked read returns and the source ends quietly
    /// (Ctrl-C while waiting on a network stream).
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            threads: 0,
            stall_timeout: Duration::from_secs(10),
            cancel: None,
        }
    }
}

/// Everything that can go wrong reading an input. Each variant names the input.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("input {input}: no such file or folder")]
    NotFound { input: String },

    #[error("input {input}: the file is empty (0 bytes)")]
    EmptyFile { input: String },

    #[error("input {input}: cannot read it: {source}")]
    Io {
        input: String,
        #[source]
        source: std::io::Error,
    },

    #[error("input {input}: not a video FFmpeg can read: {reason}")]
    NotAVideo { input: String, reason: String },

    #[error("input {input}: has no video stream")]
    NoVideoStream { input: String },

    #[error("input {input}: cannot decode its video ({codec}): {reason}")]
    Codec {
        input: String,
        codec: String,
        reason: String,
    },

    #[error("input {input}: cannot open the stream: {reason}")]
    Stream { input: String, reason: String },

    #[error("input {input}: not an image the decoder reads: {source}")]
    Image {
        input: String,
        #[source]
        source: image::ImageError,
    },

    #[error("input {input}: cannot open the camera: {reason}")]
    Webcam { input: String, reason: String },

    #[error("input {input}: the camera stopped delivering frames after {frames} frames: {reason}")]
    WebcamLost {
        input: String,
        frames: u64,
        reason: String,
    },

    /// A network stream delivered nothing for the stall timeout; the frames before were
    /// delivered. A live stream whose sender stops ends so (UDP has no end of stream):
    /// the analyzer reports it and ends the input normally, or reconnects
    /// (`--reconnect`).
    #[error(
        "input {input}: the stream delivered nothing for {:.1} s (after {frames} frames)",
        timeout.as_secs_f64()
    )]
    Stalled {
        input: String,
        frames: u64,
        timeout: Duration,
    },

    /// Decoding ended early: the frames before were delivered, the rest is lost.
    #[error(
        "input {input}: decoding stopped at {:.2} s after {frames} frames: {reason}",
        at_ms / 1000.0
    )]
    Stopped {
        input: String,
        at_ms: f64,
        frames: u64,
        reason: String,
    },
}

/// Opens one input with default options. See [`open_with`].
pub fn open(spec: &InputSpec) -> Result<Box<dyn FrameSource>, DecodeError> {
    open_with(spec, &DecodeOptions::default())
}

/// Opens one input: checks it exists and is readable, finds its video stream or camera,
/// and returns the source positioned before its first frame.
pub fn open_with(
    spec: &InputSpec,
    options: &DecodeOptions,
) -> Result<Box<dyn FrameSource>, DecodeError> {
    match spec {
        InputSpec::Video(path) => Ok(Box::new(video_file::VideoFileSource::open_file(
            path, options,
        )?)),
        InputSpec::Url(url) => Ok(Box::new(video_file::VideoFileSource::open_url(
            url, options,
        )?)),
        InputSpec::Still(path) => Ok(Box::new(still::StillSource::open(path)?)),
        InputSpec::Webcam(cam) => Ok(Box::new(webcam::WebcamSource::open(cam, spec.source_id())?)),
    }
}

/// Lets FFmpeg print its own diagnostics (warnings about the stream) on stderr.
/// Off by default: the decoder reports what matters through [`DecodeError`] and
/// [`FrameSource::corrupt_packets`], and library chatter would break a progress bar.
pub fn set_ffmpeg_logging(verbose: bool) {
    video_file::init_ffmpeg();
    ffmpeg_next::log::set_level(if verbose {
        ffmpeg_next::log::Level::Warning
    } else {
        ffmpeg_next::log::Level::Quiet
    });
}
