"""Faces cut by the image border: what fills the crop outside the image (black, or the border carried outward).

    MFIRRN_ASSET_MIRROR=... MFIRRN_DATASETS=... python benchmarks/border_crops.py --split tune
    MFIRRN_ASSET_MIRROR=... MFIRRN_DATASETS=... python benchmarks/border_crops.py --split confirm
    MFIRRN_ASSET_MIRROR=... MFIRRN_DATASETS=... python benchmarks/border_crops.py --split held-out

A face cut by the left or right border of a photo (a person at the edge of a group photo, a webcam frame) leaves
the network a crop whose outside part is black (3DDFA's zero padding); the network takes that edge for the face's
outline and fits a face turned by about 30 degrees into what is left. ``crop_padding="edge"``
(:func:`mfirrn.geometry.crop.crop_image`) fills the outside with the image's border pixels carried outward and
blurred instead.

``--split tune`` / ``confirm``: AFLW training crops (``aflw-21pt-train``, 21-point GT and GT yaw; tune: 40 per
|yaw| bin, seed 0; confirm: 200 per bin, seed 1, none of the tune ones), each whole and cut by the left, right, top
or bottom border so that 50 % or 70 % of its GT points' box is left. For each cut and padding: the faces found,
and on the faces every padding finds, the 21-point NME over the GT points left in the image (normalised by the
whole face's GT box) and the yaw error against the GT yaw. The pipeline upscales these small images to 240 pixels
for detection (``detector_min_size=240``).

``--split held-out``: the dev-split originals through the pipeline (kept, 68-point NME) and the held-out photos of
``benchmarks/wild.py`` (counted faces found, false, missed), with each padding.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from mfirrn import models
from mfirrn.evaluation.benchmark import AFLW21
from mfirrn.evaluation.metrics import bbox_normaliser, map_68_to_21, yaw_bin_index
from mfirrn.geometry.crop import CROP_PADDINGS
from mfirrn.inference.pipeline import Reconstructor, read_image
from mfirrn.io.machine import machine_line

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wild import dev_nme, dev_split, face_boxes, load_photos, score_photo  # noqa: E402

CUTS = [("whole", 1.0)] + [(side, kept) for side in ("left", "right", "top", "bottom") for kept in (0.5, 0.7)]


def pipeline(pad: str, min_size: int = 0) -> Reconstructor:
    """The verified pipeline with the CLI's networks and the given crop padding."""
    return Reconstructor(models.create(models.DEFAULT_MODEL), dense=False, detector_backend="onnxruntime",
                         detector_threads=1, detector_min_size=min_size, crop_padding=pad)


def sample(data: AFLW21, per_bin: int, seed: int, exclude: set[int]) -> np.ndarray:
    bins = yaw_bin_index(data.yaw)
    rng = np.random.default_rng(seed)
    pools = [np.array([i for i in np.flatnonzero(bins == b) if i not in exclude]) for b in range(3)]
    return np.concatenate([rng.choice(p, per_bin, replace=False) for p in pools])


def cut(img: np.ndarray, gt: np.ndarray, side: str, kept: float):
    """The crop cut so that ``kept`` of the GT points' box is left on ``side``'s opposite; (image, (dx, dy) of its
    origin, mask of the GT points left in it)."""
    (x0, y0), (x1, y1) = np.nanmin(gt, 0), np.nanmax(gt, 0)
    inside = np.isfinite(gt).all(1)
    if side == "left":  # the face's right part is cut off: the left part is kept
        c = int(round(x0 + kept * (x1 - x0)))
        return img[:, :c], (0, 0), inside & (gt[:, 0] < c)
    if side == "right":
        c = int(round(x1 - kept * (x1 - x0)))
        return img[:, c:], (c, 0), inside & (gt[:, 0] >= c)
    if side == "top":
        c = int(round(y0 + kept * (y1 - y0)))
        return img[:c], (0, 0), inside & (gt[:, 1] < c)
    if side == "bottom":
        c = int(round(y1 - kept * (y1 - y0)))
        return img[c:], (0, c), inside & (gt[:, 1] >= c)
    return img, (0, 0), inside


def aflw_cuts(datasets: Path, split: str) -> None:
    data = AFLW21.load(datasets / "aflw-21pt-train")
    tune_idx = sample(data, 40, 0, set())
    idx = tune_idx if split == "tune" else sample(data, 200, 1, set(tune_idx.tolist()))
    recs = {pad: pipeline(pad, min_size=240) for pad in CROP_PADDINGS}
    res: dict = {pad: {c: {} for c in CUTS} for pad in recs}  # pad -> cut -> index -> (nme, yaw error)
    for i in idx:
        img = data.read_crops(int(i), int(i) + 1)[0]
        roi = data.roi[i]
        gt = (data.gt[i] - roi[:2]) * (img.shape[1] / (roi[2] - roi[0]))  # (21, 2) crop pixels, NaN invisible
        norm = bbox_normaliser(gt[None])[0]
        centre = np.nanmean(gt, 0)
        for side, kept in CUTS:
            im, (dx, dy), keep = cut(img, gt, side, kept)
            if keep.sum() < 3:
                continue
            for pad, rec in recs.items():
                faces = rec(np.ascontiguousarray(im))
                if not faces:
                    continue
                f = min(faces, key=lambda f: np.linalg.norm(f.landmarks[:, :2].mean(0) + (dx, dy) - centre))
                p21 = map_68_to_21(f.landmarks[:, :2]) + (dx, dy)
                err = float(np.linalg.norm(p21[keep] - gt[keep], axis=1).mean() / norm)
                res[pad][(side, kept)][int(i)] = (err, abs(f.pose["yaw"] - data.yaw[i]))
    print(f"\nAFLW training crops ({split}: {len(idx)} faces, {len(idx) // 3} per |yaw| bin), each whole and cut; "
          f"on the faces every padding finds: 21-point NME over the GT points left (%) / mean |yaw error| (degrees)")
    print("| cut | points' box left | " + " | ".join(f"found, {p}" for p in recs) + " | faces compared | "
          + " | ".join(f"{p}: NME / yaw error" for p in recs) + " |")
    print("|---|---:|" + "---:|" * (2 * len(recs) + 1))
    pooled: dict = {pad: [] for pad in recs}
    for c in CUTS:
        common = set.intersection(*(set(res[pad][c]) for pad in recs))
        cells = []
        for pad in recs:
            v = np.array([res[pad][c][i] for i in sorted(common)]).reshape(-1, 2)
            cells.append(f"{100 * v[:, 0].mean():.2f} / {v[:, 1].mean():.1f}")
            if c[0] != "whole":
                pooled[pad].append(v)
        print(f"| {c[0]} | {int(100 * c[1])} % | " + " | ".join(str(len(res[p][c])) for p in recs)
              + f" | {len(common)} | " + " | ".join(cells) + " |")
    cells = []
    for pad in recs:
        v = np.concatenate(pooled[pad])
        cells.append(f"**{100 * v[:, 0].mean():.2f} / {v[:, 1].mean():.1f}**")
    print(f"| all cuts | | {' | '.join('' for _ in recs)} | {len(np.concatenate(pooled['zero']))} | "
          + " | ".join(cells) + " |")


def held_out(datasets: Path) -> None:
    recs = {pad: pipeline(pad) for pad in CROP_PADDINGS}
    dev = dev_split(datasets)
    print(f"\nAFLW2000-3D dev-split originals ({len(dev)}): photos whose face is kept and its 68-point NME")
    print("| padding | kept | NME mean on kept (original GT) |")
    print("|---|---:|---:|")
    for pad, rec in recs.items():
        errors = dev_nme(rec, dev)
        print(f"| {pad} | {len(errors)}/{len(dev)} | {np.mean(errors):.3f} % |", flush=True)

    photos = load_photos(datasets)
    print(f"\nHeld-out photos of benchmarks/wild.py ({len(photos)}): counted faces found, false faces, missed faces")
    print("| padding | found | false | missed |")
    print("|---|---:|---:|---:|")
    for pad, rec in recs.items():
        rows = [score_photo(face_boxes(rec(read_image(path))), labels) for _, path, labels in photos]
        t, f, m = np.sum(rows, axis=0)
        print(f"| {pad} | {t} | {f} | {m} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=os.environ.get("MFIRRN_DATASETS", "../shared/datasets"))
    ap.add_argument("--split", choices=("tune", "confirm", "held-out"), default="tune")
    args = ap.parse_args()
    print(machine_line())
    if args.split == "held-out":
        held_out(Path(args.datasets))
    else:
        aflw_cuts(Path(args.datasets), args.split)


if __name__ == "__main__":
    main()
