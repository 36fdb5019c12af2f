//! `mimic analyze --device gpu` against `--device cpu` on the same frames: the GPU path
//! (each frame uploaded once; pyramid, MTCNN crops and aligned face crops by the WGSL
//! shaders; MTCNN and the ViT on burn's wgpu backend) finds the same faces and gives the
//! same labels, with every class probability within 1e-3 of the CPU path's.
//!
//! Runs on lavapipe in CI (software Vulkan is slow: three stills of the shared clip keep
//! it to about a minute). Skips only when wgpu finds no adapter at all.

mod cli_common;
mod gpu_common;

use cli_common::{Rows, analyze_on, assert_success, root};

const STILLS: [&str; 3] = [
    "tests/fixtures/mtcnn/frame_000.png",
    "tests/fixtures/mtcnn/frame_120.png",
    "tests/fixtures/mtcnn/frame_240.png",
];

fn run(device: &str, out: &std::path::Path) -> Rows {
    let out_arg = out.to_str().expect("a UTF-8 temporary path");
    let mut args: Vec<&str> = STILLS.to_vec();
    args.extend(["-o", out_arg]);
    let result = analyze_on(device, &args);
    assert_success(&result);
    Rows::read(out)
}

fn value(rows: &Rows, row: usize, column: &str) -> f64 {
    rows.rows[row][rows.column(column)]
        .parse()
        .unwrap_or_else(|_| panic!("row {row}: {column} is not a number"))
}

#[test]
fn gpu_path_gives_the_cpu_paths_faces_labels_and_probabilities() {
    if gpu_common::gpu_device().is_none() {
        return;
    }
    assert!(root().join(STILLS[0]).is_file());
    let dir = tempfile::tempdir().unwrap();
    let cpu = run("cpu", &dir.path().join("cpu.csv"));
    let gpu = run("gpu", &dir.path().join("gpu.csv"));

    assert_eq!(cpu.rows.len(), gpu.rows.len(), "one row per face on both");
    // The default model's classes, the CSV's probability columns.
    let classes = mimic::model::read_config(&root().join("models/mimic-fast/config.json"))
        .expect("the default model")
        .classes;
    let (label, source, face) = (
        cpu.column("label"),
        cpu.column("source"),
        cpu.column("face"),
    );
    let mut faces = 0;
    let mut worst: f64 = 0.0;
    for r in 0..cpu.rows.len() {
        assert_eq!(cpu.rows[r][source], gpu.rows[r][source]);
        assert_eq!(
            cpu.rows[r][face], gpu.rows[r][face],
            "row {r}: faces in the same order"
        );
        if cpu.rows[r][label].is_empty() {
            assert!(
                gpu.rows[r][label].is_empty(),
                "row {r}: a face only on the GPU"
            );
            continue;
        }
        faces += 1;
        // Boxes: MTCNN on wgpu matches the CPU within 0.05 px (tests/gpu_models.rs); the
        // CSV holds two decimals.
        for k in ["x", "y", "w", "h", "lm0_x", "lm2_y", "lm4_x"] {
            let (c, g) = (value(&cpu, r, k), value(&gpu, r, k));
            assert!(
                (c - g).abs() <= 0.06,
                "row {r}: {k} {c} on the CPU, {g} on the GPU"
            );
        }
        assert_eq!(cpu.rows[r][label], gpu.rows[r][label], "row {r}: label");
        for class in &classes {
            let (c, g) = (value(&cpu, r, class), value(&gpu, r, class));
            worst = worst.max((c - g).abs());
            assert!(
                (c - g).abs() <= 1e-3,
                "row {r}: p({class}) {c} on the CPU, {g} on the GPU"
            );
        }
    }
    eprintln!("{faces} faces; largest probability difference {worst:.2e}");
    assert!(faces >= 3, "the stills hold faces; found {faces}");
}
