"""The rule that decides whether a trained model is shipped, fixed before any candidate is scored.

A candidate replaces nothing and is registered only if, against a reference (the default ``3ddfa-v2-mb05``,
and the shipped model of the same architecture it would succeed), every criterion of :data:`SHIP_RULE` holds
on five comparisons, each paired image by image (or face by face) with a 95 % bootstrap interval of the
difference candidate − reference (negative: the candidate is better):

- ``dev-original``, ``dev-reannotated``: the AFLW2000-3D dev split (benchmark crops), mean of the yaw-bin
  means, both ground truths: the interval must lie **below 0** (a gain the split resolves, so that it is
  likely to hold on the held-out images of the same distribution);
- ``dev-photos-original``, ``dev-photos-reannotated``: the dev split's photos through the whole pipeline
  (``benchmarks/photos_models.py``: FaceBoxes, refinement), per-face mean: the difference must be **below 0**;
- ``faces-68``: the annotated photos, per-face mean: the interval must **not lie above 0** (the set resolves
  about ±0.05, so only a resolved loss counts against the candidate).

:func:`apply_ship_rule` applies it to two models' per-image results; ``python benchmarks/ship_rule.py``
computes those results for two models and prints the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

from mfirrn.evaluation.report import PairedDifference, paired_bin_mean_difference, paired_difference

__all__ = ["SHIP_RULE", "ShipCheck", "ShipDecision", "apply_ship_rule"]

#: set -> (statistic, criterion on the interval of candidate − reference): "resolved-better" (interval below 0),
#: "better" (mean difference below 0), "not-resolved-worse" (interval not entirely above 0).
SHIP_RULE: dict[str, tuple[str, str]] = {
    "dev-original": ("bin-mean", "resolved-better"),
    "dev-reannotated": ("bin-mean", "resolved-better"),
    "dev-photos-original": ("per-face mean", "better"),
    "dev-photos-reannotated": ("per-face mean", "better"),
    "faces-68": ("per-face mean", "not-resolved-worse"),
}


@dataclass(frozen=True)
class ShipCheck:
    """One comparison: the set, its statistic and criterion, the means, the paired difference, the verdict."""

    set: str
    statistic: str
    criterion: str
    reference: float
    candidate: float
    difference: PairedDifference
    passed: bool


@dataclass(frozen=True)
class ShipDecision:
    """``ship``: every check passed. :meth:`table` formats the checks as Markdown."""

    candidate: str
    reference: str
    checks: tuple[ShipCheck, ...]

    @property
    def ship(self) -> bool:
        return all(c.passed for c in self.checks)

    def table(self) -> str:
        lines = [f"{self.candidate} against {self.reference}: {'SHIP' if self.ship else 'do not ship'}", "",
                 "| set | statistic | reference | candidate | difference, 95 % interval | criterion | passed |",
                 "|---|---|---|---|---|---|---|"]
        for c in self.checks:
            d = c.difference
            lines.append(f"| {c.set} | {c.statistic} | {c.reference:.3f} | {c.candidate:.3f} | {d.mean:+.3f} "
                         f"[{d.ci[0]:+.3f}, {d.ci[1]:+.3f}] | {c.criterion} | {'yes' if c.passed else 'NO'} |")
        return "\n".join(lines)


def _passes(d: PairedDifference, criterion: str) -> bool:
    if criterion == "resolved-better":
        return d.ci[1] < 0
    if criterion == "better":
        return d.mean < 0
    if criterion == "not-resolved-worse":
        return not d.ci[0] > 0
    raise ValueError(f"unknown criterion {criterion!r}")


def apply_ship_rule(results: Mapping[str, tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]], *,
                    candidate: str = "candidate", reference: str = "reference", n: int = 10000,
                    seed: int = 0) -> ShipDecision:
    """Apply :data:`SHIP_RULE`. ``results[set] = (reference (N,), candidate (N,), yaw (N,) or None)``: the NME (%)
    of the same N images or faces for each of the five sets of :data:`SHIP_RULE` (``yaw`` in degrees, needed for
    the bin-mean sets). Every set is required: a decision on fewer comparisons is not this rule's."""
    missing = [s for s in SHIP_RULE if s not in results]
    extra = [s for s in results if s not in SHIP_RULE]
    if missing or extra:
        raise ValueError(f"the ship rule needs exactly the sets {', '.join(SHIP_RULE)}; "
                         f"missing: {', '.join(missing) or 'none'}, unknown: {', '.join(extra) or 'none'}")
    checks = []
    for name, (statistic, criterion) in SHIP_RULE.items():
        ref, cand, yaw = results[name]
        ref, cand = np.asarray(ref, np.float64), np.asarray(cand, np.float64)
        if statistic == "bin-mean":
            if yaw is None:
                raise ValueError(f"{name}: the yaw of every image is needed for the mean of the yaw-bin means")
            d = paired_bin_mean_difference(ref, cand, yaw, n=n, seed=seed)
            from mfirrn.evaluation.metrics import summarize_by_yaw

            means = [summarize_by_yaw(v / 100, yaw).mean for v in (ref, cand)]
        else:
            d = paired_difference(ref, cand, n=n, seed=seed)
            means = [float(ref.mean()), float(cand.mean())]
        checks.append(ShipCheck(name, statistic, criterion, means[0], means[1], d, _passes(d, criterion)))
    return ShipDecision(candidate, reference, tuple(checks))
