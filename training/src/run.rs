//! A training run's folder: options, resumable checkpoint, per-epoch metrics.
//!
//! ```text
//! <run>/options.json          the options the run was started with
//! <run>/checkpoint/           the last checkpoint, replaced as a whole:
//!     model.bpk               module weights (burnpack, keeps parameter ids)
//!     optim.bpk               optimizer state (keyed by parameter id)
//!     state.json              where training stands (TrainState)
//! <run>/metrics.csv           one row per finished epoch
//! ```
//!
//! A checkpoint is written into `checkpoint.new/` and swapped in by renames,
//! so a run killed at any moment leaves either the previous or the new
//! checkpoint complete (`checkpoint.old/` is used if the kill fell between
//! the two renames).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};

use crate::control::{LoopControl, Outcome};
use crate::device::DeviceChoice;

/// How one session of a run goes: where it runs and when it stops. Unlike the rest of a
/// run's options, these may change when the run is resumed.
#[derive(clap::Args, Clone, Debug, Serialize, Deserialize)]
pub struct SessionOptions {
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Stop (with a checkpoint) after this many steps in this session.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Minutes between checkpoints inside an epoch.
    #[arg(long, default_value_t = 10.0)]
    pub checkpoint_minutes: f64,
    /// Stop (with a checkpoint) after this many minutes of training in this session:
    /// one slice of a schedule longer than a machine is lent for.
    #[arg(long)]
    #[serde(default)]
    pub max_minutes: Option<f64>,
}

impl SessionOptions {
    /// The options' names in a run's `options.json`, for [`RunDir::open`]'s `may_change`.
    pub const NAMES: [&str; 4] = ["device", "max_steps", "checkpoint_minutes", "max_minutes"];

    /// The session's stopping and checkpointing rules; `stop` is raised by Ctrl-C.
    pub fn loop_control(&self, stop: Arc<AtomicBool>) -> LoopControl {
        LoopControl::new(
            stop,
            self.max_steps,
            Duration::from_secs_f64(self.checkpoint_minutes * 60.0),
        )
        .with_max_minutes(self.max_minutes)
    }
}

/// Where a run stands; saved with every checkpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// Finished epochs.
    pub epoch: usize,
    /// Batches already done in epoch `epoch` (0 at an epoch boundary).
    pub batch: usize,
    /// Optimizer steps since the start of the run.
    pub step: usize,
    /// Best validation metric so far and its epoch (fine-tuning).
    pub best_metric: Option<f64>,
    pub best_epoch: Option<usize>,
    /// Training seconds spent so far, all sessions together.
    pub seconds: f64,
    /// Metrics rows of the finished epochs (column → value).
    pub metrics: Vec<BTreeMap<String, f64>>,
    /// Running sums of the unfinished epoch (e.g. loss and batch count), so
    /// that a resumed epoch reports the mean over all its batches.
    #[serde(default)]
    pub epoch_sums: BTreeMap<String, f64>,
    /// Optimizer steps per epoch and training images of the run.
    #[serde(default)]
    pub steps_per_epoch: Option<usize>,
    #[serde(default)]
    pub train_images: Option<usize>,
    /// The step at which this run took over the weights of a shipped package
    /// (`pretrain --from`), with a fresh optimizer: the learning rate is
    /// re-warmed from there.
    #[serde(default)]
    pub continued_from_step: Option<usize>,
}

/// Paths of one run folder.
#[derive(Clone, Debug)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint")
    }

    pub fn options(&self) -> PathBuf {
        self.root.join("options.json")
    }

    pub fn metrics_csv(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }

    /// Creates the folder and records `options`, or, when the folder already
    /// holds a run, checks that it was started with the same options (so that
    /// re-running the same command resumes it). `options` is any
    /// serialisable struct; fields in `may_change` may differ.
    pub fn open<T: Serialize>(&self, options: &T, may_change: &[&str]) -> Result<()> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create run folder {}", self.root.display()))?;
        let new = serde_json::to_value(options)?;
        let path = self.options();
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let old: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", path.display()))?;
            let differences: Vec<String> = new
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| {
                    !may_change.contains(&k.as_str()) && old.get(k.as_str()) != Some(v)
                })
                .map(|(k, v)| {
                    format!(
                        "{k}: {} → {v}",
                        old.get(k.as_str()).unwrap_or(&serde_json::Value::Null)
                    )
                })
                .collect();
            if !differences.is_empty() && self.find_checkpoint().is_some() {
                bail!(
                    "run folder {} holds a run started with other options ({}); \
                     re-run its command to resume it, or choose another --out",
                    self.root.display(),
                    differences.join(", ")
                );
            }
        }
        std::fs::write(&path, serde_json::to_string_pretty(&new)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The complete checkpoint folder, if any.
    pub fn find_checkpoint(&self) -> Option<PathBuf> {
        let current = self.checkpoint();
        let old = self.root.join("checkpoint.old");
        [current, old]
            .into_iter()
            .find(|d| d.join("state.json").exists() && d.join("model.bpk").exists())
    }

    /// After each optimizer step: true when the session must stop now (Ctrl-C,
    /// `--max-steps`); otherwise writes the periodic checkpoint when one is due (the
    /// seconds of `speed` so far go to `state`, and `speed` restarts).
    pub fn after_step<M: Module>(
        &self,
        control: &mut LoopControl,
        module: &M,
        optim: &ModuleOptimizer,
        state: &mut TrainState,
        speed: &mut Throughput,
    ) -> Result<bool> {
        if control.step_and_check_stop() {
            return Ok(true);
        }
        if control.checkpoint_due() {
            state.seconds += speed.seconds();
            *speed = Throughput::start();
            self.save_checkpoint(module, optim, state)?;
        }
        Ok(false)
    }

    /// Ends a stopped session: writes the checkpoint and says how to resume.
    pub fn stop_here<M: Module>(
        &self,
        module: &M,
        optim: &ModuleOptimizer,
        state: &TrainState,
        epoch: usize,
    ) -> Result<Outcome> {
        self.save_checkpoint(module, optim, state)?;
        eprintln!(
            "stopped at epoch {} batch {} (step {}); checkpoint in {} — run the same command to resume",
            epoch + 1,
            state.batch,
            state.step,
            self.checkpoint().display()
        );
        Ok(Outcome::Stopped)
    }

    /// Writes module, optimizer and state as the new checkpoint.
    pub fn save_checkpoint<M: Module>(
        &self,
        module: &M,
        optim: &ModuleOptimizer,
        state: &TrainState,
    ) -> Result<()> {
        let new = self.root.join("checkpoint.new");
        let old = self.root.join("checkpoint.old");
        let current = self.checkpoint();
        if new.exists() {
            std::fs::remove_dir_all(&new)?;
        }
        std::fs::create_dir_all(&new)?;
        module
            .clone()
            .save_file(new.join("model.bpk"))
            .map_err(|e| {
                anyhow::anyhow!("cannot save {}: {e:?}", new.join("model.bpk").display())
            })?;
        optim.save(new.join("optim.bpk")).map_err(|e| {
            anyhow::anyhow!("cannot save {}: {e:?}", new.join("optim.bpk").display())
        })?;
        std::fs::write(new.join("state.json"), serde_json::to_string_pretty(state)?)?;
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        if current.exists() {
            std::fs::rename(&current, &old)?;
        }
        std::fs::rename(&new, &current)?;
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        self.write_metrics(state)
    }

    /// Loads the last checkpoint into `module`, then builds the optimizer
    /// for the loaded module with `make_optim` (parameter groups are keyed by
    /// parameter id, which the checkpoint restores) and loads its state.
    /// Without a checkpoint: the module unchanged, a fresh optimizer, `None`.
    pub fn load_checkpoint<M: Module>(
        &self,
        module: M,
        make_optim: impl FnOnce(&M) -> ModuleOptimizer,
    ) -> Result<(M, ModuleOptimizer, Option<TrainState>)> {
        let Some(dir) = self.find_checkpoint() else {
            let optim = make_optim(&module);
            return Ok((module, optim, None));
        };
        let state_path = dir.join("state.json");
        let state: TrainState = serde_json::from_str(
            &std::fs::read_to_string(&state_path)
                .with_context(|| format!("cannot read {}", state_path.display()))?,
        )
        .with_context(|| format!("{} is not a training state", state_path.display()))?;
        let model_path = dir.join("model.bpk");
        let module = module.try_load_file(&model_path).map_err(|e| {
            anyhow::anyhow!("cannot load checkpoint {}: {e:?}", model_path.display())
        })?;
        let optim_path = dir.join("optim.bpk");
        let optim = make_optim(&module).load(&optim_path).map_err(|e| {
            anyhow::anyhow!(
                "cannot load optimizer state {}: {e:?}",
                optim_path.display()
            )
        })?;
        Ok((module, optim, Some(state)))
    }

    /// Rewrites `metrics.csv` from the state's rows (columns sorted, `epoch` first).
    pub fn write_metrics(&self, state: &TrainState) -> Result<()> {
        let mut columns: Vec<&String> = state.metrics.iter().flat_map(|r| r.keys()).collect();
        columns.sort();
        columns.dedup();
        columns.sort_by_key(|c| c.as_str() != "epoch");
        let mut w = csv::Writer::from_path(self.metrics_csv())
            .with_context(|| format!("cannot write {}", self.metrics_csv().display()))?;
        w.write_record(&columns)?;
        for row in &state.metrics {
            w.write_record(columns.iter().map(|c| {
                row.get(*c).map_or(String::new(), |v| {
                    if v.fract() == 0.0 && v.abs() < 1e15 {
                        format!("{v:.0}")
                    } else {
                        format!("{v:.6}")
                    }
                })
            }))?;
        }
        w.flush()?;
        Ok(())
    }
}

/// A seed for one purpose at one point of the run, from the run's seed:
/// `mix(seed, a, b)` (SplitMix64 over the three), so that each epoch, batch
/// and step has its own independent, reproducible random stream.
pub fn derive_seed(seed: u64, a: u64, b: u64) -> u64 {
    let mut z =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Streams: each a distinct `a` for [`derive_seed`].
pub mod stream {
    pub const SHUFFLE: u64 = 1;
    pub const BATCH: u64 = 2;
    pub const DEVICE: u64 = 3;
    pub const INIT: u64 = 4;
    pub const SAMPLES: u64 = 5;
}

/// Wall-clock stopwatch for images/s.
pub struct Throughput {
    start: Instant,
    images: usize,
}

impl Throughput {
    pub fn start() -> Self {
        Self {
            start: Instant::now(),
            images: 0,
        }
    }

    pub fn add(&mut self, images: usize) {
        self.images += images;
    }

    pub fn seconds(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    pub fn images_per_second(&self) -> f64 {
        self.images as f64 / self.seconds().max(1e-9)
    }
}

/// Fails unless `path` is a folder that exists.
pub fn require_dir(path: &Path, what: &str) -> Result<()> {
    if !path.is_dir() {
        bail!("{what} {} is not a folder", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{AdamWOptions, adamw, trainable_params};
    use burn::module::Param;
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Tensor};

    #[derive(Module, Debug)]
    struct Net {
        w: Param<Tensor<2>>,
        b: Param<Tensor<1>>,
    }

    fn step(net: Net, optim: &mut ModuleOptimizer, device: &Device) -> Net {
        let x = Tensor::<2>::ones([3, 2], device);
        let loss = (x.matmul(net.w.val()) + net.b.val().unsqueeze())
            .square()
            .sum();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        optim.step(0.1, net, grads)
    }

    #[test]
    fn a_reloaded_checkpoint_continues_exactly_like_the_original() {
        let device = Device::flex().autodiff();
        let net = Net {
            w: Param::from_tensor(Tensor::ones([2, 2], &device)),
            b: Param::from_tensor(Tensor::zeros([2], &device)),
        };
        let opts = AdamWOptions {
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.99,
        };
        let mut optim = adamw(&trainable_params(&net), &opts);
        let net = step(net, &mut optim, &device);
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path());
        let state = TrainState {
            step: 1,
            ..Default::default()
        };
        run.save_checkpoint(&net, &optim, &state).unwrap();

        let fresh = Net {
            w: Param::from_tensor(Tensor::zeros([2, 2], &device)),
            b: Param::from_tensor(Tensor::zeros([2], &device)),
        };
        let (loaded, mut loaded_optim, loaded_state) = run
            .load_checkpoint(fresh, |m| adamw(&trainable_params(m), &opts))
            .unwrap();
        assert_eq!(loaded_state, Some(state));
        assert_eq!(
            loaded.w.id, net.w.id,
            "parameter ids survive the checkpoint"
        );

        let a = step(net, &mut optim, &device).w.val().into_data();
        let b = step(loaded, &mut loaded_optim, &device).w.val().into_data();
        a.assert_approx_eq::<f32>(&b, burn::tensor::Tolerance::absolute(1e-7));
    }
}
