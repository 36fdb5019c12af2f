//! Knowledge distillation (Hinton et al. 2015): a fine-tuned model package,
//! the teacher, gives soft targets for each training batch, and the student
//! also learns to match them.
//!
//! The teacher sees the student's own augmented (and mixed) batch, resized
//! to its input size on the device, so both judge the same pixels. FER+
//! faces are 48 px, so a 112 px teacher loses nothing by seeing a 48 px batch
//! upsampled. The term is
//!
//! ```text
//! L_kd = T² · CE(softmax(s / T), softmax(t / T))
//! ```
//!
//! (the cross-entropy form of `T² · KL`, which differs by the teacher's
//! entropy, a constant of the student), weighted by `α` against the
//! supervised cross-entropy: `(1 − α) · CE + α · L_kd`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::tensor::activation::softmax;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};
use mimic::model::{ExpressionModel, IMAGENET_MEAN, IMAGENET_STD};

use crate::mix_supcon::soft_cross_entropy;

/// A fine-tuned model whose predictions the student learns from.
pub struct Teacher {
    model: ExpressionModel,
}

impl Teacher {
    /// Loads the package in `dir` onto `device` and checks that it answers
    /// the student's question: the same classes, the same input
    /// normalisation, and (for a grey teacher) grey training images.
    pub fn load(dir: &Path, classes: &[String], grey_data: bool, device: &Device) -> Result<Self> {
        let model = ExpressionModel::load(dir, device)
            .with_context(|| format!("cannot load the teacher {}", dir.display()))?;
        let config = model.config();
        if config.classes != classes {
            bail!(
                "the teacher {} predicts {:?}, the training data has {:?}",
                dir.display(),
                config.classes,
                classes
            );
        }
        if config.mean != IMAGENET_MEAN || config.std != IMAGENET_STD {
            bail!(
                "the teacher {} normalises its input with mean {:?} / std {:?}; \
                 the student's batches use ImageNet's",
                dir.display(),
                config.mean,
                config.std
            );
        }
        if config.grey && !grey_data {
            bail!(
                "the teacher {} takes grey faces and the training images are colour",
                dir.display()
            );
        }
        Ok(Self { model })
    }

    pub fn name(&self) -> &str {
        &self.model.config().name
    }

    /// The teacher's class probabilities at `temperature` for a student
    /// batch: `images: [batch, 3, s, s]` (normalised, on the teacher's
    /// device) → `[batch, classes]`.
    pub fn soft_targets(&self, images: Tensor<4>, temperature: f64) -> Tensor<2> {
        let size = self.model.input_size() as usize;
        let [_, _, h, w] = images.dims();
        let input = if (h, w) == (size, size) {
            images
        } else {
            interpolate(
                images,
                InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size([size, size]),
            )
        };
        softmax(self.model.vit().forward(input).div_scalar(temperature), 1)
    }
}

impl Teacher {
    /// [`soft_targets`](Self::soft_targets) of a batch rendered on the host
    /// (`images`: `n` images `[3, size, size]`, normalised), computed on `device` and
    /// read back: `[n · classes]`, so that each replica takes its rows.
    pub fn soft_targets_of(
        &self,
        images: &[f32],
        n: usize,
        size: usize,
        temperature: f64,
        device: &Device,
    ) -> Vec<f32> {
        let x = Tensor::<4>::from_data(
            burn::tensor::TensorData::new(images.to_vec(), [n, 3, size, size]),
            device,
        );
        self.soft_targets(x, temperature)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 probabilities")
    }
}

/// `T² · CE(softmax(logits / T), teacher)`: `logits: [batch, classes]` (the
/// student's, with gradient), `teacher: [batch, classes]` (soft targets at
/// `T`, constant) → `[1]`.
pub fn distillation_loss(logits: Tensor<2>, teacher: Tensor<2>, temperature: f64) -> Tensor<1> {
    soft_cross_entropy(logits.div_scalar(temperature), teacher).mul_scalar(temperature.powi(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn distillation_is_smallest_when_the_student_matches_the_teacher() {
        let d = Device::flex();
        let t = 2.0;
        let teacher_logits = [1.0f32, -0.5, 0.25];
        let teacher = softmax(
            Tensor::<2>::from_data(TensorData::new(teacher_logits.to_vec(), [1, 3]), &d)
                .div_scalar(t),
            1,
        );
        let loss = |student: [f32; 3]| {
            let s = Tensor::<2>::from_data(TensorData::new(student.to_vec(), [1, 3]), &d);
            distillation_loss(s, teacher.clone(), t)
                .into_data()
                .try_into_vec::<f32>()
                .unwrap()[0]
        };
        let matched = loss(teacher_logits);
        // At the match the loss is T² times the teacher's entropy.
        let p = teacher.clone().into_data().try_into_vec::<f32>().unwrap();
        let entropy: f32 = p.iter().map(|q| -q * q.ln()).sum();
        assert!((matched - 4.0 * entropy).abs() < 1e-5, "{matched}");
        assert!(loss([0.0, 0.0, 0.0]) > matched);
        assert!(loss([-1.0, 0.5, 0.25]) > matched);
        // Shifting all logits changes nothing (softmax is shift-invariant).
        assert!((loss([3.0, 1.5, 2.25]) - matched).abs() < 1e-5);
    }
}
