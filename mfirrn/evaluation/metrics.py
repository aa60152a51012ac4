"""Landmark error metrics of the AFLW2000-3D / AFLW protocols (as 3DDFA's benchmark code), vectorised in numpy."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mfirrn.io.checks import check_shape

__all__ = ["nme", "bbox_normaliser", "YawBinSummary", "summarize_by_yaw", "YAW_BINS", "AFLW21_FROM_68", "map_68_to_21"]

YAW_BINS: tuple[tuple[float, float], ...] = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0))

# 1-based groups of the 68 points averaged into each of AFLW's 21 points (3DDFA's benchmark).
AFLW21_FROM_68: tuple[tuple[int, ...], ...] = (
    (18,), (20,), (22,), (23,), (25,), (27,), (37,), tuple(range(37, 43)), (40,), (43,),
    tuple(range(43, 49)), (46,), (3,), (32,), (31,), (36,), (15,), (49,), tuple(range(61, 69)), (55,), (9,),
)


def bbox_normaliser(gt: np.ndarray) -> np.ndarray:
    """``sqrt(w·h)`` of the bounding box of GT points (B, K, >=2) -> (B,), in pixels. Ignores NaN points."""
    check_shape(gt, (None, None, None), "gt")
    w = np.nanmax(gt[..., 0], axis=1) - np.nanmin(gt[..., 0], axis=1)
    h = np.nanmax(gt[..., 1], axis=1) - np.nanmin(gt[..., 1], axis=1)
    return np.sqrt(w * h)


def nme(pred: np.ndarray, gt: np.ndarray, normaliser: np.ndarray | None = None) -> np.ndarray:
    """Normalised mean error per image (B,), as a fraction (multiply by 100 for %).

    ``pred``, ``gt``: (B, K, >=2) image pixels; only x, y are used. GT points that are NaN (invisible)
    are skipped. ``normaliser`` defaults to :func:`bbox_normaliser` of ``gt`` (AFLW2000-3D protocol).

    >>> nme(np.array([[[1.0, 0], [10, 10]]]), np.array([[[0.0, 0], [10, 10]]])).tolist()
    [0.05]
    """
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    check_shape(pred, (None, None, None), "pred")
    if pred.shape[:2] != gt.shape[:2]:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} disagree in batch or point count")
    d = np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1)
    err = np.nanmean(d, axis=1)
    norm = bbox_normaliser(gt) if normaliser is None else np.asarray(normaliser, np.float64)
    return err / norm


@dataclass
class YawBinSummary:
    """NME (in %) summarised over |yaw| bins [0,30], (30,60], (60,90] (larger yaws fall in the last bin).

    ``mean`` is the mean of the three bin means and ``std`` their population std (the papers' "Mean"
    and "Std"); ``per_image_mean`` is the plain mean over images, reported separately.
    """

    bins: list[float]
    mean: float
    std: float
    per_image_mean: float
    counts: list[int]
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"bins": self.bins, "mean": self.mean, "std": self.std,
                "per_image_mean": self.per_image_mean, "counts": self.counts, **self.extra}


def yaw_bin_index(yaw: np.ndarray) -> np.ndarray:
    """Bin index 0, 1, 2 of each yaw (degrees, any sign): |yaw| <= 30, <= 60, else."""
    a = np.abs(np.asarray(yaw, np.float64))
    return np.where(a <= 30, 0, np.where(a <= 60, 1, 2))


def summarize_by_yaw(nme_values: np.ndarray, yaw: np.ndarray) -> YawBinSummary:
    """Summarise per-image NME (fractions, (N,)) by yaw (degrees, (N,)); results in %."""
    v = np.asarray(nme_values, np.float64) * 100
    idx = yaw_bin_index(yaw)
    counts = [int((idx == b).sum()) for b in range(3)]
    bins = [float(v[idx == b].mean()) if counts[b] else float("nan") for b in range(3)]
    arr = np.array(bins)
    return YawBinSummary(bins=bins, mean=float(arr.mean()), std=float(arr.std()),
                         per_image_mean=float(v.mean()), counts=counts)


def map_68_to_21(pts68: np.ndarray) -> np.ndarray:
    """68 landmarks (*, 68, D) -> AFLW's 21 points (*, 21, D) by averaging the groups of :data:`AFLW21_FROM_68`."""
    pts68 = np.asarray(pts68)
    check_shape(pts68, ("*", 68, None), "pts68")
    return np.stack([pts68[..., [i - 1 for i in g], :].mean(axis=-2) for g in AFLW21_FROM_68], axis=-2)
