//! Unlabelled general images for MAE pre-training (e.g. Tiny-ImageNet's
//! `<wnid>/<wnid>_<n>.JPEG`): any folder tree, ImageFolder or flat.

use std::path::Path;

use image::RgbImage;
use rayon::prelude::*;

use super::DatasetError;
use super::files::{decode_image, image_files_under, require_exists};

/// Loads the images under `root` (recursively), converted to RGB.
///
/// Files are taken in sorted path order. With `limit = Some(n)` and more than
/// `n` files, `n` files evenly spaced in that order are taken (file
/// `i * total / n` for `i < n`), so that a class-per-folder tree keeps all its
/// classes instead of only the first ones. Decoding is parallel; an
/// undecodable file is an error naming it. `Some(0)` is an error.
pub fn load_unlabeled_images(
    root: &Path,
    limit: Option<usize>,
) -> Result<Vec<RgbImage>, DatasetError> {
    require_exists(root, "image folder")?;
    if limit == Some(0) {
        return Err(DatasetError::Invalid {
            path: root.to_path_buf(),
            reason: "an image limit of 0 loads nothing".into(),
        });
    }
    let files = image_files_under(root)?;
    if files.is_empty() {
        return Err(DatasetError::Empty {
            path: root.to_path_buf(),
            detail: "no .png, .jpg, .jpeg or .bmp file in the folder tree".into(),
        });
    }
    let chosen = spread_indices(files.len(), limit.unwrap_or(files.len()));
    let decoded: Vec<Result<RgbImage, DatasetError>> = chosen
        .into_par_iter()
        .map(|index| {
            let path = &files[index];
            decode_image(path)
                .map(|image| image.into_rgb8())
                .map_err(|source| DatasetError::Image {
                    image: path.clone(),
                    source,
                })
        })
        .collect();
    decoded.into_iter().collect()
}

/// `min(count, total)` indices below `total`, evenly spaced and increasing:
/// `i * total / count` for `i < count`.
fn spread_indices(total: usize, count: usize) -> Vec<usize> {
    let count = count.min(total);
    (0..count).map(|i| i * total / count).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_spreads_the_chosen_files_over_the_whole_listing() {
        assert_eq!(spread_indices(10, 5), vec![0, 2, 4, 6, 8]);
        assert_eq!(spread_indices(10, 3), vec![0, 3, 6]);
        assert_eq!(spread_indices(3, 10), vec![0, 1, 2]);
        assert_eq!(spread_indices(7, 7), (0..7).collect::<Vec<_>>());
    }
}
