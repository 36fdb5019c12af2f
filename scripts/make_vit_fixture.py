#!/usr/bin/env python3
"""Golden logits for our ViT from an independent implementation (timm).

Our Rust code writes small randomly initialised model packages (config.json +
model.safetensors, timm names, torch layout) into tests/fixtures/vit/<pool>/;
this script builds timm's VisionTransformer of the same shape, loads those
weights with strict=True (so every name and shape must match), runs a fixed
input and stores input, pooled features and logits beside them. The Rust test
tests/vit_timm_parity.rs asserts that our forward pass reproduces them.

Run from the repository root (needs torch 2.2 + timm 0.9.16):

    /work/pyref/bin/python scripts/make_vit_fixture.py

It first runs the ignored Rust test that (re)writes the model packages.
"""

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from timm.models.vision_transformer import VisionTransformer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "vit"
POOLS = {"cls": "token", "mean": "avg"}


def write_rust_models():
    subprocess.run(
        [
            "cargo", "test", "--release", "-p", "mimic", "--test", "vit_timm_parity",
            "--", "--ignored", "--exact", "write_fixture_models",
        ],
        cwd=ROOT,
        check=True,
    )


def timm_model(cfg):
    vit = cfg["vit"]
    pool = {"Cls": "token", "Mean": "avg"}[vit["global_pool"]]
    return VisionTransformer(
        img_size=vit["image_size"],
        patch_size=vit["patch_size"],
        in_chans=vit["in_channels"],
        num_classes=vit["num_classes"],
        global_pool=pool,
        embed_dim=vit["dim"],
        depth=vit["depth"],
        num_heads=vit["heads"],
        mlp_ratio=vit["mlp_ratio"],
        qkv_bias=True,
        class_token=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
    )


def main():
    if "--no-rust" not in sys.argv:
        write_rust_models()
    torch.manual_seed(0)
    for name in POOLS:
        d = FIXTURES / name
        cfg = json.loads((d / "config.json").read_text())
        model = timm_model(cfg).eval()
        weights = {k: v.float() for k, v in load_file(str(d / "model.safetensors")).items()}
        model.load_state_dict(weights, strict=True)
        size = cfg["vit"]["image_size"]
        x = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            feats = model.forward_head(model.forward_features(x), pre_logits=True)
            logits = model(x)
        save_file(
            {"input": x.contiguous(), "features": feats.contiguous(), "logits": logits.contiguous()},
            str(d / "timm_outputs.safetensors"),
            metadata={"timm": __import__("timm").__version__, "torch": torch.__version__},
        )
        print(f"{name}: logits {tuple(logits.shape)}, |logits| max {logits.abs().max():.4f}")


if __name__ == "__main__":
    main()
