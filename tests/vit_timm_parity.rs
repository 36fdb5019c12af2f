//! Our ViT against timm's `VisionTransformer` (an independent implementation).
//!
//! `tests/fixtures/vit/{cls,mean}/` hold small random models written by our
//! code (`write_fixture_models`, run by `scripts/make_vit_fixture.py`) and the
//! input, pooled features and logits timm 0.9.16 computed with those weights
//! loaded `strict=True`. Our forward pass must reproduce them.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use mimic::model::{ExpressionModel, ModelConfig, read_safetensors};
use mimic::vit::{GlobalPool, VitConfig};

/// Largest absolute difference allowed between our and timm's outputs. Both
/// compute in f32; the outputs are O(1), so differences come only from
/// summation order (GEMM blocking, erf and softmax implementations).
const TOLERANCE: f32 = 1e-4;

fn fixture(pool: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/vit")
        .join(pool)
}

/// 2 blocks, 64 wide, 4 heads, 32 px / 8 px patches, 7 classes.
fn fixture_config(pool: GlobalPool) -> VitConfig {
    VitConfig::new()
        .with_image_size(32)
        .with_patch_size(8)
        .with_dim(64)
        .with_depth(2)
        .with_heads(4)
        .with_num_classes(7)
        .with_global_pool(pool)
}

#[test]
#[ignore = "writes the fixture models; run by scripts/make_vit_fixture.py"]
fn write_fixture_models() {
    let device = Device::flex();
    device.seed(2024);
    for (name, pool) in [("cls", GlobalPool::Cls), ("mean", GlobalPool::Mean)] {
        let vit = fixture_config(pool);
        let classes = (0..7).map(|i| format!("c{i}")).collect();
        let mut config = ModelConfig::new(format!("vit-fixture-{name}"), vit.clone(), classes);
        config.weights_dtype = "f32".into();
        let mut model = vit.init(&device);
        // MAE's head init (std 2e-5) would make the logits ~0 and the test
        // blind to head mistakes: give the head weights of ordinary size.
        let head = model.head.as_mut().unwrap();
        head.weight = burn::module::Param::from_tensor(Tensor::random(
            head.weight.dims(),
            burn::tensor::Distribution::Normal(0.0, 0.5),
            &device,
        ));
        ExpressionModel::from_parts(model, config, &device)
            .save(&fixture(name), "Random weights for the timm parity test.\n")
            .unwrap();
    }
}

fn check(pool: &str) {
    let dir = fixture(pool);
    let device = Device::flex();
    let model = ExpressionModel::load(&dir, &device).unwrap();
    let outputs = read_safetensors(&dir.join("timm_outputs.safetensors")).unwrap();
    let (shape, input) = &outputs.tensors["input"];
    let x = Tensor::<4>::from_data(
        TensorData::new(input.clone(), [shape[0], shape[1], shape[2], shape[3]]),
        &device,
    );
    let vit = model.vit();
    let features = vit.pool(vit.forward_features(x.clone()));
    let logits = vit.forward(x);
    for (name, ours) in [("features", features), ("logits", logits)] {
        let ours = ours.into_data().try_into_vec::<f32>().unwrap();
        let theirs = &outputs.tensors[name].1;
        assert_eq!(ours.len(), theirs.len(), "{pool} {name}");
        let max_diff = ours
            .iter()
            .zip(theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            max_diff < TOLERANCE,
            "{pool} {name}: max |ours - timm| = {max_diff}"
        );
        assert!(
            theirs.iter().any(|v| v.abs() > 0.1),
            "{pool} {name}: degenerate fixture"
        );
    }
}

#[test]
fn class_token_model_matches_timm_logits() {
    check("cls");
}

#[test]
fn mean_pool_model_matches_timm_logits() {
    check("mean");
}
