//! Generic ImageFolder: `<root>/<class>/**/*.{png,jpg,jpeg,bmp}`, as
//! torchvision's `ImageFolder` reads it.

use std::path::Path;

use super::files::{
    PendingSample, decode_samples, file_name, image_files_under, require_exists, sub_folders,
};
use super::{DatasetError, LabeledSet, one_hot};

/// Loads every image under the class folders of `root`, one-hot targets.
///
/// Classes are the names of `root`'s sub-folders, sorted; each class folder
/// is searched recursively. Extensions are matched in any case; other files,
/// hidden files and files directly in `root` are not samples. A class folder
/// without any image is an error (a class nothing can be learned for).
pub fn load_image_folder(root: &Path) -> Result<LabeledSet, DatasetError> {
    require_exists(root, "image folder")?;
    let class_folders = sub_folders(root)?;
    if class_folders.is_empty() {
        return Err(DatasetError::Empty {
            path: root.to_path_buf(),
            detail: "no class sub-folders".into(),
        });
    }
    let class_count = class_folders.len();
    let mut pending = Vec::new();
    for (class, folder) in class_folders.iter().enumerate() {
        let images = image_files_under(folder)?;
        if images.is_empty() {
            return Err(DatasetError::Invalid {
                path: folder.clone(),
                reason: "class folder holds no .png, .jpg, .jpeg or .bmp image".into(),
            });
        }
        pending.extend(images.into_iter().map(|image| PendingSample {
            line: None,
            image,
            target: one_hot(class_count, class),
        }));
    }
    Ok(LabeledSet {
        classes: class_folders
            .iter()
            .map(|folder| file_name(folder))
            .collect(),
        samples: decode_samples(None, pending)?,
    })
}
