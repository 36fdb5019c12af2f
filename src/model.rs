//! A packaged expression model in `models/<name>/`: weights, class names, pre-processing.
//!
//! A package is a folder of three files:
//! - `config.json` — [`ModelConfig`]: the [`VitConfig`], class names, input size,
//!   colour mode (`grey: true` for models trained on grey faces such as FER+:
//!   crops are turned to luma replicated over the three channels), the
//!   normalisation mean/std, the 5-point face template that alignment maps
//!   landmarks onto, and provenance;
//! - `model.safetensors` — the [`Vit`] weights under timm's names in torch
//!   layout (f16 or f32; always computed in f32), loadable by timm's
//!   `VisionTransformer.load_state_dict`;
//! - `MODEL_CARD.md` — what the model is, how it was trained and measured.
//!
//! [`ExpressionModel`] is what the analyzer holds: it loads a package and turns
//! face crops into class probabilities and pooled features.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::vit::{StateDict, Vit, VitConfig, VitError};

/// File names inside a package folder.
pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const CARD_FILE: &str = "MODEL_CARD.md";

/// Version of the `config.json` layout written by this code.
pub const FORMAT_VERSION: u32 = 1;

/// ImageNet channel means (the MAE/timm normalisation, also used for the grey
/// FER+ faces replicated over RGB).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Where the five landmarks (left eye, right eye, nose, left mouth corner,
/// right mouth corner, in image orientation) of a FER+ face fall, in `[0, 1]`
/// crop coordinates (x right, y down): the per-landmark median of
/// facenet-pytorch's MTCNN on 538 of 600 FER+ training faces
/// (`scripts/ferplus_face_template.py`; spread ≈ 0.07–0.11 per coordinate),
/// so that aligned video faces look like the training faces.
pub const FERPLUS_FACE_TEMPLATE: [[f32; 2]; 5] = [
    [0.3175, 0.3947],
    [0.6937, 0.3889],
    [0.5083, 0.6045],
    [0.3512, 0.7896],
    [0.6709, 0.7860],
];

/// Everything about a packaged model except its weights (`config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Layout version of this file ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Short name, e.g. the folder name under `models/`.
    pub name: String,
    /// Shape of the network.
    pub vit: VitConfig,
    /// Class names in output order (as written in the CSV columns).
    pub classes: Vec<String>,
    /// Side of the square input crop in pixels (= `vit.image_size`).
    pub input_size: u32,
    /// Trained on grey images: crops are converted to luma (ITU-R BT.601)
    /// replicated over the 3 input channels.
    pub grey: bool,
    /// Per-channel mean subtracted after scaling pixels to `[0, 1]`.
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided after subtracting the mean.
    pub std: [f32; 3],
    /// 5-point face template (eyes, nose, mouth corners) in `[0, 1]` crop
    /// coordinates for similarity alignment.
    pub face_template: [[f32; 2]; 5],
    /// Storage type of `model.safetensors`: `"f16"` or `"f32"`.
    pub weights_dtype: String,
    /// Test-time augmentation: each face is also classified mirrored
    /// left-right, and the two probability vectors (and features) are
    /// averaged. Twice the network's cost per face.
    #[serde(default)]
    pub flip_average: bool,
    /// Added to the logits before the softmax, one per class: `−τ · log π` for the
    /// training set's class prior π when the package corrects for it (post-hoc logit
    /// adjustment, which trades accuracy on the common classes for recall on the rare
    /// ones); none otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_offsets: Option<Vec<f32>>,
    /// How the model came to be (free-form: recipe, data, metrics).
    #[serde(default)]
    pub provenance: HashMap<String, String>,
}

impl ModelConfig {
    /// A config with the FER+ conventions (grey input, ImageNet normalisation,
    /// FER+ face template) for a network of shape `vit`.
    pub fn new(name: impl Into<String>, vit: VitConfig, classes: Vec<String>) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            name: name.into(),
            input_size: vit.image_size as u32,
            vit,
            classes,
            grey: true,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            face_template: FERPLUS_FACE_TEMPLATE,
            weights_dtype: "f16".into(),
            flip_average: false,
            logit_offsets: None,
            provenance: HashMap::new(),
        }
    }

    /// Checks that the parts agree with each other.
    fn validate(&self) -> Result<(), String> {
        self.vit.validate().map_err(|e| e.to_string())?;
        if self.format_version > FORMAT_VERSION {
            return Err(format!(
                "format_version {} is newer than this program reads ({FORMAT_VERSION})",
                self.format_version
            ));
        }
        if self.input_size as usize != self.vit.image_size {
            return Err(format!(
                "input_size {} differs from vit.image_size {}",
                self.input_size, self.vit.image_size
            ));
        }
        if self.classes.len() != self.vit.num_classes || self.classes.is_empty() {
            return Err(format!(
                "{} class names for a head of {} classes",
                self.classes.len(),
                self.vit.num_classes
            ));
        }
        if self.std.iter().any(|s| !(*s > 0.0)) {
            return Err(format!("std {:?} must be positive", self.std));
        }
        if let Some(offsets) = &self.logit_offsets
            && (offsets.len() != self.classes.len() || offsets.iter().any(|v| !v.is_finite()))
        {
            return Err(format!(
                "logit_offsets must be {} finite numbers, one per class",
                self.classes.len()
            ));
        }
        if !["f16", "f32"].contains(&self.weights_dtype.as_str()) {
            return Err(format!(
                "weights_dtype {:?} is not \"f16\" or \"f32\"",
                self.weights_dtype
            ));
        }
        Ok(())
    }
}

/// Why a model package could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model file {path} is missing")]
    Missing { path: PathBuf },
    #[error("cannot read or write model file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model config {path} is invalid: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("model weights {path} are invalid: {reason}")]
    Weights { path: PathBuf, reason: String },
    #[error("model weights {path} do not fit the config: {source}")]
    Shape { path: PathBuf, source: VitError },
}

/// The analyzer's expression classifier: a [`Vit`] with its package's
/// pre-processing.
#[derive(Debug)]
pub struct ExpressionModel {
    vit: Vit,
    config: ModelConfig,
    device: Device,
    /// The largest buffer the device allows (`None`: no limit), which sets the faces of
    /// one forward pass.
    max_buffer_bytes: Option<u64>,
}

impl ExpressionModel {
    /// Loads the package in `dir` onto `device`. A missing or corrupt file
    /// gives an error naming it.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, ModelError> {
        let config = read_config(&dir.join(CONFIG_FILE))?;
        let weights = dir.join(WEIGHTS_FILE);
        let sd = read_safetensors(&weights)?;
        let vit = Vit::from_state_dict(&config.vit, &sd, &[], device).map_err(|source| {
            ModelError::Shape {
                path: weights.clone(),
                source,
            }
        })?;
        Ok(Self::from_parts(vit, config, device))
    }

    /// A model from a network already in memory (training, tests).
    pub fn from_parts(vit: Vit, config: ModelConfig, device: &Device) -> Self {
        Self {
            vit,
            config,
            device: device.clone(),
            max_buffer_bytes: crate::gpu::max_buffer_bytes(device),
        }
    }

    /// The same model with forward passes sized for a buffer limit of `bytes` rather than
    /// the device's own (`None`: no limit).
    pub fn with_max_buffer_bytes(mut self, bytes: Option<u64>) -> Self {
        self.max_buffer_bytes = bytes;
        self
    }

    /// Faces of one forward pass: as many as keep the widest activation (of the faces and
    /// their mirror images, with flip averaging) within one buffer; at least 1.
    fn faces_per_pass(&self) -> usize {
        let Some(limit) = self.max_buffer_bytes else {
            return usize::MAX;
        };
        let copies = if self.config.flip_average { 2 } else { 1 };
        let per_face = copies * self.config.vit.widest_activation_bytes();
        usize::try_from((limit / per_face.max(1)).max(1)).unwrap_or(usize::MAX)
    }

    /// Writes this model as a package in `dir` (created if needed), with
    /// `card` as `MODEL_CARD.md`; weights stored as `config.weights_dtype`.
    pub fn save(&self, dir: &Path, card: &str) -> Result<(), ModelError> {
        write_package(dir, &self.config, &self.vit, card)
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn vit(&self) -> &Vit {
        &self.vit
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Class names in the order of [`ExpressionModel::predict_probs`]' values.
    pub fn classes(&self) -> &[String] {
        &self.config.classes
    }

    /// Side of the square crop the model takes, in pixels.
    pub fn input_size(&self) -> u32 {
        self.config.input_size
    }

    /// Landmark template (eyes, nose, mouth corners) in `[0, 1]` crop coordinates.
    pub fn face_template(&self) -> [[f32; 2]; 5] {
        self.config.face_template
    }

    /// Face crops → normalised network input `[batch, 3, size, size]`.
    ///
    /// Crops are expected at [`ExpressionModel::input_size`]; any other size is
    /// resized (bilinear) first. Grey models take BT.601 luma on all channels.
    pub fn preprocess(&self, crops: &[image::RgbImage]) -> Tensor<4> {
        let size = self.config.input_size;
        let mut data = Vec::with_capacity(crops.len() * 3 * (size * size) as usize);
        for crop in crops {
            let resized;
            let crop = if crop.dimensions() == (size, size) {
                crop
            } else {
                resized = image::imageops::resize(
                    crop,
                    size,
                    size,
                    image::imageops::FilterType::Triangle,
                );
                &resized
            };
            data.extend(normalize_crop(
                crop,
                self.config.grey,
                self.config.mean,
                self.config.std,
            ));
        }
        let s = size as usize;
        Tensor::from_data(TensorData::new(data, [crops.len(), 3, s, s]), &self.device)
    }

    /// Class probabilities (softmax), one `Vec` of `classes().len()` per crop.
    pub fn predict_probs(&self, crops: &[image::RgbImage]) -> Vec<Vec<f32>> {
        self.predict(crops).into_iter().map(|p| p.probs).collect()
    }

    /// The same model with [`ModelConfig::flip_average`] set to `on` (what
    /// `mimic-train eval --flip-average` measures before a package says so).
    pub fn with_flip_average(mut self, on: bool) -> Self {
        self.config.flip_average = on;
        self
    }

    /// The same model with [`ModelConfig::logit_offsets`] set to `offsets` (what
    /// `mimic-train eval --logit-adjust` measures before a package says so).
    pub fn with_logit_offsets(mut self, offsets: Option<Vec<f32>>) -> Self {
        self.config.logit_offsets = offsets;
        self
    }

    /// `pooled: [faces, dim]` → probabilities `[faces, classes]`: the head, the
    /// package's logit offsets if any, the softmax.
    fn probabilities(&self, pooled: Tensor<2>) -> Tensor<2> {
        let logits = self.vit.forward_head(pooled);
        let logits = match &self.config.logit_offsets {
            Some(offsets) => {
                let n = offsets.len();
                logits
                    + Tensor::<2>::from_data(TensorData::new(offsets.clone(), [1, n]), &self.device)
            }
            None => logits,
        };
        softmax(logits, 1)
    }

    /// Pooled features `[dim]` per crop (the head's input), e.g. for tracking.
    pub fn features(&self, crops: &[image::RgbImage]) -> Vec<Vec<f32>> {
        self.predict(crops).into_iter().map(|p| p.feature).collect()
    }

    /// Probabilities and pooled features of each crop from one forward pass
    /// (what the analyzer needs: the label, and an appearance cue for tracking).
    pub fn predict(&self, crops: &[image::RgbImage]) -> Vec<Prediction> {
        if crops.is_empty() {
            return Vec::new();
        }
        self.predict_input(self.preprocess(crops))
    }

    /// [`predict`](Self::predict) of an input already normalised as
    /// [`preprocess`](Self::preprocess) makes it, `[faces, 3, size, size]` on the model's
    /// device (e.g. written there by [`crate::gpu::face_crops`]), in as many forward passes
    /// as the device's largest buffer needs.
    pub fn predict_input(&self, input: Tensor<4>) -> Vec<Prediction> {
        let faces = input.dims()[0];
        let per_pass = self.faces_per_pass();
        if faces > per_pass {
            return (0..faces)
                .step_by(per_pass)
                .flat_map(|start| {
                    let part = input.clone().slice([start..(start + per_pass).min(faces)]);
                    self.predict_one_pass(part)
                })
                .collect();
        }
        self.predict_one_pass(input)
    }

    /// [`predict_input`](Self::predict_input) in one forward pass.
    fn predict_one_pass(&self, input: Tensor<4>) -> Vec<Prediction> {
        if input.dims()[0] == 0 {
            return Vec::new();
        }
        let (probs, pooled) = if self.config.flip_average {
            let faces = input.dims()[0];
            // One pass over the faces and their mirror images together.
            let both = Tensor::cat(vec![input.clone(), input.flip([3])], 0);
            let pooled = self.vit.pool(self.vit.forward_features(both));
            let probs = self.probabilities(pooled.clone());
            let half = |t: Tensor<2>| {
                let [_, cols] = t.dims();
                (t.clone().slice([0..faces, 0..cols]) + t.slice([faces..2 * faces, 0..cols]))
                    .mul_scalar(0.5)
            };
            (half(probs), half(pooled))
        } else {
            let pooled = self.vit.pool(self.vit.forward_features(input));
            (self.probabilities(pooled.clone()), pooled)
        };
        rows(probs)
            .into_iter()
            .zip(rows(pooled))
            .map(|(probs, feature)| Prediction { probs, feature })
            .collect()
    }

    /// The crop template in pixels of the model's input crop (pixel centres at
    /// integer coordinates, the convention of [`crate::align`]).
    pub fn face_template_px(&self) -> crate::geometry::Landmarks {
        let size = self.config.input_size as f32;
        self.config
            .face_template
            .map(|[x, y]| [x * size - 0.5, y * size - 0.5])
    }
}

/// What the model says about one face crop.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Class probabilities in the order of [`ExpressionModel::classes`].
    pub probs: Vec<f32>,
    /// The pooled feature `[dim]` (the head's input).
    pub feature: Vec<f32>,
}

/// `t: [rows, cols]` → one `Vec` per row.
fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, cols] = t.dims();
    let values = t
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data after convert");
    values.chunks(cols).map(<[f32]>::to_vec).collect()
}

/// One crop → channel-major normalised values `[3 · h · w]`:
/// `(pixel / 255 - mean[c]) / std[c]`, with luma on every channel when `grey`.
pub fn normalize_crop(
    crop: &image::RgbImage,
    grey: bool,
    mean: [f32; 3],
    std: [f32; 3],
) -> Vec<f32> {
    let (w, h) = crop.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0.0; 3 * plane];
    for (i, px) in crop.pixels().enumerate() {
        let [r, g, b] = px.0.map(|v| v as f32 / 255.0);
        let rgb = if grey {
            let y = 0.299 * r + 0.587 * g + 0.114 * b;
            [y, y, y]
        } else {
            [r, g, b]
        };
        for c in 0..3 {
            out[c * plane + i] = (rgb[c] - mean[c]) / std[c];
        }
    }
    out
}

/// Reads and validates a package's `config.json`.
pub fn read_config(path: &Path) -> Result<ModelConfig, ModelError> {
    let text = read_file(path)?;
    let config: ModelConfig = serde_json::from_slice(&text).map_err(|e| ModelError::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    config.validate().map_err(|reason| ModelError::Config {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok(config)
}

fn read_file(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ModelError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            ModelError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Reads every tensor of a safetensors file as f32 (f16, bf16 and f32 stored).
pub fn read_safetensors(path: &Path) -> Result<StateDict, ModelError> {
    let bytes = read_file(path)?;
    let bad = |reason: String| ModelError::Weights {
        path: path.to_path_buf(),
        reason,
    };
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let mut sd = StateDict::new();
    for (name, view) in st.iter() {
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            safetensors::Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            safetensors::Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            safetensors::Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(bad(format!(
                    "tensor `{name}` has unsupported dtype {other:?}"
                )));
            }
        };
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(bad(format!("tensor `{name}` holds a non-finite value {v}")));
        }
        sd.tensors
            .insert(name.to_string(), (view.shape().to_vec(), values));
    }
    Ok(sd)
}

/// Writes `sd` as a safetensors file, values stored as f16 when `f16`
/// (the file is written beside and renamed, so a crash leaves no half file).
pub fn write_safetensors(
    path: &Path,
    sd: &StateDict,
    f16: bool,
    metadata: Option<HashMap<String, String>>,
) -> Result<(), ModelError> {
    let encoded: Vec<(&String, Vec<usize>, Vec<u8>)> = sd
        .tensors
        .iter()
        .map(|(name, (shape, values))| {
            let bytes = if f16 {
                values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect()
            } else {
                values.iter().flat_map(|v| v.to_le_bytes()).collect()
            };
            (name, shape.clone(), bytes)
        })
        .collect();
    let dtype = if f16 {
        safetensors::Dtype::F16
    } else {
        safetensors::Dtype::F32
    };
    let views = encoded
        .iter()
        .map(|(name, shape, bytes)| {
            let view = safetensors::tensor::TensorView::new(dtype, shape.clone(), bytes)
                .expect("byte length matches shape by construction");
            (name.as_str(), view)
        })
        .collect::<Vec<_>>();
    let bytes = safetensors::serialize(views, metadata).map_err(|e| ModelError::Weights {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomically(path, &bytes)
}

/// Writes `bytes` to `path` through a temporary file in the same folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Writes a whole package: `config.json`, `model.safetensors`, `MODEL_CARD.md`.
pub fn write_package(
    dir: &Path,
    config: &ModelConfig,
    vit: &Vit,
    card: &str,
) -> Result<(), ModelError> {
    let config_path = dir.join(CONFIG_FILE);
    config.validate().map_err(|reason| ModelError::Config {
        path: config_path.clone(),
        reason,
    })?;
    if vit.config().num_classes != config.classes.len() {
        return Err(ModelError::Config {
            path: config_path,
            reason: format!(
                "network has {} outputs for {} classes",
                vit.config().num_classes,
                config.classes.len()
            ),
        });
    }
    std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let json = serde_json::to_string_pretty(config).expect("config serialises");
    write_atomically(&config_path, json.as_bytes())?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    write_safetensors(
        &dir.join(WEIGHTS_FILE),
        &vit.state_dict(),
        config.weights_dtype == "f16",
        Some(metadata),
    )?;
    write_atomically(&dir.join(CARD_FILE), card.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vit::GlobalPool;

    fn tiny_config() -> ModelConfig {
        let vit = VitConfig::new()
            .with_image_size(16)
            .with_patch_size(4)
            .with_dim(16)
            .with_depth(2)
            .with_heads(2)
            .with_num_classes(3)
            .with_global_pool(GlobalPool::Mean);
        ModelConfig::new("test", vit, vec!["a".into(), "b".into(), "c".into()])
    }

    fn crops() -> Vec<image::RgbImage> {
        (0..4u8)
            .map(|k| {
                image::RgbImage::from_fn(16, 16, |x, y| {
                    image::Rgb([(x * 13) as u8 ^ k, (y * 7) as u8, k * 40])
                })
            })
            .collect()
    }

    #[test]
    fn grey_normalisation_uses_bt601_luma_on_every_channel() {
        let crop = image::RgbImage::from_pixel(1, 1, image::Rgb([255, 0, 0]));
        let v = normalize_crop(&crop, true, [0.5; 3], [0.25; 3]);
        let expect = (0.299 - 0.5) / 0.25;
        assert!(v.iter().all(|x| (x - expect).abs() < 1e-6), "{v:?}");
        let v = normalize_crop(&crop, false, [0.0; 3], [1.0; 3]);
        assert_eq!(v, vec![1.0, 0.0, 0.0]);
    }

    #[test]
    fn package_round_trip_gives_the_same_probabilities() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let mut config = tiny_config();
        config.weights_dtype = "f32".into();
        let model = ExpressionModel::from_parts(config.vit.init(&device), config, &device);
        model.save(dir.path(), "# test\n").unwrap();
        let loaded = ExpressionModel::load(dir.path(), &device).unwrap();
        assert_eq!(loaded.classes(), model.classes());
        let (a, b) = (
            model.predict_probs(&crops()),
            loaded.predict_probs(&crops()),
        );
        for (ra, rb) in a.iter().zip(&b) {
            assert!((ra.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            for (x, y) in ra.iter().zip(rb) {
                assert!((x - y).abs() < 1e-6, "{ra:?} vs {rb:?}");
            }
        }
        assert_eq!(loaded.features(&crops()[..2]).len(), 2);
        assert_eq!(loaded.features(&crops()[..1])[0].len(), 16);
    }

    #[test]
    fn flip_average_is_the_mean_over_a_face_and_its_mirror_image() {
        let device = Device::flex();
        let config = tiny_config();
        let plain = ExpressionModel::from_parts(config.vit.init(&device), config, &device);
        let faces = crops();
        let mirrored: Vec<image::RgbImage> =
            faces.iter().map(image::imageops::flip_horizontal).collect();
        let (a, b) = (plain.predict(&faces), plain.predict(&mirrored));
        let tta = plain.with_flip_average(true);
        let both = tta.predict(&faces);
        for ((p, q), t) in a.iter().zip(&b).zip(&both) {
            for k in 0..3 {
                let want = 0.5 * (p.probs[k] + q.probs[k]);
                assert!((t.probs[k] - want).abs() < 1e-5, "{t:?}");
            }
            for k in 0..p.feature.len() {
                let want = 0.5 * (p.feature[k] + q.feature[k]);
                assert!((t.feature[k] - want).abs() < 1e-4);
            }
        }
        // A face and its mirror image get the same answer.
        let again = tta.predict(&mirrored);
        for (t, u) in both.iter().zip(&again) {
            for (x, y) in t.probs.iter().zip(&u.probs) {
                assert!((x - y).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn a_batch_larger_than_the_buffer_limit_runs_in_passes_with_the_same_answers() {
        let device = Device::flex();
        let config = tiny_config();
        let per_face = config.vit.widest_activation_bytes();
        let whole = ExpressionModel::from_parts(config.vit.init(&device), config, &device);
        let want = whole.predict(&crops());
        // Room for 3 faces, then 1 face with flip averaging (2 images a face).
        let split = whole.with_max_buffer_bytes(Some(3 * per_face));
        assert_eq!(split.faces_per_pass(), 3);
        let got = split.predict(&crops());
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            for (x, y) in g.probs.iter().zip(&w.probs) {
                assert!((x - y).abs() < 1e-6, "{g:?} against {w:?}");
            }
        }
        let tta = split.with_flip_average(true);
        assert_eq!(tta.faces_per_pass(), 1);
        assert_eq!(tta.predict(&crops()).len(), 4);
    }

    #[test]
    fn logit_offsets_shift_the_probabilities_as_a_prior_correction_would() {
        let device = Device::flex();
        let config = tiny_config();
        let plain = ExpressionModel::from_parts(config.vit.init(&device), config, &device);
        let before = plain.predict_probs(&crops());
        let offsets = vec![0.0f32, 1.0, -2.0];
        let shifted = plain
            .with_logit_offsets(Some(offsets.clone()))
            .predict_probs(&crops());
        for (p, q) in before.iter().zip(&shifted) {
            // softmax(l + o) ∝ p · exp(o), renormalised.
            let w: Vec<f32> = p.iter().zip(&offsets).map(|(p, o)| p * o.exp()).collect();
            let z: f32 = w.iter().sum();
            for (a, b) in w.iter().zip(q) {
                assert!((a / z - b).abs() < 1e-5, "{p:?} -> {q:?}");
            }
        }
        let mut bad = tiny_config();
        bad.logit_offsets = Some(vec![0.0; 2]);
        assert!(bad.validate().is_err(), "one offset per class");
    }

    #[test]
    fn f16_weights_load_within_half_precision() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let config = tiny_config();
        let vit = config.vit.init(&device);
        let model = ExpressionModel::from_parts(vit, config, &device);
        model.save(dir.path(), "").unwrap();
        let loaded = ExpressionModel::load(dir.path(), &device).unwrap();
        let a = model.vit().state_dict();
        let b = loaded.vit().state_dict();
        for (name, (_, va)) in &a.tensors {
            let vb = &b.tensors[name].1;
            for (x, y) in va.iter().zip(vb) {
                assert!(
                    (x - y).abs() <= 1e-3 * x.abs().max(1e-2),
                    "{name}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn missing_and_corrupt_files_are_named_in_the_error() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let err = ExpressionModel::load(dir.path(), &device).unwrap_err();
        assert!(matches!(err, ModelError::Missing { .. }));
        assert!(err.to_string().contains("config.json"), "{err}");

        let config = tiny_config();
        let model = ExpressionModel::from_parts(config.vit.init(&device), config, &device);
        model.save(dir.path(), "").unwrap();
        std::fs::write(dir.path().join(WEIGHTS_FILE), b"not a safetensors file").unwrap();
        let err = ExpressionModel::load(dir.path(), &device).unwrap_err();
        assert!(err.to_string().contains("model.safetensors"), "{err}");

        std::fs::write(dir.path().join(CONFIG_FILE), b"{\"name\": 3").unwrap();
        let err = ExpressionModel::load(dir.path(), &device).unwrap_err();
        assert!(matches!(err, ModelError::Config { .. }), "{err}");
        assert!(err.to_string().contains("config.json"), "{err}");
    }

    #[test]
    fn weights_of_another_shape_are_rejected_with_the_tensor_name() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let config = tiny_config();
        let model = ExpressionModel::from_parts(config.vit.init(&device), config.clone(), &device);
        model.save(dir.path(), "").unwrap();
        let mut other = config;
        other.vit.depth = 3;
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            serde_json::to_string(&other).unwrap(),
        )
        .unwrap();
        let err = ExpressionModel::load(dir.path(), &device).unwrap_err();
        assert!(err.to_string().contains("blocks.2"), "{err}");
    }
}
