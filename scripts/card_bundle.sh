# Shared steps of the bundles that travel to a lent card (sourced by campaign.sh,
# gpu_train.sh and gpu_bench.sh): the card's image has no Rust toolchain, no network and
# not our system libraries, and one call carries at most 64 MiB with the working tree.

# copy_shared_libs DEST BINARY… : the shared libraries the binaries need beyond glibc and
# the C++ runtime (a bare CUDA image lacks FFmpeg's and OpenCV's), copied into DEST.
copy_shared_libs() {
    local dest="$1"
    shift
    local b
    for b in "$@"; do ldd "$b"; done | awk '/=> \// {print $3}' | sort -u |
        grep -v -E '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*|libgcc_s|libstdc\+\+)\.so' |
        while read -r lib; do cp -L "$lib" "$dest/"; done
}

# download_vulkan_debs DEST : the Vulkan loader and glvnd's dispatch as .debs (NVIDIA's
# ICD needs both; the driver brings the ICD itself).
download_vulkan_debs() {
    (cd "$1" &&
        apt-get download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null)
}

# call_budget : bytes one call may carry beside the working tree (tracked files), with
# 2 MiB to spare. Run from the repository root.
call_budget() {
    local tree
    tree=$(git ls-files -z | xargs -0 cat | wc -c)
    echo $((64 * 1024 * 1024 - tree - 2 * 1024 * 1024))
}
