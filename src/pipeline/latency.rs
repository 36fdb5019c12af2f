//! Capture-to-row latency over a run in constant memory: a histogram of 1 ms
//! bins, from which the median and the 95th percentile are read.

/// Bins of 1 ms up to this many ms; longer latencies fall in the last bin
/// (their exact maximum is kept apart).
const BINS: usize = 60_000;

/// Latencies added one frame at a time.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    counts: Vec<u32>,
    total: u64,
    sum_ms: f64,
    max_ms: f64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BINS],
            total: 0,
            sum_ms: 0.0,
            max_ms: 0.0,
        }
    }
}

/// What a run's latency came to, in milliseconds. Percentiles are the upper
/// edge of their 1 ms bin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencySummary {
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

impl LatencyHistogram {
    pub fn add(&mut self, ms: f64) {
        let ms = ms.max(0.0);
        let bin = (ms as usize).min(BINS - 1);
        self.counts[bin] += 1;
        self.total += 1;
        self.sum_ms += ms;
        self.max_ms = self.max_ms.max(ms);
    }

    /// The latency below which a share `q` of the frames came (upper bin edge).
    fn quantile(&self, q: f64) -> f64 {
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (bin, &count) in self.counts.iter().enumerate() {
            seen += u64::from(count);
            if seen >= rank {
                return ((bin + 1) as f64).min(self.max_ms.max(bin as f64));
            }
        }
        self.max_ms
    }

    /// `None` before the first frame.
    pub fn summary(&self) -> Option<LatencySummary> {
        (self.total > 0).then(|| LatencySummary {
            mean_ms: self.sum_ms / self.total as f64,
            p50_ms: self.quantile(0.5),
            p95_ms: self.quantile(0.95),
            max_ms: self.max_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_spread() {
        let mut h = LatencyHistogram::default();
        assert!(h.summary().is_none());
        // 1.5, 2.5, … 100.5 ms: median ~50, p95 ~95.
        for k in 1..=100 {
            h.add(k as f64 + 0.5);
        }
        let s = h.summary().unwrap();
        assert_eq!(s.p50_ms, 51.0);
        assert_eq!(s.p95_ms, 96.0);
        assert_eq!(s.max_ms, 100.5);
        assert!((s.mean_ms - 51.0).abs() < 1e-9);
        // A latency past the last bin keeps its exact maximum.
        h.add(75_000.0);
        assert_eq!(h.summary().unwrap().max_ms, 75_000.0);
    }
}
