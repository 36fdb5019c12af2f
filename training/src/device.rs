//! Choosing where training runs: burn's CPU backend (`Device::flex()`, rayon +
//! SIMD) or a GPU through wgpu.

use anyhow::{Result, bail};
use burn::tensor::{Device, DeviceKind};

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
    /// The default wgpu adapter (Vulkan, Metal, DX12 …).
    Wgpu,
}

/// A GPU adapter wgpu reports, as `name (type, backend)`; software
/// rasterisers (llvmpipe, reported as `Cpu`) do not count.
pub fn hardware_gpu() -> Option<String> {
    let instance = wgpu::Instance::default();
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters.into_iter().map(|a| a.get_info()).find_map(|info| {
        matches!(
            info.device_type,
            wgpu::DeviceType::DiscreteGpu
                | wgpu::DeviceType::IntegratedGpu
                | wgpu::DeviceType::VirtualGpu
        )
        .then(|| format!("{} ({:?}, {:?})", info.name, info.device_type, info.backend))
    })
}

/// The device for `choice` and a line describing it for the log.
pub fn select(choice: DeviceChoice) -> Result<(Device, String)> {
    match choice {
        DeviceChoice::Cpu => Ok((Device::flex(), cpu_description())),
        DeviceChoice::Wgpu => match hardware_gpu() {
            Some(name) => Ok((
                Device::wgpu(DeviceKind::DefaultDevice),
                format!("wgpu: {name}"),
            )),
            None => bail!("--device wgpu: wgpu finds no hardware GPU adapter on this machine"),
        },
        DeviceChoice::Auto => match hardware_gpu() {
            Some(name) => Ok((
                Device::wgpu(DeviceKind::DefaultDevice),
                format!("wgpu: {name}"),
            )),
            None => Ok((Device::flex(), cpu_description())),
        },
    }
}

fn cpu_description() -> String {
    format!(
        "CPU (burn flex, {} threads)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )
}
