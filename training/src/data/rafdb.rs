//! RAF-DB basic (Li et al. 2017): 15,339 faces, 7 basic expressions.
//!
//! Layout of the official release:
//!
//! ```text
//! <root>/EmoLabel/list_patition_label.txt   "train_00001.jpg 5" per line (label 1..7)
//! <root>/Image/aligned/train_00001_aligned.jpg
//! ```
//!
//! The split is the file name's prefix (`train_` / `test_`); RAF-DB has no
//! validation split. The file name keeps the release's spelling "patition".

use std::path::Path;

use super::files::{PendingSample, decode_samples, open_label_file, require_exists};
use super::{DatasetError, LabeledSet, Split, one_hot};

/// RAF-DB's 7 classes; label `k` of the list file is `RAFDB_CLASSES[k - 1]`.
pub const RAFDB_CLASSES: [&str; 7] = [
    "Surprise",
    "Fear",
    "Disgust",
    "Happiness",
    "Sadness",
    "Anger",
    "Neutral",
];

/// Loads the train or test split of RAF-DB basic with one-hot targets.
///
/// Every line of the list file is checked (two fields, a `train_`/`test_`
/// name with an extension, a label 1..7), those of the other split included;
/// blank lines are allowed. The aligned images of the split are decoded in
/// parallel: `<name>.jpg` is read from `Image/aligned/<name>_aligned.jpg`.
pub fn load_rafdb(root: &Path, split: Split) -> Result<LabeledSet, DatasetError> {
    let prefix = match split {
        Split::Train => "train_",
        Split::Test => "test_",
        Split::Valid => {
            return Err(DatasetError::SplitNotAvailable {
                dataset: "RAF-DB",
                split,
                hint: "it has train and test only; hold out part of train for validation",
            });
        }
    };
    require_exists(root, "RAF-DB root folder")?;
    let label_file = root.join("EmoLabel").join("list_patition_label.txt");
    let text = std::io::read_to_string(open_label_file(&label_file, "RAF-DB label file")?)
        .map_err(|source| DatasetError::Io {
            path: label_file.clone(),
            source,
        })?;
    let image_folder = root.join("Image").join("aligned");

    let mut pending = Vec::new();
    for (index, text_line) in text.lines().enumerate() {
        let line = index + 1;
        let malformed = |reason: String| DatasetError::Malformed {
            file: label_file.clone(),
            line,
            reason,
        };
        let fields: Vec<&str> = text_line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let [name, label] = fields[..] else {
            return Err(malformed(format!(
                "expected 2 fields (image name, label 1..7), found {}",
                fields.len()
            )));
        };
        let class = label
            .parse::<usize>()
            .ok()
            .filter(|label| (1..=RAFDB_CLASSES.len()).contains(label))
            .ok_or_else(|| malformed(format!("label {label:?} is not one of 1..7")))?
            - 1;
        let (stem, extension) = name
            .rsplit_once('.')
            .ok_or_else(|| malformed(format!("image name {name:?} has no extension")))?;
        let in_split = if name.starts_with("train_") {
            split == Split::Train
        } else if name.starts_with("test_") {
            split == Split::Test
        } else {
            return Err(malformed(format!(
                "image name {name:?} starts with neither train_ nor test_"
            )));
        };
        if in_split {
            debug_assert!(name.starts_with(prefix));
            pending.push(PendingSample {
                line: Some(line),
                image: image_folder.join(format!("{stem}_aligned.{extension}")),
                target: one_hot(RAFDB_CLASSES.len(), class),
            });
        }
    }
    if pending.is_empty() {
        return Err(DatasetError::Empty {
            path: label_file,
            detail: format!("no line names a {prefix}* image"),
        });
    }
    Ok(LabeledSet {
        classes: RAFDB_CLASSES.iter().map(|name| name.to_string()).collect(),
        samples: decode_samples(Some(&label_file), pending)?,
    })
}
