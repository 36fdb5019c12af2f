// area_resize.wgsl: MTCNN's resampling, torch `interpolate(mode="area")` of frame
// rectangles, normalised like facenet, for many jobs in one launch: every pyramid level of
// every frame, or every R-Net/O-Net box crop.
//
// Bindings (group 0):
//   0  frames: array<f32>  read_write (in) [frames, 3, height, width], whole numbers 0..=255
//   1  jobs:   array<u32>  read_write (in) header, then 8 words per job (below)
//   2  out:    array<f32>  read_write (out) the jobs back to back, job j as [3, out_h, out_w]
//                                        starting at element 3 * pixel_start(j)
//
// Every binding is declared read_write, inputs too: burn's runtime sub-allocates tensors
// and uploads from shared wgpu buffers, and wgpu forbids binding one buffer both
// read-only and read-write in a dispatch.
//
// jobs header: 0 job count, 1 frame height, 2 frame width, 3 total output pixels
//   (the sum of out_h * out_w). Job j at word 4 + 8 j:
//   pixel_start, frame, x0, y0, x1, y1, out_h, out_w
//   pixel_start is the running sum of out_h * out_w of the jobs before (ascending), the
//   rectangle is rows y0..y1, columns x0..x1 (end exclusive, inside the frame).
//
// Output cell (i, j) of a job averages rectangle rows floor(i in_h / out_h) ..
// ceil((i + 1) in_h / out_h) and likewise columns (src/mtcnn/resample.rs, the CPU twin).
// The window sum of whole numbers is exact in f32 below 2^24 (windows under 65,793
// pixels), then `(sum / kh) / kw` and `(v - 127.5) * 0.0078125`, in that order.
//
// One invocation per output pixel (all 3 channels), found by binary search over
// pixel_start; 2-D dispatch of 256-wide workgroups.

@group(0) @binding(0) var<storage, read_write> frames: array<f32>;
@group(0) @binding(1) var<storage, read_write> jobs: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const WORKGROUP: u32 = 256u;
const HEADER: u32 = 4u;
const JOB_WORDS: u32 = 8u;

fn job_word(job: u32, k: u32) -> u32 {
    return jobs[HEADER + job * JOB_WORDS + k];
}

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let id = (wg.y * groups.x + wg.x) * WORKGROUP + lid;
    if (id >= jobs[3]) {
        return;
    }
    // The last job whose pixel_start <= id.
    var lo = 0u;
    var hi = jobs[0] - 1u;
    while (lo < hi) {
        let mid = (lo + hi + 1u) / 2u;
        if (job_word(mid, 0u) <= id) {
            lo = mid;
        } else {
            hi = mid - 1u;
        }
    }
    let job = lo;
    let start = job_word(job, 0u);
    let frame = job_word(job, 1u);
    let x0 = job_word(job, 2u);
    let y0 = job_word(job, 3u);
    let in_w = job_word(job, 4u) - x0;
    let in_h = job_word(job, 5u) - y0;
    let out_h = job_word(job, 6u);
    let out_w = job_word(job, 7u);

    let local = id - start;
    let i = local / out_w;
    let j = local % out_w;
    let r0 = i * in_h / out_h;
    let r1 = ((i + 1u) * in_h + out_h - 1u) / out_h;
    let c0 = j * in_w / out_w;
    let c1 = ((j + 1u) * in_w + out_w - 1u) / out_w;

    let height = jobs[1];
    let width = jobs[2];
    let plane = height * width;
    let base = frame * 3u * plane;
    var sum = vec3<f32>(0.0);
    for (var r = r0; r < r1; r++) {
        let row = base + (y0 + r) * width + x0;
        for (var c = c0; c < c1; c++) {
            let at = row + c;
            sum += vec3<f32>(frames[at], frames[plane + at], frames[2u * plane + at]);
        }
    }
    let kh = f32(r1 - r0);
    let kw = f32(c1 - c0);
    let value = (sum / kh / kw - vec3<f32>(127.5)) * 0.0078125;

    let out_plane = out_h * out_w;
    let o = 3u * start + local;
    out[o] = value.x;
    out[o + out_plane] = value.y;
    out[o + 2u * out_plane] = value.z;
}
