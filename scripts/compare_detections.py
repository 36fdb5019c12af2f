#!/usr/bin/env python3
"""Recall of one run's faces against a reference run's, at IoU >= 0.5, per frame.

    python3 scripts/compare_detections.py REFERENCE.csv CANDIDATE.csv

Both are CSVs of `mimic analyze` on the same input (e.g. the reference with
`--min-face 20`, today's facenet setting at every resolution, and the candidate with the
default minimum face relative to the frame). Each reference face is matched to at most
one candidate face of the same frame (greedy by IoU). Prints faces, matched, recall, and
how many matched faces got the same label. Standard library only.
"""
import csv
import sys
from collections import defaultdict


def faces(path):
    by_frame = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["face"] == "":
                continue
            x, y, w, h = (float(row[k]) for k in ("x", "y", "w", "h"))
            by_frame[(row["source"], int(row["frame"]))].append(((x, y, x + w, y + h), row["label"]))
    return by_frame


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def main():
    ref, cand = faces(sys.argv[1]), faces(sys.argv[2])
    total = matched = same_label = 0
    for key, ref_faces in ref.items():
        pool = list(cand.get(key, []))
        total += len(ref_faces)
        pairs = sorted(((iou(r[0], c[0]), i, j) for i, r in enumerate(ref_faces) for j, c in enumerate(pool)), reverse=True)
        used_r, used_c = set(), set()
        for score, i, j in pairs:
            if score < 0.5:
                break
            if i in used_r or j in used_c:
                continue
            used_r.add(i)
            used_c.add(j)
            matched += 1
            same_label += ref_faces[i][1] == pool[j][1]
    extra = sum(len(v) for v in cand.values()) - matched
    print(f"reference faces {total}, found again {matched} ({100.0 * matched / max(total, 1):.1f} %), "
          f"same label {same_label} ({100.0 * same_label / max(matched, 1):.1f} %), extra faces {extra}")


if __name__ == "__main__":
    main()
