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
//! The nets run in burn, except on burn's CPU backend, where the same weights run as
//! [`super::host`]'s channels-last code (several times faster there). The box maths
//! ([`super::boxes`]) runs on the host, where it is cheap and exact. The resampling
//! (pyramid levels, box crops) runs where the frame is:
//! on the host ([`super::resample`]) for a frame in memory, or on the GPU
//! ([`crate::gpu::area`], the same arithmetic) for a frame uploaded to burn's wgpu
//! device ([`FaceDetector::detect_on_device`]), so that only boxes and scores come back.
//! Crops of all candidates (and of all frames of a batch) go through R-Net and O-Net as
//! one batch.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use super::boxes::{self, Candidate, CropRect, Overlap};
use super::host::{HostONet, HostPNet, HostRNet};
use super::nets::{ONet, PNet, RNet};
use super::passes::{CropNet, PassLimit};
use super::resample::IntegralImage;
use super::{MtcnnConfig, MtcnnError};
use crate::frame::RgbImage;
use crate::geometry::{BBox, FaceDetection};
use crate::gpu::{self, GpuError};

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
    /// On burn's CPU backend the nets run on the host ([`super::host`]), from the same
    /// weights; elsewhere burn runs them.
    host: Option<HostNets>,
    /// On burn's wgpu device the GPU shaders can resample frames uploaded there.
    shaders: bool,
    /// How large one pass on the device may be (frames, crops); no limit on the host.
    pass_limit: PassLimit,
}

impl FaceDetector {
    /// Loads `pnet.safetensors`, `rnet.safetensors` and `onet.safetensors` from `dir`
    /// (e.g. `models/mtcnn`). A missing or corrupt file is an error naming it.
    pub fn load(dir: &Path, config: MtcnnConfig, device: &Device) -> Result<Self, MtcnnError> {
        config.validate()?;
        let pnet = PNet::load(&dir.join("pnet.safetensors"), device)?;
        let rnet = RNet::load(&dir.join("rnet.safetensors"), device)?;
        let onet = ONet::load(&dir.join("onet.safetensors"), device)?;
        let host = (*device == Device::flex()).then(|| HostNets {
            pnet: pnet.on_host(),
            rnet: rnet.on_host(),
            onet: onet.on_host(),
        });
        Ok(Self {
            pnet,
            rnet,
            onet,
            config,
            device: device.clone(),
            host,
            shaders: gpu::runs_shaders(device),
            pass_limit: gpu::max_buffer_bytes(device).map_or(PassLimit::NONE, PassLimit::new),
        })
    }

    /// The same detector with passes on the device sized for `limit` rather than for the
    /// largest buffer the device states (a device that overstates it; tests).
    pub fn with_pass_limit(self, limit: PassLimit) -> Self {
        Self {
            pass_limit: limit,
            ..self
        }
    }

    /// Frames of `width x height` that one pass on the device may take (see
    /// [`super::passes`]): batches of more frames are uploaded and detected in parts.
    pub fn frames_per_device_pass(&self, width: u32, height: u32) -> Result<usize, GpuError> {
        let scales = self.config.pyramid_scales(width, height);
        self.pass_limit.frames_per_pass(width, height, &scales)
    }

    pub fn config(&self) -> &MtcnnConfig {
        &self.config
    }

    /// The device the nets run on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether [`detect_on_device`](Self::detect_on_device) and
    /// [`follow_on_device`](Self::follow_on_device) can run: the nets are on burn's wgpu
    /// device, where the resampling shaders run.
    pub fn runs_on_gpu(&self) -> bool {
        self.shaders
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

    /// [`detect_batch`](Self::detect_batch), with what [`follow`](Self::follow) needs of
    /// each face.
    pub fn detect_batch_followable(&self, images: &[&RgbImage]) -> Vec<Vec<FollowedFace>> {
        let pixels = FramePixels::Host(images.iter().map(|im| IntegralImage::new(im)).collect());
        self.detect_pixels(&pixels).expect(HOST_PATH)
    }

    /// [`detect_followable`](Self::detect_followable) of each frame of `frames:
    /// [n, 3, h, w]` (8-bit values as f32, e.g. from [`gpu::upload_frames`]) on burn's wgpu
    /// device: pyramid and crops are resampled by the GPU shaders, only boxes, landmarks
    /// and scores come back to the host. Needs [`runs_on_gpu`](Self::runs_on_gpu).
    /// More frames than [`frames_per_device_pass`](Self::frames_per_device_pass) allows are
    /// detected in parts.
    pub fn detect_on_device(&self, frames: Tensor<4>) -> Result<Vec<Vec<FollowedFace>>, GpuError> {
        let [n, _, h, w] = frames.dims();
        let per_pass = self.frames_per_device_pass(w as u32, h as u32)?;
        if n <= per_pass {
            return self.detect_pixels(&self.device_pixels(frames)?);
        }
        let mut found = Vec::with_capacity(n);
        for start in (0..n).step_by(per_pass) {
            let part = frames.clone().slice([start..(start + per_pass).min(n)]);
            found.extend(self.detect_pixels(&self.device_pixels(part)?)?);
        }
        Ok(found)
    }

    /// [`follow`](Self::follow) on a frame `[1, 3, h, w]` on burn's wgpu device, as
    /// [`detect_on_device`](Self::detect_on_device) takes it.
    pub fn follow_on_device(
        &self,
        frame: Tensor<4>,
        previous: &[FollowedFace],
    ) -> Result<Vec<FollowedFace>, GpuError> {
        self.follow_pixels(&self.device_pixels(frame)?, previous)
    }

    fn device_pixels(&self, frames: Tensor<4>) -> Result<FramePixels, GpuError> {
        if !self.shaders {
            return Err(GpuError::NotWgpu {
                device: format!("{:?}", self.device),
            });
        }
        Ok(FramePixels::Device(frames))
    }

    fn detect_pixels(&self, pixels: &FramePixels) -> Result<Vec<Vec<FollowedFace>>, GpuError> {
        let proposals = self.propose(pixels)?;
        let refined = self.refine(pixels, proposals)?;
        self.output(pixels, refined)
    }

    /// The faces of `image` near `previous`, the faces of an earlier frame of the same
    /// video: O-Net runs on each previous face's O-Net input box, moved with the face
    /// (by the shift of its output box since that input was chosen); O-Net's regression
    /// follows the face and its score drops it when the face is gone. For a still
    /// picture this is a fixed point: the same input box gives the same face. The cheap
    /// step between full detections of `--detect-every K`; it finds no new face.
    pub fn follow(&self, image: &RgbImage, previous: &[FollowedFace]) -> Vec<FollowedFace> {
        let pixels = FramePixels::Host(vec![IntegralImage::new(image)]);
        self.follow_pixels(&pixels, previous).expect(HOST_PATH)
    }

    fn follow_pixels(
        &self,
        pixels: &FramePixels,
        previous: &[FollowedFace],
    ) -> Result<Vec<FollowedFace>, GpuError> {
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
            .output(pixels, vec![candidates])?
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
        Ok(found)
    }

    /// Stage 1: P-Net over the pyramid of every frame; squared boxes per frame.
    fn propose(&self, pixels: &FramePixels) -> Result<Vec<Vec<Candidate>>, GpuError> {
        let mut by_size: BTreeMap<(u32, u32), Vec<usize>> = BTreeMap::new();
        for frame in 0..pixels.len() {
            by_size.entry(pixels.size(frame)).or_default().push(frame);
        }
        let mut out = vec![Vec::new(); pixels.len()];
        for ((width, height), members) in by_size {
            let scales = self.config.pyramid_scales(width, height);
            let levels = pixels.pyramid(&members, &scales)?;
            // On the host the levels run side by side (each one split into bands too);
            // a device queues every level, then returns all outputs at once.
            let outputs: Vec<_> = if self.host.is_some() {
                levels
                    .into_par_iter()
                    .map(|level| self.run_pnet(level))
                    .collect()
            } else {
                self.run_pnet_in_one_transfer(levels)
            };
            let mut per_frame: Vec<Vec<Candidate>> = vec![Vec::new(); members.len()];
            for ((face_prob, reg, oh, ow), &scale) in outputs.into_iter().zip(&scales) {
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
        Ok(out)
    }

    /// P-Net on one pyramid level `[n, 3, h, w]` → `(face_prob: [n, h', w'],
    /// reg: [n, 4, h', w'], h', w')` on the host.
    fn run_pnet(&self, input: NetInput) -> (Vec<f32>, Vec<f32>, usize, usize) {
        match (input, &self.host) {
            (NetInput::Host { data, n, h, w }, Some(nets)) => nets.pnet.forward(&data, n, h, w),
            (input, _) => self
                .run_pnet_in_one_transfer(vec![input])
                .pop()
                .expect("one level in, one out"),
        }
    }

    /// [`run_pnet`](Self::run_pnet) on every level with burn: each level's P-Net is queued,
    /// then all outputs come back to the host together (one transfer, one wait for the
    /// device, instead of one per scale).
    fn run_pnet_in_one_transfer(
        &self,
        levels: Vec<NetInput>,
    ) -> Vec<(Vec<f32>, Vec<f32>, usize, usize)> {
        let mut sizes = Vec::with_capacity(levels.len());
        let mut flat: Vec<Tensor<1>> = Vec::with_capacity(2 * levels.len());
        for level in levels {
            let (reg, prob) = self.pnet.forward(level.into_tensor(&self.device));
            let face_prob = prob.narrow(1, 1, 1);
            let [n, _, oh, ow] = face_prob.dims();
            sizes.push((n * oh * ow, oh, ow));
            flat.push(face_prob.reshape([n * oh * ow]));
            flat.push(reg.reshape([4 * n * oh * ow]));
        }
        if flat.is_empty() {
            return Vec::new();
        }
        let values = host(Tensor::cat(flat, 0));
        let mut at = 0;
        sizes
            .into_iter()
            .map(|(cells, oh, ow)| {
                let face_prob = values[at..at + cells].to_vec();
                let reg = values[at + cells..at + 5 * cells].to_vec();
                at += 5 * cells;
                (face_prob, reg, oh, ow)
            })
            .collect()
    }

    /// `net`'s input crops of `candidates` (see [`FramePixels::crops`]), in as many passes
    /// as the device's buffers need.
    fn crops(
        &self,
        pixels: &FramePixels,
        candidates: &[Vec<Candidate>],
        net: CropNet,
    ) -> Result<Option<NetCrops>, GpuError> {
        let side = match net {
            CropNet::RNet => RNET_SIDE,
            CropNet::ONet => ONET_SIDE,
        };
        pixels.crops(candidates, side, self.pass_limit.crops_per_pass(net))
    }

    /// Stage 2: R-Net on 24x24 crops of every proposal; squared boxes per frame.
    fn refine(
        &self,
        pixels: &FramePixels,
        proposals: Vec<Vec<Candidate>>,
    ) -> Result<Vec<Vec<Candidate>>, GpuError> {
        let mut kept = vec![Vec::new(); pixels.len()];
        let Some((inputs, rows)) = self.crops(pixels, &proposals, CropNet::RNet)? else {
            return Ok(kept);
        };
        let (mut reg, mut prob) = (Vec::new(), Vec::new());
        for input in inputs {
            let (r, p) = match (input, &self.host) {
                (NetInput::Host { data, n, .. }, Some(nets)) => nets.rnet.forward(&data, n),
                (input, _) => {
                    let (r, p) = self.rnet.forward(input.into_tensor(&self.device));
                    (host(r), host(p))
                }
            };
            reg.extend(r);
            prob.extend(p);
        }
        for (row, &(frame, i)) in rows.iter().enumerate() {
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
        Ok(kept
            .into_iter()
            .map(|candidates| {
                boxes::nms(&candidates, NMS_STAGE, Overlap::Union)
                    .into_iter()
                    .map(|i| {
                        let c = &candidates[i];
                        boxes::rerec(&boxes::regress(c, c.reg))
                    })
                    .collect()
            })
            .collect())
    }

    /// Stage 3: O-Net on 48x48 crops; the final faces per frame, largest box first, each
    /// with the O-Net input box it came from.
    fn output(
        &self,
        pixels: &FramePixels,
        refined: Vec<Vec<Candidate>>,
    ) -> Result<Vec<Vec<FollowedFace>>, GpuError> {
        type Found = (Candidate, [[f32; 2]; 5], Candidate);
        let mut faces: Vec<Vec<Found>> = vec![Vec::new(); pixels.len()];
        if let Some((inputs, rows)) = self.crops(pixels, &refined, CropNet::ONet)? {
            let (mut reg, mut points, mut prob) = (Vec::new(), Vec::new(), Vec::new());
            for input in inputs {
                let (r, l, p) = match (input, &self.host) {
                    (NetInput::Host { data, n, .. }, Some(nets)) => nets.onet.forward(&data, n),
                    (input, _) => {
                        let (r, l, p) = self.onet.forward(input.into_tensor(&self.device));
                        (host(r), host(l), host(p))
                    }
                };
                reg.extend(r);
                points.extend(l);
                prob.extend(p);
            }
            for (row, &(frame, i)) in rows.iter().enumerate() {
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
        Ok(faces
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
            .collect())
    }
}

/// The three nets on the host.
#[derive(Debug)]
struct HostNets {
    pnet: HostPNet,
    rnet: HostRNet,
    onet: HostONet,
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

/// The host path launches no shader, so it cannot fail.
const HOST_PATH: &str = "resampling on the host cannot fail";

/// The frames of one detection pass, where the detector resamples them.
enum FramePixels {
    /// In memory: integral images for [`IntegralImage::resize_area_normalised`].
    Host(Vec<IntegralImage>),
    /// On burn's wgpu device: `[n, 3, h, w]` 8-bit values for the area-resize shader.
    Device(Tensor<4>),
}

/// A crop net's input batches and, per row of their concatenation, `(frame, candidate)`.
type NetCrops = (Vec<NetInput>, Vec<(usize, usize)>);

/// A net's input, normalised pixels `[n, 3, h, w]`: on the host or already on the device.
enum NetInput {
    Host {
        data: Vec<f32>,
        n: usize,
        h: usize,
        w: usize,
    },
    Device(Tensor<4>),
}

impl NetInput {
    fn into_tensor(self, device: &Device) -> Tensor<4> {
        match self {
            NetInput::Host { data, n, h, w } => {
                Tensor::from_data(TensorData::new(data, [n, 3, h, w]), device)
            }
            NetInput::Device(t) => t,
        }
    }
}

impl FramePixels {
    fn len(&self) -> usize {
        match self {
            FramePixels::Host(integrals) => integrals.len(),
            FramePixels::Device(frames) => frames.dims()[0],
        }
    }

    /// `(width, height)` of frame `frame`.
    fn size(&self, frame: usize) -> (u32, u32) {
        match self {
            FramePixels::Host(integrals) => {
                let integral = &integrals[frame];
                (integral.width() as u32, integral.height() as u32)
            }
            FramePixels::Device(frames) => {
                let [_, _, h, w] = frames.dims();
                (w as u32, h as u32)
            }
        }
    }

    /// P-Net's inputs, one per scale, for the frames `members` (all of one size): every
    /// frame resized to facenet's size of each scale ([`boxes::scaled_size`]).
    fn pyramid(&self, members: &[usize], scales: &[f64]) -> Result<Vec<NetInput>, GpuError> {
        match self {
            FramePixels::Host(integrals) => {
                let (width, height) = self.size(members[0]);
                Ok(scales
                    .par_iter()
                    .map(|&scale| {
                        let (h, w) = boxes::scaled_size(width, height, scale);
                        let n = members.len();
                        let mut data = vec![0.0f32; n * 3 * h * w];
                        for (chunk, &m) in data.chunks_exact_mut(3 * h * w).zip(members) {
                            let integral = &integrals[m];
                            integral.resize_area_normalised(integral.full_rect(), h, w, chunk);
                        }
                        NetInput::Host { data, n, h, w }
                    })
                    .collect())
            }
            // One tensor holds frames of one size: `members` is every frame.
            FramePixels::Device(frames) => Ok(gpu::mtcnn_pyramid(frames.clone(), scales)?
                .into_iter()
                .map(NetInput::Device)
                .collect()),
        }
    }

    /// The `side x side` crops of `candidates[frame]` (clipped to the frame), as input
    /// batches (one on the host, batches of at most `per_pass` crops on the device) with
    /// `rows[r] = (frame, candidate index)` of row `r` of their concatenation; `None` when
    /// no candidate has a crop. A box with no pixel inside its frame has no crop and no
    /// row: facenet's own code would misalign its scores there; such a box is dropped.
    fn crops(
        &self,
        candidates: &[Vec<Candidate>],
        side: usize,
        per_pass: usize,
    ) -> Result<Option<NetCrops>, GpuError> {
        let mut rects: Vec<(usize, CropRect)> = Vec::new();
        let mut rows = Vec::new();
        for (frame, cands) in candidates.iter().enumerate() {
            let (w, h) = self.size(frame);
            for (i, c) in cands.iter().enumerate() {
                if let Some(rect) = boxes::crop_rect(c, w, h) {
                    rects.push((frame, rect));
                    rows.push((frame, i));
                }
            }
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let input = match self {
            FramePixels::Host(integrals) => {
                let per_crop = 3 * side * side;
                let mut data = vec![0.0f32; rects.len() * per_crop];
                data.par_chunks_exact_mut(per_crop).zip(&rects).for_each(
                    |(chunk, &(frame, rect))| {
                        integrals[frame].resize_area_normalised(rect, side, side, chunk);
                    },
                );
                vec![NetInput::Host {
                    data,
                    n: rects.len(),
                    h: side,
                    w: side,
                }]
            }
            FramePixels::Device(frames) => rects
                .chunks(per_pass.max(1))
                .map(|part| {
                    Ok(NetInput::Device(gpu::mtcnn_crops(
                        frames.clone(),
                        part,
                        side,
                    )?))
                })
                .collect::<Result<_, GpuError>>()?,
        };
        Ok(Some((input, rows)))
    }
}

/// A float tensor's values on the host, row-major.
fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_into_vec::<f32>()
        .expect("MTCNN nets produce float32 tensors")
}
