//! `--out-dir`, `--shard`, `--resume` and `mimic merge`: N workers cover every input
//! exactly once, a killed run resumes without losing or repeating an input, and the
//! merged table is row for row what one process writes.

mod cli_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cli_common::{manifest_lines, root, rows_without_latency as rows};

fn fixture(name: &str) -> String {
    root()
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// The fixture clip, four stills and a rotated video: six inputs of three kinds.
fn input_list(dir: &Path) -> PathBuf {
    let list = dir.join("inputs.txt");
    let inputs = [
        fixture("clip.mp4"),
        fixture("mtcnn/still_obama.png"),
        fixture("mtcnn/still_biden.png"),
        "# a comment line, and a blank one".into(),
        String::new(),
        fixture("mtcnn/frame_000.png"),
        fixture("mtcnn/frame_120.png"),
        fixture("decode/rotated90.mp4"),
    ];
    std::fs::write(&list, inputs.join("\n")).unwrap();
    list
}

fn mimic(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mimic"));
    c.current_dir(root()).args(args);
    c
}

fn analyze(extra: &[&str]) -> Output {
    mimic(&[
        "analyze",
        "--model",
        &fixture("vit/cls"),
        "--device",
        "cpu",
        "-q",
    ])
    .args(extra)
    .output()
    .unwrap()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn three_shards_merged_give_exactly_the_rows_of_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let list = input_list(tmp.path());
    let list = list.to_str().unwrap();
    let single = tmp.path().join("single.csv");
    ok(&analyze(&[
        "--inputs-from",
        list,
        "-o",
        single.to_str().unwrap(),
    ]));

    let out = tmp.path().join("out");
    let out_arg = out.to_str().unwrap();
    for k in 1..=3 {
        ok(&analyze(&[
            "--inputs-from",
            list,
            "--out-dir",
            out_arg,
            "--shard",
            &format!("{k}/3"),
        ]));
    }
    assert_eq!(
        manifest_lines(&out).len(),
        6,
        "every input once over the three shards"
    );
    let merged = tmp.path().join("merged.csv");
    let m = mimic(&["merge", out_arg, "-o", merged.to_str().unwrap()])
        .output()
        .unwrap();
    ok(&m);
    assert_eq!(
        rows(&merged),
        rows(&single),
        "the merge is the one-process table"
    );

    // A merge refuses an output that no longer matches its manifest line.
    let victim = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "csv"))
        .unwrap();
    let text = std::fs::read_to_string(&victim).unwrap();
    std::fs::write(&victim, format!("{text}{}", text.lines().last().unwrap())).unwrap();
    let m = mimic(&["merge", out_arg, "-o", merged.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(m.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&m.stderr).contains("sha256"));
}

#[test]
fn a_killed_run_resumes_without_losing_or_repeating_an_input() {
    let tmp = tempfile::tempdir().unwrap();
    // A longer third input (the clip five times) so that the kill lands inside it.
    let long = tmp.path().join("long.mp4");
    let made = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-stream_loop",
            "4",
            "-i",
        ])
        .arg(fixture("clip.mp4"))
        .args(["-an", "-c:v", "mpeg4", "-q:v", "5"])
        .arg(&long)
        .status()
        .unwrap();
    assert!(made.success());
    let list = tmp.path().join("inputs.txt");
    let names = [
        fixture("mtcnn/still_obama.png"),
        fixture("mtcnn/frame_000.png"),
        long.display().to_string(),
        fixture("mtcnn/frame_120.png"),
    ];
    std::fs::write(&list, names.join("\n")).unwrap();
    let list = list.to_str().unwrap().to_string();
    let out = tmp.path().join("out");
    let out_arg = out.to_str().unwrap().to_string();
    let args = |extra: &[&str]| {
        let mut a = vec![
            "analyze",
            "--model",
            "",
            "--device",
            "cpu",
            "--inputs-from",
            &list,
        ];
        a.extend_from_slice(&["--out-dir", &out_arg]);
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let model = fixture("vit/cls");
    let mut first = args(&[]);
    first[2] = model.clone();
    let mut child = mimic(&first.iter().map(String::as_str).collect::<Vec<_>>())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !out.exists() || manifest_lines(&out).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "two inputs not done within two minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let done_before = manifest_lines(&out).len();
    assert!(
        (2..4).contains(&done_before),
        "{done_before} inputs finished before the kill"
    );

    let mut again = args(&["--resume"]);
    again[2] = model;
    let resumed = mimic(&again.iter().map(String::as_str).collect::<Vec<_>>())
        .output()
        .unwrap();
    ok(&resumed);
    assert!(
        String::from_utf8_lossy(&resumed.stderr)
            .contains(&format!("{done_before} input(s) already complete")),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(
        manifest_lines(&out).len(),
        4,
        "each input written to the manifest once"
    );

    let merged = tmp.path().join("merged.csv");
    ok(&mimic(&["merge", &out_arg, "-o", merged.to_str().unwrap()])
        .output()
        .unwrap());
    let single = tmp.path().join("single.csv");
    ok(&analyze(&[
        "--inputs-from",
        &list,
        "-o",
        single.to_str().unwrap(),
    ]));
    assert_eq!(rows(&merged), rows(&single));
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
