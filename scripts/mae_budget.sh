#!/usr/bin/env bash
# What the MAE campaign buys: the same short fine-tuning of the fast model's shape (the
# shipped recipe: vote-distribution targets, class-balanced CE, mixup/cutmix + mix-SupCon)
# from scratch and from models/mae-micro as it stood at earlier commits, several seeds each.
#
#   scripts/mae_budget.sh OUT_DIR EPOCHS "SEEDS" INIT… [-- extra finetune options…]
#
# INIT: `scratch`, or a git revision whose models/mae-micro is the starting MAE package
# (e.g. 921bbfe = 4 MAE epochs, a70c1d6 = 50). Runs go to OUT_DIR/<init>-s<seed>, JOBS at
# a time (default 1; on the CPU, concurrent runs share its cores and its speed swings
# alike). Each run resumes where it stopped (e.g. after --max-minutes); a finished one is
# skipped. The best epoch is chosen on FER+ Valid (mean of accuracy and mean class
# accuracy) and measured once on FER+ Test; the table (mean ± std over seeds) goes to OUT_DIR/budget.md.
#
# Environment: MIMIC_TRAIN (binary), MIMIC_DATA (FER+ root), JOBS.
set -euo pipefail

usage="usage: mae_budget.sh OUT_DIR EPOCHS \"SEEDS\" INIT… [-- finetune options…]"
out="${1:?$usage}" epochs="${2:?$usage}" seeds="${3:?$usage}"
shift 3
inits=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do inits+=("$1"); shift; done
[ $# -gt 0 ] && shift
[ ${#inits[@]} -gt 0 ] || { echo "$usage" >&2; exit 2; }
here="$(cd "$(dirname "$0")/.." && pwd)"
train="${MIMIC_TRAIN:-$here/target/release/mimic-train}"
data="${MIMIC_DATA:-$here/target/data}"
mkdir -p "$out"

# The MAE packages, checked out of git once each.
for init in "${inits[@]}"; do
    [ "$init" = scratch ] && continue
    package="$out/mae-$init"
    if [ ! -f "$package/mae.json" ]; then
        mkdir -p "$package"
        for f in $(git -C "$here" ls-tree --name-only "$init" models/mae-micro/); do
            git -C "$here" show "$init:$f" >"$package/$(basename "$f")"
        done
    fi
done

recipe=(--data "$data" --dataset ferplus --label-mode probability --preset micro
    --epochs "$epochs" --batch-size 64 --blr 0.001 --warmup-epochs 1 --layer-decay 0.75
    --drop-path 0.1 --mix both --mix-alpha 0.8 --mix-fraction 0.5 --supcon-weight 0.1
    --temperature 0.1 --balance logit-adjust --balance-tau 0.3 --select average
    --device cpu "$@")

one_run() { # one_run INIT SEED
    local init="$1" seed="$2" run="$out/$1-s$2"
    local from=()
    [ "$init" = scratch ] || from=(--init "$out/mae-$init")
    "$train" finetune "${recipe[@]}" "${from[@]}" --seed "$seed" --out "$run" >>"$run.log" 2>&1
}
finished() { # finished RUN: every epoch in its metrics.csv (a run stopped by --max-minutes is not)
    [ "$(tail -n +2 "$1/metrics.csv" 2>/dev/null | wc -l)" -ge "$epochs" ]
}
jobs=()
for init in "${inits[@]}"; do for seed in $seeds; do jobs+=("$init $seed"); done; done
running=0
for job in "${jobs[@]}"; do
    set -- $job
    finished "$out/$1-s$2" && continue
    one_run "$1" "$2" &
    running=$((running + 1))
    if [ "$running" -ge "${JOBS:-1}" ]; then wait -n; running=$((running - 1)); fi
done
while [ "$running" -gt 0 ]; do wait -n; running=$((running - 1)); done

for job in "${jobs[@]}"; do
    set -- $job
    run="$out/$1-s$2"
    finished "$run" || { echo "mae_budget: $run is not finished; re-run to resume it" >&2; exit 1; }
    [ -f "$run/eval-test/summary.json" ] ||
        "$train" eval --model "$run" --data "$data" --split test --out "$run/eval-test" >/dev/null
done

python3 - "$out" "$epochs" "$seeds" "${inits[@]}" <<'PY' | tee "$out/budget.md"
import csv, json, pathlib, statistics, sys
out, epochs, seeds, inits = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(), sys.argv[4:]
def mean_std(xs):
    xs = [100 * x for x in xs]
    return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs):.2f}" if len(xs) > 1 else f"{xs[0]:.2f}"
print(f"| start | MAE epochs | seeds | FER+ valid (best of {epochs} epochs) | valid mean class "
      "| FER+ test | test mean class |")
print("|---|---:|---:|---:|---:|---:|---:|")
for init in inits:
    valid, valid_mc, test, test_mc = [], [], [], []
    for seed in seeds:
        run = out / f"{init}-s{seed}"
        rows = list(csv.DictReader(open(run / "metrics.csv")))
        best = max(rows, key=lambda r: float(r["valid_accuracy"]) + float(r["valid_mean_class_accuracy"]))
        valid.append(float(best["valid_accuracy"]))
        valid_mc.append(float(best["valid_mean_class_accuracy"]))
        s = json.load(open(run / "eval-test" / "summary.json"))
        test.append(s["accuracy"])
        test_mc.append(s["mean_class_accuracy"])
    mae_epochs = "0" if init == "scratch" else str(json.load(open(out / f"mae-{init}" / "mae.json"))["epochs"])
    print(f"| {init} | {mae_epochs} | {len(seeds)} | {mean_std(valid)} % | {mean_std(valid_mc)} % "
          f"| {mean_std(test)} % | {mean_std(test_mc)} % |")
PY
