//! The one error type of the dataset readers.
//!
//! Every variant names the file (and, for label files, the 1-based line) so a
//! user can open the culprit directly. Causes (I/O, image decoding) are kept
//! as `source()`, not repeated in the message: print with anyhow's `{:#}` to
//! see the whole chain.

use std::io;
use std::path::PathBuf;

use super::Split;

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A dataset root, split folder or label file that is not there.
    #[error("{what} not found: {}", path.display())]
    NotFound { what: &'static str, path: PathBuf },

    /// A file or folder that exists but cannot be read.
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A line of a label file that does not follow the format.
    #[error("{}:{line}: {reason}", file.display())]
    Malformed {
        file: PathBuf,
        line: usize,
        reason: String,
    },

    /// The image named on a line of a label file is missing or undecodable.
    #[error("{}:{line}: cannot load image {}", file.display(), image.display())]
    LineImage {
        file: PathBuf,
        line: usize,
        image: PathBuf,
        #[source]
        source: image::ImageError,
    },

    /// An image of a folder-per-class layout is undecodable.
    #[error("cannot load image {}", image.display())]
    Image {
        image: PathBuf,
        #[source]
        source: image::ImageError,
    },

    /// A folder layout that cannot be read as the dataset (an unknown class
    /// folder, two folders for one class, an empty class folder, a bad limit).
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },

    /// The file or folder parsed, but no sample is left to train or test on.
    #[error("{}: no usable samples ({detail})", path.display())]
    Empty { path: PathBuf, detail: String },

    /// The dataset does not publish this split.
    #[error("{dataset} has no {split} split: {hint}")]
    SplitNotAvailable {
        dataset: &'static str,
        split: Split,
        hint: &'static str,
    },

    /// A dataset kind, split or label mode name that is not known (CLI parsing).
    #[error("unknown {what} {name:?}; expected one of: {expected}")]
    UnknownName {
        what: &'static str,
        name: String,
        expected: &'static str,
    },
}
