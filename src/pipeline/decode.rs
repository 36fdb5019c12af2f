//! The decode stage: opens each input in turn and hands its frames on, in
//! order, behind an [`Item::Start`]; a failed input becomes an [`Item::Failed`].
//! A network input that stalls or drops is reconnected with back-off when
//! [`ReconnectPolicy`] allows (its frames numbered on across connections);
//! otherwise a stall after frames is taken as the stream's end (an
//! [`Item::Notice`]).
//! In live mode the hand-over is a [`LatestFrameQueue`] (the newest frame wins),
//! otherwise a bounded channel (back-pressure).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::{InputFailure, InputNotice, Item, LatestFrameQueue, Stage, StageClocks, StopFlag};
use crate::decode::{DecodeError, DecodeOptions, InputSpec, open_with};
use crate::frame::Frame;

/// The decoder's end of the first hand-over.
pub(super) enum FeedSender {
    Bounded(Sender<Item<Frame>>),
    Live(Arc<LatestFrameQueue>),
}

impl FeedSender {
    /// False when the next stage is gone.
    pub(super) fn send(&self, item: Item<Frame>) -> bool {
        match self {
            FeedSender::Bounded(tx) => tx.send(item).is_ok(),
            FeedSender::Live(queue) => {
                queue.put(item);
                true
            }
        }
    }
}

impl Drop for FeedSender {
    fn drop(&mut self) {
        if let FeedSender::Live(queue) = self {
            queue.close();
        }
    }
}

pub(super) enum FeedReceiver {
    Bounded(Receiver<Item<Frame>>),
    Live(Arc<LatestFrameQueue>),
}

impl FeedReceiver {
    pub(super) fn recv(&self) -> Option<Item<Frame>> {
        match self {
            FeedReceiver::Bounded(rx) => rx.recv().ok(),
            FeedReceiver::Live(queue) => queue.take(),
        }
    }

    /// The next item if one is already waiting (never in live mode, where the newest
    /// frame is taken alone).
    pub(super) fn try_recv(&self) -> Option<Item<Frame>> {
        match self {
            FeedReceiver::Bounded(rx) => rx.try_recv().ok(),
            FeedReceiver::Live(_) => None,
        }
    }
}

/// How the decode stage treats network inputs that stall or drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ReconnectPolicy {
    /// Reconnection attempts in a row before the input ends (0: never reconnect); the
    /// count starts again once frames flow.
    pub attempts: u32,
}

/// Wait before reconnection attempt `n` (1-based): 1 s, doubling, at most 30 s.
pub(super) fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

/// Frame numbering across the connections of one input: a new connection's frames
/// continue the index and the presentation time where the last one stopped (plus the
/// wall-clock time the input was away).
#[derive(Default)]
struct Continuation {
    index_offset: u64,
    pts_offset_ms: f64,
    /// Index, pts and arrival of the last frame handed on.
    last: Option<(u64, f64, Instant)>,
}

impl Continuation {
    fn apply(&mut self, mut frame: Frame) -> Frame {
        frame.index += self.index_offset;
        frame.pts_ms += self.pts_offset_ms;
        self.last = Some((frame.index, frame.pts_ms, Instant::now()));
        frame
    }

    /// A new connection: its frame 0 follows the last frame handed on.
    fn reconnected(&mut self) {
        if let Some((index, pts_ms, at)) = self.last {
            self.index_offset = index + 1;
            self.pts_offset_ms = pts_ms + at.elapsed().as_secs_f64() * 1e3;
        }
    }
}

pub(super) fn decode_stage(
    inputs: Vec<InputSpec>,
    decode_options: &DecodeOptions,
    reconnect: ReconnectPolicy,
    feed: FeedSender,
    stop: &StopFlag,
    clocks: &StageClocks,
    keep_going: bool,
) {
    let clock = clocks.get(Stage::Decode);
    for spec in inputs {
        if stop.is_raised() {
            return;
        }
        let input = spec.source_id().to_string();
        let failure = |e: &dyn std::fmt::Display| {
            Item::Failed(InputFailure {
                input: input.clone(),
                message: e.to_string(),
            })
        };
        let notice = |message: String| {
            Item::Notice(InputNotice {
                input: input.clone(),
                message,
            })
        };
        let may_reconnect = spec.is_network() && reconnect.attempts > 0;
        let mut continuation = Continuation::default();
        let mut attempts = 0u32;
        let mut started = false;
        // One pass per connection; a network input may take several.
        'connection: loop {
            let error = match open_with(&spec, decode_options) {
                Err(e) => e,
                Ok(mut source) => {
                    if !started {
                        started = true;
                        if !feed.send(Item::Start(source.info())) {
                            return;
                        }
                    } else {
                        continuation.reconnected();
                        if !feed.send(notice(format!("reconnected (attempt {attempts})"))) {
                            return;
                        }
                    }
                    loop {
                        if stop.is_raised() {
                            return;
                        }
                        match clock.time(1, || source.next()) {
                            None => break 'connection,
                            Some(Ok(frame)) => {
                                attempts = 0;
                                if !feed.send(Item::Work(continuation.apply(frame))) {
                                    return;
                                }
                            }
                            Some(Err(e)) => break e,
                        }
                    }
                }
            };
            if may_reconnect && attempts < reconnect.attempts {
                attempts += 1;
                let wait = backoff(attempts);
                let message = format!(
                    "{error}; reconnecting in {:.0} s (attempt {attempts} of {})",
                    wait.as_secs_f64(),
                    reconnect.attempts
                );
                if !feed.send(notice(message)) || !sleep_unless_stopped(wait, stop) {
                    return;
                }
                continue 'connection;
            }
            // A live stream that stops delivering has ended (UDP has no end of stream):
            // a notice, not a failure. Other errors fail the input.
            let ended = if matches!(error, DecodeError::Stalled { .. }) && started {
                feed.send(notice(format!("{error}: taken as the end of the stream")))
            } else {
                feed.send(failure(&error)) && keep_going
            };
            if !ended {
                stop.raise();
                return;
            }
            break;
        }
    }
}

/// Sleeps `wait`, waking early when the stop flag is raised; false if it was.
fn sleep_unless_stopped(wait: Duration, stop: &StopFlag) -> bool {
    let until = Instant::now() + wait;
    while Instant::now() < until {
        if stop.is_raised() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
    !stop.is_raised()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_thirty() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
