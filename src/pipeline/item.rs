//! The messages that travel down the pipeline.

use crate::decode::SourceInfo;
use crate::frame::{Frame, SourceId};

/// A unit of pipeline traffic. Every stage transforms `Work` and passes the
/// other variants on untouched and in order, so the writer sees each input's
/// start, every frame (analysed or skipped) and each input's failure exactly
/// where they happened.
#[derive(Debug)]
pub enum Item<T> {
    /// An input was opened; its frames follow.
    Start(SourceInfo),
    /// A frame on its way through the stages.
    Work(T),
    /// Live mode dropped this frame before analysis.
    Skipped(SkippedFrame),
    /// An input failed (could not be opened, or decoding stopped early). The
    /// frames decoded before the failure were already sent.
    Failed(InputFailure),
    /// Something the user should hear about an input that did not fail it: a
    /// live stream that stalled and ended, a reconnection.
    Notice(InputNotice),
}

impl<T> Item<T> {
    /// Applies `f` to a `Work` item, passing every other item through.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Item<U> {
        match self {
            Item::Start(info) => Item::Start(info),
            Item::Work(work) => Item::Work(f(work)),
            Item::Skipped(skipped) => Item::Skipped(skipped),
            Item::Failed(failure) => Item::Failed(failure),
            Item::Notice(notice) => Item::Notice(notice),
        }
    }

    /// [`map`](Self::map) with a fallible `f`: its error ends the stage.
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Item<U>, E> {
        Ok(match self {
            Item::Start(info) => Item::Start(info),
            Item::Work(work) => Item::Work(f(work)?),
            Item::Skipped(skipped) => Item::Skipped(skipped),
            Item::Failed(failure) => Item::Failed(failure),
            Item::Notice(notice) => Item::Notice(notice),
        })
    }
}

/// The identity of a frame that was dropped before analysis.
#[derive(Clone, Debug, PartialEq)]
pub struct SkippedFrame {
    pub source: SourceId,
    pub index: u64,
    pub pts_ms: f64,
}

impl SkippedFrame {
    pub fn of(frame: &Frame) -> Self {
        Self {
            source: frame.source.clone(),
            index: frame.index,
            pts_ms: frame.pts_ms,
        }
    }
}

/// An input that failed, with the error's whole chain already rendered.
#[derive(Clone, Debug)]
pub struct InputFailure {
    pub input: String,
    pub message: String,
}

/// A message about an input that does not fail it (see [`Item::Notice`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputNotice {
    pub input: String,
    pub message: String,
}
