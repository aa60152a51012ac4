"""Head pose drawn on the photo: a 3D box around each face and its axes (like 3DDFA_V2's pose box).

The box lives in the face's own frame (the BFM frame: x across the face, y up, z out of the face):
the 68 landmarks are taken back to that frame with the linear part ``A`` (3, 3) of the image-frame
camera (``A = diag(k, -k, k) · P[:, :3]``, ``k`` = roi side / 120), boxed, and the box corners are
projected with ``A`` again (orthographic, as the reconstruction itself). So the box follows the face's
rotation, size and position exactly; no pixel convention is involved (it only shifts translations,
and the box is anchored on the landmarks).
"""

from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

from mfirrn.geometry.pose import angles_from_params
from mfirrn.io.checks import check_shape
from mfirrn.vis.labels import LabelLayout, draw_labels, layout_labels

__all__ = ["image_rotation_scale", "pose_box", "pose_label_layout", "draw_pose"]


def image_rotation_scale(params: np.ndarray, roi: np.ndarray) -> np.ndarray:
    """``A`` (3, 3): image pixels per BFM unit of de-normalised params (62,) cropped at ``roi`` (4,), i.e. the
    linear part of ``vertices_image = A @ S + b`` (image y down)."""
    p = np.asarray(params, np.float64)
    check_shape(p, (62,), "params")
    roi = np.asarray(roi, np.float64)
    kx, ky = (roi[2] - roi[0]) / 120.0, (roi[3] - roi[1]) / 120.0
    return np.diag([kx, -ky, (kx + ky) / 2]) @ p[:12].reshape(3, 4)[:, :3]


def pose_box(landmarks: np.ndarray, A: np.ndarray, margin: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Corners (8, 2) of the face's 3D box in image pixels and its axis end points (4, 2) (origin, x, y, z).

    ``landmarks`` (68, 3) image frame; ``A`` (3, 3) from :func:`image_rotation_scale`. Corners 0-3 are the
    back face, 4-7 the front face (towards the viewer when the face looks at the camera).
    """
    lm = np.asarray(landmarks, np.float64)
    check_shape(lm, (None, 3), "landmarks")
    c = lm.mean(axis=0)
    q = np.linalg.solve(A, (lm - c).T).T  # landmarks in the face frame (BFM units), centred
    lo, hi = q.min(axis=0), q.max(axis=0)
    pad = (hi - lo) * margin
    lo, hi = lo - pad, hi + pad
    hi[2] = hi[2] + (hi[0] - lo[0]) * 0.25  # the front face a little ahead of the nose tip
    xs, ys, zs = (lo[0], hi[0]), (lo[1], hi[1]), (lo[2], hi[2])
    corners = np.array([[xs[i], ys[j], zs[k]] for k in (0, 1) for (i, j) in ((0, 0), (1, 0), (1, 1), (0, 1))])
    img = (A @ corners.T).T + c
    length = (hi[0] - lo[0]) * 0.6
    axes = np.vstack([c, c + (A @ (np.eye(3) * length)).T])
    return img[:, :2], axes[:, :2]


def pose_label_layout(image_shape: Sequence[int], faces: Sequence, numbered: Optional[bool] = None,
                      names: Optional[Sequence[str]] = None) -> LabelLayout:
    """Where :func:`draw_pose` writes each face's yaw, pitch and roll: next to its pose box, no two labels
    overlapping, all inside the image of ``image_shape`` (H, W, ...); numbered with a legend in a crowd
    (:func:`mfirrn.vis.labels.layout_labels`). ``faces`` as for :func:`draw_pose` (without ``pose``, the
    angles come from ``params``). ``names``: each face's name, written before its angles (a video's track
    ids) and used as its number in a crowd."""
    texts, boxes = [], []
    for f in faces:
        corners, axes = pose_box(f.landmarks, image_rotation_scale(f.params, f.roi))
        drawn = np.vstack([corners, axes])  # the box and its axes' arrows
        boxes.append((*drawn.min(axis=0), *drawn.max(axis=0)))
        pose = getattr(f, "pose", None)
        yaw, pitch, roll = ((pose["yaw"], pose["pitch"], pose["roll"]) if pose else angles_from_params(f.params))
        texts.append(f"yaw {round(yaw)} pitch {round(pitch)} roll {round(roll)}")  # round(): no "-0"
    if names is not None:
        texts = [f"{n} {t}" for n, t in zip(names, texts)]
    return layout_labels(texts, boxes, image_shape, numbered=numbered, names=names)


def draw_pose(image: np.ndarray, faces: Sequence, box_color=(0, 255, 255), text: bool = True,
              names: Optional[Sequence[str]] = None) -> np.ndarray:
    """A copy of BGR ``image`` with each face's pose box, axes (x red, y green, z blue) and its yaw, pitch,
    roll (``face.pose``, degrees) written next to the box (:func:`pose_label_layout`: readable in crowds
    and at the image's edge). Lines grow with the image (to show on a large photo viewed whole) up to 1/60 of
    the face's size, so that a small face is not hidden under its box. ``faces``: :class:`mfirrn.inference.pipeline.Face`-like objects (``params``,
    ``roi``, ``landmarks``, ``pose``); ``names`` as for :func:`pose_label_layout`."""
    out = image.copy()
    t_image = max(1, round(max(image.shape[:2]) / 400))
    for f in faces:
        A = image_rotation_scale(f.params, f.roi)
        corners, axes = pose_box(f.landmarks, A)
        face = float(np.ptp(np.asarray(f.landmarks)[:, :2], axis=0).max())
        t = max(1, min(t_image, round(face / 60)))  # lines that grow with the photo, but not over a small face
        pts = np.round(corners).astype(np.int32)
        cv2.polylines(out, [pts[:4]], True, box_color, t, cv2.LINE_AA)
        cv2.polylines(out, [pts[4:]], True, box_color, t + 1, cv2.LINE_AA)
        for i in range(4):
            cv2.line(out, tuple(map(int, pts[i])), tuple(map(int, pts[i + 4])), box_color, t, cv2.LINE_AA)
        o = tuple(int(v) for v in np.round(axes[0]))
        for end, col in zip(axes[1:], ((0, 0, 255), (0, 255, 0), (255, 0, 0))):
            cv2.arrowedLine(out, o, tuple(int(v) for v in np.round(end)), col, t + 1, cv2.LINE_AA, tipLength=0.15)
    if text and faces:
        draw_labels(out, pose_label_layout(out.shape, faces, names=names))
    return out
