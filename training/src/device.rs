//! Choosing where training runs: burn's CPU backend (`Device::flex()`, rayon +
//! SIMD) or a GPU through wgpu. The adapter rules are the analyzer's
//! ([`mimic::device`]), so both tools pick the same device for the same flag.

use anyhow::Result;
use burn::tensor::Device;
use mimic::device::{DeviceChoice as AnalyzerChoice, select_device};

/// The `--device` option.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// A hardware GPU adapter if wgpu finds one, else the CPU.
    Auto,
    /// burn's Flex CPU backend.
    Cpu,
    /// A GPU through wgpu (an error when none is usable; `MIMIC_ALLOW_SOFTWARE_GPU=1`
    /// admits a software adapter such as lavapipe, for testing).
    Wgpu,
}

/// The device for `choice` and a line describing it for the log.
pub fn select(choice: DeviceChoice) -> Result<(Device, String)> {
    let choice = match choice {
        DeviceChoice::Auto => AnalyzerChoice::Auto,
        DeviceChoice::Cpu => AnalyzerChoice::Cpu,
        DeviceChoice::Wgpu => AnalyzerChoice::Gpu,
    };
    let selected = select_device(choice)?;
    let description = if selected.is_gpu {
        format!("wgpu: {}", selected.description)
    } else {
        format!(
            "CPU (burn flex, {} threads)",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        )
    };
    Ok((selected.burn, description))
}

/// The devices of `--replicas n` with `main` first: on a GPU the first `n` discrete GPUs
/// (an error when there are fewer), on the CPU `n` times its one device.
pub fn replica_devices(main: &Device, n: usize) -> Result<Vec<Device>> {
    if n == 0 {
        anyhow::bail!("--replicas must be at least 1");
    }
    if n == 1 || *main == Device::flex() {
        return Ok(vec![main.clone(); n]);
    }
    let found = mimic::device::discrete_gpu_count();
    if found < n {
        anyhow::bail!("--replicas {n}: wgpu finds {found} discrete GPU(s)");
    }
    Ok((0..n)
        .map(|i| Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(i)))
        .collect())
}
