#!/usr/bin/env bash
# Capture-to-row latency of live mode on local streams: FFmpeg sends the shared clip in
# real time (-re) over UDP (MPEG-TS) and over HTTP (FFmpeg as a one-client server), at
# 640x360 and upscaled to 1280x720; `mimic analyze` reads the stream in live mode and
# prints the latency median / p95 / max and the skipped frames in its summary.
#
#   scripts/bench_live.sh [OUT_DIR]    (default target/bench)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$here/target/bench}"
mkdir -p "$out"
mimic="$here/target/release/mimic"
clip="$here/../shared/data/videos/short_hamilton_clip.mp4"
[ -f "$out/clip_720p.mp4" ] || ffmpeg -hide_banner -loglevel error -y -i "$clip" -an \
    -vf scale=1280:720 -c:v libx264 -preset medium -crf 20 "$out/clip_720p.mp4"
send() { # send INPUT URL [extra output options]
    local input="$1" url="$2"
    shift 2
    ffmpeg -hide_banner -loglevel error -re -i "$input" -an -c:v libx264 -preset ultrafast \
        -tune zerolatency -g 15 -f mpegts "$@" "$url"
}
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
for input in "$clip" "$out/clip_720p.mp4"; do
    name=$(basename "$input" .mp4)
    port=$((20000 + RANDOM % 20000))
    "$mimic" analyze "udp://127.0.0.1:$port" --device cpu --stall-timeout 2 \
        -o "$out/live_udp_$name.csv" 2>"$out/live_udp_$name.log" &
    pid=$!
    sleep 1
    send "$input" "udp://127.0.0.1:$port"
    wait "$pid" || true
    echo "udp $name: $(grep -E 'frames \(' "$out/live_udp_$name.log" | sed 's/^mimic: //')"
    echo "    $(grep latency "$out/live_udp_$name.log" | sed 's/^mimic: //')"
    port=$((20000 + RANDOM % 20000))
    send "$input" "http://127.0.0.1:$port/live.ts" -listen 1 &
    server=$!
    sleep 1
    "$mimic" analyze "http://127.0.0.1:$port/live.ts" --live --device cpu \
        -o "$out/live_http_$name.csv" 2>"$out/live_http_$name.log" || true
    wait "$server" || true
    echo "http $name: $(grep -E 'frames \(' "$out/live_http_$name.log" | sed 's/^mimic: //')"
    echo "    $(grep latency "$out/live_http_$name.log" | sed 's/^mimic: //')"
done
