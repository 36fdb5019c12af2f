//! Masked autoencoder pre-training (He et al. 2022) of the shared [`Vit`].
//!
//! Methods follow MAE's `models_mae.py`: [`random_masking`] picks the visible
//! patches, [`Mae::forward_encoder`] runs the ViT on those only,
//! [`Mae::forward_decoder`] puts mask tokens back in place and predicts every
//! patch's pixels with a light Transformer of its own width and (fixed
//! sin-cos) position embedding, and [`Mae::forward_loss`] is the mean squared
//! error over the masked patches of per-patch normalised pixels.
//!
//! Which patches are masked is decided on the host ([`MaskPlan`]): gathering
//! visible tokens and restoring the order are then one `select` each on the
//! flattened `[batch · patches, dim]` tokens, with no argsort on the device.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use mimic::vit::{
    Attention, Block, Mlp, StateDict, Vit, VitConfig, VitError, layer_norm, sincos_pos_embed_2d,
    xavier_linear,
};
use rand::Rng;
use rand::seq::SliceRandom;

/// Shape of the MAE: the encoder ViT plus the light decoder.
#[derive(Config, Debug)]
pub struct MaeConfig {
    /// The encoder (`num_classes` is ignored: an encoder has no head).
    pub encoder: VitConfig,
    #[config(default = 128)]
    pub decoder_dim: usize,
    #[config(default = 2)]
    pub decoder_depth: usize,
    #[config(default = 4)]
    pub decoder_heads: usize,
    /// Fraction of patches removed from each image.
    #[config(default = 0.75)]
    pub mask_ratio: f64,
    /// Normalise each target patch by its own mean and variance (MAE's
    /// `norm_pix_loss`, which gives better representations).
    #[config(default = true)]
    pub norm_pix_loss: bool,
}

impl MaeConfig {
    /// The encoder configuration actually built: no head, class-token pooling
    /// (so it has the final `norm`, as MAE's encoder does).
    pub fn encoder_config(&self) -> VitConfig {
        self.encoder
            .clone()
            .with_num_classes(0)
            .with_global_pool(mimic::vit::GlobalPool::Cls)
    }

    /// Visible patches per image.
    pub fn visible_patches(&self) -> usize {
        let n = self.encoder.num_patches();
        ((n as f64) * (1.0 - self.mask_ratio))
            .round()
            .clamp(1.0, n as f64) as usize
    }

    pub fn init(&self, device: &Device) -> Mae {
        let enc = self.encoder_config();
        let d = self.decoder_dim;
        let pos = sincos_pos_embed_2d(d, enc.grid_size(), true);
        Mae {
            encoder: enc.init(device),
            decoder_embed: xavier_linear(enc.dim, d, device),
            mask_token: Param::from_tensor(Tensor::random(
                [1, 1, d],
                Distribution::Normal(0.0, 0.02),
                device,
            )),
            decoder_pos_embed: Param::from_tensor(Tensor::from_data(
                TensorData::new(pos, [1, enc.num_patches() + 1, d]),
                device,
            ))
            .set_require_grad(false),
            decoder_blocks: (0..self.decoder_depth)
                .map(|_| Block {
                    norm1: layer_norm(d, device),
                    attn: Attention {
                        qkv: xavier_linear(d, 3 * d, device),
                        proj: xavier_linear(d, d, device),
                        heads: self.decoder_heads,
                    },
                    norm2: layer_norm(d, device),
                    mlp: Mlp {
                        fc1: xavier_linear(d, 4 * d, device),
                        fc2: xavier_linear(4 * d, d, device),
                    },
                    drop_path: 0.0,
                })
                .collect(),
            decoder_norm: layer_norm(d, device),
            decoder_pred: xavier_linear(d, enc.patch_dim(), device),
            norm_pix_loss: self.norm_pix_loss,
        }
    }
}

/// Encoder + decoder of a masked autoencoder.
#[derive(Module, Debug)]
pub struct Mae {
    pub encoder: Vit,
    pub decoder_embed: Linear,
    /// `[1, 1, decoder_dim]`
    pub mask_token: Param<Tensor<3>>,
    /// `[1, 1 + patches, decoder_dim]`, fixed sin-cos.
    pub decoder_pos_embed: Param<Tensor<3>>,
    pub decoder_blocks: Vec<Block>,
    pub decoder_norm: LayerNorm,
    pub decoder_pred: Linear,
    pub norm_pix_loss: bool,
}

/// Which patches of each image are visible, as flat indices for `select`.
#[derive(Clone, Debug, PartialEq)]
pub struct MaskPlan {
    pub batch: usize,
    pub patches: usize,
    /// Visible patches per image.
    pub visible: usize,
    /// `[batch · visible]`: row of each visible token in the flattened
    /// `[batch · patches]` patch tokens, image by image, in random order.
    pub keep: Vec<i64>,
    /// `[batch · patches]`: for patch `n` of image `b`, its row in
    /// `cat(visible tokens [batch · visible], mask tokens [batch · masked])`.
    pub restore: Vec<i64>,
    /// `[batch · patches]`: 1 = removed (predicted by the loss), 0 = visible.
    pub mask: Vec<f32>,
}

/// MAE's `random_masking`: for every image, a uniformly random subset of
/// `visible` of its `patches` stays visible.
pub fn random_masking(
    batch: usize,
    patches: usize,
    visible: usize,
    rng: &mut impl Rng,
) -> MaskPlan {
    let masked = patches - visible;
    let mut keep = Vec::with_capacity(batch * visible);
    let mut restore = vec![0i64; batch * patches];
    let mut mask = vec![1.0f32; batch * patches];
    let mut order: Vec<usize> = (0..patches).collect();
    for b in 0..batch {
        order.shuffle(rng);
        for (rank, &n) in order.iter().enumerate() {
            let flat = b * patches + n;
            if rank < visible {
                keep.push(flat as i64);
                restore[flat] = (b * visible + rank) as i64;
                mask[flat] = 0.0;
            } else {
                restore[flat] = (batch * visible + b * masked + (rank - visible)) as i64;
            }
        }
    }
    MaskPlan {
        batch,
        patches,
        visible,
        keep,
        restore,
        mask,
    }
}

/// Per-patch normalisation of MAE's `norm_pix_loss`:
/// `(x − mean) / √(var + 1e-6)` over each patch's values, with the unbiased
/// variance (torch's `Tensor.var` default).
///
/// `patches: [batch, patches, values]` → same shape.
pub fn normalize_patches(patches: Tensor<3>) -> Tensor<3> {
    let [_, _, v] = patches.dims();
    let mean = patches.clone().mean_dim(2);
    let centered = patches - mean;
    let var = centered
        .clone()
        .square()
        .sum_dim(2)
        .div_scalar((v - 1) as f64);
    centered / (var + 1e-6).sqrt()
}

/// Mean over the masked patches of the per-patch mean squared error:
/// `Σ_n mask_n · mean_v (pred − target)² / Σ_n mask_n`.
///
/// `pred, target: [batch, patches, values]`, `mask: [batch, patches]` (1 =
/// removed) → `[1]`.
pub fn masked_mse(pred: Tensor<3>, target: Tensor<3>, mask: Tensor<2>) -> Tensor<1> {
    let [b, n, _] = pred.dims();
    let per_patch = (pred - target).square().mean_dim(2).reshape([b, n]);
    let masked = mask.clone().sum();
    (per_patch * mask).sum() / masked
}

impl Mae {
    /// Every weight by name: the encoder under timm's names (so that a
    /// classifier loads it with [`Vit::from_state_dict`]), the decoder under
    /// MAE's own (`models_mae.py`: `decoder_embed`, `mask_token`,
    /// `decoder_blocks.i.*`, `decoder_norm`, `decoder_pred`). The fixed
    /// sin-cos position embeddings are left out: they are rebuilt.
    pub fn state_dict(&self) -> StateDict {
        let mut sd = self.encoder.state_dict();
        sd.put_linear("decoder_embed", &self.decoder_embed);
        sd.put("mask_token", self.mask_token.val());
        for (i, b) in self.decoder_blocks.iter().enumerate() {
            sd.put_block(&format!("decoder_blocks.{i}"), b);
        }
        sd.put_norm("decoder_norm", &self.decoder_norm);
        sd.put_linear("decoder_pred", &self.decoder_pred);
        sd
    }

    /// An MAE of shape `cfg` with the weights of [`Mae::state_dict`]'s layout;
    /// every tensor must be present with its shape.
    pub fn from_state_dict(
        cfg: &MaeConfig,
        sd: &StateDict,
        device: &Device,
    ) -> Result<Self, VitError> {
        let mut mae = cfg.init(device);
        mae.encoder = Vit::from_state_dict(&cfg.encoder_config(), sd, &[], device)?;
        sd.load_linear("decoder_embed", &mut mae.decoder_embed, device)?;
        mae.mask_token =
            Param::from_tensor(sd.take("mask_token", mae.mask_token.dims(), device)?);
        for (i, b) in mae.decoder_blocks.iter_mut().enumerate() {
            sd.load_block(&format!("decoder_blocks.{i}"), b, device)?;
        }
        sd.load_norm("decoder_norm", &mut mae.decoder_norm, device)?;
        sd.load_linear("decoder_pred", &mut mae.decoder_pred, device)?;
        Ok(mae)
    }

    /// Encoder on the visible patches only.
    ///
    /// `images: [batch, channels, H, W]` → latent `[batch, 1 + visible, dim]`
    /// (class token first).
    pub fn forward_encoder(&self, images: Tensor<4>, plan: &MaskPlan) -> Tensor<3> {
        let device = images.device();
        let tokens = self.encoder.embed_patches(images);
        let [b, n, d] = tokens.dims();
        let keep = Tensor::<1, Int>::from_data(
            TensorData::new(plan.keep.clone(), [plan.keep.len()]),
            &device,
        );
        let visible = tokens
            .reshape([b * n, d])
            .select(0, keep)
            .reshape([b, plan.visible, d]);
        self.encoder
            .forward_blocks(self.encoder.prepend_cls(visible))
    }

    /// Decoder: mask tokens put back in patch order, all patches predicted.
    ///
    /// `latent: [batch, 1 + visible, dim]` → `[batch, patches, patch² · channels]`.
    pub fn forward_decoder(&self, latent: Tensor<3>, plan: &MaskPlan) -> Tensor<3> {
        let device = latent.device();
        let x = self.decoder_embed.forward(latent);
        let [b, t, dd] = x.dims();
        let n = plan.patches;
        let cls = x.clone().narrow(1, 0, 1);
        let visible = x.narrow(1, 1, t - 1).reshape([b * (t - 1), dd]);
        let masked = b * (n - plan.visible);
        let mask_tokens = self.mask_token.val().reshape([1, dd]).expand([masked, dd]);
        let restore =
            Tensor::<1, Int>::from_data(TensorData::new(plan.restore.clone(), [b * n]), &device);
        let full = Tensor::cat(vec![visible, mask_tokens], 0)
            .select(0, restore)
            .reshape([b, n, dd]);
        let x = Tensor::cat(vec![cls, full], 1) + self.decoder_pos_embed.val();
        let x = self
            .decoder_blocks
            .iter()
            .fold(x, |x, block| block.forward(x));
        let pred = self.decoder_pred.forward(self.decoder_norm.forward(x));
        let [_, _, p] = pred.dims();
        pred.narrow(1, 1, n).reshape([b, n, p])
    }

    /// The reconstruction target of `images`: patchified pixels, normalised
    /// per patch when `norm_pix_loss`. → `[batch, patches, patch² · channels]`.
    pub fn target(&self, images: Tensor<4>) -> Tensor<3> {
        let t = self.encoder.patchify(images);
        if self.norm_pix_loss {
            normalize_patches(t)
        } else {
            t
        }
    }

    /// MSE on the masked patches: `pred` from the decoder, `mask: [batch, patches]`.
    pub fn forward_loss(&self, images: Tensor<4>, pred: Tensor<3>, mask: Tensor<2>) -> Tensor<1> {
        masked_mse(pred, self.target(images), mask)
    }

    /// One training forward pass: `(loss [1], prediction)`.
    pub fn forward(&self, images: Tensor<4>, plan: &MaskPlan) -> (Tensor<1>, Tensor<3>) {
        let device = images.device();
        let latent = self.forward_encoder(images.clone(), plan);
        let pred = self.forward_decoder(latent, plan);
        let mask = Tensor::<2>::from_data(
            TensorData::new(plan.mask.clone(), [plan.batch, plan.patches]),
            &device,
        );
        (self.forward_loss(images, pred.clone(), mask), pred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn masking_keeps_the_requested_share_and_restore_inverts_the_gather() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let plan = random_masking(3, 16, 4, &mut rng);
        assert_eq!(plan.keep.len(), 12);
        for b in 0..3 {
            let m = &plan.mask[b * 16..(b + 1) * 16];
            assert_eq!(
                m.iter().filter(|v| **v == 0.0).count(),
                4,
                "4 visible in image {b}"
            );
            // kept rows belong to their own image
            assert!(
                plan.keep[b * 4..(b + 1) * 4]
                    .iter()
                    .all(|&k| (k as usize) / 16 == b)
            );
        }
        // Gather visible ids, append mask ids, restore: every visible patch
        // finds itself, every masked patch a mask slot.
        let visible: Vec<i64> = plan.keep.clone();
        let combined: Vec<i64> = visible.iter().copied().chain((0..36).map(|_| -1)).collect();
        for (flat, &r) in plan.restore.iter().enumerate() {
            let got = combined[r as usize];
            if plan.mask[flat] == 0.0 {
                assert_eq!(got, flat as i64);
            } else {
                assert_eq!(got, -1);
            }
        }
        let mut sorted = plan.restore.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            (0..48).collect::<Vec<i64>>(),
            "restore is a permutation"
        );
    }

    #[test]
    fn masking_is_uniform_over_patches() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let plan = random_masking(4000, 4, 1, &mut rng);
        let mut counts = [0usize; 4];
        for (i, m) in plan.mask.iter().enumerate() {
            if *m == 0.0 {
                counts[i % 4] += 1;
            }
        }
        assert!(
            counts.iter().all(|&c| (900..1100).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn per_patch_normalisation_matches_hand_values() {
        let d = Device::flex();
        // One patch [1, 2, 3, 6]: mean 3, unbiased var (4+1+0+9)/3 = 14/3.
        let t = Tensor::<3>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 6.0], [1, 1, 4]), &d);
        let v = normalize_patches(t)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let s = (14.0f32 / 3.0 + 1e-6).sqrt();
        for (a, b) in v.iter().zip([-2.0 / s, -1.0 / s, 0.0, 3.0 / s]) {
            assert!((a - b).abs() < 1e-5, "{v:?}");
        }
    }

    #[test]
    fn loss_counts_masked_patches_only() {
        let d = Device::flex();
        // 2 patches of 2 values; patch 0 visible (error ignored), patch 1
        // masked with errors 1 and 3 → mean square (1 + 9)/2 = 5.
        let pred =
            Tensor::<3>::from_data(TensorData::new(vec![9.0f32, 9.0, 1.0, 3.0], [1, 2, 2]), &d);
        let target = Tensor::<3>::zeros([1, 2, 2], &d);
        let mask = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 1.0], [1, 2]), &d);
        let l = masked_mse(pred, target, mask)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()[0];
        assert!((l - 5.0).abs() < 1e-6, "{l}");
    }

    fn tiny_mae() -> MaeConfig {
        MaeConfig::new(
            VitConfig::new()
                .with_image_size(16)
                .with_patch_size(4)
                .with_dim(16)
                .with_depth(1)
                .with_heads(2),
        )
        .with_decoder_dim(8)
        .with_decoder_depth(1)
        .with_decoder_heads(2)
    }

    #[test]
    fn state_dict_round_trip_reconstructs_the_same_pixels() {
        let d = Device::flex();
        let cfg = tiny_mae();
        let mae = cfg.init(&d);
        let sd = mae.state_dict();
        assert!(
            sd.contains("blocks.0.attn.qkv.weight") && sd.contains("decoder_blocks.0.mlp.fc2.bias")
        );
        let loaded = Mae::from_state_dict(&cfg, &sd, &d).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let plan = random_masking(2, 16, cfg.visible_patches(), &mut rng);
        let imgs = Tensor::<4>::random([2, 3, 16, 16], Distribution::Default, &d);
        let (_, a) = mae.forward(imgs.clone(), &plan);
        let (_, b) = loaded.forward(imgs, &plan);
        a.into_data()
            .assert_approx_eq::<f32>(&b.into_data(), burn::tensor::Tolerance::absolute(1e-6));
        // A classifier takes the encoder straight from the same dict.
        let vit_cfg = cfg.encoder.clone().with_num_classes(3);
        assert!(Vit::from_state_dict(&vit_cfg, &sd, &["fc_norm", "head"], &d).is_ok());
        // A missing decoder tensor is an error naming it.
        let mut partial = sd.clone();
        partial.tensors.remove("decoder_pred.weight");
        let err = Mae::from_state_dict(&cfg, &partial, &d)
            .unwrap_err()
            .to_string();
        assert!(err.contains("decoder_pred.weight"), "{err}");
    }

    #[test]
    fn forward_shapes_follow_the_mask_plan() {
        let d = Device::flex();
        let cfg = tiny_mae();
        let mae = cfg.init(&d);
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let plan = random_masking(2, 16, cfg.visible_patches(), &mut rng);
        assert_eq!(plan.visible, 4);
        let imgs = Tensor::<4>::random([2, 3, 16, 16], Distribution::Default, &d);
        let latent = mae.forward_encoder(imgs.clone(), &plan);
        assert_eq!(latent.dims(), [2, 5, 16]);
        let (loss, pred) = mae.forward(imgs, &plan);
        assert_eq!(pred.dims(), [2, 16, 48]);
        assert!(loss.into_data().try_into_vec::<f32>().unwrap()[0].is_finite());
    }
}
