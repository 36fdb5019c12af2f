//! Live mode's hand-over from the decoder to the rest of the pipeline: a queue
//! in which the newest frame wins.
//!
//! The decoder never waits. When it offers a frame while older frames are still
//! waiting, those older frames become `Skipped` items in place: they are not
//! analysed, but they keep their position, so the writer still emits a row for
//! each of them, in order.
//!
//! One frame is analysed at a time: the queue hands out the next frame once the writer
//! has said the previous one is done ([`frame_done`](LatestFrameQueue::frame_done)).
//! On two cores, a second frame in flight would have the detector and the expression
//! model take turns on the same cores, and each frame would wait for the other's work;
//! alone, a frame goes through in the time of its own work, and the frame analysed next
//! is the newest one when that is done.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use super::item::{Item, SkippedFrame};
use crate::frame::Frame;

#[derive(Default)]
struct Queue {
    items: VecDeque<Item<Frame>>,
    closed: bool,
    /// A frame was handed out and its row is not written yet.
    frame_in_flight: bool,
}

/// Single-producer, single-consumer queue holding at most one waiting frame.
#[derive(Default)]
pub struct LatestFrameQueue {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl LatestFrameQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Offers an item; a new frame turns every frame still waiting into a
    /// skipped one.
    pub fn put(&self, item: Item<Frame>) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(item, Item::Work(_)) {
            for waiting in queue.items.iter_mut() {
                if let Item::Work(frame) = waiting {
                    *waiting = Item::Skipped(SkippedFrame::of(frame));
                }
            }
        }
        queue.items.push_back(item);
        self.ready.notify_one();
    }

    /// No more items will come; `take` returns None once the queue is empty.
    pub fn close(&self) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.closed = true;
        self.ready.notify_all();
    }

    /// Blocks until an item can be handed out, or the queue is closed and empty. A frame
    /// waits while another is in flight (once the queue is closed, nothing waits: the
    /// run is ending); skipped frames and notices never wait.
    pub fn take(&self) -> Option<Item<Frame>> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let frame_waits = queue.frame_in_flight && !queue.closed;
            match queue.items.front() {
                Some(Item::Work(_)) if frame_waits => {}
                Some(item) => {
                    let is_frame = matches!(item, Item::Work(_));
                    queue.frame_in_flight |= is_frame;
                    return queue.items.pop_front();
                }
                None if queue.closed => return None,
                None => {}
            }
            queue = self.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The frame handed out last has its row: the next one may go.
    pub fn frame_done(&self) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.frame_in_flight = false;
        self.ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{RgbImage, SourceId};
    use std::time::Instant;

    fn frame(index: u64) -> Item<Frame> {
        Item::Work(Frame {
            source: SourceId::new("cam"),
            index,
            pts_ms: index as f64 * 33.3,
            captured_at: Instant::now(),
            image: RgbImage::new(2, 2),
        })
    }

    /// What `take` yields, as `(index, analysed)` pairs.
    fn drain(queue: &LatestFrameQueue) -> Vec<(u64, bool)> {
        queue.close();
        std::iter::from_fn(|| queue.take())
            .filter_map(|item| match item {
                Item::Work(f) => Some((f.index, true)),
                Item::Skipped(s) => Some((s.index, false)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn newest_frame_wins_and_replaced_frames_stay_in_order_as_skipped() {
        let queue = LatestFrameQueue::new();
        for i in 0..3 {
            queue.put(frame(i));
        }
        assert_eq!(drain(&queue), vec![(0, false), (1, false), (2, true)]);
    }

    #[test]
    fn a_frame_taken_before_the_next_arrives_is_analysed() {
        let queue = LatestFrameQueue::new();
        queue.put(frame(0));
        assert!(matches!(queue.take(), Some(Item::Work(f)) if f.index == 0));
        queue.frame_done();
        queue.put(frame(1));
        assert_eq!(drain(&queue), vec![(1, true)]);
    }

    #[test]
    fn the_next_frame_waits_for_the_row_of_the_one_in_flight_and_is_the_newest() {
        let queue = std::sync::Arc::new(LatestFrameQueue::new());
        queue.put(frame(0));
        assert!(matches!(queue.take(), Some(Item::Work(f)) if f.index == 0));
        // Frames 1 and 2 arrive while frame 0 is in flight: 1 is skipped at once, 2 waits.
        queue.put(frame(1));
        queue.put(frame(2));
        assert!(matches!(queue.take(), Some(Item::Skipped(s)) if s.index == 1));
        let writer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(30));
                queue.put(frame(3));
                queue.frame_done();
            })
        };
        let started = Instant::now();
        let next = queue.take();
        assert!(started.elapsed() >= std::time::Duration::from_millis(25));
        writer.join().expect("writer thread");
        // Frame 3 arrived before frame 0 was done: frame 2 was skipped in its favour.
        assert!(matches!(next, Some(Item::Skipped(s)) if s.index == 2));
        assert!(matches!(queue.take(), Some(Item::Work(f)) if f.index == 3));
    }

    #[test]
    fn take_blocks_until_a_frame_arrives_from_another_thread() {
        let queue = std::sync::Arc::new(LatestFrameQueue::new());
        let producer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                queue.put(frame(1));
            })
        };
        assert!(matches!(queue.take(), Some(Item::Work(f)) if f.index == 1));
        producer.join().expect("producer thread");
    }
}
