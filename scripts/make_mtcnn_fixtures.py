#!/usr/bin/env python3
"""Reference outputs of facenet-pytorch 2.6.0's MTCNN, for tests/mtcnn_parity.rs.

Usage (from the repository root, with the Python reference environment and ffmpeg on PATH):

    /work/pyref/bin/python scripts/make_mtcnn_fixtures.py [--data ../shared/data]

Writes into tests/fixtures/mtcnn/:

- frame_NNN.png: frames 0, 30, ..., 270 of videos/short_hamilton_clip.mp4, decoded by the
  ffmpeg CLI to RGB24 PNG, so that facenet-pytorch and our detector read identical pixels.
- still_<name>.png: each images/*.jpg, decoded by PIL with its EXIF orientation applied
  (ImageOps.exif_transpose, as our loader does), downscaled (PIL bilinear) so that its longer
  side is at most 640 px to keep the fixtures small.
- detections.json: for each PNG above, the faces facenet-pytorch's
  MTCNN(keep_all=True, defaults: min_face_size 20, thresholds 0.6/0.7/0.7, factor 0.709)
  finds on CPU: box [x1, y1, x2, y2], score (O-Net probability), 5 landmarks [x, y] in
  facenet's order (largest box first). Also, under "full_resolution_stills", the same for the
  original JPEGs at full size (decoded by PIL + exif_transpose); tests that use those read the
  JPEGs from the shared data folder and skip when it is absent.
- nets_golden.safetensors: golden input/output tensors of each net alone, captured while
  detecting faces on frame_000.png: the P-Net input at one pyramid level
  (`pnet.input` [1, 3, h, w], already area-resized and normalised) with its outputs
  (`pnet.reg` [1, 4, h', w'], `pnet.prob` [1, 2, h', w']); the first R-Net batch rows
  (`rnet.input` [n, 3, 24, 24], `rnet.reg` [n, 4], `rnet.prob` [n, 2]) and O-Net rows
  (`onet.input` [n, 3, 48, 48], `onet.reg` [n, 4], `onet.landmarks` [n, 10], `onet.prob` [n, 2]).

The clip and the stills are MIT (ageitgey/face_recognition examples; White House footage).
"""

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import torch
from facenet_pytorch import MTCNN
from PIL import Image, ImageOps
from safetensors.torch import save_file

FRAME_STEP = 30
FRAME_COUNT = 10
STILL_MAX_SIDE = 640
# P-Net pyramid level captured for the golden test: the first input whose shorter side is at most this.
PNET_GOLDEN_MAX_SIDE = 80
RNET_GOLDEN_ROWS = 8
ONET_GOLDEN_ROWS = 4


def faces_of(mtcnn: MTCNN, image: Image.Image) -> list:
    boxes, probs, points = mtcnn.detect(image, landmarks=True)
    if boxes is None:
        return []
    return [
        {
            "box": [float(v) for v in box],
            "score": float(prob),
            "landmarks": [[float(x), float(y)] for x, y in point],
        }
        for box, prob, point in zip(boxes, probs, points)
    ]


def load_still(path: pathlib.Path) -> Image.Image:
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def extract_frames(video: pathlib.Path, out_dir: pathlib.Path) -> list:
    with tempfile.TemporaryDirectory() as tmp:
        pattern = pathlib.Path(tmp) / "f_%03d.png"
        subprocess.run(
            [
                "ffmpeg", "-v", "error", "-i", str(video),
                "-vf", f"select='not(mod(n\\,{FRAME_STEP}))'", "-vsync", "vfr",
                "-frames:v", str(FRAME_COUNT), "-pix_fmt", "rgb24", str(pattern),
            ],
            check=True,
        )
        names = []
        for k, src in enumerate(sorted(pathlib.Path(tmp).glob("f_*.png"))):
            name = f"frame_{k * FRAME_STEP:03d}.png"
            # Re-save through PIL with maximal compression; the pixels are unchanged.
            Image.open(src).convert("RGB").save(out_dir / name, optimize=True)
            names.append(name)
    return names


class Recorder:
    """Wraps a net's forward to keep its first inputs and outputs."""

    def __init__(self, net, keep):
        self.net, self.keep, self.calls = net, keep, []
        self.forward = net.forward
        net.forward = self

    def __call__(self, x):
        out = self.forward(x)
        if self.keep(x, self.calls):
            self.calls.append((x.detach().clone(), tuple(o.detach().clone() for o in out)))
        return out

    def restore(self):
        self.net.forward = self.forward


def golden_tensors(mtcnn: MTCNN, image: Image.Image) -> dict:
    pnet = Recorder(mtcnn.pnet, lambda x, calls: not calls and min(x.shape[2:]) <= PNET_GOLDEN_MAX_SIDE)
    rnet = Recorder(mtcnn.rnet, lambda x, calls: not calls)
    onet = Recorder(mtcnn.onet, lambda x, calls: not calls)
    try:
        mtcnn.detect(image, landmarks=True)
    finally:
        for r in (pnet, rnet, onet):
            r.restore()
    (px, (preg, pprob)), = pnet.calls
    (rx, (rreg, rprob)), = rnet.calls
    (ox, (oreg, olm, oprob)), = onet.calls
    r, o = RNET_GOLDEN_ROWS, ONET_GOLDEN_ROWS
    tensors = {
        "pnet.input": px, "pnet.reg": preg, "pnet.prob": pprob,
        "rnet.input": rx[:r], "rnet.reg": rreg[:r], "rnet.prob": rprob[:r],
        "onet.input": ox[:o], "onet.reg": oreg[:o], "onet.landmarks": olm[:o], "onet.prob": oprob[:o],
    }
    return {k: v.to(torch.float32).contiguous() for k, v in tensors.items()}


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=root.parent / "shared/data")
    parser.add_argument("--out", type=pathlib.Path, default=root / "tests/fixtures/mtcnn")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)

    mtcnn = MTCNN(keep_all=True, device="cpu")
    images = []

    for name in extract_frames(args.data / "videos/short_hamilton_clip.mp4", args.out):
        images.append({"file": name, "faces": faces_of(mtcnn, Image.open(args.out / name).convert("RGB"))})

    full_res = []
    for jpg in sorted((args.data / "images").glob("*.jpg")):
        still = load_still(jpg)
        full_res.append({"file": f"images/{jpg.name}", "width": still.width, "height": still.height,
                         "faces": faces_of(mtcnn, still)})
        scale = STILL_MAX_SIDE / max(still.size)
        if scale < 1:
            size = (round(still.width * scale), round(still.height * scale))
            still = still.resize(size, Image.BILINEAR)
        name = f"still_{jpg.stem}.png"
        still.save(args.out / name, optimize=True)
        images.append({"file": name, "faces": faces_of(mtcnn, Image.open(args.out / name).convert("RGB"))})

    for entry in images:
        with Image.open(args.out / entry["file"]) as im:
            entry["width"], entry["height"] = im.size

    golden = golden_tensors(mtcnn, Image.open(args.out / "frame_000.png").convert("RGB"))
    save_file(golden, str(args.out / "nets_golden.safetensors"))
    (args.out / "nets_golden.safetensors").chmod(0o644)  # save_file creates it owner-only

    doc = {
        "generator": "scripts/make_mtcnn_fixtures.py",
        "reference": "facenet-pytorch 2.6.0 MTCNN(keep_all=True), torch " + torch.__version__ + ", CPU",
        "config": {"min_face_size": 20, "thresholds": [0.6, 0.7, 0.7], "factor": 0.709},
        "images": images,
        "full_resolution_stills": full_res,
    }
    (args.out / "detections.json").write_text(json.dumps(doc, indent=1) + "\n")
    for entry in images + full_res:
        print(f"{entry['file']}: {entry['width']}x{entry['height']}, {len(entry['faces'])} faces, "
              f"scores {[round(f['score'], 4) for f in entry['faces']]}")
    print("golden:", {k: tuple(v.shape) for k, v in golden.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
