//! What the training loops share besides the model: batch prefetching, the
//! stop / checkpoint decisions, the progress bar.

use std::io::IsTerminal;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Produces `make(i)` for every `i` of `range` on a background thread,
/// `depth` batches ahead of the consumer, so that decoding and augmentation
/// overlap the training step. Dropping the receiver stops the thread.
pub fn prefetch<T: Send + 'static>(
    range: Range<usize>,
    depth: usize,
    make: impl Fn(usize) -> T + Send + 'static,
) -> Receiver<T> {
    let (tx, rx) = sync_channel(depth);
    std::thread::Builder::new()
        .name("batches".into())
        .spawn(move || {
            for i in range {
                if tx.send(make(i)).is_err() {
                    return;
                }
            }
        })
        .expect("spawn the batch thread");
    rx
}

/// When a training session stops early and when it writes a checkpoint.
#[derive(Clone, Debug)]
pub struct LoopControl {
    /// Set by Ctrl-C (or a test): stop after the current step.
    pub stop: Arc<AtomicBool>,
    /// Stop after this many optimizer steps in this session (a checkpoint is
    /// written), as if interrupted.
    pub max_steps: Option<usize>,
    /// Write a checkpoint at least this often inside an epoch.
    pub checkpoint_every: Duration,
    /// Stop (with a checkpoint) once this session has trained this long: a
    /// slice of a longer run that must fit a lease of a machine.
    pub max_time: Option<Duration>,
    steps: usize,
    started: Instant,
    last_checkpoint: Instant,
}

impl LoopControl {
    pub fn new(
        stop: Arc<AtomicBool>,
        max_steps: Option<usize>,
        checkpoint_every: Duration,
    ) -> Self {
        Self {
            stop,
            max_steps,
            checkpoint_every,
            max_time: None,
            steps: 0,
            started: Instant::now(),
            last_checkpoint: Instant::now(),
        }
    }

    /// Stop after `minutes` of this session (`None`: no limit).
    pub fn with_max_minutes(mut self, minutes: Option<f64>) -> Self {
        self.max_time = minutes.map(|m| Duration::from_secs_f64(m.max(0.0) * 60.0));
        self
    }

    /// Counts one step; true when the session should stop now.
    pub fn step_and_check_stop(&mut self) -> bool {
        self.steps += 1;
        self.stop.load(Ordering::SeqCst)
            || self.max_steps.is_some_and(|m| self.steps >= m)
            || self.max_time.is_some_and(|t| self.started.elapsed() >= t)
    }

    /// True when a periodic checkpoint is due (and resets the clock).
    pub fn checkpoint_due(&mut self) -> bool {
        if self.last_checkpoint.elapsed() >= self.checkpoint_every {
            self.last_checkpoint = Instant::now();
            true
        } else {
            false
        }
    }

    pub fn checkpoint_written(&mut self) {
        self.last_checkpoint = Instant::now();
    }
}

/// How a training call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// All epochs done.
    Finished,
    /// Stopped early (Ctrl-C or `--max-steps`); a checkpoint was written and
    /// running the same command resumes.
    Stopped,
}

/// How often a run whose stderr is not a terminal (a log file) prints a progress line.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// Progress of one epoch: a bar (`loss, lr, images/s, ETA`) on a terminal; when stderr
/// is a log file, where a bar draws nothing, the same figures as a plain line every
/// [`LOG_EVERY`], so that a run in the background shows its progress too.
pub struct EpochProgress {
    bar: ProgressBar,
    /// When the last log line was printed; `None` on a terminal.
    logged_at: Option<Instant>,
}

impl EpochProgress {
    /// Epoch `epoch` (0-based) of `epochs`, `batches` steps, `done` of them already done
    /// (a resumed epoch).
    pub fn new(epoch: usize, epochs: usize, batches: usize, done: usize) -> Self {
        let bar = ProgressBar::with_draw_target(Some(batches as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:28}] {pos}/{len} {msg} | epoch ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("epoch {}/{epochs}", epoch + 1));
        bar.set_position(done as u64);
        bar.reset_eta();
        let logged_at = (!std::io::stderr().is_terminal()).then(Instant::now);
        Self { bar, logged_at }
    }

    /// One step done; `message` describes the run so far.
    pub fn step(&mut self, message: String) {
        self.bar.inc(1);
        if let Some(at) = self
            .logged_at
            .as_mut()
            .filter(|at| at.elapsed() >= LOG_EVERY)
        {
            eprintln!(
                "{} {}/{} {message}",
                self.bar.prefix(),
                self.bar.position(),
                self.bar.length().unwrap_or(0)
            );
            *at = Instant::now();
        }
        self.bar.set_message(message);
    }

    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}

/// `1h02m`-style duration for whole-run ETAs.
pub fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
