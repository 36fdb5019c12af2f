#!/usr/bin/env bash
# Unpacks the shared datasets (FER+, Tiny-ImageNet) into target/data/, where
# mimic-train's examples and the real-data tests look for them. Idempotent.
#   scripts/extract_data.sh [SHARED_DATA_DIR]   (default: ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${1:-../shared/data}
[ -d "$shared" ] || { echo "extract_data: $shared not found" >&2; exit 1; }
mkdir -p target/data
if [ ! -f target/data/FER2013Test/label.csv ]; then
  tar --zstd -xf "$shared/ferplus-48px.tar.zst" -C target/data
fi
if [ ! -f target/data/tiny-imagenet-50k/wnids.txt ]; then
  tar --zstd -xf "$shared/tiny-imagenet-50k.tar.zst" -C target/data
fi
echo "extract_data: FER+ and Tiny-ImageNet in target/data"
