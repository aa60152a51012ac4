"""Coordinate frames: model output -> crop pixels (two 3DDFA conventions) -> original image pixels.

Frames used throughout the package:

- *posed frame*: ``P[:, :3] @ S + P[:, 3]`` — units of 120x120 crop pixels, **y up** (what the 3DMM gives);
- *crop frame*: pixels of the 120x120 network crop, x right, **y down**, z larger = closer;
- *image frame*: pixels of the original image, y down; z scaled by the crop->image scale.

The posed -> crop flip differs by one pixel between the two conventions (3DDFA: ``121 - y``; 3DDFA_V2:
``120 - y`` with x and z shifted by one; see the docs' conventions page); it belongs to
the checkpoint:

- ``"v1"`` (3DDFA): ``y = 121 - y``; x, z unchanged;
- ``"v2"`` (3DDFA_V2): ``x = x - 1``, ``y = 120 - y``, ``z = z - 1``.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
import torch

from mfirrn.geometry.turns import camera_back, turn_back
from mfirrn.io.checks import check_shape

__all__ = ["Convention", "CONVENTIONS", "CROP_SIZE", "posed_to_crop", "crop_to_image", "image_to_crop",
           "params_to_image_camera", "params_from_image_camera", "image_camera_turned"]

Convention = Literal["v1", "v2"]
CONVENTIONS: tuple[str, ...] = ("v1", "v2")
CROP_SIZE = 120


def posed_to_crop(v: torch.Tensor, convention: Convention, size: int = CROP_SIZE) -> torch.Tensor:
    """Flip posed-frame points (*, N, 3) to crop-frame pixels (*, N, 3) (y down) with ``convention``.

    >>> posed_to_crop(torch.tensor([[10.0, 20.0, 5.0]]), "v1").tolist()
    [[10.0, 101.0, 5.0]]
    >>> posed_to_crop(torch.tensor([[10.0, 20.0, 5.0]]), "v2").tolist()
    [[9.0, 100.0, 4.0]]
    """
    check_shape(v, ("*", 3), "vertices")
    x, y, z = v.unbind(-1)
    if convention == "v1":
        return torch.stack([x, (size + 1) - y, z], dim=-1)
    if convention == "v2":
        return torch.stack([x - 1, size - y, z - 1], dim=-1)
    raise ValueError(f"unknown pixel convention {convention!r}; use one of {CONVENTIONS}")


def _roi_scales(roi: torch.Tensor, size: int) -> tuple[torch.Tensor, ...]:
    check_shape(roi, ("*", 4), "roi")
    sx, sy, ex, ey = roi.unbind(-1)
    return sx, sy, (ex - sx) / size, (ey - sy) / size


def crop_to_image(v: torch.Tensor, roi: torch.Tensor, size: int = CROP_SIZE) -> torch.Tensor:
    """Map crop-frame points (*, N, 3) to the original image with crop boxes ``roi`` (*, 4) = (sx, sy, ex, ey).

    ``x = x·(ex-sx)/size + sx``, ``y = y·(ey-sy)/size + sy``, ``z = z·mean(scale_x, scale_y)``.

    >>> crop_to_image(torch.tensor([[60.0, 60.0, 10.0]]), torch.tensor([100.0, 50.0, 340.0, 290.0])).tolist()
    [[220.0, 170.0, 20.0]]
    """
    check_shape(v, ("*", 3), "vertices")
    sx, sy, kx, ky = (t.unsqueeze(-1) for t in _roi_scales(roi.to(v.dtype), size))
    x, y, z = v.unbind(-1)
    return torch.stack([x * kx + sx, y * ky + sy, z * (kx + ky) / 2], dim=-1)


def image_to_crop(v: torch.Tensor, roi: torch.Tensor, size: int = CROP_SIZE) -> torch.Tensor:
    """Inverse of :func:`crop_to_image`: image-frame points (*, N, 3) to crop-frame points."""
    check_shape(v, ("*", 3), "vertices")
    sx, sy, kx, ky = (t.unsqueeze(-1) for t in _roi_scales(roi.to(v.dtype), size))
    x, y, z = v.unbind(-1)
    return torch.stack([(x - sx) / kx, (y - sy) / ky, z * 2 / (kx + ky)], dim=-1)


# ------------------------------------------------------------------------------------ image-frame camera
@functools.lru_cache(maxsize=None)
def _flip_constants(convention: Convention) -> tuple[float, float, float]:
    """``(ox, cy, oz)`` of the posed -> crop flip ``(X + ox, cy - Y, Z + oz)`` (from :func:`posed_to_crop`)."""
    c = posed_to_crop(torch.zeros(1, 3, dtype=torch.float64), convention)[0].tolist()
    return c[0], c[1], c[2]


def _roi_scales_np(roi: np.ndarray, size: int = CROP_SIZE):
    roi = np.asarray(roi, np.float64)
    check_shape(roi, ("*", 4), "roi")
    kx, ky = (roi[..., 2] - roi[..., 0]) / size, (roi[..., 3] - roi[..., 1]) / size
    return roi[..., 0], roi[..., 1], kx, ky, (kx + ky) / 2


def params_to_image_camera(params: np.ndarray, roi: np.ndarray, convention: Convention) -> np.ndarray:
    """Image-frame camera ``M`` (*, 3, 4) of de-normalised params (*, 62) cropped at ``roi`` (*, 4):
    ``vertices_image = S @ M[:, :3].T + M[:, 3]`` for the unposed shape ``S`` (N, 3) (BFM units), exactly
    what :meth:`mfirrn.geometry.bfm.MorphableModel.vertices` gives with that ``convention`` and ``roi``.

    Rows: ``[kx·P0, kx·(t0 + ox) + sx]``, ``[-ky·P1, ky·(cy - t1) + sy]``, ``[kz·P2, kz·(t2 + oz)]`` with
    ``k = roi side / 120`` and the convention's flip ``(X + ox, cy - Y, Z + oz)``.
    """
    p = np.asarray(params, np.float64)
    check_shape(p, ("*", 62), "params")
    P = p[..., :12].reshape(*p.shape[:-1], 3, 4)
    ox, cy, oz = _flip_constants(convention)
    sx, sy, kx, ky, kz = (a[..., None] for a in _roi_scales_np(roi))
    M = np.empty_like(P)
    M[..., 0, :3], M[..., 0, 3] = kx * P[..., 0, :3], (kx * (P[..., 0, 3:] + ox) + sx)[..., 0]
    M[..., 1, :3], M[..., 1, 3] = -ky * P[..., 1, :3], (ky * (cy - P[..., 1, 3:]) + sy)[..., 0]
    M[..., 2, :3], M[..., 2, 3] = kz * P[..., 2, :3], (kz * (P[..., 2, 3:] + oz))[..., 0]
    return M


def params_from_image_camera(M: np.ndarray, coeffs: np.ndarray, roi: np.ndarray, convention: Convention) -> np.ndarray:
    """Inverse of :func:`params_to_image_camera`: params (*, 62) relative to ``roi`` (*, 4) from the image
    camera ``M`` (*, 3, 4) and the shape + expression coefficients ``coeffs`` (*, 50)."""
    M = np.asarray(M, np.float64)
    check_shape(M, ("*", 3, 4), "M")
    ox, cy, oz = _flip_constants(convention)
    sx, sy, kx, ky, kz = (a[..., None] for a in _roi_scales_np(roi))
    P = np.empty_like(M)
    P[..., 0, :3], P[..., 0, 3] = M[..., 0, :3] / kx, ((M[..., 0, 3:] - sx) / kx - ox)[..., 0]
    P[..., 1, :3], P[..., 1, 3] = -M[..., 1, :3] / ky, (cy - (M[..., 1, 3:] - sy) / ky)[..., 0]
    P[..., 2, :3], P[..., 2, 3] = M[..., 2, :3] / kz, (M[..., 2, 3:] / kz - oz)[..., 0]
    return np.concatenate([P.reshape(*P.shape[:-2], 12), np.asarray(coeffs, np.float64)], axis=-1)


def image_camera_turned(M: np.ndarray, width: int, height: int) -> np.ndarray:
    """The image-frame camera (*, 3, 4) of the same face in the image turned by 180 degrees.

    The image is ``width`` x ``height`` pixels with pixel centres at integer coordinates, so a point ``(x, y, z)``
    goes to ``(width - 1 - x, height - 1 - y, z)``: a rotation by 180 degrees about the optical axis (the first
    two rows change sign, their offsets move; :func:`mfirrn.geometry.turns.camera_back`). Turning twice gives ``M``
    back.

    >>> M = np.hstack([np.eye(3), [[10.0], [20.0], [5.0]]])
    >>> image_camera_turned(M, 100, 50).tolist()
    [[-1.0, 0.0, 0.0, 89.0], [0.0, -1.0, 0.0, 29.0], [0.0, 0.0, 1.0, 5.0]]
    """
    return camera_back(M, turn_back(2, width, height))
