//! FER2013 (Goodfellow et al. 2013, the Kaggle ICML challenge): 35,887 grey
//! 48x48 faces stored as pixel text inside one CSV.
//!
//! ```text
//! emotion,pixels,Usage
//! 0,"70 80 82 ... (2304 values 0..255, row-major)",Training
//! ```
//!
//! `Usage` gives the split: `Training` → train, `PublicTest` → valid,
//! `PrivateTest` → test.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage};

use super::files::for_each_csv_record;
use super::{DatasetError, LabeledSample, LabeledSet, Split, one_hot};

/// FER2013's 7 classes; `emotion` `k` is `FER2013_CLASSES[k]`.
pub const FER2013_CLASSES: [&str; 7] = [
    "Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral",
];

const SIDE: u32 = 48;
const HEADER: [&str; 3] = ["emotion", "pixels", "Usage"];

/// Loads one split of `fer2013.csv` at `path` with one-hot targets.
///
/// The header must be `emotion,pixels,Usage`; every row is checked (3
/// columns, emotion 0..6, exactly 2304 pixel values 0..255, a known Usage),
/// those of the other splits included. A sample's `source` is
/// `<path>:<line>`.
pub fn load_fer2013_csv(path: &Path, split: Split) -> Result<LabeledSet, DatasetError> {
    let wanted_usage = match split {
        Split::Train => "Training",
        Split::Valid => "PublicTest",
        Split::Test => "PrivateTest",
    };
    let mut samples = Vec::new();
    let mut header = true;
    for_each_csv_record(path, "FER2013 CSV file", |line, record| {
        let malformed = |reason: String| DatasetError::Malformed {
            file: path.to_path_buf(),
            line,
            reason,
        };
        if std::mem::take(&mut header) {
            let names: Vec<&str> = record
                .iter()
                .map(|name| name.trim().trim_start_matches('\u{feff}'))
                .collect();
            return if names == HEADER {
                Ok(())
            } else {
                Err(malformed(format!(
                    "header is {names:?}, expected \"emotion,pixels,Usage\""
                )))
            };
        }
        if record.len() != HEADER.len() {
            return Err(malformed(format!(
                "expected 3 columns (emotion, pixels, Usage), found {}",
                record.len()
            )));
        }
        let emotion = record[0].trim();
        let class = emotion
            .parse::<usize>()
            .ok()
            .filter(|&class| class < FER2013_CLASSES.len())
            .ok_or_else(|| malformed(format!("emotion {emotion:?} is not one of 0..6")))?;
        let usage = record[2].trim();
        if !["Training", "PublicTest", "PrivateTest"].contains(&usage) {
            return Err(malformed(format!(
                "Usage {usage:?} is not Training, PublicTest or PrivateTest"
            )));
        }
        let pixels = parse_pixels(&record[1]).map_err(malformed)?;
        if usage == wanted_usage {
            let image = GrayImage::from_raw(SIDE, SIDE, pixels)
                .expect("parse_pixels returns exactly SIDE * SIDE values");
            samples.push(LabeledSample {
                image: DynamicImage::ImageLuma8(image),
                target: one_hot(FER2013_CLASSES.len(), class),
                source: source_of_line(path, line),
            });
        }
        Ok(())
    })?;
    if samples.is_empty() {
        return Err(DatasetError::Empty {
            path: path.to_path_buf(),
            detail: format!("no row has Usage {wanted_usage}"),
        });
    }
    Ok(LabeledSet {
        classes: FER2013_CLASSES
            .iter()
            .map(|name| name.to_string())
            .collect(),
        samples,
    })
}

/// Parses the space-separated grey levels of one 48x48 image, row-major.
fn parse_pixels(text: &str) -> Result<Vec<u8>, String> {
    let mut pixels = Vec::with_capacity((SIDE * SIDE) as usize);
    for value in text.split_ascii_whitespace() {
        let level = value
            .parse::<u8>()
            .map_err(|_| format!("pixel {} is {value:?}, not 0..255", pixels.len() + 1))?;
        pixels.push(level);
    }
    if pixels.len() != (SIDE * SIDE) as usize {
        return Err(format!(
            "{} pixel values, expected {} (48x48)",
            pixels.len(),
            SIDE * SIDE
        ));
    }
    Ok(pixels)
}

/// `<path>:<line>`, the `source` of an image stored on a line of a CSV.
fn source_of_line(path: &Path, line: usize) -> PathBuf {
    let mut source = OsString::from(path.as_os_str());
    source.push(format!(":{line}"));
    PathBuf::from(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_must_be_2304_grey_levels() {
        let good = vec!["7"; 2304].join(" ");
        assert_eq!(parse_pixels(&good).unwrap(), vec![7u8; 2304]);
        let short = vec!["7"; 2303].join(" ");
        assert!(
            parse_pixels(&short)
                .unwrap_err()
                .contains("2303 pixel values")
        );
        let out_of_range = format!("{} 256", vec!["7"; 2303].join(" "));
        assert!(
            parse_pixels(&out_of_range)
                .unwrap_err()
                .contains("pixel 2304 is \"256\"")
        );
    }

    #[test]
    fn a_csv_image_source_names_the_file_and_line() {
        assert_eq!(
            source_of_line(Path::new("d/fer2013.csv"), 12),
            PathBuf::from("d/fer2013.csv:12")
        );
    }
}
