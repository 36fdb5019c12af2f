//! Files and network streams through FFmpeg: demux the best video stream, decode it
//! (FFmpeg's own threads), convert every picture to packed RGB24 with swscale, turn it
//! upright (display rotation) and time it from its timestamp ([`PtsClock`]).
//!
//! Faults while decoding:
//! - a packet the decoder rejects, or a demuxer error followed by readable packets
//!   (a damaged stretch), is skipped and counted ([`FrameSource::corrupt_packets`]);
//!   more than [`MAX_CONSECUTIVE_ERRORS`] decoder errors in a row without a picture
//!   end the source;
//! - demuxer errors that last until the end of the input mean the file is cut short
//!   (an MP4 whose index promises samples the file no longer holds reads as one
//!   "invalid data" per missing sample, then end of file). This, an I/O error, or a
//!   stalled network stream ends the source: the frames still inside the decoder are
//!   delivered, then one [`DecodeError::Stopped`] saying where and why.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use ffmpeg::codec;
use ffmpeg::error::{EAGAIN, ENOENT, ETIMEDOUT};
use ffmpeg::format::Pixel;
use ffmpeg::frame;
use ffmpeg::software::scaling;
use ffmpeg::{Error as FfError, Packet, Rational, ffi, media};
use ffmpeg_next as ffmpeg;

use super::inputs::is_live_scheme;
use super::pts::PtsClock;
use super::rotation::{quarter_turns_clockwise, rotate_clockwise, rotation_from_display_matrix};
use super::{DecodeError, DecodeOptions, FrameSource, InputSpec, SourceInfo};
use crate::frame::{Frame, RgbImage};

/// Errors in a row (no picture in between) after which a stream is taken as unreadable.
pub(crate) const MAX_CONSECUTIVE_ERRORS: u32 = 100;

/// Demuxer errors in a row (no readable packet in between) after which the rest of the
/// input is taken as lost. Larger than for the decoder: a truncated MP4 yields one
/// error per missing sample, each cheap.
pub(crate) const MAX_CONSECUTIVE_DEMUX_ERRORS: u64 = 10_000;

static INIT: Once = Once::new();

/// Registers FFmpeg's formats and network protocols once, and silences its logging
/// (see [`super::set_ffmpeg_logging`]).
pub(crate) fn init_ffmpeg() {
    INIT.call_once(|| {
        // `init` only registers (it cannot fail on FFmpeg ≥ 4); network init is idempotent.
        let _ = ffmpeg::init();
        ffmpeg::format::network::init();
        ffmpeg::log::set_level(ffmpeg::log::Level::Quiet);
    });
}

/// Lets a blocked FFmpeg read return: on cancel (Ctrl-C), or when a network stream has
/// delivered nothing before `deadline`. FFmpeg polls the callback while it waits.
struct Watchdog {
    epoch: Instant,
    /// Milliseconds since `epoch` after which a read is abandoned; 0 = no deadline.
    deadline_ms: AtomicU64,
    cancel: Option<Arc<AtomicBool>>,
}

impl Watchdog {
    fn is_cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    fn should_interrupt(&self) -> bool {
        let deadline = self.deadline_ms.load(Ordering::Relaxed);
        self.is_cancelled() || (deadline != 0 && self.epoch.elapsed().as_millis() as u64 > deadline)
    }

    fn arm(&self, timeout: Duration) {
        let deadline = (self.epoch.elapsed() + timeout).as_millis() as u64;
        self.deadline_ms.store(deadline.max(1), Ordering::Relaxed);
    }
}

/// The swscale context for one input format/size/colour description.
struct RgbConverter {
    key: (Pixel, u32, u32, ffi::AVColorSpace, bool),
    scaler: scaling::Context,
    rgb: frame::Video,
}

// SAFETY: an SwsContext has no thread affinity; it is owned by one source and only
// used through `&mut self`, so moving it to the decode thread is sound.
unsafe impl Send for RgbConverter {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading packets.
    Reading,
    /// End of input (or a fatal error) reached: taking the last pictures out of the decoder.
    Draining,
    Done,
}

pub(crate) struct VideoFileSource {
    info: SourceInfo,
    input: ffmpeg::format::context::Input,
    stream_index: usize,
    decoder: codec::decoder::Video,
    converter: Option<RgbConverter>,
    /// Clockwise quarter turns to display the picture upright (0, 90, 180, 270).
    rotation: u32,
    clock: PtsClock,
    stream_time_base: Rational,
    next_index: u64,
    last_pts_ms: f64,
    state: State,
    /// A packet the decoder could not take yet (it had pictures to hand out first).
    pending_packet: Option<Packet>,
    /// Why reading stopped early: yielded as [`DecodeError::Stopped`] once the
    /// decoder is drained (so its frame count and time include the drained frames).
    pending_error: Option<String>,
    corrupt: u64,
    consecutive_errors: u32,
    /// Demuxer errors and partly-read packets since the last intact packet: counted
    /// as corrupt once an intact packet follows, reported as a cut-short input if
    /// the input ends first.
    trailing_damage: u64,
    /// The container's frame count, for error messages.
    declared_frames: Option<u64>,
    decoded: frame::Video,
    watchdog: Arc<Watchdog>,
    is_network: bool,
    stall_timeout: Duration,
    /// Reading stopped because the stream delivered nothing for `stall_timeout`:
    /// the source ends with [`DecodeError::Stalled`] rather than `Stopped`.
    stalled: bool,
}

impl VideoFileSource {
    pub fn open_file(path: &Path, options: &DecodeOptions) -> Result<Self, DecodeError> {
        let input = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => DecodeError::NotFound {
                input: input.clone(),
            },
            _ => DecodeError::Io {
                input: input.clone(),
                source: e,
            },
        })?;
        if meta.is_dir() {
            return Err(DecodeError::NotAVideo {
                input,
                reason: "it is a folder".into(),
            });
        }
        if meta.len() == 0 {
            return Err(DecodeError::EmptyFile { input });
        }
        Self::open_inner(
            path.as_os_str().to_string_lossy().as_ref(),
            &InputSpec::Video(path.into()),
            options,
        )
    }

    pub fn open_url(url: &str, options: &DecodeOptions) -> Result<Self, DecodeError> {
        Self::open_inner(url, &InputSpec::Url(url.to_string()), options)
    }

    fn open_inner(
        location: &str,
        spec: &InputSpec,
        options: &DecodeOptions,
    ) -> Result<Self, DecodeError> {
        init_ffmpeg();
        let source = spec.source_id();
        let name = source.to_string();
        let is_network = matches!(spec, InputSpec::Url(u) if !u.starts_with("file:"));

        let watchdog = Arc::new(Watchdog {
            epoch: Instant::now(),
            deadline_ms: AtomicU64::new(0),
            cancel: options.cancel.clone(),
        });
        let mut dict = ffmpeg::Dictionary::new();
        if is_network {
            // Socket timeouts (µs) for protocols that honour them; the watchdog covers the rest.
            let us = options.stall_timeout.as_micros().to_string();
            dict.set("rw_timeout", &us);
            dict.set("timeout", &us);
            watchdog.arm(options.stall_timeout);
        }
        let dog = watchdog.clone();
        let mut input = ffmpeg::format::input_with_interrupt_and_dictionary(
            location,
            move || dog.should_interrupt(),
            dict,
        )
        .map_err(|e| match e {
            // Nothing arrived within the stall timeout (the watchdog, or the socket's own
            // timeout): the stream is silent, which --reconnect may wait out.
            FfError::Exit | FfError::Other { errno: ETIMEDOUT }
                if is_network && !watchdog.is_cancelled() =>
            {
                DecodeError::Stalled {
                    input: name.clone(),
                    frames: 0,
                    timeout: options.stall_timeout,
                }
            }
            e => open_error(&name, is_network, e),
        })?;

        if input.format().name() == "tty" {
            // FFmpeg renders any text file as an "ANSI art" video: not what anyone means.
            return Err(DecodeError::NotAVideo {
                input: name,
                reason: "it is a text file".into(),
            });
        }

        let stream =
            input
                .streams()
                .best(media::Type::Video)
                .ok_or_else(|| DecodeError::NoVideoStream {
                    input: name.clone(),
                })?;
        let stream_index = stream.index();
        let stream_time_base = stream.time_base();
        let parameters = stream.parameters();
        let codec_name = parameters.id().name().to_string();
        let rotation = stream_rotation(&stream);
        let fps = rate_to_f64(stream.avg_frame_rate()).or_else(|| rate_to_f64(stream.rate()));
        let start = (stream.start_time() != ffi::AV_NOPTS_VALUE).then(|| stream.start_time());
        let stream_duration_ms = (stream.duration() > 0)
            .then(|| stream.duration() as f64 * f64::from(stream_time_base) * 1000.0);
        let declared_frames = u64::try_from(stream.frames()).ok().filter(|n| *n > 0);

        let mut context = codec::context::Context::from_parameters(parameters).map_err(|e| {
            DecodeError::Codec {
                input: name.clone(),
                codec: codec_name.clone(),
                reason: e.to_string(),
            }
        })?;
        // SAFETY: plain field writes on a codec context we own, before it is opened.
        unsafe {
            let ctx = context.as_mut_ptr();
            (*ctx).thread_count = options.threads as i32;
            (*ctx).pkt_timebase = stream_time_base.into();
        }
        let decoder = context.decoder().video().map_err(|e| DecodeError::Codec {
            input: name.clone(),
            codec: codec_name.clone(),
            reason: match e {
                FfError::DecoderNotFound => "no decoder for this codec in the system FFmpeg".into(),
                e => e.to_string(),
            },
        })?;

        // Demux only the video stream we decode.
        for mut other in input.streams_mut() {
            if other.index() != stream_index {
                // SAFETY: setting the discard field of a stream of our own context.
                unsafe { (*other.as_mut_ptr()).discard = ffi::AVDiscard::AVDISCARD_ALL };
            }
        }

        let format_duration_ms = (input.duration() > 0)
            .then(|| input.duration() as f64 / f64::from(ffi::AV_TIME_BASE) * 1000.0);
        let duration_ms = stream_duration_ms.or(format_duration_ms);
        let live = match spec {
            InputSpec::Url(u) => is_live_scheme(u) || duration_ms.is_none(),
            _ => false,
        };
        let frame_count_estimate = if live {
            None
        } else {
            declared_frames
                .or_else(|| Some((duration_ms? / 1000.0 * fps?).round() as u64).filter(|n| *n > 0))
        };
        let (mut width, mut height) = (decoder.width(), decoder.height());
        if rotation % 180 == 90 {
            std::mem::swap(&mut width, &mut height);
        }
        let info = SourceInfo {
            source,
            frame_count_estimate,
            fps,
            duration_ms: if live { None } else { duration_ms },
            live,
            width,
            height,
        };
        let tb = (stream_time_base.numerator(), stream_time_base.denominator());
        Ok(Self {
            info,
            input,
            stream_index,
            decoder,
            converter: None,
            rotation,
            clock: PtsClock::new(tb, start, fps),
            stream_time_base,
            next_index: 0,
            last_pts_ms: 0.0,
            state: State::Reading,
            pending_packet: None,
            pending_error: None,
            stalled: false,
            corrupt: 0,
            consecutive_errors: 0,
            trailing_damage: 0,
            declared_frames,
            decoded: frame::Video::empty(),
            watchdog,
            is_network,
            stall_timeout: options.stall_timeout,
        })
    }

    fn name(&self) -> String {
        self.info.source.to_string()
    }

    fn stopped(&self, reason: String) -> DecodeError {
        if self.stalled {
            return DecodeError::Stalled {
                input: self.name(),
                frames: self.next_index,
                timeout: self.stall_timeout,
            };
        }
        DecodeError::Stopped {
            input: self.name(),
            at_ms: self.last_pts_ms,
            frames: self.next_index,
            reason,
        }
    }

    /// Counts one skipped packet; true while the stream still looks decodable.
    fn count_corrupt(&mut self) -> bool {
        self.corrupt += 1;
        self.consecutive_errors += 1;
        self.consecutive_errors <= MAX_CONSECUTIVE_ERRORS
    }

    /// Ends reading: flush the decoder, then yield `error` (if any) and stop.
    fn start_draining(&mut self, error: Option<String>) {
        self.pending_error = error;
        self.pending_packet = None;
        // An error here only means the decoder is already flushed.
        let _ = self.decoder.send_eof();
        self.state = State::Draining;
    }

    /// Hands the decoder its next packet, or starts draining at the end of input.
    /// Returns false when the source must end at once, quietly (cancelled).
    fn feed(&mut self) -> bool {
        if let Some(packet) = self.pending_packet.take() {
            self.send(packet);
            return true;
        }
        loop {
            if self.is_network {
                self.watchdog.arm(self.stall_timeout);
            }
            let mut packet = Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    // A packet the demuxer could only read in part (the file ends
                    // inside it) is flagged corrupt: still worth decoding, but damage
                    // that lasts until end of file means the file is cut short.
                    if packet.is_corrupt() {
                        self.trailing_damage += 1;
                    } else {
                        self.corrupt += self.trailing_damage;
                        self.trailing_damage = 0;
                    }
                    if packet.stream() == self.stream_index {
                        self.send(packet);
                        return true;
                    }
                }
                Err(FfError::Eof) if self.trailing_damage > 0 => {
                    self.start_draining(Some(self.lost_tail_reason()));
                    return true;
                }
                Err(FfError::Eof) => {
                    self.start_draining(None);
                    return true;
                }
                Err(FfError::Exit) if self.watchdog.is_cancelled() => {
                    self.state = State::Done;
                    return false;
                }
                Err(FfError::Exit) | Err(FfError::Other { errno: ETIMEDOUT })
                    if self.is_network =>
                {
                    self.stalled = true;
                    let reason = format!(
                        "the stream delivered nothing for {:.0} s",
                        self.stall_timeout.as_secs_f64()
                    );
                    self.start_draining(Some(reason));
                    return true;
                }
                Err(FfError::InvalidData) => {
                    // A damaged stretch the demuxer may resync past, or the start of
                    // a missing tail: decided by what follows.
                    self.trailing_damage += 1;
                    if self.trailing_damage > MAX_CONSECUTIVE_DEMUX_ERRORS {
                        self.start_draining(Some(self.lost_tail_reason()));
                        return true;
                    }
                }
                Err(e) if self.input_at_eof() => {
                    let reason = format!("{}: {e}", self.lost_tail_reason());
                    self.start_draining(Some(reason));
                    return true;
                }
                Err(e) => {
                    self.start_draining(Some(format!("read error: {e}")));
                    return true;
                }
            }
        }
    }

    fn send(&mut self, packet: Packet) {
        match self.decoder.send_packet(&packet) {
            Ok(()) => {}
            Err(FfError::Other { errno }) if errno == EAGAIN => {
                self.pending_packet = Some(packet);
            }
            Err(_) => {
                if !self.count_corrupt() {
                    let reason = format!("{MAX_CONSECUTIVE_ERRORS} undecodable packets in a row");
                    self.start_draining(Some(reason));
                }
            }
        }
    }

    /// Why the input ended early when its last packets were damaged or missing.
    fn lost_tail_reason(&self) -> String {
        if self.is_network {
            return "the stream ended with damaged or missing data".into();
        }
        let declared = match (self.declared_frames, self.info.duration_ms) {
            (Some(n), Some(d)) => format!(" (it declares {n} frames, {:.2} s)", d / 1000.0),
            (None, Some(d)) => format!(" (it declares {:.2} s)", d / 1000.0),
            (Some(n), None) => format!(" (it declares {n} frames)"),
            (None, None) => String::new(),
        };
        format!("the file is cut short or damaged at its end{declared}")
    }

    fn input_at_eof(&self) -> bool {
        // SAFETY: reading the I/O context pointer of our own open format context;
        // `avio_feof` only reads its flags.
        unsafe {
            let pb = (*self.input.as_ptr()).pb;
            !pb.is_null() && ffi::avio_feof(pb) != 0
        }
    }

    /// The picture in `self.decoded` as an upright, timed [`Frame`].
    fn deliver(&mut self) -> Result<Frame, DecodeError> {
        let pts_ms = self.clock.next(self.decoded.timestamp());
        self.last_pts_ms = pts_ms;
        let image = self.decoded_to_rgb()?;
        let image = rotate_clockwise(image, self.rotation);
        let frame = Frame {
            source: self.info.source.clone(),
            index: self.next_index,
            pts_ms,
            captured_at: Instant::now(),
            image,
        };
        self.next_index += 1;
        Ok(frame)
    }

    fn decoded_to_rgb(&mut self) -> Result<RgbImage, DecodeError> {
        let src = &self.decoded;
        let (format, width, height) = (src.format(), src.width(), src.height());
        // SAFETY: reading plain fields of a frame the decoder just filled.
        let (colorspace, range) =
            unsafe { ((*src.as_ptr()).colorspace, (*src.as_ptr()).color_range) };
        let full_range = range == ffi::AVColorRange::AVCOL_RANGE_JPEG
            || matches!(
                format,
                Pixel::YUVJ420P
                    | Pixel::YUVJ422P
                    | Pixel::YUVJ444P
                    | Pixel::YUVJ440P
                    | Pixel::YUVJ411P
            );
        let key = (format, width, height, colorspace, full_range);
        if self.converter.as_ref().is_none_or(|c| c.key != key) {
            let scaler = scaling::Context::get(
                format,
                width,
                height,
                Pixel::RGB24,
                width,
                height,
                scaling::Flags::BILINEAR,
            )
            .map_err(|e| {
                self.stopped(format!(
                    "cannot convert pixel format {format:?} {width}x{height} to RGB: {e}"
                ))
            })?;
            let mut converter = RgbConverter {
                key,
                scaler,
                rgb: frame::Video::new(Pixel::RGB24, width, height),
            };
            set_yuv_colorimetry(&mut converter.scaler, colorspace, full_range);
            self.converter = Some(converter);
        }
        let converter = self.converter.as_mut().expect("converter set above");
        converter
            .scaler
            .run(&self.decoded, &mut converter.rgb)
            .map_err(|e| DecodeError::Stopped {
                input: self.info.source.to_string(),
                at_ms: self.last_pts_ms,
                frames: self.next_index,
                reason: format!("pixel conversion failed: {e}"),
            })?;
        Ok(packed_rgb(&converter.rgb))
    }
}

/// Copies an RGB24 frame (rows padded to FFmpeg's alignment) into a tight buffer.
fn packed_rgb(rgb: &frame::Video) -> RgbImage {
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let stride = rgb.stride(0);
    let data = rgb.data(0);
    let mut out = Vec::with_capacity(w * h * 3);
    for row in data.chunks(stride).take(h) {
        out.extend_from_slice(&row[..w * 3]);
    }
    RgbImage::from_raw(w as u32, h as u32, out).expect("buffer sized w*h*3")
}

/// Tells swscale which YUV matrix (BT.601/709/2020...) and range the source uses;
/// without this it assumes BT.601 limited range whatever the stream says.
fn set_yuv_colorimetry(
    scaler: &mut scaling::Context,
    colorspace: ffi::AVColorSpace,
    full_range: bool,
) {
    // SAFETY: `sws_getCoefficients` returns a pointer to a static table (any index is
    // accepted: out-of-range ones give the default); `sws_setColorspaceDetails` only
    // updates our context (and refuses, harmlessly, for non-YUV input).
    unsafe {
        let ctx = scaler.as_mut_ptr();
        let src_table = ffi::sws_getCoefficients(colorspace as i32);
        let dst_table = ffi::sws_getCoefficients(ffi::SWS_CS_DEFAULT);
        ffi::sws_setColorspaceDetails(
            ctx,
            src_table,
            full_range as i32,
            dst_table,
            1,
            0,
            1 << 16,
            1 << 16,
        );
    }
}

fn rate_to_f64(r: Rational) -> Option<f64> {
    (r.numerator() > 0 && r.denominator() > 0).then(|| f64::from(r))
}

/// The stream's display rotation, clockwise: its display matrix, else a `rotate` tag.
fn stream_rotation(stream: &ffmpeg::format::stream::Stream) -> u32 {
    for side in stream.side_data() {
        if side.kind() == codec::packet::side_data::Type::DisplayMatrix && side.data().len() >= 36 {
            let mut m = [0i32; 9];
            for (v, bytes) in m.iter_mut().zip(side.data().chunks_exact(4)) {
                *v = i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
            if let Some(r) = rotation_from_display_matrix(&m) {
                return r;
            }
        }
    }
    // The classic tag states clockwise degrees.
    stream
        .metadata()
        .get("rotate")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, quarter_turns_clockwise)
}

fn open_error(name: &str, is_network: bool, e: FfError) -> DecodeError {
    match e {
        FfError::Other { errno } if errno == ENOENT && !is_network => DecodeError::NotFound {
            input: name.to_string(),
        },
        FfError::InvalidData | FfError::StreamNotFound | FfError::DemuxerNotFound
            if !is_network =>
        {
            DecodeError::NotAVideo {
                input: name.to_string(),
                reason: e.to_string(),
            }
        }
        e => DecodeError::Stream {
            input: name.to_string(),
            reason: e.to_string(),
        },
    }
}

impl Iterator for VideoFileSource {
    type Item = Result<Frame, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.state == State::Done {
                return None;
            }
            if self.watchdog.is_cancelled() {
                self.state = State::Done;
                return None;
            }
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => {
                    self.consecutive_errors = 0;
                    let frame = self.deliver();
                    if frame.is_err() {
                        self.state = State::Done;
                    }
                    return Some(frame);
                }
                Err(FfError::Other { errno }) if errno == EAGAIN => {
                    if self.state == State::Draining {
                        // Cannot happen after send_eof; end rather than spin.
                        self.state = State::Done;
                        return self.pending_error.take().map(|r| Err(self.stopped(r)));
                    }
                    if !self.feed() {
                        return None;
                    }
                }
                Err(FfError::Eof) => {
                    self.state = State::Done;
                    return self.pending_error.take().map(|r| Err(self.stopped(r)));
                }
                Err(_) => {
                    // The decoder rejected a packet it had accepted (frame threading
                    // reports errors late): skip it like one refused at once.
                    if !self.count_corrupt() {
                        let reason =
                            format!("{MAX_CONSECUTIVE_ERRORS} undecodable packets in a row");
                        if self.state == State::Reading {
                            self.start_draining(Some(reason));
                        } else {
                            self.state = State::Done;
                            let reason = self.pending_error.take().unwrap_or(reason);
                            return Some(Err(self.stopped(reason)));
                        }
                    }
                }
            }
        }
    }
}

impl FrameSource for VideoFileSource {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn corrupt_packets(&self) -> u64 {
        self.corrupt
    }
}

impl std::fmt::Debug for VideoFileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoFileSource")
            .field("info", &self.info)
            .field("rotation", &self.rotation)
            .field("time_base", &self.stream_time_base)
            .field("next_index", &self.next_index)
            .finish_non_exhaustive()
    }
}
