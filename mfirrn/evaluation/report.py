"""Benchmark reports: the paper's comparison table, bootstrap intervals, CED curves, per-landmark errors.

The published rows (the MFIRRN paper's table, then the later methods') are data here
(:data:`PUBLISHED`); measured rows come from
:class:`mfirrn.evaluation.benchmark.BenchmarkResult`. Every row of :func:`comparison_table` says what it is:
``kind`` is ``"published"`` (copied from a paper; ``source`` names the table) or ``"measured"``
(``split`` and ``date`` say on which data and when). A number a paper does not publish ("–" in its
table) is NaN, printed as "–" by :func:`format_comparison` — never filled in.

AFLW (21 points): the AFLW-21 test set is not available offline, so measured rows carry an AFLW-21
value only when one is passed in (and it is labelled approximate: without ``AFLW_GT_pts68.npy`` the
official normaliser, from AFLW's 68-point annotation, is unavailable). A model trained on the AFLW pool
(``aflw-21pt-train``) is never scored on AFLW-21; its row says so (:func:`aflw21_exclusion`).

Statistics (all NME in %):

* :func:`bootstrap_ci` — percentile bootstrap of the yaw-bin protocol: each replicate resamples images
  *within* each yaw bin (bin sizes fixed), recomputes the three bin means and their mean.
* :func:`paired_difference` — two methods on the same items: the mean per-item difference and its
  bootstrap interval (pairs resampled together), i.e. whether a sample can tell the two apart.
* :func:`ced_curve` — cumulative error distribution: the fraction of images with NME <= t.
* :func:`per_landmark_error` — mean normalised error of each of the 68 points.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

from mfirrn.evaluation.benchmark import AFLW2000, BenchmarkResult
from mfirrn.evaluation.metrics import bbox_normaliser, yaw_bin_index
from mfirrn.io.checks import check_shape
from mfirrn.io.fileio import atomic_write

__all__ = [
    "PublishedRow",
    "PUBLISHED",
    "BIN_COLUMNS",
    "AFLW21_COLUMNS",
    "POSE_COLUMNS",
    "comparison_table",
    "format_comparison",
    "BootstrapCI",
    "bootstrap_ci",
    "PairedDifference",
    "paired_difference",
    "paired_bin_mean_difference",
    "paired_cluster_difference",
    "ced_curve",
    "per_landmark_error",
    "worst_images",
    "checkpoint_trained_on",
    "registered_trained_on",
    "trained_on_aflw",
    "aflw21_exclusion",
    "find_aflw21",
    "AFLW21_ABSENT",
    "discover_checkpoints",
    "to_csv",
    "to_latex",
    "export_table",
    "ModelEntry",
    "load_model_entry",
    "jigsaw_effect",
    "plot_yaw_bars",
    "plot_ced",
    "plot_per_landmark",
    "worst_gallery",
    "save_figure",
    "default_results_dir",
]

AFLW21_ABSENT = "AFLW-21 test set not found (fetch it with `mfirrn data fetch aflw`)"
BIN_COLUMNS = ("[0,30]", "(30,60]", "(60,90]")
NAN = float("nan")


@dataclass(frozen=True)
class PublishedRow:
    """A published result (copied from the paper's table), NME in %: AFLW2000-3D 68 points by yaw bin, Mean, Std, and
    AFLW 21 points by yaw bin, Mean, Std. NaN = not published by that paper (printed as "–")."""

    method: str
    bins: tuple[float, float, float]
    mean: float
    aflw21: float
    source: str
    note: str = ""
    std: float = NAN
    aflw21_bins: tuple[float, float, float] = (NAN, NAN, NAN)
    aflw21_std: float = NAN


_NAN3 = (NAN, NAN, NAN)
_MFIRRN_TABLE = "MFIRRN paper (ICASSP 2021), table"
_SYNERGY_TABLE = "SynergyNet paper (3DV 2021), table"
_NO_AFLW2000 = "no AFLW2000-3D figure published"
_NO_AFLW21 = "no AFLW figure published"
_LATER = "no AFLW figure in that table"


def _mfirrn_row(method: str, a2000: tuple[float, ...], aflw: tuple[float, ...], note: str = "") -> PublishedRow:
    """A row of the MFIRRN table from its two five-number groups (bins, Mean, Std; NaN where "–")."""
    a2000 = a2000 or (NAN,) * 5
    aflw = aflw or (NAN,) * 5
    return PublishedRow(method, tuple(a2000[:3]), a2000[3], aflw[3], _MFIRRN_TABLE, note, std=a2000[4],
                        aflw21_bins=tuple(aflw[:3]), aflw21_std=aflw[4])


# The MFIRRN paper's table (both datasets), then the later methods (SynergyNet table). Every row has
# at least one published number; its note says which groups the paper leaves empty.
PUBLISHED: tuple[PublishedRow, ...] = (
    _mfirrn_row("CDM", (), (8.150, 13.020, 16.170, 12.440, 4.040), _NO_AFLW2000),
    _mfirrn_row("RCPR", (4.260, 5.960, 13.180, 7.800, 4.740), (5.430, 6.580, 11.530, 7.850, 3.240)),
    _mfirrn_row("ESR", (4.600, 6.700, 12.670, 7.990, 4.190), (5.660, 7.120, 11.940, 8.240, 3.290)),
    _mfirrn_row("SDM", (3.670, 4.940, 9.760, 6.120, 3.210), (4.750, 5.550, 9.340, 6.550, 2.450)),
    _mfirrn_row("DEFA", (4.500, 5.560, 7.330, 5.803, 1.169), (), _NO_AFLW21),
    _mfirrn_row("3DDFA (CVPR16)", (3.780, 4.540, 7.930, 5.420, 2.210), (5.000, 5.060, 6.740, 5.600, 0.990)),
    _mfirrn_row("Nonlinear 3DMM (CVPR18)", (NAN, NAN, NAN, 4.700, NAN), (),
                "only the AFLW2000-3D mean published; " + _NO_AFLW21),
    _mfirrn_row("DAMDNet (ICCVW19)", (2.907, 3.830, 4.953, 3.897, 0.837), (4.359, 5.209, 6.028, 5.199, 0.682)),
    _mfirrn_row("MFIRRN (paper)", (2.841, 3.572, 4.561, 3.658, 0.705), (4.321, 5.051, 5.958, 5.110, 0.670),
                "the authors' released code (random test-time jigsaw) gives 3.650-3.690"),
    PublishedRow("3D-FAN", (3.16, 3.53, 4.60), 3.76, NAN, _SYNERGY_TABLE, _LATER),
    PublishedRow("3DDFA-PAMI", (2.84, 3.57, 4.96), 3.79, NAN, _SYNERGY_TABLE, _LATER),
    PublishedRow("PRNet (ECCV18)", (2.75, 3.51, 4.61), 3.62, NAN, _SYNERGY_TABLE, _LATER),
    PublishedRow("2DASL", (2.75, 3.46, 4.45), 3.55, NAN, _SYNERGY_TABLE, _LATER),
    PublishedRow("3DDFA_V2 (ECCV20)", (2.63, 3.42, 4.48), 3.51, NAN, _SYNERGY_TABLE, _LATER),
    PublishedRow("SynergyNet (3DV21)", (2.65, 3.30, 4.27), 3.41, 4.06, _SYNERGY_TABLE,
                 "AFLW: only the mean in that table"),
)

AFLW21_COLUMNS = ("AFLW-21 [0,30]", "AFLW-21 (30,60]", "AFLW-21 (60,90]", "AFLW-21 mean", "AFLW-21 Std")
_COLUMNS = ["method", "kind", "split", "date", "gt", *BIN_COLUMNS, "Mean", "Std", "per-image mean",
            *AFLW21_COLUMNS, "yaw MAE", "pitch MAE", "roll MAE", "pose MAE", "n_images", "source", "note"]
POSE_COLUMNS = ("yaw MAE", "pitch MAE", "roll MAE", "pose MAE")  # head-pose MAE in degrees (mfirrn.geometry.pose)


def _published_numbers(p: PublishedRow) -> list[float]:
    return [*p.bins, p.mean, p.std, *p.aflw21_bins, p.aflw21, p.aflw21_std]


def _pose_cells(p) -> dict[str, float]:
    """The pose columns of a row from a PoseSummary / PublishedPose (NaN without one)."""
    vals = (NAN,) * 4 if p is None else (p.yaw, p.pitch, p.roll, p.mean)
    return dict(zip(POSE_COLUMNS, vals))


def _published_pose_rows(methods: list[str]) -> tuple[dict[str, Any], list[Any]]:
    """Published head-pose rows matched to NME rows by method name (before any " (...)"), and the pose-only
    ones left over."""
    from mfirrn.evaluation.pose import PUBLISHED_POSE

    def key(m: str) -> str:
        return m.split(" (")[0].replace("-TPAMI", "-PAMI")

    by_key = {key(m): m for m in methods}
    matched = {by_key[key(p.method)]: p for p in PUBLISHED_POSE if key(p.method) in by_key}
    rest = [p for p in PUBLISHED_POSE if key(p.method) not in by_key]
    return matched, rest


def comparison_table(results: Iterable[BenchmarkResult], published: bool = True, *,
                     split: str = "aflw2000-3d-dev", date: Optional[str] = None,
                     aflw21: Optional[Mapping[str, Union[float, str, BenchmarkResult]]] = None,
                     notes: Optional[Mapping[str, str]] = None) -> pd.DataFrame:
    """The paper's table: published rows (``published=True``) then one measured row per result.

    ``split`` and ``date`` (default today, ISO) label the measured rows. ``aflw21`` maps a result's model
    name to its AFLW-21 result (a :class:`BenchmarkResult` of :func:`mfirrn.evaluation.benchmark.evaluate_aflw21`,
    or just its mean), labelled approximate, or to the reason it has none (a string); models absent from
    it get NaN with :data:`AFLW21_ABSENT`. ``notes`` adds free text per model.
    Columns: method, kind, split, date, gt, the three bins, Mean, Std (of the bin means), per-image mean,
    the AFLW-21 bins, mean and Std (:data:`AFLW21_COLUMNS`), head-pose MAE in degrees (:data:`POSE_COLUMNS`:
    yaw, pitch, roll, mean; measured where the AFLW2000-3D .mat fits are present; published pose rows beside
    their method, pose-only methods as extra published rows), n_images, source, note. A published row is
    never empty: each holds at least one published number (NaN only where the paper prints "–").
    """
    rows: list[dict[str, Any]] = []
    if published:
        pose_of, pose_only = _published_pose_rows([p.method for p in PUBLISHED])
        for p in PUBLISHED:
            pp = pose_of.get(p.method)
            rows.append({"method": p.method, "kind": "published", "split": "AFLW2000-3D (2000 images)", "date": "",
                         "gt": "original", **dict(zip(BIN_COLUMNS, p.bins)), "Mean": p.mean, "Std": p.std,
                         "per-image mean": NAN, **dict(zip(AFLW21_COLUMNS, (*p.aflw21_bins, p.aflw21, p.aflw21_std))),
                         **_pose_cells(pp), "n_images": 2000 if math.isfinite(p.mean) else 0,
                         "source": p.source if pp is None else f"{p.source}; pose: {pp.source}", "note": p.note})
        for pp in pose_only:
            rows.append({"method": pp.method, "kind": "published", "split": "AFLW2000-3D (2000 images)", "date": "",
                         "gt": "original", **dict(zip(BIN_COLUMNS, _NAN3)), "Mean": NAN, "Std": NAN,
                         "per-image mean": NAN, **dict(zip(AFLW21_COLUMNS, (NAN,) * 5)), **_pose_cells(pp),
                         "n_images": 2000, "source": f"pose: {pp.source}", "note": "head pose only published"})
    date = date or _dt.date.today().isoformat()
    aflw21 = dict(aflw21 or {})
    notes = dict(notes or {})
    for r in results:
        s = r.summary
        a21 = aflw21.get(r.model, AFLW21_ABSENT)
        note_parts = [notes[r.model]] if r.model in notes else []
        a21_values = [NAN] * 5
        if isinstance(a21, str):
            note_parts.append(a21 if a21.startswith("AFLW-21") else f"AFLW-21: {a21}")
        elif isinstance(a21, BenchmarkResult):
            a = a21.summary
            a21_values = [*a.bins, a.mean, a.std]
            note_parts.append(f"AFLW-21 approximate ({len(a21.names)} images; normaliser: crop side / sqrt(2), "
                              f"the official one needs AFLW_GT_pts68.npy, which is not public)")
        else:
            a21_values[3] = float(a21)
            note_parts.append("AFLW-21 approximate (no AFLW_GT_pts68.npy normaliser)")
        rows.append({"method": r.model, "kind": "measured", "split": f"{split} ({len(r.names)} images)", "date": date,
                     "gt": r.gt, **dict(zip(BIN_COLUMNS, s.bins)), "Mean": s.mean, "Std": s.std,
                     "per-image mean": s.per_image_mean, **dict(zip(AFLW21_COLUMNS, a21_values)),
                     **_pose_cells(getattr(r, "pose", None)), "n_images": len(r.names),
                     "source": "this workbench", "note": "; ".join(note_parts)})
    return pd.DataFrame(rows, columns=_COLUMNS)


#: Published rows a reader compares with first: 3DDFA (what MFIRRN builds on), the MFIRRN paper, and the strongest
#: later methods of the SynergyNet table.
HEADLINE_PUBLISHED = ("3DDFA (CVPR16)", "MFIRRN (paper)", "3DDFA_V2 (ECCV20)", "SynergyNet (3DV21)")
#: Columns that fit a page: the yaw bins and their Mean and Std, and the AFLW-21 mean.
HEADLINE_COLUMNS = ("method", "kind", *BIN_COLUMNS, "Mean", "Std", "AFLW-21 mean")


def headline_rows(df: pd.DataFrame, published: Sequence[str] = HEADLINE_PUBLISHED, measured: Optional[int] = None,
                  first: Optional[str] = None) -> pd.DataFrame:
    """The rows of a :func:`comparison_table` a reader compares first: the ``published`` methods in that
    order, then the measured rows, ``first`` (e.g. the default model) then the others by Mean, at most
    ``measured`` of them (None: all). The full table stays what :func:`export_table` writes.

    >>> t = comparison_table([], published=True)
    >>> headline_rows(t, published=("MFIRRN (paper)", "SynergyNet (3DV21)"))["method"].tolist()
    ['MFIRRN (paper)', 'SynergyNet (3DV21)']
    """
    pub = df[df["kind"] == "published"].set_index("method", drop=False)
    rows = [pub.loc[[m]] for m in published if m in pub.index]
    mes = df[df["kind"] == "measured"].sort_values("Mean", kind="stable", na_position="last")
    if first is not None:
        mes = pd.concat([mes[mes["method"] == first], mes[mes["method"] != first]])
    rows.append(mes if measured is None else mes.head(measured))
    return pd.concat(rows, ignore_index=True) if rows else df.iloc[:0]


def format_comparison(df: pd.DataFrame, columns: Optional[Sequence[str]] = None) -> str:
    """Plain-text comparison table (3 decimals; "–" where a paper publishes nothing or a bin is empty)."""
    cols = list(columns or ["method", "kind", *BIN_COLUMNS, "Mean", "Std", "per-image mean", "AFLW-21 mean"])
    return df[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="–")


# ------------------------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class BootstrapCI:
    """Percentile bootstrap intervals (in %): ``mean`` (lo, hi) of the mean of bin means, ``bins`` three
    (lo, hi), ``per_image_mean`` (lo, hi); ``n`` replicates at ``level`` (e.g. 0.95)."""

    mean: tuple[float, float]
    bins: tuple[tuple[float, float], ...]
    per_image_mean: tuple[float, float]
    n: int
    level: float

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "bins": [list(b) for b in self.bins],
                "per_image_mean": list(self.per_image_mean), "n": self.n, "level": self.level}


def bootstrap_ci(result: Union[BenchmarkResult, tuple[np.ndarray, np.ndarray]], n: int = 1000, seed: int = 0,
                 level: float = 0.95) -> BootstrapCI:
    """Bootstrap intervals of a result's yaw-bin summary (``result`` or ``(nme, yaw)``, nme as fractions).

    Each of the ``n`` replicates draws, within every yaw bin, as many images as the bin holds, with
    replacement (``numpy.random.default_rng(seed)``); the intervals are the ``(1-level)/2`` and
    ``(1+level)/2`` percentiles of the replicated bin means, mean of bin means and per-image mean.
    An empty bin gives NaN (as in :func:`mfirrn.evaluation.metrics.summarize_by_yaw`).
    """
    nme_values, yaw = (result.nme, result.yaw) if isinstance(result, BenchmarkResult) else result
    v = np.asarray(nme_values, np.float64).reshape(-1) * 100
    idx = yaw_bin_index(np.asarray(yaw).reshape(-1))
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    reps = np.full((n, 3), NAN)
    sums = np.zeros(n)
    for b in range(3):
        vals = v[idx == b]
        if vals.size:
            draws = vals[rng.integers(0, vals.size, size=(n, vals.size))]
            reps[:, b] = draws.mean(axis=1)
            sums += draws.sum(axis=1)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]

    def interval(x: np.ndarray) -> tuple[float, float]:
        lo, hi = np.percentile(x, q)
        return float(lo), float(hi)

    return BootstrapCI(mean=interval(reps.mean(axis=1)), bins=tuple(interval(reps[:, b]) for b in range(3)),
                       per_image_mean=interval(sums / max(v.size, 1)), n=n, level=level)


@dataclass(frozen=True)
class PairedDifference:
    """Mean of per-item differences ``b - a`` (same unit as the inputs) with its percentile bootstrap
    interval ``ci`` (lo, hi) at ``level``; ``lower``/``higher``: items where ``b`` is below/above ``a``."""

    mean: float
    ci: tuple[float, float]
    lower: int
    higher: int
    n_items: int
    level: float

    def resolved(self) -> bool:
        """Whether the interval excludes 0, i.e. the sample tells the two apart at ``level``."""
        return self.ci[0] > 0 or self.ci[1] < 0


def _paired_items(a: np.ndarray, b: np.ndarray, n: int, **aligned: np.ndarray) -> tuple[np.ndarray, ...]:
    """``b - a`` (N,) float64 and each ``aligned`` array (N,) flattened, after checking that every array holds the
    same non-zero number of items and that ``n`` (bootstrap replicates) is at least 1."""
    arrays = {"a": np.asarray(a, np.float64).reshape(-1), "b": np.asarray(b, np.float64).reshape(-1),
              **{k: np.asarray(v).reshape(-1) for k, v in aligned.items()}}
    sizes = [v.size for v in arrays.values()]
    if len(set(sizes)) > 1 or sizes[0] == 0:
        names = ", ".join(list(arrays)[:-1]) + " and " + list(arrays)[-1]
        raise ValueError(f"{names} must hold the same non-zero number of items, got "
                         f"{', '.join(map(str, sizes[:-1]))} and {sizes[-1]}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return (arrays["b"] - arrays["a"], *list(arrays.values())[2:])


def _difference(d: np.ndarray, reps: np.ndarray, level: float, mean: Optional[float] = None) -> PairedDifference:
    """The :class:`PairedDifference` of item differences ``d`` with replicated means ``reps``; ``mean`` defaults to
    the mean of ``d``."""
    lo, hi = np.percentile(reps, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return PairedDifference(mean=float(d.mean()) if mean is None else float(mean), ci=(float(lo), float(hi)),
                            lower=int((d < 0).sum()), higher=int((d > 0).sum()), n_items=int(d.size), level=level)


def paired_difference(a: np.ndarray, b: np.ndarray, n: int = 10000, seed: int = 0,
                      level: float = 0.95) -> PairedDifference:
    """Compare two methods scored on the same items (e.g. per-face NME of two models on one photo set).

    ``a``, ``b`` (N,): the scores of the same N items. Each of the ``n`` replicates resamples the items with
    replacement (``numpy.random.default_rng(seed)``), keeping the pairs together, so what the items share
    (a hard face is hard for both) cancels; the interval is the ``(1-level)/2``, ``(1+level)/2`` percentiles
    of the replicated mean differences.

    >>> d = paired_difference(np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.5, 3.5]))
    >>> d.mean, d.ci, d.lower, d.higher
    (0.5, (0.5, 0.5), 0, 3)
    """
    (d,) = _paired_items(a, b, n)
    reps = d[np.random.default_rng(seed).integers(0, d.size, size=(n, d.size))].mean(axis=1)
    return _difference(d, reps, level)


def paired_bin_mean_difference(a: np.ndarray, b: np.ndarray, yaw: np.ndarray, n: int = 10000, seed: int = 0,
                               level: float = 0.95) -> PairedDifference:
    """:func:`paired_difference` for the benchmark's headline number, the mean of the three yaw-bin means.

    ``a``, ``b`` (N,): per-image scores of two methods on the same images, ``yaw`` (N,) degrees. ``mean`` is
    ``binmean(b) - binmean(a)``; each replicate resamples the images of every yaw bin within that bin (pairs
    kept together, bin sizes fixed), so the interval is that of the number the tables report. ``lower`` /
    ``higher`` count images, as in :func:`paired_difference`.

    >>> d = paired_bin_mean_difference(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 5.0]),
    ...                                np.array([0.0, 10.0, 45.0, 80.0]))
    >>> round(d.mean, 4), [round(v, 4) for v in d.ci], d.higher   # one changed image, alone in its bin
    (0.3333, [0.3333, 0.3333], 1)
    """
    d, yaw = _paired_items(a, b, n, yaw=np.asarray(yaw, np.float64))
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(yaw_bin_index(yaw) == k) for k in range(3)]
    groups = [g for g in groups if g.size]
    reps = np.mean([d[g[rng.integers(0, g.size, size=(n, g.size))]].mean(axis=1) for g in groups], axis=0)
    return _difference(d, reps, level, mean=np.mean([d[g].mean() for g in groups]))


def paired_cluster_difference(a: np.ndarray, b: np.ndarray, clusters: np.ndarray, n: int = 10000, seed: int = 0,
                              level: float = 0.95) -> PairedDifference:
    """:func:`paired_difference` for items that come in clusters (the views of one face): each replicate resamples
    whole clusters with replacement, so items that share a cluster move together and the interval is not made
    narrower by counting one face's 36 views as 36 independent faces.

    ``a``, ``b``, ``clusters`` (N,): the scores of two methods on the same items and each item's cluster label.
    ``mean`` is the mean over items of ``b - a``; a replicate's mean is the item mean over its drawn clusters.

    >>> d = paired_cluster_difference(np.array([1.0, 1.0, 1.0]), np.array([2.0, 2.0, 1.0]), np.array([7, 7, 9]))
    >>> round(d.mean, 4), d.lower, d.higher, d.n_items
    (0.6667, 0, 2, 3)
    >>> d.ci   # a replicate draws cluster 7 twice (mean 1), cluster 9 twice (0) or one of each (2/3)
    (0.0, 1.0)
    """
    d, clusters = _paired_items(a, b, n, clusters=clusters)
    _, label = np.unique(clusters, return_inverse=True)
    sums, counts = np.bincount(label, weights=d), np.bincount(label).astype(np.float64)
    draw = np.random.default_rng(seed).integers(0, sums.size, size=(n, sums.size))
    reps = sums[draw].sum(axis=1) / counts[draw].sum(axis=1)
    return _difference(d, reps, level)


def ced_curve(nme_values: np.ndarray, thresholds: Optional[np.ndarray] = None, max_nme: float = 10.0,
              steps: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution: ``(thresholds, fraction)``, fraction of images with NME <= t.

    ``nme_values`` in % (N,). ``thresholds`` default to ``linspace(0, max(max_nme, max(nme)), steps)`` so
    the curve ends at 1. Non-decreasing by construction.

    >>> ced_curve(np.array([1.0, 2.0, 3.0, 4.0]), thresholds=np.array([0.0, 2.0, 4.0]))[1].tolist()
    [0.0, 0.5, 1.0]
    """
    v = np.sort(np.asarray(nme_values, np.float64).reshape(-1))
    if thresholds is None:
        top = max(max_nme, float(v.max()) if v.size else max_nme)
        thresholds = np.linspace(0.0, top, steps)
    thresholds = np.asarray(thresholds, np.float64)
    frac = np.searchsorted(v, thresholds, side="right") / max(v.size, 1)
    return thresholds, frac


def per_landmark_error(pred: Union[BenchmarkResult, np.ndarray], gt: Union[AFLW2000, np.ndarray]) -> np.ndarray:
    """Mean over images of each landmark's normalised error (K,), in %.

    ``pred``: a result (its ``landmarks``) or (N, K, >=2); ``gt``: the dataset (its ``gt``) or (N, K, >=2).
    Normalised per image by ``sqrt(w·h)`` of the GT box, as the NME, so ``mean`` of the output equals
    the per-image mean NME.
    """
    p = np.asarray(pred.landmarks if isinstance(pred, BenchmarkResult) else pred, np.float64)
    g = np.asarray(gt.gt if isinstance(gt, AFLW2000) else gt, np.float64)
    check_shape(p, (None, None, None), "pred")
    check_shape(g, (p.shape[0], p.shape[1], None), "gt")
    d = np.linalg.norm(p[..., :2] - g[..., :2], axis=-1) / bbox_normaliser(g)[:, None]
    return d.mean(axis=0) * 100


def worst_images(result: BenchmarkResult, k: int = 8) -> np.ndarray:
    """Indices of the ``k`` images with the largest NME, worst first."""
    return np.argsort(-np.asarray(result.nme))[:k]


# ------------------------------------------------------------------------------------------- models and AFLW-21
def checkpoint_trained_on(path: Union[str, Path], *, trust_checkpoint: bool = False) -> str:
    """What a workbench checkpoint was trained on: its ``trained_on`` entry, else its config's data root
    (and format), else ``"unknown"``. Read without running code from it unless ``trust_checkpoint``
    (:func:`mfirrn.io.safeload.load_checkpoint_file`)."""
    from mfirrn.io.safeload import load_checkpoint_file

    ckpt = load_checkpoint_file(path, trust=trust_checkpoint)
    if not isinstance(ckpt, dict):
        return "unknown"
    if ckpt.get("trained_on"):
        t = ckpt["trained_on"]
        return t if isinstance(t, str) else str(t)
    data = (ckpt.get("config") or {}).get("data") or {}
    root = data.get("root") or data.get("image_root")
    if root:
        return f"{data.get('format', '?')}:{root}"
    return "unknown"


def trained_on_aflw(trained_on: str) -> bool:
    """True when a ``trained_on`` description points at the AFLW training pool (e.g. ``aflw-21pt-train``).

    >>> trained_on_aflw("3ddfa:/data/aflw-21pt-train/AFLW_GT_crop"), trained_on_aflw("300W-LP")
    (True, False)
    """
    t = trained_on.lower().replace("_", "-")
    return "aflw-21pt" in t or ("aflw" in t and "aflw2000" not in t.replace("-", ""))


def aflw21_exclusion(trained_on: str) -> Optional[str]:
    """The reason a model must not be scored on AFLW-21, or None."""
    if trained_on_aflw(trained_on):
        return f"not scored: trained on the AFLW pool ({trained_on}), which AFLW-21 is drawn from"
    return None


def find_aflw21(datasets: Union[str, Path]) -> Optional[Path]:
    """The AFLW-21 *test* set (21080 images, 3DDFA ``AFLW_GT_crop`` layout with ``AFLW_GT_pts68.npy``) under
    ``datasets``, or None. The training pool ``aflw-21pt-train`` is never returned."""
    for name in ("aflw-21pt-test", "aflw-21", "AFLW"):
        p = Path(datasets) / name
        if (p / "AFLW_GT_crop.list").is_file() or (p / "test.data" / "AFLW_GT_crop.list").is_file():
            return p
    return None


def discover_checkpoints(runs_dir: Union[str, Path]) -> list[Path]:
    """Project-trained checkpoints ``runs/*/best.pt`` (sorted)."""
    runs = Path(runs_dir)
    return sorted(runs.glob("*/best.pt")) if runs.is_dir() else []


# ------------------------------------------------------------------------------------------- exports
def _fmt(v: Any, digits: int) -> str:
    if isinstance(v, (float, np.floating)):
        return "--" if not math.isfinite(float(v)) else f"{float(v):.{digits}f}"
    return str(v)


def to_csv(df: pd.DataFrame, path: Union[str, Path]) -> Path:
    """Write ``df`` as CSV (NaN as empty), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, df.to_csv(index=False))
    return path


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(s: str) -> str:
    return "".join(_LATEX_ESCAPES.get(c, c) for c in s)


def to_latex(df: pd.DataFrame, path: Optional[Union[str, Path]] = None, *, digits: int = 3,
             columns: Sequence[str] = ("method", "kind", *BIN_COLUMNS, "Mean", "Std", *AFLW21_COLUMNS, "pose MAE"),
             caption: str = "NME (\\%) on AFLW2000-3D (68 points) by absolute yaw, and on AFLW (21 points); "
                            "head-pose MAE (degrees) on AFLW2000-3D.") -> str:
    """A booktabs ``tabular`` of ``columns`` (NaN as ``--``); written to ``path`` when given. Needs no jinja2."""
    cols = [c for c in columns if c in df.columns]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in cols]
    lines = ["% generated by mfirrn.evaluation.report.to_latex; measured rows: see the CSV for split, date and notes",
             "\\begin{table}[t]", "\\centering", f"\\caption{{{caption}}}",
             "\\begin{tabular}{" + "".join("r" if n else "l" for n in numeric) + "}", "\\toprule",
             " & ".join(_tex(c) for c in cols) + " \\\\", "\\midrule"]
    prev_kind = None
    for _, row in df.iterrows():
        if prev_kind is not None and row.get("kind") != prev_kind:
            lines.append("\\midrule")
        prev_kind = row.get("kind")
        lines.append(" & ".join(_tex(_fmt(row[c], digits)) for c in cols) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    noted = [(row["method"], row["note"]) for _, row in df.iterrows() if "note" in df.columns and row["note"]]
    if noted:
        lines.append("\\par\\footnotesize " + "; ".join(f"{_tex(str(m))}: {_tex(str(n))}" for m, n in noted) + ".")
    lines += ["\\end{table}", ""]
    text = "\n".join(lines)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text)
    return text


def export_table(df: pd.DataFrame, out_dir: Union[str, Path], stem: str = "comparison") -> dict[str, Path]:
    """Write ``<stem>.csv`` and ``<stem>.tex`` into ``out_dir``."""
    out = Path(out_dir)
    tex = out / f"{stem}.tex"
    to_latex(df, tex)
    return {"csv": to_csv(df, out / f"{stem}.csv"), "tex": tex}


def default_results_dir(notebook_dir: Union[str, Path, None] = None) -> Path:
    """``results/`` beside the notebooks folder (the repository root), or ``$MFIRRN_RESULTS``."""
    env = os.environ.get("MFIRRN_RESULTS")
    if env:
        return Path(env)
    base = Path(notebook_dir) if notebook_dir is not None else Path.cwd()
    return base.resolve().parent / "results"


# ------------------------------------------------------------------------------------------- models to compare
@dataclass
class ModelEntry:
    """A model to benchmark: the module (with ``card``/``stats``), its table name, what it was trained on."""

    name: str
    model: Any
    trained_on: str
    source: str

    @property
    def aflw21_exclusion(self) -> Optional[str]:
        return aflw21_exclusion(self.trained_on)


# What the registered models with weights were trained on (a checkpoint file says it itself).
_REGISTERED_TRAINED_ON = {
    "3ddfa-v2-mb05": "300W-LP (3DDFA_V2 authors' weights)",
    "3ddfa-mb05-aflw21": "aflw-21pt-train (the AFLW 21-point pool, via this project's fitted labels and face "
                         "profiling), fine-tuned from 3ddfa-v2-mb05 (300W-LP)",
    "3ddfa-mb05-aflw21-distill": "aflw-21pt-train (the AFLW 21-point pool, via this project's contour-anchored "
                                 "fitted labels and face profiling), fine-tuned from and distilled from "
                                 "3ddfa-v2-mb05 (300W-LP)",
    "mfirrn-mb05-aflw21-distill": "aflw-21pt-train (the AFLW 21-point pool, via this project's fitted labels "
                                  "from the points defined like their 68-point landmarks and face profiling), "
                                  "fine-tuned from 3ddfa-v2-mb05 (300W-LP) in each branch and distilled from it",
    "mfirrn-mb05-flat-aflwlp-distill": "aflw-21pt-train (the AFLW 21-point pool, via this project's fitted labels "
                                       "from the points defined like their 68-point landmarks, 4 000 faces profiled "
                                       "into 36 views each), fine-tuned from mfirrn-mb05-aflw21-distill and "
                                       "distilled from 3ddfa-v2-mb05 (300W-LP)",
    "mfirrn-mb05-flat-aflwlp12-distill": "aflw-21pt-train (the AFLW 21-point pool, via this project's fitted "
                                         "labels from the points defined like their 68-point landmarks, all 14 055 "
                                         "accepted faces profiled into 12 views each), fine-tuned from "
                                         "mfirrn-mb05-flat-aflwlp-distill in two passes whose weights are averaged, "
                                         "distilled from 3ddfa-v2-mb05 (300W-LP)",
    "mfirrn-mb05-aflw21": "aflw-21pt-train (the AFLW 21-point pool, via this project's fitted labels and face "
                          "profiling), fine-tuned from 3ddfa-v2-mb05 (300W-LP) in each branch",
}


def registered_trained_on(name: str) -> str:
    """What registered model ``name``'s shipped weights were trained on (``"unknown"`` if not recorded)."""
    return _REGISTERED_TRAINED_ON.get(name, "unknown")


def load_model_entry(spec: Union[str, Path], device: str = "cpu", pretrained: bool = True, *,
                     trust_checkpoint: bool = False) -> ModelEntry:
    """A registered model name, or a checkpoint path (a file that exists), as a :class:`ModelEntry`.

    ``pretrained=False`` builds a registered model untrained (labelled so: ``<name> (untrained)``);
    ``trust_checkpoint`` as in :func:`mfirrn.models.load_checkpoint`.
    """
    from mfirrn import models

    path = Path(spec)
    if not pretrained and not path.is_file():
        model = models.create(str(spec), pretrained=False, device=device)
        return ModelEntry(f"{spec} (untrained)", model, "untrained (random init)", "registry")
    model = models.load(spec, device=device, trust_checkpoint=trust_checkpoint)
    if path.is_file():
        return ModelEntry(model.card.name, model, checkpoint_trained_on(path, trust_checkpoint=trust_checkpoint),
                          str(path))
    return ModelEntry(str(spec), model, registered_trained_on(str(spec)), "registry")


def jigsaw_effect(model: Any, data: AFLW2000, seeds: Sequence[int] = (0, 1, 2), *, bfm: Any = None,
                  batch_size: int = 64, name: Optional[str] = None) -> pd.DataFrame:
    """NME of an MFIRRN model with deterministic vs random test-time jigsaw shuffles.

    Rows: ``identity`` (blocks in place, the workbench default), then ``random`` with each seed (the
    released evaluation: one permutation per batch from a seeded generator). Columns: method, mode,
    seed, the three bins, Mean, per-image mean. The model's ``jigsaw_eval``/``generator`` are restored.
    """
    import torch

    from mfirrn.evaluation.benchmark import evaluate

    if not hasattr(model, "jigsaw_eval"):
        raise ValueError(f"{type(model).__name__} has no test-time jigsaw (not an MFIRRN model)")
    saved = (model.jigsaw_eval, model.generator)
    rows = []
    try:
        for mode, seed in [("identity", None)] + [("random", s) for s in seeds]:
            model.jigsaw_eval = mode
            model.generator = None if seed is None else torch.Generator().manual_seed(int(seed))
            r = evaluate(model, data, bfm=bfm, batch_size=batch_size, name=name)
            rows.append({"method": r.model, "mode": mode, "seed": seed, **dict(zip(BIN_COLUMNS, r.summary.bins)),
                         "Mean": r.summary.mean, "per-image mean": r.summary.per_image_mean})
    finally:
        model.jigsaw_eval, model.generator = saved
    df = pd.DataFrame(rows)
    df["seed"] = df["seed"].astype("Int64")
    return df


# ------------------------------------------------------------------------------------------- figures
def plot_yaw_bars(df: pd.DataFrame, ax: Any = None, ci: Optional[Mapping[str, BootstrapCI]] = None,
                  methods: Optional[Sequence[str]] = None):
    """Grouped bars of NME (%) per yaw bin and Mean for the rows of a :func:`comparison_table` with numbers.

    ``ci`` maps measured method names to their :class:`BootstrapCI` (drawn as error bars). Every row with
    numbers is a series: pass :func:`headline_rows` (or ``methods``) to keep the chart readable.
    """
    import matplotlib.pyplot as plt

    d = df[df[list(BIN_COLUMNS)].notna().all(axis=1)]
    if methods is not None:
        d = d[d["method"].isin(methods)]
    ax = ax or plt.subplots(figsize=(10, 4))[1]
    groups = [*BIN_COLUMNS, "Mean"]
    width = 0.8 / max(len(d), 1)
    for i, (_, row) in enumerate(d.iterrows()):
        x = np.arange(len(groups)) + (i - (len(d) - 1) / 2) * width
        y = row[groups].to_numpy(np.float64)
        err = None
        c = (ci or {}).get(row["method"]) if row["kind"] == "measured" else None
        if c is not None:
            lo = np.array([b[0] for b in c.bins] + [c.mean[0]])
            hi = np.array([b[1] for b in c.bins] + [c.mean[1]])
            err = np.vstack([y - lo, hi - y])
        label = f"{row['method']} ({'measured' if row['kind'] == 'measured' else 'published'})"
        ax.bar(x, y, width, yerr=err, capsize=2, label=label,
               hatch=None if row["kind"] == "measured" else "//", alpha=0.9 if row["kind"] == "measured" else 0.6)
    ax.set_xticks(np.arange(len(groups)), [f"|yaw| {g}" if g != "Mean" else "mean of bins" for g in groups])
    ax.set_ylabel("NME (%)")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.05)
    # below the axes, in columns: never over the bars, however many series
    ax.legend(fontsize=7, ncol=min(3, max(len(d), 1)), loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    return ax


def plot_ced(curves: Mapping[str, np.ndarray], ax: Any = None, max_nme: float = 10.0):
    """CED curves (fraction of images with NME <= t) of per-image NMEs in % (name -> (N,))."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5, 4))[1]
    for name, v in curves.items():
        t, f = ced_curve(v, max_nme=max_nme)
        ax.plot(t, f, label=f"{name} (AUC@{max_nme:g}: {np.trapezoid(f[t <= max_nme], t[t <= max_nme]) / max_nme:.3f})")
    ax.set_xlim(0, max_nme)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("NME (%)")
    ax.set_ylabel("fraction of images")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def plot_per_landmark(errors: Mapping[str, np.ndarray], ax: Any = None):
    """Per-landmark mean error (%) of each model (name -> (68,)), with the 68-point groups marked."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(10, 3.5))[1]
    for name, e in errors.items():
        ax.plot(np.arange(1, len(e) + 1), e, marker="o", ms=3, label=name)
    for start, label in ((1, "jaw"), (18, "brows"), (28, "nose"), (37, "eyes"), (49, "mouth")):
        ax.axvline(start - 0.5, color="grey", lw=0.5)
        ax.text(start, ax.get_ylim()[1] * 0.95, label, fontsize=7, va="top")
    ax.set_xlabel("landmark (1-based, 68-point scheme)")
    ax.set_ylabel("mean normalised error (%)")
    ax.legend(fontsize=7)
    return ax


def worst_gallery(result: BenchmarkResult, data: AFLW2000, k: int = 8, cols: int = 4, size: float = 2.6):
    """Matplotlib figure of the ``k`` worst images: the original photo (``test.data/AFLW2000-3D/``, e.g.
    450x450) with GT (green) and predicted (red) landmarks — predictions are already mapped to the photo
    with the crop roi. Falls back to the 120x120 crop (landmarks mapped back with the roi) if the
    original is missing."""
    import cv2
    import matplotlib.pyplot as plt

    idx = worst_images(result, k)
    rows = max(1, math.ceil(len(idx) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), idx):
        photo = cv2.imread(str(data.root / "AFLW2000-3D" / data.names[i]), cv2.IMREAD_COLOR)
        pred, gt = result.landmarks[i][:, :2].copy(), data.gt[i].copy()
        if photo is None:  # crop frame: invert x = x'·(ex-sx)/120 + sx
            photo = data.crops[i]
            sx, sy, ex, ey = data.roi[i]
            k_xy = np.array([(ex - sx) / 120.0, (ey - sy) / 120.0])
            pred, gt = (pred - [sx, sy]) / k_xy, (gt - [sx, sy]) / k_xy
        ax.imshow(photo[..., ::-1])
        ax.scatter(gt[:, 0], gt[:, 1], s=4, c="lime", label="GT")
        ax.scatter(pred[:, 0], pred[:, 1], s=4, c="red", label="prediction")
        ax.set_title(f"{data.names[i]}\nNME {result.nme[i] * 100:.2f}%, yaw {round(float(data.yaw[i]))}°", fontsize=7)
    axes.ravel()[0].legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    return fig


def save_figure(fig: Any, out_dir: Union[str, Path], stem: str, dpi: int = 150) -> dict[str, Path]:
    """Save a matplotlib figure as ``<stem>.png`` and ``<stem>.pdf`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"png": out / f"{stem}.png", "pdf": out / f"{stem}.pdf"}
    fig.savefig(paths["png"], dpi=dpi, bbox_inches="tight")
    fig.savefig(paths["pdf"], bbox_inches="tight")
    return paths
