"""Mesh rendering: a fast z-buffer rasterizer (C++/OpenMP in the private ``mfirrn.render._raster``) and the
renders built on it — depth maps, PNCC, shaded overlays, textures, visibility — numpy in, numpy out.

Conventions (every function here, and the numpy twin :func:`rasterize_reference`):

* ``vertices``: (N, 3) image pixels — x to the right, y **down**, z larger = **closer** to the viewer
  (3DDFA's convention: :meth:`mfirrn.geometry.bfm.MorphableModel.vertices` output goes in unchanged).
  Any real dtype and memory order is accepted; it is converted to C-contiguous float32.
* ``triangles``: (T, 3) 0-based vertex indices, any integer dtype (int32 C-contiguous avoids a copy).
* **Pixel centres are integer coordinates**: pixel ``[i, j]`` (row i, column j) is sampled at
  ``(x, y) = (j, i)``, so a vertex at x=10 lands in column 10 (3DDFA). Coverage is exact: x and y are
  snapped to 1/256 pixel, ``floor(v * 256 + 0.5)``, and tested with 64-bit integer edge functions.
* **Tie rule (top-left)**: a pixel centre exactly on an edge belongs to the triangle for which the
  edge is a *left* edge (the triangle's interior lies to the right of it) or a *top* edge (horizontal,
  interior below). Two triangles sharing an edge therefore never both draw, nor both miss, a pixel
  centre on it.
* **Depth test**: z is interpolated barycentrically, rounded to float32, and a fragment wins when its
  depth is strictly larger, so at equal depth the lower triangle index wins. ``depth`` is ``-inf``
  where no triangle covers the pixel.
* **Faces**: both sides are rasterized by default. A triangle is a *front* face when its normal
  ``(v1 - v0) x (v2 - v0)`` has z > 0 (towards the viewer) — equivalently, it appears clockwise on
  screen (y down). BFM triangles in 3DDFA's image frame are front faces on the visible side of the
  face. ``cull_backfaces=True`` skips the others. Zero-area triangles (after snapping) draw nothing.
* Non-finite vertices, |x| or |y| above 2**20 pixels, out-of-range indices and wrong shapes raise
  ``ValueError``. An empty mesh renders the background.
* ``num_threads``: ``None`` = the package's threading policy (:mod:`mfirrn.io.threads`): the process's
  thread budget (``--threads``, ``OMP_NUM_THREADS``, else the cores its affinity and cgroup quota allow),
  lowered at each call to the cores that no other runnable task holds right now (one on a busy machine,
  where a parallel render would wait for its descheduled threads). An int is used as given. The GIL is
  released while the compiled code runs.

Images are float32 (H, W, C), in whatever units the colours / background use (renders built here
use [0, 1]; pass ``photo / 255`` as background for a uint8 photo).

A right triangle at (1, 1): of the 36 pixel centres with x, y >= 1 and x + y <= 9, the 8 on the
hypotenuse x + y = 9 (a right edge) are not drawn; those on the top edge y = 1 and left edge x = 1 are.

>>> v = np.array([[1, 1, 1], [8, 1, 1], [1, 8, 1]], np.float32)
>>> image, depth = rasterize(v, [[0, 1, 2]], np.ones((3, 1), np.float32), 10, 10)
>>> image.shape, int(np.isfinite(depth).sum())
((10, 10, 1), 28)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np

from mfirrn.io.checks import check_shape
from mfirrn.io.threads import current_threads, idle_cores
from mfirrn.render import _raster

__all__ = [
    "Mesh",
    "rasterize",
    "rasterize_ids",
    "rasterize_reference",
    "depth_map",
    "make_pncc_code",
    "pncc",
    "vertex_normals",
    "shade",
    "render_uv_texture",
    "visibility",
    "render_batch",
    "COORD_LIMIT",
]

COORD_LIMIT = 2.0**20  # pixels; larger |x| or |y| would overflow the 64-bit edge functions
_SUBPIXEL = 256  # fixed-point steps per pixel
ArrayLike = Union[np.ndarray, Sequence]


# ----------------------------------------------------------------------------------------------
# argument preparation: the wrapper owns dtype, contiguity and allocation; the .pyx stays minimal
# ----------------------------------------------------------------------------------------------
def _vertices(vertices: ArrayLike) -> np.ndarray:
    v = np.asarray(vertices)
    if v.size == 0 and v.ndim < 2:
        v = v.reshape(0, 3)
    check_shape(v, (None, 3), "vertices")
    if not np.issubdtype(v.dtype, np.number) or np.issubdtype(v.dtype, np.complexfloating):
        raise ValueError(f"vertices: expected a real dtype, got {v.dtype}")
    return np.ascontiguousarray(v, dtype=np.float32)


def _triangles(triangles: ArrayLike, n_vertices: int) -> np.ndarray:
    t = np.asarray(triangles)
    if t.size == 0 and t.ndim < 2:
        t = t.reshape(0, 3)
    check_shape(t, (None, 3), "triangles")
    if t.dtype == np.int32:
        return np.ascontiguousarray(t)
    if t.size and not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"triangles: expected an integer dtype, got {t.dtype}")
    if t.size and (t.min() < 0 or t.max() >= n_vertices):  # check before int32 could wrap
        _bad_index(t, n_vertices)
    return np.ascontiguousarray(t, dtype=np.int32)


def _bad_index(t: np.ndarray, n_vertices: int) -> None:
    raise ValueError(f"triangles: indices must lie in [0, {n_vertices}) for {n_vertices} vertices, "
                     f"got min {int(t.min())}, max {int(t.max())}")


def _size(height: int, width: int) -> tuple[int, int]:
    h, w = int(height), int(width)
    if h < 0 or w < 0 or h > COORD_LIMIT or w > COORD_LIMIT:
        raise ValueError(f"image size must be in [0, {int(COORD_LIMIT)}], got {h}x{w}")
    return h, w


def _colors(colors: ArrayLike, n_vertices: int, name: str = "colors") -> np.ndarray:
    c = np.asarray(colors)
    check_shape(c, (n_vertices, None), name)
    if c.shape[1] < 1:
        raise ValueError(f"{name}: expected at least one channel, got shape {c.shape}")
    return np.ascontiguousarray(c, dtype=np.float32)


def _canvas(background: Optional[ArrayLike], h: int, w: int, channels: int) -> np.ndarray:
    if background is None:
        return np.zeros((h, w, channels), np.float32)
    bg = np.asarray(background)
    check_shape(bg, (h, w, channels), "background")
    return np.array(bg, dtype=np.float32, order="C", copy=True)


def _threads(num_threads: Optional[int]) -> int:
    """OpenMP threads for one call: ``num_threads`` as given, else the policy's budget capped by the idle cores."""
    return idle_cores(current_threads()) if num_threads is None else max(1, int(num_threads))


def _raise_status(status: int, v: np.ndarray, t: np.ndarray) -> None:
    if status & 1:
        bad = np.flatnonzero(~np.isfinite(v).all(axis=1))
        raise ValueError(f"vertices must be finite; NaN/inf at {bad.size} vertices, first indices {bad[:5].tolist()}")
    if status & 2:
        bad = np.flatnonzero((np.abs(v[:, :2]) > COORD_LIMIT).any(axis=1))
        raise ValueError(f"vertices: |x| and |y| must be <= {int(COORD_LIMIT)} pixels; "
                         f"{bad.size} vertices exceed it, first indices {bad[:5].tolist()}")
    if status & 4:
        _bad_index(t, v.shape[0])
    if status:
        raise RuntimeError(f"mfirrn.render._raster failed with status {status}")


def _check_finite(v: np.ndarray) -> None:
    """Validation for meshes that never reach the compiled code (empty images)."""
    if v.size and not np.isfinite(v).all():
        _raise_status(1, v, np.zeros((0, 3), np.int32))
    if v.size and (np.abs(v[:, :2]) > COORD_LIMIT).any():
        _raise_status(2, v, np.zeros((0, 3), np.int32))


# ----------------------------------------------------------------------------------------------
# core
# ----------------------------------------------------------------------------------------------
def rasterize(vertices: ArrayLike, triangles: ArrayLike, colors: ArrayLike, height: int, width: int,
              background: Optional[ArrayLike] = None, *, cull_backfaces: bool = False,
              num_threads: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer render of a mesh with per-vertex colours, interpolated barycentrically.

    Args:
        vertices: (N, 3) image pixels x, y (y down), z (larger = closer); see the module conventions.
        triangles: (T, 3) vertex indices.
        colors: (N, C) per-vertex values, C >= 1 (RGB, grey, UV, PNCC, ...).
        height, width: output size in pixels.
        background: optional (H, W, C) image drawn onto (copied, not modified); default zeros.
        cull_backfaces: skip triangles whose normal points away from the viewer.
        num_threads: OpenMP threads; None = the threading policy (module conventions).

    Returns:
        ``image`` float32 (H, W, C): background with the mesh drawn on it, and
        ``depth`` float32 (H, W): interpolated z of the visible surface, ``-inf`` where empty.
    """
    v = _vertices(vertices)
    t = _triangles(triangles, v.shape[0])
    h, w = _size(height, width)
    c = _colors(colors, v.shape[0])
    if background is None and h and w and v.shape[0]:  # the compiled code zeroes it, band by band
        image = np.empty((h, w, c.shape[1]), np.float32)
    else:
        image = _canvas(background, h, w, c.shape[1])
    depth, ids = _run(v, t, h, w, cull_backfaces, num_threads, c, image, clear_image=background is None)
    return image, depth


def rasterize_ids(vertices: ArrayLike, triangles: ArrayLike, height: int, width: int, *,
                  cull_backfaces: bool = False, num_threads: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """Depth-only pass: ``triangle_id`` int32 (H, W) (index of the visible triangle, -1 where empty) and
    ``depth`` float32 (H, W) (``-inf`` where empty). ``triangle_id >= 0`` is the mesh's mask."""
    v = _vertices(vertices)
    t = _triangles(triangles, v.shape[0])
    h, w = _size(height, width)
    depth, ids = _run(v, t, h, w, cull_backfaces, num_threads, None, None)
    return ids, depth


def _run(v, t, h, w, cull, num_threads, colors, image, clear_image=False):
    depth = np.empty((h, w), np.float32)
    ids = np.empty((h, w), np.int32)
    if h == 0 or w == 0:
        _check_finite(v)
        return depth, ids
    if t.shape[0] >= 2**31:
        raise ValueError(f"triangles: at most 2**31 - 1 triangles, got {t.shape[0]}")
    status = _raster.rasterize(v, t, h, w, bool(cull), _threads(num_threads), depth, ids, colors, image,
                               bool(clear_image))
    _raise_status(status, v, t)
    return depth, ids


def visibility(vertices: ArrayLike, triangles: ArrayLike, height: int, width: int, *, eps: float = 1.0,
               cull_backfaces: bool = False, num_threads: Optional[int] = None) -> np.ndarray:
    """Per-vertex visibility (N,) bool from the z-buffer of the mesh itself.

    Vertex ``v`` is visible when its nearest pixel centre ``(floor(y + 0.5), floor(x + 0.5))`` lies in
    the image and ``z_v >= min(depth) - eps`` over the pixel centres around it (its bilinear footprint:
    ``floor`` and ``floor + 1`` of x and of y, the ``+ 1`` only when the vertex is off the centre; those
    inside the image), with the z-buffer in the units of z (pixels for 3DDFA vertices). A pixel
    centre sees the vertex's own surface up to a pixel away, so on steep surfaces (nose sides, cheek
    contour, jaw) its depth alone would hide visible vertices; the footprint's farthest depth bounds the
    own surface at the vertex, while an occluder covers all four centres. A centre that no triangle
    covers has depth -inf (nothing hides the vertex); a vertex whose nearest centre is outside the image
    is not visible. ``eps`` absorbs curvature. Only occlusion is tested, not the facing of the surface:
    a vertex on the outline's fold may face away from the camera (see :func:`vertex_normals`).
    """
    v = _vertices(vertices)
    t = _triangles(triangles, v.shape[0])
    h, w = _size(height, width)
    out = np.zeros(v.shape[0], np.uint8)
    if h == 0 or w == 0:
        _check_finite(v)
        return out.astype(bool)
    depth = np.empty((h, w), np.float32)
    ids = np.empty((h, w), np.int32)
    status = _raster.visibility(v, t, h, w, bool(cull_backfaces), _threads(num_threads), float(eps), depth, ids, out)
    _raise_status(status, v, t)
    return out.view(bool)


# ----------------------------------------------------------------------------------------------
# the slow reference twin (numpy, one triangle at a time), tested against the compiled kernel
# ----------------------------------------------------------------------------------------------
def rasterize_reference(vertices: ArrayLike, triangles: ArrayLike, colors: ArrayLike, height: int, width: int,
                        background: Optional[ArrayLike] = None, *, cull_backfaces: bool = False,
                        return_ids: bool = False):
    """Obviously-correct numpy twin of :func:`rasterize` (same conventions, same arithmetic; slow).

    For each triangle in index order: snap x, y to 1/256 pixel, skip zero area (and back faces when
    culling), orient to positive area, evaluate the three integer edge functions at every pixel centre of
    its bounding box, keep the centres inside by the top-left rule, interpolate z and keep fragments
    strictly closer than the z-buffer. Colours are then interpolated at every covered pixel from the
    winning triangle. Returns ``(image, depth)``, plus ``triangle_id`` with ``return_ids=True``.
    """
    v = _vertices(vertices)
    t = _triangles(triangles, v.shape[0]).astype(np.int64)
    h, w = _size(height, width)
    c = _colors(colors, v.shape[0])
    image = _canvas(background, h, w, c.shape[1])
    _check_finite(v)
    fixed = np.floor(v[:, :2].astype(np.float64) * _SUBPIXEL + 0.5).astype(np.int64)
    z = v[:, 2].astype(np.float64)
    depth = np.full((h, w), -np.inf, np.float32)
    ids = np.full((h, w), -1, np.int32)
    for k in range(t.shape[0]):
        i0, i1, i2 = (int(i) for i in t[k])
        area = _edge_function(fixed[i1], fixed[i2], fixed[i0])  # twice the signed area
        if area == 0 or (area < 0 and cull_backfaces):
            continue
        if area < 0:
            i1, i2, area = i2, i1, -area
        corners = fixed[[i0, i1, i2]]
        # pixel centres in the bounding box: ceil(min / 256) .. floor(max / 256), clipped to the image
        lo = np.maximum(-(-corners.min(axis=0) // _SUBPIXEL), 0)
        hi = np.minimum(corners.max(axis=0) // _SUBPIXEL, [w - 1, h - 1])
        if (lo > hi).any():
            continue
        py, px = (g.ravel() for g in np.mgrid[lo[1]:hi[1] + 1, lo[0]:hi[0] + 1])
        centres = np.stack([px, py], axis=1) * _SUBPIXEL
        inside = np.ones(px.shape, bool)
        e = []
        for a, b in ((i1, i2), (i2, i0), (i0, i1)):  # edge opposite vertex i0, i1, i2
            ek = _edge_function(fixed[a], fixed[b], centres)
            normal = (fixed[a][1] - fixed[b][1], fixed[b][0] - fixed[a][0])  # interior normal (A, B)
            top_left = normal[0] > 0 or (normal[0] == 0 and normal[1] > 0)
            inside &= (ek > 0) | ((ek == 0) & top_left)
            e.append(ek.astype(np.float64))
        zk = ((e[0] * z[i0] + e[1] * z[i1] + e[2] * z[i2]) * (1.0 / float(area))).astype(np.float32)
        win = inside & (zk > depth[py, px])
        depth[py[win], px[win]] = zk[win]
        ids[py[win], px[win]] = k
    py, px = np.nonzero(ids >= 0)
    if py.size:
        # weights E_i / area with the triangle's own vertex order and signed area (orientation-free)
        tri = t[ids[py, px]]
        centres = np.stack([px, py], axis=1).astype(np.int64) * _SUBPIXEL
        a, b, cc = fixed[tri[:, 0]], fixed[tri[:, 1]], fixed[tri[:, 2]]
        inv = 1.0 / _edge_function(a, b, cc).astype(np.float64)
        bary = [_edge_function(p, q, centres).astype(np.float64) * inv for p, q in ((b, cc), (cc, a), (a, b))]
        col = c.astype(np.float64)
        image[py, px] = (bary[0][:, None] * col[tri[:, 0]] + bary[1][:, None] * col[tri[:, 1]]
                         + bary[2][:, None] * col[tri[:, 2]]).astype(np.float32)
    return (image, depth, ids) if return_ids else (image, depth)


def _edge_function(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Integer edge function of the directed edge a -> b at points p (all (..., 2) int64, 1/256 px):
    ``(bx - ax)(py - ay) - (by - ay)(px - ax)``, positive on the interior side of a positive-area triangle."""
    a, b, p = np.asarray(a), np.asarray(b), np.asarray(p)
    return (b[..., 0] - a[..., 0]) * (p[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (p[..., 0] - a[..., 0])


# ----------------------------------------------------------------------------------------------
# renders built on the rasterizer
# ----------------------------------------------------------------------------------------------
def depth_map(vertices: ArrayLike, triangles: ArrayLike, height: int, width: int, *,
              background: Optional[ArrayLike] = None, cull_backfaces: bool = False,
              num_threads: Optional[int] = None) -> np.ndarray:
    """Normalised depth image float32 (H, W), as 3DDFA's ``depth``: each vertex gets the grey value
    ``(z - z.min()) / (z.max() - z.min())`` over *all* the mesh's vertices (1 = closest vertex,
    0 = farthest; 1 everywhere if z is constant), interpolated over the visible surface. Uncovered
    pixels keep ``background`` (H, W) (default 0). Draw several faces by passing the previous result as
    ``background`` (later meshes overwrite earlier ones, as in 3DDFA).

    >>> v = np.array([[0, 0, 0], [9, 0, 0], [0, 9, 9]], np.float32)   # z grows downwards
    >>> d = depth_map(v, [[0, 1, 2]], 10, 10)
    >>> [round(float(d[y, 0]), 3) for y in (0, 3, 6)]
    [0.0, 0.333, 0.667]
    """
    v = _vertices(vertices)
    z = v[:, 2].astype(np.float64)
    if z.size and z.max() > z.min():
        grey = (z - z.min()) / (z.max() - z.min())
    else:
        grey = np.ones_like(z)
    h, w = _size(height, width)
    bg = None if background is None else np.asarray(background)
    if bg is not None:
        check_shape(bg, (h, w), "background")
        bg = bg[..., None]
    image, _ = rasterize(v, triangles, grey[:, None].astype(np.float32), h, w, bg,
                         cull_backfaces=cull_backfaces, num_threads=num_threads)
    return image[..., 0]


def make_pncc_code(reference_vertices: ArrayLike) -> np.ndarray:
    """PNCC colour code (N, 3) float32 in [0, 1]: each coordinate of a reference shape (3DDFA: the BFM
    mean shape, ``bfm.u.reshape(-1, 3)``) min-max normalised over the vertices, channels (x, y, z)."""
    u = np.asarray(reference_vertices, np.float64)
    check_shape(u, (None, 3), "reference_vertices")
    lo, hi = u.min(axis=0), u.max(axis=0)
    return ((u - lo) / np.where(hi > lo, hi - lo, 1.0)).astype(np.float32)


def pncc(vertices: ArrayLike, triangles: ArrayLike, pncc_code: ArrayLike, height: int, width: int, *,
         background: Optional[ArrayLike] = None, cull_backfaces: bool = False,
         num_threads: Optional[int] = None) -> np.ndarray:
    """Projected Normalized Coordinate Code image float32 (H, W, 3): the mesh coloured by ``pncc_code``
    (N, 3) in [0, 1] (see :func:`make_pncc_code`), channels (x, y, z) of the reference shape — reverse
    them (``[..., ::-1]``) for OpenCV's BGR order. Uncovered pixels keep ``background`` (default 0)."""
    image, _ = rasterize(vertices, triangles, _colors(pncc_code, np.asarray(vertices).shape[0], "pncc_code"),
                         height, width, background, cull_backfaces=cull_backfaces, num_threads=num_threads)
    return image


def vertex_normals(vertices: ArrayLike, triangles: ArrayLike) -> np.ndarray:
    """Unit vertex normals (N, 3) float32: the area-weighted sum of the normals
    ``(v1 - v0) x (v2 - v0)`` of the triangles around each vertex (zero for a vertex in no
    non-degenerate triangle). For BFM meshes in 3DDFA's image frame they point out of the face, so the
    visible side has z > 0 (towards the viewer).

    >>> vertex_normals([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]])[0].tolist()
    [0.0, 0.0, 1.0]
    """
    v = _vertices(vertices).astype(np.float64)
    t = _triangles(triangles, v.shape[0])
    _check_finite(v)
    a, b, c = v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]
    face = np.cross(b - a, c - a)
    n = np.zeros_like(v)
    for k in range(3):
        n[:, k] = sum(np.bincount(t[:, j], weights=face[:, k], minlength=v.shape[0]) for j in range(3))
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return (n / np.where(norm > 0, norm, 1.0)).astype(np.float32)


# vertices lit at a time by shade (its float64 temporaries stay in cache)
_SHADE_CHUNK = 1 << 16


def fade_in(covered: np.ndarray, width: Union[float, np.ndarray]) -> np.ndarray:
    """How far each pixel of ``covered`` (H, W) bool lies inside it, as a fraction of ``width`` (pixels; a scalar or
    a per-pixel (H, W) map) -> (H, W) float32 in [0, 1]: the Euclidean distance to the nearest uncovered pixel
    (OpenCV's 5x5 approximation) over ``width``, clipped to 1; 0 on uncovered pixels. The image border is not an
    edge (a mesh cut by it does not fade there). A width of 0 gives 1 on every covered pixel.

    >>> m = np.zeros((1, 7), bool); m[0, 1:] = True
    >>> fade_in(m, 4.0).round(2).tolist()
    [[0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]]
    """
    import cv2

    out = np.zeros(covered.shape, np.float32)
    rows, cols = np.flatnonzero(covered.any(1)), np.flatnonzero(covered.any(0))
    if not len(rows):
        return out
    # the covered pixels' box and one uncovered row / column around it (not past the image border)
    y0, y1 = max(rows[0] - 1, 0), min(rows[-1] + 2, covered.shape[0])
    x0, x1 = max(cols[0] - 1, 0), min(cols[-1] + 2, covered.shape[1])
    inside = np.ascontiguousarray(covered[y0:y1, x0:x1], np.uint8)
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, 5)  # 0 on uncovered pixels
    w = np.asarray(width, np.float32)
    if w.ndim == 2:
        w = w[y0:y1, x0:x1]
        np.divide(dist, w, out=dist, where=w > 0)
        dist[w <= 0] = 1.0
        np.minimum(dist, inside, out=dist)  # 0 again on the uncovered pixels
    elif w > 0:
        dist /= w  # as the map's division, to the bit
    else:
        dist = inside.astype(np.float32)
    np.minimum(dist, 1.0, out=out[y0:y1, x0:x1])
    return out


def shade(vertices: ArrayLike, triangles: ArrayLike, height: int, width: int, *,
          light_dir: Sequence[float] = (0.0, 0.0, 1.0), ambient: float = 0.3, diffuse: float = 0.6,
          specular: float = 0.1, shininess: float = 5.0, colors: Optional[ArrayLike] = None,
          background: Optional[ArrayLike] = None, alpha: float = 0.6, cull_backfaces: bool = False,
          num_threads: Optional[int] = None, normals: Optional[ArrayLike] = None,
          feather: Union[float, ArrayLike] = 0.0) -> np.ndarray:
    """Phong-shaded render float32 (H, W, C), by default 3DDFA_V2's grey mesh overlay.

    Per vertex (Gouraud), with the unit normal ``n`` (:func:`vertex_normals`), the unit direction
    *towards* the light ``l`` (``light_dir``, image axes: x right, y down, z towards the viewer) and the
    orthographic view direction (0, 0, 1)::

        intensity = clip(ambient + diffuse * max(n.l, 0) + specular * max(r.view, 0) ** shininess, 0, 1)

    with ``r = 2 (n.l) n - l`` (no specular where n.l <= 0); vertex colour = ``colors * intensity``
    (``colors`` (N, C), default white 1.0). Without ``background`` the render is on zeros. With a
    ``background`` (H, W, C) (e.g. ``photo / 255``) the mesh is blended onto it,
    ``(1 - alpha) * background + alpha * render`` on covered pixels, the background elsewhere; ``feather`` (pixels,
    a scalar or an (H, W) map) fades the mesh in from its outline over that distance (``alpha`` times
    :func:`fade_in`), which softens the steps of the BFM mesh's cut edge on large faces. ``normals``: the unit
    vertex normals (N, 3) when already known (default: :func:`vertex_normals` of the mesh; a mesh of many separate
    pieces can pass theirs, computed piece by piece).
    """
    v = _vertices(vertices)
    t = _triangles(triangles, v.shape[0])
    h, w = _size(height, width)
    channels = 3 if background is None else np.asarray(background).shape[-1]
    base = np.ones((v.shape[0], channels), np.float32) if colors is None else _colors(colors, v.shape[0])
    light = np.asarray(light_dir, np.float64)
    check_shape(light, (3,), "light_dir")
    if not np.linalg.norm(light) > 0:
        raise ValueError("light_dir must be a non-zero vector")
    light = light / np.linalg.norm(light)
    normals = vertex_normals(v, t) if normals is None else np.asarray(normals)
    check_shape(normals, (v.shape[0], 3), "normals")
    vc = np.empty(base.shape, np.float32)
    for s in range(0, v.shape[0], _SHADE_CHUNK):  # per vertex: in cache-sized pieces (a crowd has millions)
        n = normals[s:s + _SHADE_CHUNK].astype(np.float64)
        ndotl = n @ light
        r = 2.0 * ndotl[:, None] * n - light
        spec = np.where(ndotl > 0, np.clip(r[:, 2], 0.0, None) ** shininess, 0.0)
        intensity = np.clip(ambient + diffuse * np.clip(ndotl, 0.0, None) + specular * spec, 0.0, 1.0)
        vc[s:s + _SHADE_CHUNK] = base[s:s + _SHADE_CHUNK] * intensity[:, None]
    if background is None:
        image, _ = rasterize(v, t, vc, h, w, cull_backfaces=cull_backfaces, num_threads=num_threads)
        return image
    bg = _canvas(background, h, w, vc.shape[1])
    image, depth = rasterize(v, t, vc, h, w, bg, cull_backfaces=cull_backfaces, num_threads=num_threads)
    covered = np.isfinite(depth)
    a: Union[float, np.ndarray] = alpha
    widths = np.asarray(feather, np.float32)
    if widths.ndim:
        check_shape(widths, (h, w), "feather")
    if np.any(widths > 0):
        a = (alpha * fade_in(covered, widths)[covered])[:, None]
    bg[covered] = (1.0 - a) * bg[covered] + a * image[covered]
    return bg


def render_uv_texture(vertices: ArrayLike, triangles: ArrayLike, uv: ArrayLike, texture: ArrayLike, height: int,
                      width: int, *, background: Optional[ArrayLike] = None, v_up: bool = True,
                      cull_backfaces: bool = False, num_threads: Optional[int] = None) -> np.ndarray:
    """Textured render float32 (H, W, C) from a UV map: ``uv`` (N, 2) per-vertex texture coordinates in
    [0, 1] are interpolated per pixel, then ``texture`` (Ht, Wt, C) or (Ht, Wt) is sampled bilinearly
    (clamped at the border) at column ``u * (Wt - 1)`` and row ``(1 - v) * (Ht - 1)`` (``v_up=True``,
    3DDFA_V2's UV convention: v = 0 is the bottom row) or ``v * (Ht - 1)`` (``v_up=False``).
    Uncovered pixels keep ``background`` (default 0). For per-vertex colours use :func:`rasterize`."""
    v = _vertices(vertices)
    uvc = _colors(uv, v.shape[0], "uv")
    if uvc.shape[1] != 2:
        raise ValueError(f"uv: expected shape ({v.shape[0]}, 2), got {uvc.shape}")
    tex = np.asarray(texture, np.float32)
    tex = tex[..., None] if tex.ndim == 2 else tex
    check_shape(tex, (None, None, None), "texture")
    if tex.shape[0] == 0 or tex.shape[1] == 0:
        raise ValueError(f"texture: expected a non-empty image, got shape {tex.shape}")
    h, w = _size(height, width)
    out = _canvas(background, h, w, tex.shape[2])
    coords, depth = rasterize(v, triangles, uvc, h, w, cull_backfaces=cull_backfaces, num_threads=num_threads)
    covered = np.isfinite(depth)
    uu, vv = coords[covered, 0].astype(np.float64), coords[covered, 1].astype(np.float64)
    col = np.clip(uu, 0.0, 1.0) * (tex.shape[1] - 1)
    row = (1.0 - np.clip(vv, 0.0, 1.0) if v_up else np.clip(vv, 0.0, 1.0)) * (tex.shape[0] - 1)
    out[covered] = _bilinear(tex, row, col)
    return out


def _bilinear(image: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Sample (H, W, C) at fractional (row, col) within [0, H-1] x [0, W-1] -> (K, C) float32."""
    r0 = np.clip(np.floor(row).astype(np.int64), 0, image.shape[0] - 1)
    c0 = np.clip(np.floor(col).astype(np.int64), 0, image.shape[1] - 1)
    r1, c1 = np.minimum(r0 + 1, image.shape[0] - 1), np.minimum(c0 + 1, image.shape[1] - 1)
    fr, fc = (row - r0)[:, None], (col - c0)[:, None]
    top = image[r0, c0] * (1 - fc) + image[r0, c1] * fc
    bottom = image[r1, c0] * (1 - fc) + image[r1, c1] * fc
    return (top * (1 - fr) + bottom * fr).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# many meshes
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mesh:
    """One item of :func:`render_batch`: ``vertices`` (N, 3), ``triangles`` (T, 3), ``colors`` (N, C)."""

    vertices: ArrayLike
    triangles: ArrayLike
    colors: ArrayLike


def render_batch(meshes: Sequence[Union[Mesh, tuple]], height: Optional[int] = None, width: Optional[int] = None,
                 *, backgrounds: Optional[Sequence[ArrayLike]] = None, cull_backfaces: bool = False,
                 num_threads: Optional[int] = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`rasterize` each of many meshes, in parallel over meshes (one thread per mesh).

    ``meshes``: :class:`Mesh` or ``(vertices, triangles, colors)`` tuples. Each item renders at
    ``height`` x ``width`` onto zeros, or onto ``backgrounds[i]`` (its own size) when given. Returns
    ``[(image, depth), ...]`` in input order, equal to a loop of :func:`rasterize` calls.
    """
    items = [m if isinstance(m, Mesh) else Mesh(*m) for m in meshes]
    if backgrounds is not None and len(backgrounds) != len(items):
        raise ValueError(f"backgrounds: expected {len(items)} images, got {len(backgrounds)}")
    if backgrounds is None and (height is None or width is None):
        raise ValueError("render_batch needs height and width, or backgrounds")
    workers = min(len(items), _threads(num_threads))

    def one(i: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
        m = items[i]
        if backgrounds is None:
            h, w, bg = height, width, None
        else:
            bg = np.asarray(backgrounds[i])
            h, w = bg.shape[:2]
        return rasterize(m.vertices, m.triangles, m.colors, h, w, bg, cull_backfaces=cull_backfaces,
                         num_threads=threads)

    if workers <= 1:
        return [one(i, num_threads) for i in range(len(items))]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda i: one(i, 1), range(len(items))))
