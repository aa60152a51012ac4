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

from typing import Literal

import torch

from mfirrn.checks import check_shape

__all__ = ["Convention", "CONVENTIONS", "CROP_SIZE", "posed_to_crop", "crop_to_image", "image_to_crop"]

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
