//! Presentation times of decoded frames, in milliseconds from the start of the stream.
//!
//! Invariant (the one [`crate::frame::Frame::pts_ms`] promises): the times a
//! [`PtsClock`] hands out for one source start at or after 0 and never decrease.
//! - A frame's time is its best-effort timestamp (FFmpeg's choice between the
//!   packet's PTS and DTS) × the stream time base, minus the stream's start time
//!   (the smallest timestamp of the stream, or the first frame's when the container
//!   gives none). Exact for variable frame rate: no frame counting is involved.
//! - A frame without a timestamp gets the previous frame's time plus one nominal
//!   frame interval (0 for the first frame).
//! - A timestamp earlier than the previous frame's (broken muxing, a stream restart)
//!   is clamped to the previous time: the frame is kept, with a repeated time.
//!
//! Each repair is counted in [`PtsClock::repaired`].

#[derive(Clone, Debug)]
pub(crate) struct PtsClock {
    /// Milliseconds per time-base tick.
    ms_per_tick: f64,
    /// Timestamp (ticks) that maps to 0 ms; None until known.
    origin: Option<i64>,
    /// Interval used when a frame carries no timestamp.
    nominal_frame_ms: f64,
    last_ms: Option<f64>,
    pub repaired: u64,
}

impl PtsClock {
    /// `time_base`: seconds per tick as (num, den); `start`: the stream's start time in
    /// ticks when the container states it; `nominal_fps`: for frames without timestamps.
    pub fn new(time_base: (i32, i32), start: Option<i64>, nominal_fps: Option<f64>) -> Self {
        let (num, den) = time_base;
        let ms_per_tick = if den != 0 {
            1000.0 * num as f64 / den as f64
        } else {
            0.0
        };
        let nominal_frame_ms = nominal_fps.filter(|f| *f > 0.0).map_or(0.0, |f| 1000.0 / f);
        Self {
            ms_per_tick,
            origin: start,
            nominal_frame_ms,
            last_ms: None,
            repaired: 0,
        }
    }

    /// The time of the next frame, given its best-effort timestamp in ticks.
    pub fn next(&mut self, timestamp: Option<i64>) -> f64 {
        let ms = match timestamp {
            Some(ts) => {
                // A first frame earlier than the declared start moves the origin back,
                // so times start at 0 rather than being clamped together.
                let origin = match self.origin {
                    Some(o) if self.last_ms.is_some() || ts >= o => o,
                    _ => ts,
                };
                self.origin = Some(origin);
                let ms = (ts - origin) as f64 * self.ms_per_tick;
                match self.last_ms {
                    Some(last) if ms < last => {
                        self.repaired += 1;
                        last
                    }
                    _ => ms,
                }
            }
            None => {
                self.repaired += 1;
                self.last_ms
                    .map_or(0.0, |last| last + self.nominal_frame_ms)
            }
        };
        self.last_ms = Some(ms);
        ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_subtract_the_start_time_and_follow_variable_frame_rate() {
        // Matroska time base 1/1000, stream starting at 0.5 s, irregular gaps.
        let mut clock = PtsClock::new((1, 1000), Some(500), Some(30.0));
        let times: Vec<f64> = [500, 533, 567, 700, 734]
            .map(|t| clock.next(Some(t)))
            .to_vec();
        assert_eq!(times, vec![0.0, 33.0, 67.0, 200.0, 234.0]);
        assert_eq!(clock.repaired, 0);
    }

    #[test]
    fn non_integer_time_base_gives_exact_milliseconds() {
        let mut clock = PtsClock::new((1, 11988), Some(0), None);
        clock.next(Some(0));
        let t = clock.next(Some(400));
        assert!((t - 400.0 * 1000.0 / 11988.0).abs() < 1e-9);
    }

    #[test]
    fn backwards_timestamps_are_clamped_and_missing_ones_extrapolated() {
        let mut clock = PtsClock::new((1, 1000), None, Some(25.0));
        assert_eq!(clock.next(Some(1000)), 0.0); // origin from the first frame
        assert_eq!(clock.next(Some(1040)), 40.0);
        assert_eq!(clock.next(Some(1020)), 40.0); // went backwards: clamped
        assert_eq!(clock.next(None), 80.0); // missing: + 1/25 s
        assert_eq!(clock.next(Some(1120)), 120.0);
        assert_eq!(clock.repaired, 2);
    }

    #[test]
    fn first_frame_before_the_declared_start_becomes_the_origin() {
        let mut clock = PtsClock::new((1, 1000), Some(100), None);
        assert_eq!(clock.next(Some(60)), 0.0);
        assert_eq!(clock.next(Some(100)), 40.0);
    }

    #[test]
    fn a_stream_without_any_timestamp_counts_nominal_intervals() {
        let mut clock = PtsClock::new((1, 90000), None, Some(10.0));
        let times: Vec<f64> = (0..3).map(|_| clock.next(None)).collect();
        assert_eq!(times, vec![0.0, 100.0, 200.0]);
    }
}
