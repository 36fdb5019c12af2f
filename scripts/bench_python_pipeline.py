#!/usr/bin/env python3
"""The Python pipeline a user would otherwise run, timed on the same clip.

facenet-pytorch 2.6.0 MTCNN (CPU, default settings) finds the faces of each
frame; each face is aligned with OpenCV onto the same 5-point template our
model uses (estimateAffinePartial2D + warpAffine) and classified by a timm
VisionTransformer of the same shape as our model, loaded with our weights.
Frames are decoded with OpenCV. Prints frames/s end to end and per stage, and
peak RSS, as one JSON line.

Usage (the env of scripts/setup_python_reference.sh):
    python scripts/bench_python_pipeline.py VIDEO --model models/mimic-fast \
        [--frames N] [--threads 2]
"""
import argparse
import json
import resource
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from facenet_pytorch import MTCNN
from safetensors.torch import load_file
from timm.models.vision_transformer import VisionTransformer


def build_vit(model_dir: Path):
    cfg = json.loads((model_dir / "config.json").read_text())
    vit = cfg["vit"]
    model = VisionTransformer(
        img_size=vit["image_size"],
        patch_size=vit["patch_size"],
        in_chans=vit["in_channels"],
        num_classes=len(cfg["classes"]),
        embed_dim=vit["dim"],
        depth=vit["depth"],
        num_heads=vit["heads"],
        mlp_ratio=vit["mlp_ratio"],
        global_pool="avg" if str(vit["global_pool"]).lower().startswith("mean") else "token",
        class_token=True,
    )
    state = {k: v.float() for k, v in load_file(str(model_dir / "model.safetensors")).items()}
    model.load_state_dict(state, strict=False)
    model.eval()
    return model, cfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("video")
    ap.add_argument("--model", default="models/mimic-fast")
    ap.add_argument("--frames", type=int, default=0, help="loop the video to this many frames")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    mtcnn = MTCNN(keep_all=True, device="cpu")
    vit, cfg = build_vit(Path(args.model))
    size = cfg["input_size"]
    template = np.array(cfg["face_template"], dtype=np.float32) * size
    mean = np.array(cfg["mean"], dtype=np.float32)
    std = np.array(cfg["std"], dtype=np.float32)

    times = {"decode": 0.0, "detect": 0.0, "align": 0.0, "infer": 0.0}
    frames = faces = 0
    target = args.frames
    start = time.perf_counter()
    while True:
        cap = cv2.VideoCapture(args.video)
        while True:
            t0 = time.perf_counter()
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            t1 = time.perf_counter()
            boxes, probs, points = mtcnn.detect(rgb, landmarks=True)
            t2 = time.perf_counter()
            crops = []
            if boxes is not None:
                for lm in points:
                    m, _ = cv2.estimateAffinePartial2D(lm.astype(np.float32), template)
                    crops.append(cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR))
            t3 = time.perf_counter()
            if crops:
                x = np.stack(crops).astype(np.float32) / 255.0
                if cfg.get("grey"):
                    luma = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
                    x = np.repeat(luma[..., None], 3, axis=-1)
                x = (x - mean) / std
                with torch.inference_mode():
                    p = vit(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()).softmax(-1)
                faces += p.shape[0]
            t4 = time.perf_counter()
            for k, a, b in (("decode", t0, t1), ("detect", t1, t2), ("align", t2, t3), ("infer", t3, t4)):
                times[k] += b - a
            frames += 1
            if target and frames >= target:
                break
        cap.release()
        if not target or frames >= target:
            break
    elapsed = time.perf_counter() - start
    print(json.dumps({
        "pipeline": "python facenet-pytorch 2.6.0 + timm",
        "frames": frames,
        "faces": faces,
        "seconds": round(elapsed, 2),
        "fps": round(frames / elapsed, 2),
        "ms_per_frame": {k: round(v * 1e3 / max(frames, 1), 2) for k, v in times.items()},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": args.threads,
    }))


if __name__ == "__main__":
    main()
