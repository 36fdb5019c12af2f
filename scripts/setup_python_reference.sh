#!/usr/bin/env bash
# Creates the Python environment of our reference scripts (MTCNN fixtures,
# ViT golden fixture, the Python pipeline and training benchmarks): PyTorch
# 2.2.2 (what facenet-pytorch 2.6.0 requires), facenet-pytorch, timm, OpenCV.
# All from PyPI. Not needed to build, run or test mimic: only to regenerate
# fixtures or to measure the peer in BENCHMARKS.md.
#   scripts/setup_python_reference.sh [VENV_DIR]   (default: ../pyref)
set -euo pipefail
venv=${1:-"$(dirname "$0")/../../pyref"}
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q torch==2.2.2 torchvision==0.17.2 facenet-pytorch==2.6.0 "numpy<2" \
  timm==0.9.16 opencv-python-headless==4.9.0.80 safetensors
echo "python reference env ready: $venv/bin/python"
