"""Training augmentation of (crop, params) pairs with the matching 62-d param update.

Frames (see :mod:`mfirrn.geometry.frames`): images are 120x120 BGR uint8 crops whose pixel ``(i, j)`` (column,
row) sits at crop coordinates ``(i, j)``; params are de-normalised and pose vertices in the *posed* frame,
which maps to the crop frame by the checkpoint's convention: ``c = G·p + d`` with ``G = diag(1, -1)`` and
``d = (0, 121)`` (v1) or ``(-1, 120)`` (v2).

- :func:`color_jitter` — brightness, contrast, per-channel gain; params unchanged.
- :func:`affine_augment` — similarity (scale ``k``, in-plane rotation, translation) about the crop centre,
  applied to the image with ``cv2.warpAffine`` and to ``P`` by ``P[:2] <- G M G P[:2]`` (+ translation),
  ``P[2] <- k·P[2]``; exact for the rebuilt vertices' x, y.
- :class:`ParamMirror` — horizontal flip of image and params: the pose part is exact; shape and
  expression coefficients are the least-squares fit of the mirrored mesh (BFM vertex mirror map from
  the mean face). The 68 landmarks then land on the mirrored landmarks with the standard left/right
  permutation :data:`FLIP_68` (residual measured on 50 random faces, params = v1 mean + 0.5·std·N(0, 1): mean
  0.16 px, 95th percentile 0.37 px, max 0.79 px in the 120x120 crop — from the asymmetry of the BFM and
  of its landmark vertices; ``tests/test_datasets.py`` asserts mean < 0.3 px and max < 1.2 px).
"""

from __future__ import annotations

import math
from typing import Optional

import cv2
import numpy as np

from mfirrn.data.augment_config import AugmentConfig
from mfirrn.geometry.frames import CROP_SIZE, Convention
from mfirrn.geometry.params import PARAM_SPEC
from mfirrn.io.checks import check_shape

__all__ = [
    "FLIP_68",
    "ParamMirror",
    "color_jitter",
    "affine_augment",
    "affine_params",
    "Augmenter",
    "default_mirror",
]

# Standard 68-point left/right permutation (0-based): landmark j of a flipped face is landmark FLIP_68[j]
# of the original, mirrored.
FLIP_68: tuple[int, ...] = (
    tuple(range(16, -1, -1))                      # jaw 0..16
    + tuple(range(26, 16, -1))                    # brows 17..26
    + (27, 28, 29, 30)                            # nose bridge
    + (35, 34, 33, 32, 31)                        # nose bottom
    + (45, 44, 43, 42, 47, 46)                    # right eye <- left eye
    + (39, 38, 37, 36, 41, 40)                    # left eye <- right eye
    + (54, 53, 52, 51, 50, 49, 48)                # outer lip top
    + (59, 58, 57, 56, 55)                        # outer lip bottom
    + (64, 63, 62, 61, 60)                        # inner lip top
    + (67, 66, 65)                                # inner lip bottom
)
assert sorted(FLIP_68) == list(range(68))


def _posed_offset(convention: Convention, size: int = CROP_SIZE) -> np.ndarray:
    """``d`` of ``crop_xy = G·posed_xy + d`` for a convention."""
    if convention == "v1":
        return np.array([0.0, size + 1.0])
    if convention == "v2":
        return np.array([-1.0, float(size)])
    raise ValueError(f"unknown pixel convention {convention!r}")


def color_jitter(img: np.ndarray, rng: np.random.Generator, brightness: float = 0.2, contrast: float = 0.2,
                 channel_gain: float = 0.1) -> np.ndarray:
    """Random brightness (±``brightness``·128), contrast (×1±``contrast``) and per-channel gain on uint8 (H, W, 3)."""
    x = img.astype(np.float32)
    mean = x.mean()
    x = (x - mean) * (1 + rng.uniform(-contrast, contrast)) + mean
    x = x * (1 + rng.uniform(-channel_gain, channel_gain, size=3)).astype(np.float32)
    x = x + rng.uniform(-brightness, brightness) * 128
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def _similarity(k: float, theta_deg: float, tx: float, ty: float, size: int = CROP_SIZE) -> np.ndarray:
    """2x3 crop-frame similarity about the crop centre: ``c' = k·Rot(θ)(c - ctr) + ctr + (tx, ty)``."""
    th = math.radians(theta_deg)
    M = k * np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    ctr = np.full(2, (size - 1) / 2)
    b = ctr - M @ ctr + np.array([tx, ty])
    return np.concatenate([M, b[:, None]], axis=1)


def affine_params(params: np.ndarray, A: np.ndarray, convention: Convention = "v1", size: int = CROP_SIZE) -> np.ndarray:
    """Update de-normalised params (62,) for a crop-frame similarity ``A`` (2x3) of uniform scale ``k``.

    With ``G = diag(1, -1)``: ``P[:2] <- G M G P[:2]`` and ``P[:2, 3] += G (M d + b - d)``; ``P[2] <- k·P[2]``.
    """
    p = np.array(params, dtype=np.float64)
    M, b = A[:, :2], A[:, 2]
    k = math.sqrt(abs(np.linalg.det(M)))
    G = np.diag([1.0, -1.0])
    d = _posed_offset(convention, size)
    P = p[:PARAM_SPEC.pose].reshape(3, 4)
    Q = P.copy()
    Q[:2] = G @ M @ G @ P[:2]
    Q[:2, 3] += G @ (M @ d + b - d)
    Q[2] = k * P[2]
    p[:PARAM_SPEC.pose] = Q.reshape(-1)
    return p.astype(np.asarray(params).dtype)


def affine_augment(img: np.ndarray, params: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig,
                   convention: Convention = "v1") -> tuple[np.ndarray, np.ndarray]:
    """Random similarity of image (H, W, 3) uint8 and params (62,); zero padding outside the crop."""
    k = rng.uniform(*cfg.scale)
    th = rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg)
    tx, ty = rng.uniform(-cfg.max_translate_px, cfg.max_translate_px, size=2)
    A = _similarity(k, th, tx, ty, img.shape[1])
    out = cv2.warpAffine(img, A, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out, affine_params(params, A, convention, img.shape[1])


class ParamMirror:
    """Horizontal flip of de-normalised params, consistent with ``cv2.flip(img, 1)`` of the crop.

    Build once from the full-mesh BFM (``ParamMirror.from_bfm(MorphableModel("full"))``); the object holds
    only small arrays (picklable into DataLoader workers): the mirror plane ``x = m0`` of the mean face
    (BFM units), and the affine map of shape+expression coefficients ``a' = A a + c`` (50x50, 50).
    """

    def __init__(self, m0: float, A: np.ndarray, c: np.ndarray, fit_residual: float = float("nan")) -> None:
        self.m0 = float(m0)
        self.A = np.asarray(A, np.float64)
        self.c = np.asarray(c, np.float64)
        self.fit_residual = fit_residual
        check_shape(self.A, (PARAM_SPEC.shape + PARAM_SPEC.exp,) * 2, "mirror A")

    @classmethod
    def from_bfm(cls, bfm) -> "ParamMirror":
        """Derive the mirror map from a :class:`~mfirrn.geometry.bfm.MorphableModel` (dense buffers)."""
        from scipy.spatial import cKDTree

        u = bfm.u.double().cpu().numpy()
        W = np.concatenate([bfm.w_shp.double().cpu().numpy(), bfm.w_exp.double().cpu().numpy()], axis=1)
        V = u.reshape(-1, 3)
        tree = cKDTree(V)
        m0 = float(np.median(V[:, 0]))
        for _ in range(3):  # alternate: nearest mirrored vertex <-> plane through the midpoints
            Vm = V * np.array([-1.0, 1.0, 1.0]) + np.array([2 * m0, 0.0, 0.0])
            _, perm = tree.query(Vm)
            m0 = float(np.median((V[:, 0] + V[perm, 0]) / 2))
        rows = (3 * perm[:, None] + np.arange(3)).reshape(-1)
        sign = np.tile(np.array([-1.0, 1.0, 1.0]), len(V))
        Mu = sign * u[rows] + np.tile(np.array([2 * m0, 0.0, 0.0]), len(V))
        MW = sign[:, None] * W[rows]
        # least squares by the normal equations (W is tall, 3N x 50, and well conditioned: PCA columns)
        rhs = np.concatenate([(Mu - u)[:, None], MW], axis=1)
        sol = np.linalg.solve(W.T @ W, W.T @ rhs)
        c, A = sol[:, 0], sol[:, 1:]
        resid = float(np.sqrt(np.mean((W @ c + u - Mu) ** 2)))
        return cls(m0, A, c, resid)

    def flip_params(self, params: np.ndarray, convention: Convention = "v1", size: int = CROP_SIZE) -> np.ndarray:
        """Params (*, 62) of the mirrored face in the horizontally flipped crop.

        Crop x -> ``size - 1 - x``; posed x -> ``c0 - x`` with ``c0 = size - 1 - 2·d_x``. Pose exactly:
        ``P' = [F sR D | F t + f - F sR D e]`` with ``F = D = diag(-1, 1, 1)``, ``f = (c0, 0, 0)``,
        ``e = (2·m0, 0, 0)``.
        """
        p = np.array(params, dtype=np.float64)
        single = p.ndim == 1
        p = np.atleast_2d(p)
        F = np.diag([-1.0, 1.0, 1.0])
        c0 = size - 1 - 2 * _posed_offset(convention, size)[0]
        f = np.array([c0, 0.0, 0.0])
        e = np.array([2 * self.m0, 0.0, 0.0])
        P = p[:, :PARAM_SPEC.pose].reshape(-1, 3, 4)
        A3 = F @ P[:, :, :3] @ F
        t = (F @ P[:, :, 3:])[..., 0] + f - (A3 @ e)
        Q = np.concatenate([A3, t[..., None]], axis=2)
        out = p.copy()
        out[:, :PARAM_SPEC.pose] = Q.reshape(-1, PARAM_SPEC.pose)
        out[:, PARAM_SPEC.pose:] = p[:, PARAM_SPEC.pose:] @ self.A.T + self.c
        out = out.astype(np.asarray(params).dtype)
        return out[0] if single else out

    def flip(self, img: np.ndarray, params: np.ndarray, convention: Convention = "v1") -> tuple[np.ndarray, np.ndarray]:
        """Flip a crop (H, W, 3) and its params (62,) together."""
        return np.ascontiguousarray(img[:, ::-1]), self.flip_params(params, convention, img.shape[1])


class Augmenter:
    """Callable ``(img, params, rng) -> (img, params)``: flip, similarity, colour jitter (in that order)."""

    def __init__(self, cfg: AugmentConfig, mirror: Optional[ParamMirror] = None, convention: Convention = "v1") -> None:
        if cfg.flip_prob > 0 and mirror is None:
            raise ValueError("flip augmentation needs a ParamMirror (ParamMirror.from_bfm(MorphableModel('full')))")
        self.cfg, self.mirror, self.convention = cfg, mirror, convention

    def __call__(self, img: np.ndarray, params: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.cfg
        if cfg.flip_prob > 0 and rng.uniform() < cfg.flip_prob:
            img, params = self.mirror.flip(img, params, self.convention)  # type: ignore[union-attr]
        if cfg.affine_prob > 0 and rng.uniform() < cfg.affine_prob:
            img, params = affine_augment(img, params, rng, cfg, self.convention)
        if cfg.jitter_prob > 0 and rng.uniform() < cfg.jitter_prob:
            img = color_jitter(img, rng, cfg.brightness, cfg.contrast, cfg.channel_gain)
        return img, params


_MIRROR_CACHE: dict[str, ParamMirror] = {}


def default_mirror() -> ParamMirror:
    """The :class:`ParamMirror` of the full BFM (built once per process, about a second)."""
    if "full" not in _MIRROR_CACHE:
        from mfirrn.geometry.bfm import MorphableModel

        _MIRROR_CACHE["full"] = ParamMirror.from_bfm(MorphableModel("full"))
    return _MIRROR_CACHE["full"]
