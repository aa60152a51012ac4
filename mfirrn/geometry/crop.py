"""Face crops for the network, exactly as 3DDFA builds them (roi from a detector box or from landmarks).

Boxes are ``(x0, y0, x1, y1)`` in image pixels; a *roi* is the square crop box ``(sx, sy, ex, ey)`` that
is cut out (zero-padded outside the image, or filled with its border: :func:`crop_image`) and resized to 120x120.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from mfirrn.geometry.frames import CROP_SIZE
from mfirrn.geometry.turns import boxes_back, rois_back, turn_back
from mfirrn.io.checks import check_shape
from mfirrn.io.defaults import CROP_PADDINGS, DEFAULT_CROP_PADDING

__all__ = ["roi_from_box", "roi_from_landmarks", "roi_iou", "SAME_FACE_IOU", "SAME_FACE_INSIDE", "SAME_FACE_LANDMARKS",
           "same_face_kept",
           "centres_inside", "turned_boxes", "turned_rois", "CROP_PADDINGS", "DEFAULT_CROP_PADDING", "crop_image",
           "crops_to_tensor", "read_crop"]


def roi_from_box(box: np.ndarray) -> np.ndarray:
    """Crop roi (*, 4) from detector boxes (*, 4) = (l, t, r, b), as 3DDFA.

    ``old = (r-l + b-t)/2``; centre ``(r - (r-l)/2, b - (b-t)/2 + 0.14·old)``; side ``int(1.58·old)``.

    >>> roi_from_box(np.array([100.0, 100.0, 200.0, 200.0])).tolist()
    [71.0, 85.0, 229.0, 243.0]
    """
    box = np.asarray(box, dtype=np.float64)
    check_shape(box, ("*", 4), "box")
    l, t, r, b = np.moveaxis(box[..., :4], -1, 0)
    old = (r - l + b - t) / 2
    cx = r - (r - l) / 2
    cy = b - (b - t) / 2 + old * 0.14
    size = np.trunc(old * 1.58)
    sx, sy = cx - size / 2, cy - size / 2
    return np.stack([sx, sy, sx + size, sy + size], axis=-1)


def roi_from_landmarks(pts: np.ndarray) -> np.ndarray:
    """Crop roi (*, 4) from landmarks (*, K, 2 or 3) in image pixels, as 3DDFA.

    Square around the landmarks' bounding box (half-side = max(w, h)/2), then side = that square's
    diagonal, same centre.

    >>> roi_from_landmarks(np.array([[0.0, 0.0], [10.0, 10.0]])).round(3).tolist()
    [-2.071, -2.071, 12.071, 12.071]
    """
    pts = np.asarray(pts, dtype=np.float64)
    check_shape(pts, ("*", None, None), "landmarks")
    if pts.shape[-1] not in (2, 3):
        raise ValueError(f"landmarks: expected last dimension 2 or 3, got shape {pts.shape}")
    x0, y0 = pts[..., 0].min(-1), pts[..., 1].min(-1)
    x1, y1 = pts[..., 0].max(-1), pts[..., 1].max(-1)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    radius = np.maximum(x1 - x0, y1 - y0) / 2
    side = np.sqrt(2.0) * 2 * radius
    sx, sy = cx - side / 2, cy - side / 2
    return np.stack([sx, sy, sx + side, sy + side], axis=-1)


def roi_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``(x0, y0, x1, y1)`` (*, 4) and (*, 4), broadcast -> (*,).

    Pairwise for (A, 4) and (B, 4): ``roi_iou(a[:, None], b[None])`` -> (A, B).

    >>> roi_iou(np.array([0.0, 0, 10, 10]), np.array([5.0, 0, 15, 10])).round(4).item()
    0.3333
    >>> roi_iou(np.array([[0, 0, 2, 2]])[:, None], np.array([[1, 0, 3, 2], [5, 5, 6, 6]])[None]).round(3).tolist()
    [[0.333, 0.0]]
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-12)


#: Two crop boxes overlapping by more than this IoU hold one face (reconstructed twice, or two tracks converged).
SAME_FACE_IOU = 0.6
#: Two faces whose landmark boxes overlap by at least this much of the smaller box are one face (a fit of a part).
SAME_FACE_INSIDE = 0.9
#: Two faces whose landmarks lie on average within this fraction of the larger face's size of each other are one
#: face: the fit of a face hidden behind another that slid onto the face in front (one set of pixels fitted twice).
SAME_FACE_LANDMARKS = 0.25


def same_face_kept(rois: np.ndarray, landmarks: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """Which of F reconstructed faces to keep (F,) bool when several of them are one face.

    Detector boxes that FaceBoxes' NMS keeps apart (IoU <= 0.3) can lead, once each face is refined from its
    own landmarks, to two reconstructions of one face: crop boxes ``rois`` (F, 4) that overlap by more than
    :data:`SAME_FACE_IOU`, or the landmarks (F, N, 2+) of one lying within the other's landmark box (at least
    :data:`SAME_FACE_INSIDE` of the smaller box's area), a second fit of part of a face, or landmarks that lie on
    average within :data:`SAME_FACE_LANDMARKS` of the larger face's size (the square root of its landmark box's
    area) of the other's, point by point: the fit of a face mostly hidden behind another that slid onto the face in
    front. Two real faces do none of these: one would cover the other. Of each such pair the face of lower
    ``priority`` (F,) is dropped (the later one on a tie), greedily from the highest priority down, so a dropped face
    removes nothing else.

    >>> rois = np.array([[0, 0, 100, 100], [5, 5, 105, 105], [200, 0, 300, 100], [220, 20, 280, 80.0]])
    >>> box = lambda x0, y0, x1, y1: np.array([[x0, y0], [x1, y1]], float)  # two corners stand for 68 points
    >>> lms = np.stack([box(20, 20, 80, 90), box(25, 25, 85, 95), box(220, 20, 280, 90), box(230, 40, 270, 85)])
    >>> same_face_kept(rois, lms, np.array([0.9, 0.95, 0.8, 0.7])).tolist()
    [False, True, True, False]
    >>> same_face_kept(rois, lms, np.array([0.9, 0.95, 0.7, 0.8])).tolist()  # the part kept, the whole dropped
    [False, True, False, True]
    >>> rois = np.array([[0, 0, 44, 44], [-4, 9, 36, 49.0]])  # IoU 0.55; landmark boxes 80 % one in the other
    >>> lms = np.stack([box(10, 6, 37, 37), box(7, 11, 34, 40)])  # points 5.0 px apart, faces of 28.9 px: 0.17
    >>> same_face_kept(rois, lms, np.array([1.0, 0.4])).tolist()
    [True, False]
    """
    rois = np.asarray(rois, np.float64).reshape(-1, 4)
    pts = np.asarray(landmarks, np.float64)[..., :2]
    boxes = np.concatenate([pts.min(axis=-2), pts.max(axis=-2)], axis=-1)  # (F, 4) landmark boxes
    area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-12)
    a, b = boxes[:, None], boxes[None]  # every pair at once: (F, F) overlaps
    inter = (np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
             * np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None))
    apart = np.linalg.norm(pts[:, None] - pts[None], axis=-1).mean(axis=-1)  # (F, F) mean point distance
    size = np.sqrt(area)
    same = ((roi_iou(rois[:, None], rois[None]) > SAME_FACE_IOU)
            | (inter >= SAME_FACE_INSIDE * np.minimum(area[:, None], area[None]))
            | (apart < SAME_FACE_LANDMARKS * np.maximum(size[:, None], size[None])))
    keep = np.ones(len(rois), bool)
    order = np.argsort(-np.asarray(priority, np.float64), kind="stable")
    for k, i in enumerate(order):
        if keep[i]:
            lower = order[k + 1:]  # only faces of lower priority are dropped by face i
            keep[lower[same[i, lower]]] = False
    return keep


def centres_inside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) bool: whether the centre of box ``a[i]`` lies inside box ``b[j]`` or that of ``b[j]`` inside ``a[i]``
    (boxes (A, 4+) and (B, 4+) by corners ``x0, y0, x1, y1``): two fits of one face that disagree on its size or
    orientation (one found in a turned copy of the photo) still do; two faces side by side do not.

    >>> centres_inside(np.array([[0, 0, 10, 10.0]]), np.array([[4, 4, 30, 30], [11, 0, 21, 10.0]])).tolist()
    [[True, False]]
    """
    a, b = np.asarray(a, np.float64)[:, None, :4], np.asarray(b, np.float64)[None, :, :4]

    def inside(p, q):  # the centres of p inside q
        cx, cy = (p[..., 0] + p[..., 2]) / 2, (p[..., 1] + p[..., 3]) / 2
        return (q[..., 0] <= cx) & (cx <= q[..., 2]) & (q[..., 1] <= cy) & (cy <= q[..., 3])

    return inside(a, b) | inside(b, a)


def turned_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Boxes (*, 4+) given by their corner points ``(x0, y0, x1, y1, ...)`` (landmark boxes, detector boxes) in the
    ``width`` x ``height`` image turned by 180 degrees: ``x -> width - 1 - x`` (pixel centres at integers), the
    corners swapped so that ``x0 <= x1``; further columns (a score) kept (:func:`mfirrn.geometry.turns.boxes_back`).

    >>> turned_boxes(np.array([[10.0, 20, 30, 60, 0.9]]), 100, 80).tolist()
    [[69.0, 19.0, 89.0, 59.0, 0.9]]
    """
    return boxes_back(boxes, turn_back(2, width, height))


def turned_rois(rois: np.ndarray, width: int, height: int) -> np.ndarray:
    """Crop boxes (*, 4) covering the same pixels in the ``width`` x ``height`` image turned by 180 degrees: a roi
    spans pixels ``sx .. ex - 1``, which go to ``width - ex .. width - 1 - sx``
    (:func:`mfirrn.geometry.turns.rois_back`).

    >>> turned_rois(np.array([10.0, 20, 130, 140]), 200, 160).tolist()
    [70.0, 20.0, 190.0, 140.0]
    """
    return rois_back(rois, turn_back(2, width, height))


EDGE_BLUR = 0.15  # the "edge" padding's blur: a Gaussian kernel of this fraction of the crop side


def crop_image(image: np.ndarray, roi: np.ndarray, size: int = CROP_SIZE, pad: str = "zero") -> np.ndarray:
    """Cut ``roi`` (4,) out of ``image`` (H, W, C) uint8 and resize to (size, size, C); ``pad`` fills what lies
    outside the image.

    The roi is rounded to integer pixels first (3DDFA's ``crop_img``); resize is bilinear. ``pad="zero"``:
    black, as 3DDFA. ``pad="edge"``: the image's border pixels carried outward and blurred (a Gaussian of
    :data:`EDGE_BLUR` of the crop side), so that a face cut by the border continues in its own colours
    instead of ending at a black edge the network takes for its outline.

    >>> img = np.full((4, 4, 3), 200, np.uint8)
    >>> crop_image(img, np.array([-4, 0, 4, 8]), size=8, pad="zero")[0, :, 0].tolist()
    [0, 0, 0, 0, 200, 200, 200, 200]
    >>> crop_image(img, np.array([-4, 0, 4, 8]), size=8, pad="edge")[0, :, 0].tolist()
    [200, 200, 200, 200, 200, 200, 200, 200]
    """
    check_shape(np.asarray(roi), (4,), "roi")
    if image.ndim != 3:
        raise ValueError(f"image: expected (H, W, C), got shape {image.shape}")
    if pad not in CROP_PADDINGS:
        raise ValueError(f"pad must be one of {', '.join(CROP_PADDINGS)}, got {pad!r}")
    h, w = image.shape[:2]
    sx, sy, ex, ey = (int(round(float(v))) for v in roi)
    dh, dw = ey - sy, ex - sx
    if dh <= 0 or dw <= 0:
        raise ValueError(f"roi {list(roi)} is empty")
    top, left, bottom, right = max(0, -sy), max(0, -sx), max(0, ey - h), max(0, ex - w)
    if pad == "edge" and (top or left or bottom or right) and ex > 0 and ey > 0 and sx < w and sy < h:
        inner = image[max(0, sy):min(h, ey), max(0, sx):min(w, ex)]
        out = cv2.resize(cv2.copyMakeBorder(inner, top, bottom, left, right, cv2.BORDER_REPLICATE),
                         dsize=(size, size), interpolation=cv2.INTER_LINEAR)
        k = max(3, int(EDGE_BLUR * size) | 1)
        blurred = cv2.GaussianBlur(out, (k, k), 0)
        inside = np.zeros((size, size), bool)  # output pixels whose centres map into the image
        sc_y, sc_x = size / dh, size / dw
        inside[int(np.ceil(top * sc_y - 0.5)):int(np.ceil((dh - bottom) * sc_y - 0.5)),
               int(np.ceil(left * sc_x - 0.5)):int(np.ceil((dw - right) * sc_x - 0.5))] = True
        return np.where(inside[..., None], out, blurred)
    out = np.zeros((dh, dw, image.shape[2]), dtype=image.dtype)
    dsx, dsy = max(0, -sx), max(0, -sy)
    sx, sy = max(0, sx), max(0, sy)
    dex, dey = dw - max(0, ex - w), dh - max(0, ey - h)
    ex, ey = min(w, ex), min(h, ey)
    if ex > sx and ey > sy:
        out[dsy:dey, dsx:dex] = image[sy:ey, sx:ex]
    return cv2.resize(out, dsize=(size, size), interpolation=cv2.INTER_LINEAR)


def crops_to_tensor(crops: np.ndarray | list[np.ndarray]) -> torch.Tensor:
    """(B, 120, 120, 3) uint8 BGR crops -> (B, 3, 120, 120) float32 ``(x - 127.5) / 128``.

    Computed in numpy, one channel at a time into the NCHW array (float32 operations, the same values as
    in PyTorch): a crop is too small to split across threads, and this runs between network calls.
    """
    arr = np.stack(list(crops)) if isinstance(crops, list) else np.asarray(crops)
    check_shape(arr, (None, None, None, 3), "crops")
    out = np.empty((arr.shape[0], 3, *arr.shape[1:3]), np.float32)
    for c in range(3):
        np.subtract(arr[..., c], np.float32(127.5), out=out[:, c], dtype=np.float32)
    out /= np.float32(128.0)
    return torch.from_numpy(out)


def read_crop(path, size: int = CROP_SIZE) -> "np.ndarray | None":
    """Read a network crop from disk as BGR uint8 (size, size, 3), resizing (bilinear) if it has another
    size; ``None`` when the file cannot be read (callers raise their own error naming the fix)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is not None and img.shape[:2] != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    return img
