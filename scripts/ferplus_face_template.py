#!/usr/bin/env python3
"""Measure where MTCNN's five landmarks fall on FER+ training faces.

The analyzer aligns each detected face by a similarity transform of its five
MTCNN landmarks onto a template, then crops at the model's input size. For the
crops to look like the faces the model was trained on, the template must be
where those landmarks sit in FER+ images. This script runs facenet-pytorch's
MTCNN (the reference our detector matches) on FER+ training faces, each
upscaled 4x and padded by half its size on every side (so the detector sees a
whole face with context), and prints the per-landmark median position in
[0, 1] crop coordinates: the value of FERPLUS_FACE_TEMPLATE in src/model.rs.

    /work/pyref/bin/python scripts/ferplus_face_template.py target/data/FER2013Train 3000
"""

import sys
from pathlib import Path

import numpy as np
from facenet_pytorch import MTCNN
from PIL import Image, ImageOps

SCALE = 4
PAD = 0.5


def main():
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "target/data/FER2013Train")
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    files = sorted(folder.glob("*.png"))
    files = files[:: max(1, len(files) // limit)][:limit]
    mtcnn = MTCNN(keep_all=False, device="cpu")
    points = []
    for f in files:
        img = Image.open(f).convert("RGB")
        w, h = img.size
        big = img.resize((w * SCALE, h * SCALE), Image.BILINEAR)
        pad = int(PAD * w * SCALE)
        big = ImageOps.expand(big, border=pad, fill=(128, 128, 128))
        boxes, probs, lms = mtcnn.detect(big, landmarks=True)
        if boxes is None or probs[0] < 0.9:
            continue
        lm = (np.asarray(lms[0], dtype=np.float64) - pad) / (w * SCALE)  # [5, 2] in [0, 1] of the 48x48 image
        points.append(lm)
    pts = np.stack(points).astype(np.float64)
    med = np.median(pts, axis=0)
    print(f"{len(points)} of {len(files)} faces detected (score >= 0.9)")
    print("median landmarks (x, y):")
    for name, p, s in zip(
        ["left eye", "right eye", "nose", "left mouth", "right mouth"], med, pts.std(axis=0)
    ):
        print(f"  {name:12s} {p[0]:.4f} {p[1]:.4f}   (std {s[0]:.3f} {s[1]:.3f})")
    print("Rust: [" + ", ".join(f"[{p[0]:.4f}, {p[1]:.4f}]" for p in med) + "]")


if __name__ == "__main__":
    main()
