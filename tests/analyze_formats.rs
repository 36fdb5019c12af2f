//! The same analysis in each table format: CSV, JSON Lines and Parquet hold the same
//! rows (Parquet's read back with the `parquet` crate, typed).

mod cli_common;

use std::fs::File;

use arrow_array::{Array, StringArray, UInt64Array};
use cli_common::{Rows, analyze, assert_success, root};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

#[test]
fn parquet_holds_the_rows_of_the_csv_typed() {
    let dir = tempfile::tempdir().unwrap();
    let clip = root().join("tests/fixtures/clip.mp4");
    let model = root().join("tests/fixtures/vit/cls");
    let (csv, parquet) = (dir.path().join("a.csv"), dir.path().join("a.parquet"));
    for out in [&csv, &parquet] {
        assert_success(&analyze(&[
            clip.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]));
    }
    let rows = Rows::read(&csv);
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&parquet).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let (mut frames, mut labels, mut yaw_nulls) = (Vec::new(), Vec::new(), 0);
    for batch in reader {
        let batch = batch.unwrap();
        let schema = batch.schema();
        let col = |name: &str| batch.column(schema.index_of(name).unwrap()).clone();
        let f = col("frame");
        frames.extend(
            f.as_any()
                .downcast_ref::<UInt64Array>()
                .unwrap()
                .values()
                .iter()
                .copied(),
        );
        let l = col("label");
        let l = l.as_any().downcast_ref::<StringArray>().unwrap();
        labels.extend((0..l.len()).map(|i| {
            if l.is_null(i) {
                String::new()
            } else {
                l.value(i).to_string()
            }
        }));
        yaw_nulls += col("yaw").null_count();
    }
    assert_eq!(frames, rows.frames(), "the same rows in the same order");
    let label = rows.column("label");
    let csv_labels: Vec<String> = rows.rows.iter().map(|r| r[label].to_string()).collect();
    assert_eq!(labels, csv_labels);
    let yaw = rows.column("yaw");
    assert_eq!(
        yaw_nulls,
        rows.rows.iter().filter(|r| r[yaw].is_empty()).count()
    );
}
