//! Running the `mimic` binary and reading the CSV it writes, for the integration tests.
#![allow(dead_code)] // each test binary uses part of it

use std::path::Path;
use std::process::{Command, Output};

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `mimic analyze ARGS --device cpu -q`, run from the repository root.
pub fn analyze(args: &[&str]) -> Output {
    analyze_on("cpu", args)
}

/// `mimic analyze ARGS --device DEVICE -q`, run from the repository root; `gpu` may take
/// a software adapter (lavapipe in CI).
pub fn analyze_on(device: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mimic"))
        .current_dir(root())
        .env(mimic::device::ALLOW_SOFTWARE_GPU_ENV, "1")
        .arg("analyze")
        .args(args)
        .args(["--device", device, "-q"])
        .output()
        .expect("running the mimic binary")
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The rows of a CSV written by `mimic analyze`, with its columns looked up by name.
pub struct Rows {
    headers: csv::StringRecord,
    pub rows: Vec<csv::StringRecord>,
}

impl Rows {
    pub fn read(path: &Path) -> Self {
        let mut reader = csv::Reader::from_path(path).expect("the CSV exists");
        let headers = reader.headers().expect("a header").clone();
        let rows = reader
            .records()
            .map(|r| r.expect("a complete row"))
            .collect();
        Self { headers, rows }
    }

    pub fn column(&self, name: &str) -> usize {
        self.headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    /// The frame number of each row, in file order.
    pub fn frames(&self) -> Vec<u64> {
        let frame = self.column("frame");
        self.rows
            .iter()
            .map(|r| r[frame].parse().expect("a frame number"))
            .collect()
    }
}

/// The rows of a CSV without its latency column (the only one that differs run to run),
/// each joined back into one string.
pub fn rows_without_latency(csv: &Path) -> Vec<String> {
    let mut r = csv::Reader::from_path(csv).expect("the CSV exists");
    let latency = r
        .headers()
        .expect("a header")
        .iter()
        .position(|h| h == "latency_ms")
        .expect("a latency column");
    r.records()
        .map(|rec| {
            let rec = rec.expect("a complete row");
            rec.iter()
                .enumerate()
                .filter(|(i, _)| *i != latency)
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

/// Every line of the `manifest*.jsonl` files of an `--out-dir` folder, sorted.
pub fn manifest_lines(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("manifest"))
                .flat_map(|e| {
                    std::fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .lines()
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .unwrap_or_default();
    lines.sort();
    lines
}
