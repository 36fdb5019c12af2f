// face_crops.wgsl: aligned face crops, sampled from the frames by 5-point similarity
// transforms and normalised for the expression model, written straight into the ViT's
// input tensor.
//
// Bindings (group 0):
//   0  frames: array<f32>  read_write (in) [frames, 3, height, width], whole numbers 0..=255
//   1  crops:  array<u32>  read_write (in) header, then 6 words per crop (below)
//   2  out:    array<f32>  read_write (out) [crops, 3, size, size]
//
// Every binding is declared read_write, inputs too: burn's runtime sub-allocates tensors
// and uploads from shared wgpu buffers, and wgpu forbids binding one buffer both
// read-only and read-write in a dispatch.
//
// crops header (12 words; f32 values as bit patterns):
//   0 crop count, 1 frame height, 2 frame width, 3 size, 4 grey (0/1), 5 unused,
//   6..8 mean (r, g, b) as f32, 9..11 std (r, g, b) as f32.
// Crop k at word 12 + 6 k: frame index, valid (0/1), then the crop-to-frame similarity
//   a, b, tx, ty as f32: crop pixel (u, v) samples the frame at
//   (a u - b v + tx, b u + a v + ty). A crop with valid = 0 is black (all zeros before
//   normalisation), as `align::align_face` gives for degenerate landmarks.
//
// Sampling mirrors `align::warp_similarity` (the CPU twin): pixel centres at integers,
// bilinear over the 4 neighbours with pixels outside the frame counting 0, rounded with
// floor(v + 0.5) and clamped to 0..=255 (the CPU path holds crops as 8-bit images);
// then `ExpressionModel::preprocess`: v / 255, BT.601 luma 0.299 r + 0.587 g + 0.114 b on
// every channel when grey, (v - mean[c]) / std[c].
//
// One invocation per crop pixel (all 3 channels); 2-D dispatch of 256-wide workgroups.

@group(0) @binding(0) var<storage, read_write> frames: array<f32>;
@group(0) @binding(1) var<storage, read_write> crops: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const WORKGROUP: u32 = 256u;
const HEADER: u32 = 12u;
const CROP_WORDS: u32 = 6u;

fn header_f32(k: u32) -> f32 {
    return bitcast<f32>(crops[k]);
}

fn crop_word(crop: u32, k: u32) -> u32 {
    return crops[HEADER + crop * CROP_WORDS + k];
}

// The frame's RGB at integer pixel (x, y), 0 outside the frame.
fn pixel(base: u32, x: i32, y: i32, width: u32, height: u32) -> vec3<f32> {
    if (x < 0 || y < 0 || x >= i32(width) || y >= i32(height)) {
        return vec3<f32>(0.0);
    }
    let plane = width * height;
    let at = base + u32(y) * width + u32(x);
    return vec3<f32>(frames[at], frames[plane + at], frames[2u * plane + at]);
}

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let size = crops[3];
    let crop_pixels = size * size;
    let id = (wg.y * groups.x + wg.x) * WORKGROUP + lid;
    if (id >= crops[0] * crop_pixels) {
        return;
    }
    let crop = id / crop_pixels;
    let local = id % crop_pixels;
    let u = f32(local % size);
    let v = f32(local / size);
    let height = crops[1];
    let width = crops[2];

    var rgb = vec3<f32>(0.0);
    if (crop_word(crop, 1u) != 0u) {
        let a = bitcast<f32>(crop_word(crop, 2u));
        let b = bitcast<f32>(crop_word(crop, 3u));
        let tx = bitcast<f32>(crop_word(crop, 4u));
        let ty = bitcast<f32>(crop_word(crop, 5u));
        let x = a * u - b * v + tx;
        let y = b * u + a * v + ty;
        let fx0 = floor(x);
        let fy0 = floor(y);
        let fx = x - fx0;
        let fy = y - fy0;
        // Far outside the frame every neighbour is black; also keeps the i32 casts in range.
        if (abs(fx0) < 1.0e8 && abs(fy0) < 1.0e8) {
            let xi = i32(fx0);
            let yi = i32(fy0);
            let base = crop_word(crop, 0u) * 3u * width * height;
            let p00 = pixel(base, xi, yi, width, height);
            let p10 = pixel(base, xi + 1, yi, width, height);
            let p01 = pixel(base, xi, yi + 1, width, height);
            let p11 = pixel(base, xi + 1, yi + 1, width, height);
            let top = (1.0 - fx) * p00 + fx * p10;
            let bottom = (1.0 - fx) * p01 + fx * p11;
            let value = (1.0 - fy) * top + fy * bottom;
            rgb = clamp(floor(value + vec3<f32>(0.5)), vec3<f32>(0.0), vec3<f32>(255.0));
        }
    }

    var unit = rgb / 255.0;
    if (crops[4] != 0u) {
        let luma = 0.299 * unit.x + 0.587 * unit.y + 0.114 * unit.z;
        unit = vec3<f32>(luma);
    }
    let mean = vec3<f32>(header_f32(6u), header_f32(7u), header_f32(8u));
    let stdev = vec3<f32>(header_f32(9u), header_f32(10u), header_f32(11u));
    let value = (unit - mean) / stdev;

    let o = crop * 3u * crop_pixels + local;
    out[o] = value.x;
    out[o + crop_pixels] = value.y;
    out[o + 2u * crop_pixels] = value.z;
}
