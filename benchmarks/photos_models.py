"""Models compared through the whole pipeline, as ``mfirrn reconstruct`` runs them, on annotated photos.

    MFIRRN_ASSET_MIRROR=... MFIRRN_DATASETS=... python benchmarks/photos_models.py \
        [--models 3ddfa-v2-mb05 runs/my-run/best.pt ...]

Each model (a registered name or a checkpoint path) runs in :class:`~mfirrn.pipeline.Reconstructor`
with the defaults (FaceBoxes, robust refinement); the detector runs once per photo and all models get
the same boxes, so they are scored on the same faces. ``--tddfa-v2 DIR`` adds 3DDFA_V2's own pipeline
(its FaceBoxes, mb05 and two-step refinement; see ``tddfa_v2.py``) as a row; every row is scored on the
faces all rows find. Photo sets:

- ``faces-68``: every annotated photo of ``$MFIRRN_DATASETS/faces-68`` (see ``photos68.py``);
- ``dev-split originals``: the 450x450 AFLW2000-3D photos of the dev split, scored against the original
  68-point GT (3DMM fits) and the hand re-annotated GT.

NME (%) is normalised by sqrt(w*h) of the GT box, per face; the table gives the mean, the median and the
worst face, and for the dev split also the mean of the three yaw-bin means (the benchmark's headline
number; bins from the GT pose, as in ``mfirrn benchmark``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from mfirrn import models
from mfirrn.benchmark import AFLW2000
from mfirrn.detect import create_detector
from mfirrn.metrics import nme, summarize_by_yaw
from mfirrn.pipeline import Reconstructor, read_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos68 import load_annotations, match  # noqa: E402


def load_model(spec: str):
    """A registered model name or a checkpoint path."""
    return models.load_checkpoint(spec) if Path(spec).is_file() else models.create(spec)


def score(rec: Reconstructor, items: list[tuple[Path, np.ndarray]], boxes: list[np.ndarray]) -> dict[tuple[int, int], float]:
    """NME (%) of every GT face matched by a reconstructed face: {(photo, GT face): NME}."""
    errs = {}
    for k, ((path, gt), b) in enumerate(zip(items, boxes)):
        if len(b) == 0:
            continue
        faces = rec(read_image(path), boxes=b)
        for i, g in match([f.landmarks for f in faces], gt):
            errs[(k, g)] = float(nme(faces[i].landmarks[None, :, :2], gt[g][None])[0]) * 100
    return errs


def score_tddfa_v2(run, items: list[tuple[Path, np.ndarray]]) -> dict[tuple[int, int], float]:
    """As :func:`score`, for 3DDFA_V2's own pipeline (``tddfa_v2.load``: its FaceBoxes and two-step)."""
    errs = {}
    for k, (path, gt) in enumerate(items):
        _, lms = run(read_image(path))
        pred = [lm.T for lm in lms]  # (68, 3) each
        for i, g in match(pred, gt):
            errs[(k, g)] = float(nme(pred[i][None, :, :2], gt[g][None])[0]) * 100
    return errs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=os.environ.get("MFIRRN_DATASETS", "../shared/datasets"))
    ap.add_argument("--models", nargs="+", default=[models.DEFAULT_MODEL], help="registered names or checkpoint paths")
    ap.add_argument("--tddfa-v2", metavar="DIR", default=None,
                    help="a built 3DDFA_V2 checkout: add its own pipeline (FaceBoxes, mb05, two-step) as a row")
    args = ap.parse_args()
    root = Path(args.datasets)
    dev = {gt: AFLW2000.load(root / "aflw2000-3d-dev", gt=gt) for gt in ("original", "reannotated")}
    photos = dev["original"].root / "AFLW2000-3D"
    sets = {"faces-68": [(p, g) for p, g, _ in load_annotations(root / "faces-68")],
            "dev-split originals, original GT": [(photos / n, dev["original"].gt[i][None])
                                                 for i, n in enumerate(dev["original"].names)],
            "dev-split originals, re-annotated GT": [(photos / n, dev["reannotated"].gt[i][None])
                                                     for i, n in enumerate(dev["reannotated"].names)]}
    detector = create_detector("faceboxes", backend="onnxruntime", threads=1)
    boxes = {name: [detector(read_image(p)) for p, _ in items] for name, items in sets.items() if name != "dev-split originals, re-annotated GT"}
    boxes["dev-split originals, re-annotated GT"] = boxes["dev-split originals, original GT"]
    yaw = dev["original"].yaw
    results = {}
    for spec in args.models:
        rec = Reconstructor(load_model(spec), dense=False)
        results[spec] = {name: score(rec, items, boxes[name]) for name, items in sets.items()}
    if args.tddfa_v2:
        import tddfa_v2

        run = tddfa_v2.load(args.tddfa_v2, onnx=False)
        results["3DDFA_V2's own code (two-step)"] = {name: score_tddfa_v2(run, items) for name, items in sets.items()}
    print("## Whole pipeline (FaceBoxes, robust refinement), NME % per face, on the faces every model finds")
    for name, items in sets.items():
        common = sorted(set.intersection(*(set(r[name]) for r in results.values())))
        n_gt = sum(len(g) for _, g in items)
        print(f"\n### {name}: {len(items)} photos, {n_gt} annotated faces, {len(common)} scored")
        yaw_col = name.startswith("dev-split")
        print("| model | mean | median | worst |" + (" yaw-bin mean |" if yaw_col else ""))
        print("|---|---:|---:|---:|" + ("---:|" if yaw_col else ""))
        for spec, res in results.items():
            e = np.array([res[name][key] for key in common])
            row = f"| {spec} | {e.mean():.3f} | {np.median(e):.3f} | {e.max():.2f} |"
            if yaw_col:
                row += f" {summarize_by_yaw(e / 100, yaw[[k for k, _ in common]]).mean:.3f} |"
            print(row)


if __name__ == "__main__":
    main()
