//! `DIR/manifest.jsonl`: one JSON line per finished input of an `--out-dir` run —
//! what it was, what it produced, and the output's SHA-256 — appended and synced as
//! each input finishes, so that a killed run loses at most the inputs in progress and
//! `--resume` can tell a complete output from a torn or stale one.
//!
//! Workers of a sharded run each append to their own file
//! (`manifest.shard-K-of-N.jsonl`), so that no two processes write one file on a
//! shared file system; readers take every `manifest*.jsonl` of the folder, the last
//! line about an input winning.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Shard;

/// How an input ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputStatus {
    /// Every frame was analysed and written.
    Complete,
    /// It failed part-way (or could not be opened); its output holds the rows before.
    Failed,
}

/// One line of the manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The input as named in the output's `source` column.
    pub input: String,
    /// Its position in the whole input list (before sharding): the merge order.
    pub index: usize,
    /// The input file's size in bytes (none for streams and cameras).
    pub size: Option<u64>,
    pub frames: u64,
    pub faces: u64,
    pub status: InputStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub seconds: f64,
    /// The output file, relative to the folder.
    pub output: String,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read or write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: not a manifest entry: {reason}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// The manifest file this process appends to.
pub fn manifest_file_name(shard: Option<Shard>) -> String {
    match shard {
        Some(s) if s.count() > 1 => format!("manifest.shard-{}-of-{}.jsonl", s.index(), s.count()),
        _ => "manifest.jsonl".into(),
    }
}

/// Every manifest of a folder, and the file this process adds to.
#[derive(Debug)]
pub struct Manifest {
    dir: PathBuf,
    file: PathBuf,
    /// The last entry about each input, over all of the folder's manifest files.
    entries: BTreeMap<String, ManifestEntry>,
}

impl Manifest {
    /// Reads every `manifest*.jsonl` in `dir` (none is fine); `file_name` is the one
    /// [`append`](Self::append) writes to. A line that is not an entry is an error
    /// naming file and line — except a torn last line, which a kill mid-write leaves
    /// and which is skipped.
    pub fn open(dir: &Path, file_name: &str) -> Result<Self, ManifestError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ManifestError::Io { path, source }
        };
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(listing) => listing
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("manifest") && n.ends_with(".jsonl"))
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(dir)(e)),
        };
        files.sort();
        let mut entries = BTreeMap::new();
        for path in &files {
            let text = std::fs::read_to_string(path).map_err(io(path))?;
            let complete_lines = text.ends_with('\n');
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<ManifestEntry>(line) {
                    Ok(entry) => {
                        entries.insert(entry.input.clone(), entry);
                    }
                    Err(_) if i + 1 == lines.len() && !complete_lines => {}
                    Err(e) => {
                        return Err(ManifestError::Line {
                            path: path.clone(),
                            line: i + 1,
                            reason: e.to_string(),
                        });
                    }
                }
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            file: dir.join(file_name),
            entries,
        })
    }

    pub fn entries(&self) -> impl Iterator<Item = &ManifestEntry> {
        self.entries.values()
    }

    pub fn entry(&self, input: &str) -> Option<&ManifestEntry> {
        self.entries.get(input)
    }

    /// Whether `input` (now of `size` bytes) finished completely and its output is
    /// still exactly what the manifest recorded.
    pub fn is_done(&self, input: &str, size: Option<u64>) -> bool {
        let Some(entry) = self.entries.get(input) else {
            return false;
        };
        entry.status == InputStatus::Complete
            && entry.size == size
            && file_sha256(&self.dir.join(&entry.output)).is_ok_and(|h| h == entry.sha256)
    }

    /// Appends `entry` as one line and syncs it to disk.
    pub fn append(&mut self, entry: ManifestEntry) -> Result<(), ManifestError> {
        let io = |source| ManifestError::Io {
            path: self.file.clone(),
            source,
        };
        let mut line = serde_json::to_string(&entry).expect("an entry serialises");
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
            .map_err(io)?;
        file.write_all(line.as_bytes()).map_err(io)?;
        file.sync_data().map_err(io)?;
        self.entries.insert(entry.input.clone(), entry);
        Ok(())
    }
}

/// The SHA-256 of a file, as lower-case hex.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut reader = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut hasher = Sha256::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(input: &str, output: &str, sha256: String) -> ManifestEntry {
        ManifestEntry {
            input: input.into(),
            index: 0,
            size: Some(10),
            frames: 3,
            faces: 2,
            status: InputStatus::Complete,
            message: None,
            seconds: 1.5,
            output: output.into(),
            sha256,
        }
    }

    #[test]
    fn a_complete_entry_counts_only_while_its_output_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "rows\n").unwrap();
        let hash = file_sha256(&dir.path().join("a.csv")).unwrap();
        let mut m = Manifest::open(dir.path(), "manifest.jsonl").unwrap();
        assert!(!m.is_done("a.mp4", Some(10)));
        m.append(entry("a.mp4", "a.csv", hash)).unwrap();
        let again = Manifest::open(dir.path(), "manifest.jsonl").unwrap();
        assert!(again.is_done("a.mp4", Some(10)));
        assert!(!again.is_done("a.mp4", Some(11)), "the input changed");
        std::fs::write(dir.path().join("a.csv"), "rows, then more\n").unwrap();
        assert!(!again.is_done("a.mp4", Some(10)), "the output changed");
    }

    #[test]
    fn shards_read_each_others_lines_and_a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let shard = Shard::new(2, 3).unwrap();
        assert_eq!(
            manifest_file_name(Some(shard)),
            "manifest.shard-2-of-3.jsonl"
        );
        let mut m = Manifest::open(dir.path(), &manifest_file_name(Some(shard))).unwrap();
        m.append(entry("b.mp4", "b.csv", "00".into())).unwrap();
        let mut other = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("manifest.shard-1-of-3.jsonl"))
            .unwrap();
        let line = serde_json::to_string(&entry("a.mp4", "a.csv", "11".into())).unwrap();
        write!(other, "{line}\n{{\"input\": \"c.mp4\", \"ind").unwrap();
        let all = Manifest::open(dir.path(), "manifest.jsonl").unwrap();
        let inputs: Vec<&str> = all.entries().map(|e| e.input.as_str()).collect();
        assert_eq!(inputs, vec!["a.mp4", "b.mp4"]);
        // A bad line that is not the last is an error naming it.
        std::fs::write(dir.path().join("manifest.jsonl"), "nonsense\n{}\n").unwrap();
        let err = Manifest::open(dir.path(), "manifest.jsonl")
            .unwrap_err()
            .to_string();
        assert!(err.contains("manifest.jsonl:1"), "{err}");
    }
}
