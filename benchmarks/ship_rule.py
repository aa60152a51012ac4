"""Apply the ship rule (``mfirrn.evaluation.ship_rule``, fixed before scoring) to a candidate and a reference.

    MFIRRN_ASSET_MIRROR=... MFIRRN_DATASETS=... python benchmarks/ship_rule.py \
        --reference 3ddfa-v2-mb05 --candidate runs/aflwlp-mfirrn-mb05/last.pt [--json results/ship.json]

Scores both models (registered names or checkpoints) on the five comparisons of the rule: the AFLW2000-3D
dev split (benchmark crops) against its original and re-annotated GT, the dev split's photos through the
whole pipeline against both GTs, and the ``faces-68`` photos (pipeline as ``photos_models.py``: FaceBoxes,
robust refinement, the same boxes for both models, scored on the faces both find), then prints each check
and the decision. Evaluation only: nothing may be tuned on these sets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from mfirrn import models
from mfirrn.detect.registry import create_detector
from mfirrn.evaluation.benchmark import AFLW2000, evaluate
from mfirrn.evaluation.ship_rule import apply_ship_rule
from mfirrn.geometry.bfm import MorphableModel
from mfirrn.inference.pipeline import Reconstructor, read_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos68 import load_annotations  # noqa: E402
from photos_models import reconstruct, score  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=os.environ.get("MFIRRN_DATASETS", "../shared/datasets"))
    ap.add_argument("--reference", default=models.DEFAULT_MODEL, help="registered name or checkpoint path")
    ap.add_argument("--candidate", required=True, help="registered name or checkpoint path")
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the checks as JSON")
    args = ap.parse_args()
    root = Path(args.datasets)
    specs = {"reference": args.reference, "candidate": args.candidate}
    nets = {k: models.load(v) for k, v in specs.items()}
    dev = {gt: AFLW2000.load(root / "aflw2000-3d-dev", gt=gt) for gt in ("original", "reannotated")}
    bfm = MorphableModel("full")
    results: dict = {}
    for gt, data in dev.items():
        nme = [evaluate(nets[k], data, bfm=bfm).nme * 100 for k in specs]
        results[f"dev-{gt}"] = (nme[0], nme[1], data.yaw)
    faces68 = load_annotations(root / "faces-68")
    photos = {"faces-68": [p for p, _, _ in faces68],
              "dev": [dev["original"].root / "AFLW2000-3D" / n for n in dev["original"].names]}
    gts = {"faces-68": ("faces-68", [g for _, g, _ in faces68]),
           "dev-photos-original": ("dev", [g[None] for g in dev["original"].gt]),
           "dev-photos-reannotated": ("dev", [g[None] for g in dev["reannotated"].gt])}
    detector = create_detector("faceboxes", backend="onnxruntime", threads=1)
    boxes = {name: [detector(read_image(p)) for p in paths] for name, paths in photos.items()}
    preds = {k: {name: reconstruct(Reconstructor(nets[k], dense=False), paths, boxes[name])
                 for name, paths in photos.items()} for k in specs}
    for name, (photo_set, gt) in gts.items():
        scored = {k: score(preds[k][photo_set], gt) for k in specs}
        common = sorted(set(scored["reference"]) & set(scored["candidate"]))
        results[name] = tuple(np.array([scored[k][key] for key in common]) for k in specs) + (None,)
    decision = apply_ship_rule(results, candidate=args.candidate, reference=args.reference)
    print(decision.table())
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"ship": decision.ship, "candidate": args.candidate,
                                               "reference": args.reference,
                                               "checks": [{"set": c.set, "statistic": c.statistic,
                                                           "criterion": c.criterion, "reference": c.reference,
                                                           "candidate": c.candidate, "difference": c.difference.mean,
                                                           "ci": list(c.difference.ci), "n": c.difference.n_items,
                                                           "passed": c.passed} for c in decision.checks]},
                                              indent=2) + "\n")


if __name__ == "__main__":
    main()
