//! Still images (and `--crops` face crops): one frame at pts 0, EXIF orientation applied.

use std::path::Path;
use std::time::Instant;

use image::{DynamicImage, ImageDecoder, ImageReader};

use super::{DecodeError, FrameSource, SourceInfo};
use crate::frame::{Frame, RgbImage, SourceId};

/// Reads an image file as RGB8, turned the way its EXIF orientation says it is viewed.
/// The format is guessed from the file's first bytes, not its extension.
pub fn load_still(path: &Path) -> Result<RgbImage, DecodeError> {
    let input = || path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DecodeError::NotFound { input: input() },
        _ => DecodeError::Io {
            input: input(),
            source: e,
        },
    })?;
    if meta.len() == 0 {
        return Err(DecodeError::EmptyFile { input: input() });
    }
    let reader = ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| DecodeError::Io {
            input: input(),
            source: e,
        })?;
    let image_err = |e| DecodeError::Image {
        input: input(),
        source: e,
    };
    let mut decoder = reader.into_decoder().map_err(image_err)?;
    // A missing or unreadable EXIF block means "as stored", not an error.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(image_err)?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// A still image as a source of exactly one frame.
pub(crate) struct StillSource {
    info: SourceInfo,
    frame: Option<Frame>,
}

impl StillSource {
    /// Decodes the image now, so a bad file fails at open.
    pub fn open(path: &Path) -> Result<Self, DecodeError> {
        let image = load_still(path)?;
        let source = SourceId::new(path.display().to_string());
        let info = SourceInfo {
            source: source.clone(),
            frame_count_estimate: Some(1),
            fps: None,
            duration_ms: None,
            live: false,
            width: image.width(),
            height: image.height(),
        };
        let frame = Frame {
            source,
            index: 0,
            pts_ms: 0.0,
            captured_at: Instant::now(),
            image,
        };
        Ok(Self {
            info,
            frame: Some(frame),
        })
    }
}

impl Iterator for StillSource {
    type Item = Result<Frame, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.frame.take().map(|mut f| {
            f.captured_at = Instant::now();
            Ok(f)
        })
    }
}

impl FrameSource for StillSource {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }
}
