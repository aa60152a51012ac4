"""The dense overlay: visible and see-through on large photos, never a solid blob on small faces."""

from __future__ import annotations

import numpy as np

from mfirrn.vis.overlays import dense_dots, draw_dense


def _face(size: float, centre=(0.0, 0.0), n: int = 53215, seed: int = 0) -> np.ndarray:
    """n points spread over a disc of diameter `size` pixels (a face-like cloud, image frame)."""
    rng = np.random.default_rng(seed)
    r, a = size / 2 * np.sqrt(rng.random(n)), rng.random(n) * 2 * np.pi
    return np.stack([centre[0] + r * np.cos(a), centre[1] + r * np.sin(a), rng.random(n)], 1)


def _coverage(out: np.ndarray, image: np.ndarray, centre, size: float) -> float:
    """Share of the pixels inside the face's disc that the overlay changed."""
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    disc = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= (size / 2) ** 2
    return float((out != image).any(-1)[disc].mean())


def test_a_large_face_on_a_large_photo_gets_visible_dots_with_the_face_between_them():
    image = np.full((2000, 2400, 3), 90, np.uint8)
    face = _face(800, (1200, 1000))
    count, radius = dense_dots(image.shape, face)
    assert radius == 2                                    # 5-pixel dots: still there when the photo is viewed whole
    out = draw_dense(image, [face])
    assert 0.05 < _coverage(out, image, (1200, 1000), 800) < 0.5
    assert 1000 < count < 53215


def test_a_small_face_on_a_large_photo_is_not_painted_over():
    image = np.full((1500, 2400, 3), 90, np.uint8)
    face = _face(45, (600, 700))
    assert dense_dots(image.shape, face)[1] == 0           # single pixels on a 45-pixel face
    out = draw_dense(image, [face])
    assert 0.02 < _coverage(out, image, (600, 700), 45) < 0.3
    # the former fixed stride (every 6th vertex, one pixel each) covered the face almost entirely
    assert _coverage(draw_dense(image, [face], step=6), image, (600, 700), 45) > 0.9


def test_explicit_step_and_pixels_outside_the_image():
    image = np.zeros((100, 120, 3), np.uint8)
    verts = np.array([[10.2, 20.0, 0.0], [500.0, 5.0, 0.0], [30.0, 40.4, 0.0], [-3.0, 50.0, 0.0]])
    out = draw_dense(image, [verts], step=1, color=(0, 0, 250), alpha=1.0)
    assert np.argwhere(out[..., 2]).tolist() == [[20, 10], [40, 30]]   # row, column; vertices 1 and 3 lie outside
    assert np.argwhere(draw_dense(image, [verts], step=3)[..., 0]).tolist() == [[20, 10]]  # vertices 0 and 3
    assert not image.any()                                             # the input is untouched
    blended = draw_dense(image, [verts], step=2, color=(0, 0, 200), alpha=0.5)
    assert blended[20, 10].tolist() == [0, 0, 100]


def _ring(size: float, centre) -> np.ndarray:
    """68 points on a circle of diameter `size` (enough of a face for the drawing's sizes)."""
    a = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    return np.stack([centre[0] + size / 2 * np.cos(a), centre[1] + size / 2 * np.sin(a)], 1)


def test_landmarks_on_a_small_face_stay_points_and_grow_on_a_large_photo():
    from mfirrn.vis.overlays import draw_landmarks

    image = np.zeros((1000, 1500, 3), np.uint8)
    ring = _ring(79, (300.3, 299.8))
    small = draw_landmarks(image, [ring], lines=False)
    # under 80 pixels a point is the one pixel under it (nearest pixel centre), in the colour asked for: not the
    # image's radius-4 discs, nor even radius-2 ones, which would cover the ring
    under = {(int(np.floor(y + 0.5)), int(np.floor(x + 0.5))) for x, y in ring}
    assert {tuple(p) for p in np.argwhere(small.any(-1)).tolist()} == under
    assert {tuple(small[r, c]) for r, c in under} == {(0, 255, 0)}
    # from 80 pixels on, discs of radius face / 100, fractions of a pixel included: 0.8 lights about 5 pixels
    # more than half, 2.5 about 30, so that faces of about one size look alike instead of jumping from 1 pixel to 13
    lit80 = (draw_landmarks(image, [_ring(80, (300, 300))], lines=False)[..., 1] > 128).sum()
    lit250 = (draw_landmarks(image, [_ring(250, (700, 500))], lines=False)[..., 1] > 128).sum()
    assert 68 * 2 < lit80 <= 68 * 9 and 68 * 16 < lit250 <= 68 * 36
    large = draw_landmarks(image, [_ring(600, (800, 500))], lines=False)
    lit = large[..., 1] > 0
    # a point at the top of the ring (800, 200) is a disc of the image's radius (round(1500 / 500) + 1 = 4)
    assert lit[200, 796:805].all() and not lit[200, 790] and not lit[200, 810]


def test_small_images_are_enlarged_for_the_overlays_with_their_pixel_centres_mapped():
    from types import SimpleNamespace

    import cv2

    from mfirrn.vis.overlays import enlarge_for_viewing, viewing_scale
    from mfirrn.vis.pose import image_rotation_scale, pose_box

    assert [viewing_scale((s, s)) for s in (40, 112, 199, 200, 399, 400, 2000)] == [10, 4, 3, 2, 2, 1, 1]
    image = np.zeros((30, 40, 3), np.uint8)
    image[7, 5] = 255  # one lit pixel, centre (x, y) = (5, 7)
    params = np.zeros(62)
    params[:12] = np.array([[2e-3, 0, 0, 60], [0, 2e-3, 0, 60], [0, 0, 2e-3, 0]]).ravel()  # scale, translation
    rng = np.random.default_rng(0)
    face = SimpleNamespace(roi=np.array([2.0, 3, 30, 31]), params=params, landmarks=rng.uniform(5, 25, (68, 3)),
                           vertices=rng.uniform(5, 25, (100, 3)), box=None, pose={"yaw": 1.0})
    big, (g,) = enlarge_for_viewing(image, [face])
    k = 10  # 400 / 40
    assert big.shape == (300, 400, 3) and g.box is None and g.pose == {"yaw": 1.0}
    # cv2's enlargement puts the pixel centre x at k x + (k - 1) / 2: the lit pixel's peak lies between 54 and 55
    grey = big[..., 0].astype(int)
    peak = np.argwhere(grey == grey.max())
    assert peak.min(0).tolist() == [74, 54] and peak.max(0).tolist() == [75, 55]
    np.testing.assert_allclose(g.landmarks[:, :2], face.landmarks[:, :2] * k + (k - 1) / 2)
    np.testing.assert_allclose(g.landmarks[:, 2], face.landmarks[:, 2] * k)
    np.testing.assert_allclose(g.vertices[:, :2], face.vertices[:, :2] * k + (k - 1) / 2)
    # the pose box drawn in the enlarged pixels is the image's box, mapped the same way
    corners, axes = pose_box(face.landmarks, image_rotation_scale(face.params, face.roi))
    corners_k, axes_k = pose_box(g.landmarks, image_rotation_scale(g.params, g.roi))
    np.testing.assert_allclose(corners_k, corners * k + (k - 1) / 2, atol=1e-9)
    np.testing.assert_allclose(axes_k, axes * k + (k - 1) / 2, atol=1e-9)
    # a large image and its faces are passed through untouched
    large = np.zeros((400, 300, 3), np.uint8)
    same, faces = enlarge_for_viewing(large, [face])
    assert same is large and faces[0] is face
    assert cv2.resize(image, (400, 300), interpolation=cv2.INTER_CUBIC).tobytes() == big.tobytes()
