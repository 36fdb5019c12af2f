//! File-system helpers shared by the readers: finding image files, opening
//! label files, and decoding many images in parallel with errors that point
//! at the line (or file) that named them.

use std::fs::File;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageError, ImageReader};
use rayon::prelude::*;
use walkdir::WalkDir;

use super::{DatasetError, LabeledSample, Split};

/// File extensions (lower case) read as images by the folder layouts.
pub(crate) const IMAGE_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// An image still to decode, with the target it will carry.
pub(crate) struct PendingSample {
    /// The 1-based line of the label file that named the image, if any.
    pub line: Option<usize>,
    pub image: PathBuf,
    pub target: Vec<f32>,
}

/// Fails with [`DatasetError::NotFound`] unless `path` exists.
pub(crate) fn require_exists(path: &Path, what: &'static str) -> Result<(), DatasetError> {
    if path.exists() {
        Ok(())
    } else {
        Err(DatasetError::NotFound {
            what,
            path: path.to_path_buf(),
        })
    }
}

/// Opens a label file, naming it in the error when it is absent or unreadable.
pub(crate) fn open_label_file(path: &Path, what: &'static str) -> Result<File, DatasetError> {
    require_exists(path, what)?;
    File::open(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Streams the records of a CSV file (header included, as line 1, when the
/// format has one), calling `each(line, record)` with the record's 1-based
/// line. Blank lines are not records. Column counts may vary: the caller
/// checks them, so that the error can say what the columns should be.
pub(crate) fn for_each_csv_record(
    path: &Path,
    what: &'static str,
    mut each: impl FnMut(usize, &csv::StringRecord) -> Result<(), DatasetError>,
) -> Result<(), DatasetError> {
    let file = open_label_file(path, what)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(std::io::BufReader::new(file));
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = record
                    .position()
                    .map_or(0, |position| position.line() as usize);
                each(line, &record)?;
            }
            Err(error) => {
                let line = error
                    .position()
                    .map_or_else(|| reader.position().line(), |position| position.line());
                let message = error.to_string();
                return Err(match error.into_kind() {
                    csv::ErrorKind::Io(source) => DatasetError::Io {
                        path: path.to_path_buf(),
                        source,
                    },
                    _ => DatasetError::Malformed {
                        file: path.to_path_buf(),
                        line: line as usize,
                        reason: format!("not readable as CSV: {message}"),
                    },
                });
            }
        }
    }
}

/// Decodes one image file, trusting its content over its extension.
pub(crate) fn decode_image(path: &Path) -> Result<DynamicImage, ImageError> {
    ImageReader::open(path)
        .map_err(ImageError::IoError)?
        .with_guessed_format()
        .map_err(ImageError::IoError)?
        .decode()
}

/// Decodes every pending image in parallel, keeping their order.
///
/// On failure, the error is the one of the earliest pending sample (lowest
/// line), whatever order the threads finished in, so messages are
/// repeatable. `label_file` is the file the `line`s refer to.
pub(crate) fn decode_samples(
    label_file: Option<&Path>,
    pending: Vec<PendingSample>,
) -> Result<Vec<LabeledSample>, DatasetError> {
    let decoded: Vec<Result<LabeledSample, DatasetError>> = pending
        .into_par_iter()
        .map(|sample| match decode_image(&sample.image) {
            Ok(image) => Ok(LabeledSample {
                image,
                target: sample.target,
                source: sample.image,
            }),
            Err(source) => Err(match (label_file, sample.line) {
                (Some(file), Some(line)) => DatasetError::LineImage {
                    file: file.to_path_buf(),
                    line,
                    image: sample.image,
                    source,
                },
                _ => DatasetError::Image {
                    image: sample.image,
                    source,
                },
            }),
        })
        .collect();
    decoded.into_iter().collect()
}

/// Whether `path` has one of [`IMAGE_EXTENSIONS`] (any case) and is not a
/// hidden file (macOS `._name.jpg` resource forks and the like).
pub(crate) fn is_image_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|name| name.to_str())
        .is_none_or(|name| name.starts_with('.'));
    let extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .map(|extension| extension.to_ascii_lowercase());
    !hidden && extension.is_some_and(|extension| IMAGE_EXTENSIONS.contains(&extension.as_str()))
}

/// Every image file under `folder`, recursively, in sorted path order
/// (symbolic links followed).
pub(crate) fn image_files_under(folder: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let mut images = Vec::new();
    for entry in WalkDir::new(folder).follow_links(true) {
        let entry = entry.map_err(|error| DatasetError::Io {
            path: error
                .path()
                .map_or_else(|| folder.to_path_buf(), Path::to_path_buf),
            source: error.into(),
        })?;
        if entry.file_type().is_file() && is_image_file(entry.path()) {
            images.push(entry.into_path());
        }
    }
    images.sort();
    Ok(images)
}

/// The sub-folders of `folder` (not hidden), sorted by name.
pub(crate) fn sub_folders(folder: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let io_error = |source| DatasetError::Io {
        path: folder.to_path_buf(),
        source,
    };
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        let hidden = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_none_or(|name| name.starts_with('.'));
        if path.is_dir() && !hidden {
            folders.push(path);
        }
    }
    folders.sort();
    Ok(folders)
}

/// The folder of `root` that holds `split` (`train`/`training`,
/// `val`/`valid`/`validation`, `test`/`testing`, any case), if there is one.
pub(crate) fn split_folder(root: &Path, split: Split) -> Result<Option<PathBuf>, DatasetError> {
    if !root.is_dir() {
        return Ok(None);
    }
    Ok(sub_folders(root)?.into_iter().find(|folder| {
        folder
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| {
                split
                    .folder_names()
                    .contains(&name.to_ascii_lowercase().as_str())
            })
    }))
}

/// The final name of `path` as text, for messages and class names.
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_files_are_recognised_by_extension_in_any_case_but_not_when_hidden() {
        assert!(is_image_file(Path::new("a/b.JPEG")));
        assert!(is_image_file(Path::new("b.png")));
        assert!(is_image_file(Path::new("b.Bmp")));
        assert!(!is_image_file(Path::new("a/._b.jpg")));
        assert!(!is_image_file(Path::new("words.txt")));
        assert!(!is_image_file(Path::new("noextension")));
    }
}
