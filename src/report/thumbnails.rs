//! Each track's best face, cut from its input with a margin and stored as a small
//! JPEG, ready to inline in the page.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;

use super::summary::ReportSummary;
use crate::decode::{InputSpec, expand_inputs, open};

/// Longer side of a thumbnail, in pixels.
const SIDE: u32 = 128;

/// A face picture as a `data:` URL (JPEG).
#[derive(Clone, Debug, PartialEq)]
pub struct Thumbnail {
    pub data_url: String,
    pub frame: u64,
}

/// One thumbnail per track of `summary` (in its order); `None` where the input cannot
/// be read again (a stream, a camera, a file since moved).
pub fn cut_thumbnails(summary: &ReportSummary) -> Vec<Option<Thumbnail>> {
    let mut out = vec![None; summary.tracks.len()];
    // Per source, the frames to keep and whose faces they show.
    let mut wanted: HashMap<&str, BTreeMap<u64, Vec<usize>>> = HashMap::new();
    for (i, t) in summary.tracks.iter().enumerate() {
        wanted
            .entry(t.source.as_str())
            .or_default()
            .entry(t.best.frame)
            .or_default()
            .push(i);
    }
    for (source, frames) in wanted {
        let Ok(specs) = expand_inputs(&[source.to_string()]) else {
            continue;
        };
        let Some(spec @ (InputSpec::Video(_) | InputSpec::Still(_))) = specs.first() else {
            continue;
        };
        let Ok(decoded) = open(spec) else { continue };
        let last = frames.keys().next_back().copied().unwrap_or(0);
        for frame in decoded.map_while(Result::ok) {
            if let Some(tracks) = frames.get(&frame.index) {
                for &t in tracks {
                    out[t] =
                        cut(&frame.image, summary.tracks[t].best.xywh).map(|data_url| Thumbnail {
                            data_url,
                            frame: frame.index,
                        });
                }
            }
            if frame.index >= last {
                break;
            }
        }
    }
    out
}

/// The box `xywh` of `image` with a quarter of its size around it, scaled to
/// [`SIDE`], as a JPEG data URL.
fn cut(image: &image::RgbImage, xywh: [f32; 4]) -> Option<String> {
    let [x, y, w, h] = xywh;
    if !(w > 0.0 && h > 0.0) {
        return None;
    }
    let margin = 0.25 * w.max(h);
    let x0 = (x - margin).max(0.0) as u32;
    let y0 = (y - margin).max(0.0) as u32;
    let x1 = ((x + w + margin) as u32).min(image.width());
    let y1 = ((y + h + margin) as u32).min(image.height());
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    let crop = image::imageops::crop_imm(image, x0, y0, x1 - x0, y1 - y0).to_image();
    let scale = SIDE as f32 / (x1 - x0).max(y1 - y0) as f32;
    let (tw, th) = (
        (((x1 - x0) as f32 * scale).round() as u32).max(1),
        (((y1 - y0) as f32 * scale).round() as u32).max(1),
    );
    let small = image::imageops::resize(&crop, tw, th, image::imageops::FilterType::Triangle);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
        .encode_image(&small)
        .ok()?;
    Some(format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(jpeg)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_is_cut_with_its_margin_and_scaled() {
        let image = image::RgbImage::from_pixel(200, 100, image::Rgb([10, 200, 30]));
        let url = cut(&image, [50.0, 20.0, 40.0, 40.0]).unwrap();
        assert!(url.starts_with("data:image/jpeg;base64,"));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(url.trim_start_matches("data:image/jpeg;base64,"))
            .unwrap();
        let back = image::load_from_memory(&bytes).unwrap();
        assert_eq!((back.width(), back.height()), (128, 128));
        assert!(cut(&image, [0.0, 0.0, 0.0, 10.0]).is_none());
    }
}
