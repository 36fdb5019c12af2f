#!/usr/bin/env python3
"""Convert facenet-pytorch's MTCNN weights (legacy torch pickles) to safetensors.

Usage (from the repository root, with the Python reference environment):

    /work/pyref/bin/python scripts/convert_mtcnn.py \
        [--src ../shared/data/mtcnn-facenet-pytorch] [--dst models/mtcnn]

Reads {pnet,rnet,onet}.pt — each a pickled state dict, as shipped in the PyPI
facenet-pytorch 2.6.0 wheel under facenet_pytorch/data/ — and writes
{pnet,rnet,onet}.safetensors with the same tensor names (conv1.weight,
prelu1.weight, dense4.weight, ...), all float32, contiguous. The Rust side
(src/mtcnn/) loads them by these names.

The script checks the parameter count of each net against the published
figures and refuses to write anything unexpected.
"""

import argparse
import pathlib
import sys

import torch
from safetensors.torch import save_file

EXPECTED_PARAMS = {"pnet": 6_632, "rnet": 100_178, "onet": 389_040}


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=pathlib.Path, default=root.parent / "shared/data/mtcnn-facenet-pytorch")
    parser.add_argument("--dst", type=pathlib.Path, default=root / "models/mtcnn")
    args = parser.parse_args()

    args.dst.mkdir(parents=True, exist_ok=True)
    for net, expected in EXPECTED_PARAMS.items():
        src = args.src / f"{net}.pt"
        # The files are plain state dicts of tensors; weights_only refuses any other pickle content.
        state = torch.load(src, map_location="cpu", weights_only=True)
        tensors = {name: t.detach().to(torch.float32).contiguous() for name, t in state.items()}
        count = sum(t.numel() for t in tensors.values())
        if count != expected:
            print(f"error: {src}: {count} parameters, expected {expected}", file=sys.stderr)
            return 1
        dst = args.dst / f"{net}.safetensors"
        save_file(tensors, str(dst), metadata={"source": "facenet-pytorch 2.6.0 facenet_pytorch/data/" + src.name})
        dst.chmod(0o644)  # save_file creates it owner-only
        print(f"{src} -> {dst}: {len(tensors)} tensors, {count:,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
