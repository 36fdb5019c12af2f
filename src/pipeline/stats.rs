//! Time spent per stage, for the end-of-run summary and `mimic bench`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Busy time and item count of one stage, updated from its own thread.
#[derive(Debug, Default)]
pub struct StageClock {
    busy_ns: AtomicU64,
    items: AtomicU64,
}

impl StageClock {
    /// Runs `work`, adding its wall time to the stage's busy time.
    pub fn time<T>(&self, items: u64, work: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = work();
        self.busy_ns
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.items.fetch_add(items, Ordering::Relaxed);
        out
    }

    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed))
    }

    pub fn items(&self) -> u64 {
        self.items.load(Ordering::Relaxed)
    }
}

/// The pipeline's stages, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Decode,
    Detect,
    Align,
    Infer,
    Track,
    Write,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Decode,
        Stage::Detect,
        Stage::Align,
        Stage::Infer,
        Stage::Track,
        Stage::Write,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Detect => "detect",
            Stage::Align => "align",
            Stage::Infer => "infer",
            Stage::Track => "track",
            Stage::Write => "write",
        }
    }
}

/// One clock per stage.
#[derive(Debug, Default)]
pub struct StageClocks {
    clocks: [StageClock; 6],
}

impl StageClocks {
    pub fn get(&self, stage: Stage) -> &StageClock {
        &self.clocks[stage as usize]
    }
}
