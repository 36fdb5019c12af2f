//! Decoded frames: pixels that know their format, size, source and time.

use std::sync::Arc;
use std::time::Instant;

/// Packed 8-bit RGB pixels, row-major, no padding (`image` crate's buffer).
pub type RgbImage = image::RgbImage;

/// Where a frame came from, as written in the `source` column: a file path,
/// a URL or `webcam:N`. Cheap to clone (shared string).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourceId(Arc<str>);

impl SourceId {
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One decoded picture, always converted to packed RGB8 by the decoder
/// (any display rotation already applied).
#[derive(Clone, Debug)]
pub struct Frame {
    pub source: SourceId,
    /// 0-based index of this frame among the frames decoded from `source`.
    /// Monotonic and gap-free per source: a frame dropped in live mode keeps its
    /// index (and gets a row marked skipped), so indices never skip.
    pub index: u64,
    /// Presentation time in milliseconds from the stream's start, computed from
    /// the packet PTS and the stream time base (so it is right for variable frame
    /// rate). Monotonic non-decreasing per source. Stills have 0.
    pub pts_ms: f64,
    /// Wall-clock instant the frame left the decoder or camera, for latency.
    pub captured_at: Instant,
    pub image: RgbImage,
}

impl Frame {
    pub fn width(&self) -> u32 {
        self.image.width()
    }

    pub fn height(&self) -> u32 {
        self.image.height()
    }
}
