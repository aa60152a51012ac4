"""mfirrn.render: the compiled rasterizer against its numpy twin, edge cases and the renders built on it."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from mfirrn import render

H = W = 32


def random_mesh(seed: int, n: int = 30, t: int = 40, snap: bool = False, size: int = H):
    rng = np.random.default_rng(seed)
    v = np.c_[rng.uniform(-6, size + 6, (n, 2)), rng.uniform(-10, 10, n)].astype(np.float32)
    if snap:  # integer / half-integer coordinates: many pixel centres exactly on edges and vertices
        v[:, :2] = np.round(v[:, :2] * 2) / 2
    tri = rng.integers(0, n, (t, 3)).astype(np.int32)
    colors = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    return v, tri, colors


def grid_mesh(n: int, size: float, z=lambda x, y: 0 * x):
    """A regular (n+1)^2-vertex grid over [1, size-1]^2, two triangles per cell, both diagonals used."""
    xs = np.linspace(1, size - 1, n + 1)
    x, y = np.meshgrid(xs, xs)
    v = np.stack([x.ravel(), y.ravel(), z(x, y).ravel()], axis=1).astype(np.float32)
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    tri = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)]).astype(np.int32)
    return v, tri


# ------------------------------------------------------------------------ fast kernel == numpy twin
@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("cull", [False, True])
def test_matches_reference(seed, cull):
    v, tri, c = random_mesh(seed, snap=seed % 2 == 1)
    img, depth = render.rasterize(v, tri, c, H, W, cull_backfaces=cull)
    ref_img, ref_depth, ref_ids = render.rasterize_reference(v, tri, c, H, W, cull_backfaces=cull, return_ids=True)
    # same integer coverage test and the same float arithmetic: identical, shared edges included
    np.testing.assert_array_equal(depth, ref_depth)
    np.testing.assert_array_equal(img, ref_img)
    ids, depth2 = render.rasterize_ids(v, tri, H, W, cull_backfaces=cull)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(depth2, depth)


@pytest.mark.parametrize("channels", [1, 2, 4, 5])
def test_any_channel_count_matches_reference(channels):
    v, tri, _ = random_mesh(3, n=37, t=60)  # 37 vertices: the vertex loop's 4-wide blocks and a tail
    c = np.random.default_rng(1).uniform(-1, 1, (len(v), channels)).astype(np.float32)
    for threads in (1, 2):
        img, depth = render.rasterize(v, tri, c, H, W, num_threads=threads)
        ref_img, ref_depth = render.rasterize_reference(v, tri, c, H, W)
        np.testing.assert_array_equal(depth, ref_depth)
        np.testing.assert_array_equal(img, ref_img)


def small_triangle_mesh(seed: int, t: int = 4500, size: int = 37):
    """t separate triangles of 0.7 to 9 pixels across (boxes of 1x1 up to 5x5 pixel centres, the sizes of the
    BFM mesh at 450x450), many over the image border; every 7th one wound backwards."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-3, size + 3, (t, 1, 2))
    extent = rng.choice([0.7, 1.5, 2.5, 3.5, 5.0, 7.9, 9.0], (t, 1, 1))
    xy = centre + rng.uniform(-0.5, 0.5, (t, 3, 2)) * extent
    if seed % 2:  # half-pixel grid: pixel centres on edges and vertices
        xy = np.round(xy * 2) / 2
    z = rng.uniform(-5, 5, (t, 1, 1)) + rng.uniform(-1, 1, (t, 3, 1))
    v = np.concatenate([xy, z], axis=2).reshape(-1, 3).astype(np.float32)
    tri = np.arange(3 * t, dtype=np.int32).reshape(t, 3)
    tri[::7] = tri[::7, ::-1]
    return v, tri, rng.uniform(0, 1, (len(v), 3)).astype(np.float32)


@pytest.mark.parametrize("seed", range(4))
def test_small_triangles_match_reference(seed):
    """The one-centre, 2x2-block (moved back at the image's and the bands' last row and column) and general
    paths against the twin, on one thread and on bands (>= 4096 triangles)."""
    v, tri, c = small_triangle_mesh(seed)
    ref_img, ref_depth, ref_ids = render.rasterize_reference(v, tri, c, 37, 41, return_ids=True)
    for threads in (1, 2, 3):
        img, depth = render.rasterize(v, tri, c, 37, 41, num_threads=threads)
        np.testing.assert_array_equal(depth, ref_depth)
        np.testing.assert_array_equal(img, ref_img)
        np.testing.assert_array_equal(render.rasterize_ids(v, tri, 37, 41, num_threads=threads)[0], ref_ids)



@pytest.mark.parametrize("seed", range(3))
def test_large_triangles_at_the_right_edge_match_reference(seed):
    """Triangles of 2.5 to 90 pixels across (the general path), half of them over the image's right edge, in
    six depth layers (>= 4096 triangles: bands), on one thread and on two."""
    rng = np.random.default_rng(seed)
    t, h, w = 700, 83, 75
    cx = np.where(rng.uniform(size=t) < 0.5, rng.uniform(w - 8, w + 4, t), rng.uniform(-4, w + 4, t))
    centre = np.stack([cx, rng.uniform(-4, h + 4, t)], axis=1)[:, None, :]
    extent = rng.choice([2.5, 4.0, 6.0, 12.0, 30.0, 63.9, 64.1, 90.0], (t, 1, 1))
    xy = centre + rng.uniform(-0.5, 0.5, (t, 3, 2)) * extent
    if seed == 1:  # half-pixel grid: pixel centres on edges and vertices
        xy = np.round(xy * 2) / 2
    z = rng.uniform(-5, 5, (t, 1, 1)) + rng.uniform(-1, 1, (t, 3, 1))
    v = np.concatenate([xy, z], axis=2).reshape(-1, 3).astype(np.float32)
    tri = np.arange(3 * t, dtype=np.int32).reshape(t, 3)
    tri[::5] = tri[::5, ::-1]
    c = rng.uniform(0, 1, (len(v), 3)).astype(np.float32)
    v, tri, c = np.concatenate([v] * 6), np.concatenate([tri + k * len(v) for k in range(6)]), np.concatenate([c] * 6)
    v[:, 2] += np.repeat(rng.uniform(-0.5, 0.5, 6), 3 * t).astype(np.float32)  # >= 4096 triangles, in depth layers
    ref_img, ref_depth, ref_ids = render.rasterize_reference(v, tri, c, h, w, return_ids=True)
    for threads in (1, 2):
        img, depth = render.rasterize(v, tri, c, h, w, num_threads=threads)
        np.testing.assert_array_equal(depth, ref_depth)
        np.testing.assert_array_equal(img, ref_img)
        np.testing.assert_array_equal(render.rasterize_ids(v, tri, h, w, num_threads=threads)[0], ref_ids)
    assert np.isfinite(depth[:, -4:]).mean() > 0.5  # the right edge is drawn

def test_far_vertices_match_reference():
    """Vertices beyond 2**15 pixels (exact double snapping instead of the 4-wide float path) next to
    near ones, and coordinates a hair around that switch and around pixel centres."""
    v, tri, c = random_mesh(5, n=41, t=80)
    v[[0, 9, 22], 0] = [40000.3, -2**15, 2**19 + 0.7]
    v[[4, 30], 1] = [-32767.99, 32768.0]
    v[[5, 6, 7], 0] = np.nextafter(np.float32([3.5, 10.0, 17.5]), np.float32(0))
    img, depth = render.rasterize(v, tri, c, H, W)
    ref_img, ref_depth = render.rasterize_reference(v, tri, c, H, W)
    np.testing.assert_array_equal(depth, ref_depth)
    np.testing.assert_array_equal(img, ref_img)
    assert np.isfinite(depth).any()


def test_image_wider_than_32767_pixels():
    """Images beyond the int16 cell codes take the int32 path: same pixels as the reference, any thread count."""
    v, tri = grid_mesh(70, 8)  # 9800 triangles: enough for the threaded path
    v[:, 0] = v[:, 0] * 5000 + 100  # stretched over 30 000 columns
    c = np.random.default_rng(2).uniform(0, 1, (len(v), 2)).astype(np.float32)
    w = 36000
    ref_img, ref_depth = render.rasterize_reference(v, tri, c, 8, w)
    for threads in (1, 2):
        img, depth = render.rasterize(v, tri, c, 8, w, num_threads=threads)
        np.testing.assert_array_equal(depth, ref_depth)
        np.testing.assert_array_equal(img, ref_img)
    assert np.isfinite(ref_depth).mean() > 0.5


def test_threads_give_identical_results():
    v, tri = grid_mesh(60, 64, z=lambda x, y: np.sin(x / 5) * 3 + y / 10)
    rng = np.random.default_rng(0)
    tri = np.concatenate([tri, tri[rng.permutation(len(tri))[:3000]]])  # duplicates: equal-depth ties
    c = rng.uniform(0, 1, (len(v), 2)).astype(np.float32)
    one = render.rasterize(v, tri, c, 64, 64, num_threads=1)
    for n in (2, 3, 8):
        many = render.rasterize(v, tri, c, 64, 64, num_threads=n)
        assert (many[0][~np.isfinite(many[1])] == 0).all()  # no background: zeroed by the compiled code
        np.testing.assert_array_equal(one[0], many[0])
        np.testing.assert_array_equal(one[1], many[1])
    # fewer bands than threads (a band needs >= 2 rows): 9 rows for 8 threads, and 3 rows
    for h in (9, 3):
        np.testing.assert_array_equal(render.rasterize(v, tri, c, h, 64, num_threads=1)[0],
                                      render.rasterize(v, tri, c, h, 64, num_threads=8)[0])
    ids1, _ = render.rasterize_ids(v, tri, 64, 64, num_threads=1)
    ids3, _ = render.rasterize_ids(v, tri, 64, 64, num_threads=3)
    np.testing.assert_array_equal(ids1, ids3)
    assert ids1.max() < 2 * 60 * 60  # at equal depth the lower (original) triangle index wins


def test_shared_edges_drawn_exactly_once():
    # a watertight grid with vertices on pixel centres and on half pixels: every centre inside the
    # square is covered by exactly one triangle (no gaps, no double draws)
    for size, n in ((33, 8), (33, 7), (40, 13)):
        v, tri = grid_mesh(n, size)
        count = np.zeros((size, size), int)
        for t in tri:
            _, d = render.rasterize(v, t[None], np.ones((len(v), 1), np.float32), size, size)
            count += np.isfinite(d)
        lo, hi = 1, size - 1  # square [1, size-1]: top/left border in, bottom/right border out
        assert (count[lo:hi, lo:hi] == 1).all()
        assert count.sum() == (hi - lo) ** 2


# ------------------------------------------------------------------------------ interpolation
def test_colour_at_vertices_and_pixel_centre_convention():
    v = np.array([[3, 12, 1], [20, 2, 2], [20, 25, 3]], np.float32)
    c = np.eye(3, dtype=np.float32)
    img, depth = render.rasterize(v, [[0, 1, 2]], c, H, W)
    # vertex 0 (x=3, y=12) lands on row 12, column 3 and gets exactly its own colour; it is kept because
    # both its edges are left edges (interior to their right)
    np.testing.assert_array_equal(img[12, 3], [1, 0, 0])
    assert depth[12, 3] == 1
    # vertices 1 and 2 lie on the right edge x = 20 (not a left edge): their pixels are not drawn
    assert not np.isfinite(depth[2, 20]) and not np.isfinite(depth[25, 20])
    # colour at any centre = its barycentric coordinates (solved directly here)
    for y, x in ((13, 19), (12, 10), (5, 17)):
        bary = np.linalg.solve(np.r_[v[:, :2].T, np.ones((1, 3))], [x, y, 1])
        np.testing.assert_allclose(img[y, x], bary, atol=1e-6)
    inside = np.isfinite(depth)
    np.testing.assert_allclose(img[inside].sum(axis=1), 1, atol=1e-6)  # barycentric weights sum to 1
    assert ((img[inside] >= -1e-6) & (img[inside] <= 1 + 1e-6)).all()
    assert not np.isfinite(depth[~inside]).any() and (img[~inside] == 0).all()


def test_depth_of_a_plane():
    # vertices on the 1/256-pixel grid (x, y = 1 + 9.75 k), so snapping does not move them
    v, tri = grid_mesh(4, 41, z=lambda x, y: 0.5 * x - 0.25 * y + 3)
    _, depth = render.rasterize(v, tri, np.zeros((len(v), 1), np.float32), 41, 41)
    yy, xx = np.mgrid[:41, :41]
    inside = np.isfinite(depth)
    assert inside.sum() == 39 * 39  # centres 1..39: the right and bottom borders (x, y = 40) are out
    np.testing.assert_allclose(depth[inside], (0.5 * xx - 0.25 * yy + 3)[inside], atol=1e-5)


def cube(centre=(16, 16, 0), half=8.0):
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float32)
    faces = {"x-": [0, 1, 3, 2], "x+": [4, 6, 7, 5], "y-": [0, 4, 5, 1], "y+": [2, 3, 7, 6],
             "z-": [0, 2, 6, 4], "z+": [1, 5, 7, 3]}
    tri, label = [], []
    for k, (name, q) in enumerate(faces.items()):
        tri += [[q[0], q[1], q[2]], [q[0], q[2], q[3]]]
        label += [k, k]
    return corners * half + np.float32(centre), np.array(tri, np.int32), list(faces), np.array(label)


def rotation(yaw: float, pitch: float) -> np.ndarray:
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return rx @ ry


def test_cube_shows_its_three_front_faces():
    v, tri, names, label = cube(centre=(0, 0, 0))
    v = (v @ rotation(0.5, 0.4).T + [16, 16, 0]).astype(np.float32)
    ids, depth = render.rasterize_ids(v, tri, H, W)
    seen = {names[label[i]] for i in np.unique(ids[ids >= 0])}
    normals = {names[label[i]]: np.cross(v[t[1]] - v[t[0]], v[t[2]] - v[t[0]]) for i, t in enumerate(tri)}
    facing = {k for k, n in normals.items() if n[2] > 0}  # towards the viewer (z up = closer)
    assert seen == facing and len(seen) == 3
    # culling back faces changes nothing for a closed convex mesh; culling alone leaves the front
    ids_cull, depth_cull = render.rasterize_ids(v, tri, H, W, cull_backfaces=True)
    np.testing.assert_array_equal(ids, ids_cull)
    np.testing.assert_array_equal(depth, depth_cull)


# -------------------------------------------------------------------------------- edge cases
def test_offscreen_and_partly_offscreen_triangles():
    v = np.array([[-50, -50, 1], [-10, -50, 1], [-50, -10, 1],       # fully outside (top-left)
                  [-20, 10, 2], [60, 12, 2], [10, 70, 2]], np.float32)  # partly outside
    tri = np.array([[0, 1, 2], [3, 4, 5]], np.int32)
    c = np.ones((6, 1), np.float32)
    img, depth = render.rasterize(v, tri, c, H, W)
    ref_img, ref_depth = render.rasterize_reference(v, tri, c, H, W)
    np.testing.assert_array_equal(depth, ref_depth)
    assert np.isfinite(depth).sum() > 0.5 * H * W and set(np.unique(depth)) <= {2.0, -np.inf}
    _, d_off = render.rasterize(v, tri[:1], c, H, W)
    assert not np.isfinite(d_off).any()


def test_degenerate_triangles_draw_nothing():
    v = np.array([[2, 2, 0], [20, 20, 0], [11, 11, 0], [5, 5, 0]], np.float32)  # collinear
    tri = np.array([[0, 1, 2], [0, 0, 1], [3, 3, 3]], np.int32)
    _, depth = render.rasterize(v, tri, np.ones((4, 1), np.float32), H, W)
    assert not np.isfinite(depth).any()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_vertices_are_rejected(bad):
    v, tri, c = random_mesh(0)
    v[7, 1] = bad
    with pytest.raises(ValueError, match="finite.*7"):
        render.rasterize(v, tri, c, H, W)
    with pytest.raises(ValueError, match="finite"):
        render.visibility(v, tri, H, W)
    with pytest.raises(ValueError, match="finite"):
        render.rasterize_reference(v, tri, c, H, W)


def test_huge_coordinates_are_rejected():
    v, tri, c = random_mesh(0)
    v[3, 0] = 3e6
    with pytest.raises(ValueError, match="1048576"):
        render.rasterize(v, tri, c, H, W)


def test_empty_mesh_renders_background():
    bg = np.random.default_rng(0).uniform(0, 1, (H, W, 3)).astype(np.float32)
    img, depth = render.rasterize(np.zeros((0, 3)), np.zeros((0, 3), int), np.zeros((0, 3)), H, W, bg)
    np.testing.assert_array_equal(img, bg)
    assert img is not bg and (depth == -np.inf).all()
    v, _, c = random_mesh(1)
    img, depth = render.rasterize(v, [], c, H, W)
    assert (img == 0).all() and (depth == -np.inf).all()
    assert render.visibility(v, [], H, W).all() == np.all(
        (np.floor(v[:, :2] + 0.5) >= 0).all(1) & (np.floor(v[:, :2] + 0.5) < H).all(1))
    img, depth = render.rasterize(v, [[0, 1, 2]], c, 0, 5)
    assert img.shape == (0, 5, 3) and depth.shape == (0, 5)


@pytest.mark.parametrize("threads", [1, 2])
def test_bad_index_anywhere_is_caught(threads):
    """Every position of the index array is checked (SIMD blocks of four and the tail), threaded or not."""
    v, tri = grid_mesh(60, 64)  # 7200 triangles: 21600 indices
    c = np.ones((len(v), 1), np.float32)
    for pos in (0, 3, 4, 10799, 21598, 21599):
        for bad in (-1, len(v), np.iinfo(np.int32).min, np.iinfo(np.int32).max):
            t = tri.copy()
            t.reshape(-1)[pos] = bad
            with pytest.raises(ValueError, match="indices must lie in"):
                render.rasterize(v, t, c, 64, 64, num_threads=threads)
    render.rasterize(v, tri, c, 64, 64, num_threads=threads)  # the unmodified mesh is fine


def test_dtype_and_layout_conversions():
    v, tri, c = random_mesh(3)
    want = render.rasterize(v, tri, c, H, W)
    got = render.rasterize(np.asfortranarray(v.astype(np.float64)), tri.astype(np.int64)[::1].copy(order="F"),
                           np.asfortranarray(c.astype(np.float64)), H, W, np.zeros((H, W, 3), np.float64))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    strided = np.zeros((len(v), 6), np.float32)
    strided[:, ::2] = v
    np.testing.assert_array_equal(render.rasterize(strided[:, ::2], tri.tolist(), c, H, W)[1], want[1])
    assert want[0].dtype == np.float32 and want[1].dtype == np.float32 and want[0].flags.c_contiguous


def test_wrong_shapes_and_indices_raise():
    v, tri, c = random_mesh(0)
    with pytest.raises(ValueError, match=r"vertices: expected shape \(\?, 3\), got \(30, 2\)"):
        render.rasterize(v[:, :2], tri, c, H, W)
    with pytest.raises(ValueError, match=r"triangles: expected shape \(\?, 3\), got \(40, 4\)"):
        render.rasterize(v, np.c_[tri, tri[:, :1]], c, H, W)
    with pytest.raises(ValueError, match=r"colors: expected shape \(30, \?\), got \(29, 3\)"):
        render.rasterize(v, tri, c[:-1], H, W)
    with pytest.raises(ValueError, match=r"background: expected shape \(32, 32, 3\), got \(32, 31, 3\)"):
        render.rasterize(v, tri, c, H, W, np.zeros((H, W - 1, 3)))
    for bad in (30, -1):
        t = tri.copy()
        t[5, 2] = bad
        with pytest.raises(ValueError, match=r"indices must lie in \[0, 30\)"):
            render.rasterize(v, t, c, H, W)
        with pytest.raises(ValueError, match=r"indices must lie in \[0, 30\)"):
            render.rasterize(v, t.astype(np.int64), c, H, W)
    with pytest.raises(ValueError, match="integer"):
        render.rasterize(v, tri.astype(np.float32), c, H, W)


def test_background_is_not_modified():
    v, tri, c = random_mesh(4)
    bg = np.full((H, W, 3), 0.5, np.float32)
    img, depth = render.rasterize(v, tri, c, H, W, bg)
    assert (bg == 0.5).all()
    np.testing.assert_array_equal(img[~np.isfinite(depth)], 0.5)


# ---------------------------------------------------------------------------- derived renders
def test_visibility_of_an_occluded_mesh():
    back, tri = grid_mesh(6, 32, z=lambda x, y: 0 * x)  # z = 0 plane
    front = back.copy()
    front[:, 2] = 5.0  # closer
    front[:, 0] = front[:, 0] * 0.5  # covers the left half only
    v = np.concatenate([back, front])
    t = np.concatenate([tri, tri + len(back)])
    vis = render.visibility(v, t, H, W)
    x, y = back[:, 0], back[:, 1]
    assert vis[len(back):].all()  # the front sheet is fully visible
    hidden = (x > 1.5) & (x < 14.5) & (y < 30)  # strictly under the front sheet (its bottom row y=31 is open)
    assert not vis[:len(back)][hidden].any() and vis[:len(back)][x > 16.5].all()
    # reference: nearest pixel inside the image, z >= min(z-buffer) - eps over the pixel centres around
    # the vertex (floor and floor + 1 per axis, + 1 only off the centre, inside the image)
    _, depth = render.rasterize_reference(v, t, np.zeros((len(v), 1)), H, W)
    lo = np.floor(v[:, :2]).astype(int)
    hi = np.where(v[:, :2] > lo, lo + 1, lo)
    dmin = np.full(len(v), np.inf, np.float32)
    for yy in (lo[:, 1], hi[:, 1]):
        for xx in (lo[:, 0], hi[:, 0]):
            ok = (xx >= 0) & (xx < W) & (yy >= 0) & (yy < H)
            dmin[ok] = np.minimum(dmin[ok], depth[yy[ok], xx[ok]])
    want = v[:, 2] >= dmin - np.float32(1.0)
    np.testing.assert_array_equal(vis, want)
    moved = v.copy()
    moved[:, 0] += 100
    assert not render.visibility(moved, t, H, W).any()


def test_depth_map_and_pncc():
    v, tri = grid_mesh(4, 32, z=lambda x, y: x)
    d = render.depth_map(v, tri, H, W)
    assert d.shape == (H, W) and d.dtype == np.float32
    assert d[16, 1] == 0 and d[16, 30] == pytest.approx(29 / 30, abs=1e-6)  # (x - 1) / 30
    assert d[0, 0] == 0 and d.max() <= 1
    code = render.make_pncc_code(v)
    assert code.min() == 0 and code.max() == 1 and code.shape == (len(v), 3)
    p = render.pncc(v, tri, code, H, W)
    assert p.shape == (H, W, 3)
    np.testing.assert_allclose(p[16, 30, 0], 29 / 30, atol=1e-6)
    np.testing.assert_allclose(p[16, 30, 1], 15 / 30, atol=1e-6)


def test_vertex_normals_and_shading():
    # a sphere-like bump: the brightest pixel faces the light
    v, tri = grid_mesh(40, 64, z=lambda x, y: np.sqrt(np.maximum(40.0**2 - (x - 32) ** 2 - (y - 32) ** 2, 0)))
    n = render.vertex_normals(v, tri)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1, atol=1e-5)
    centre = np.argmin((v[:, 0] - 32) ** 2 + (v[:, 1] - 32) ** 2)
    np.testing.assert_allclose(n[centre], [0, 0, 1], atol=1e-3)
    for light in ((0, 0, 1), (1, -1, 1)):
        img = render.shade(v, tri, 64, 64, light_dir=light, specular=0.0)
        light = np.asarray(light, float) / np.linalg.norm(light)
        brightest = np.unravel_index(np.argmax(img[..., 0]), img.shape[:2])
        facing = np.argmax(n @ light)
        assert np.hypot(brightest[0] - v[facing, 1], brightest[1] - v[facing, 0]) <= 3
    img = render.shade(v, tri, 64, 64)
    assert img.max() <= 1 and img[32, 32, 0] == pytest.approx(1.0, abs=1e-3)  # 0.3 + 0.6 + 0.1
    # overlay: background kept outside the mesh, alpha-blended inside
    bg = np.full((64, 64, 3), 0.2, np.float32)
    over = render.shade(v, tri, 64, 64, background=bg, alpha=0.5)
    assert (over[0, 0] == 0.2).all()
    np.testing.assert_allclose(over[32, 32], 0.5 * 0.2 + 0.5 * img[32, 32], atol=1e-5)


def test_fade_in_is_the_distance_from_the_outline_over_the_width():
    """A disk of radius 20 in a 64x64 image: 0 outside, about (20 - r) / width inside, 1 deeper than the width; the
    image border is no outline (a mask that fills the image is 1 everywhere); a per-pixel width of 0 gives 1."""
    from mfirrn.render.raster import fade_in

    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(xx - 32, yy - 32)
    disk = r <= 20
    f = fade_in(disk, 8.0)
    assert f.dtype == np.float32 and (f[~disk] == 0).all() and (f[r <= 11] == 1).all()
    ring = disk & (r > 13)  # within the width of the outline: the distance to it, over 8
    np.testing.assert_allclose(f[ring], np.clip((20.5 - r[ring]) / 8, 0, 1), atol=0.1)
    assert (fade_in(np.ones((10, 12), bool), 5.0) == 1).all()
    widths = np.where(xx < 32, 8.0, 0.0).astype(np.float32)
    g = fade_in(disk, widths)
    assert np.array_equal(g[:, :32], f[:, :32]) and (g[:, 32:][disk[:, 32:]] == 1).all() and (g[~disk] == 0).all()
    assert (fade_in(disk, 0.0) == disk).all() and not fade_in(np.zeros((5, 5), bool), 3.0).any()


def test_shade_feather_fades_the_mesh_in_from_its_outline():
    """``feather``: the blend's alpha times the fade-in; pixels deeper than the width and the background outside
    are those of the hard-edged overlay, bit for bit, and an outline pixel keeps more of the background."""
    from mfirrn.render.raster import fade_in

    v, tri = grid_mesh(40, 64, z=lambda x, y: np.sqrt(np.maximum(40.0**2 - (x - 32) ** 2 - (y - 32) ** 2, 0)))
    bg = np.full((64, 64, 3), 0.2, np.float32)
    hard = render.shade(v, tri, 64, 64, background=bg, alpha=0.5)
    soft = render.shade(v, tri, 64, 64, background=bg, alpha=0.5, feather=6.0)
    plain = render.shade(v, tri, 64, 64)
    covered = np.isfinite(render.rasterize(v, tri, np.ones((len(v), 1), np.float32), 64, 64)[1])
    f = fade_in(covered, 6.0)
    assert np.array_equal(soft[f == 1], hard[f == 1]) and np.array_equal(soft[~covered], bg[~covered])
    edge = covered & (f < 1)
    assert edge.any()
    np.testing.assert_allclose(soft[edge], ((1 - 0.5 * f[edge]))[:, None] * 0.2 + (0.5 * f[edge])[:, None]
                               * plain[edge], atol=1e-6)
    assert np.array_equal(render.shade(v, tri, 64, 64, background=bg, alpha=0.5, feather=np.full((64, 64), 6.0)), soft)
    with pytest.raises(ValueError, match="feather"):
        render.shade(v, tri, 64, 64, background=bg, feather=np.ones((32, 64)))


def test_render_shaded_fades_each_face_over_its_own_size():
    """The fade-in width is RENDER_FEATHER times each face's mesh size: a scalar for one face, a map for several
    (the larger face where their boxes overlap, 0 elsewhere)."""
    from types import SimpleNamespace

    from mfirrn.vis.overlays import RENDER_FEATHER, feather_widths

    small = SimpleNamespace(vertices=np.array([[10.0, 10, 0], [30, 20, 0], [20, 30, 0]]))  # size 20
    large = SimpleNamespace(vertices=np.array([[25.0, 25, 0], [75, 40, 0], [40, 60, 0]]))  # size 50
    assert feather_widths((100, 100), [small]) == pytest.approx(RENDER_FEATHER * 20)
    w = feather_widths((100, 100), [large, small], feather=0.1)
    assert w.shape == (100, 100) and w[15, 15] == pytest.approx(2.0) and w[50, 50] == pytest.approx(5.0)
    assert w[27, 27] == pytest.approx(5.0) and w[90, 90] == 0  # the overlap goes to the larger face


def test_shade_lights_in_pieces_and_takes_known_normals(monkeypatch):
    """Three separate bumps: their normals computed bump by bump (mfirrn.vis.overlays.face_normals, as for the
    faces of a crowd) are the merged mesh's, bit for bit; shade with them, and shade lighting its vertices a few at
    a time, give the same image, bit for bit; normals of the wrong shape are refused."""
    from types import SimpleNamespace

    from mfirrn.render import raster
    from mfirrn.vis.overlays import face_normals, merge_face_meshes

    v, tri = grid_mesh(20, 30, z=lambda x, y: np.sqrt(np.maximum(20.0**2 - (x - 15) ** 2 - (y - 15) ** 2, 0)))
    pieces = [SimpleNamespace(vertices=v + [dx, dy, 0], triangles=tri) for dx, dy in ((0, 0), (30, 5), (12, 30))]
    mv, mt = merge_face_meshes(pieces)
    normals = face_normals(pieces)
    assert normals.dtype == np.float32 and np.array_equal(normals, render.vertex_normals(mv, mt))
    bg = np.full((64, 64, 3), 0.2, np.float32)
    whole = render.shade(mv, mt, 64, 64, background=bg)
    assert np.array_equal(render.shade(mv, mt, 64, 64, background=bg, normals=normals), whole)
    monkeypatch.setattr(raster, "_SHADE_CHUNK", 7)  # pieces that split every bump
    assert np.array_equal(render.shade(mv, mt, 64, 64, background=bg), whole)
    with pytest.raises(ValueError, match="normals"):
        render.shade(mv, mt, 64, 64, normals=normals[:-1])


def test_uv_texture():
    v, tri = grid_mesh(3, 32)
    uv = np.c_[(v[:, 0] - 1) / 30, 1 - (v[:, 1] - 1) / 30]  # v up: top row has v = 1
    tex = np.zeros((4, 8, 3), np.float32)
    tex[..., 0] = np.arange(8)[None, :]  # red = texture column
    tex[..., 1] = np.arange(4)[:, None]  # green = texture row
    out = render.render_uv_texture(v, tri, uv, tex, H, W)
    np.testing.assert_allclose(out[1, 1], [0, 0, 0], atol=1e-5)
    np.testing.assert_allclose(out[16, 16, 0], 7 * 15 / 30, atol=1e-4)
    np.testing.assert_allclose(out[16, 16, 1], 3 * 15 / 30, atol=1e-4)
    assert (out[0, 0] == 0).all() and out.shape == (H, W, 3)
    grey = render.render_uv_texture(v, tri, uv, tex[..., 0], H, W, v_up=False)
    assert grey.shape == (H, W, 1)


def test_render_batch_equals_a_loop():
    meshes = [random_mesh(s) for s in range(6)]
    want = [render.rasterize(v, t, c, H, W) for v, t, c in meshes]
    for n in (1, 3):
        got = render.render_batch(meshes, H, W, num_threads=n)
        for (gi, gd), (wi, wd) in zip(got, want):
            np.testing.assert_array_equal(gi, wi)
            np.testing.assert_array_equal(gd, wd)
    bgs = [np.full((20, 24, 3), k, np.float32) for k in range(6)]
    got = render.render_batch([render.Mesh(*m) for m in meshes], backgrounds=bgs)
    for (gi, gd), (v, t, c), bg in zip(got, meshes, bgs):
        wi, wd = render.rasterize(v, t, c, 20, 24, bg)
        np.testing.assert_array_equal(gi, wi)
    with pytest.raises(ValueError, match="height and width"):
        render.render_batch(meshes)


def test_gil_is_released():
    """Two Python threads rendering a large mesh overlap in time (single-threaded kernels each)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 cores")
    v, tri = grid_mesh(300, 1000, z=lambda x, y: x / 100)
    c = np.ones((len(v), 3), np.float32)
    spans = []

    def work():
        t0 = time.perf_counter()
        for _ in range(3):
            render.rasterize(v, tri, c, 1000, 1000, num_threads=1)
        spans.append((t0, time.perf_counter()))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (a0, a1), (b0, b1) = sorted(spans)
    assert b0 < a1  # the second thread started rendering before the first finished


# --------------------------------------------------------------------------- the real BFM mesh
@pytest.fixture(scope="module")
def bfm_mesh():
    if not os.environ.get("MFIRRN_ASSET_MIRROR"):
        pytest.skip("MFIRRN_ASSET_MIRROR is not set: the BFM assets are not available offline")
    from mfirrn.geometry.bfm import load_bfm_arrays

    a = load_bfm_arrays("full")
    u = a["u"].reshape(-1, 3).astype(np.float64)
    u[:, 1] *= -1  # y up -> y down, as 3DDFA's image frame (z unchanged: larger = closer)
    lo, hi = u[:, :2].min(0), u[:, :2].max(0)
    v = (u - np.r_[(lo + hi) / 2, 0]) * (100 / (hi - lo).max())
    v[:, :2] += 60
    return v.astype(np.float32), a["triangles"].astype(np.int32)


def test_bfm_mesh_front_faces_and_visibility(bfm_mesh):
    v, tri = bfm_mesh
    ids, depth = render.rasterize_ids(v, tri, 120, 120)
    ids_cull, depth_cull = render.rasterize_ids(v, tri, 120, 120, cull_backfaces=True)
    covered = ids >= 0
    assert covered.mean() > 0.3
    # the visible surface of a frontal face consists of front faces: culling changes almost nothing
    assert (ids_cull == ids).mean() > 0.99
    n = render.vertex_normals(v, tri)
    vis = render.visibility(v, tri, 120, 120)
    assert 0.3 < vis.mean() < 1
    assert (n[vis, 2] > 0).mean() > 0.9  # visible vertices face the viewer, but for the outline's fold


@pytest.mark.slow
def test_bfm_mesh_matches_reference(bfm_mesh):
    v, tri = bfm_mesh
    c = np.random.default_rng(0).uniform(0, 1, (len(v), 3)).astype(np.float32)
    img, depth = render.rasterize(v, tri, c, 120, 120)
    ref_img, ref_depth = render.rasterize_reference(v, tri, c, 120, 120)
    np.testing.assert_array_equal(depth, ref_depth)
    np.testing.assert_array_equal(img, ref_img)
