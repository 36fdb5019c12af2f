//! The CSV table (the default output): header, then the rows of each frame, flushed
//! after each frame.

use std::io::Write;
use std::path::Path;

use super::rows::{
    ANGLE_DECIMALS, FaceRow, LATENCY_DECIMALS, PIXEL_DECIMALS, PROB_DECIMALS, PTS_DECIMALS, Row,
    SCORE_DECIMALS, TableLayout, frame_rows,
};
use super::{OrderGuard, Sink, SinkError, open_output};
use crate::record::FrameResult;

pub struct CsvSink {
    out: Box<dyn Write + Send>,
    target: String,
    layout: TableLayout,
    order: OrderGuard,
    closed: bool,
    /// The rows of one frame, formatted in memory and then written with one call, so
    /// that a reader (or a kill) never sees part of a row.
    frame_bytes: Vec<u8>,
}

impl CsvSink {
    /// A CSV file at `path` (`-`: standard output), header written at once.
    /// `class_names`: the model's classes; `smoothed`: add the `smooth_*` columns.
    pub fn create(path: &Path, class_names: &[String], smoothed: bool) -> Result<Self, SinkError> {
        let layout = TableLayout::new(class_names, smoothed)?;
        let (out, target) = open_output(path)?;
        Self::from_writer(out, target, layout)
    }

    /// A CSV table written to any writer (`target` names it in errors).
    pub fn from_writer(
        out: Box<dyn Write + Send>,
        target: String,
        layout: TableLayout,
    ) -> Result<Self, SinkError> {
        let mut sink = Self {
            out,
            target,
            layout,
            order: OrderGuard::default(),
            closed: false,
            frame_bytes: Vec::new(),
        };
        let header = sink.layout.header();
        sink.emit(&[header])?;
        Ok(sink)
    }

    /// Formats `records` as CSV lines and writes them out in one call, then flushes.
    fn emit(&mut self, records: &[Vec<String>]) -> Result<(), SinkError> {
        self.frame_bytes.clear();
        {
            let mut csv = ::csv::Writer::from_writer(&mut self.frame_bytes);
            for record in records {
                // Writing into memory cannot fail but for a bug in the csv crate.
                csv.write_record(record).map_err(|e| SinkError::Write {
                    target: self.target.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
            }
            csv.flush()
                .map_err(|e| SinkError::from_io(&self.target, e))?;
        }
        let written = self
            .out
            .write_all(&self.frame_bytes)
            .and_then(|()| self.out.flush());
        written.map_err(|e| {
            let err = SinkError::from_io(&self.target, e);
            if matches!(err, SinkError::Closed) {
                self.closed = true;
            }
            err
        })
    }
}

/// The cells of one row, in the layout's column order.
fn cells(row: &Row, layout: &TableLayout) -> Vec<String> {
    let mut out = Vec::with_capacity(layout.header().len());
    let fmt = |v: f64, d: usize| format!("{v:.d$}");
    out.push(row.source.to_string());
    out.push(row.frame.to_string());
    out.push(fmt(row.pts_ms, PTS_DECIMALS));
    out.push(row.status.to_string());
    let empty_face = 2 + 4 + 1 + 10 + 3 + 2 + layout.class_names().len();
    let empty_smooth = if layout.smoothed() {
        2 + layout.class_names().len()
    } else {
        0
    };
    match &row.face {
        None => {
            out.push(String::new()); // face
            out.push(row.face_count.to_string());
            out.extend(std::iter::repeat_n(
                String::new(),
                empty_face - 1 + empty_smooth,
            ));
        }
        Some(f) => {
            let FaceRow {
                face,
                track_id,
                xywh,
                det_score,
                landmarks,
                pose,
                label,
                confidence,
                probs,
                smoothed,
            } = f;
            out.push(face.to_string());
            out.push(row.face_count.to_string());
            out.push(track_id.map(|t| t.to_string()).unwrap_or_default());
            out.extend(xywh.iter().map(|v| fmt(*v as f64, PIXEL_DECIMALS)));
            out.push(fmt(*det_score as f64, SCORE_DECIMALS));
            out.extend(
                landmarks
                    .iter()
                    .flatten()
                    .map(|v| fmt(*v as f64, PIXEL_DECIMALS)),
            );
            match pose {
                Some(p) => {
                    out.extend([p.yaw, p.pitch, p.roll].map(|a| fmt(f64::from(a), ANGLE_DECIMALS)))
                }
                None => out.extend(std::iter::repeat_n(String::new(), 3)),
            }
            out.push(label.to_string());
            out.push(fmt(*confidence as f64, PROB_DECIMALS));
            out.extend(probs.iter().map(|p| fmt(*p as f64, PROB_DECIMALS)));
            if layout.smoothed() {
                match smoothed {
                    Some((l, c, ps)) => {
                        out.push(l.to_string());
                        out.push(fmt(*c as f64, PROB_DECIMALS));
                        out.extend(ps.iter().map(|p| fmt(*p as f64, PROB_DECIMALS)));
                    }
                    None => out.extend(std::iter::repeat_n(String::new(), empty_smooth)),
                }
            }
        }
    }
    out.push(
        row.latency_ms
            .map(|l| fmt(l, LATENCY_DECIMALS))
            .unwrap_or_default(),
    );
    out
}

impl Sink for CsvSink {
    fn write(&mut self, result: &FrameResult) -> Result<(), SinkError> {
        if self.closed {
            return Err(SinkError::Closed);
        }
        self.order.check(result)?;
        let rows = frame_rows(result, &self.layout)?;
        let records: Vec<Vec<String>> = rows.iter().map(|row| cells(row, &self.layout)).collect();
        drop(rows);
        self.emit(&records)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        if self.closed {
            return Ok(());
        }
        self.out
            .flush()
            .map_err(|e| SinkError::from_io(&self.target, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::FrameStatus;
    use crate::sink::test_support::*;
    use std::sync::{Arc, Mutex};

    /// A writer whose bytes the test can read while the sink still holds it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    struct ClosedPipe;
    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    fn sink(smoothed: bool) -> (CsvSink, Shared) {
        let out = Shared::default();
        let layout = TableLayout::new(&classes(), smoothed).unwrap();
        (
            CsvSink::from_writer(Box::new(out.clone()), "test".into(), layout).unwrap(),
            out,
        )
    }

    #[test]
    fn every_frame_gets_rows_in_order_with_fixed_precision() {
        let (mut s, out) = sink(false);
        s.write(&result(
            0,
            FrameStatus::Analyzed,
            vec![face(0, 5.0, [0.1, 0.7, 0.2], None)],
        ))
        .unwrap();
        s.write(&result(1, FrameStatus::Analyzed, vec![])).unwrap();
        s.write(&result(2, FrameStatus::Skipped, vec![])).unwrap();
        s.write(&result(
            3,
            FrameStatus::Analyzed,
            vec![
                face(0, 5.0, [0.1, 0.7, 0.2], None),
                face(1, 90.0, [0.5, 0.25, 0.25], None),
            ],
        ))
        .unwrap();
        s.finish().unwrap();
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 1 + 1 + 1 + 2);
        assert!(lines[0].starts_with(
            "source,frame,pts_ms,status,face,face_count,track_id,x,y,w,h,det_score,lm0_x,lm0_y,"
        ));
        assert!(lines[0].ends_with(",label,confidence,neutral,happiness,surprise,latency_ms"));
        assert_eq!(
            lines[1],
            "clip.mp4,0,0.000,analyzed,0,1,7,5.00,10.25,40.50,49.75,0.9988,\
             15.00,20.00,16.00,20.50,17.00,21.00,18.00,21.50,19.00,22.00,,,,\
             happiness,0.70000,0.10000,0.70000,0.20000,12.50"
        );
        let ncols = lines[0].split(',').count();
        assert!(lines.iter().all(|l| l.split(',').count() == ncols));
        assert_eq!(
            lines[2],
            format!(
                "clip.mp4,1,33.367,analyzed,,0{}12.50",
                ",".repeat(ncols - 6)
            )
        );
        assert!(lines[3].starts_with("clip.mp4,2,66.733,skipped,,0,,"));
        assert!(
            lines[3].ends_with(",,"),
            "no latency for a skipped frame: {}",
            lines[3]
        );
        assert!(lines[4].starts_with("clip.mp4,3,100.100,analyzed,0,2,7,"));
        assert!(lines[5].starts_with("clip.mp4,3,100.100,analyzed,1,2,8,90.00,"));
    }

    #[test]
    fn rows_are_flushed_after_each_frame() {
        let (mut s, out) = sink(false);
        assert_eq!(out.text().lines().count(), 1, "header flushed at creation");
        s.write(&result(0, FrameStatus::Analyzed, vec![])).unwrap();
        assert_eq!(out.text().lines().count(), 2);
        s.write(&result(
            1,
            FrameStatus::Analyzed,
            vec![face(0, 1.0, [0.2, 0.2, 0.6], None)],
        ))
        .unwrap();
        let text = out.text();
        assert_eq!(text.lines().count(), 3);
        assert!(text.ends_with('\n'), "only complete rows");
    }

    #[test]
    fn smoothed_columns_come_before_latency() {
        let (mut s, out) = sink(true);
        s.write(&result(
            0,
            FrameStatus::Analyzed,
            vec![face(0, 5.0, [0.1, 0.7, 0.2], Some([0.5, 0.3, 0.2]))],
        ))
        .unwrap();
        let text = out.text();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let row: Vec<&str> = text.lines().nth(1).unwrap().split(',').collect();
        let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!(col("smooth_label"), "neutral");
        assert_eq!(col("smooth_confidence"), "0.50000");
        assert_eq!(col("smooth_surprise"), "0.20000");
        assert_eq!(col("label"), "happiness");
        assert_eq!(*header.last().unwrap(), "latency_ms");
    }

    #[test]
    fn frames_out_of_order_are_refused() {
        let (mut s, _) = sink(false);
        s.write(&result(0, FrameStatus::Analyzed, vec![])).unwrap();
        let err = s
            .write(&result(2, FrameStatus::Analyzed, vec![]))
            .unwrap_err();
        assert!(err.to_string().contains("frame 1 was expected"), "{err}");
    }

    #[test]
    fn a_closed_reader_is_reported_as_closed() {
        let layout = TableLayout::new(&classes(), false).unwrap();
        let err = CsvSink::from_writer(Box::new(ClosedPipe), "standard output".into(), layout)
            .err()
            .unwrap();
        assert!(matches!(err, SinkError::Closed), "{err:?}");
    }

    #[test]
    fn unwritable_paths_fail_at_creation_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no_such_folder/out.csv");
        let err = CsvSink::create(&missing, &classes(), false).err().unwrap();
        assert!(err.to_string().contains("no_such_folder/out.csv"), "{err}");
        assert!(err.to_string().contains("does not exist"), "{err}");
        let err = CsvSink::create(dir.path(), &classes(), false)
            .err()
            .unwrap();
        assert!(err.to_string().contains("it is a folder"), "{err}");
    }
}
