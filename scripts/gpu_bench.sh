#!/usr/bin/env bash
# The GPU path on a lent NVIDIA card (H100/H200), in one device call: the GPU tests on the
# real card, then the benchmarks beside PyTorch on the same card. Results under $OUT.
#
# Two steps, because the device machine has no Rust toolchain and no network:
#
#   1. here:   scripts/gpu_bench.sh prepare
#      builds the release test binaries (gpu_shaders, gpu_models, gpu_bench) and gathers in
#      target/gpubench/ (ignored by git; must stay under the device's 64 MiB carry limit):
#      the stripped binaries, the shared libraries they need beyond glibc, the Vulkan loader
#      (.deb, via apt-get download), facenet_pytorch from the Python reference env, and the
#      shared clip. Prints the bundle's size.
#   2. there:  the device tool's run with
#        command = "bash scripts/gpu_bench.sh run", carry = ["target/gpubench"], timeout_s = 540
#      then copy $OUT/results.jsonl's figures into BENCHMARKS.md, naming the card.
#
# `run` takes < 8 minutes: tests ~1 min, Rust ViT bench ~1.5 min, shaders ~0.2 min,
# end-to-end 3000 frames ~1-2 min, PyTorch ~2 min. MIMIC_BENCH_FRAMES shortens it.
set -uo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
bundle="$here/target/gpubench"
tests=(gpu_shaders gpu_models gpu_bench)

prepare() {
    set -e
    cd "$here"
    rm -rf "$bundle"
    mkdir -p "$bundle/bin" "$bundle/lib" "$bundle/gl" "$bundle/py"
    local args=()
    for t in "${tests[@]}"; do args+=(--test "$t"); done
    cargo test --release --no-run "${args[@]}" --message-format=json 2>/dev/null |
        python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
' | while read -r name exe; do
        cp "$exe" "$bundle/bin/$name"
        strip "$bundle/bin/$name"
    done
    # Shared libraries beyond glibc and the C++ runtime (a bare CUDA image lacks FFmpeg's).
    for b in "$bundle"/bin/*; do ldd "$b"; done | awk '/=> \// {print $3}' | sort -u |
        grep -v -E '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*|libgcc_s|libstdc\+\+)\.so' |
        while read -r lib; do cp -L "$lib" "$bundle/lib/"; done
    # The Vulkan loader (the NVIDIA driver brings its ICD, not always the loader).
    (cd "$bundle/gl" && apt-get download libvulkan1 >/dev/null)
    # facenet-pytorch (pure Python + its weights) for the PyTorch pipeline.
    local site
    site="$(/work/pyref/bin/python -c 'import facenet_pytorch, os; print(os.path.dirname(os.path.dirname(facenet_pytorch.__file__)))')"
    cp -r "$site/facenet_pytorch" "$bundle/py/"
    cp "$here/../shared/data/videos/short_hamilton_clip.mp4" "$bundle/clip.mp4" 2>/dev/null ||
        cp "$here/tests/fixtures/clip.mp4" "$bundle/clip.mp4"
    du -sh "$bundle"
    du -sh "$bundle"/*
}

run() {
    cd "$here"
    out="${OUT:-$here/target/gpubench-out}"
    mkdir -p "$out"
    export MIMIC_BENCH_OUT="$out/results.jsonl"
    : >"$MIMIC_BENCH_OUT"
    # The binaries look for fixtures and models where they were built.
    built_at=/work/main
    if [ ! -e "$built_at" ]; then mkdir -p /work && ln -s "$here" "$built_at"; fi
    # Vulkan: loader from the bundle if the image has none; NVIDIA's ICD from the driver.
    if ! ldconfig -p | grep -q libvulkan.so.1; then
        for f in "$bundle"/gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
        export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    fi
    export LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    {
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
        command -v vulkaninfo >/dev/null && vulkaninfo --summary 2>&1 | grep -E 'deviceName|driverName|apiVersion'
    } >"$out/card.txt" 2>&1
    cat "$out/card.txt"

    echo "== GPU tests on the card"
    for t in gpu_shaders gpu_models; do
        "$bundle/bin/$t" --test-threads 1 2>&1 | tee "$out/test_$t.log" | tail -15
    done

    echo "== Rust benchmarks (burn wgpu f32)"
    # The clip's frames, decoded once (OpenCV) as raw RGB24 for bench_end_to_end.
    python3 - "$bundle/clip.mp4" "$out/clip.rgb" >"$out/clip_size.txt" <<'PY'
import sys, cv2
cap, n = cv2.VideoCapture(sys.argv[1]), 0
with open(sys.argv[2], "wb") as f:
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        f.write(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).tobytes()); n += 1
        size = f"{bgr.shape[1]}x{bgr.shape[0]}"
print(size)
PY
    export MIMIC_BENCH_RAW="$out/clip.rgb" MIMIC_BENCH_RAW_SIZE="$(cat "$out/clip_size.txt")"
    for b in bench_vit bench_shaders bench_end_to_end; do
        "$bundle/bin/gpu_bench" --ignored --exact "$b" --nocapture \
            >"$out/$b.log" 2>&1 || echo "$b failed (see $b.log)"
        grep '^{' "$out/$b.log" || tail -20 "$out/$b.log"
    done
    for p in f16 bf16; do
        MIMIC_BENCH_PRECISION=$p "$bundle/bin/gpu_bench" --ignored --exact bench_vit --nocapture \
            >"$out/bench_vit_$p.log" 2>&1 || echo "bench_vit $p failed (see bench_vit_$p.log)"
        grep '^{' "$out/bench_vit_$p.log" || tail -5 "$out/bench_vit_$p.log"
    done

    echo "== PyTorch baselines"
    PYTHONPATH="$bundle/py${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 \
        python3 - "$MIMIC_BENCH_OUT" "$bundle/clip.mp4" "${MIMIC_BENCH_FRAMES:-3000}" <<'PY' 2>&1 | tee "$out/pytorch.log"
import json, sys, time
import cv2, numpy as np, torch
from timm.models.vision_transformer import VisionTransformer

out_path, clip, target = sys.argv[1], sys.argv[2], int(sys.argv[3])
dev = torch.device("cuda")
card = torch.cuda.get_device_name(0)

def record(**kv):
    kv["device"] = card
    line = json.dumps(kv)
    print(line)
    with open(out_path, "a") as f:
        f.write(line + "\n")

# The ViT shapes the Rust bench measured (same sizes, heads, pooling).
shapes = []
for line in open(out_path):
    r = json.loads(line)
    if r.get("bench") == "vit" and "vit" in r and r["vit"] not in [s[1] for s in shapes]:
        shapes.append((r["model"], r["vit"]))

def timm_vit(v):
    return VisionTransformer(img_size=v["image_size"], patch_size=v["patch_size"], in_chans=3,
        num_classes=max(v["num_classes"], 1), embed_dim=v["dim"], depth=v["depth"], num_heads=v["heads"],
        mlp_ratio=v["mlp_ratio"], global_pool="avg" if str(v["global_pool"]).lower().startswith("mean") else "token")

def bench(fn, seconds=2.0):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    runs, t0 = 0, time.perf_counter()
    while runs == 0 or time.perf_counter() - t0 < seconds:
        fn(); runs += 1
    torch.cuda.synchronize()
    return runs, time.perf_counter() - t0

for name, v in shapes:
    model = timm_vit(v).to(dev).eval()
    for dtype in (torch.float32, torch.bfloat16):
        for batch in (1, 64, 256):
            x = torch.randn(batch, 3, v["image_size"], v["image_size"], device=dev)
            def step():
                with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                    model(x).softmax(1).float().cpu()
            runs, secs = bench(step)
            record(bench="vit_pytorch", model=name, batch=batch, precision=str(dtype).split(".")[1],
                   images_per_s=runs * batch / secs)

# The PyTorch pipeline: cv2 decode, facenet MTCNN on the GPU (batches of 64), the same
# ViT shape on the aligned faces.
from facenet_pytorch import MTCNN
mtcnn = MTCNN(keep_all=True, device=dev)
v = shapes[0][1]
model = timm_vit(v).to(dev).eval()
size = v["image_size"]
tmpl = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                 [70.7299, 92.2041]], np.float32) * size / 112
stage = {"decode": 0.0, "detect": 0.0, "align": 0.0, "infer": 0.0}
frames = faces = 0
start = time.perf_counter()
cap = cv2.VideoCapture(clip)
while frames < target:
    t = time.perf_counter(); batch = []
    while len(batch) < min(64, target - frames):
        ok, bgr = cap.read()
        if not ok:
            cap = cv2.VideoCapture(clip); continue
        batch.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    stage["decode"] += time.perf_counter() - t
    t = time.perf_counter()
    boxes, probs, points = mtcnn.detect(np.stack(batch), landmarks=True)
    stage["detect"] += time.perf_counter() - t
    t = time.perf_counter(); crops = []
    for img, pts in zip(batch, points):
        for p in ([] if pts is None else pts):
            m, _ = cv2.estimateAffinePartial2D(p.astype(np.float32), tmpl)
            if m is not None:
                crops.append(cv2.warpAffine(img, m, (size, size)))
    stage["align"] += time.perf_counter() - t
    t = time.perf_counter()
    if crops:
        x = torch.from_numpy(np.stack(crops)).to(dev).permute(0, 3, 1, 2).float().div(255)
        with torch.inference_mode():
            model(x).softmax(1).cpu()
    stage["infer"] += time.perf_counter() - t
    frames += len(batch); faces += len(crops)
total = time.perf_counter() - start
record(bench="end_to_end_pytorch", frames=frames, faces=faces, batch=64, frames_per_s=frames / total,
       seconds=total, seconds_per_stage=stage)
PY
    rm -f "$out/clip.rgb"
    echo "results: $out/results.jsonl"
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: $0 prepare|run (see the header)" >&2; exit 2 ;;
esac
