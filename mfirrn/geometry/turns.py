"""Quarter turns of an image: what a face found in a turned copy is in the image itself.

``np.rot90(image, k)`` turns a ``width`` x ``height`` image by ``k`` quarter turns counter-clockwise. A face
reconstructed in that copy (a person lying down, a photo stored sideways) is mapped back into the image's pixels
with :func:`turn_back`, the affine map of pixel coordinates (pixel centres at integers) from the copy to the
image, applied to points (:func:`points_back`), corner boxes (:func:`boxes_back`), crop boxes
(:func:`rois_back`) and image-frame cameras (:func:`camera_back`): a turn about the optical axis, depth unchanged.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from mfirrn.io.checks import check_shape
from mfirrn.io.defaults import TURNED_CONFIDENCE, UPRIGHT_ROLL

__all__ = ["turn_back", "points_back", "boxes_back", "rois_back", "camera_back", "counts_upright"]


def turn_back(k: int, width: int, height: int) -> np.ndarray:
    """(2, 3): pixel coordinates ``(x', y')`` in ``np.rot90(image, k)`` of a ``width`` x ``height`` image ->
    ``(x, y)`` in the image, ``[x, y] = A[:, :2] @ [x', y'] + A[:, 2]``.

    >>> img = np.arange(12).reshape(3, 4)  # width 4, height 3
    >>> A = turn_back(1, 4, 3)  # a quarter turn counter-clockwise: the copy is 3 wide, 4 high
    >>> xt, yt = 2, 0  # a pixel of the copy ...
    >>> x, y = (A[:, :2] @ [xt, yt] + A[:, 2]).astype(int)
    >>> bool(np.rot90(img, 1)[yt, xt] == img[y, x])  # ... is this pixel of the image
    True
    """
    w1, h1 = width - 1, height - 1
    return {0: np.array([[1.0, 0, 0], [0, 1, 0]]),
            1: np.array([[0.0, -1, w1], [1, 0, 0]]),
            2: np.array([[-1.0, 0, w1], [0, -1, h1]]),
            3: np.array([[0.0, 1, 0], [-1, 0, h1]])}[k % 4]


def points_back(points: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Points (*, 2+) of the turned copy in the image (:func:`turn_back`'s ``A``); further columns (depth) kept."""
    p = np.array(points, np.float64)
    p[..., :2] = p[..., :2] @ A[:, :2].T + A[:, 2]
    return p


def boxes_back(boxes: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Boxes (*, 4+) given by their corner points ``(x0, y0, x1, y1, ...)`` (detector or landmark boxes) of the
    turned copy, in the image: both corners mapped, ordered so that ``x0 <= x1``, ``y0 <= y1``; further columns
    (a score) kept.

    >>> boxes_back(np.array([10.0, 20, 30, 60, 0.9]), turn_back(1, 100, 80)).tolist()
    [39.0, 10.0, 79.0, 30.0, 0.9]
    """
    b = np.array(boxes, np.float64)
    c = points_back(np.stack([b[..., 0:2], b[..., 2:4]], axis=-2), A)
    b[..., 0:2], b[..., 2:4] = c.min(axis=-2), c.max(axis=-2)
    return b


def rois_back(rois: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Crop boxes (*, 4) of the turned copy, in the image: a roi spans pixels ``sx .. ex - 1`` (and ``sy .. ey -
    1``), so its first and last pixels are mapped and the end taken one past the last.

    >>> rois_back(np.array([10.0, 20, 130, 140]), turn_back(2, 200, 160)).tolist()
    [70.0, 20.0, 190.0, 140.0]
    """
    r = np.asarray(rois, np.float64)
    b = boxes_back(np.concatenate([r[..., :2], r[..., 2:4] - 1], axis=-1), A)
    return np.concatenate([b[..., :2], b[..., 2:4] + 1], axis=-1)


def camera_back(M: np.ndarray, A: np.ndarray) -> np.ndarray:
    """An image-frame camera (*, 3, 4) of the turned copy (model points -> the copy's pixels and depth), in the
    image: its x and y rows mapped by ``A``, the depth row kept.

    >>> M = np.hstack([np.eye(3), [[10.0], [20.0], [5.0]]])
    >>> camera_back(M, turn_back(2, 100, 50)).tolist()
    [[-1.0, 0.0, 0.0, 89.0], [0.0, -1.0, 0.0, 29.0], [0.0, 0.0, 1.0, 5.0]]
    """
    M = np.array(M, np.float64)
    check_shape(M, ("*", 3, 4), "M")
    out = M.copy()
    out[..., :2, :] = A[:, :2] @ M[..., :2, :]
    out[..., :2, 3] += A[:, 2]
    return out


def counts_upright(roll: float, confidence: Optional[float] = None) -> bool:
    """Whether a face found in a turned copy of a photo counts as a face shown upright there: its roll (degrees) at
    most :data:`mfirrn.io.defaults.UPRIGHT_ROLL` and, given, its confidence at least
    :data:`mfirrn.io.defaults.TURNED_CONFIDENCE` (``Reconstructor(turned_faces=True)``, the CLI's no-face line).

    >>> counts_upright(-30.0, 0.9), counts_upright(80.0, 0.9), counts_upright(0.0, 0.3), counts_upright(10.0)
    (True, False, False, True)
    """
    return abs(roll) <= UPRIGHT_ROLL and (confidence is None or confidence >= TURNED_CONFIDENCE)
