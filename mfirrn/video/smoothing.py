"""Temporal smoothing of per-frame results: the One-Euro filter (Casiez, Roussel & Vogel, CHI 2012).

A first-order low-pass filter whose cut-off frequency rises with the signal's speed: slow motion
(where jitter shows) is smoothed strongly, fast motion follows with little lag. For a sample ``x_t``
at time ``t`` (seconds), with ``Te`` the time since the previous sample::

    alpha(fc) = 1 / (1 + 1 / (2 pi fc Te))
    dx_t  = alpha(d_cutoff) (x_t - x_hat_{t-1}) / Te + (1 - alpha(d_cutoff)) dx_{t-1}
    fc    = min_cutoff + beta |dx_t|
    x_hat_t = alpha(fc) x_t + (1 - alpha(fc)) x_hat_{t-1}

``min_cutoff`` (Hz) sets the smoothing at rest (lower = smoother, more lag); ``beta`` (1 / signal
unit) how fast the cut-off opens with speed (higher = less lag in fast motion); ``d_cutoff`` (Hz)
smooths the speed estimate. Every element of the array is filtered on its own (its own speed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["OneEuroSettings", "OneEuroFilter", "landmark_jitter"]


@dataclass(frozen=True)
class OneEuroSettings:
    """One-Euro parameters; units are those of the filtered signal (pixels for
    :class:`mfirrn.video.tracking.FaceSmoother`, which scales every parameter to pixels of landmark motion)."""

    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if not (self.min_cutoff > 0 and self.d_cutoff > 0 and self.beta >= 0):
            raise ValueError(f"One-Euro settings need min_cutoff > 0, d_cutoff > 0, beta >= 0; got {self}")


def _alpha(cutoff: np.ndarray | float, te: float) -> np.ndarray | float:
    return 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff * te))


class OneEuroFilter:
    """One-Euro filter of an array signal of fixed shape.

    >>> f = OneEuroFilter(OneEuroSettings(min_cutoff=1.0, beta=0.0))
    >>> [round(float(f(t / 30, np.array(v))), 3) for t, v in enumerate([0.0, 1.0, 1.0])]
    [0.0, 0.173, 0.316]
    """

    def __init__(self, settings: OneEuroSettings = OneEuroSettings()) -> None:
        self.settings = settings
        self._t: Optional[float] = None
        self._x: Optional[np.ndarray] = None
        self._dx: Optional[np.ndarray] = None

    def reset(self) -> None:
        self._t = self._x = self._dx = None

    def restart_from(self, x: np.ndarray) -> None:
        """Go on from ``x`` (the last sample's shape) as if it had been the last output (its speed kept)."""
        if self._x is None:
            raise ValueError("OneEuroFilter.restart_from: no sample filtered yet")
        self._x = np.asarray(x, np.float64).reshape(self._x.shape).copy()

    def __call__(self, t: float, x: np.ndarray) -> np.ndarray:
        """Filter sample ``x`` taken at time ``t`` (seconds, increasing); returns the smoothed sample."""
        x = np.asarray(x, np.float64)
        if self._x is None or self._t is None:
            self._t, self._x, self._dx = t, x.copy(), np.zeros_like(x)
            return x.copy()
        if x.shape != self._x.shape:
            raise ValueError(f"OneEuroFilter: sample shape {x.shape} differs from the first sample's {self._x.shape}")
        te = t - self._t
        if not te > 0:
            raise ValueError(f"OneEuroFilter: times must increase, got {t} after {self._t}")
        s = self.settings
        a_d = _alpha(s.d_cutoff, te)
        dx = a_d * (x - self._x) / te + (1 - a_d) * self._dx
        a = _alpha(s.min_cutoff + s.beta * np.abs(dx), te)
        self._x = a * x + (1 - a) * self._x
        self._dx, self._t = dx, t
        return self._x.copy()


def landmark_jitter(pred: np.ndarray, true: np.ndarray) -> float:
    """Frame-to-frame jitter of landmark tracks, in % of the face size: the mean over frames t >= 1 and
    points k of ``||(pred[t,k] - pred[t-1,k]) - (true[t,k] - true[t-1,k])||`` divided by ``sqrt(w·h)``
    of ``true[t]``'s box — the part of each frame's motion that the true motion does not explain.

    ``pred``, ``true``: (T, K, >=2) image pixels (only x, y used); frames where ``pred`` is NaN (no face)
    are left out, with the frame pairs they belong to.

    >>> true = np.array([[[0.0, 0.0], [10.0, 10.0]]]) + np.arange(3.0)[:, None, None]  # moving 1 px / frame
    >>> landmark_jitter(true + 5.0, true)  # a constant offset is not jitter
    0.0
    >>> round(landmark_jitter(true + [[[0, 0]], [[1, 0]], [[0, 0]]], true), 3)  # one frame off by 1 px
    10.0
    """
    p, g = np.asarray(pred, np.float64)[..., :2], np.asarray(true, np.float64)[..., :2]
    if p.shape != g.shape or p.ndim != 3 or len(p) < 2:
        raise ValueError(f"pred and true: expected equal shapes (T >= 2, K, 2), got {p.shape} and {g.shape}")
    d = np.linalg.norm(np.diff(p, axis=0) - np.diff(g, axis=0), axis=-1)
    size = np.sqrt(np.ptp(g[1:, :, 0], axis=1) * np.ptp(g[1:, :, 1], axis=1))
    ok = np.isfinite(d).all(axis=1)
    if not ok.any():
        return float("nan")
    return float((d[ok] / size[ok, None]).mean() * 100)
