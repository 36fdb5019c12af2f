#!/usr/bin/env bash
# Issue 13's measurements in one run, on an otherwise idle machine: for the shared clip
# at 640x360 and upscaled to 1280x720 and 1920x1080, the whole-process speed of
# `mimic analyze` at the default (smallest face = shorter side / 18) and at
# `--min-face 20` (facenet's setting at every size), the faces found again at IoU 0.5,
# and the Python pipeline (facenet-pytorch + timm, 2 threads) on the same inputs.
#
#   scripts/bench_resolutions.sh [OUT_DIR]    (default target/bench)
#
# Needs target/release/mimic and the Python reference env (/work/pyref,
# scripts/setup_python_reference.sh); the upscaled clips are made with ffmpeg.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$here/target/bench}"
mkdir -p "$out"
clip="$here/../shared/data/videos/short_hamilton_clip.mp4"
mimic="$here/target/release/mimic"
py="${PYREF:-/work/pyref/bin/python}"
for r in 1280:720 1920:1080; do
    [ -f "$out/clip_${r#*:}p.mp4" ] || ffmpeg -hide_banner -loglevel error -y -i "$clip" -an \
        -vf "scale=$r" -c:v libx264 -preset medium -crf 20 "$out/clip_${r#*:}p.mp4"
done
fps() { grep -o '[0-9.]* frames/s' | head -1; }
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
for input in "$clip" "$out/clip_720p.mp4" "$out/clip_1080p.mp4"; do
    name=$(basename "$input" .mp4)
    size=$(ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=p=0 "$input")
    ref=$("$mimic" analyze "$input" --device cpu --min-face 20 -o "$out/$name.min20.csv" 2>&1 | tee "$out/$name.min20.log" | fps)
    new=$("$mimic" analyze "$input" --device cpu -o "$out/$name.default.csv" 2>&1 | tee "$out/$name.default.log" | fps)
    recall=$(python3 "$here/scripts/compare_detections.py" "$out/$name.min20.csv" "$out/$name.default.csv")
    python_fps="$("$py" "$here/scripts/bench_python_pipeline.py" "$input" --model "$here/models/mimic-fast" --threads 2 2>&1 | tee "$out/$name.python.log" | python3 -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])[\"fps\"], \"frames/s\")")"
    echo "$name ($size): default $new, --min-face 20 $ref, Python $python_fps; $recall"
done
