#!/usr/bin/env bash
# The model's training campaign, in slices that each fit one lease of a machine.
#
# Stage 1 (MAE on general images) needs hundreds of epochs; no lease is that long. Each
# slice resumes from the newest package the repository holds (models/mae-$PRESET/,
# written by `mimic-train package-mae`), trains for at most MINUTES, and packages the
# result again: commit it, and the next lease (a card, or a CPU session) continues from
# there. Every slice shares one schedule (warm-up + cosine over MAE_EPOCHS at MAE_BATCH),
# the data order and the masking seeds of one uninterrupted run; only AdamW's moments
# restart (with a short re-warm-up), because the package holds weights, not the optimizer.
#
# On this machine (CPU, or any machine with the toolchain and ../shared/data):
#   scripts/campaign.sh mae MINUTES [--device cpu]
#       trains a slice here and writes models/mae-$PRESET/ in place.
#
# On a lent card (no toolchain, no network, no ../shared/data; each call carries at most
# 64 MiB, and the machine keeps what a call wrote outside the repository while it is warm):
#   here:   scripts/campaign.sh prepare
#             builds mimic-train and fills target/campaign/: bin/ (the stripped binary,
#             xz; the shared libraries it needs beyond glibc; the Vulkan loader and GL
#             dispatch .debs that NVIDIA's ICD needs) and data-1/, data-2/ … (the MAE
#             images as tars, each sized so that it travels with the working tree within
#             64 MiB), and prints the calls, which must follow each other at once (the
#             machine keeps its files only while warm):
#   calls 1…k: command "bash scripts/campaign.sh card-unpack", carry ["target/campaign/data-i"]
#   last call: command "bash scripts/campaign.sh card-mae 8", carry ["target/campaign/bin"]
#             measures, trains one slice of 8 minutes and returns the new package as
#             $OUT/mae-$PRESET/ (6 files, 2 folders deep at most, as $OUT allows).
#   here:   scripts/campaign.sh land /work/.device/<run>/files/mae-$PRESET
#             copies it into models/ and prints the package's card; commit models/mae-$PRESET.
#
# The fine-tuning slice of the recipe (FER+, on a card) is scripts/gpu_train.sh train with
# models/mae-$PRESET as the MAE (scripts/gpu_train.sh prepare models/mae-$PRESET).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/scripts/card_bundle.sh"

# The campaign's schedule. Changing any of these starts a new campaign (a package refuses a
# continuation of another shape, batch size or data).
PRESET=${PRESET:-micro}
MAE_EPOCHS=${MAE_EPOCHS:-400}
MAE_BATCH=${MAE_BATCH:-512}
MAE_BLR=${MAE_BLR:-1.5e-4}
MAE_WARMUP=${MAE_WARMUP:-10}
MAE_SEED=${MAE_SEED:-1}
PACKAGE="mae-$PRESET"

# One slice: pretrain (from the package when there is one) for MINUTES, then package-mae.
#   slice BIN DATA MODELS_DIR RUNS_DIR MINUTES [extra pretrain options…]
slice() {
    local bin="$1" data="$2" models="$3" runs="$4" minutes="$5"
    shift 5
    local from=() steps=0
    if [ -f "$models/$PACKAGE/mae.json" ]; then
        from=(--from "$models/$PACKAGE")
        steps=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["steps"])' \
            "$models/$PACKAGE/mae.json")
    fi
    # One run folder per slice start: re-running an interrupted slice resumes it.
    local run="$runs/$PACKAGE-from-$steps"
    echo "campaign: $PACKAGE from step $steps, $minutes minutes, run folder $run"
    "$bin" pretrain --data "$data" --out "$run" --preset "$PRESET" --epochs "$MAE_EPOCHS" \
        --batch-size "$MAE_BATCH" --blr "$MAE_BLR" --warmup-epochs "$MAE_WARMUP" \
        --seed "$MAE_SEED" --max-minutes "$minutes" "${from[@]}" "$@"
    "$bin" package-mae --run "$run" --name "$PACKAGE" --models-dir "$models"
    sed -n '/## Training so far/,/^!\[/p' "$models/$PACKAGE/MODEL_CARD.md"
}

mae_here() {
    local minutes="${1:?usage: campaign.sh mae MINUTES [pretrain options…]}"
    shift
    cd "$here"
    [ -f target/data/tiny-imagenet-50k/wnids.txt ] || scripts/extract_data.sh
    cargo build --release -p mimic-train
    slice target/release/mimic-train target/data/tiny-imagenet-50k models target/campaign/runs \
        "$minutes" "$@"
}

prepare() {
    cd "$here"
    [ -f target/data/tiny-imagenet-50k/wnids.txt ] || scripts/extract_data.sh
    cargo build --release -p mimic-train
    rm -rf target/campaign/bin target/campaign/data-*
    mkdir -p target/campaign/bin/lib target/campaign/bin/gl
    strip -o target/campaign/bin/mimic-train target/release/mimic-train
    xz -9 -T0 target/campaign/bin/mimic-train
    copy_shared_libs target/campaign/bin/lib target/release/mimic-train
    download_vulkan_debs target/campaign/bin/gl
    local budget
    budget=$(call_budget)
    local bin_bytes
    bin_bytes=$(du -cb target/campaign/bin | tail -1 | cut -f1)
    if [ "$bin_bytes" -gt "$budget" ]; then
        echo "campaign: bin/ is $((bin_bytes >> 20)) MiB, over the $((budget >> 20)) MiB a call carries" >&2
        exit 1
    fi
    # The JPEGs as they are (already compressed), class folders split into parts of at most
    # `budget` bytes.
    local part=1 bytes=0 folder size
    : >"target/campaign/part-1.list"
    for folder in target/data/tiny-imagenet-50k/*/; do
        size=$(find "$folder" -type f -printf '%s\n' | awk '{s += $1 + 512} END {print s + 0}')
        if [ $((bytes + size)) -gt "$budget" ] && [ "$bytes" -gt 0 ]; then
            part=$((part + 1)) bytes=0
            : >"target/campaign/part-$part.list"
        fi
        basename "$folder" >>"target/campaign/part-$part.list"
        bytes=$((bytes + size))
    done
    local i
    for i in $(seq 1 "$part"); do
        mkdir -p "target/campaign/data-$i"
        local names=()
        mapfile -t names <"target/campaign/part-$i.list"
        [ "$i" -eq 1 ] && names+=(wnids.txt words.txt)
        tar -C target/data/tiny-imagenet-50k -cf "target/campaign/data-$i/images.tar" "${names[@]}"
        rm "target/campaign/part-$i.list"
    done
    du -sh target/campaign/bin target/campaign/data-*
    echo "campaign: the calls, one right after the other:"
    for i in $(seq 1 "$part"); do
        echo "  run command \"bash scripts/campaign.sh card-unpack\" carry [\"target/campaign/data-$i\"]"
    done
    echo "  run command \"bash scripts/campaign.sh card-mae 8\" carry [\"target/campaign/bin\"] timeout_s 600"
}

# On the card: unpack the image part this call carried (kept outside the repository, which
# the next call replaces).
card_unpack() {
    local data=/root/campaign-data/tiny-imagenet-50k
    mkdir -p "$data"
    local tarball
    for tarball in "$here"/target/campaign/data-*/images.tar; do
        [ -f "$tarball" ] || continue
        tar -C "$data" -xf "$tarball"
        echo "campaign: unpacked $tarball"
    done
    find "$data" -type f -name '*.JPEG' | wc -l
}

# On the card: Vulkan (loader + glvnd from the bundle, NVIDIA's ICD from the driver), the
# binary unpacked, the images unpacked; then one slice into $OUT.
card_mae() {
    local minutes="${1:?usage: campaign.sh card-mae MINUTES}"
    local bundle="$here/target/campaign/bin" out="${OUT:?card-mae runs on the device machine}"
    for f in "$bundle"/gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    export LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    local bin=/root/mimic-train data=/root/campaign-data
    python3 -c 'import lzma, sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' \
        "$bundle/mimic-train.xz" >"$bin"
    chmod +x "$bin"
    card_unpack
    [ -f "$data/tiny-imagenet-50k/wnids.txt" ] ||
        { echo "campaign: no images: run the card-unpack calls first" >&2; exit 1; }
    # Training images/s of both stages at the campaign's shapes, beside PyTorch + timm (fp32
    # and bf16) on the same card, in this call. ($OUT takes 8 files: this, the log and the
    # package's 6.)
    {
        nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
        "$bin" bench --presets "$PRESET" --stages pretrain,finetune --pretrain-batch "$MAE_BATCH" \
            --finetune-batch 256 --seconds 10 --device wgpu
        for dtype in fp32 bf16; do
            python3 "$here/scripts/bench_python_training.py" --device cuda --preset "$PRESET" \
                --pretrain-batch "$MAE_BATCH" --finetune-batch 256 --seconds 10 --dtype "$dtype"
        done
    } 2>&1 | tee "$out/bench.txt" || true
    # The package the repository holds travels with the working tree; the new one goes
    # to $OUT, which is what comes back.
    mkdir -p /root/campaign-models
    rm -rf "/root/campaign-models/$PACKAGE"
    [ -d "$here/models/$PACKAGE" ] && cp -r "$here/models/$PACKAGE" /root/campaign-models/
    set -o pipefail
    slice "$bin" "$data/tiny-imagenet-50k" /root/campaign-models /root/campaign-runs \
        "$minutes" --device wgpu 2>&1 | tee "$out/slice.log"
    mkdir -p "$out/$PACKAGE"
    cp "/root/campaign-models/$PACKAGE"/* "$out/$PACKAGE/"
    ls -la "$out/$PACKAGE"
}

land() {
    local from="${1:?usage: campaign.sh land FOLDER (the returned mae-$PRESET)}"
    cd "$here"
    [ -f "$from/mae.json" ] || { echo "campaign: $from holds no mae.json" >&2; exit 1; }
    mkdir -p "models/$PACKAGE"
    cp "$from"/* "models/$PACKAGE/"
    sed -n '/## Training so far/,/^!\[/p' "models/$PACKAGE/MODEL_CARD.md"
    echo "campaign: models/$PACKAGE updated; commit it (git add models/$PACKAGE)"
}

case "${1:-}" in
    mae) shift; mae_here "$@" ;;
    prepare) prepare ;;
    card-unpack) card_unpack ;;
    card-mae) shift; card_mae "$@" ;;
    land) shift; land "$@" ;;
    *) echo "usage: $0 mae MINUTES [options] | prepare | card-unpack | card-mae MINUTES | land FOLDER" >&2; exit 2 ;;
esac
