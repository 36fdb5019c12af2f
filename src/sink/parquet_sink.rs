//! The table as Apache Parquet (`--format parquet`): the CSV's columns, typed
//! (integers, floats, strings; empty cells are nulls), written with the `parquet`
//! crate's Arrow writer. Rows are gathered into a row group of [`ROW_GROUP_ROWS`] rows
//! and written as each fills; [`Sink::finish`] (also after Ctrl-C or SIGTERM) writes
//! the last group and the footer. A file is readable only once it has its footer: a
//! process killed outright leaves no usable Parquet file, unlike CSV.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    Float32Builder, Float64Builder, StringBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::rows::{Row, TableLayout, frame_rows};
use super::{OrderGuard, Sink, SinkError};
use crate::record::FrameResult;

/// Rows per row group.
pub const ROW_GROUP_ROWS: usize = 4096;

pub struct ParquetSink {
    path: PathBuf,
    layout: TableLayout,
    schema: SchemaRef,
    columns: Vec<Column>,
    rows: usize,
    writer: Option<ArrowWriter<File>>,
    order: OrderGuard,
}

/// One column being filled.
enum Column {
    Text(StringBuilder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
}

impl Column {
    fn of(data_type: &DataType) -> Self {
        match data_type {
            DataType::Utf8 => Column::Text(StringBuilder::new()),
            DataType::UInt32 => Column::U32(UInt32Builder::new()),
            DataType::UInt64 => Column::U64(UInt64Builder::new()),
            DataType::Float32 => Column::F32(Float32Builder::new()),
            _ => Column::F64(Float64Builder::new()),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Text(b) => Arc::new(b.finish()),
            Column::U32(b) => Arc::new(b.finish()),
            Column::U64(b) => Arc::new(b.finish()),
            Column::F32(b) => Arc::new(b.finish()),
            Column::F64(b) => Arc::new(b.finish()),
        }
    }
}

/// A typed cell, appended to the column of its position.
enum Cell<'a> {
    Text(Option<&'a str>),
    U32(Option<u32>),
    U64(Option<u64>),
    F32(Option<f32>),
    F64(Option<f64>),
}

/// The Arrow type of each column of `layout`, by name.
fn schema_of(layout: &TableLayout) -> Schema {
    let fields: Vec<Field> = layout
        .header()
        .iter()
        .map(|name| {
            let (data_type, nullable) = match name.as_str() {
                "source" | "status" => (DataType::Utf8, false),
                "frame" => (DataType::UInt64, false),
                "pts_ms" => (DataType::Float64, false),
                "face_count" => (DataType::UInt32, false),
                "face" => (DataType::UInt32, true),
                "track_id" => (DataType::UInt64, true),
                "label" | "smooth_label" => (DataType::Utf8, true),
                "latency_ms" => (DataType::Float64, true),
                // Every other column (box, landmarks, pose, scores, probabilities) is
                // a float of a face: null without one.
                _ => (DataType::Float32, true),
            };
            Field::new(name, data_type, nullable)
        })
        .collect();
    Schema::new(fields)
}

/// The cells of one row, in the layout's column order.
fn cells<'a>(row: &'a Row<'a>, layout: &TableLayout) -> Vec<Cell<'a>> {
    let n = layout.class_names().len();
    let f = row.face.as_ref();
    let mut out = vec![
        Cell::Text(Some(row.source)),
        Cell::U64(Some(row.frame)),
        Cell::F64(Some(row.pts_ms)),
        Cell::Text(Some(row.status)),
        Cell::U32(f.map(|f| f.face as u32)),
        Cell::U32(Some(row.face_count as u32)),
        Cell::U64(f.and_then(|f| f.track_id)),
    ];
    for k in 0..4 {
        out.push(Cell::F32(f.map(|f| f.xywh[k])));
    }
    out.push(Cell::F32(f.map(|f| f.det_score)));
    for k in 0..10 {
        out.push(Cell::F32(f.map(|f| f.landmarks[k / 2][k % 2])));
    }
    let pose = f.and_then(|f| f.pose);
    out.push(Cell::F32(pose.map(|p| p.yaw)));
    out.push(Cell::F32(pose.map(|p| p.pitch)));
    out.push(Cell::F32(pose.map(|p| p.roll)));
    out.push(Cell::Text(f.map(|f| f.label)));
    out.push(Cell::F32(f.map(|f| f.confidence)));
    for k in 0..n {
        out.push(Cell::F32(f.map(|f| f.probs[k])));
    }
    if layout.smoothed() {
        let s = f.and_then(|f| f.smoothed);
        out.push(Cell::Text(s.map(|s| s.0)));
        out.push(Cell::F32(s.map(|s| s.1)));
        for k in 0..n {
            out.push(Cell::F32(s.map(|s| s.2[k])));
        }
    }
    out.push(Cell::F64(row.latency_ms));
    out
}

impl ParquetSink {
    /// A Parquet file at `path` (written as frames come; complete after `finish`).
    pub fn create(path: &Path, class_names: &[String], smoothed: bool) -> Result<Self, SinkError> {
        let layout = TableLayout::new(class_names, smoothed)?;
        if path == Path::new("-") {
            return Err(SinkError::Create {
                path: path.to_path_buf(),
                reason: "Parquet needs a file (its footer is written last), not standard output"
                    .into(),
            });
        }
        let file = File::create(path).map_err(|e| SinkError::Create {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let schema: SchemaRef = Arc::new(schema_of(&layout));
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))
            .map_err(|e| parquet_error(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            columns: schema
                .fields()
                .iter()
                .map(|f| Column::of(f.data_type()))
                .collect(),
            schema,
            layout,
            rows: 0,
            writer: Some(writer),
            order: OrderGuard::default(),
        })
    }

    fn append(&mut self, row: &Row) {
        for (column, cell) in self.columns.iter_mut().zip(cells(row, &self.layout)) {
            match (column, cell) {
                (Column::Text(b), Cell::Text(v)) => b.append_option(v),
                (Column::U32(b), Cell::U32(v)) => b.append_option(v),
                (Column::U64(b), Cell::U64(v)) => b.append_option(v),
                (Column::F32(b), Cell::F32(v)) => b.append_option(v),
                (Column::F64(b), Cell::F64(v)) => b.append_option(v),
                _ => unreachable!("schema_of and cells list the same columns"),
            }
        }
        self.rows += 1;
    }

    /// Writes the rows gathered so far as one row group.
    fn write_group(&mut self) -> Result<(), SinkError> {
        if self.rows == 0 {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(Column::finish).collect();
        let batch =
            RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| SinkError::Write {
                target: self.path.display().to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;
        self.rows = 0;
        let path = self.path.clone();
        let writer = self.writer.as_mut().ok_or(SinkError::Closed)?;
        writer.write(&batch).map_err(|e| parquet_error(&path, e))?;
        writer.flush().map_err(|e| parquet_error(&path, e))
    }
}

fn parquet_error(path: &Path, e: parquet::errors::ParquetError) -> SinkError {
    SinkError::Write {
        target: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl Sink for ParquetSink {
    fn write(&mut self, result: &FrameResult) -> Result<(), SinkError> {
        if self.writer.is_none() {
            return Err(SinkError::Closed);
        }
        self.order.check(result)?;
        let layout = self.layout.clone();
        for row in frame_rows(result, &layout)? {
            self.append(&row);
        }
        if self.rows >= ROW_GROUP_ROWS {
            self.write_group()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.write_group()?;
        if let Some(writer) = self.writer.take() {
            writer.close().map_err(|e| parquet_error(&self.path, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::FrameStatus;
    use crate::sink::test_support::*;
    use arrow_array::{Array, Float32Array, StringArray, UInt64Array};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn rows_read_back_typed_with_nulls_for_missing_faces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.parquet");
        let mut s = ParquetSink::create(&path, &classes(), true).unwrap();
        s.write(&result(
            0,
            FrameStatus::Analyzed,
            vec![face(0, 5.0, [0.1, 0.7, 0.2], Some([0.2, 0.6, 0.2]))],
        ))
        .unwrap();
        s.write(&result(1, FrameStatus::Analyzed, vec![])).unwrap();
        s.write(&result(2, FrameStatus::Skipped, vec![])).unwrap();
        s.finish().unwrap();

        let file = File::open(&path).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), 3);
        let header = TableLayout::new(&classes(), true).unwrap().header();
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, header, "the CSV's columns, in order");
        let col = |name: &str| {
            batch
                .column(header.iter().position(|h| h == name).unwrap())
                .clone()
        };
        let frames = col("frame");
        let frames = frames.as_any().downcast_ref::<UInt64Array>().unwrap();
        assert_eq!(frames.values(), &[0, 1, 2]);
        let happiness = col("happiness");
        let happiness = happiness.as_any().downcast_ref::<Float32Array>().unwrap();
        assert_eq!(happiness.value(0), 0.7);
        assert!(happiness.is_null(1) && happiness.is_null(2));
        let status = col("status");
        let status = status.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(status.value(2), "skipped");
        let label = col("smooth_label");
        assert_eq!(
            label
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .value(0),
            "happiness"
        );
    }

    #[test]
    fn standard_output_is_refused() {
        assert!(matches!(
            ParquetSink::create(Path::new("-"), &classes(), false),
            Err(SinkError::Create { .. })
        ));
    }
}
