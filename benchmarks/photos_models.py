"""Models compared through the whole pipeline, as ``mfirrn reconstruct`` runs them, on annotated photos.

    MFIRRN_ASSET_MIRROR=... MFIRRN_DATASETS=... python benchmarks/photos_models.py \
        [--models 3ddfa-v2-mb05 runs/my-run/best.pt ...]

Each model (a registered name or a checkpoint path) runs in :class:`~mfirrn.inference.pipeline.Reconstructor`
with the defaults (FaceBoxes, robust refinement); the detector runs once per photo and all models get
the same boxes, so they are scored on the same faces. ``--tddfa-v2 DIR`` adds 3DDFA_V2's own pipeline
(its FaceBoxes, mb05 and two-step refinement; see ``tddfa_v2.py``) as a row; every row is scored on the
faces all rows find. Photo sets:

- ``faces-68``: every annotated photo of ``$MFIRRN_DATASETS/faces-68`` (see ``photos68.py``);
- ``dev-split originals``: the 450x450 AFLW2000-3D photos of the dev split, scored against the original
  68-point GT (3DMM fits) and the hand re-annotated GT.

NME (%) is normalised by sqrt(w*h) of the GT box, per face; the table gives the mean, the median and the
worst face, and for the dev split also the mean of the three yaw-bin means (the benchmark's headline
number; bins from the GT pose, as in ``mfirrn benchmark``). Every model after the first is then compared
with the first face by face: the mean difference, its 95 % paired-bootstrap interval and the faces each
is better on (``mfirrn.evaluation.report.paired_difference``), i.e. whether the set can tell the two apart.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from mfirrn import models
from mfirrn.detect.registry import create_detector
from mfirrn.evaluation.benchmark import AFLW2000
from mfirrn.evaluation.metrics import nme, summarize_by_yaw
from mfirrn.evaluation.report import paired_difference
from mfirrn.inference.pipeline import Reconstructor, read_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos68 import load_annotations, match  # noqa: E402

Faces = list[np.ndarray]  # the (68, >=2) landmarks of every face reconstructed in one photo


def reconstruct(rec: Reconstructor, paths: list[Path], boxes: list[np.ndarray]) -> list[Faces]:
    """Landmarks of the faces of every photo, from the given detector boxes."""
    return [[f.landmarks for f in rec(read_image(p), boxes=b)] if len(b) else [] for p, b in zip(paths, boxes)]


def reconstruct_tddfa_v2(run, paths: list[Path]) -> list[Faces]:
    """The same for 3DDFA_V2's own pipeline (``tddfa_v2.load``: its FaceBoxes and two-step)."""
    return [[lm.T for lm in run(read_image(p))[1]] for p in paths]


def score(faces: list[Faces], gts: list[np.ndarray]) -> dict[tuple[int, int], float]:
    """NME (%) of every GT face (gts[k]: (F, 68, 2)) matched by a reconstructed face: {(photo, GT face): NME}."""
    errs = {}
    for k, (pred, gt) in enumerate(zip(faces, gts)):
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
    faces68 = load_annotations(root / "faces-68")
    photos = {"faces-68": [p for p, _, _ in faces68],
              "dev": [dev["original"].root / "AFLW2000-3D" / n for n in dev["original"].names]}
    # table name -> (photo set, GT (F, 68, 2) per photo): both dev-split GTs score one reconstruction
    tables = {"faces-68": ("faces-68", [g for _, g, _ in faces68]),
              "dev-split originals, original GT": ("dev", [g[None] for g in dev["original"].gt]),
              "dev-split originals, re-annotated GT": ("dev", [g[None] for g in dev["reannotated"].gt])}
    detector = create_detector("faceboxes", backend="onnxruntime", threads=1)
    boxes = {name: [detector(read_image(p)) for p in paths] for name, paths in photos.items()}
    preds = {spec: {name: reconstruct(Reconstructor(models.load(spec), dense=False), paths, boxes[name])
                    for name, paths in photos.items()} for spec in args.models}
    if args.tddfa_v2:
        import tddfa_v2

        run = tddfa_v2.load(args.tddfa_v2, onnx=False)
        preds["3DDFA_V2's own code (two-step)"] = {name: reconstruct_tddfa_v2(run, paths) for name, paths in photos.items()}
    results = {spec: {t: score(p[s], gts) for t, (s, gts) in tables.items()} for spec, p in preds.items()}
    yaw = dev["original"].yaw
    print("## Whole pipeline (FaceBoxes, robust refinement), NME % per face, on the faces every model finds")
    for name, (set_name, gts) in tables.items():
        common = sorted(set.intersection(*(set(r[name]) for r in results.values())))
        print(f"\n### {name}: {len(gts)} photos, {sum(len(g) for g in gts)} annotated faces, {len(common)} scored")
        yaw_col = set_name == "dev"
        print("| model | mean | median | worst |" + (" yaw-bin mean |" if yaw_col else ""))
        print("|---|---:|---:|---:|" + ("---:|" if yaw_col else ""))
        for spec, res in results.items():
            e = np.array([res[name][key] for key in common])
            row = f"| {spec} | {e.mean():.3f} | {np.median(e):.3f} | {e.max():.2f} |"
            if yaw_col:
                row += f" {summarize_by_yaw(e / 100, yaw[[k for k, _ in common]]).mean:.3f} |"
            print(row)
        specs = list(results)
        if len(specs) > 1:
            base = np.array([results[specs[0]][name][key] for key in common])
            print(f"\npaired against {specs[0]} (NME difference per face; 95 % bootstrap interval, 10 000 resamples)")
            print("| model | mean difference | 95 % interval | faces better / worse | resolved |")
            print("|---|---:|---|---:|---|")
            for spec in specs[1:]:
                d = paired_difference(base, np.array([results[spec][name][key] for key in common]))
                print(f"| {spec} | {d.mean:+.3f} | [{d.ci[0]:+.3f}, {d.ci[1]:+.3f}] | {d.lower} / {d.higher} | "
                      f"{'yes' if d.resolved() else 'no'} |")


if __name__ == "__main__":
    main()
