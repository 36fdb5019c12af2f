//! FER+ (Barsoum et al. 2016): FER2013's 48x48 grey faces relabelled by ten
//! crowd workers each.
//!
//! Layout (the official microsoft/FERPlus one):
//! `<root>/FER2013{Train,Valid,Test}/label.csv` + the PNGs beside it. Each
//! `label.csv` row, no header:
//!
//! ```text
//! fer0000000.png,"(0, 0, 48, 48)",4,0,0,1,3,2,0,0,0,0
//! file,          face box (x, y, w, h), neutral, happiness, surprise, sadness,
//!                anger, disgust, fear, contempt, unknown, NF   (vote counts)
//! ```
//!
//! Votes become labels exactly as the reference reader does
//! (microsoft/FERPlus `src/ferplus.py`, `FERPlusReader._process_data` and
//! `load_folders`); see [`ferplus_majority_target`] and
//! [`ferplus_probability_target`]. Images whose label comes out as `unknown`
//! or `NF` (not a face), or that have no usable label, are excluded, as the
//! reference reader and the FER+ paper's protocol do. Counts on the real
//! splits, majority / probability: train 25,045 / 27,947, valid 3,191 / 3,508,
//! test 3,137 / 3,507 (of 28,558, 3,579 and 3,573 rows).

use std::path::{Path, PathBuf};

use super::files::{PendingSample, decode_samples, for_each_csv_record, require_exists};
use super::{DatasetError, LabelMode, LabeledSet, Split, argmax, one_hot};

/// The 8 FER+ emotions, in `label.csv` column order.
pub const FERPLUS_CLASSES: [&str; 8] = [
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
];

/// The vote counts of one `label.csv` row, in column order: the 8 emotions of
/// [`FERPLUS_CLASSES`], then `unknown`, then `NF` (not a face).
pub type FerPlusVotes = [u32; 10];

/// Columns of a `label.csv` row: file, face box, 10 vote counts.
const COLUMNS: usize = 12;
/// Index of the first of the two non-emotion vote columns (`unknown`, `NF`).
const UNKNOWN: usize = 8;
/// Names of the 10 vote columns, for messages.
const VOTE_COLUMN_NAMES: [&str; 10] = [
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
];

/// Loads one FER+ split with targets in `mode`; images without a usable
/// emotion label under that mode are excluded (see the module doc).
///
/// Every row of `label.csv` is checked (12 columns, a `(x, y, w, h)` face box,
/// integer votes); the PNGs of the kept rows are decoded in parallel and
/// cropped to the face box when it is not the whole image (it is the whole
/// 48x48 image in every official row).
pub fn load_ferplus(
    root: &Path,
    split: Split,
    mode: LabelMode,
) -> Result<LabeledSet, DatasetError> {
    require_exists(root, "FER+ root folder")?;
    let folder = root.join(match split {
        Split::Train => "FER2013Train",
        Split::Valid => "FER2013Valid",
        Split::Test => "FER2013Test",
    });
    require_exists(&folder, "FER+ split folder")?;
    let label_file = folder.join("label.csv");
    let rows = read_label_file(&label_file)?;

    let row_count = rows.len();
    let mut pending = Vec::new();
    let mut face_boxes = Vec::new();
    for row in rows {
        let target = match mode {
            LabelMode::Majority => ferplus_majority_target(&row.votes),
            LabelMode::Probability => ferplus_probability_target(&row.votes),
        };
        if let Some(target) = target {
            face_boxes.push((row.line, row.face_box));
            pending.push(PendingSample {
                line: Some(row.line),
                image: folder.join(&row.file),
                target,
            });
        }
    }
    if pending.is_empty() {
        return Err(DatasetError::Empty {
            path: label_file,
            detail: format!(
                "none of its {row_count} rows has a {mode} emotion label; \
                 all are unknown, not a face, or without a clear vote"
            ),
        });
    }

    let mut samples = decode_samples(Some(&label_file), pending)?;
    for (sample, (line, [x, y, width, height])) in samples.iter_mut().zip(face_boxes) {
        let whole_image =
            x == 0 && y == 0 && (width, height) == (sample.image.width(), sample.image.height());
        if whole_image {
            continue;
        }
        let fits = width > 0
            && height > 0
            && x.checked_add(width)
                .is_some_and(|right| right <= sample.image.width())
            && y.checked_add(height)
                .is_some_and(|bottom| bottom <= sample.image.height());
        if !fits {
            return Err(DatasetError::Malformed {
                file: label_file,
                line,
                reason: format!(
                    "face box ({x}, {y}, {width}, {height}) does not fit in the {}x{} image {}",
                    sample.image.width(),
                    sample.image.height(),
                    sample.source.display()
                ),
            });
        }
        sample.image = sample.image.crop_imm(x, y, width, height);
    }
    Ok(LabeledSet {
        classes: FERPLUS_CLASSES
            .iter()
            .map(|name| name.to_string())
            .collect(),
        samples,
    })
}

/// One checked row of a `label.csv`.
struct LabelRow {
    /// 1-based line in the file.
    line: usize,
    file: PathBuf,
    /// `[x, y, width, height]` in pixels.
    face_box: [u32; 4],
    votes: FerPlusVotes,
}

/// Reads and checks every row of a `label.csv` (no header).
fn read_label_file(label_file: &Path) -> Result<Vec<LabelRow>, DatasetError> {
    let mut rows = Vec::new();
    for_each_csv_record(label_file, "FER+ label file", |line, record| {
        let malformed = |reason: String| DatasetError::Malformed {
            file: label_file.to_path_buf(),
            line,
            reason,
        };
        if record.len() != COLUMNS {
            return Err(malformed(format!(
                "expected {COLUMNS} columns (file, face box, 10 vote counts), found {}",
                record.len()
            )));
        }
        let file = record[0].trim();
        if file.is_empty() {
            return Err(malformed("empty image file name".into()));
        }
        let face_box = parse_face_box(&record[1]).ok_or_else(|| {
            malformed(format!("face box {:?} is not \"(x, y, w, h)\"", &record[1]))
        })?;
        let mut votes = [0u32; 10];
        for (column, vote) in votes.iter_mut().enumerate() {
            let text = record[2 + column].trim();
            *vote = text.parse().map_err(|_| {
                malformed(format!(
                    "vote count for {} is {text:?}, not a whole number",
                    VOTE_COLUMN_NAMES[column]
                ))
            })?;
        }
        rows.push(LabelRow {
            line,
            file: PathBuf::from(file),
            face_box,
            votes,
        });
        Ok(())
    })?;
    Ok(rows)
}

/// Parses `"(x, y, w, h)"` into `[x, y, w, h]`.
fn parse_face_box(text: &str) -> Option<[u32; 4]> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    let numbers: Vec<u32> = inner
        .split(',')
        .map(|number| number.trim().parse().ok())
        .collect::<Option<_>>()?;
    numbers.try_into().ok()
}

/// The reference's outlier removal: a count of one vote (or none) is zeroed,
/// so an emotion seen by a single worker out of ten never counts.
fn drop_single_votes(votes: &FerPlusVotes) -> FerPlusVotes {
    votes.map(|count| if count <= 1 { 0 } else { count })
}

/// Majority label of one FER+ row, or `None` when the image is excluded.
///
/// As microsoft/FERPlus `_process_data(mode="majority")`: single votes are
/// dropped (see [`drop_single_votes`]); the column with the most remaining
/// votes is the label only if it holds a strict majority, more than half of
/// all remaining votes (unknown and NF included). So a tie for first place is
/// never a majority and the image is excluded, as is an image whose majority
/// is `unknown` or `NF`. Returns the one-hot over the 8 emotions.
///
/// Example: votes `4,0,0,1,3,2,0,0,0,0` → `4,0,0,0,3,2,0,0,0,0` (9 votes);
/// neutral has 4, not more than 4.5: excluded.
pub fn ferplus_majority_target(votes: &FerPlusVotes) -> Option<Vec<f32>> {
    let votes = drop_single_votes(votes);
    let total: u32 = votes.iter().sum();
    let winner = argmax(&votes);
    let strict_majority = 2 * votes[winner] > total;
    (strict_majority && winner < UNKNOWN).then(|| one_hot(FERPLUS_CLASSES.len(), winner))
}

/// Probability label of one FER+ row, or `None` when the image is excluded.
///
/// As microsoft/FERPlus `_process_data(mode="probability")` (the same
/// function serves its "crossentropy" mode), on the counts left after
/// [`drop_single_votes`], `total` being their sum:
///
/// 1. Take the columns with the most votes, all tied ones at once, then the
///    next most voted, and so on, while the taken votes are fewer than 75 % of
///    `total`, fewer than 3 columns are taken, and no `unknown`/`NF` column
///    has come up. When `unknown` (or else `NF`) comes up among the most
///    voted, taking stops; it is dropped again unless it was the very first
///    (and only) column taken.
/// 2. The image is excluded if the taken votes are at most half of `total`,
///    if more than 3 columns were taken (ties), or if the column with the
///    most taken votes is `unknown` or `NF`.
/// 3. Otherwise the target is the taken emotion votes, normalised to sum to 1.
///
/// Example: votes `6,0,1,1,0,0,0,0,2,0` → `6,0,0,0,0,0,0,0,2,0` (8 votes);
/// neutral's 6 already pass 75 % of 8: target one-hot neutral.
///
/// The reference's own "probability" training mode then draws a one-hot
/// target from this distribution at every mini-batch; its "crossentropy" mode
/// trains on the distribution itself. Both start from this target.
pub fn ferplus_probability_target(votes: &FerPlusVotes) -> Option<Vec<f32>> {
    let mut remaining = drop_single_votes(votes);
    let total: u32 = remaining.iter().sum();
    let mut taken: FerPlusVotes = [0; 10];
    let mut taken_votes = 0u32;
    let mut taken_columns = 0usize;
    let mut emotions_only = true;
    // Integer forms of the reference's `sum_part < 0.75 * sum_list`, which are
    // exact because every count is a whole number.
    while 4 * taken_votes < 3 * total && taken_columns < 3 && emotions_only {
        let most = remaining.iter().copied().max().unwrap_or(0);
        for column in 0..remaining.len() {
            if remaining[column] != most {
                continue;
            }
            taken[column] = most;
            remaining[column] = 0;
            taken_votes += most;
            taken_columns += 1;
            if column >= UNKNOWN {
                // unknown / NF tie with the most voted: stop; keep it only if
                // nothing else was taken before it (the image is then excluded).
                emotions_only = false;
                if taken.iter().sum::<u32>() > most {
                    taken[column] = 0;
                    taken_columns -= 1;
                }
                break;
            }
        }
    }
    let kept_votes: u32 = taken.iter().sum();
    if 2 * kept_votes <= total || taken_columns > 3 || argmax(&taken) >= UNKNOWN {
        return None;
    }
    let emotion_votes: u32 = taken[..UNKNOWN].iter().sum();
    Some(
        taken[..UNKNOWN]
            .iter()
            .map(|&count| count as f32 / emotion_votes as f32)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approx(actual: &[f32], expected: &[f32]) -> bool {
        actual.len() == expected.len()
            && actual
                .iter()
                .zip(expected)
                .all(|(a, e)| (a - e).abs() < 1e-6)
    }

    #[test]
    fn single_votes_are_dropped_before_counting() {
        assert_eq!(
            drop_single_votes(&[4, 0, 0, 1, 3, 2, 0, 0, 1, 0]),
            [4, 0, 0, 0, 3, 2, 0, 0, 0, 0]
        );
    }

    #[test]
    fn majority_needs_more_than_half_of_the_votes_left_after_dropping_single_votes() {
        // 6,1,1,2 → 6,0,0,2 of 8: neutral has 6 > 4.
        assert_eq!(
            ferplus_majority_target(&[6, 0, 1, 1, 0, 0, 0, 0, 2, 0]),
            Some(one_hot(8, 0))
        );
        // 4,1,3,2 → 4,3,2 of 9: 4 is not more than 4.5.
        assert_eq!(
            ferplus_majority_target(&[4, 0, 0, 1, 3, 2, 0, 0, 0, 0]),
            None
        );
        // 5 of 10 is exactly half, not a majority.
        assert_eq!(
            ferplus_majority_target(&[0, 5, 5, 0, 0, 0, 0, 0, 0, 0]),
            None
        );
        // 5,1,1,1,1,1 → only the 5 remain: a majority of 5 out of 5.
        assert_eq!(
            ferplus_majority_target(&[1, 1, 5, 1, 1, 1, 0, 0, 0, 0]),
            Some(one_hot(8, 2))
        );
        // contempt, the last emotion column.
        assert_eq!(
            ferplus_majority_target(&[2, 0, 0, 0, 0, 0, 0, 7, 1, 0]),
            Some(one_hot(8, 7))
        );
    }

    #[test]
    fn majority_of_unknown_or_not_a_face_is_excluded() {
        assert_eq!(
            ferplus_majority_target(&[2, 0, 0, 0, 0, 0, 0, 0, 8, 0]),
            None
        );
        assert_eq!(
            ferplus_majority_target(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),
            None
        );
    }

    #[test]
    fn a_row_of_single_votes_has_no_label_in_either_mode() {
        let votes = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
        assert_eq!(ferplus_majority_target(&votes), None);
        assert_eq!(ferplus_probability_target(&votes), None);
        assert_eq!(ferplus_probability_target(&[0; 10]), None);
    }

    #[test]
    fn probability_takes_leading_emotions_until_three_quarters_of_the_votes() {
        // 4,3,2 of 9: 4 (< 6.75), then 3 (7 ≥ 6.75): neutral 4/7, anger 3/7.
        let target = ferplus_probability_target(&[4, 0, 0, 1, 3, 2, 0, 0, 0, 0]).unwrap();
        assert!(
            approx(
                &target,
                &[4.0 / 7.0, 0.0, 0.0, 0.0, 3.0 / 7.0, 0.0, 0.0, 0.0]
            ),
            "{target:?}"
        );
        // 3,3,2,2 of 10: the tied 3s together (6 < 7.5), then the tied 2s (count 4 > 3): excluded.
        assert_eq!(
            ferplus_probability_target(&[3, 3, 2, 2, 0, 0, 0, 0, 0, 0]),
            None
        );
        // 4,3,3 of 10: 4, then the tied 3s (count 3, 10 votes): all three.
        let target = ferplus_probability_target(&[4, 3, 3, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert!(
            approx(&target, &[0.4, 0.3, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0]),
            "{target:?}"
        );
        // 3,2,2,2 of 9: 3, then three tied 2s (count 4 > 3): excluded.
        assert_eq!(
            ferplus_probability_target(&[3, 2, 2, 2, 0, 0, 0, 0, 0, 0]),
            None
        );
    }

    #[test]
    fn probability_stops_at_unknown_and_drops_it_unless_it_came_first() {
        // 5 neutral, then unknown 3 ties with nothing ahead but is second: dropped,
        // taking stops; 5 of 8 > half: one-hot neutral.
        assert_eq!(
            ferplus_probability_target(&[5, 0, 0, 0, 0, 0, 0, 0, 3, 0]),
            Some(one_hot(8, 0))
        );
        // unknown first (and alone): the image is excluded.
        assert_eq!(
            ferplus_probability_target(&[3, 0, 0, 0, 0, 0, 0, 0, 5, 0]),
            None
        );
        // happiness and unknown tie at 4 (of 10): happiness taken, unknown dropped,
        // 4 is not more than 5: excluded.
        assert_eq!(
            ferplus_probability_target(&[0, 4, 2, 0, 0, 0, 0, 0, 4, 0]),
            None
        );
        // NF first: excluded.
        assert_eq!(
            ferplus_probability_target(&[0, 2, 0, 0, 0, 0, 0, 0, 0, 8]),
            None
        );
    }

    #[test]
    fn face_boxes_parse_from_the_label_file_notation() {
        assert_eq!(parse_face_box("(0, 0, 48, 48)"), Some([0, 0, 48, 48]));
        assert_eq!(parse_face_box("(1,2,3,4)"), Some([1, 2, 3, 4]));
        assert_eq!(parse_face_box("(0, 0, 48)"), None);
        assert_eq!(parse_face_box("0, 0, 48, 48"), None);
        assert_eq!(parse_face_box("(0, -1, 48, 48)"), None);
    }
}
