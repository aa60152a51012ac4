"""Faces upside down: the cue, its rule on tuning data, and the rule measured on the dev split turned by 180 degrees.

    MFIRRN_ASSET_MIRROR=... MFIRRN_DATASETS=... python benchmarks/upside_down.py [--sections tune,dev,time]

A face the regressor fits as an upright face although it is upside down gets O-Net's probability ``p_up`` on the
square around its landmarks (the verifier reads it anyway) and ``p_turned`` on the same square of the photo turned
by 180 degrees. With ``Reconstructor(turn_upside_down=True)`` (``--turn-upside-down``; off by default) the pipeline
reconstructs a face again on the turned photo when ``p_turned - p_up > UPSIDE_DOWN_MARGIN`` and
``p_turned >= UPSIDE_DOWN_MIN`` (docs/experiments/wild.md, "Faces upside down").

- ``tune``: 600 AFLW training crops (``$MFIRRN_DATASETS/aflw-21pt-train``, rows before 15 000, 200 per |yaw| bin,
  seed 7), padded by 60 pixels, each through the pipeline without the rule, upright and turned by 180 degrees:
  how many upright and upside-down faces each candidate rule would turn. The rule was chosen on this table.
- ``dev``: the 500 dev-split photos (evaluation only), upright and turned by 180 degrees, through the pipeline with
  and without the rule: faces found, faces turned, NME (%) of the GT face (its 68 points turned with the photo).
- ``time``: the upright dev photos, the two pipelines alternating photo by photo: median ms per photo.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from mfirrn.evaluation.benchmark import AFLW2000
from mfirrn.evaluation.metrics import nme
from mfirrn.inference.pipeline import UPSIDE_DOWN_MARGIN, UPSIDE_DOWN_MIN, Reconstructor, read_image
from mfirrn.inference.verify import landmark_boxes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos68 import match  # noqa: E402


def turned(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[::-1, ::-1])


def probabilities(rec: Reconstructor, image: np.ndarray, faces) -> np.ndarray:
    """(F, 2): O-Net's probability on each face's landmark square, upright and in the turned photo."""
    h, w = image.shape[:2]
    b = landmark_boxes(np.stack([f.landmarks for f in faces]))
    tb = np.stack([w - 1 - b[:, 2], h - 1 - b[:, 3], w - 1 - b[:, 0], h - 1 - b[:, 1]], axis=1)
    return np.stack([rec.verifier.onet(image, b), rec.verifier.onet(turned(image), tb)], axis=1)


def tune(datasets: Path) -> None:
    root = datasets / "aflw-21pt-train"
    names = (root / "AFLW_GT_crop.list").read_text().split()
    yaws = np.abs(np.load(root / "AFLW_GT_crop_yaws.npy")).ravel()
    rng = np.random.default_rng(7)
    rows = np.arange(len(yaws)) < 15000
    idx = np.concatenate([rng.choice(np.flatnonzero(rows & (yaws >= lo) & (yaws < hi)), 200, replace=False)
                          for lo, hi in ((0, 30), (30, 60), (60, 90.01))])
    rec = Reconstructor(dense=False)
    found = {0: [], 1: []}
    for i in idx:
        crop = cv2.imread(str(root / "AFLW_GT_crop" / names[i]))
        img = cv2.copyMakeBorder(crop, 60, 60, 60, 60, cv2.BORDER_REPLICATE)
        for t, im in ((0, img), (1, turned(img))):
            faces = rec(im)
            if faces:
                found[t].append(probabilities(rec, im, faces))
    up, down = (np.concatenate(found[t]) if found[t] else np.zeros((0, 2)) for t in (0, 1))
    print(f"## Tuning: {len(idx)} AFLW training crops, {len(up)} upright and {len(down)} upside-down faces found")
    print(f"largest p_turned - p_up of an upright face: {(up[:, 1] - up[:, 0]).max():.3f}")
    print("| margin | p_turned at least | upright faces turned | upside-down faces turned |")
    print("|---:|---:|---:|---:|")
    for margin in (0.1, 0.2, 0.3, 0.5, 0.7):
        for least in (0.5, 0.8):
            rule = lambda p: (p[:, 1] - p[:, 0] > margin) & (p[:, 1] >= least)  # noqa: E731
            print(f"| {margin} | {least} | {rule(up).sum()} | {rule(down).sum()} of {len(down)} |")


def dev(datasets: Path) -> None:
    data = AFLW2000.load(datasets / "aflw2000-3d-dev")
    recs = {"without the rule (default)": Reconstructor(dense=False),
            "with the rule": Reconstructor(dense=False, turn_upside_down=True)}
    print(f"\n## Dev split (500 photos), rule: p_turned - p_up > {UPSIDE_DOWN_MARGIN} and "
          f"p_turned >= {UPSIDE_DOWN_MIN}")
    print("| photos | pipeline | faces returned | GT faces found | NME % (mean, found) | faces with roll beyond 90 |")
    print("|---|---|---:|---:|---:|---:|")
    per_face = {}
    for orientation in ("upright", "turned by 180 degrees"):
        for name, rec in recs.items():
            n_faces = n_turned = 0
            errs = {}
            for k, photo in enumerate(data.names):
                img = read_image(data.root / "AFLW2000-3D" / photo)
                gt = data.gt[k].copy()
                if orientation != "upright":
                    h, w = img.shape[:2]
                    img = turned(img)
                    gt[:, 0], gt[:, 1] = w - 1 - gt[:, 0], h - 1 - gt[:, 1]
                faces = rec(img)
                n_faces += len(faces)
                n_turned += sum(abs(f.pose["roll"]) > 90 for f in faces)
                for i, _ in match([f.landmarks for f in faces], gt[None]):
                    errs[k] = (float(nme(faces[i].landmarks[None, :, :2], gt[None])[0]) * 100,
                               abs(faces[i].pose["roll"]) > 90)
            per_face[(orientation, name)] = errs
            e = np.array([v[0] for v in errs.values()])
            print(f"| {orientation} | {name} | {n_faces} | {len(errs)}/500 | {e.mean():.3f} | {n_turned} |")
    before = per_face[("turned by 180 degrees", "without the rule (default)")]
    after = per_face[("turned by 180 degrees", "with the rule")]
    turned_keys = sorted(k for k in after if after[k][1] and k in before)
    if turned_keys:
        a = np.array([after[k][0] for k in turned_keys])
        b = np.array([before[k][0] for k in turned_keys])
        print(f"\nturned photos: the {len(turned_keys)} GT faces the rule turned: NME {b.mean():.3f} % without it, "
              f"{a.mean():.3f} % with it (median {np.median(b):.3f} / {np.median(a):.3f}); "
              f"better on {(a < b).sum()}, worse on {(a > b).sum()}")
        up = per_face[("upright", "without the rule (default)")]
        same = [k for k in turned_keys if k in up]
        if same:
            print(f"the same {len(same)} faces in the upright photos: NME {np.mean([up[k][0] for k in same]):.3f} %")


def timing(datasets: Path) -> None:
    data = AFLW2000.load(datasets / "aflw2000-3d-dev")
    recs = {"without the rule (default)": Reconstructor(dense=False),
            "with the rule": Reconstructor(dense=False, turn_upside_down=True)}
    images = [read_image(data.root / "AFLW2000-3D" / n) for n in data.names]
    for rec in recs.values():
        rec(images[0])
    ms = {name: [] for name in recs}
    for img in images:
        for name, rec in recs.items():
            t0 = time.perf_counter()
            rec(img)
            ms[name].append((time.perf_counter() - t0) * 1000)
    base = np.median(ms["without the rule (default)"])
    print(f"\n## Time on the 500 upright dev photos (alternating; load average {os.getloadavg()[0]:.2f})")
    for name, v in ms.items():
        print(f"{name}: median {np.median(v):.2f} ms per photo (x{np.median(v) / base:.3f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=os.environ.get("MFIRRN_DATASETS", "../shared/datasets"))
    ap.add_argument("--sections", default="tune,dev,time")
    args = ap.parse_args()
    root = Path(args.datasets)
    sections = args.sections.split(",")
    if "tune" in sections:
        tune(root)
    if "dev" in sections:
        dev(root)
    if "time" in sections:
        timing(root)


if __name__ == "__main__":
    main()
