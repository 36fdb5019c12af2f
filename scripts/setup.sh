#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build, run and test mimic:
# the system libraries behind the `opencv` and `ffmpeg-next` crates, clang for
# opencv's binding generator, Mesa's software Vulkan driver (lavapipe) so the WGSL
# shaders and the burn-wgpu path run without a GPU, FFmpeg's programs (the stream tests
# serve streams with them), Chromium (the report test renders its page in it), and
# Slurm with MUNGE (the job-array test starts a one-node cluster; nothing is started here).
# Everything comes from
# Debian's registry; Rust itself is expected to be installed (rustup, stable).
# Idempotent: does nothing when the packages are already there.
set -euo pipefail

packages=(
  build-essential pkg-config clang libclang-dev
  libopencv-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavdevice-dev libavfilter-dev libswresample-dev
  ffmpeg
  mesa-vulkan-drivers libvulkan1
  zstd
  chromium
  slurmctld slurmd slurm-client munge
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust stable (https://rustup.rs)" >&2; exit 1; }
echo "setup: ok"
