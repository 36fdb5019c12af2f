//! AffectNet (Mollahosseini et al. 2017), its 8 expression classes.
//!
//! Two layouts are read, tried in this order for a split:
//!
//! 1. The official annotation CSV, `training.csv` (train) or `validation.csv`
//!    (valid), at `<root>/` or `<root>/Manually_Annotated_file_lists/`:
//!    `subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal`
//!    with a header line. Images are found at
//!    `<root>/Manually_Annotated_Images/<subDirectory_filePath>` when that
//!    folder exists, else at `<root>/<subDirectory_filePath>`. Expressions
//!    0..7 are the classes; 8, 9 and 10 (none, uncertain, no face) are
//!    excluded, as the AffectNet paper's 8-class protocol does. The image is
//!    kept as stored; the face box columns are not applied. The official
//!    release has no public test split: its validation set is what papers
//!    report as "test".
//! 2. A folder per class, `<root>/<split>/<class>/**/*.jpg` (the common
//!    re-packaged layout; `<split>` is `train`, `val`/`valid`/`validation` or
//!    `test`, any case). A class folder is named after the class (any case,
//!    a few common spellings: `happiness`, `angry`, …) or is its digit 0..7.

use std::path::{Path, PathBuf};

use super::files::{
    PendingSample, decode_samples, file_name, for_each_csv_record, image_files_under,
    require_exists, split_folder, sub_folders,
};
use super::{DatasetError, LabeledSet, Split, one_hot};

/// AffectNet's 8 classes; expression `k` is `AFFECTNET_CLASSES[k]`.
pub const AFFECTNET_CLASSES: [&str; 8] = [
    "Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt",
];

/// Other spellings of each class seen in re-packaged copies (lower case).
const CLASS_ALIASES: [&[&str]; 8] = [
    &["neutral"],
    &["happy", "happiness"],
    &["sad", "sadness"],
    &["surprise", "surprised"],
    &["fear", "fearful"],
    &["disgust", "disgusted"],
    &["anger", "angry"],
    &["contempt"],
];

/// Columns of the official annotation CSV.
const CSV_COLUMNS: usize = 9;
/// Column of `expression` in the official annotation CSV.
const EXPRESSION_COLUMN: usize = 6;

/// Loads one split of AffectNet (either layout, see the module doc) with
/// one-hot targets over [`AFFECTNET_CLASSES`].
pub fn load_affectnet(root: &Path, split: Split) -> Result<LabeledSet, DatasetError> {
    require_exists(root, "AffectNet root folder")?;
    if let Some(csv_path) = annotation_csv(root, split) {
        return load_from_csv(root, &csv_path);
    }
    if let Some(folder) = split_folder(root, split)? {
        return load_from_class_folders(&folder);
    }
    if split == Split::Test && annotation_csv(root, Split::Valid).is_some() {
        return Err(DatasetError::SplitNotAvailable {
            dataset: "AffectNet (official CSV layout)",
            split,
            hint: "the test labels are not public; evaluate on the valid split (validation.csv)",
        });
    }
    Err(DatasetError::NotFound {
        what: match split {
            Split::Train => {
                "AffectNet train split (training.csv, Manually_Annotated_file_lists/training.csv \
                 or a train/ folder of class folders)"
            }
            Split::Valid => {
                "AffectNet valid split (validation.csv, \
                 Manually_Annotated_file_lists/validation.csv or a val/ folder of class folders)"
            }
            Split::Test => "AffectNet test split (a test/ folder of class folders)",
        },
        path: root.to_path_buf(),
    })
}

/// The official annotation CSV of `split` under `root`, if present.
fn annotation_csv(root: &Path, split: Split) -> Option<PathBuf> {
    let name = match split {
        Split::Train => "training.csv",
        Split::Valid => "validation.csv",
        Split::Test => return None,
    };
    [
        root.join(name),
        root.join("Manually_Annotated_file_lists").join(name),
    ]
    .into_iter()
    .find(|path| path.is_file())
}

fn load_from_csv(root: &Path, csv_path: &Path) -> Result<LabeledSet, DatasetError> {
    let annotated_images = root.join("Manually_Annotated_Images");
    let image_root = if annotated_images.is_dir() {
        annotated_images
    } else {
        root.to_path_buf()
    };
    let mut pending = Vec::new();
    let mut excluded = 0usize;
    let mut header = true;
    for_each_csv_record(csv_path, "AffectNet annotation CSV", |line, record| {
        let malformed = |reason: String| DatasetError::Malformed {
            file: csv_path.to_path_buf(),
            line,
            reason,
        };
        if record.len() != CSV_COLUMNS {
            return Err(malformed(format!(
                "expected {CSV_COLUMNS} columns (subDirectory_filePath, face_x, face_y, \
                 face_width, face_height, facial_landmarks, expression, valence, arousal), found {}",
                record.len()
            )));
        }
        if std::mem::take(&mut header) {
            return if record[0].trim().trim_start_matches('\u{feff}') == "subDirectory_filePath" {
                Ok(())
            } else {
                Err(malformed(format!(
                    "header starts with {:?}, expected \"subDirectory_filePath\"",
                    &record[0]
                )))
            };
        }
        let file = record[0].trim();
        if file.is_empty() {
            return Err(malformed("empty subDirectory_filePath".into()));
        }
        let expression = record[EXPRESSION_COLUMN].trim();
        match expression.parse::<usize>() {
            Ok(class) if class < AFFECTNET_CLASSES.len() => pending.push(PendingSample {
                line: Some(line),
                image: image_root.join(file),
                target: one_hot(AFFECTNET_CLASSES.len(), class),
            }),
            Ok(8..=10) => excluded += 1,
            _ => {
                return Err(malformed(format!(
                    "expression {expression:?} is not one of 0..10"
                )));
            }
        }
        Ok(())
    })?;
    if pending.is_empty() {
        return Err(DatasetError::Empty {
            path: csv_path.to_path_buf(),
            detail: format!(
                "no row has an expression 0..7 ({excluded} rows are none, uncertain or no face)"
            ),
        });
    }
    Ok(LabeledSet {
        classes: class_names(),
        samples: decode_samples(Some(csv_path), pending)?,
    })
}

fn load_from_class_folders(split_folder: &Path) -> Result<LabeledSet, DatasetError> {
    let mut folder_of_class: [Option<PathBuf>; 8] = Default::default();
    let mut pending = Vec::new();
    for folder in sub_folders(split_folder)? {
        let name = file_name(&folder);
        let class = class_of_folder_name(&name).ok_or_else(|| DatasetError::Invalid {
            path: folder.clone(),
            reason: format!(
                "folder {name:?} is not an AffectNet class: expected one of {} or a digit 0..7",
                AFFECTNET_CLASSES.join(", ")
            ),
        })?;
        if let Some(other) = &folder_of_class[class] {
            return Err(DatasetError::Invalid {
                path: folder.clone(),
                reason: format!(
                    "is class {} as is {}: one folder per class",
                    AFFECTNET_CLASSES[class],
                    other.display()
                ),
            });
        }
        folder_of_class[class] = Some(folder.clone());
        pending.extend(
            image_files_under(&folder)?
                .into_iter()
                .map(|image| PendingSample {
                    line: None,
                    image,
                    target: one_hot(AFFECTNET_CLASSES.len(), class),
                }),
        );
    }
    if pending.is_empty() {
        return Err(DatasetError::Empty {
            path: split_folder.to_path_buf(),
            detail: "no image in any class folder".into(),
        });
    }
    Ok(LabeledSet {
        classes: class_names(),
        samples: decode_samples(None, pending)?,
    })
}

/// The class of a class folder: its digit 0..7, or a spelling of its name.
fn class_of_folder_name(name: &str) -> Option<usize> {
    if let Ok(digit) = name.parse::<usize>() {
        return (digit < AFFECTNET_CLASSES.len()).then_some(digit);
    }
    let name = name.to_ascii_lowercase();
    CLASS_ALIASES
        .iter()
        .position(|aliases| aliases.contains(&name.as_str()))
}

fn class_names() -> Vec<String> {
    AFFECTNET_CLASSES
        .iter()
        .map(|name| name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_folders_are_named_by_digit_or_by_any_common_spelling() {
        assert_eq!(class_of_folder_name("0"), Some(0));
        assert_eq!(class_of_folder_name("7"), Some(7));
        assert_eq!(class_of_folder_name("8"), None);
        assert_eq!(class_of_folder_name("Happy"), Some(1));
        assert_eq!(class_of_folder_name("happiness"), Some(1));
        assert_eq!(class_of_folder_name("ANGRY"), Some(6));
        assert_eq!(class_of_folder_name("contempt"), Some(7));
        assert_eq!(class_of_folder_name("joy"), None);
    }
}
