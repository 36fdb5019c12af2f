//! [`FaceDetector`]: facenet-pytorch 2.6.0's `detect_face`, stage by stage.
//!
//! 1. **Propose.** For each pyramid scale, area-resize the frame, run P-Net, keep cells with
//!    face probability `>= thresholds[0]` as boxes, NMS 0.5 (IoU) within the scale; then NMS
//!    0.7 over all scales, apply P-Net's offsets, square the boxes.
//! 2. **Refine.** Crop each box (clipped to the frame), area-resize to 24x24, run R-Net in
//!    one batch, keep probability `> thresholds[1]`, NMS 0.7, apply R-Net's offsets, square.
//! 3. **Output.** The same with 48x48 crops and O-Net (`> thresholds[2]`), landmarks placed
//!    in the squared box, O-Net's offsets applied, NMS 0.7 over the smaller box ('Min').
//!
//! The nets run in burn; the box maths ([`super::boxes`]) and the resampling
//! ([`super::resample`]) run on the host, where they are cheap and exact. Crops of all
//! candidates (and of all frames of a batch) go through R-Net and O-Net as one batch.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};

use super::boxes::{self, Candidate, Overlap};
use super::nets::{ONet, PNet, PoolPhasePatches, RNet};
use super::resample::IntegralImage;
use super::{MtcnnConfig, MtcnnError};
use crate::frame::RgbImage;
use crate::geometry::{BBox, FaceDetection};

const RNET_SIDE: usize = 24;
const ONET_SIDE: usize = 48;
/// NMS thresholds of facenet's `detect_face` (not configurable there either).
const NMS_WITHIN_SCALE: f32 = 0.5;
const NMS_STAGE: f32 = 0.7;

/// The MTCNN detector: three nets on one burn device, and the configuration.
#[derive(Debug)]
pub struct FaceDetector {
    pnet: PNet,
    rnet: RNet,
    onet: ONet,
    config: MtcnnConfig,
    device: Device,
    /// On burn's CPU backend the nets run their `forward_phased` path (first stage as
    /// one matrix product, see [`PoolPhasePatches`]); elsewhere the plain `forward`.
    phased: bool,
}

impl FaceDetector {
    /// Loads `pnet.safetensors`, `rnet.safetensors` and `onet.safetensors` from `dir`
    /// (e.g. `models/mtcnn`). A missing or corrupt file is an error naming it.
    pub fn load(dir: &Path, config: MtcnnConfig, device: &Device) -> Result<Self, MtcnnError> {
        config.validate()?;
        Ok(Self {
            pnet: PNet::load(&dir.join("pnet.safetensors"), device)?,
            rnet: RNet::load(&dir.join("rnet.safetensors"), device)?,
            onet: ONet::load(&dir.join("onet.safetensors"), device)?,
            config,
            device: device.clone(),
            phased: *device == Device::flex(),
        })
    }

    pub fn config(&self) -> &MtcnnConfig {
        &self.config
    }

    /// The faces in `image`, largest box first.
    pub fn detect(&self, image: &RgbImage) -> Vec<FaceDetection> {
        self.detect_batch(&[image]).pop().unwrap_or_default()
    }

    /// The faces in each of `images` (any sizes), largest box first per image. Frames of
    /// equal size share each P-Net pass; the crops of all frames share each R-Net and
    /// O-Net pass.
    pub fn detect_batch(&self, images: &[&RgbImage]) -> Vec<Vec<FaceDetection>> {
        self.detect_batch_followable(images)
            .into_iter()
            .map(|faces| faces.into_iter().map(|f| f.face).collect())
            .collect()
    }

    /// [`detect`](Self::detect), with what [`follow`](Self::follow) needs of each face.
    pub fn detect_followable(&self, image: &RgbImage) -> Vec<FollowedFace> {
        self.detect_batch_followable(&[image])
            .pop()
            .unwrap_or_default()
    }

    fn detect_batch_followable(&self, images: &[&RgbImage]) -> Vec<Vec<FollowedFace>> {
        let integrals: Vec<IntegralImage> =
            images.iter().map(|im| IntegralImage::new(im)).collect();
        let proposals = self.propose(&integrals);
        let refined = self.refine(&integrals, proposals);
        self.output(&integrals, refined)
    }

    /// The faces of `image` near `previous`, the faces of an earlier frame of the same
    /// video: O-Net runs on each previous face's O-Net input box, moved with the face
    /// (by the shift of its output box since that input was chosen); O-Net's regression
    /// follows the face and its score drops it when the face is gone. For a still
    /// picture this is a fixed point: the same input box gives the same face. The cheap
    /// step between full detections of `--detect-every K`; it finds no new face.
    pub fn follow(&self, image: &RgbImage, previous: &[FollowedFace]) -> Vec<FollowedFace> {
        let integrals = [IntegralImage::new(image)];
        let candidates = previous
            .iter()
            .map(|p| Candidate {
                x1: p.anchor.x1,
                y1: p.anchor.y1,
                x2: p.anchor.x2,
                y2: p.anchor.y2,
                score: p.face.score,
                reg: [0.0; 4],
            })
            .collect();
        let mut found = self
            .output(&integrals, vec![candidates])
            .pop()
            .unwrap_or_default();
        for now in &mut found {
            // `now.anchor` is the input box it came from: move it as the face moved.
            if let Some(before) = previous.iter().find(|p| p.anchor == now.anchor) {
                let ([x1, y1], [x0, y0]) = (now.face.bbox.center(), before.face.bbox.center());
                let (dx, dy) = (x1 - x0, y1 - y0);
                now.anchor = BBox {
                    x1: now.anchor.x1 + dx,
                    y1: now.anchor.y1 + dy,
                    x2: now.anchor.x2 + dx,
                    y2: now.anchor.y2 + dy,
                };
            }
        }
        found
    }

    /// Stage 1: P-Net over the pyramid of every frame; squared boxes per frame.
    fn propose(&self, integrals: &[IntegralImage]) -> Vec<Vec<Candidate>> {
        let mut by_size: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        for (i, integral) in integrals.iter().enumerate() {
            by_size
                .entry((integral.width(), integral.height()))
                .or_default()
                .push(i);
        }
        let mut out = vec![Vec::new(); integrals.len()];
        for ((width, height), members) in by_size {
            let (width, height) = (width as u32, height as u32);
            let scales =
                boxes::pyramid_scales(width, height, self.config.min_face_size, self.config.factor);
            let mut per_frame: Vec<Vec<Candidate>> = vec![Vec::new(); members.len()];
            for scale in scales {
                let (h, w) = boxes::scaled_size(width, height, scale);
                let n = members.len();
                let mut input = vec![0.0f32; n * 3 * h * w];
                for (chunk, &m) in input.chunks_exact_mut(3 * h * w).zip(&members) {
                    let integral = &integrals[m];
                    integral.resize_area_normalised(integral.full_rect(), h, w, chunk);
                }
                let (face_prob, reg, oh, ow) = self.run_pnet(input, n, h, w);
                let plane = oh * ow;
                for (k, frame) in per_frame.iter_mut().enumerate() {
                    let face_prob = &face_prob[k * plane..(k + 1) * plane];
                    let reg = &reg[4 * k * plane..4 * (k + 1) * plane];
                    let found = boxes::pnet_candidates(
                        face_prob,
                        reg,
                        oh,
                        ow,
                        scale,
                        self.config.thresholds[0],
                    );
                    let keep = boxes::nms(&found, NMS_WITHIN_SCALE, Overlap::Union);
                    frame.extend(keep.into_iter().map(|i| found[i]));
                }
            }
            for (candidates, &m) in per_frame.into_iter().zip(&members) {
                let keep = boxes::nms(&candidates, NMS_STAGE, Overlap::Union);
                out[m] = keep
                    .into_iter()
                    .map(|i| boxes::rerec(&boxes::regress_pnet(&candidates[i])))
                    .collect();
            }
        }
        out
    }

    /// P-Net on `input: [n, 3, h, w]` → `(face_prob: [n, h', w'], reg: [n, 4, h', w'], h', w')`
    /// on the host.
    fn run_pnet(
        &self,
        input: Vec<f32>,
        n: usize,
        h: usize,
        w: usize,
    ) -> (Vec<f32>, Vec<f32>, usize, usize) {
        let (reg, face_prob) = if self.phased {
            let patches = PoolPhasePatches::new(&input, n, h, w, 2);
            self.pnet.forward_phased(patches, &self.device)
        } else {
            let x = Tensor::<4>::from_data(TensorData::new(input, [n, 3, h, w]), &self.device);
            let (reg, prob) = self.pnet.forward(x);
            (reg, prob.narrow(1, 1, 1))
        };
        let [_, _, oh, ow] = face_prob.dims();
        (host(face_prob), host(reg), oh, ow)
    }

    /// Stage 2: R-Net on 24x24 crops of every proposal; squared boxes per frame.
    fn refine(
        &self,
        integrals: &[IntegralImage],
        proposals: Vec<Vec<Candidate>>,
    ) -> Vec<Vec<Candidate>> {
        let mut batch = CropBatch::new(integrals, &proposals, RNET_SIDE);
        let mut kept = vec![Vec::new(); integrals.len()];
        if batch.rows.is_empty() {
            return kept;
        }
        let (reg, prob) = if self.phased {
            self.rnet
                .forward_phased(batch.take_patches(3), &self.device)
        } else {
            self.rnet.forward(batch.take_tensor(&self.device))
        };
        let (reg, prob) = (host(reg), host(prob));
        for (row, &(frame, i)) in batch.rows.iter().enumerate() {
            let score = prob[2 * row + 1];
            if score > self.config.thresholds[1] {
                let reg = [
                    reg[4 * row],
                    reg[4 * row + 1],
                    reg[4 * row + 2],
                    reg[4 * row + 3],
                ];
                kept[frame].push(Candidate {
                    score,
                    reg,
                    ..proposals[frame][i]
                });
            }
        }
        kept.into_iter()
            .map(|candidates| {
                boxes::nms(&candidates, NMS_STAGE, Overlap::Union)
                    .into_iter()
                    .map(|i| {
                        let c = &candidates[i];
                        boxes::rerec(&boxes::regress(c, c.reg))
                    })
                    .collect()
            })
            .collect()
    }

    /// Stage 3: O-Net on 48x48 crops; the final faces per frame, largest box first, each
    /// with the O-Net input box it came from.
    fn output(
        &self,
        integrals: &[IntegralImage],
        refined: Vec<Vec<Candidate>>,
    ) -> Vec<Vec<FollowedFace>> {
        let mut batch = CropBatch::new(integrals, &refined, ONET_SIDE);
        type Found = (Candidate, [[f32; 2]; 5], Candidate);
        let mut faces: Vec<Vec<Found>> = vec![Vec::new(); integrals.len()];
        if !batch.rows.is_empty() {
            let (reg, points, prob) = if self.phased {
                self.onet
                    .forward_phased(batch.take_patches(3), &self.device)
            } else {
                self.onet.forward(batch.take_tensor(&self.device))
            };
            let (reg, points, prob) = (host(reg), host(points), host(prob));
            for (row, &(frame, i)) in batch.rows.iter().enumerate() {
                let score = prob[2 * row + 1];
                if score > self.config.thresholds[2] {
                    let c = Candidate {
                        score,
                        ..refined[frame][i]
                    };
                    let p: [f32; 10] = std::array::from_fn(|k| points[10 * row + k]);
                    let reg = std::array::from_fn(|k| reg[4 * row + k]);
                    faces[frame].push((
                        boxes::regress(&c, reg),
                        boxes::landmarks_to_frame(&c, &p),
                        c,
                    ));
                }
            }
        }
        faces
            .into_iter()
            .map(|found| {
                let candidates: Vec<Candidate> = found.iter().map(|f| f.0).collect();
                let mut dets: Vec<FollowedFace> =
                    boxes::nms(&candidates, NMS_STAGE, Overlap::MinInclusive)
                        .into_iter()
                        .map(|i| {
                            let (c, landmarks, anchor) = found[i];
                            FollowedFace {
                                face: FaceDetection {
                                    bbox: bbox_of(&c),
                                    score: c.score,
                                    landmarks,
                                },
                                anchor: bbox_of(&anchor),
                            }
                        })
                        .collect();
                // facenet's MTCNN.detect (select_largest=True): largest box area first.
                let area = |d: &FollowedFace| d.face.bbox.width() * d.face.bbox.height();
                dets.sort_by(|a, b| area(b).total_cmp(&area(a)));
                dets
            })
            .collect()
    }
}

/// A detected face and the box O-Net looked at to find it (a square around the face),
/// from which [`FaceDetector::follow`] looks for it again in the next frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FollowedFace {
    pub face: FaceDetection,
    anchor: BBox,
}

fn bbox_of(c: &Candidate) -> BBox {
    BBox {
        x1: c.x1,
        y1: c.y1,
        x2: c.x2,
        y2: c.y2,
    }
}

/// The crops of a set of candidates, area-resized to `side x side` and normalised, as one
/// input batch `[rows, 3, side, side]`; `rows[r] = (frame, candidate index)` of row `r`.
///
/// A box with no pixel inside its frame has no crop and no row: facenet's own code would
/// misalign its scores there; such a box is dropped.
struct CropBatch {
    data: Vec<f32>,
    rows: Vec<(usize, usize)>,
    side: usize,
}

impl CropBatch {
    fn new(integrals: &[IntegralImage], candidates: &[Vec<Candidate>], side: usize) -> Self {
        let per_crop = 3 * side * side;
        let total: usize = candidates.iter().map(Vec::len).sum();
        let mut data = Vec::with_capacity(total * per_crop);
        let mut rows = Vec::with_capacity(total);
        for (frame, (integral, cands)) in integrals.iter().zip(candidates).enumerate() {
            let (w, h) = (integral.width() as u32, integral.height() as u32);
            for (i, c) in cands.iter().enumerate() {
                if let Some(rect) = boxes::crop_rect(c, w, h) {
                    let start = data.len();
                    data.resize(start + per_crop, 0.0);
                    integral.resize_area_normalised(rect, side, side, &mut data[start..]);
                    rows.push((frame, i));
                }
            }
        }
        Self { data, rows, side }
    }

    /// Moves the pixels into the first-stage patches of a net whose first pool has kernel
    /// `pool_kernel` (the rows stay).
    fn take_patches(&mut self, pool_kernel: usize) -> PoolPhasePatches {
        let data = std::mem::take(&mut self.data);
        PoolPhasePatches::new(&data, self.rows.len(), self.side, self.side, pool_kernel)
    }

    /// Moves the pixels into a tensor `[rows, 3, side, side]` (the rows stay).
    fn take_tensor(&mut self, device: &Device) -> Tensor<4> {
        let shape = [self.rows.len(), 3, self.side, self.side];
        Tensor::from_data(
            TensorData::new(std::mem::take(&mut self.data), shape),
            device,
        )
    }
}

/// A float tensor's values on the host, row-major.
fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_into_vec::<f32>()
        .expect("MTCNN nets produce float32 tensors")
}
