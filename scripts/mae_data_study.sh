#!/usr/bin/env bash
# What MAE should see: general images (Tiny-ImageNet, the paper's choice), FER+ Train faces
# (never Valid or Test), or both, at the same number of MAE steps, each probed by the same
# short fine-tuning (scripts/ablation.sh, CE + mix-SupCon, both mixings).
#
#   scripts/mae_data_study.sh OUT_DIR STEPS "SEEDS" [FINETUNE_EPOCHS (5)]
#
# Every MAE run follows the campaign's schedule (scripts/campaign.sh: micro, batch 512,
# blr 1.5e-4, 400 epochs of Tiny-ImageNet with 10 of warm-up) rescaled to its data's steps
# per epoch, so that the learning rate is the same at every step, and stops after STEPS
# steps (395 = the campaign's first slice, 4 epochs of Tiny-ImageNet). GENERAL_FROM=REV
# takes the general-image encoder from models/mae-micro at git revision REV instead of
# training it (921bbfe is exactly this run at 395 steps). Data: `faces` is
# target/data/FER2013Train (48 px); `both` is Tiny-ImageNet beside those faces scaled to
# 64 px (ffmpeg, bicubic), target/data/mae-both. Each MAE run resumes where it stopped; the
# probes resume as scripts/ablation.sh does. Tables: OUT_DIR/probes/ablation.md.
#
# Environment: MIMIC_TRAIN, MIMIC_DATA (FER+ root, default target/data), GENERAL_FROM,
# VARIANTS (default "general faces both"), JOBS (probes at once, default 2).
set -euo pipefail

usage="usage: mae_data_study.sh OUT_DIR STEPS \"SEEDS\" [FINETUNE_EPOCHS]"
out="${1:?$usage}" steps="${2:?$usage}" seeds="${3:?$usage}" epochs="${4:-5}"
here="$(cd "$(dirname "$0")/.." && pwd)"
train="${MIMIC_TRAIN:-$here/target/release/mimic-train}"
data="${MIMIC_DATA:-$here/target/data}"
mkdir -p "$out"

[ -f "$data/tiny-imagenet-50k/wnids.txt" ] || "$here/scripts/extract_data.sh"
both="$data/mae-both"
if [ "$(find "$both/faces-64" -name '*.png' 2>/dev/null | wc -l)" -ne \
    "$(find "$data/FER2013Train" -name '*.png' | wc -l)" ]; then
    rm -rf "$both" && mkdir -p "$both/faces-64"
    ln -s ../tiny-imagenet-50k "$both/tiny-imagenet-50k"
    ffmpeg -loglevel error -pattern_type glob -i "$data/FER2013Train/*.png" \
        -vf scale=64:64:flags=bicubic -start_number 0 "$both/faces-64/face%05d.png"
fi

# mae NAME FOLDER: STEPS steps of the campaign's schedule on FOLDER, packaged as OUT/NAME.
mae() {
    local name="$1" folder="$2" run="$out/$1-run"
    [ -f "$out/$name/mae.json" ] && return
    local images per_epoch done_steps
    images=$(find -L "$folder" -type f \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' \
        -o -iname '*.bmp' \) | wc -l)
    per_epoch=$((images / 512))
    done_steps=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" \
        "$run/checkpoint/state.json" 2>/dev/null || echo 0)
    if [ "$done_steps" -lt "$steps" ]; then
        echo "mae_data_study: $name, $images images, $per_epoch steps per epoch, from step $done_steps"
        "$train" pretrain --data "$folder" --out "$run" --preset micro --batch-size 512 \
            --blr 1.5e-4 --min-lr 0 --weight-decay 0.05 --mask-ratio 0.75 --crop-min-scale 0.2 \
            --epochs $(((400 * 98 + per_epoch / 2) / per_epoch)) \
            --warmup-epochs "$(python3 -c "print(10 * 98 / $per_epoch)")" \
            --seed 1 --device cpu --max-steps $((steps - done_steps)) >>"$run.log" 2>&1
    fi
    "$train" package-mae --run "$run" --name "$name" --models-dir "$out" >/dev/null
}

cells=()
for variant in ${VARIANTS:-general faces both}; do
    case "$variant" in
        general)
            if [ -z "${GENERAL_FROM:-}" ]; then
                mae mae-general "$data/tiny-imagenet-50k"
            elif [ ! -f "$out/mae-general/mae.json" ]; then
                mkdir -p "$out/mae-general"
                for f in $(git -C "$here" ls-tree --name-only "$GENERAL_FROM" models/mae-micro/); do
                    git -C "$here" show "$GENERAL_FROM:$f" >"$out/mae-general/$(basename "$f")"
                done
            fi ;;
        faces) mae mae-faces "$data/FER2013Train" ;;
        both) mae mae-both "$both" ;;
        *) echo "mae_data_study: VARIANTS holds '$variant', not general, faces or both" >&2; exit 2 ;;
    esac
    got=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['steps'])" \
        "$out/mae-$variant/mae.json")
    [ "$got" -eq "$steps" ] || { echo "mae_data_study: mae-$variant has $got MAE steps, not $steps" >&2; exit 1; }
    cells+=("$out/mae-$variant:supcon:both")
done

JOBS="${JOBS:-2}" MIMIC_TRAIN="$train" MIMIC_DATA="$data" "$here/scripts/ablation.sh" \
    "$out/probes" "$epochs" "$seeds" "${cells[@]}"
