//! The vision Transformer shared by the analyzer and the training crate.
//!
//! One plain ViT (Dosovitskiy et al. 2021) in the shape of timm's
//! `VisionTransformer` and of MAE's encoder (He et al. 2022): patch embedding,
//! a class token, fixed 2-D sin-cos position embeddings, `depth` pre-norm
//! Transformer blocks, then either the class token (`GlobalPool::Cls`, final
//! `norm`) or the mean of the patch tokens (`GlobalPool::Mean`, `fc_norm`, as in
//! MAE fine-tuning) feeding a linear `head`.
//!
//! Parameter paths map 1:1 onto timm's names (`patch_embed.proj`, `cls_token`,
//! `pos_embed`, `blocks.N.norm1`, `blocks.N.attn.qkv`, `blocks.N.attn.proj`,
//! `blocks.N.norm2`, `blocks.N.mlp.fc1/fc2`, `norm`, `fc_norm`, `head`), so
//! [`Vit::state_dict`] writes a file timm's model loads with `load_state_dict`
//! (Linear weights in torch's `[out, in]` layout, LayerNorm `weight`/`bias`).
//!
//! Methods read like MAE's: [`Vit::patchify`], [`Vit::embed_patches`],
//! [`Vit::forward_features`], [`Vit::forward_head`], [`Vit::forward`]. The
//! masked-autoencoder training (which runs the encoder on visible patches only)
//! lives in the training crate and drives the same pieces.

use std::collections::BTreeMap;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

use crate::gelu::gelu;

/// How the per-image feature is pooled from the token sequence.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum GlobalPool {
    /// The class token after the final `norm` (timm `global_pool='token'`).
    Cls,
    /// The mean of the patch tokens, then `fc_norm` (timm `global_pool='avg'`,
    /// MAE fine-tuning); the encoder then has no final `norm`.
    Mean,
}

/// Shape of a [`Vit`]. Saved as JSON beside the weights, so a model file always
/// says what it is.
#[derive(Config, Debug, PartialEq)]
pub struct VitConfig {
    /// Side of the square input image in pixels.
    #[config(default = 224)]
    pub image_size: usize,
    /// Side of a square patch in pixels; must divide `image_size`.
    #[config(default = 16)]
    pub patch_size: usize,
    /// Input channels (3: grey inputs are replicated over RGB).
    #[config(default = 3)]
    pub in_channels: usize,
    /// Token width; a multiple of 4 (sin-cos position embedding) and of `heads`.
    #[config(default = 192)]
    pub dim: usize,
    /// Number of Transformer blocks.
    #[config(default = 12)]
    pub depth: usize,
    /// Attention heads per block.
    #[config(default = 3)]
    pub heads: usize,
    /// Hidden width of the MLP as a multiple of `dim`.
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
    /// Stochastic-depth rate of the last block (linearly increasing from 0
    /// over the blocks, as in timm); only active while training.
    #[config(default = 0.0)]
    pub drop_path: f64,
    /// Classes of the linear head; 0 = no head (an encoder, as in MAE).
    #[config(default = 0)]
    pub num_classes: usize,
    /// Feature pooling for the head.
    #[config(default = "GlobalPool::Cls")]
    pub global_pool: GlobalPool,
}

/// A shape problem in a [`VitConfig`] or a state dict.
#[derive(Debug, thiserror::Error)]
pub enum VitError {
    #[error("invalid ViT configuration: {0}")]
    Config(String),
    #[error("tensor `{name}` is missing from the weights")]
    Missing { name: String },
    #[error("tensor `{name}` has shape {found:?}, the model expects {expected:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
}

impl VitConfig {
    /// ViT-Tiny (DeiT-Ti): 192 wide, 12 blocks, 3 heads, 224 px / 16 px patches
    /// (196 patches + class token). 5.49 M parameters (+ head), 1.25 GMACs per image.
    pub fn tiny() -> Self {
        Self::new()
    }

    /// ViT-Small: 384 wide, 12 blocks, 6 heads, 224 px / 16 px patches.
    /// 21.6 M parameters (+ head), 4.60 GMACs per image.
    pub fn small() -> Self {
        Self::new().with_dim(384).with_heads(6)
    }

    /// The accurate model's shape (GPU): ViT-Small at 112 px in 8 px patches
    /// (14 x 14 = 196 patches, as ViT-S/16 at 224). 21.4 M parameters (+ head),
    /// 4.56 GMACs per image.
    pub fn small112() -> Self {
        Self::small().with_image_size(112).with_patch_size(8)
    }

    /// CPU analyzer candidate: 48 px input (FER+'s native size), 6 px patches
    /// (8 x 8 = 64 patches), ViT-Tiny width (192/3 heads), 8 blocks.
    /// 3.58 M parameters (+ head), 0.244 GMACs per image.
    pub fn mini() -> Self {
        Self::new()
            .with_image_size(48)
            .with_patch_size(6)
            .with_depth(8)
    }

    /// CPU analyzer candidate, cheaper: 48 px input, 8 px patches (6 x 6 = 36
    /// patches), 192 wide, 6 blocks, 3 heads. 2.71 M parameters (+ head),
    /// 0.103 GMACs per image.
    pub fn micro() -> Self {
        Self::new()
            .with_image_size(48)
            .with_patch_size(8)
            .with_depth(6)
    }

    /// CPU analyzer candidate, larger input: 64 px (48 px faces upsampled, or
    /// crops of video faces), 8 px patches (64 patches), 192 wide, 8 blocks.
    /// 3.60 M parameters (+ head), 0.245 GMACs per image.
    pub fn mini64() -> Self {
        Self::new()
            .with_image_size(64)
            .with_patch_size(8)
            .with_depth(8)
    }

    /// A preset by name: `tiny`, `small`, `mini`, `micro`, `mini64`.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "tiny" => Some(Self::tiny()),
            "small" => Some(Self::small()),
            "mini" => Some(Self::mini()),
            "micro" => Some(Self::micro()),
            "mini64" => Some(Self::mini64()),
            "small112" => Some(Self::small112()),
            _ => None,
        }
    }

    /// Names accepted by [`VitConfig::preset`].
    pub const PRESETS: [&'static str; 6] = ["tiny", "small", "mini", "micro", "mini64", "small112"];

    /// Patches per side (`image_size / patch_size`).
    pub fn grid_size(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Patches per image.
    pub fn num_patches(&self) -> usize {
        self.grid_size() * self.grid_size()
    }

    /// Values in one flattened patch (`patch_size² · in_channels`).
    pub fn patch_dim(&self) -> usize {
        self.patch_size * self.patch_size * self.in_channels
    }

    /// Hidden width of each block's MLP.
    pub fn mlp_hidden(&self) -> usize {
        (self.dim as f64 * self.mlp_ratio).round() as usize
    }

    /// Checks the divisibility rules the model relies on.
    pub fn validate(&self) -> Result<(), VitError> {
        let fail = |m: String| Err(VitError::Config(m));
        if self.patch_size == 0 || self.image_size % self.patch_size != 0 {
            return fail(format!(
                "patch_size {} must divide image_size {}",
                self.patch_size, self.image_size
            ));
        }
        if self.heads == 0 || self.dim % self.heads != 0 {
            return fail(format!("heads {} must divide dim {}", self.heads, self.dim));
        }
        if self.dim % 4 != 0 {
            return fail(format!(
                "dim {} must be a multiple of 4 (2-D sin-cos embedding)",
                self.dim
            ));
        }
        if self.depth == 0 || self.in_channels == 0 {
            return fail("depth and in_channels must be positive".into());
        }
        if !(0.0..1.0).contains(&self.drop_path) {
            return fail(format!("drop_path {} must be in [0, 1)", self.drop_path));
        }
        Ok(())
    }

    /// Learnable parameters (the fixed position embedding excluded).
    pub fn num_params(&self) -> usize {
        let d = self.dim;
        let h = self.mlp_hidden();
        let norm = 2 * d;
        let block = norm + (d * 3 * d + 3 * d) + (d * d + d) + norm + (d * h + h) + (h * d + d);
        let patch = self.patch_dim() * d + d;
        let head = if self.num_classes > 0 {
            d * self.num_classes + self.num_classes
        } else {
            0
        };
        patch + d /* cls */ + self.depth * block + norm + head
    }

    /// Multiply-accumulates of one forward pass of one image: the linear
    /// layers (`12·d²` per token per block with mlp_ratio 4) plus attention's
    /// two `tokens² · d` products; norms, softmax and GELU are left out.
    pub fn macs(&self) -> usize {
        let t = self.num_patches() + 1;
        let d = self.dim;
        let per_block = t * (4 * d * d + 2 * d * self.mlp_hidden()) + 2 * t * t * d;
        self.num_patches() * self.patch_dim() * d + self.depth * per_block + d * self.num_classes
    }

    /// Bytes (f32) of the widest tensor of one image in a forward pass: the input
    /// `[channels, H, W]`, the attention scores `[heads, tokens, tokens]`, the fused QKV
    /// `[tokens, 3 dim]` or the MLP's hidden `[tokens, mlp_hidden]`. A batch on a GPU holds
    /// `batch ×` this in one buffer.
    pub fn widest_activation_bytes(&self) -> u64 {
        let t = self.num_patches() + 1;
        let values = [
            self.in_channels * self.image_size * self.image_size,
            self.heads * t * t,
            3 * t * self.dim,
            t * self.mlp_hidden(),
        ];
        4 * values.into_iter().max().unwrap_or(0) as u64
    }

    /// Builds the model with MAE/timm initialisation: Xavier-uniform linear
    /// and patch weights, zero biases, unit norms, class token ~ N(0, 0.02²),
    /// head ~ N(0, (2e-5)²), position embedding fixed to the 2-D sin-cos table.
    pub fn init(&self, device: &Device) -> Vit {
        self.validate()
            .unwrap_or_else(|e| panic!("VitConfig::init on an invalid config: {e}"));
        let d = self.dim;
        let blocks = (0..self.depth)
            .map(|i| {
                let rate = if self.depth > 1 {
                    self.drop_path * i as f64 / (self.depth - 1) as f64
                } else {
                    self.drop_path
                };
                Block {
                    norm1: layer_norm(d, device),
                    attn: Attention {
                        qkv: xavier_linear(d, 3 * d, device),
                        proj: xavier_linear(d, d, device),
                        heads: self.heads,
                    },
                    norm2: layer_norm(d, device),
                    mlp: Mlp {
                        fc1: xavier_linear(d, self.mlp_hidden(), device),
                        fc2: xavier_linear(self.mlp_hidden(), d, device),
                    },
                    drop_path: rate,
                }
            })
            .collect();
        let patch_dim = self.patch_dim();
        let bound = (6.0 / (patch_dim + d) as f64).sqrt();
        let pos = sincos_pos_embed_2d(d, self.grid_size(), true);
        let (norm, fc_norm) = match self.global_pool {
            GlobalPool::Cls => (Some(layer_norm(d, device)), None),
            GlobalPool::Mean => (None, Some(layer_norm(d, device))),
        };
        let head = (self.num_classes > 0).then(|| {
            let mut head = LinearConfig::new(d, self.num_classes)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 2e-5,
                })
                .init(device);
            head.bias = Some(Param::from_tensor(Tensor::zeros(
                [self.num_classes],
                device,
            )));
            head
        });
        Vit {
            patch_embed: PatchEmbed {
                proj: PatchProjection {
                    weight: Param::from_tensor(Tensor::random(
                        [d, self.in_channels, self.patch_size, self.patch_size],
                        Distribution::Uniform(-bound, bound),
                        device,
                    )),
                    bias: Param::from_tensor(Tensor::zeros([d], device)),
                },
                patch_size: self.patch_size,
            },
            cls_token: Param::from_tensor(Tensor::random(
                [1, 1, d],
                Distribution::Normal(0.0, 0.02),
                device,
            )),
            pos_embed: Param::from_tensor(Tensor::from_data(
                TensorData::new(pos, [1, self.num_patches() + 1, d]),
                device,
            ))
            .set_require_grad(false),
            blocks,
            norm,
            fc_norm,
            head,
        }
    }
}

/// The fixed 2-D sin-cos position embedding of MAE
/// (`get_2d_sincos_pos_embed`), row-major `[(cls + grid²), dim]`.
///
/// For the patch at row `r`, column `c` (token `r·grid + c`, after the class
/// token's all-zero row when `cls_token`): the first `dim/2` values embed the
/// column `c`, the last `dim/2` the row `r`, each as
/// `[sin(p·ω_0) … sin(p·ω_{k-1}), cos(p·ω_0) … cos(p·ω_{k-1})]` with
/// `k = dim/4` and `ω_i = 1 / 10000^(i/k)`.
pub fn sincos_pos_embed_2d(dim: usize, grid: usize, cls_token: bool) -> Vec<f32> {
    assert!(
        dim % 4 == 0,
        "sin-cos embedding needs dim % 4 == 0, got {dim}"
    );
    let k = dim / 4;
    let omega: Vec<f64> = (0..k)
        .map(|i| 1.0 / 10000f64.powf(i as f64 / k as f64))
        .collect();
    let mut out = Vec::with_capacity((grid * grid + cls_token as usize) * dim);
    if cls_token {
        out.extend(std::iter::repeat_n(0.0, dim));
    }
    for r in 0..grid {
        for c in 0..grid {
            for pos in [c as f64, r as f64] {
                out.extend(omega.iter().map(|w| (pos * w).sin() as f32));
                out.extend(omega.iter().map(|w| (pos * w).cos() as f32));
            }
        }
    }
    out
}

/// The vision Transformer. See the module documentation.
#[derive(Module, Debug)]
pub struct Vit {
    pub patch_embed: PatchEmbed,
    /// `[1, 1, dim]`
    pub cls_token: Param<Tensor<3>>,
    /// `[1, 1 + patches, dim]`, fixed (no gradient): the class token's row is zero.
    pub pos_embed: Param<Tensor<3>>,
    pub blocks: Vec<Block>,
    /// Final norm of the token sequence (`GlobalPool::Cls` and MAE encoders).
    pub norm: Option<LayerNorm>,
    /// Norm of the mean-pooled feature (`GlobalPool::Mean`).
    pub fc_norm: Option<LayerNorm>,
    /// `dim -> num_classes`; absent in an encoder.
    pub head: Option<Linear>,
}

/// Patch embedding: a `patch_size`-strided `patch_size`-wide convolution,
/// computed as patchify + matrix product.
#[derive(Module, Debug)]
pub struct PatchEmbed {
    pub proj: PatchProjection,
    pub patch_size: usize,
}

/// The weights of timm's `patch_embed.proj` convolution.
#[derive(Module, Debug)]
pub struct PatchProjection {
    /// `[dim, in_channels, patch, patch]` (torch Conv2d layout)
    pub weight: Param<Tensor<4>>,
    /// `[dim]`
    pub bias: Param<Tensor<1>>,
}

/// A pre-norm Transformer block: `x + attn(norm1(x))`, then `x + mlp(norm2(x))`,
/// each branch dropped per sample with probability `drop_path` in training.
#[derive(Module, Debug)]
pub struct Block {
    pub norm1: LayerNorm,
    pub attn: Attention,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
    pub drop_path: f64,
}

/// Multi-head self-attention with one fused `qkv` projection (timm layout:
/// output features ordered `[q | k | v]`, each `[head0 | head1 | …]`).
#[derive(Module, Debug)]
pub struct Attention {
    pub qkv: Linear,
    pub proj: Linear,
    pub heads: usize,
}

/// Two-layer MLP with exact (erf) GELU.
#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl PatchEmbed {
    /// `images: [batch, channels, H, W]` → `[batch, patches, dim]`
    /// (patches in row-major order).
    pub fn forward(&self, images: Tensor<4>) -> Tensor<3> {
        let [dim, c, p, _] = self.proj.weight.dims();
        // Reorder the conv kernel to patchify's (row, col, channel) order so
        // that the strided convolution is one matrix product.
        let kernel = self
            .proj
            .weight
            .val()
            .permute([0, 2, 3, 1])
            .reshape([dim, p * p * c])
            .transpose();
        let patches = patchify(images, self.patch_size);
        patches.matmul(kernel.unsqueeze()) + self.proj.bias.val().unsqueeze()
    }
}

impl Attention {
    /// `x: [batch, tokens, dim]` → `[batch, tokens, dim]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let hd = d / self.heads;
        let qkv = linear_tokens(&self.qkv, x);
        let split = |i: usize| {
            qkv.clone()
                .narrow(2, i * d, d)
                .reshape([b, t, self.heads, hd])
                .swap_dims(1, 2)
        };
        // [batch, heads, tokens, head_dim]; scale 1/sqrt(head_dim)
        let out = attention(
            split(0),
            split(1),
            split(2),
            None,
            None,
            AttentionModuleOptions::default(),
        );
        linear_tokens(&self.proj, out.swap_dims(1, 2).reshape([b, t, d]))
    }
}

impl Mlp {
    /// `x: [batch, tokens, dim]` → `[batch, tokens, dim]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        linear_tokens(&self.fc2, gelu(linear_tokens(&self.fc1, x)))
    }
}

/// `linear` on every token of `x: [batch, tokens, d_in]` as one matrix product
/// `[batch · tokens, d_in] × [d_in, d_out]` (a 3-D `Linear::forward` is a batched product
/// of `batch` small ones, several times slower on the CPU backend).
fn linear_tokens(linear: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [b, t, d] = x.dims();
    let y = linear.forward(x.reshape([b * t, d]));
    let [_, d_out] = y.dims();
    y.reshape([b, t, d_out])
}

impl Block {
    /// `x: [batch, tokens, dim]` → `[batch, tokens, dim]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let y = self.attn.forward(self.norm1.forward(x.clone()));
        let x = x + drop_path(y, self.drop_path);
        let y = self.mlp.forward(self.norm2.forward(x.clone()));
        x + drop_path(y, self.drop_path)
    }
}

/// Stochastic depth: zeroes the whole residual branch of a sample with
/// probability `rate` and scales the kept ones by `1/(1-rate)`. Identity unless
/// the tensor is on an autodiff (training) device.
///
/// `branch: [batch, tokens, dim]` → same shape.
fn drop_path(branch: Tensor<3>, rate: f64) -> Tensor<3> {
    if rate <= 0.0 || !branch.device().is_autodiff() {
        return branch;
    }
    let [b, _, _] = branch.dims();
    let keep = 1.0 - rate;
    let mask = Tensor::<3>::random([b, 1, 1], Distribution::Bernoulli(keep), &branch.device());
    branch * mask.div_scalar(keep)
}

/// MAE's `patchify`: `images: [batch, channels, H, W]` → `[batch, patches,
/// patch² · channels]`, patches row-major, each flattened in (row, column,
/// channel) order.
pub fn patchify(images: Tensor<4>, patch: usize) -> Tensor<3> {
    let [b, c, h, w] = images.dims();
    let (gh, gw) = (h / patch, w / patch);
    images
        .reshape([b, c, gh, patch, gw, patch])
        .permute([0, 2, 4, 3, 5, 1])
        .reshape([b, gh * gw, patch * patch * c])
}

/// Inverse of [`patchify`]: `patches: [batch, grid², patch² · channels]` →
/// `[batch, channels, grid·patch, grid·patch]`.
pub fn unpatchify(patches: Tensor<3>, patch: usize, channels: usize) -> Tensor<4> {
    let [b, n, _] = patches.dims();
    let g = (n as f64).sqrt().round() as usize;
    assert_eq!(g * g, n, "unpatchify needs a square grid, got {n} patches");
    patches
        .reshape([b, g, g, patch, patch, channels])
        .permute([0, 5, 1, 3, 2, 4])
        .reshape([b, channels, g * patch, g * patch])
}

impl Vit {
    /// The configuration this model was built from (shape only: `drop_path`
    /// is read back from the blocks, `num_classes`/`global_pool` from the head
    /// and norms).
    pub fn config(&self) -> VitConfig {
        let [dim, c, p, _] = self.patch_embed.proj.weight.dims();
        let [_, tokens, _] = self.pos_embed.dims();
        let grid = ((tokens - 1) as f64).sqrt().round() as usize;
        let hidden = self.blocks[0].mlp.fc1.weight.dims()[1];
        VitConfig::new()
            .with_image_size(grid * p)
            .with_patch_size(p)
            .with_in_channels(c)
            .with_dim(dim)
            .with_depth(self.blocks.len())
            .with_heads(self.blocks[0].attn.heads)
            .with_mlp_ratio(hidden as f64 / dim as f64)
            .with_drop_path(self.blocks.last().map(|b| b.drop_path).unwrap_or(0.0))
            .with_num_classes(self.head.as_ref().map(|h| h.weight.dims()[1]).unwrap_or(0))
            .with_global_pool(if self.fc_norm.is_some() {
                GlobalPool::Mean
            } else {
                GlobalPool::Cls
            })
    }

    /// MAE's `patchify` with this model's patch size:
    /// `images: [batch, channels, H, W]` → `[batch, patches, patch² · channels]`.
    pub fn patchify(&self, images: Tensor<4>) -> Tensor<3> {
        patchify(images, self.patch_embed.patch_size)
    }

    /// Patch tokens with their position embedding, no class token:
    /// `images: [batch, channels, H, W]` → `[batch, patches, dim]`.
    pub fn embed_patches(&self, images: Tensor<4>) -> Tensor<3> {
        let [_, t, d] = self.pos_embed.dims();
        let pos = self.pos_embed.val().narrow(1, 1, t - 1);
        let _ = d;
        self.patch_embed.forward(images) + pos
    }

    /// Prepends the class token (plus its position embedding, zero for sin-cos):
    /// `tokens: [batch, n, dim]` → `[batch, 1 + n, dim]`.
    pub fn prepend_cls(&self, tokens: Tensor<3>) -> Tensor<3> {
        let [b, _, d] = tokens.dims();
        let cls = self.cls_token.val() + self.pos_embed.val().narrow(1, 0, 1);
        Tensor::cat(vec![cls.expand([b, 1, d]), tokens], 1)
    }

    /// The blocks, then the final `norm` if this model has one:
    /// `tokens: [batch, n, dim]` → `[batch, n, dim]`.
    pub fn forward_blocks(&self, tokens: Tensor<3>) -> Tensor<3> {
        let x = self.blocks.iter().fold(tokens, |x, block| block.forward(x));
        match &self.norm {
            Some(norm) => norm.forward(x),
            None => x,
        }
    }

    /// `images: [batch, channels, H, W]` → tokens `[batch, 1 + patches, dim]`
    /// (class token first).
    pub fn forward_features(&self, images: Tensor<4>) -> Tensor<3> {
        self.forward_blocks(self.prepend_cls(self.embed_patches(images)))
    }

    /// The pooled feature: `tokens: [batch, 1 + patches, dim]` → `[batch, dim]`
    /// (class token, or `fc_norm` of the mean patch token).
    pub fn pool(&self, tokens: Tensor<3>) -> Tensor<2> {
        let [b, t, d] = tokens.dims();
        match &self.fc_norm {
            Some(fc_norm) => {
                fc_norm.forward(tokens.narrow(1, 1, t - 1).mean_dim(1).reshape([b, d]))
            }
            None => tokens.narrow(1, 0, 1).reshape([b, d]),
        }
    }

    /// `pooled: [batch, dim]` → logits `[batch, num_classes]`.
    ///
    /// # Panics
    /// If the model has no head (`num_classes == 0`).
    pub fn forward_head(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.head
            .as_ref()
            .expect("forward_head on a ViT without a head (num_classes = 0)")
            .forward(pooled)
    }

    /// `images: [batch, channels, H, W]` → logits `[batch, num_classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.pool(self.forward_features(images)))
    }

    /// The weights under timm's names, in torch layout (`Linear.weight`
    /// `[out, in]`), as `name -> (shape, values)`.
    pub fn state_dict(&self) -> StateDict {
        let mut sd = StateDict::new();
        let pe = &self.patch_embed.proj;
        sd.put("patch_embed.proj.weight", pe.weight.val());
        sd.put("patch_embed.proj.bias", pe.bias.val());
        sd.put("cls_token", self.cls_token.val());
        sd.put("pos_embed", self.pos_embed.val());
        for (i, b) in self.blocks.iter().enumerate() {
            sd.put_block(&format!("blocks.{i}"), b);
        }
        if let Some(n) = &self.norm {
            sd.put_norm("norm", n);
        }
        if let Some(n) = &self.fc_norm {
            sd.put_norm("fc_norm", n);
        }
        if let Some(h) = &self.head {
            sd.put_linear("head", h);
        }
        sd
    }

    /// Builds a model of `config` from a state dict in [`Vit::state_dict`]'s
    /// layout. Every tensor the model needs must be present with the right
    /// shape; tensors the model does not use are ignored, so an MAE encoder
    /// (which has `norm`) loads into a mean-pooling classifier (which has
    /// `fc_norm` and `head` instead): those two are left freshly initialised
    /// when `allow_fresh` names their prefix (e.g. `["fc_norm", "head"]`).
    pub fn from_state_dict(
        config: &VitConfig,
        sd: &StateDict,
        allow_fresh: &[&str],
        device: &Device,
    ) -> Result<Vit, VitError> {
        config.validate()?;
        let mut m = config.init(device);
        let fresh = |name: &str| allow_fresh.iter().any(|p| name.starts_with(p));
        let pe = &mut m.patch_embed.proj;
        pe.weight =
            Param::from_tensor(sd.take("patch_embed.proj.weight", pe.weight.dims(), device)?);
        pe.bias = Param::from_tensor(sd.take("patch_embed.proj.bias", pe.bias.dims(), device)?);
        m.cls_token = Param::from_tensor(sd.take("cls_token", m.cls_token.dims(), device)?);
        m.pos_embed = Param::from_tensor(sd.take("pos_embed", m.pos_embed.dims(), device)?)
            .set_require_grad(false);
        for (i, b) in m.blocks.iter_mut().enumerate() {
            sd.load_block(&format!("blocks.{i}"), b, device)?;
        }
        for (name, slot) in [("norm", &mut m.norm), ("fc_norm", &mut m.fc_norm)] {
            if let Some(n) = slot.as_mut()
                && !(fresh(name) && !sd.contains(&format!("{name}.weight")))
            {
                sd.load_norm(name, n, device)?;
            }
        }
        if let Some(h) = m.head.as_mut()
            && !(fresh("head") && !sd.contains("head.weight"))
        {
            sd.load_linear("head", h, device)?;
        }
        Ok(m)
    }
}

/// Weights by name, as a torch `state_dict` holds them: `name -> (shape,
/// row-major f32 values)`. The bridge between modules and safetensors files.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateDict {
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl StateDict {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Stores a tensor (read back to the host).
    pub fn put<const D: usize>(&mut self, name: &str, t: Tensor<D>) {
        let shape = t.dims().to_vec();
        let values = t
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 data after convert");
        self.tensors.insert(name.to_string(), (shape, values));
    }

    /// Stores `name.weight` (torch layout `[out, in]`) and `name.bias`.
    pub fn put_linear(&mut self, name: &str, l: &Linear) {
        self.put(&format!("{name}.weight"), l.weight.val().transpose());
        if let Some(b) = &l.bias {
            self.put(&format!("{name}.bias"), b.val());
        }
    }

    /// Stores a Transformer block under timm's names below `prefix`
    /// (`prefix.norm1`, `prefix.attn.qkv`, … `prefix.mlp.fc2`).
    pub fn put_block(&mut self, prefix: &str, b: &Block) {
        self.put_norm(&format!("{prefix}.norm1"), &b.norm1);
        self.put_linear(&format!("{prefix}.attn.qkv"), &b.attn.qkv);
        self.put_linear(&format!("{prefix}.attn.proj"), &b.attn.proj);
        self.put_norm(&format!("{prefix}.norm2"), &b.norm2);
        self.put_linear(&format!("{prefix}.mlp.fc1"), &b.mlp.fc1);
        self.put_linear(&format!("{prefix}.mlp.fc2"), &b.mlp.fc2);
    }

    /// Loads the block [`put_block`](Self::put_block) stored below `prefix` into `b`.
    pub fn load_block(&self, prefix: &str, b: &mut Block, device: &Device) -> Result<(), VitError> {
        self.load_norm(&format!("{prefix}.norm1"), &mut b.norm1, device)?;
        self.load_linear(&format!("{prefix}.attn.qkv"), &mut b.attn.qkv, device)?;
        self.load_linear(&format!("{prefix}.attn.proj"), &mut b.attn.proj, device)?;
        self.load_norm(&format!("{prefix}.norm2"), &mut b.norm2, device)?;
        self.load_linear(&format!("{prefix}.mlp.fc1"), &mut b.mlp.fc1, device)?;
        self.load_linear(&format!("{prefix}.mlp.fc2"), &mut b.mlp.fc2, device)
    }

    /// Stores `name.weight` (γ) and `name.bias` (β).
    pub fn put_norm(&mut self, name: &str, n: &LayerNorm) {
        self.put(&format!("{name}.weight"), n.gamma.val());
        if let Some(b) = &n.beta {
            self.put(&format!("{name}.bias"), b.val());
        }
    }

    /// The tensor `name`, checked against `expected` shape, on `device`.
    pub fn take<const D: usize>(
        &self,
        name: &str,
        expected: [usize; D],
        device: &Device,
    ) -> Result<Tensor<D>, VitError> {
        let (shape, values) = self.tensors.get(name).ok_or_else(|| VitError::Missing {
            name: name.to_string(),
        })?;
        if shape.as_slice() != expected.as_slice() {
            return Err(VitError::Shape {
                name: name.to_string(),
                expected: expected.to_vec(),
                found: shape.clone(),
            });
        }
        Ok(Tensor::from_data(
            TensorData::new(values.clone(), expected),
            device,
        ))
    }

    /// Loads `name.weight` (`[out, in]`) and `name.bias` into `l`.
    pub fn load_linear(&self, name: &str, l: &mut Linear, device: &Device) -> Result<(), VitError> {
        let [i, o] = l.weight.dims();
        let w: Tensor<2> = self.take(&format!("{name}.weight"), [o, i], device)?;
        l.weight = Param::from_tensor(w.transpose());
        if l.bias.is_some() {
            l.bias = Some(Param::from_tensor(self.take(
                &format!("{name}.bias"),
                [o],
                device,
            )?));
        }
        Ok(())
    }

    /// Loads `name.weight` (γ) and `name.bias` (β) into `n`.
    pub fn load_norm(
        &self,
        name: &str,
        n: &mut LayerNorm,
        device: &Device,
    ) -> Result<(), VitError> {
        let [d] = n.gamma.dims();
        n.gamma = Param::from_tensor(self.take(&format!("{name}.weight"), [d], device)?);
        if n.beta.is_some() {
            n.beta = Some(Param::from_tensor(self.take(
                &format!("{name}.bias"),
                [d],
                device,
            )?));
        }
        Ok(())
    }

    /// The entries whose names start with `prefix.`, with the prefix removed.
    pub fn sub(&self, prefix: &str) -> StateDict {
        let p = format!("{prefix}.");
        StateDict {
            tensors: self
                .tensors
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&p).map(|s| (s.to_string(), v.clone())))
                .collect(),
        }
    }

    /// Adds every entry of `other` under `prefix.`.
    pub fn extend_prefixed(&mut self, prefix: &str, other: StateDict) {
        for (k, v) in other.tensors {
            self.tensors.insert(format!("{prefix}.{k}"), v);
        }
    }
}

/// LayerNorm with timm's ViT epsilon (1e-6).
pub fn layer_norm(dim: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(dim).with_epsilon(1e-6).init(device)
}

/// A linear layer with Xavier-uniform weights and zero bias (MAE's init).
pub fn xavier_linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    let mut l = LinearConfig::new(d_in, d_out)
        .with_initializer(Initializer::XavierUniform { gain: 1.0 })
        .init(device);
    l.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device::flex()
    }

    #[test]
    fn sincos_embedding_matches_hand_computed_values() {
        // dim 8 → k = 2 frequencies: ω = [1, 1/100].
        let e = sincos_pos_embed_2d(8, 2, true);
        assert_eq!(e.len(), 5 * 8);
        assert!(e[..8].iter().all(|&v| v == 0.0), "class token row is zero");
        // token 1 = (row 0, col 0): sin(0)=0, cos(0)=1 for both halves.
        assert_eq!(&e[8..16], &[0., 0., 1., 1., 0., 0., 1., 1.]);
        // token 2 = (row 0, col 1): first half embeds the column (1), second the row (0).
        let t = &e[16..24];
        let expect = [
            1f64.sin(),
            0.01f64.sin(),
            1f64.cos(),
            0.01f64.cos(),
            0.0,
            0.0,
            1.0,
            1.0,
        ];
        for (a, b) in t.iter().zip(expect) {
            assert!((*a as f64 - b).abs() < 1e-6, "{t:?} vs {expect:?}");
        }
        // token 3 = (row 1, col 0): halves swap roles.
        assert_eq!(&e[24..28], &[0., 0., 1., 1.]);
        assert!((e[28] as f64 - 1f64.sin()).abs() < 1e-6);
    }

    #[test]
    fn patchify_orders_row_col_channel_and_unpatchify_inverts_it() {
        let d = device();
        // 1 image, 2 channels, 4x4, patch 2: value = c*100 + y*10 + x.
        let vals: Vec<f32> = (0..2)
            .flat_map(|c| {
                (0..4).flat_map(move |y| (0..4).map(move |x| (c * 100 + y * 10 + x) as f32))
            })
            .collect();
        let img = Tensor::<4>::from_data(TensorData::new(vals.clone(), [1, 2, 4, 4]), &d);
        let p = patchify(img.clone(), 2);
        assert_eq!(p.dims(), [1, 4, 8]);
        let pv = p.clone().into_data().try_into_vec::<f32>().unwrap();
        // patch 1 = row 0, col 1: pixels (0,2),(0,3),(1,2),(1,3), channels interleaved.
        assert_eq!(&pv[8..16], &[2., 102., 3., 103., 12., 112., 13., 113.]);
        let back = unpatchify(p, 2, 2)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(back, vals);
    }

    #[test]
    fn patch_embedding_equals_strided_convolution() {
        let d = device();
        let cfg = VitConfig::new()
            .with_image_size(8)
            .with_patch_size(4)
            .with_dim(8)
            .with_depth(1)
            .with_heads(2);
        let m = cfg.init(&d);
        let img = Tensor::<4>::random([2, 3, 8, 8], Distribution::Normal(0., 1.), &d);
        let ours = m.patch_embed.forward(img.clone());
        let conv = burn::tensor::module::conv2d(
            img,
            m.patch_embed.proj.weight.val(),
            Some(m.patch_embed.proj.bias.val()),
            burn::tensor::ops::ConvOptions::new([4, 4], [0, 0], [1, 1], 1),
        ); // [2, 8, 2, 2]
        let conv = conv.reshape([2, 8, 4]).swap_dims(1, 2);
        ours.into_data()
            .assert_approx_eq::<f32>(&conv.into_data(), burn::tensor::Tolerance::absolute(1e-4));
    }

    #[test]
    fn forward_shapes_and_pooling_modes() {
        let d = device();
        for pool in [GlobalPool::Cls, GlobalPool::Mean] {
            let cfg = VitConfig::new()
                .with_image_size(16)
                .with_patch_size(4)
                .with_dim(16)
                .with_depth(2)
                .with_heads(2)
                .with_num_classes(5)
                .with_global_pool(pool);
            let m = cfg.init(&d);
            assert_eq!(m.config(), cfg);
            let img = Tensor::<4>::random([3, 3, 16, 16], Distribution::Default, &d);
            let tokens = m.forward_features(img.clone());
            assert_eq!(tokens.dims(), [3, 17, 16]);
            assert_eq!(m.pool(tokens).dims(), [3, 16]);
            assert_eq!(m.forward(img).dims(), [3, 5]);
            assert_eq!(
                m.num_params(),
                cfg.num_params() + 17 * 16,
                "+ fixed pos_embed"
            );
        }
    }

    #[test]
    fn state_dict_round_trip_reproduces_the_model() {
        let d = device();
        let cfg = VitConfig::new()
            .with_image_size(16)
            .with_patch_size(4)
            .with_dim(16)
            .with_depth(2)
            .with_heads(2)
            .with_num_classes(3);
        let m = cfg.init(&d);
        let sd = m.state_dict();
        assert_eq!(sd.tensors["blocks.1.attn.qkv.weight"].0, vec![48, 16]);
        assert_eq!(sd.tensors["head.weight"].0, vec![3, 16]);
        let m2 = Vit::from_state_dict(&cfg, &sd, &[], &d).unwrap();
        let img = Tensor::<4>::random([2, 3, 16, 16], Distribution::Default, &d);
        m.forward(img.clone()).into_data().assert_approx_eq::<f32>(
            &m2.forward(img).into_data(),
            burn::tensor::Tolerance::absolute(1e-6),
        );
        let mut broken = sd.clone();
        broken.tensors.remove("blocks.0.mlp.fc2.bias");
        let err = Vit::from_state_dict(&cfg, &broken, &[], &d).unwrap_err();
        assert!(err.to_string().contains("blocks.0.mlp.fc2.bias"), "{err}");
    }

    #[test]
    fn encoder_weights_load_into_a_mean_pool_classifier() {
        let d = device();
        let enc_cfg = VitConfig::new()
            .with_image_size(16)
            .with_patch_size(4)
            .with_dim(16)
            .with_depth(1)
            .with_heads(2);
        let sd = enc_cfg.init(&d).state_dict();
        let cls_cfg = enc_cfg
            .clone()
            .with_num_classes(4)
            .with_global_pool(GlobalPool::Mean);
        assert!(Vit::from_state_dict(&cls_cfg, &sd, &[], &d).is_err());
        let m = Vit::from_state_dict(&cls_cfg, &sd, &["fc_norm", "head"], &d).unwrap();
        assert!(m.norm.is_none() && m.fc_norm.is_some());
    }

    #[test]
    fn presets_are_valid_and_documented_sizes_hold() {
        for name in VitConfig::PRESETS {
            let c = VitConfig::preset(name).unwrap();
            c.validate().unwrap();
        }
        // The figures quoted in the preset doc comments.
        let m = |c: VitConfig| (c.num_params() as f64 / 1e6, c.macs() as f64 / 1e9);
        for (c, params, gmacs) in [
            (VitConfig::tiny(), 5.49, 1.25),
            (VitConfig::small(), 21.6, 4.60),
            (VitConfig::mini(), 3.58, 0.244),
            (VitConfig::micro(), 2.71, 0.103),
            (VitConfig::mini64(), 3.60, 0.245),
            (VitConfig::small112(), 21.4, 4.56),
        ] {
            let (p, g) = m(c.clone());
            assert!(
                (p - params).abs() < 0.006 * params && (g - gmacs).abs() < 0.006 * gmacs,
                "{c:?}: {p} M params, {g} GMACs"
            );
        }
    }
}
