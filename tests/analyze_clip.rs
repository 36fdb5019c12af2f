//! The README's run command: `mimic analyze tests/fixtures/clip.mp4 -o clip.csv` with
//! the shipped default model gives a row for every frame, in order, with real
//! predictions over the model's classes.

mod cli_common;

use std::collections::BTreeSet;

use cli_common::{Rows, analyze, assert_success, root};

#[test]
fn the_readme_command_analyses_the_fixture_clip_with_the_shipped_model() {
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("models/mimic-fast/config.json"))
            .expect("the default model is shipped"),
    )
    .unwrap();
    let classes: Vec<String> = config["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("clip.csv");
    let out = analyze(&["tests/fixtures/clip.mp4", "-o", csv_path.to_str().unwrap()]);
    assert_success(&out);

    let csv = Rows::read(&csv_path);
    let (frame, label, track) = (
        csv.column("frame"),
        csv.column("label"),
        csv.column("track_id"),
    );
    let class_cols: Vec<usize> = classes.iter().map(|c| csv.column(c)).collect();
    let mut frames = Vec::new();
    let mut labels = BTreeSet::new();
    let mut faces = 0;
    for row in &csv.rows {
        frames.push(row[frame].parse::<u64>().unwrap());
        if row[label].is_empty() {
            continue;
        }
        faces += 1;
        assert!(!row[track].is_empty(), "every face has a track id");
        assert!(classes.contains(&row[label].to_string()));
        labels.insert(row[label].to_string());
        let sum: f64 = class_cols
            .iter()
            .map(|&c| row[c].parse::<f64>().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-3, "probabilities sum to {sum}");
    }
    frames.dedup();
    assert_eq!(
        frames,
        (0..60).collect::<Vec<u64>>(),
        "each of the 60 frames, in order"
    );
    assert!(
        faces >= 60,
        "the clip shows faces in every frame: {faces} found"
    );
    assert!(
        labels.len() >= 2,
        "a trained model does not answer one class: {labels:?}"
    );
}

#[test]
fn batch_mode_detection_writes_the_rows_of_frame_by_frame_detection() {
    // `--detect-batch 4`: frames waiting in the queue go through MTCNN together; each
    // frame's faces, labels and probabilities are those it gets alone, and rows keep
    // their order. Compared in full except the latency column.
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, batch: &str| {
        let path = dir.path().join(name);
        let out = analyze(&[
            "tests/fixtures/clip.mp4",
            "-o",
            path.to_str().unwrap(),
            "--detect-batch",
            batch,
        ]);
        assert_success(&out);
        Rows::read(&path)
    };
    let (alone, together) = (run("alone.csv", "1"), run("together.csv", "4"));
    assert_eq!(alone.rows.len(), together.rows.len());
    let latency = alone.column("latency_ms");
    for (r, (a, t)) in alone.rows.iter().zip(&together.rows).enumerate() {
        for c in (0..a.len()).filter(|&c| c != latency) {
            assert_eq!(&a[c], &t[c], "row {r}, column {c}");
        }
    }
}
