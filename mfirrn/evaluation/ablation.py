"""The head ablation of an MFIRRN: each head alone, the fused output against the coarse head, paired intervals.

The MFIRRN's claim is that the medium and fine granularities add to the coarse one: each head is trained
with its own loss and the decoder fuses the three. On one AFLW2000-3D split and ground truth,
:func:`head_ablation` scores every output of a model on the same images (:func:`mfirrn.evaluation.benchmark.evaluate`
with ``output=``) and compares them image by image: fused − coarse, medium − coarse and fine − coarse, and
optionally every output against a reference model (e.g. the MobileNet trained with the same recipe), each as
a paired bootstrap interval of the headline number (mean of the yaw-bin means,
:func:`mfirrn.evaluation.report.paired_bin_mean_difference`) and of the per-image mean
(:func:`mfirrn.evaluation.report.paired_difference`). ``python benchmarks/head_ablation.py`` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from mfirrn.evaluation.benchmark import AFLW2000, evaluate
from mfirrn.evaluation.metrics import YawBinSummary
from mfirrn.evaluation.report import PairedDifference, paired_bin_mean_difference, paired_difference

__all__ = ["HEAD_OUTPUTS", "HeadAblation", "head_ablation", "format_ablation"]

#: The outputs of an MFIRRN, coarse first (the baseline every other output is compared with).
HEAD_OUTPUTS = ("coarse", "medium", "fine", "fused")


@dataclass
class HeadAblation:
    """Scores of every output of one model on one split and GT (NME in %).

    ``summaries[output]``: yaw-bin summary; ``per_image[output]`` (N,) NME in %; ``paired[label]``:
    ``(bin-mean difference, per-image difference)`` for labels ``"fused - coarse"``, ``"medium - coarse"``,
    ``"fine - coarse"`` and, with a reference, ``"<output> - <reference>"`` (negative: the first is better).
    """

    model: str
    gt: str
    n_images: int
    summaries: dict[str, YawBinSummary]
    per_image: dict[str, np.ndarray]
    paired: dict[str, tuple[PairedDifference, PairedDifference]] = field(default_factory=dict)
    reference: Optional[str] = None

    def to_dict(self) -> dict:
        def pd(d: PairedDifference) -> dict:
            return {"mean": d.mean, "ci": list(d.ci), "lower": d.lower, "higher": d.higher, "resolved": d.resolved()}

        return {"model": self.model, "gt": self.gt, "n_images": self.n_images, "reference": self.reference,
                "outputs": {k: s.to_dict() for k, s in self.summaries.items()},
                "paired": {k: {"bin_mean": pd(a), "per_image": pd(b)} for k, (a, b) in self.paired.items()}}


def _pair(a: np.ndarray, b: np.ndarray, yaw: np.ndarray, n: int, seed: int) -> tuple[PairedDifference, ...]:
    return paired_bin_mean_difference(a, b, yaw, n=n, seed=seed), paired_difference(a, b, n=n, seed=seed)


def head_ablation(model: Any, data: AFLW2000, *, name: Optional[str] = None, reference: Any = None,
                  reference_name: Optional[str] = None, bfm: Any = None, n: int = 10000, seed: int = 0,
                  batch_size: int = 128) -> HeadAblation:
    """Score each output of an MFIRRN ``model`` (carrying ``card``/``stats``) on ``data`` and compare them.

    ``reference``: an optional second model (any architecture; its fused output) compared with every output.
    ``n`` bootstrap replicates from ``seed``.
    """
    from mfirrn.geometry.bfm import MorphableModel

    bfm = bfm if bfm is not None else MorphableModel("full")
    name = name or model.card.name
    per_image, summaries = {}, {}
    for out in HEAD_OUTPUTS:
        res = evaluate(model, data, bfm=bfm, batch_size=batch_size, name=name, output=out)
        per_image[out], summaries[out] = res.nme * 100, res.summary
    yaw = np.asarray(data.yaw, np.float64)
    ab = HeadAblation(name, data.gt_kind, len(data.names), summaries, per_image)
    for out in ("fused", "medium", "fine"):
        ab.paired[f"{out} - coarse"] = _pair(per_image["coarse"], per_image[out], yaw, n, seed)
    if reference is not None:
        ref_name = reference_name or reference.card.name
        res = evaluate(reference, data, bfm=bfm, batch_size=batch_size, name=ref_name)
        ab.reference = ref_name
        ab.summaries[ref_name], ab.per_image[ref_name] = res.summary, res.nme * 100
        for out in HEAD_OUTPUTS:
            ab.paired[f"{out} - {ref_name}"] = _pair(res.nme * 100, per_image[out], yaw, n, seed)
    return ab


def _fmt_pair(d: PairedDifference) -> str:
    return f"{d.mean:+.3f} [{d.ci[0]:+.3f}, {d.ci[1]:+.3f}]{' *' if d.resolved() else ''}"


def format_ablation(ab: HeadAblation) -> str:
    """Two Markdown tables: every output's NME by yaw bin, then the paired differences (95 % intervals;
    ``*`` marks an interval that excludes 0)."""
    lines = [f"{ab.model}, AFLW2000-3D ({ab.n_images} images), {ab.gt} GT, NME %", "",
             "| output | [0,30] | (30,60] | (60,90] | Mean | per-image mean |", "|---|---|---|---|---|---|"]
    for out, s in ab.summaries.items():
        bins = " | ".join(f"{b:.3f}" for b in s.bins)
        lines.append(f"| {out} | {bins} | {s.mean:.3f} | {s.per_image_mean:.3f} |")
    lines += ["", "| paired difference | Mean (of bin means), 95 % interval | per-image mean, 95 % interval | "
              "images better / worse |", "|---|---|---|---|"]
    for label, (bm, pi) in ab.paired.items():
        lines.append(f"| {label} | {_fmt_pair(bm)} | {_fmt_pair(pi)} | {pi.lower} / {pi.higher} |")
    return "\n".join(lines)
