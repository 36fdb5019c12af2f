//! Which device the networks run on: `--device auto|cpu|gpu` turned into a burn [`Device`].
//!
//! - `cpu`: burn's pure-Rust CPU backend ([`Device::flex`]).
//! - `gpu`: a hardware GPU adapter through burn's wgpu backend (discrete, then integrated,
//!   then virtual); no usable adapter is an error ([`DeviceError::NoGpuAdapter`]), never a
//!   silent fall-back to the CPU.
//! - `auto`: the `gpu` choice when it succeeds, else the CPU.
//!
//! Software Vulkan adapters (Mesa's lavapipe/llvmpipe, which wgpu reports as
//! [`wgpu::DeviceType::Cpu`]) run every shader correctly but slower than the CPU backend,
//! so neither `auto` nor `gpu` takes one — unless [`ALLOW_SOFTWARE_GPU_ENV`] is set, which
//! lets `gpu` use it. CI does that to run the GPU path on lavapipe; tests call
//! [`select_device_with`] with [`SoftwareGpu::Allow`] directly.
//!
//! Adapters are found with `wgpu` itself (the version burn's wgpu runtime uses), then the
//! chosen kind is initialised through burn ([`Device::wgpu_options`]), so that the adapter
//! named in [`SelectedDevice::description`] is the one burn really opened. Each kind is
//! initialised once per process and cached: burn refuses to initialise a runtime twice.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use burn::tensor::{Device, DeviceKind};
use clap::ValueEnum;

/// Set to `1` (or `true`) to let `--device gpu` use a software (CPU) Vulkan adapter such as
/// lavapipe when no hardware adapter exists.
pub const ALLOW_SOFTWARE_GPU_ENV: &str = "MIMIC_ALLOW_SOFTWARE_GPU";

/// Keeps Mesa's Vulkan device-select layer from probing for a display: on a machine
/// without one it prints `error: XDG_RUNTIME_DIR is invalid or not set` while wgpu
/// enumerates adapters, which reads as a failure. The layer only reorders adapters,
/// and [`select_device`] picks by adapter type itself, so nothing else changes. A
/// value the user set is kept.
///
/// # Safety
///
/// Sets an environment variable: call it at the start of `main`, before any other
/// thread exists (as [`std::env::set_var`] requires).
pub unsafe fn quiet_vulkan_probing() {
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: the caller guarantees that no other thread runs yet.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

/// The kernel language of this build's GPU runtime: burn's `vulkan` feature compiles
/// its kernels to SPIR-V on Vulkan adapters (cooperative matrices); without it, WGSL.
pub const RUNTIME: &str = if cfg!(feature = "vulkan") {
    "wgpu runtime, SPIR-V kernels (vulkan build)"
} else {
    "wgpu runtime, WGSL kernels"
};

/// The user's choice of device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum DeviceChoice {
    /// A hardware GPU when one exists, else the CPU.
    #[default]
    Auto,
    /// burn's CPU backend (flex).
    Cpu,
    /// A GPU through wgpu; an error when none is usable.
    Gpu,
}

/// Whether `--device gpu` may take a software (CPU) Vulkan adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftwareGpu {
    Allow,
    Refuse,
}

impl SoftwareGpu {
    /// [`SoftwareGpu::Allow`] when [`ALLOW_SOFTWARE_GPU_ENV`] is `1` or `true`.
    pub fn from_env() -> Self {
        match std::env::var(ALLOW_SOFTWARE_GPU_ENV) {
            Ok(v) if matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes") => {
                SoftwareGpu::Allow
            }
            _ => SoftwareGpu::Refuse,
        }
    }
}

/// The device the networks and the pre-processing shaders run on.
#[derive(Clone, Debug)]
pub struct SelectedDevice {
    /// The burn device (flex or wgpu).
    pub burn: Device,
    /// Adapter and graphics API, e.g. `NVIDIA H100 80GB HBM3 (Vulkan, discrete GPU)` or
    /// `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, CPU)`, or `CPU (burn flex backend)`.
    pub description: String,
    /// The wgpu path: the networks run on burn's wgpu backend and the WGSL shaders of
    /// [`crate::gpu`] can run on [`SelectedDevice::burn`]. True for a software adapter
    /// allowed by [`SoftwareGpu::Allow`] too.
    pub is_gpu: bool,
}

/// Why `--device gpu` could not be honoured.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "--device gpu: no usable GPU adapter (wgpu found: {found}){hint}",
        found = if found.is_empty() { "none".to_string() } else { found.join("; ") },
        hint = software_hint(found)
    )]
    NoGpuAdapter { found: Vec<String> },
    #[error("--device gpu: cannot open {adapter}: {reason}")]
    Init { adapter: String, reason: String },
}

fn software_hint(found: &[String]) -> String {
    if found.iter().any(|a| a.ends_with(", CPU)")) {
        format!("; set {ALLOW_SOFTWARE_GPU_ENV}=1 to use a software adapter (slow, for testing)")
    } else {
        String::new()
    }
}

/// [`select_device_with`] with the software-adapter policy read from
/// [`ALLOW_SOFTWARE_GPU_ENV`].
pub fn select_device(choice: DeviceChoice) -> Result<SelectedDevice, DeviceError> {
    select_device_with(choice, SoftwareGpu::from_env())
}

/// Turns the user's choice into a device; see the module documentation for the rules.
pub fn select_device_with(
    choice: DeviceChoice,
    software: SoftwareGpu,
) -> Result<SelectedDevice, DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok(cpu_device()),
        DeviceChoice::Gpu => gpu_device(software),
        // `auto` never takes a software adapter: the CPU backend beats it.
        DeviceChoice::Auto => Ok(gpu_device(SoftwareGpu::Refuse).unwrap_or_else(|_| cpu_device())),
    }
}

fn cpu_device() -> SelectedDevice {
    SelectedDevice {
        burn: Device::flex(),
        description: "CPU (burn flex backend)".to_string(),
        is_gpu: false,
    }
}

/// One adapter as wgpu reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: wgpu::Backend,
    pub device_type: wgpu::DeviceType,
}

impl AdapterSummary {
    fn from_info(info: &wgpu::AdapterInfo) -> Self {
        Self {
            name: info.name.clone(),
            backend: info.backend,
            device_type: info.device_type,
        }
    }

    /// `name (API, kind)`, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, CPU)`.
    pub fn describe(&self) -> String {
        let kind = match self.device_type {
            wgpu::DeviceType::DiscreteGpu => "discrete GPU",
            wgpu::DeviceType::IntegratedGpu => "integrated GPU",
            wgpu::DeviceType::VirtualGpu => "virtual GPU",
            wgpu::DeviceType::Cpu => "CPU",
            wgpu::DeviceType::Other => "other",
        };
        let api = match self.backend {
            wgpu::Backend::Vulkan => "Vulkan".to_string(),
            wgpu::Backend::Metal => "Metal".to_string(),
            wgpu::Backend::Dx12 => "DirectX 12".to_string(),
            wgpu::Backend::Gl => "OpenGL".to_string(),
            wgpu::Backend::BrowserWebGpu => "WebGPU".to_string(),
            other => format!("{other:?}"),
        };
        format!("{} ({api}, {kind})", self.name)
    }
}

/// Every adapter wgpu finds, on the graphics APIs burn's wgpu runtime runs compute on
/// (Vulkan, Metal, DirectX 12). Probed once per process. OpenGL is left out: it is no
/// compute target for us, and probing it through EGL prints errors on headless machines.
pub fn adapters() -> &'static [AdapterSummary] {
    static ADAPTERS: OnceLock<Vec<AdapterSummary>> = OnceLock::new();
    ADAPTERS.get_or_init(|| {
        let _guard = wgpu_lock();
        let enabled = wgpu::Instance::enabled_backend_features();
        let mut found = Vec::new();
        for backend in [
            wgpu::Backend::Vulkan,
            wgpu::Backend::Metal,
            wgpu::Backend::Dx12,
        ] {
            let backends: wgpu::Backends = backend.into();
            if !enabled.contains(backends) {
                continue;
            }
            let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
                backends,
                ..wgpu::InstanceDescriptor::new_without_display_handle()
            });
            let adapters = pollster::block_on(instance.enumerate_adapters(backends));
            found.extend(
                adapters
                    .iter()
                    .map(|a| AdapterSummary::from_info(&a.get_info())),
            );
            // burn takes the first API with a hardware adapter: no need to wake the others.
            if found.iter().any(|a| a.device_type != wgpu::DeviceType::Cpu) {
                break;
            }
        }
        found
    })
}

/// How many discrete GPUs wgpu finds (the devices `mimic-train --replicas` spreads over).
pub fn discrete_gpu_count() -> usize {
    adapters()
        .iter()
        .filter(|a| a.device_type == wgpu::DeviceType::DiscreteGpu)
        .count()
}

/// Serialises instance creation and runtime initialisation: the Vulkan loader does not
/// like instances created on several threads at once.
fn wgpu_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The adapter kinds a GPU run may use, best first.
fn candidate_kinds(software: SoftwareGpu) -> Vec<(wgpu::DeviceType, DeviceKind)> {
    let mut kinds = vec![
        (wgpu::DeviceType::DiscreteGpu, DeviceKind::DiscreteGpu(0)),
        (
            wgpu::DeviceType::IntegratedGpu,
            DeviceKind::IntegratedGpu(0),
        ),
        (wgpu::DeviceType::VirtualGpu, DeviceKind::VirtualGpu(0)),
    ];
    if software == SoftwareGpu::Allow {
        kinds.push((wgpu::DeviceType::Cpu, DeviceKind::Cpu));
    }
    kinds
}

fn gpu_device(software: SoftwareGpu) -> Result<SelectedDevice, DeviceError> {
    let found = adapters();
    let mut last_error = None;
    for (device_type, kind) in candidate_kinds(software) {
        let Some(adapter) = found.iter().find(|a| a.device_type == device_type) else {
            continue;
        };
        match open_wgpu(kind, adapter) {
            Ok(selected) => return Ok(selected),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| DeviceError::NoGpuAdapter {
        found: found.iter().map(AdapterSummary::describe).collect(),
    }))
}

/// Opens burn's wgpu runtime on the first adapter of `kind` (once per process).
fn open_wgpu(kind: DeviceKind, expected: &AdapterSummary) -> Result<SelectedDevice, DeviceError> {
    static OPENED: Mutex<Option<HashMap<DeviceKind, SelectedDevice>>> = Mutex::new(None);
    let mut opened = OPENED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let opened = opened.get_or_insert_with(HashMap::new);
    if let Some(selected) = opened.get(&kind) {
        return Ok(selected.clone());
    }
    let result = {
        let _guard = wgpu_lock();
        Device::wgpu_options()
            .device_kind(kind.clone())
            .init_with_setup()
    };
    let selected = match result {
        Ok((burn, setup)) => SelectedDevice {
            burn,
            description: format!(
                "{}, burn {}",
                AdapterSummary::from_info(&setup.adapter.get_info()).describe(),
                RUNTIME
            ),
            is_gpu: true,
        },
        // Someone created tensors on `Device::wgpu(kind)` before us: the runtime exists
        // and is the same one a plain `Device::wgpu(kind)` reaches.
        Err(burn::tensor::wgpu::WgpuInitError::Registration { .. }) => SelectedDevice {
            burn: Device::wgpu(kind.clone()),
            description: format!("{}, burn {}", expected.describe(), RUNTIME),
            is_gpu: true,
        },
        Err(e) => {
            return Err(DeviceError::Init {
                adapter: expected.describe(),
                reason: e.to_string(),
            });
        }
    };
    opened.insert(kind, selected.clone());
    Ok(selected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_choice_is_the_flex_backend_and_not_gpu() {
        let d = select_device_with(DeviceChoice::Cpu, SoftwareGpu::Allow).unwrap();
        assert!(!d.is_gpu);
        assert_eq!(d.burn, Device::flex());
        assert!(d.description.contains("CPU"), "{}", d.description);
    }

    #[test]
    fn adapter_description_names_the_api_and_the_kind() {
        let a = AdapterSummary {
            name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
            backend: wgpu::Backend::Vulkan,
            device_type: wgpu::DeviceType::Cpu,
        };
        assert_eq!(
            a.describe(),
            "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, CPU)"
        );
    }

    #[test]
    fn no_adapter_error_names_what_was_found_and_how_to_allow_software() {
        let err = DeviceError::NoGpuAdapter {
            found: vec!["llvmpipe (Vulkan, CPU)".into()],
        };
        let msg = err.to_string();
        assert!(msg.contains("llvmpipe (Vulkan, CPU)"), "{msg}");
        assert!(msg.contains(ALLOW_SOFTWARE_GPU_ENV), "{msg}");
        let none = DeviceError::NoGpuAdapter { found: vec![] }.to_string();
        assert!(
            none.contains("found: none") && !none.contains(ALLOW_SOFTWARE_GPU_ENV),
            "{none}"
        );
    }

    #[test]
    fn software_adapters_are_only_candidates_when_allowed() {
        let refuse = candidate_kinds(SoftwareGpu::Refuse);
        assert!(refuse.iter().all(|(t, _)| *t != wgpu::DeviceType::Cpu));
        let allow = candidate_kinds(SoftwareGpu::Allow);
        assert_eq!(allow.last().map(|(t, _)| *t), Some(wgpu::DeviceType::Cpu));
    }

    #[test]
    fn gpu_choice_without_software_never_returns_a_cpu_adapter() {
        // On a machine with only lavapipe this is an error naming it; with a real GPU it is
        // that GPU. Either way it is never a software adapter, and never flex.
        match select_device_with(DeviceChoice::Gpu, SoftwareGpu::Refuse) {
            Ok(d) => {
                assert!(d.is_gpu);
                assert!(!d.description.ends_with(", CPU)"), "{}", d.description);
            }
            Err(e) => assert!(matches!(
                e,
                DeviceError::NoGpuAdapter { .. } | DeviceError::Init { .. }
            )),
        }
    }
}
