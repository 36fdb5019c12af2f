#!/usr/bin/env bash
# MIMIC's ablations: the fast model's shape fine-tuned on FER+ with the same budget several
# ways, several seeds each; the best epoch of each run is chosen on FER+ Valid (mean of
# accuracy and mean class accuracy) and measured once on FER+ Test.
#
#   scripts/ablation.sh OUT_DIR EPOCHS "SEEDS" CELL… [-- extra finetune options…]
#
# A CELL is INIT:LOSS:MIX, or a named set of cells:
#   INIT  scratch; mae (the encoder in $ABLATION_MAE, default models/mae-micro); a folder
#         holding an MAE package or pre-training run; or a git revision, whose
#         models/mae-micro is checked out into OUT_DIR/mae-<revision>
#   LOSS  ce (cross-entropy alone) or supcon (plus the mix-supervised contrastive term, 0.1)
#   MIX   none, mixup, cutmix or both (the CE cells see the same mixed images, with mixed
#         targets, so LOSS isolates the contrastive term)
#   four-way  = scratch:ce:both scratch:supcon:both mae:ce:both mae:supcon:both (the paper's)
#   mixing    = mae:supcon:none mae:supcon:mixup mae:supcon:cutmix mae:supcon:both
# Everything else is the shipped recipe: vote-distribution targets, logit-adjusted CE at
# τ 0.3, mix α 0.8 on half the batch, SupCon τ 0.1, blr 0.001, layer decay 0.75,
# drop-path 0.1. Extra options must not repeat these.
#
# Examples:
#   scripts/ablation.sh target/ablation 5 "1 2 3" four-way mixing
#   JOBS=3 scripts/ablation.sh target/mae-budget 5 "1 2" 921bbfe:supcon:both a70c1d6:supcon:both
#
# Runs go to OUT_DIR/<init>-<loss>-<mix>-s<seed>, JOBS at a time (default: one per core on
# the CPU, where runs side by side beat one run on every thread — BENCHMARKS.md, slice 15 —
# and 1 on any other device). A run resumes where it stopped (e.g. after
# --max-minutes); a finished one (every epoch in its metrics.csv) is skipped, so re-running
# the same command continues the ablation. FER+ Test is measured where the data has it
# (FER2013Test): runs trained on a lent card (`scripts/gpu_train.sh ablation`, which
# carries Train and Valid only) are measured by re-running the command here on their
# unpacked folders. The table (mean ± std over seeds) goes to OUT_DIR/ablation.md.
#
# Environment: MIMIC_TRAIN (binary), MIMIC_DATA (FER+ root), ABLATION_MAE,
# ABLATION_DEVICE (cpu), ABLATION_BATCH (64), JOBS.
set -euo pipefail

usage="usage: ablation.sh OUT_DIR EPOCHS \"SEEDS\" CELL… [-- finetune options…]"
out="${1:?$usage}" epochs="${2:?$usage}" seeds="${3:?$usage}"
shift 3
cells=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    case "$1" in
        four-way) cells+=(scratch:ce:both scratch:supcon:both mae:ce:both mae:supcon:both) ;;
        mixing) cells+=(mae:supcon:none mae:supcon:mixup mae:supcon:cutmix mae:supcon:both) ;;
        *:*:*) cells+=("$1") ;;
        *) echo "ablation: '$1' is not INIT:LOSS:MIX, four-way or mixing" >&2; exit 2 ;;
    esac
    shift
done
[ $# -gt 0 ] && shift
[ ${#cells[@]} -gt 0 ] || { echo "$usage" >&2; exit 2; }
[ -n "$seeds" ] || { echo "ablation: no seeds" >&2; exit 2; }
here="$(cd "$(dirname "$0")/.." && pwd)"
train="${MIMIC_TRAIN:-$here/target/release/mimic-train}"
data="${MIMIC_DATA:-$here/target/data}"
device="${ABLATION_DEVICE:-cpu}"
mkdir -p "$out"

# The encoder folder of an INIT (empty for scratch), checking out git revisions once.
encoder() {
    local init="$1"
    case "$init" in
        scratch) return ;;
        mae) echo "${ABLATION_MAE:-$here/models/mae-micro}"; return ;;
    esac
    if [ -d "$init" ]; then echo "$init"; return; fi
    git -C "$here" rev-parse --verify --quiet "$init^{commit}" >/dev/null || {
        echo "ablation: INIT '$init' is neither scratch, mae, a folder nor a git revision" >&2
        return 1
    }
    local package="$out/mae-$init"
    if [ ! -f "$package/mae.json" ]; then
        mkdir -p "$package"
        local f
        for f in $(git -C "$here" ls-tree --name-only "$init" models/mae-micro/); do
            git -C "$here" show "$init:$f" >"$package/$(basename "$f")"
        done
    fi
    echo "$package"
}
# OUT_DIR/<init>-<loss>-<mix>-s<seed>, a folder INIT by its base name.
run_dir() { # run_dir CELL SEED
    local init loss mix
    IFS=: read -r init loss mix <<<"$1"
    echo "$out/$(basename "$init")-$loss-$mix-s$2"
}

recipe=(--data "$data" --dataset ferplus --label-mode probability --preset micro --pool mean
    --epochs "$epochs" --batch-size "${ABLATION_BATCH:-64}" --blr 0.001
    --warmup-epochs "$(python3 -c "print(min(6, max(1, $epochs // 10)))")" --layer-decay 0.75
    --drop-path 0.1 --mix-alpha 0.8 --mix-fraction 0.5 --temperature 0.1
    --balance logit-adjust --balance-tau 0.3 --select average
    --device "$device" "$@")

declare -A encoders=()
for cell in "${cells[@]}"; do
    IFS=: read -r init loss mix <<<"$cell"
    case "$loss" in ce | supcon) ;; *) echo "ablation: LOSS '$loss' in $cell is not ce or supcon" >&2; exit 2 ;; esac
    case "$mix" in none | mixup | cutmix | both) ;; *) echo "ablation: MIX '$mix' in $cell is not none, mixup, cutmix or both" >&2; exit 2 ;; esac
    encoders[$init]="$(encoder "$init")"
done

one_run() { # one_run CELL SEED
    local init loss mix run
    IFS=: read -r init loss mix <<<"$1"
    run="$(run_dir "$1" "$2")"
    local args=("${recipe[@]}" --mix "$mix" --seed "$2" --out "$run")
    [ "$loss" = ce ] && args+=(--supcon-weight 0) || args+=(--supcon-weight 0.1)
    [ -n "${encoders[$init]}" ] && args+=(--init "${encoders[$init]}")
    echo "ablation: $1 seed $2 → $run"
    "$train" finetune "${args[@]}" >>"$run.log" 2>&1 || {
        echo "ablation: $run failed; its log: $run.log" >&2
        return 1
    }
}
finished() { # finished RUN: every epoch in its metrics.csv (a run stopped by --max-minutes is not)
    [ "$(tail -n +2 "$1/metrics.csv" 2>/dev/null | wc -l)" -ge "$epochs" ]
}

if [ "$device" = cpu ]; then parallel_runs=${JOBS:-$(nproc)}; else parallel_runs=${JOBS:-1}; fi
jobs=()
for cell in "${cells[@]}"; do for seed in $seeds; do jobs+=("$cell $seed"); done; done
running=0 failed=0
for job in "${jobs[@]}"; do
    read -r cell seed <<<"$job"
    finished "$(run_dir "$cell" "$seed")" && continue
    one_run "$cell" "$seed" &
    running=$((running + 1))
    if [ "$running" -ge "$parallel_runs" ]; then
        wait -n || failed=1
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done

for job in "${jobs[@]}"; do
    read -r cell seed <<<"$job"
    run="$(run_dir "$cell" "$seed")"
    finished "$run" || { echo "ablation: $run is not finished; re-run to resume it" >&2; exit 1; }
    if [ -d "$data/FER2013Test" ] && [ ! -f "$run/eval-test/summary.json" ]; then
        "$train" eval --model "$run" --data "$data" --split test --out "$run/eval-test" >/dev/null
    fi
done

described=()
for cell in "${cells[@]}"; do described+=("$cell|${encoders[${cell%%:*}]}"); done
python3 - "$out" "$epochs" "$seeds" "${described[@]}" <<'PY' | tee "$out/ablation.md"
import csv, json, pathlib, statistics, sys
out, epochs, seeds, cells = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(), sys.argv[4:]
def mean_std(xs):
    if not xs:
        return "—"
    xs = [100 * x for x in xs]
    return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs):.2f} %" if len(xs) > 1 else f"{xs[0]:.2f} %"
def mae_epochs(encoder):
    if not encoder:
        return "0"
    for name in ("mae.json", "encoder.json"):
        if (pathlib.Path(encoder) / name).exists():
            return str(json.load(open(pathlib.Path(encoder) / name))["epochs"])
    return "?"
print(f"| start | MAE epochs | loss | mixing | seeds | FER+ valid (best of {epochs}) "
      "| valid mean class | FER+ test | test mean class |")
print("|---|---:|---|---|---:|---:|---:|---:|---:|")
for described in dict.fromkeys(cells):
    cell, encoder = described.split("|", 1)
    init, loss, mix = cell.split(":")
    valid, valid_mc, test, test_mc = [], [], [], []
    for seed in seeds:
        run = out / f"{pathlib.Path(init).name}-{loss}-{mix}-s{seed}"
        rows = list(csv.DictReader(open(run / "metrics.csv")))
        best = max(rows, key=lambda r: float(r["valid_accuracy"]) + float(r["valid_mean_class_accuracy"]))
        valid.append(float(best["valid_accuracy"]))
        valid_mc.append(float(best["valid_mean_class_accuracy"]))
        summary = run / "eval-test" / "summary.json"
        if summary.exists():
            s = json.load(open(summary))
            test.append(s["accuracy"])
            test_mc.append(s["mean_class_accuracy"])
    start = "MAE" if init == "mae" else pathlib.Path(init).name
    print(f"| {start} | {mae_epochs(encoder)} | {'CE' if loss == 'ce' else 'CE + mix-SupCon'} | {mix} "
          f"| {len(seeds)} | {mean_std(valid)} | {mean_std(valid_mc)} | {mean_std(test)} | {mean_std(test_mc)} |")
PY
exit "$failed"
