//! Dataset readers: facial-expression sets decoded into memory for fine-tuning
//! and evaluation, and unlabelled general images for MAE pre-training.
//!
//! One file per on-disk format:
//!
//! | reader | format |
//! |---|---|
//! | [`load_ferplus`] | FER+ (`FER2013{Train,Valid,Test}/label.csv` vote counts + PNGs), majority or probability labels |
//! | [`load_rafdb`] | RAF-DB basic (`EmoLabel/list_patition_label.txt` + `Image/aligned/`) |
//! | [`load_affectnet`] | AffectNet, a folder per class or the official `training.csv` / `validation.csv` |
//! | [`load_fer2013_csv`] | Kaggle's `fer2013.csv` (pixels inside the CSV) |
//! | [`load_image_folder`] | `<root>/<class>/*.{png,jpg,jpeg,bmp}` |
//! | [`load_unlabeled_images`] | any folder tree of images, for pre-training |
//!
//! Every labelled reader returns a [`LabeledSet`]: the class names and, per
//! sample, the image as stored (grey stays grey) and a class distribution.
//! Label files are parsed in one pass and every line is checked; images are
//! decoded in parallel with rayon. Bad input is an error that names the file
//! and, for label files, the 1-based line ([`DatasetError`]); no line is
//! skipped silently. The only rows left out are those the dataset's own
//! protocol excludes (FER+ images without a usable emotion label, AffectNet's
//! "none / uncertain / no face" expressions), and each reader says which.

mod affectnet;
mod error;
mod fer2013;
mod ferplus;
mod files;
mod image_folder;
mod rafdb;
mod unlabeled;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use affectnet::{AFFECTNET_CLASSES, load_affectnet};
pub use error::DatasetError;
pub use fer2013::{FER2013_CLASSES, load_fer2013_csv};
pub use ferplus::{
    FERPLUS_CLASSES, FerPlusVotes, ferplus_majority_target, ferplus_probability_target,
    load_ferplus,
};
pub use image_folder::load_image_folder;
pub use rafdb::{RAFDB_CLASSES, load_rafdb};
pub use unlabeled::load_unlabeled_images;

/// A labelled image set, decoded into memory.
#[derive(Debug, Clone)]
pub struct LabeledSet {
    /// Class names; index `k` of every target refers to `classes[k]`.
    pub classes: Vec<String>,
    pub samples: Vec<LabeledSample>,
}

/// One labelled image.
#[derive(Debug, Clone)]
pub struct LabeledSample {
    /// The image as stored: a grey file stays `ImageLuma8`, nothing is resized.
    pub image: image::DynamicImage,
    /// Class distribution: `len == classes.len()`, non-negative, sums to 1
    /// (one-hot for single-label data and for FER+ majority labels).
    pub target: Vec<f32>,
    /// Where the image came from: its file, or `<csv file>:<line>` for images
    /// stored inside a CSV (FER2013).
    pub source: PathBuf,
}

impl LabeledSample {
    /// Index of the most probable class (the first one on a tie).
    pub fn label(&self) -> usize {
        argmax(&self.target)
    }
}

impl LabeledSet {
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Number of samples per class, counting each sample at its [`LabeledSample::label`].
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for sample in &self.samples {
            counts[sample.label()] += 1;
        }
        counts
    }
}

/// How FER+'s ten crowd votes per image become a target (see [`load_ferplus`]).
/// Single-label datasets give one-hot targets in either mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LabelMode {
    /// One-hot of the strict majority emotion (the FER+ evaluation protocol).
    #[default]
    Majority,
    /// The vote distribution over the leading emotions (soft labels).
    Probability,
}

/// Which part of a dataset to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Valid,
    Test,
}

/// The on-disk formats [`load`] can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetKind {
    FerPlus,
    RafDb,
    AffectNet,
    Fer2013Csv,
    ImageFolder,
}

/// Loads `split` of a dataset of `kind` found at `root`.
///
/// `root` is what the format's own reader takes, except for
/// [`DatasetKind::Fer2013Csv`], where it may also be a folder holding
/// `fer2013.csv`, and [`DatasetKind::ImageFolder`], where `<root>/<split>`
/// (`train`, `val`/`valid`/`validation`, `test`, any case) is loaded when it
/// exists and `root` itself otherwise. `mode` matters only for FER+.
pub fn load(
    kind: DatasetKind,
    root: &Path,
    split: Split,
    mode: LabelMode,
) -> Result<LabeledSet, DatasetError> {
    match kind {
        DatasetKind::FerPlus => load_ferplus(root, split, mode),
        DatasetKind::RafDb => load_rafdb(root, split),
        DatasetKind::AffectNet => load_affectnet(root, split),
        DatasetKind::Fer2013Csv => {
            let csv_path = if root.is_dir() {
                root.join("fer2013.csv")
            } else {
                root.to_path_buf()
            };
            load_fer2013_csv(&csv_path, split)
        }
        DatasetKind::ImageFolder => {
            let folder = files::split_folder(root, split)?.unwrap_or_else(|| root.to_path_buf());
            load_image_folder(&folder)
        }
    }
}

impl Split {
    /// Folder names that hold this split in per-split layouts (lower case).
    pub(crate) fn folder_names(self) -> &'static [&'static str] {
        match self {
            Split::Train => &["train", "training"],
            Split::Valid => &["val", "valid", "validation"],
            Split::Test => &["test", "testing"],
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::Test => "test",
        })
    }
}

impl FromStr for Split {
    type Err = DatasetError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.to_ascii_lowercase().as_str() {
            "train" | "training" => Ok(Split::Train),
            "valid" | "val" | "validation" => Ok(Split::Valid),
            "test" | "testing" => Ok(Split::Test),
            _ => Err(DatasetError::UnknownName {
                what: "split",
                name: name.to_owned(),
                expected: "train, valid, test",
            }),
        }
    }
}

impl fmt::Display for LabelMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LabelMode::Majority => "majority",
            LabelMode::Probability => "probability",
        })
    }
}

impl FromStr for LabelMode {
    type Err = DatasetError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.to_ascii_lowercase().as_str() {
            "majority" => Ok(LabelMode::Majority),
            "probability" => Ok(LabelMode::Probability),
            _ => Err(DatasetError::UnknownName {
                what: "label mode",
                name: name.to_owned(),
                expected: "majority, probability",
            }),
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DatasetKind::FerPlus => "ferplus",
            DatasetKind::RafDb => "rafdb",
            DatasetKind::AffectNet => "affectnet",
            DatasetKind::Fer2013Csv => "fer2013",
            DatasetKind::ImageFolder => "imagefolder",
        })
    }
}

impl FromStr for DatasetKind {
    type Err = DatasetError;

    /// Accepts the [`Display`](fmt::Display) names, any case, with or without
    /// `-` / `_` (`fer+`, `raf-db`, `image-folder`, `fer2013-csv` all work).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let key: String = name
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .collect::<String>()
            .to_ascii_lowercase();
        match key.as_str() {
            "ferplus" | "fer+" => Ok(DatasetKind::FerPlus),
            "rafdb" | "raf" => Ok(DatasetKind::RafDb),
            "affectnet" => Ok(DatasetKind::AffectNet),
            "fer2013" | "fer2013csv" => Ok(DatasetKind::Fer2013Csv),
            "imagefolder" | "folder" => Ok(DatasetKind::ImageFolder),
            _ => Err(DatasetError::UnknownName {
                what: "dataset kind",
                name: name.to_owned(),
                expected: "ferplus, rafdb, affectnet, fer2013, imagefolder",
            }),
        }
    }
}

/// One-hot distribution of length `classes` with the mass at `class`.
pub(crate) fn one_hot(classes: usize, class: usize) -> Vec<f32> {
    let mut target = vec![0.0; classes];
    target[class] = 1.0;
    target
}

/// Index of the largest value, the first one on a tie (numpy's `argmax`).
pub(crate) fn argmax<T: PartialOrd + Copy>(values: &[T]) -> usize {
    let mut best = 0;
    for (index, &value) in values.iter().enumerate() {
        if value > values[best] {
            best = index;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_tied_maxima() {
        assert_eq!(argmax(&[1, 3, 3, 2]), 1);
        assert_eq!(argmax(&[0.0f32, 0.0]), 0);
        assert_eq!(argmax(&[0.1f32, 0.2, 0.7]), 2);
    }

    #[test]
    fn names_parse_in_the_spellings_a_cli_user_types() {
        assert_eq!("FER+".parse::<DatasetKind>().unwrap(), DatasetKind::FerPlus);
        assert_eq!("raf-db".parse::<DatasetKind>().unwrap(), DatasetKind::RafDb);
        assert_eq!(
            "image_folder".parse::<DatasetKind>().unwrap(),
            DatasetKind::ImageFolder
        );
        assert_eq!(
            "fer2013".parse::<DatasetKind>().unwrap(),
            DatasetKind::Fer2013Csv
        );
        assert_eq!("val".parse::<Split>().unwrap(), Split::Valid);
        assert_eq!(
            "Probability".parse::<LabelMode>().unwrap(),
            LabelMode::Probability
        );
        let error = "cifar".parse::<DatasetKind>().unwrap_err().to_string();
        assert!(
            error.contains("cifar") && error.contains("ferplus"),
            "{error}"
        );
        for kind in [
            DatasetKind::FerPlus,
            DatasetKind::RafDb,
            DatasetKind::AffectNet,
            DatasetKind::Fer2013Csv,
            DatasetKind::ImageFolder,
        ] {
            assert_eq!(kind.to_string().parse::<DatasetKind>().unwrap(), kind);
        }
    }
}
