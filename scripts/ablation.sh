#!/usr/bin/env bash
# The MIMIC ablation of the model card: the same fine-tuning budget four ways,
#   scratch + CE, MAE + CE, scratch + mix-SupCon, MAE + mix-SupCon,
# each selected on FER+ Valid (best epoch) and measured once on FER+ Test.
#
#   scripts/ablation.sh MAE_RUN OUT_DIR [EPOCHS] [extra finetune options…]
#
# Only two things change between the variants: `--init MAE_RUN` (or from scratch with the
# same ViT shape) and `--supcon-weight` (0 = cross-entropy only, else the recipe's 0.1).
# Everything else, mixup/cutmix included, is the shipped recipe's: the CE variants see
# the same mixed images, with mixed targets, so the table isolates the contrastive term.
#
# Each variant is a resumable mimic-train run folder: re-running the script resumes
# unfinished variants and skips finished ones (marked by a file `done`). The test split
# is measured where the data has it (FER2013Test), so variants trained on a lent GPU
# (`scripts/gpu_train.sh ablation`, which carries FER+ Train and Valid only) are measured
# by re-running this script here on their unpacked folders. The table is written to
# OUT_DIR/ablation.md.
#
# Environment: MIMIC_TRAIN (binary), MIMIC_DATA (FER+ root), ABLATION_DEVICE (cpu),
# ABLATION_BATCH (64).
set -euo pipefail

mae="${1:?usage: ablation.sh MAE_RUN OUT_DIR [EPOCHS] [finetune options…]}"
out="${2:?usage: ablation.sh MAE_RUN OUT_DIR [EPOCHS] [finetune options…]}"
epochs="${3:-1}"
shift $(($# < 3 ? $# : 3))
here="$(cd "$(dirname "$0")/.." && pwd)"
train="${MIMIC_TRAIN:-$here/target/release/mimic-train}"
data="${MIMIC_DATA:-$here/target/data}"

common=(--data "$data" --dataset ferplus --preset micro --pool mean --epochs "$epochs"
    --batch-size "${ABLATION_BATCH:-64}" --blr 0.001
    --warmup-epochs "$(python3 -c "print(min(6, 0.1 * $epochs))")"
    --mix both --seed 1 --device "${ABLATION_DEVICE:-cpu}" "$@")

mkdir -p "$out"
for init in scratch mae; do
    for loss in ce mix-supcon; do
        name="$init+$loss"
        run="$out/$name"
        args=("${common[@]}" --out "$run")
        [ "$init" = mae ] && args+=(--init "$mae")
        if [ "$loss" = ce ]; then args+=(--supcon-weight 0); else args+=(--supcon-weight 0.1); fi
        if [ ! -f "$run/done" ]; then
            echo "== $name"
            "$train" finetune "${args[@]}" 2>&1 | tee -a "$run.log"
            touch "$run/done"
        fi
        if [ -d "$data/FER2013Test" ] && [ ! -f "$run/eval-test/summary.json" ]; then
            "$train" eval --model "$run" --data "$data" --split test --out "$run/eval-test"
        fi
    done
done

python3 - "$out" "$epochs" <<'PY' | tee "$out/ablation.md"
import csv, json, sys, pathlib
out, epochs = pathlib.Path(sys.argv[1]), sys.argv[2]
print(f"| pre-training | loss | best valid epoch (of {epochs}) | FER+ valid | FER+ test | test mean class |")
print("|---|---|---:|---:|---:|---:|")
for init in ("scratch", "mae"):
    for loss in ("ce", "mix-supcon"):
        run = out / f"{init}+{loss}"
        rows = list(csv.DictReader(open(run / "metrics.csv")))
        best = max(rows, key=lambda r: float(r["valid_accuracy"]))
        summary = run / "eval-test" / "summary.json"
        test, mean_class = "—", "—"
        if summary.exists():
            s = json.load(open(summary))
            test = f"{100 * s['accuracy']:.2f} %"
            mean_class = f"{100 * s['mean_class_accuracy']:.2f} %"
        print(f"| {'MAE (Tiny-ImageNet)' if init == 'mae' else 'none'} "
              f"| {'CE' if loss == 'ce' else 'CE + mix-SupCon'} | {best['epoch']} "
              f"| {100 * float(best['valid_accuracy']):.2f} % | {test} | {mean_class} |")
PY
