"""Where labels and models disagree with people: per-region NME on the AFLW2000-3D dev split.

Prints, for the original and the hand re-annotated 68-point GT, the NME (%) of each region (jaw, brows,
nose, eyes, mouth; mean of the three yaw-bin means, as the benchmark) and of the jaw per yaw bin, for:
the teacher, the labeller's fit to the dev images' 21 AFLW points (contour anchor off and on), and any
checkpoints or registered models given. Evaluation only: nothing may be tuned on these numbers.

    python benchmarks/label_agreement.py --models 3ddfa-mb05-aflw21 mfirrn-mb05-aflw21 runs/RUN/best.pt
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

from mfirrn import models
from mfirrn.data.labels.fitting import POINT_SETS, FitConfig, fit_landmarks, mapping_matrix, visible_mask
from mfirrn.data.labels.pool import points_to_crop
from mfirrn.evaluation.benchmark import AFLW2000, resolve_aflw2000_root
from mfirrn.evaluation.metrics import bbox_normaliser, yaw_bin_index
from mfirrn.geometry.bfm import MorphableModel
from mfirrn.geometry.crop import crops_to_tensor
from mfirrn.inference.predict import predict_params

AFLW21_NAMES = ("brow L out", "brow L mid", "brow L in", "brow R in", "brow R mid", "brow R out", "eye L out",
                "eye L centre", "eye L in", "eye R in", "eye R centre", "eye R out", "ear L", "nose L", "nose tip",
                "nose R", "ear R", "mouth L", "mouth centre", "mouth R", "chin")
REGIONS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
           "mouth": range(48, 68)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=os.environ.get("MFIRRN_DATASETS", "../shared/datasets"))
    ap.add_argument("--teacher", default="3ddfa-v2-mb05")
    ap.add_argument("--contour-weights", type=float, nargs="*", default=[0.0, 1.0])
    ap.add_argument("--points", nargs="*", default=["all"], choices=sorted(POINT_SETS),
                    help="AFLW point sets of the labeller's fit (`mfirrn data fit-landmarks --points`)")
    ap.add_argument("--models", nargs="*", default=[], help="registered names or checkpoint paths")
    args = ap.parse_args()
    root = Path(args.datasets) / "aflw2000-3d-dev"
    gts = {"original": AFLW2000.load(root, "original"), "re-annotated": AFLW2000.load(root, "reannotated")}
    data = gts["original"]
    bfm, teacher = MorphableModel("full"), models.create(args.teacher)
    roi = torch.as_tensor(data.roi, dtype=torch.float32)

    def landmarks(params: torch.Tensor, convention: str) -> np.ndarray:
        with torch.no_grad():
            return bfm.landmarks(params, convention=convention, roi=roi).numpy()[..., :2]

    preds = {}
    init = predict_params(teacher, crops_to_tensor(data.crops))
    preds[f"teacher {args.teacher}"] = landmarks(init, teacher.card.convention)
    _, configs = resolve_aflw2000_root(root)
    pts21 = np.load(configs / "AFLW2000-3D.pts21.npy").astype(np.float64).transpose(0, 2, 1)[: len(data.names)]
    for points in args.points:
        for mu in args.contour_weights:
            cfg = FitConfig(contour_weight=mu, **POINT_SETS[points])
            res = fit_landmarks(bfm, teacher.stats, init, points_to_crop(pts21, data.roi),
                                convention=teacher.card.convention, config=cfg)
            preds[f"labels, points={points}, contour_weight={mu:g} ({int(res.accepted.sum())} pass the gate)"] = \
                landmarks(res.params, teacher.card.convention)
    for spec in args.models:
        m = models.load(spec)
        preds[spec] = landmarks(predict_params(m, crops_to_tensor(data.crops)), m.card.convention)

    print("The dev images' 21 AFLW points against each 68-point GT mapped to 21 points (REFERENCE §3 groups):")
    print("distance % of the GT box (mean over visible points) and mean vertical offset % (+ = AFLW point lower)")
    M = mapping_matrix().numpy()
    vis = visible_mask(pts21)
    for name, d in gts.items():
        g21 = np.einsum("kj,njc->nkc", M, d.gt)
        norm = bbox_normaliser(d.gt)[:, None]
        dist = np.where(vis, np.linalg.norm(pts21 - g21, axis=-1) / norm * 100, np.nan)
        dy = np.where(vis, (pts21 - g21)[..., 1] / norm * 100, np.nan)
        print(f"  {name}: mean {np.nanmean(dist):.2f}; " + ", ".join(
            f"{n} {a:.2f} ({b:+.2f})" for n, a, b in zip(AFLW21_NAMES, np.nanmean(dist, 0), np.nanmean(dy, 0))))

    for name, d in gts.items():
        bins = [yaw_bin_index(d.yaw) == k for k in range(3)]
        norm = bbox_normaliser(d.gt)
        print(f"\n{name} GT: NME % by region (mean of yaw-bin means), jaw by yaw bin")
        print("| labels / model | " + " | ".join(REGIONS) + " | all 68 | jaw [0,30] | jaw (30,60] | jaw (60,90] |")
        print("|---" * (len(REGIONS) + 5) + "|")
        for label, lm in preds.items():
            err = np.linalg.norm(lm - d.gt, axis=-1) / norm[:, None] * 100  # (N, 68)
            per_bins = lambda e: float(np.mean([e[b].mean() for b in bins]))  # noqa: E731
            row = [per_bins(err[:, list(r)].mean(1)) for r in REGIONS.values()] + [per_bins(err.mean(1))]
            row += [float(err[b][:, :17].mean()) for b in bins]
            print(f"| {label} | " + " | ".join(f"{x:.3f}" for x in row) + " |")


if __name__ == "__main__":
    main()
