//! The infer stage: the expression model on batches of face crops that span
//! frames.

use burn::tensor::Tensor;
use crossbeam_channel::{Receiver, Sender};

use super::align::{AlignedFrame, Crops};
use super::{Item, PipelineError, Stage, StageClocks};
use crate::frame::{Frame, RgbImage};
use crate::geometry::FaceDetection;
use crate::model::{ExpressionModel, Prediction};

/// A frame with the model's prediction per face.
pub(super) struct ScoredFrame {
    pub(super) frame: Frame,
    pub(super) faces: Vec<FaceDetection>,
    pub(super) predictions: Vec<Prediction>,
}

/// Classifies faces in batches that span frames: it takes whatever frames are
/// already waiting (up to `batch` faces) so the model sees full batches when
/// the detector is ahead, and never waits for a batch to fill.
pub(super) fn infer_stage(
    input: Receiver<Item<AlignedFrame>>,
    out: Sender<Item<ScoredFrame>>,
    model: &ExpressionModel,
    batch: usize,
    clocks: &StageClocks,
) -> Result<(), PipelineError> {
    let clock = clocks.get(Stage::Infer);
    let crop_count = |item: &Item<AlignedFrame>| match item {
        Item::Work(frame) => frame.crops.len(),
        _ => 0,
    };
    while let Ok(first) = input.recv() {
        let mut faces = crop_count(&first);
        let mut pending = vec![first];
        while faces < batch {
            let Ok(item) = input.try_recv() else { break };
            faces += crop_count(&item);
            pending.push(item);
        }
        let crops: Vec<Crops> = pending
            .iter_mut()
            .filter_map(|item| match item {
                Item::Work(frame) => Some(std::mem::take(&mut frame.crops)),
                _ => None,
            })
            .collect();
        let mut predictions = clock
            .time(faces as u64, || predict_crops(model, crops))
            .into_iter();
        for item in pending {
            let item = item.map(|AlignedFrame { frame, faces, .. }| ScoredFrame {
                predictions: predictions.by_ref().take(faces.len()).collect(),
                frame,
                faces,
            });
            if out.send(item).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The model's predictions for the crops of several frames, in order, from one forward
/// pass.
pub(super) fn predict_crops(model: &ExpressionModel, parts: Vec<Crops>) -> Vec<Prediction> {
    // Consecutive host crops are normalised together; on the CPU path that is all of
    // them, in one input.
    let mut inputs: Vec<Tensor<4>> = Vec::new();
    let mut host: Vec<RgbImage> = Vec::new();
    for part in parts {
        match part {
            Crops::Host(crops) => host.extend(crops),
            Crops::Device(input) => {
                if !host.is_empty() {
                    inputs.push(model.preprocess(&std::mem::take(&mut host)));
                }
                inputs.push(input);
            }
        }
    }
    if !host.is_empty() {
        inputs.push(model.preprocess(&host));
    }
    match inputs.len() {
        0 => Vec::new(),
        1 => model.predict_input(inputs.remove(0)),
        _ => model.predict_input(Tensor::cat(inputs, 0)),
    }
}
