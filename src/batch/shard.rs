//! `--shard K/N`: worker K of N takes the inputs whose stable hash falls to it, so N
//! independent processes (a Slurm job array) cover every input exactly once with no
//! coordination.

use std::fmt;
use std::str::FromStr;

/// Worker `index` (1-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--shard {text:?}: expected K/N with 1 <= K <= N, e.g. 3/8")]
pub struct ShardError {
    text: String,
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Option<Self> {
        (count >= 1 && (1..=count).contains(&index)).then_some(Self { index, count })
    }

    pub fn index(self) -> u32 {
        self.index
    }

    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether the input named `key` (its path or URL as given) is this worker's:
    /// FNV-1a 64 of the bytes, modulo N. Stable across machines, runs and versions.
    pub fn takes(self, key: &str) -> bool {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in key.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash % u64::from(self.count) == u64::from(self.index - 1)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || ShardError {
            text: text.to_string(),
        };
        let (k, n) = text.split_once('/').ok_or_else(err)?;
        let (k, n) = (
            k.trim().parse().map_err(|_| err())?,
            n.trim().parse().map_err(|_| err())?,
        );
        Shard::new(k, n).ok_or_else(err)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_input_exactly_once_and_spread_them() {
        let keys: Vec<String> = (0..3000)
            .map(|i| format!("videos/session-{i:04}.mp4"))
            .collect();
        let shards: Vec<Shard> = (1..=3).map(|k| Shard::new(k, 3).unwrap()).collect();
        let mut per_shard = [0usize; 3];
        for key in &keys {
            let owners: Vec<usize> = (0..3).filter(|&s| shards[s].takes(key)).collect();
            assert_eq!(owners.len(), 1, "{key}");
            per_shard[owners[0]] += 1;
        }
        assert!(
            per_shard.iter().all(|&n| (900..1100).contains(&n)),
            "{per_shard:?}"
        );
    }

    #[test]
    fn parses_k_of_n_and_refuses_the_rest() {
        assert_eq!("2/5".parse::<Shard>().unwrap(), Shard::new(2, 5).unwrap());
        assert_eq!("2/5".parse::<Shard>().unwrap().to_string(), "2/5");
        for bad in ["0/5", "6/5", "1", "a/b", "1/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        // The same key always lands on the same worker.
        let s = Shard::new(1, 1).unwrap();
        assert!(s.takes("anything"));
    }
}
