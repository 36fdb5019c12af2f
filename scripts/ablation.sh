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
# Each variant is a resumable mimic-train run folder: re-running the script resumes
# unfinished variants and skips finished ones. The table is written to OUT_DIR/ablation.md.
set -euo pipefail

mae="${1:?usage: ablation.sh MAE_RUN OUT_DIR [EPOCHS] [finetune options…]}"
out="${2:?usage: ablation.sh MAE_RUN OUT_DIR [EPOCHS] [finetune options…]}"
epochs="${3:-1}"
shift $(( $# < 3 ? $# : 3 ))
here="$(cd "$(dirname "$0")/.." && pwd)"
train="${MIMIC_TRAIN:-$here/target/release/mimic-train}"
data="${MIMIC_DATA:-$here/target/data}"

common=(--data "$data" --dataset ferplus --preset micro --pool mean --epochs "$epochs"
    --batch-size 64 --blr 0.001 --warmup-epochs "$(python3 -c "print(min(6, 0.1 * $epochs))")"
    --mix both --seed 1 --device cpu "$@")

mkdir -p "$out"
for init in scratch mae; do
    for loss in ce mix-supcon; do
        name="$init+$loss"
        run="$out/$name"
        args=("${common[@]}" --out "$run")
        [ "$init" = mae ] && args+=(--init "$mae")
        if [ "$loss" = ce ]; then args+=(--supcon-weight 0); else args+=(--supcon-weight 0.1); fi
        if [ ! -f "$run/eval-test/summary.json" ]; then
            echo "== $name"
            "$train" finetune "${args[@]}" 2>&1 | tee -a "$run.log"
            "$train" eval --model "$run" --data "$data" --split test --out "$run/eval-test"
        fi
    done
done

python3 - "$out" "$epochs" <<'EOF' | tee "$out/ablation.md"
import csv, json, sys, pathlib
out, epochs = pathlib.Path(sys.argv[1]), sys.argv[2]
print(f"| pre-training | loss | best valid epoch (of {epochs}) | FER+ valid | FER+ test | test mean class |")
print("|---|---|---:|---:|---:|---:|")
for init in ("scratch", "mae"):
    for loss in ("ce", "mix-supcon"):
        run = out / f"{init}+{loss}"
        rows = list(csv.DictReader(open(run / "metrics.csv")))
        best = max(rows, key=lambda r: float(r["valid_accuracy"]))
        test = json.load(open(run / "eval-test" / "summary.json"))
        print(f"| {'MAE (Tiny-ImageNet)' if init == 'mae' else 'none'} "
              f"| {'CE' if loss == 'ce' else 'CE + mix-SupCon'} | {best['epoch']} "
              f"| {100 * float(best['valid_accuracy']):.2f} % | {100 * test['accuracy']:.2f} % "
              f"| {100 * test['mean_class_accuracy']:.2f} % |")
EOF
