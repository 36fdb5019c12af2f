//! AdamW set up the way MAE trains ViTs: no weight decay on biases, norms and
//! tokens, layer-wise learning-rate decay, and gradient clipping by the global
//! norm (torch's `clip_grad_norm_`), all over burn's `ModuleOptimizer`.

use burn::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;

/// One learnable parameter of a module.
#[derive(Clone, Debug)]
pub struct ParamInfo {
    pub id: ParamId,
    /// Dotted path, e.g. `vit.blocks.3.attn.qkv.weight`.
    pub path: String,
    pub shape: Vec<usize>,
}

/// The parameters of `module` that take gradients, in visiting order.
pub fn trainable_params<M: Module>(module: &M) -> Vec<ParamInfo> {
    struct Collect {
        stack: Vec<String>,
        out: Vec<ParamInfo>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.stack.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.is_require_grad() {
                self.out.push(ParamInfo {
                    id: param.id,
                    path: self.stack.join("."),
                    shape: param.dims().to_vec(),
                });
            }
        }
    }
    let mut c = Collect {
        stack: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut c);
    c.out
}

/// Whether a parameter is exempt from weight decay: vectors (biases, norm
/// scales and shifts) and the class / mask tokens (timm's `no_weight_decay`).
pub fn exempt_from_decay(p: &ParamInfo) -> bool {
    p.shape.len() <= 1 || p.path.ends_with("cls_token") || p.path.ends_with("mask_token")
}

/// AdamW options.
#[derive(Clone, Debug)]
pub struct AdamWOptions {
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
}

/// AdamW over `params`, with weight decay only on the parameters that
/// [`exempt_from_decay`] does not exempt. `epsilon` 1e-8 as torch.
pub fn adamw(params: &[ParamInfo], options: &AdamWOptions) -> ModuleOptimizer {
    let config = |wd: f64| {
        AdamWConfig::new()
            .with_beta_1(options.beta1 as f32)
            .with_beta_2(options.beta2 as f32)
            .with_epsilon(1e-8)
            .with_weight_decay(wd as f32)
    };
    let exempt: Vec<ParamId> = params
        .iter()
        .filter(|p| exempt_from_decay(p))
        .map(|p| p.id)
        .collect();
    ModuleOptimizer::from(config(options.weight_decay).build()).with_group(
        ParamGroup::from_ids(exempt),
        config(0.0).build(),
        None,
    )
}

/// Learning-rate multipliers per parameter group.
#[derive(Clone, Debug, Default)]
pub struct LrGroups {
    groups: Vec<(ParamGroup, f64)>,
}

impl LrGroups {
    /// Every parameter at the base rate.
    pub fn uniform() -> Self {
        Self::default()
    }

    /// Layer-wise decay: the parameters in layer `id` (see
    /// [`crate::schedule::layer_decay_scales`]) get `scales[id]`. `layer_of`
    /// maps a parameter path to its layer id.
    pub fn layer_wise(
        params: &[ParamInfo],
        scales: &[f64],
        layer_of: impl Fn(&str) -> usize,
    ) -> Self {
        let mut by_layer: Vec<Vec<ParamId>> = vec![Vec::new(); scales.len()];
        for p in params {
            by_layer[layer_of(&p.path).min(scales.len() - 1)].push(p.id);
        }
        Self {
            groups: by_layer
                .into_iter()
                .zip(scales)
                .filter(|(ids, s)| !ids.is_empty() && **s != 1.0)
                .map(|(ids, s)| (ParamGroup::from_ids(ids), *s))
                .collect(),
        }
    }

    /// The per-parameter rates for one step at base rate `lr`.
    pub fn at(&self, lr: f64) -> ModuleLearningRate {
        let mut scheduler = ModuleLrScheduler::new(lr);
        for (group, scale) in &self.groups {
            scheduler = scheduler.with_group(group.clone(), lr * scale);
        }
        scheduler.step()
    }
}

/// Layer id of a ViT parameter path for layer-wise decay: 0 for the patch
/// embedding and tokens, `i + 1` for `blocks.i`, `depth + 1` for the rest.
pub fn vit_layer_id(path: &str, depth: usize) -> usize {
    if path.contains("patch_embed") || path.contains("cls_token") || path.contains("pos_embed") {
        return 0;
    }
    if let Some(rest) = path.split("blocks.").nth(1)
        && let Some(i) = rest.split('.').next().and_then(|s| s.parse::<usize>().ok())
    {
        return i + 1;
    }
    depth + 1
}

/// Scales all gradients by `min(1, max_norm / ‖g‖)`, `‖g‖` the L2 norm of
/// all of them together (torch's `clip_grad_norm_`). The scale stays on the
/// device: nothing is read back.
pub fn clip_grad_norm<M: Module>(
    module: &M,
    grads: GradientsParams,
    max_norm: f64,
) -> GradientsParams {
    struct SumSquares<'a> {
        grads: &'a GradientsParams,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let s = g.square().sum();
                self.total = Some(match self.total.take() {
                    Some(t) => t + s,
                    None => s,
                });
            }
        }
    }
    struct Scale {
        grads: GradientsParams,
        factor: Tensor<1>,
    }
    impl ModuleVisitor for Scale {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                let f = self.factor.clone().to_device(&g.device());
                self.grads.register(param.id, g * f.unsqueeze());
            }
        }
    }
    let mut sum = SumSquares {
        grads: &grads,
        total: None,
    };
    module.visit(&mut sum);
    let Some(total) = sum.total else {
        return grads;
    };
    let factor = (total.sqrt() + 1e-6)
        .recip()
        .mul_scalar(max_norm)
        .clamp_max(1.0);
    let mut scale = Scale { grads, factor };
    module.visit(&mut scale);
    scale.grads
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn layer_ids_follow_the_block_index() {
        assert_eq!(vit_layer_id("vit.patch_embed.proj.weight", 4), 0);
        assert_eq!(vit_layer_id("vit.cls_token", 4), 0);
        assert_eq!(vit_layer_id("vit.blocks.0.attn.qkv.weight", 4), 1);
        assert_eq!(vit_layer_id("vit.blocks.3.mlp.fc2.bias", 4), 4);
        assert_eq!(vit_layer_id("vit.fc_norm.gamma", 4), 5);
        assert_eq!(vit_layer_id("proj.fc1.weight", 4), 5);
    }

    #[derive(Module, Debug)]
    struct Two {
        a: Param<Tensor<1>>,
        b: Param<Tensor<2>>,
    }

    #[test]
    fn global_norm_clipping_scales_all_gradients_together() {
        let device = Device::flex().autodiff();
        let m = Two {
            a: Param::from_tensor(Tensor::zeros([2], &device)),
            b: Param::from_tensor(Tensor::zeros([1, 1], &device)),
        };
        // loss = 3·a0 + 4·b00 → gradients (3, 0) and (4): global norm 5.
        let w = Tensor::<1>::from_data(TensorData::new(vec![3.0f32, 0.0], [2]), &device);
        let loss = (m.a.val() * w).sum() + m.b.val().reshape([1]).mul_scalar(4.0);
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        let clipped = clip_grad_norm(&m, grads, 1.0);
        let ga = clipped
            .get::<1>(m.a.id)
            .unwrap()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let gb = clipped
            .get::<2>(m.b.id)
            .unwrap()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert!((ga[0] - 0.6).abs() < 1e-5 && ga[1] == 0.0 && (gb[0] - 0.8).abs() < 1e-5);
        // Below the threshold nothing changes.
        let loss = (m.a.val()
            * Tensor::<1>::from_data(TensorData::new(vec![0.3f32, 0.4], [2]), &device))
        .sum();
        let grads = clip_grad_norm(&m, GradientsParams::from_grads(loss.backward(), &m), 1.0);
        let ga = grads
            .get::<1>(m.a.id)
            .unwrap()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert!((ga[0] - 0.3).abs() < 1e-5 && (ga[1] - 0.4).abs() < 1e-5);
    }

    #[test]
    fn decay_exemptions_cover_vectors_and_tokens() {
        let p = |path: &str, shape: Vec<usize>| ParamInfo {
            id: ParamId::new(),
            path: path.into(),
            shape,
        };
        assert!(exempt_from_decay(&p("vit.blocks.0.norm1.gamma", vec![8])));
        assert!(exempt_from_decay(&p("vit.cls_token", vec![1, 1, 8])));
        assert!(!exempt_from_decay(&p(
            "vit.blocks.0.attn.qkv.weight",
            vec![8, 24]
        )));
    }
}
