//! Launching a WGSL shader of `shaders/` on burn's wgpu backend, on the buffers of burn
//! tensors, without a host round trip.
//!
//! This is burn's `custom-wgpu-kernel` pattern (a `KernelSource` launched through the
//! cubecl client of the tensors' device), adapted to burn 0.22's run-time dispatch and to
//! the fusion backend we build with:
//!
//! 1. the input `Tensor`s are unwrapped to their fusion primitives
//!    ([`Tensor::try_into_primitive`]) and become the inputs of one *custom operation*
//!    registered on the device's fusion stream, with the outputs described by shape;
//! 2. when fusion executes the stream up to that point, the operation's closure receives
//!    the inputs as cubecl tensors (`CubeTensor`: a buffer handle and its layout), uploads
//!    the small parameter blocks (and the frame's bytes) with `create_from_slice`,
//!    allocates the outputs, and launches the shader with those buffers bound in order;
//! 3. the outputs are registered back under the ids fusion handed out, so the returned
//!    `Tensor`s are ordinary lazy burn tensors that the networks consume directly.
//!
//! Everything runs on the queue burn's wgpu runtime owns, in stream order with burn's own
//! kernels: no extra submission, no synchronisation, no copy through the host.
//!
//! Limits of this path, checked here with clear errors: the device must be burn's wgpu
//! runtime compiling WGSL (a build with burn's `vulkan` feature compiles SPIR-V on Vulkan
//! adapters and cannot load a WGSL template: see `crate::gpu` docs), the tensors must be
//! f32 and not tracked by autodiff.

use std::sync::Arc;

use burn::backend::fusion::custom::{
    CustomOpIr, HandleContainer, OperationFn, OperationIr, StreamId, TensorIr,
};
use burn::backend::fusion::{self, FusionBackend, FusionRuntime, FusionTensor};
use burn::backend::wgpu::{
    CubeBackend, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
};
use burn::backend::{DispatchDevice, Wgpu};
use burn::cubecl::prelude::KernelId;
use burn::cubecl::server::KernelArguments;
use burn::cubecl::{CubeCount, CubeDim};
use burn::tensor::{DType, Device, Shape, Tensor};

use super::GpuError;

type Runtime = <CubeBackend as FusionBackend>::FusionRuntime;
type Handle = <Runtime as FusionRuntime>::FusionHandle;
/// A float tensor of burn's wgpu backend, as fusion holds it.
pub(crate) type WgpuTensor = FusionTensor<Runtime>;

/// Invocations per workgroup; every shader declares `@workgroup_size(256, 1, 1)`.
pub const WORKGROUP: u32 = 256;
/// The most workgroups a dispatch may have along one dimension (WebGPU's default limit).
const MAX_GROUPS_PER_DIM: u32 = 65_535;

/// One compute shader of `shaders/`, entry point `main`.
#[derive(Debug)]
pub struct Shader {
    /// File stem, also the kernel's cache key.
    pub name: &'static str,
    /// The WGSL text.
    pub source: &'static str,
}

pub const DECODED_TO_RGB: Shader = Shader {
    name: "decoded_to_rgb",
    source: include_str!("../../shaders/decoded_to_rgb.wgsl"),
};
pub const AREA_RESIZE: Shader = Shader {
    name: "area_resize",
    source: include_str!("../../shaders/area_resize.wgsl"),
};
pub const FACE_CROPS: Shader = Shader {
    name: "face_crops",
    source: include_str!("../../shaders/face_crops.wgsl"),
};

/// Every shader, for validation tests.
pub const ALL_SHADERS: [&Shader; 3] = [&DECODED_TO_RGB, &AREA_RESIZE, &FACE_CROPS];

/// A [`Shader`] as burn's template-kernel source.
struct WgslSource(&'static Shader);

impl KernelSource for WgslSource {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(self.0.source)
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info(self.0.name)
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// One binding of a launch, in the shader's binding order.
pub(crate) enum Arg {
    /// An f32 tensor already on the device (read).
    Input(WgpuTensor),
    /// Words uploaded with the launch (parameters, a frame's bytes).
    Words(Arc<[u32]>),
    /// An f32 output tensor of this shape, allocated by the launch.
    Output(Shape),
}

/// The cubecl device behind a burn device, when it is burn's wgpu runtime.
pub(crate) fn wgpu_device(device: &Device) -> Result<burn::cubecl::Device, GpuError> {
    match device.as_dispatch() {
        DispatchDevice::Cube(cube @ burn::cubecl::Device::Wgpu(_)) => Ok(cube.clone()),
        other => Err(GpuError::NotWgpu {
            device: format!("{other:?}"),
        }),
    }
}

/// The largest buffer `device` can allocate and bind, in bytes: cubecl's `max_page_size`,
/// the smaller of wgpu's `max_buffer_size` and `max_storage_buffer_binding_size`. `None`
/// off cubecl's runtimes (burn's CPU backend), which state no such limit.
pub fn max_buffer_bytes(device: &Device) -> Option<u64> {
    match device.as_dispatch() {
        DispatchDevice::Cube(cube) => Some(cube.client().properties().memory.max_page_size),
        _ => None,
    }
}

/// `tensor` as a fusion primitive of burn's wgpu backend (f32, no autodiff).
pub(crate) fn primitive<const D: usize>(tensor: Tensor<D>) -> Result<WgpuTensor, GpuError> {
    let device = tensor.device();
    let dtype = tensor.dtype();
    if dtype != DType::F32 {
        return Err(GpuError::DType {
            found: format!("{dtype:?}"),
        });
    }
    tensor
        .try_into_primitive::<Wgpu>()
        .map_err(|e| GpuError::NotWgpu {
            device: format!("{device:?} ({e:?})"),
        })
}

/// A fusion primitive back into a burn tensor of rank `D`.
pub(crate) fn tensor<const D: usize>(primitive: WgpuTensor) -> Tensor<D> {
    debug_assert_eq!(primitive.shape.num_dims(), D);
    Tensor::from_primitive::<Wgpu>(primitive)
}

/// Workgroup counts `(x, y)` covering `invocations` with 256-wide workgroups; shaders
/// linearise as `(wg.y * groups.x + wg.x) * 256 + local` and skip ids past the end.
pub fn dispatch_size(invocations: u64) -> Result<(u32, u32), GpuError> {
    let groups = invocations.div_ceil(u64::from(WORKGROUP)).max(1);
    let x = groups.min(u64::from(MAX_GROUPS_PER_DIM));
    let y = groups.div_ceil(x);
    if y > u64::from(MAX_GROUPS_PER_DIM) || invocations > u64::from(u32::MAX) {
        return Err(GpuError::TooLarge {
            what: format!("{invocations} shader invocations"),
        });
    }
    Ok((x as u32, y as u32))
}

/// Registers `shader` on `device`'s fusion stream with `args` bound in order, run as
/// `invocations` invocations; returns the outputs (one per [`Arg::Output`], in order).
///
/// The launch itself happens when fusion executes the stream (at the latest when a result
/// is read), like any burn operation.
pub(crate) fn launch(
    device: &Device,
    shader: &'static Shader,
    invocations: u64,
    args: Vec<Arg>,
) -> Result<Vec<WgpuTensor>, GpuError> {
    let cube_device = wgpu_device(device)?;
    let (groups_x, groups_y) = dispatch_size(invocations)?;
    let client = fusion::get_client::<CubeBackend>(&cube_device);

    enum Slot {
        Input(TensorIr),
        Words(Arc<[u32]>),
        Output(TensorIr),
    }
    let mut slots = Vec::with_capacity(args.len());
    for arg in args {
        slots.push(match arg {
            Arg::Input(t) => {
                if t.client.device() != &cube_device {
                    return Err(GpuError::NotWgpu {
                        device: format!(
                            "input on {:?}, launch on {cube_device:?}",
                            t.client.device()
                        ),
                    });
                }
                Slot::Input(t.into_ir())
            }
            Arg::Words(words) => {
                if words.is_empty() {
                    return Err(GpuError::TooLarge {
                        what: "an empty upload".into(),
                    });
                }
                Slot::Words(words)
            }
            Arg::Output(shape) => {
                if shape.num_elements() == 0 {
                    return Err(GpuError::TooLarge {
                        what: "an empty output".into(),
                    });
                }
                Slot::Output(TensorIr::uninit(
                    client.create_empty_handle(),
                    shape,
                    DType::F32,
                ))
            }
        });
    }
    let inputs: Vec<TensorIr> = slots
        .iter()
        .filter_map(|s| match s {
            Slot::Input(ir) => Some(ir.clone()),
            _ => None,
        })
        .collect();
    let outputs: Vec<TensorIr> = slots
        .iter()
        .filter_map(|s| match s {
            Slot::Output(ir) => Some(ir.clone()),
            _ => None,
        })
        .collect();
    let desc = CustomOpIr {
        id: format!("mimic::{}", shader.name),
        inputs,
        outputs,
        scalars: Vec::new(),
    };

    let device_for_op = cube_device.clone();
    let operation = OperationFn(move |handles: &mut HandleContainer<Handle>| {
        let client = device_for_op.client();
        let mut bindings = Vec::with_capacity(slots.len());
        // Inputs stay alive (and their buffers reserved) until the launch is recorded.
        let mut held = Vec::new();
        let mut produced = Vec::new();
        for slot in &slots {
            match slot {
                Slot::Input(ir) => {
                    let t: CubeTensor =
                        into_contiguous(handles.get_float_tensor::<CubeBackend>(ir));
                    bindings.push(t.handle.clone().binding());
                    held.push(t);
                }
                Slot::Words(words) => {
                    let handle = client.create_from_slice(bytemuck::cast_slice(words));
                    bindings.push(handle.binding());
                }
                Slot::Output(ir) => {
                    let handle = client.empty(ir.shape.num_elements() * DType::F32.size());
                    let t = CubeTensor::new_contiguous(
                        client.clone(),
                        device_for_op.clone(),
                        ir.shape.clone(),
                        handle,
                        DType::F32,
                    );
                    bindings.push(t.handle.clone().binding());
                    produced.push((ir.id, t));
                }
            }
        }
        client.launch(
            Box::new(SourceKernel::new(
                WgslSource(shader),
                CubeDim::new_1d(WORKGROUP),
            )),
            CubeCount::Static(groups_x, groups_y, 1),
            KernelArguments::new().with_buffers(bindings),
        );
        drop(held);
        for (id, t) in produced {
            handles.register_float_tensor::<CubeBackend>(&id, t);
        }
        Ok::<(), fusion::ExecutionError>(())
    });
    Ok(client.register(StreamId::current(), OperationIr::Custom(desc), operation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_covers_every_invocation_in_at_most_65535_groups_per_dimension() {
        assert_eq!(dispatch_size(1).unwrap(), (1, 1));
        assert_eq!(dispatch_size(256).unwrap(), (1, 1));
        assert_eq!(dispatch_size(257).unwrap(), (2, 1));
        let n = 256 * 224 * 224 * 3; // a large ViT batch, one invocation per value
        let (x, y) = dispatch_size(n).unwrap();
        assert!(x <= 65_535 && y <= 65_535);
        assert!(u64::from(x) * u64::from(y) * 256 >= n);
        assert!(u64::from(x) * u64::from(y - 1) * 256 < n);
        assert!(dispatch_size(u64::from(u32::MAX) + 1).is_err());
    }

    #[test]
    fn every_shader_is_valid_wgsl_with_entry_point_main_and_256_wide_workgroups() {
        use wgpu::naga;
        for shader in ALL_SHADERS {
            let module = naga::front::wgsl::parse_str(shader.source)
                .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(shader.source)));
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::empty(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {e:?}", shader.name));
            let entry = module
                .entry_points
                .iter()
                .find(|e| e.name == "main")
                .unwrap_or_else(|| panic!("{}: no entry point `main`", shader.name));
            assert_eq!(entry.workgroup_size, [WORKGROUP, 1, 1], "{}", shader.name);
        }
    }
}
