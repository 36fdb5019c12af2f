//! The dataset readers on the fixtures of tests/fixtures/datasets/ (see its
//! README.md), and on the real FER+ and Tiny-ImageNet when extracted into
//! target/data/ (skipped with a message otherwise).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::DynamicImage;
use mimic_train::data::{
    DatasetError, DatasetKind, FERPLUS_CLASSES, LabelMode, LabeledSet, Split, load, load_affectnet,
    load_fer2013_csv, load_ferplus, load_image_folder, load_rafdb, load_unlabeled_images,
};

fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/datasets")
        .join(relative)
}

fn broken(case: &str) -> PathBuf {
    fixture("broken").join(case)
}

/// Asserts that `error` is a line-level error naming `file` and `line` as
/// `<file>:<line>:`, and returns its message.
fn assert_names_line(error: DatasetError, file: &Path, line: usize) -> String {
    let message = error.to_string();
    assert!(
        matches!(
            error,
            DatasetError::Malformed { .. } | DatasetError::LineImage { .. }
        ),
        "not a line error: {error:?}"
    );
    let expected = format!("{}:{line}:", file.display());
    assert!(
        message.starts_with(&expected),
        "{message:?} does not start with {expected:?}"
    );
    message
}

fn assert_targets_are_distributions(set: &LabeledSet) {
    for sample in &set.samples {
        assert_eq!(
            sample.target.len(),
            set.classes.len(),
            "{}",
            sample.source.display()
        );
        assert!(sample.target.iter().all(|&p| p >= 0.0));
        let sum: f32 = sample.target.iter().sum();
        assert!(
            (sum - 1.0).abs() < 1e-5,
            "{}: sums to {sum}",
            sample.source.display()
        );
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn split_folder(split: Split) -> &'static str {
    match split {
        Split::Train => "FER2013Train",
        Split::Valid => "FER2013Valid",
        Split::Test => "FER2013Test",
    }
}

// ---------------------------------------------------------------------------------------- FER+

#[test]
fn ferplus_fixture_counts_match_the_reference_reader_in_both_modes() {
    // Counted by microsoft/FERPlus src/ferplus.py (`_process_data`, then
    // `load_folders`' exclusion) on the same label.csv rows.
    let expected = [
        (Split::Train, LabelMode::Majority, [8, 6, 2, 1, 2, 1, 1, 0]),
        (
            Split::Train,
            LabelMode::Probability,
            [12, 6, 2, 2, 2, 1, 1, 1],
        ),
        (Split::Valid, LabelMode::Majority, [7, 4, 5, 2, 1, 1, 1, 1]),
        (
            Split::Valid,
            LabelMode::Probability,
            [10, 4, 5, 3, 1, 1, 1, 2],
        ),
        (Split::Test, LabelMode::Majority, [9, 7, 1, 0, 4, 1, 0, 1]),
        (
            Split::Test,
            LabelMode::Probability,
            [9, 7, 2, 1, 4, 1, 0, 1],
        ),
    ];
    for (split, mode, counts) in expected {
        let set = load_ferplus(&fixture("ferplus"), split, mode).unwrap();
        assert_eq!(set.classes, FERPLUS_CLASSES.to_vec(), "{split} {mode}");
        assert_eq!(set.class_counts(), counts.to_vec(), "{split} {mode}");
        assert_eq!(set.len(), counts.iter().sum::<usize>());
        assert_targets_are_distributions(&set);
        if mode == LabelMode::Majority {
            assert!(
                set.samples
                    .iter()
                    .all(|s| s.target.iter().all(|&p| p == 0.0 || p == 1.0))
            );
        }
    }
}

#[test]
fn ferplus_fixture_targets_equal_the_reference_targets_row_by_row() {
    // reference_targets.csv: the target microsoft/FERPlus's reader gives every
    // kept row of the fixture, per mode (see the fixtures' README).
    let mut reader = csv::Reader::from_path(fixture("ferplus/reference_targets.csv")).unwrap();
    let mut expected: HashMap<(String, String, String), Vec<f32>> = HashMap::new();
    for record in reader.records() {
        let record = record.unwrap();
        let target = (3..11).map(|i| record[i].parse().unwrap()).collect();
        expected.insert(
            (record[0].into(), record[1].into(), record[2].into()),
            target,
        );
    }
    let mut compared = 0;
    for split in [Split::Train, Split::Valid, Split::Test] {
        for mode in [LabelMode::Majority, LabelMode::Probability] {
            let set = load_ferplus(&fixture("ferplus"), split, mode).unwrap();
            for sample in &set.samples {
                let key = (
                    split_folder(split).to_string(),
                    file_name(&sample.source),
                    mode.to_string(),
                );
                let reference = expected
                    .get(&key)
                    .unwrap_or_else(|| panic!("{key:?} is kept here, excluded by the reference"));
                for (ours, theirs) in sample.target.iter().zip(reference) {
                    assert!(
                        (ours - theirs).abs() < 1e-6,
                        "{key:?}: {:?} vs {reference:?}",
                        sample.target
                    );
                }
                compared += 1;
            }
        }
    }
    assert_eq!(
        compared,
        expected.len(),
        "the reference keeps rows that we exclude"
    );
}

#[test]
fn ferplus_targets_of_known_rows_follow_the_hand_computed_rules() {
    let train = |mode| load_ferplus(&fixture("ferplus"), Split::Train, mode).unwrap();
    let find = |set: &LabeledSet, name: &str| {
        set.samples
            .iter()
            .find(|s| file_name(&s.source) == name)
            .map(|s| s.target.clone())
    };
    let (majority, probability) = (train(LabelMode::Majority), train(LabelMode::Probability));
    // fer0000000.png votes 4,0,0,1,3,2,0,0,0,0 → single vote dropped → 4,3,2 of 9:
    // 4 is no strict majority (excluded); probability: 4 then 3 reach 7 ≥ 6.75 → 4/7, 3/7.
    assert_eq!(find(&majority, "fer0000000.png"), None);
    let target = find(&probability, "fer0000000.png").unwrap();
    assert!((target[0] - 4.0 / 7.0).abs() < 1e-6 && (target[4] - 3.0 / 7.0).abs() < 1e-6);
    // fer0000001.png votes 6,0,1,1,0,0,0,0,2,0 → 6,2 of 8: neutral majority; probability
    // stops after neutral (6 ≥ 6): one-hot neutral too.
    let neutral = vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    assert_eq!(find(&majority, "fer0000001.png"), Some(neutral.clone()));
    assert_eq!(find(&probability, "fer0000001.png"), Some(neutral));
    // fer0000219.png votes 3,3,0,0,0,0,0,4,0,0: no majority; probability takes contempt 4,
    // then the tied 3s (count 3, all 10 votes): 0.3, 0.3, 0.4.
    assert_eq!(find(&majority, "fer0000219.png"), None);
    let target = find(&probability, "fer0000219.png").unwrap();
    assert!(
        (target[0] - 0.3).abs() < 1e-6
            && (target[1] - 0.3).abs() < 1e-6
            && (target[7] - 0.4).abs() < 1e-6
    );
    // fer0010628.png: all 10 votes say "not a face": excluded in both modes.
    assert_eq!(find(&majority, "fer0010628.png"), None);
    assert_eq!(find(&probability, "fer0010628.png"), None);
}

#[test]
fn ferplus_images_stay_48x48_grey_and_name_their_file() {
    let set = load_ferplus(&fixture("ferplus"), Split::Valid, LabelMode::Majority).unwrap();
    for sample in &set.samples {
        assert!(
            matches!(sample.image, DynamicImage::ImageLuma8(_)),
            "{}",
            sample.source.display()
        );
        assert_eq!((sample.image.width(), sample.image.height()), (48, 48));
        assert!(sample.source.starts_with(fixture("ferplus/FER2013Valid")));
        assert!(sample.source.is_file());
    }
}

#[test]
fn ferplus_images_are_cropped_to_a_face_box_smaller_than_the_image() {
    let set = load_ferplus(
        &fixture("ferplus-face-box"),
        Split::Train,
        LabelMode::Majority,
    )
    .unwrap();
    let sizes: Vec<_> = set
        .samples
        .iter()
        .map(|s| (s.image.width(), s.image.height()))
        .collect();
    // Row 1: "(0, 0, 48, 48)", the whole image; row 2: "(8, 4, 32, 24)".
    assert_eq!(sizes, [(48, 48), (32, 24)]);
    let original = image::open(set.samples[1].source.clone())
        .unwrap()
        .into_luma8();
    let cropped = set.samples[1].image.to_luma8();
    assert_eq!(cropped.get_pixel(0, 0), original.get_pixel(8, 4));
    assert_eq!(cropped.get_pixel(31, 23), original.get_pixel(39, 27));
}

#[test]
fn ferplus_cut_for_the_fine_tune_test_holds_400_train_and_200_valid_majority_images() {
    let train = load_ferplus(&fixture("ferplus-cut"), Split::Train, LabelMode::Majority).unwrap();
    assert_eq!(train.class_counts(), vec![50; 8]);
    let valid = load_ferplus(&fixture("ferplus-cut"), Split::Valid, LabelMode::Majority).unwrap();
    assert_eq!(valid.class_counts(), vec![34, 25, 25, 25, 25, 25, 25, 16]);
    let sources = |set: &LabeledSet| {
        set.samples
            .iter()
            .map(|s| file_name(&s.source))
            .collect::<Vec<_>>()
    };
    let train_files = sources(&train);
    assert!(
        sources(&valid)
            .iter()
            .all(|file| !train_files.contains(file))
    );
}

#[test]
fn ferplus_line_errors_name_the_label_file_and_line() {
    let cases = [
        ("ferplus-columns", 3, "expected 12 columns"),
        ("ferplus-vote", 2, "vote count for surprise is \"x\""),
        ("ferplus-box", 2, "face box"),
        ("ferplus-box-outside", 2, "does not fit in the 48x48 image"),
        ("ferplus-missing-image", 2, "b.png"),
        ("ferplus-undecodable", 3, "c.png"),
    ];
    for (case, line, detail) in cases {
        let root = broken(case);
        let error = load_ferplus(&root, Split::Train, LabelMode::Majority).unwrap_err();
        let message = assert_names_line(error, &root.join("FER2013Train/label.csv"), line);
        assert!(message.contains(detail), "{case}: {message}");
    }
}

#[test]
fn ferplus_without_any_emotion_label_is_an_empty_dataset_error() {
    let root = broken("ferplus-no-label");
    for mode in [LabelMode::Majority, LabelMode::Probability] {
        let error = load_ferplus(&root, Split::Train, mode).unwrap_err();
        assert!(matches!(error, DatasetError::Empty { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .contains(&root.join("FER2013Train/label.csv").display().to_string())
        );
    }
}

#[test]
fn ferplus_missing_root_split_folder_or_label_file_are_named() {
    let missing = fixture("no-such-dataset");
    let error = load_ferplus(&missing, Split::Train, LabelMode::Majority).unwrap_err();
    assert!(matches!(error, DatasetError::NotFound { .. }));
    assert!(error.to_string().contains("no-such-dataset"), "{error}");

    let error =
        load_ferplus(&broken("ferplus-columns"), Split::Test, LabelMode::Majority).unwrap_err();
    assert!(error.to_string().contains("FER2013Test"), "{error}");

    let root = broken("ferplus-no-label-file");
    let error = load_ferplus(&root, Split::Train, LabelMode::Majority).unwrap_err();
    assert!(matches!(error, DatasetError::NotFound { .. }));
    assert!(
        error
            .to_string()
            .contains(&root.join("FER2013Train/label.csv").display().to_string())
    );
}

/// Where the extracted FER+ is: $MIMIC_FERPLUS_ROOT, else the workspace's target/data.
fn real_ferplus_root() -> Option<PathBuf> {
    let root = std::env::var_os("MIMIC_FERPLUS_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/data"));
    if root.join("FER2013Train/label.csv").is_file() {
        Some(root)
    } else {
        eprintln!(
            "skipped: the real FER+ is not extracted at {} (tar --zstd -xf ../shared/data/ferplus-48px.tar.zst -C target/data, or set MIMIC_FERPLUS_ROOT)",
            root.display()
        );
        None
    }
}

#[test]
fn real_ferplus_split_sizes_after_exclusions_match_the_reference_reader() {
    let Some(root) = real_ferplus_root() else {
        return;
    };
    // Per-class counts from microsoft/FERPlus src/ferplus.py on the same label.csv
    // files (28,558 / 3,579 / 3,573 rows), and the per-class sums of the
    // probability targets.
    let expected = [
        (
            Split::Train,
            [8733, 7284, 3136, 3022, 2098, 116, 536, 120],
            [10107, 7501, 3517, 3445, 2401, 170, 643, 163],
            [
                9426.528, 7519.359, 3473.065, 3824.367, 2426.278, 237.882, 791.538, 247.983,
            ],
        ),
        (
            Split::Valid,
            [1180, 862, 411, 348, 289, 25, 60, 16],
            [1311, 897, 452, 406, 319, 29, 69, 25],
            [
                1240.92, 902.826, 452.455, 419.205, 321.91, 40.282, 90.856, 39.548,
            ],
        ),
        (
            Split::Test,
            [1083, 892, 394, 382, 269, 16, 86, 15],
            [1250, 925, 438, 437, 315, 20, 96, 26],
            [
                1174.327, 928.968, 437.88, 474.351, 317.373, 29.267, 116.003, 28.831,
            ],
        ),
    ];
    for (split, majority_counts, probability_counts, probability_sums) in expected {
        let start = Instant::now();
        let majority = load_ferplus(&root, split, LabelMode::Majority).unwrap();
        let elapsed = start.elapsed();
        let probability = load_ferplus(&root, split, LabelMode::Probability).unwrap();
        eprintln!(
            "FER+ {split}: {} majority, {} probability images (majority load {:.2} s)",
            majority.len(),
            probability.len(),
            elapsed.as_secs_f64()
        );
        assert_eq!(
            majority.class_counts(),
            majority_counts.to_vec(),
            "{split} majority"
        );
        assert_eq!(
            probability.class_counts(),
            probability_counts.to_vec(),
            "{split} probability"
        );
        for (class, expected_sum) in probability_sums.iter().enumerate() {
            let sum: f64 = probability
                .samples
                .iter()
                .map(|s| s.target[class] as f64)
                .sum();
            assert!(
                (sum - expected_sum).abs() < 0.01,
                "{split} {class}: {sum} vs {expected_sum}"
            );
        }
    }
}

// --------------------------------------------------------------------------------------- RAF-DB

#[test]
fn rafdb_fixture_splits_by_name_prefix_with_labels_1_to_7() {
    let root = fixture("rafdb");
    let train = load_rafdb(&root, Split::Train).unwrap();
    assert_eq!(
        train.classes,
        [
            "Surprise",
            "Fear",
            "Disgust",
            "Happiness",
            "Sadness",
            "Anger",
            "Neutral"
        ]
    );
    assert_eq!(train.class_counts(), vec![1, 1, 1, 3, 1, 1, 1]);
    // First line: train_00001.jpg 5 → Sadness, from Image/aligned/train_00001_aligned.jpg.
    assert_eq!(train.samples[0].label(), 4);
    assert_eq!(
        train.samples[0].source,
        root.join("Image/aligned/train_00001_aligned.jpg")
    );
    assert!(matches!(train.samples[0].image, DynamicImage::ImageRgb8(_)));
    assert_targets_are_distributions(&train);

    let test = load_rafdb(&root, Split::Test).unwrap();
    assert_eq!(test.class_counts(), vec![1, 0, 0, 1, 0, 1, 1]);
    assert!(matches!(
        load_rafdb(&root, Split::Valid).unwrap_err(),
        DatasetError::SplitNotAvailable { .. }
    ));
}

#[test]
fn rafdb_line_errors_name_the_list_file_and_line() {
    let cases = [
        ("rafdb-label", 3, "label \"8\""),
        ("rafdb-fields", 2, "expected 2 fields"),
        ("rafdb-prefix", 2, "neither train_ nor test_"),
        ("rafdb-missing-image", 2, "train_00002_aligned.jpg"),
    ];
    for (case, line, detail) in cases {
        let root = broken(case);
        let error = load_rafdb(&root, Split::Train).unwrap_err();
        let message =
            assert_names_line(error, &root.join("EmoLabel/list_patition_label.txt"), line);
        assert!(message.contains(detail), "{case}: {message}");
    }
    let error = load_rafdb(&broken("no-images"), Split::Train).unwrap_err();
    assert!(
        error.to_string().contains("list_patition_label.txt"),
        "{error}"
    );
}

// ------------------------------------------------------------------------------------ AffectNet

#[test]
fn affectnet_csv_keeps_expressions_0_to_7_and_excludes_8_to_10() {
    let root = fixture("affectnet-csv");
    let train = load_affectnet(&root, Split::Train).unwrap();
    assert_eq!(
        train.classes,
        [
            "Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt"
        ]
    );
    assert_eq!(train.class_counts(), vec![1, 2, 0, 1, 0, 0, 1, 1]);
    assert_eq!(
        train.samples[0].source,
        root.join("Manually_Annotated_Images/1/a0.jpg")
    );
    assert_eq!(
        (
            train.samples[0].image.width(),
            train.samples[0].image.height()
        ),
        (32, 28)
    );
    assert_targets_are_distributions(&train);

    let valid = load_affectnet(&root, Split::Valid).unwrap();
    assert_eq!(valid.class_counts(), vec![0, 0, 1, 0, 1, 1, 0, 0]);
    assert!(matches!(
        load_affectnet(&root, Split::Test).unwrap_err(),
        DatasetError::SplitNotAvailable { .. }
    ));
}

#[test]
fn affectnet_class_folders_are_read_by_name_or_digit() {
    let root = fixture("affectnet-folders");
    let train = load_affectnet(&root, Split::Train).unwrap();
    // Happy 3, sad 2, Anger 1, neutral 2.
    assert_eq!(train.class_counts(), vec![2, 3, 2, 0, 0, 0, 1, 0]);
    let valid = load_affectnet(&root, Split::Valid).unwrap();
    // 0 (Neutral) 1, 3 (Surprise) 2, 7 (Contempt) 1.
    assert_eq!(valid.class_counts(), vec![1, 0, 0, 2, 0, 0, 0, 1]);
    let error = load_affectnet(&root, Split::Test).unwrap_err();
    assert!(matches!(error, DatasetError::NotFound { .. }), "{error:?}");
}

#[test]
fn affectnet_errors_name_the_csv_line_or_the_folder() {
    let cases = [
        ("affectnet-expression", 3, "expression \"11\""),
        ("affectnet-columns", 3, "expected 9 columns"),
        ("affectnet-missing-image", 4, "c.jpg"),
    ];
    for (case, line, detail) in cases {
        let root = broken(case);
        let error = load_affectnet(&root, Split::Train).unwrap_err();
        let message = assert_names_line(error, &root.join("training.csv"), line);
        assert!(message.contains(detail), "{case}: {message}");
    }
    let root = broken("affectnet-unknown-folder");
    let error = load_affectnet(&root, Split::Train).unwrap_err();
    assert!(matches!(error, DatasetError::Invalid { .. }));
    assert!(
        error
            .to_string()
            .contains(&root.join("train/joy").display().to_string()),
        "{error}"
    );
}

// -------------------------------------------------------------------------------------- FER2013

#[test]
fn fer2013_csv_splits_by_usage_into_48x48_grey_images() {
    let path = fixture("fer2013/fer2013.csv");
    let train = load_fer2013_csv(&path, Split::Train).unwrap();
    assert_eq!(
        train.classes,
        [
            "Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"
        ]
    );
    assert_eq!(train.class_counts(), vec![1, 0, 0, 1, 1, 1, 1]);
    let first = &train.samples[0];
    let DynamicImage::ImageLuma8(grey) = &first.image else {
        panic!("not grey: {:?}", first.image.color())
    };
    assert_eq!(grey.dimensions(), (48, 48));
    // Pixel i of the fixture's first row is (7 i) mod 256, row-major.
    assert_eq!(grey.get_pixel(1, 0).0, [7]);
    assert_eq!(grey.get_pixel(0, 1).0, [(48 * 7 % 256) as u8]);
    assert_eq!(first.source, PathBuf::from(format!("{}:2", path.display())));

    let valid = load_fer2013_csv(&path, Split::Valid).unwrap();
    assert_eq!(valid.class_counts(), vec![0, 1, 0, 1, 0, 0, 0]);
    let test = load_fer2013_csv(&path, Split::Test).unwrap();
    assert_eq!(test.class_counts(), vec![0, 0, 1, 1, 0, 0, 1]);
}

#[test]
fn fer2013_line_errors_name_the_csv_and_line() {
    let cases = [
        ("fer2013-header.csv", 1, "header"),
        ("fer2013-pixels.csv", 3, "2303 pixel values"),
        ("fer2013-emotion.csv", 4, "emotion \"7\""),
        ("fer2013-usage.csv", 3, "Usage \"Validation\""),
    ];
    for (case, line, detail) in cases {
        let path = broken(case);
        let error = load_fer2013_csv(&path, Split::Train).unwrap_err();
        let message = assert_names_line(error, &path, line);
        assert!(message.contains(detail), "{case}: {message}");
    }
    let error = load_fer2013_csv(&fixture("fer2013/missing.csv"), Split::Train).unwrap_err();
    assert!(matches!(error, DatasetError::NotFound { .. }));
}

// ---------------------------------------------------------------------------------- ImageFolder

#[test]
fn image_folder_classes_are_the_sorted_sub_folders_searched_recursively() {
    let root = fixture("imagefolder");
    let set = load_image_folder(&root).unwrap();
    assert_eq!(set.classes, ["bird", "cat", "dog"]);
    // cat: 0.png, 1.JPG, nested/2.bmp (notes.txt and ../README.txt are not samples).
    assert_eq!(set.class_counts(), vec![2, 3, 1]);
    assert_targets_are_distributions(&set);
    let bird = &set.samples[0];
    assert_eq!(bird.source, root.join("bird/0.png"));
    assert!(
        matches!(bird.image, DynamicImage::ImageLuma8(_)),
        "grey stays grey"
    );
    let dog = set.samples.iter().find(|s| s.label() == 2).unwrap();
    assert_eq!((dog.image.width(), dog.image.height()), (20, 12));
}

#[test]
fn image_folder_errors_name_the_folder_or_image() {
    let root = broken("imagefolder-empty-class");
    let error = load_image_folder(&root).unwrap_err();
    assert!(matches!(error, DatasetError::Invalid { .. }));
    assert!(
        error
            .to_string()
            .contains(&root.join("dog").display().to_string()),
        "{error}"
    );

    let root = broken("imagefolder-undecodable");
    let error = load_image_folder(&root).unwrap_err();
    assert!(matches!(error, DatasetError::Image { .. }));
    assert!(
        error
            .to_string()
            .contains(&root.join("cat/1.jpg").display().to_string()),
        "{error}"
    );

    let error = load_image_folder(&broken("no-images")).unwrap_err();
    assert!(matches!(error, DatasetError::Empty { .. }), "{error:?}");
    let error = load_image_folder(&fixture("no-such-folder")).unwrap_err();
    assert!(matches!(error, DatasetError::NotFound { .. }), "{error:?}");
}

// ------------------------------------------------------------------------------------ Unlabeled

#[test]
fn unlabeled_images_are_read_recursively_as_rgb() {
    let images = load_unlabeled_images(&fixture("unlabeled"), None).unwrap();
    // 3 class folders x 3 .JPEG + grey.png + small.bmp; wnids.txt is skipped.
    assert_eq!(images.len(), 11);
    // Sorted paths: grey.png (30x18, grey converted to RGB) comes first.
    assert_eq!(images[0].dimensions(), (30, 18));
    let pixel = images[0].get_pixel(5, 5).0;
    assert!(
        pixel[0] == pixel[1] && pixel[1] == pixel[2],
        "grey as RGB: {pixel:?}"
    );
    assert_eq!(images[10].dimensions(), (12, 12));
}

#[test]
fn unlabeled_limit_takes_evenly_spaced_files() {
    let all = load_unlabeled_images(&fixture("unlabeled"), None).unwrap();
    let some = load_unlabeled_images(&fixture("unlabeled"), Some(4)).unwrap();
    // i * 11 / 4 for i < 4: files 0, 2, 5, 8.
    assert_eq!(
        some,
        vec![
            all[0].clone(),
            all[2].clone(),
            all[5].clone(),
            all[8].clone()
        ]
    );
    assert_eq!(
        load_unlabeled_images(&fixture("unlabeled"), Some(100))
            .unwrap()
            .len(),
        11
    );
}

#[test]
fn unlabeled_errors_name_the_folder_or_image() {
    let root = fixture("unlabeled");
    assert!(matches!(
        load_unlabeled_images(&root, Some(0)).unwrap_err(),
        DatasetError::Invalid { .. }
    ));
    let error = load_unlabeled_images(&broken("no-images"), None).unwrap_err();
    assert!(matches!(error, DatasetError::Empty { .. }), "{error:?}");
    let root = broken("imagefolder-undecodable");
    let error = load_unlabeled_images(&root, None).unwrap_err();
    assert!(
        error
            .to_string()
            .contains(&root.join("cat/1.jpg").display().to_string()),
        "{error}"
    );
}

#[test]
fn real_tiny_imagenet_loads_as_64x64_rgb() {
    let root = std::env::var_os("MIMIC_TINY_IMAGENET_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/data/tiny-imagenet-50k")
        });
    if !root.is_dir() {
        eprintln!(
            "skipped: Tiny-ImageNet is not extracted at {} (tar --zstd -xf ../shared/data/tiny-imagenet-50k.tar.zst -C target/data, or set MIMIC_TINY_IMAGENET_ROOT)",
            root.display()
        );
        return;
    }
    let start = Instant::now();
    let images = load_unlabeled_images(&root, Some(5000)).unwrap();
    eprintln!(
        "Tiny-ImageNet: 5000 images in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(images.len(), 5000);
    assert!(images.iter().all(|image| image.dimensions() == (64, 64)));
}

// ----------------------------------------------------------------------------------- Dispatcher

#[test]
fn load_dispatches_on_the_kind_and_finds_split_folders() {
    let via_load = load(
        DatasetKind::FerPlus,
        &fixture("ferplus"),
        Split::Valid,
        LabelMode::Probability,
    )
    .unwrap();
    let direct = load_ferplus(&fixture("ferplus"), Split::Valid, LabelMode::Probability).unwrap();
    assert_eq!(via_load.class_counts(), direct.class_counts());

    // FER2013: a folder holding fer2013.csv works like the file itself.
    let set = load(
        DatasetKind::Fer2013Csv,
        &fixture("fer2013"),
        Split::Test,
        LabelMode::Majority,
    )
    .unwrap();
    assert_eq!(set.len(), 3);

    // ImageFolder: <root>/train when there is one...
    let set = load(
        DatasetKind::ImageFolder,
        &fixture("affectnet-folders"),
        Split::Train,
        LabelMode::Majority,
    )
    .unwrap();
    assert_eq!(set.classes, ["Anger", "Happy", "neutral", "sad"]);
    // ...the root itself otherwise.
    let set = load(
        DatasetKind::ImageFolder,
        &fixture("imagefolder"),
        Split::Test,
        LabelMode::Majority,
    )
    .unwrap();
    assert_eq!(set.classes, ["bird", "cat", "dog"]);

    let set = load(
        DatasetKind::RafDb,
        &fixture("rafdb"),
        Split::Test,
        LabelMode::Majority,
    )
    .unwrap();
    assert_eq!(set.len(), 4);
    let set = load(
        DatasetKind::AffectNet,
        &fixture("affectnet-csv"),
        Split::Valid,
        LabelMode::Majority,
    )
    .unwrap();
    assert_eq!(set.len(), 3);
}
