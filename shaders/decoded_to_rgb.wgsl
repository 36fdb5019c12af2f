// decoded_to_rgb.wgsl: one decoded picture (YUV 4:2:0 planar, NV12 or packed RGB24) to
// planar float RGB, exactly as FFmpeg's swscale turns 4:2:0 into RGB24 on our decode path.
//
// Bindings (group 0):
//   0  src:    array<u32>  read_write (in) the picture's bytes, 4 per word, little-endian
//   1  params: array<u32>  read_write (in) see below
//   2  dst:    array<f32>  read_write (out) [3, height, width], whole numbers in 0..=255
//
// Every binding is declared read_write, inputs too: burn's runtime sub-allocates tensors
// and uploads from shared wgpu buffers, and wgpu forbids binding one buffer both
// read-only and read-write in a dispatch.
//
// params (u32 words; the coefficients are i32 bit patterns):
//   0 layout: 0 = yuv420p, 1 = nv12, 2 = rgb24
//   1 width   2 height
//   3 plane 0 offset (bytes)   4 plane 0 stride (bytes)    Y, or the RGB24 pixels
//   5 plane 1 offset           6 plane 1 stride            U (yuv420p) or interleaved UV (nv12)
//   7 plane 2 offset           8 plane 2 stride            V (yuv420p only)
//   9 yc  10 vrc  11 ubc  12 vgc  13 ugc  14 yoff          swscale's 16-bit coefficients
//
// Maths (swscale 5.1's yuv2rgb fixed point, see src/gpu/colour.rs): chroma of the 2x2
// block (nearest), mulhi(a, b) = (a * b) >> 16 (arithmetic), then
//   Y' = mulhi(8 Y - yoff, yc), U' = 8 U - 1024, V' = 8 V - 1024,
//   R = Y' + mulhi(V', vrc), G = Y' + mulhi(U', ugc) + mulhi(V', vgc), B = Y' + mulhi(U', ubc),
// each clamped to 0..=255. Integer maths: bit-identical to the CPU twin.
//
// One invocation per output pixel; the dispatch is 2-D (x * y workgroups of 256) so that
// frames of more than 65535 * 256 pixels fit. The host checks every plane fits `src`
// (the runtime compiles without bounds checks).

@group(0) @binding(0) var<storage, read_write> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> params: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

const WORKGROUP: u32 = 256u;

fn byte_at(offset: u32) -> i32 {
    let word = src[offset >> 2u];
    return i32((word >> ((offset & 3u) * 8u)) & 0xffu);
}

fn mulhi(a: i32, b: i32) -> i32 {
    return (a * b) >> 16u;
}

fn coefficient(i: u32) -> i32 {
    return bitcast<i32>(params[i]);
}

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let width = params[1];
    let height = params[2];
    let pixel = (wg.y * groups.x + wg.x) * WORKGROUP + lid;
    if (pixel >= width * height) {
        return;
    }
    let x = pixel % width;
    let y = pixel / width;
    let pixel_layout = params[0];

    var rgb: vec3<i32>;
    if (pixel_layout == 2u) {
        let at = params[3] + y * params[4] + 3u * x;
        rgb = vec3<i32>(byte_at(at), byte_at(at + 1u), byte_at(at + 2u));
    } else {
        let luma = byte_at(params[3] + y * params[4] + x);
        let cx = x >> 1u;
        let cy = y >> 1u;
        var u: i32;
        var v: i32;
        if (pixel_layout == 0u) {
            u = byte_at(params[5] + cy * params[6] + cx);
            v = byte_at(params[7] + cy * params[8] + cx);
        } else {
            let at = params[5] + cy * params[6] + 2u * cx;
            u = byte_at(at);
            v = byte_at(at + 1u);
        }
        let yy = mulhi(luma * 8 - coefficient(14u), coefficient(9u));
        let uu = u * 8 - 1024;
        let vv = v * 8 - 1024;
        rgb = vec3<i32>(
            yy + mulhi(vv, coefficient(10u)),
            yy + mulhi(uu, coefficient(13u)) + mulhi(vv, coefficient(12u)),
            yy + mulhi(uu, coefficient(11u)),
        );
    }
    let c = clamp(rgb, vec3<i32>(0), vec3<i32>(255));
    let plane = width * height;
    dst[pixel] = f32(c.x);
    dst[plane + pixel] = f32(c.y);
    dst[2u * plane + pixel] = f32(c.z);
}
