//! `mimic analyze` on bad input, through the real binary: each case ends with one clear
//! error naming the culprit and a non-zero exit, and the rows written before the failure
//! stay in the output. The expression model is the small ViT fixture of
//! `tests/fixtures/vit/cls` (these tests are about errors, not predictions).

mod cli_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cli_common::{Rows, root};

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// Runs `mimic analyze ARGS --device cpu -q` with the fixture model unless ARGS name one.
fn analyze(args: &[&str]) -> Output {
    let model = fixture("vit/cls");
    let mut args = args.to_vec();
    if !args.contains(&"--model") {
        args.extend(["--model", model.to_str().unwrap()]);
    }
    cli_common::analyze(&args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a failed run whose error output names `culprit` (and says `what`).
fn assert_fails_naming(out: &Output, culprit: &str, what: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "exit code; stderr:\n{err}");
    assert!(err.contains(culprit), "stderr must name {culprit}:\n{err}");
    assert!(
        err.to_lowercase().contains(what),
        "stderr must say {what:?}:\n{err}"
    );
}

/// The CSV's lines without the last column (latency varies from run to run).
fn rows_without_latency(csv_path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(csv_path).expect("the CSV exists");
    assert!(text.starts_with("source,") && text.lines().next().unwrap().ends_with(",latency_ms"));
    text.lines()
        .map(|line| {
            line.rsplit_once(',')
                .map_or(line, |(rest, _)| rest)
                .to_string()
        })
        .collect()
}

#[test]
fn missing_input_file_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("out.csv");
    let out = analyze(&["no/such/video.mp4", "-o", csv.to_str().unwrap()]);
    assert_fails_naming(&out, "no/such/video.mp4", "no such file");
    assert!(!csv.exists(), "no output for a run that cannot start");
}

#[test]
fn a_file_that_is_not_a_video_is_named() {
    let path = fixture("decode/not_a_video.mp4");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("out.csv");
    let out = analyze(&[path.to_str().unwrap(), "-o", csv.to_str().unwrap()]);
    assert_fails_naming(&out, "not_a_video.mp4", "not a video");
    assert!(Rows::read(&csv).frames().is_empty());
}

#[test]
fn a_zero_byte_file_is_named() {
    let path = fixture("decode/empty.mp4");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("out.csv");
    let out = analyze(&[path.to_str().unwrap(), "-o", csv.to_str().unwrap()]);
    assert_fails_naming(&out, "empty.mp4", "empty");
}

#[test]
fn a_truncated_video_keeps_the_rows_of_every_frame_decoded() {
    let path = fixture("decode/truncated.mp4");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("out.csv");
    let out = analyze(&[path.to_str().unwrap(), "-o", csv.to_str().unwrap()]);
    assert_fails_naming(&out, "truncated.mp4", "cut short");
    let mut frames = Rows::read(&csv).frames();
    frames.dedup(); // a frame with several faces has several rows
    let decoded = frames.len() as u64;
    assert!(decoded > 10, "the first part of the file is analysed");
    assert_eq!(
        frames,
        (0..decoded).collect::<Vec<_>>(),
        "every frame once, in order"
    );
}

/// The rows (without latency) of a still with a face analysed alone, and of the run
/// of `inputs` (where "good" stands for that still, "bad" for a non-video), with the
/// run's output.
fn alone_and_within(inputs: &[&str], extra: &[&str]) -> (Vec<String>, Vec<String>, Output) {
    let good = fixture("mtcnn/still_obama.png");
    let bad = fixture("decode/not_a_video.mp4");
    let dir = tempfile::tempdir().unwrap();
    let (alone, within) = (dir.path().join("alone.csv"), dir.path().join("within.csv"));
    analyze(&[good.to_str().unwrap(), "-o", alone.to_str().unwrap()]);
    let mut args: Vec<&str> = inputs
        .iter()
        .map(|&i| {
            if i == "good" {
                good.to_str().unwrap()
            } else {
                bad.to_str().unwrap()
            }
        })
        .collect();
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-o", within.to_str().unwrap()]);
    let out = analyze(&args);
    let alone = rows_without_latency(&alone);
    assert!(alone.len() > 1, "the still has a face");
    (alone, rows_without_latency(&within), out)
}

#[test]
fn a_bad_input_stops_the_run_and_keeps_the_rows_before_it() {
    let (alone, within, out) = alone_and_within(&["good", "bad", "good"], &[]);
    assert_fails_naming(&out, "not_a_video.mp4", "failed");
    assert_eq!(within, alone, "the first input's rows, once");
}

#[test]
fn keep_going_analyses_the_inputs_after_a_bad_one() {
    let (alone, within, out) = alone_and_within(&["bad", "good"], &["--keep-going"]);
    assert_fails_naming(&out, "not_a_video.mp4", "failed");
    assert_eq!(within, alone);
}

#[test]
fn an_unopenable_webcam_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("out.csv");
    let out = analyze(&["--webcam", "63", "-o", csv.to_str().unwrap()]);
    assert_fails_naming(&out, "webcam:63", "cannot open the camera");
}

#[test]
fn an_unwritable_output_path_fails_before_any_work() {
    let path = fixture("decode/truncated.mp4");
    let out = analyze(&[path.to_str().unwrap(), "-o", "/no/such/folder/out.csv"]);
    assert_fails_naming(&out, "/no/such/folder/out.csv", "");
}

#[test]
fn a_missing_model_folder_is_named() {
    let path = fixture("decode/truncated.mp4");
    let out = analyze(&[
        path.to_str().unwrap(),
        "--model",
        "/no/such/model",
        "-o",
        "-",
    ]);
    assert_fails_naming(&out, "/no/such/model", "model");
    assert!(out.stdout.is_empty(), "no rows without a model");
}

#[test]
fn a_corrupt_weights_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    for name in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("vit/cls").join(name), model.join(name)).unwrap();
    }
    let weights = model.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let path = fixture("decode/truncated.mp4");
    let out = analyze(&[
        path.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "-o",
        "-",
    ]);
    assert_fails_naming(&out, "model.safetensors", "");
}

#[test]
fn ctrl_c_ends_with_code_130_and_a_complete_csv() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("out.csv");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mimic"))
        .arg("analyze")
        .arg(fixture("clip.mp4"))
        .arg("--model")
        .arg(fixture("vit/cls"))
        .args(["--device", "cpu", "-q", "-o"])
        .arg(&csv)
        .spawn()
        .expect("running the mimic binary");
    // Interrupt once a few frames are written (rows are flushed per frame).
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_to_string(&csv).map_or(0, |t| t.lines().count()) < 4 {
        assert!(Instant::now() < deadline, "no rows within two minutes");
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before the interrupt"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.ends_with('\n'), "the last row is whole");
    let mut frames = Rows::read(&csv).frames();
    frames.dedup();
    let n = frames.len() as u64;
    assert!(n >= 3 && n < 60, "stopped part-way: {n} frames");
    assert_eq!(
        frames,
        (0..n).collect::<Vec<_>>(),
        "every frame up to the stop, in order"
    );
}
