#!/usr/bin/env bash
# The GPU path on a lent NVIDIA card (H100/H200): the GPU tests on the real card, then
# the benchmarks beside PyTorch on the same card, in one timed call. Results under $OUT.
#
# The device machine has no Rust toolchain and no network, and one call carries at most
# 64 MiB with the working tree. The binaries and the shared libraries they need (FFmpeg's
# and OpenCV's closure, ~290 MiB) come to ~120 MiB compressed, so they travel in pieces,
# one call each, made right after one another (the machine keeps what a call wrote
# outside the repository while it is warm, ~30 s between calls):
#
#   1. here:   scripts/gpu_bench.sh prepare [--no-vulkan]
#      builds the release test binaries (gpu_shaders, gpu_models, gpu_bench) and the mimic
#      binary with burn's wgpu runtime (WGSL kernels), and (unless --no-vulkan) the mimic
#      binary with its vulkan feature (SPIR-V kernels, a build of its own in
#      target/vulkan; the WGSL shaders do not run there, so its tests are not carried).
#      Packs into target/gpubench/ (ignored by git): the stripped binaries and libraries
#      as one xz stream cut into pieces part-1/, part-2/ …, and run/ with the last piece,
#      the Vulkan loader and GL dispatch (.deb), facenet_pytorch (pip download, no
#      dependencies), the shared clip and a 1280x720 version of it. Each folder fits one
#      call beside the working tree as it is now: prepare after the last commit. It
#      prints the calls (4 on 2026-12-02 with the 21 MiB tree: pieces of ~37 MiB).
#   2. there:  calls 1…k-1: command "bash scripts/gpu_bench.sh card-unpack",
#                           carry ["target/gpubench/part-i"]
#              last call:   command "bash scripts/gpu_bench.sh run",
#                           carry ["target/gpubench/run"], timeout_s 540
#      then copy $OUT/results.jsonl's figures into BENCHMARKS.md, naming the card.
#
# `run` takes < 9 minutes: tests ~1 min, ViT bench ~1.5 min per runtime, mimic bench on
# the looped clip (batch and live) and the 720p clip ~1 min per runtime, PyTorch ~2 min.
# MIMIC_BENCH_FRAMES (default 3000) and MIMIC_BENCH_VIT_BATCHES (default 1,64,256) shorten
# it; a smoke run on lavapipe here:
#   MIMIC_ALLOW_SOFTWARE_GPU=1 MIMIC_BENCH_FRAMES=4 MIMIC_BENCH_VIT_BATCHES=1 \
#       PATH=/work/pyref/bin:$PATH scripts/gpu_bench.sh run
# Without CUDA (as on lavapipe) the PyTorch part says so and is left out.
set -uo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/scripts/card_bundle.sh"
bundle="$here/target/gpubench"
tests=(gpu_shaders gpu_models gpu_bench)

# Copies the mimic binary of one build (CARGO_TARGET_DIR=$1, features $2) into
# $bundle/bin, suffixed $3 (empty, or -vulkan), and unless $4 is "no-tests" its test
# binaries too.
build_into_bundle() {
    local target="$1" features="$2" suffix="$3"
    local args=()
    for t in "${tests[@]}"; do args+=(--test "$t"); done
    CARGO_TARGET_DIR="$target" cargo build --release -p mimic --bin mimic $features
    cp "$target/release/mimic" "$bundle/bin/mimic$suffix"
    [ "${4:-}" = no-tests ] && return
    CARGO_TARGET_DIR="$target" cargo test --release --no-run $features "${args[@]}" \
        --message-format=json 2>/dev/null |
        python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
' | while read -r name exe; do cp "$exe" "$bundle/bin/$name$suffix"; done
}

prepare() {
    set -e
    cd "$here"
    rm -rf "$bundle"
    mkdir -p "$bundle/bin" "$bundle/lib"
    build_into_bundle "$here/target" "" ""
    if [ "${1:-}" != "--no-vulkan" ]; then
        build_into_bundle "$here/target/vulkan" "--features vulkan" "-vulkan" no-tests
    fi
    copy_shared_libs "$bundle/lib" "$bundle"/bin/*
    for b in "$bundle"/bin/*; do strip "$b"; done
    local budget
    budget=$(call_budget)
    # The last call's folder: the last piece and the rest of the bundle.
    local rest="$bundle/run"
    mkdir -p "$rest/gl" "$rest/py"
    download_vulkan_debs "$rest/gl"
    # facenet-pytorch (pure Python + its weights) for the PyTorch pipeline.
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$rest/py" facenet-pytorch==2.6.0
    (cd "$rest/py" && python3 -m zipfile -e facenet_pytorch-*.whl . && rm -f ./*.whl &&
        rm -rf facenet_pytorch-*.dist-info facenet_pytorch/data/*.pt.bak)
    local clip="$here/../shared/data/videos/short_hamilton_clip.mp4"
    [ -f "$clip" ] || clip="$here/tests/fixtures/clip.mp4"
    cp "$clip" "$rest/clip.mp4"
    ffmpeg -hide_banner -loglevel error -y -i "$clip" -an -vf scale=1280:720 -c:v libx264 \
        -preset veryfast -crf 23 "$rest/clip720.mp4"
    # Binaries and libraries as one stream, cut so that each piece fills a call and the
    # last leaves room for the rest.
    local piece=$((budget - $(du -cb "$rest" | tail -1 | cut -f1)))
    # One LZMA2 stream with a dictionary as large as the binaries, so that each binary is
    # coded against the ones before it (they share burn, wgpu and mimic itself): 119 MiB
    # for the five binaries and the libraries. Decoding needs 768 MiB of memory.
    tar -C "$bundle" -cf - bin lib | xz -T1 --lzma2=preset=6,dict=768MiB >"$bundle/binaries.tar.xz"
    (cd "$bundle" && sha256sum binaries.tar.xz >"$rest/binaries.sha256")
    split -b "$piece" -d -a 2 "$bundle/binaries.tar.xz" "$bundle/binaries.tar.xz."
    rm "$bundle/binaries.tar.xz"
    rm -rf "$bundle/bin" "$bundle/lib"
    local pieces=("$bundle"/binaries.tar.xz.*) i
    for i in "${!pieces[@]}"; do
        if [ "$i" -eq $((${#pieces[@]} - 1)) ]; then
            mv "${pieces[$i]}" "$rest/"
        else
            mkdir -p "$bundle/part-$((i + 1))"
            mv "${pieces[$i]}" "$bundle/part-$((i + 1))/"
        fi
    done
    du -sh "$bundle"/*
    for f in "$bundle"/*/; do
        if [ "$(du -cb "$f" | tail -1 | cut -f1)" -gt "$budget" ]; then
            echo "gpu_bench: $f is over the $((budget >> 20)) MiB a call carries" >&2
            exit 1
        fi
    done
    echo "gpu_bench: the calls, one right after the other:"
    for i in $(seq 1 $((${#pieces[@]} - 1))); do
        echo "  run command \"bash scripts/gpu_bench.sh card-unpack\" carry [\"target/gpubench/part-$i\"]"
    done
    echo "  run command \"bash scripts/gpu_bench.sh run\" carry [\"target/gpubench/run\"] timeout_s 540"
}

# The pieces this call carried, kept outside the repository (which the next call replaces).
pieces_dir=/root/gpubench-pieces
card_unpack() {
    mkdir -p "$pieces_dir"
    local f
    for f in "$bundle"/part-*/binaries.tar.xz.* "$bundle"/run/binaries.tar.xz.*; do
        [ -f "$f" ] || continue
        cp "$f" "$pieces_dir/"
        echo "gpu_bench: kept $(basename "$f")"
    done
}

run() {
    cd "$here"
    out="${OUT:-$here/target/gpubench-out}"
    mkdir -p "$out"
    export MIMIC_BENCH_OUT="$out/results.jsonl"
    : >"$MIMIC_BENCH_OUT"
    local frames="${MIMIC_BENCH_FRAMES:-3000}"
    # The binaries and libraries: every piece up to the last (which this call carries),
    # joined and unpacked outside the repository.
    local rest="$bundle/run"
    card_unpack
    local last pieces=() k
    last=$(basename "$(ls "$rest"/binaries.tar.xz.* | tail -1)")
    for k in $(seq 0 $((10#${last##*.}))); do
        pieces+=("$pieces_dir/binaries.tar.xz.$(printf %02d "$k")")
        [ -f "${pieces[-1]}" ] || {
            echo "gpu_bench: piece $k missing: make the card-unpack calls first, right before this one" >&2
            exit 1
        }
    done
    [ "$(cat "${pieces[@]}" | sha256sum | cut -d' ' -f1)" = "$(cut -d' ' -f1 "$rest/binaries.sha256")" ] || {
        echo "gpu_bench: the pieces do not join into the prepared bundle (stale pieces in $pieces_dir?)" >&2
        exit 1
    }
    local unpacked=/tmp/mimic-gpubench
    rm -rf "$unpacked" && mkdir -p "$unpacked"
    cat "${pieces[@]}" | python3 -c 'import lzma, sys, tarfile; tarfile.open(fileobj=lzma.open(sys.stdin.buffer), mode="r|").extractall(sys.argv[1])' \
        "$unpacked"
    local bin="$unpacked/bin"
    # The test binaries look for fixtures and models where they were built.
    built_at=/work/main
    if [ ! -e "$built_at" ]; then mkdir -p /work && ln -s "$here" "$built_at"; fi
    # Vulkan: loader and GL dispatch from the bundle if the image has none; NVIDIA's ICD
    # from the driver.
    if ! ldconfig -p | grep -q libvulkan.so.1; then
        for f in "$rest"/gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
        export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
        export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    fi
    export LD_LIBRARY_PATH="$unpacked/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    {
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
        command -v vulkaninfo >/dev/null && vulkaninfo --summary 2>&1 | grep -E 'deviceName|driverName|apiVersion'
    } >"$out/card.txt" 2>&1
    cat "$out/card.txt"
    local runtimes=("")
    [ -x "$bin/mimic-vulkan" ] && runtimes+=("-vulkan")

    echo "== GPU tests on the card"
    for suffix in "${runtimes[@]}"; do
        for t in gpu_shaders gpu_models; do
            [ -x "$bin/$t$suffix" ] || continue
            "$bin/$t$suffix" --test-threads 1 >"$out/test_$t$suffix.log" 2>&1
            tail -3 "$out/test_$t$suffix.log"
        done
    done

    echo "== Rust benchmarks"
    # The clip's frames, decoded once as raw RGB24 for bench_end_to_end (FFmpeg through
    # the mimic binary's own libraries is not at hand: OpenCV's Python binding decodes).
    python3 - "$rest/clip.mp4" "$out/clip.rgb" >"$out/clip_size.txt" <<'PY'
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
    for suffix in "${runtimes[@]}"; do
        for b in bench_vit bench_shaders bench_end_to_end; do
            [ -x "$bin/gpu_bench$suffix" ] || continue
            "$bin/gpu_bench$suffix" --ignored --exact "$b" --nocapture \
                >"$out/$b$suffix.log" 2>&1 || echo "$b$suffix failed (see $b$suffix.log)"
            grep '^{' "$out/$b$suffix.log" || tail -20 "$out/$b$suffix.log"
        done
        # The analyzer itself: batch mode on the clip looped to $frames frames and on the
        # 720p clip, then live mode (newest frame wins, batch 1) with its latency.
        for clip in clip.mp4 clip720.mp4; do
            "$bin/mimic$suffix" bench "$rest/$clip" --device gpu --frames "$frames" \
                --vit-batches "${MIMIC_BENCH_VIT_BATCHES:-1,64,256}" >"$out/mimic_bench_${clip%.mp4}$suffix.log" 2>&1 ||
                echo "mimic bench $clip$suffix failed"
            grep -E 'device|pipeline|faces/s|frames/s|busy' "$out/mimic_bench_${clip%.mp4}$suffix.log" | head -12
        done
        "$bin/mimic$suffix" analyze "$rest/clip.mp4" --live --device gpu -o /tmp/live.csv \
            >"$out/mimic_live$suffix.log" 2>&1 || echo "mimic live$suffix failed"
        grep -E 'frames|latency' "$out/mimic_live$suffix.log"
    done

    if ! python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        echo "== PyTorch baselines: no CUDA here, left out"
        rm -f "$out/clip.rgb"
        echo "results: $out/results.jsonl"
        return
    fi
    echo "== PyTorch baselines"
    PYTHONPATH="$rest/py${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 \
        python3 - "$MIMIC_BENCH_OUT" "$rest/clip.mp4" "${MIMIC_BENCH_FRAMES:-3000}" <<'PY' 2>&1 | tee "$out/pytorch.log"
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
for dtype in (torch.float32, torch.bfloat16):
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
      with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
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
          with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
              model(x).softmax(1).float().cpu()
      stage["infer"] += time.perf_counter() - t
      frames += len(batch); faces += len(crops)
  total = time.perf_counter() - start
  record(bench="end_to_end_pytorch", frames=frames, faces=faces, batch=64, frames_per_s=frames / total,
         seconds=total, seconds_per_stage=stage, precision=str(dtype).split(".")[1])
PY
    rm -f "$out/clip.rgb"
    echo "results: $out/results.jsonl"
}

case "${1:-}" in
    prepare) shift; prepare "$@" ;;
    card-unpack) card_unpack ;;
    run) run ;;
    *) echo "usage: $0 prepare|card-unpack|run (see the header)" >&2; exit 2 ;;
esac
