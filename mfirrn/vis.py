"""2D overlays of reconstructions on photos (OpenCV drawing, BGR uint8 in/out)."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

__all__ = ["draw_landmarks", "draw_dense", "LANDMARK_CONTOURS"]

# 0-based index ranges of the 68-point scheme drawn as polylines: (start, end, closed).
LANDMARK_CONTOURS: tuple[tuple[int, int, bool], ...] = (
    (0, 17, False), (17, 22, False), (22, 27, False), (27, 31, False), (31, 36, False),
    (36, 42, True), (42, 48, True), (48, 60, True), (60, 68, True),
)


def _thickness(image: np.ndarray) -> int:
    return max(1, round(max(image.shape[:2]) / 500))


def draw_landmarks(image: np.ndarray, landmarks: Sequence[np.ndarray], color=(0, 255, 0),
                   lines: bool = True) -> np.ndarray:
    """A copy of ``image`` with each face's 68 landmarks (68, >=2) drawn as points and contours."""
    out = image.copy()
    t = _thickness(image)
    for lm in landmarks:
        pts = np.round(np.asarray(lm)[:, :2]).astype(np.int32)
        if lines and len(pts) == 68:
            for a, b, closed in LANDMARK_CONTOURS:
                cv2.polylines(out, [pts[a:b]], closed, (255, 255, 255), t, cv2.LINE_AA)
        for x, y in pts:
            cv2.circle(out, (int(x), int(y)), t + 1, color, -1, cv2.LINE_AA)
    return out


def draw_dense(image: np.ndarray, vertices: Sequence[np.ndarray], step: int = 6, color=(255, 200, 0)) -> np.ndarray:
    """A copy of ``image`` with every ``step``-th dense vertex (N, >=2) of each face drawn as a dot."""
    out = image.copy()
    h, w = image.shape[:2]
    for v in vertices:
        pts = np.round(np.asarray(v)[::step, :2]).astype(np.int64)
        ok = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
        pts = pts[ok]
        out[pts[:, 1], pts[:, 0]] = color
    return out


def plot_mesh_points(ax, vertices: np.ndarray, colors: np.ndarray | None = None, step: int = 3, size: float = 2.0,
                     azim: float = -70.0):
    """Scatter every ``step``-th vertex (N, 3) of an image-frame mesh on a matplotlib 3D axis, viewed from the camera.

    ``colors``: RGB (N, 3) in [0, 1] (e.g. :func:`mfirrn.meshio.sample_colors`). The image y axis is
    flipped so the face is upright.
    """
    v = np.asarray(vertices)[::step]
    c = None if colors is None else np.asarray(colors)[::step]
    ax.scatter(v[:, 0], v[:, 2], -v[:, 1], c=c, s=size, linewidths=0, depthshade=False)
    ax.set_xlabel("x (px)")
    ax.set_ylabel("z (px)")
    ax.set_zlabel("-y (px)")
    ax.view_init(elev=10, azim=azim)
    ax.set_box_aspect((1, 1, 1))
    span = (v.max(0) - v.min(0)).max() / 2
    mid = (v.max(0) + v.min(0)) / 2
    ax.set_xlim(mid[0] - span, mid[0] + span)
    ax.set_ylim(mid[2] - span, mid[2] + span)
    ax.set_zlim(-mid[1] - span, -mid[1] + span)
    return ax
