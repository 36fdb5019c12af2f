//! Learning-rate schedules as pure functions of the step, so that a resumed run
//! gets exactly the rate the uninterrupted run would have had.

/// Linear warm-up from 0 to `base_lr` over `warmup_steps`, then half-cosine
/// decay to `min_lr` at `total_steps` (MAE's `adjust_learning_rate`, per step).
///
/// `step` counts optimizer steps from 0; the rate for step `s` is
/// `base · (s+1)/warmup` during warm-up, then
/// `min + (base − min) · ½ (1 + cos(π · (s − warmup)/(total − warmup)))`.
pub fn warmup_cosine(
    step: usize,
    total_steps: usize,
    warmup_steps: usize,
    base_lr: f64,
    min_lr: f64,
) -> f64 {
    if step < warmup_steps {
        return base_lr * (step + 1) as f64 / warmup_steps as f64;
    }
    let span = total_steps.saturating_sub(warmup_steps).max(1);
    let progress = ((step - warmup_steps) as f64 / span as f64).min(1.0);
    min_lr + (base_lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// The learning-rate factor of a run that took over trained weights with a
/// fresh optimizer at step `from` (`None`: it did not): a linear ramp from
/// `1/steps` to 1 over `steps` steps, so that AdamW's new moments settle
/// before full-size updates.
pub fn rewarm_factor(step: usize, from: Option<usize>, steps: usize) -> f64 {
    match from {
        Some(from) if steps > 0 => ((step.saturating_sub(from) + 1) as f64 / steps as f64).min(1.0),
        _ => 1.0,
    }
}

/// Layer-wise learning-rate decay (BEiT / MAE fine-tuning): the learning-rate
/// multiplier of each layer id of a `depth`-block ViT, `decay^(depth + 1 − id)`.
///
/// Layer ids: 0 = patch embedding, class token, position embedding; `i + 1` =
/// block `i`; `depth + 1` = everything after the blocks (norms, head,
/// projection head), which keeps the full rate. `decay = 1` disables it.
pub fn layer_decay_scales(depth: usize, decay: f64) -> Vec<f64> {
    (0..=depth + 1)
        .map(|id| decay.powi((depth + 1 - id) as i32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_is_linear_then_cosine_reaches_the_floor() {
        let lr = |s| warmup_cosine(s, 110, 10, 1.0, 0.1);
        assert!((lr(0) - 0.1).abs() < 1e-12);
        assert!((lr(4) - 0.5).abs() < 1e-12);
        assert!((lr(9) - 1.0).abs() < 1e-12);
        assert!((lr(10) - 1.0).abs() < 1e-12, "cosine starts at the peak");
        // halfway through the decay: min + (base-min)/2
        assert!((lr(60) - 0.55).abs() < 1e-12);
        assert!((lr(110) - 0.1).abs() < 1e-12);
        assert!((lr(500) - 0.1).abs() < 1e-12, "stays at the floor");
    }

    #[test]
    fn a_continued_run_re_warms_linearly_from_its_first_step() {
        assert_eq!(rewarm_factor(500, None, 100), 1.0);
        assert_eq!(rewarm_factor(500, Some(500), 0), 1.0);
        assert!((rewarm_factor(500, Some(500), 100) - 0.01).abs() < 1e-12);
        assert!((rewarm_factor(549, Some(500), 100) - 0.5).abs() < 1e-12);
        assert_eq!(rewarm_factor(700, Some(500), 100), 1.0);
    }

    #[test]
    fn no_warmup_starts_at_the_base_rate() {
        assert!((warmup_cosine(0, 100, 0, 2.0, 0.0) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn layer_decay_gives_the_head_full_rate_and_the_embedding_the_least() {
        let s = layer_decay_scales(2, 0.5);
        assert_eq!(s, vec![0.125, 0.25, 0.5, 1.0]);
        assert!(layer_decay_scales(12, 1.0).iter().all(|&x| x == 1.0));
    }
}
