#!/usr/bin/env bash
# MIMIC fine-tuning of the default model on a lent NVIDIA card, through burn's wgpu
# backend (Vulkan), with the mimic-train binary built here.
#
# The device machine has no Rust toolchain, no network and no ../shared/data, and each
# call carries at most 64 MiB, so the work takes two calls made back to back (the machine
# stays warm ~30 s between calls and keeps what was written outside the repository):
#
#   here:   scripts/gpu_train.sh prepare MAE     (a models/mae-… package or an MAE run folder)
#           builds mimic-train and fills two ignored folders:
#             target/gpudata/   FER+ Train + Valid (tar.xz, ~55 MB)
#             target/gputrain/  the stripped binary (xz), the shared libraries it needs
#                               beyond glibc, the Vulkan loader and GL vendor-neutral
#                               dispatch (.deb: the NVIDIA ICD needs both), MAE_RUN's encoder
#   call 1: command "bash scripts/gpu_train.sh unpack",  carry ["target/gpudata"]
#   call 2: command "bash scripts/gpu_train.sh train",   carry ["target/gputrain"]
#           measures fine-tuning images/s on the card, picks the number of epochs that
#           fits MIMIC_TRAIN_SECONDS (default 330), fine-tunes, and returns the run's
#           best/ package, metrics.csv, options.json and log under $OUT.
#   here:   copy the package into a run folder, then `mimic-train eval` (test split) and
#           `mimic-train export` as for a CPU run.
#
#   ablation: command "MIMIC_ABLATION_SEEDS=1 bash scripts/gpu_train.sh ablation", carry
#           ["target/gputrain"] (after unpack), then the same with seeds 2 and 3: each call
#           scripts/ablation.sh's four-way cells for one seed, four runs at once, MAE = the
#           bundle's encoder.
#   bench:  command "bash scripts/gpu_train.sh bench", carry ["target/gputrain"]
#           training images/s of both stages on the card: `mimic-train bench` (burn wgpu,
#           f32) beside scripts/bench_python_training.py (PyTorch CUDA, f32), same call.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/scripts/card_bundle.sh"
data_dir=/root/mimic-ferplus

prepare() {
    local mae="$1"
    cd "$here"
    cargo build --release -p mimic-train
    rm -rf target/gpudata target/gputrain
    mkdir -p target/gpudata target/gputrain/lib target/gputrain/gl target/gputrain/mae
    tar -C target/data -cf - FER2013Train FER2013Valid | xz -9 -T0 >target/gpudata/ferplus.tar.xz
    strip -o target/gputrain/mimic-train target/release/mimic-train
    xz -9 -T0 target/gputrain/mimic-train
    copy_shared_libs target/gputrain/lib target/release/mimic-train
    download_vulkan_debs target/gputrain/gl
    # A shipped MAE package (models/mae-…: mae.safetensors + mae.json) or a run folder.
    if [ -f "$mae/mae.json" ]; then
        cp "$mae"/mae.safetensors "$mae"/mae.json target/gputrain/mae/
    else
        cp "$mae"/encoder.safetensors "$mae"/encoder.json target/gputrain/mae/
    fi
    du -sh target/gpudata target/gputrain
}

unpack() {
    rm -rf "$data_dir" && mkdir -p "$data_dir"
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
        "$here/target/gpudata/ferplus.tar.xz" "$data_dir"
    ls "$data_dir"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
}

# Vulkan on the card (loader + glvnd from the bundle, NVIDIA's ICD from the driver) and
# the binary unpacked to /root/mimic-train; results go to $OUT.
setup_card() {
    bundle="$here/target/gputrain" out="${OUT:-$here/target/gputrain-out}"
    mkdir -p "$out"
    for f in "$bundle"/gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    export LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    bin=/root/mimic-train
    python3 -c 'import lzma, sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' \
        "$bundle/mimic-train.xz" >"$bin"
    chmod +x "$bin"
    nvidia-smi --query-gpu=name --format=csv,noheader | tee "$out/card.txt" || true
}

bench() {
    setup_card
    "$bin" bench --presets micro --stages pretrain,finetune --pretrain-batch 256 \
        --finetune-batch 256 --seconds 15 --device wgpu 2>&1 | tee "$out/bench_mimic.txt"
    python3 "$here/scripts/bench_python_training.py" --device cuda --preset micro \
        --pretrain-batch 256 --finetune-batch 256 --seconds 15 2>&1 | tee "$out/bench_pytorch.txt"
}

train() {
    setup_card
    "$bin" bench --presets micro --stages finetune --finetune-batch 256 --seconds 10 \
        --device wgpu 2>&1 | tee "$out/bench.txt"
    local ips epochs
    ips=$(awk '$1 == "micro" && $2 == "finetune" {print int($4)}' "$out/bench.txt")
    # ~28k FER+ training images per epoch (probability labels); ~15 % extra for validation.
    epochs=$(( ${MIMIC_TRAIN_SECONDS:-330} * ips * 85 / 100 / 27947 ))
    if [ "$epochs" -gt 60 ]; then epochs=60; fi
    if [ "$epochs" -lt 2 ]; then epochs=2; fi
    echo "fine-tuning images/s: $ips -> $epochs epochs" | tee -a "$out/bench.txt"

    local run=/root/ft-micro status=0
    # The campaign's fine-tuning recipe: the crowd's vote distributions as targets, model
    # choice on the mean of accuracy and mean class accuracy.
    "$bin" finetune --data "$data_dir" --dataset ferplus --label-mode probability \
        --select average --init "$bundle/mae" --out "$run" --preset micro --epochs "$epochs" \
        --batch-size 256 --warmup-epochs $(( epochs / 10 + 1 )) --seed 1 --device wgpu \
        >"$out/finetune.log" 2>&1 || status=$?
    tail -5 "$out/finetune.log"
    cp "$run/metrics.csv" "$run/options.json" "$out/" || true
    cp "$run"/best/* "$out/" || true
    ls -la "$out"
    return "$status"
}

# scripts/ablation.sh's four-way cells on the card for the seeds MIMIC_ABLATION_SEEDS (1),
# MIMIC_ABLATION_EPOCHS (12) epochs each at batch 256, JOBS (4) runs sharing the card; the
# runs stop after MIMIC_ABLATION_SECONDS (500) so that the call returns what finished:
# each run as one tar (best/ package, metrics, log). Here: untar them into a folder and
# re-run `ABLATION_MAE=MAE scripts/ablation.sh FOLDER 12 "1 2 3" four-way` to measure
# FER+ Test and write the table.
ablation() {
    setup_card
    local runs=/root/ablation epochs="${MIMIC_ABLATION_EPOCHS:-12}" status=0
    MIMIC_TRAIN="$bin" MIMIC_DATA="$data_dir" ABLATION_MAE="$bundle/mae" ABLATION_DEVICE=wgpu \
        ABLATION_BATCH=256 JOBS="${JOBS:-4}" timeout "${MIMIC_ABLATION_SECONDS:-500}" \
        bash "$here/scripts/ablation.sh" "$runs" "$epochs" "${MIMIC_ABLATION_SEEDS:-1}" \
        four-way >"$out/ablation.log" 2>&1 || status=$?
    tail -8 "$out/ablation.log"
    for run in "$runs"/*-s*/; do
        name="$(basename "$run")"
        # Finished runs only (every epoch in metrics.csv): a stopped one is re-run.
        [ "$(tail -n +2 "$run/metrics.csv" 2>/dev/null | wc -l)" -ge "$epochs" ] || continue
        tar -C "$runs" -cf "$out/$name.tar" "$name/best" "$name/metrics.csv" \
            "$name/options.json" "$name.log" 2>/dev/null || true
    done
    ls -la "$out"
    return "$status"
}

case "${1:-}" in
    prepare) prepare "${2:?usage: gpu_train.sh prepare MAE_RUN}" ;;
    unpack) unpack ;;
    train) train ;;
    bench) bench ;;
    ablation) ablation ;;
    *) echo "usage: $0 prepare MAE_RUN | unpack | train | bench | ablation" >&2; exit 2 ;;
esac
