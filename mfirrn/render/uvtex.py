"""UV texture of a reconstructed face and textured mesh files (OBJ + MTL + PNG, optionally GLB).

The face is unwrapped into the BFM UV layout of 3DDFA_V2 (asset ``bfm-uv``: (53215, 2) coordinates in
[0, 1], v = 0 at the bottom row):

1. each vertex gets a weight ``own`` in [0, 1], how well the photo shows it (:func:`visibility_weight`):
   0 where the mesh's own z-buffer hides it or it is outside the photo, rising smoothly with the
   distance along the surface from the nearest hidden vertex and with the distance in the photo from
   the mesh's silhouette (0 up to ``margin``, 1 beyond ``margin + blend``, fractions of the mesh's
   size), times a ramp in the facing of the surface. Texels next to an occlusion or the outline, where
   a slightly misfitted mesh samples the occluder (the nose, hair, the background), get little weight;
2. the mesh is rasterized *in UV space* (:func:`mfirrn.render.raster.rasterize`), each texel interpolating
   its photo position (x, y), that of its mirror point (the same barycentric point of the mirror
   vertices, :func:`mfirrn.geometry.bfm.mirror_vertex_map`) and both weights;
3. the texel's colour is the photo sampled bilinearly at its own position (full photo resolution, not
   per-vertex colours) with weight ``own``, blended with the photo at its mirror point with weight
   ``max(0, own_mirror - own)`` (the mirror only where it shows the point better): the self-occluded
   half of a turned face is the visible half mirrored, and the two meet in a soft band, not at a seam;
4. where these weights add up to less than ``fill_below``, and around the UV charts, push-pull
   interpolation of the texels around fills in (smooth, and bilinear sampling at chart borders never
   reads black).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from mfirrn.geometry.bfm import load_mirror
from mfirrn.io.checks import check_shape
from mfirrn.render.meshio import format_table

__all__ = ["UVTexture", "load_uv", "load_mirror", "visibility_weight", "uv_texture", "textured_obj",
           "textured_glb", "life_size", "push_pull_fill"]


def load_uv(n_vertices: int) -> np.ndarray:
    """BFM UV coordinates (N, 2) float32 in [0, 1] (v up) for the full (53215) or no-neck (38365) mesh."""
    import scipy.io

    from mfirrn.io.assets import fetch

    uv = np.asarray(scipy.io.loadmat(str(fetch("bfm-uv")))["UV"], np.float32)
    if n_vertices == len(uv):
        return uv
    idx = np.load(fetch("bfm-noneck-indices")).astype(np.int64)
    if n_vertices == len(idx):
        return uv[idx]
    raise ValueError(f"no UV layout for a mesh of {n_vertices} vertices (full: {len(uv)}, no-neck: {len(idx)})")


def push_pull_fill(image: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Fill (H, W, C) ``image`` where ``weight`` (H, W) in [0, 1] is low by push-pull interpolation: a
    weighted image pyramid is built down to 1 pixel, then each level's holes are filled from the level
    below. Pixels with weight 1 keep their value."""
    img = image.astype(np.float64)
    w = np.clip(weight.astype(np.float64), 0, 1)
    if img.shape[0] <= 1 or img.shape[1] <= 1 or w.min() >= 1:
        return img
    small_w = cv2.resize(w, (max(1, img.shape[1] // 2), max(1, img.shape[0] // 2)), interpolation=cv2.INTER_AREA)
    small = cv2.resize(img * w[..., None], (small_w.shape[1], small_w.shape[0]), interpolation=cv2.INTER_AREA)
    small = small.reshape(small_w.shape + (img.shape[2],))
    small = np.where(small_w[..., None] > 1e-8, small / np.maximum(small_w, 1e-8)[..., None], 0.0)
    coarse = push_pull_fill(small, np.clip(small_w * 4, 0, 1))
    up = cv2.resize(coarse, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    up = cv2.GaussianBlur(up, (0, 0), 1.0).reshape(img.shape)  # no blocks of the coarse levels
    return img * w[..., None] + up * (1 - w[..., None])


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


@functools.lru_cache(maxsize=4)
def _open_edges_of(triangles: bytes, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    t = np.frombuffer(triangles, np.int64).reshape(-1, 3)
    a, b = t.reshape(-1), t[:, [1, 2, 0]].reshape(-1)
    key, count = np.unique(np.minimum(a, b) * n_vertices + np.maximum(a, b), return_counts=True)
    key = key[count == 1]
    edges = np.stack([key // n_vertices, key % n_vertices], axis=1)
    if not len(edges):
        return edges, np.zeros(0, bool)
    _, label = connected_components(coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])),
                                               shape=(n_vertices, n_vertices)), directed=False)
    loop = label[edges[:, 0]]
    return edges, loop == np.bincount(loop).argmax()


def _open_edges(triangles: np.ndarray, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """The mesh's boundary edges (E, 2), those of one triangle only, and (E,) bool: on its outer boundary
    (the longest loop: forehead, ears, neck), not around a hole (the mouth). Remembered for the last few
    meshes (every face of a photo shares its triangles)."""
    return _open_edges_of(np.ascontiguousarray(triangles, np.int64).tobytes(), int(n_vertices))


def visibility_weight(vertices: np.ndarray, triangles: np.ndarray, height: int, width: int, *,
                      margin: float = 0.02, blend: float = 0.06, crevice: float = 0.02, facing_lo: float = 0.1,
                      facing_hi: float = 0.35, depth_tol: float = 1.0) -> np.ndarray:
    """Per-vertex weight (N,) float32 in [0, 1] of the photo's view of each vertex (step 1 of the module
    docstring): 0 on vertices hidden by the mesh itself or outside the (``height``, ``width``) photo; else
    the product of

    - a ramp in the distance along the surface to the nearest hidden vertex,
    - a ramp in the distance in the photo to the mesh's silhouette (the edge of its mask; where the
      mesh itself ends, forehead, ears and neck, the ramp is ``margin`` wide instead of ``blend``; the
      rim of a hole in the mesh, the mouth, and the photo's edge are none),
    - a ramp in the normal's z (0 at ``facing_lo``, 1 at ``facing_hi``),

    the distance ramps ``smoothstep((d / size - margin) / blend)``, ``size`` the square root of the mesh's
    surface area (0 up to ``margin``, 1 beyond ``margin + blend``). Crevices, hidden vertices little behind
    the surface that hides them (the mouth's inside, nostrils: less than ``crevice`` of ``size``, fully at
    twice that), count as nearer the end of the ramp: a crevice only shades its own rim.

    ``vertices`` (N, 3) image pixels (y down, z towards the viewer); ``triangles`` (T, 3); ``depth_tol``:
    z-buffer tolerance in pixels (``eps`` of :func:`mfirrn.render.raster.visibility`).

    >>> import numpy as np
    >>> y, x = np.mgrid[0:41, 0:41].reshape(2, -1)         # a flat 40x40 pixel square facing the camera
    >>> verts = np.stack([x, y, np.zeros_like(x)], 1).astype(np.float32) + 5
    >>> q = (y[:-41] * 41 + x[:-41])[x[:-41] < 40]
    >>> tris = np.concatenate([np.stack([q, q + 1, q + 41], 1), np.stack([q + 1, q + 42, q + 41], 1)])
    >>> w = visibility_weight(verts, tris, 50, 50, margin=0.05, blend=0.25)  # size 40: margin 2 px
    >>> [round(float(w[20 * 41 + k]), 3) for k in (20, 0, 3, 4)]  # centre; 0, 3, 4 px in from the left end
    [1.0, 0.0, 0.5, 1.0]
    >>> w = visibility_weight(verts, tris, 30, 30, margin=0.05, blend=0.25)  # the photo ends at x, y = 29
    >>> float(w[10 * 41 + 10]), round(float(w[20 * 41 + 20]), 3), float(w[30 * 41 + 30])  # 15, 5 px from it, out
    (1.0, 0.216, 0.0)
    """
    import scipy.sparse
    from scipy.sparse.csgraph import dijkstra

    from mfirrn import render

    v = np.asarray(vertices, np.float64)
    tri = np.asarray(triangles, np.int64)
    n = len(v)
    hidden = ~render.visibility(v, tri, height, width, eps=depth_tol)
    facing = _smoothstep((render.vertex_normals(v, tri)[:, 2] - facing_lo) / max(facing_hi - facing_lo, 1e-6))
    if hidden.all():
        return np.zeros(n, np.float32)
    a = v[tri[:, 0]]
    size = max(float(np.sqrt(np.linalg.norm(np.cross(v[tri[:, 1]] - a, v[tri[:, 2]] - a), axis=1).sum() / 2)), 1e-9)
    reach = (margin + blend) * size  # distance (pixels) at which a ramp reaches 1
    ids, depth = render.rasterize_ids(v, tri, height, width)
    col = np.clip(np.floor(v[:, 0] + 0.5).astype(np.int64), 0, width - 1)
    row = np.clip(np.floor(v[:, 1] + 0.5).astype(np.int64), 0, height - 1)
    # the outline: the mask's edge (not the photo's) is a silhouette except where the mesh itself ends (its
    # open boundary, drawn 3 pixels wide): its outer boundary only needs the margin, its holes nothing
    mask = (ids >= 0).astype(np.uint8)
    edge = (mask - cv2.erode(mask, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)) > 0
    open_edges, outer = _open_edges(tri, n)
    ends = np.zeros_like(mask)
    for k, sel in ((1, outer), (2, ~outer)):
        cv2.polylines(ends, list(np.round(v[open_edges[sel]][:, :, :2]).astype(np.int32)), False, k, 3)
    ramp = np.ones(n)
    for part, band in ((edge & (ends == 0), blend), (edge & (ends == 1), margin)):
        if part.any():
            d = cv2.distanceTransform((~part).astype(np.uint8), cv2.DIST_L2, 5)[row, col]
            ramp = ramp * _smoothstep((d / size - margin) / max(band, 1e-9))
    # self-occlusion: distance along the surface to the nearest hidden vertex, from a virtual source joined
    # to each hidden vertex at 0, or up to `reach` for a crevice
    if hidden.any():
        gap = np.where((v[:, 0] > -0.5) & (v[:, 0] < width - 0.5) & (v[:, 1] > -0.5) & (v[:, 1] < height - 0.5),
                       depth[row, col] - v[:, 2], np.inf)
        src = np.flatnonzero(hidden)
        start = (1 - _smoothstep((gap[src] / size - crevice) / max(crevice, 1e-9))) * reach
        i = np.concatenate([tri[:, 0], tri[:, 1], tri[:, 2], np.full(len(src), n)])
        j = np.concatenate([tri[:, 1], tri[:, 2], tri[:, 0], src])
        length = np.concatenate([np.linalg.norm(v[i[:-len(src)]] - v[j[:-len(src)]], axis=1), start])
        graph = scipy.sparse.coo_matrix((np.maximum(length, 1e-9), (i, j)), shape=(n + 1, n + 1)).tocsr()
        dist = dijkstra(graph, directed=False, indices=n)[:n]
        ramp = ramp * _smoothstep((dist / size - margin) / max(blend, 1e-9))
    return np.where(hidden, 0.0, ramp * facing).astype(np.float32)


@dataclass
class UVTexture:
    """``texture`` (S, S, 3) BGR uint8; ``seen`` (S, S) float32 weight in [0, 1] of texels taken from the
    photo directly; ``mirrored`` (S, S) of texels taken from the mirrored side; ``chart`` (S, S) bool:
    texels inside the UV charts; ``uv`` (N, 2) the layout used."""

    texture: np.ndarray
    seen: np.ndarray
    mirrored: np.ndarray
    chart: np.ndarray
    uv: np.ndarray


def uv_texture(image: np.ndarray, vertices: np.ndarray, triangles: np.ndarray, uv: Optional[np.ndarray] = None,
               size: int = 512, *, mirror: bool = True, mirror_map: Optional[np.ndarray] = None,
               margin: float = 0.02, blend: float = 0.06, crevice: float = 0.02, facing_lo: float = 0.1,
               facing_hi: float = 0.35, depth_tol: float = 1.0, fill_below: float = 0.25) -> UVTexture:
    """Unwrap the photo's face into the UV layout (see the module docstring).

    ``image`` BGR uint8 (H, W, 3); ``vertices`` (N, 3) image pixels (y down, z towards the viewer, as
    :class:`mfirrn.inference.pipeline.Face`); ``triangles`` (T, 3); ``uv`` (N, 2) in [0, 1], v up (default: the BFM
    layout, :func:`load_uv`); ``size``: texture side in pixels. ``mirror``: fill what the photo does not
    show from the mirror side, through ``mirror_map`` (N,) (default: the BFM's, :func:`load_mirror`).
    ``margin``, ``blend``, ``crevice``, ``facing_lo``, ``facing_hi``, ``depth_tol``: see :func:`visibility_weight`.
    ``fill_below``: texels whose photo and mirror weights add up to less are blended with the push-pull
    fill of the texels around them (what a misfitted mesh samples at its outline never shows alone).
    """
    from mfirrn import render

    check_shape(vertices, (None, 3), "vertices")
    v = np.asarray(vertices, np.float32)
    uv = load_uv(len(v)) if uv is None else np.asarray(uv, np.float32)
    check_shape(uv, (len(v), 2), "uv")
    if mirror:
        mirror_map = load_mirror(len(v)) if mirror_map is None else np.asarray(mirror_map, np.int64)
        check_shape(mirror_map, (len(v),), "mirror_map")
        if mirror_map.min() < 0 or mirror_map.max() >= len(v):
            raise ValueError(f"mirror_map: indices must be in [0, {len(v)}), "
                             f"got [{mirror_map.min()}, {mirror_map.max()}]")
    h, w = image.shape[:2]
    # 1. how well the photo shows each vertex
    own = visibility_weight(v, triangles, h, w, margin=margin, blend=blend, crevice=crevice, facing_lo=facing_lo,
                            facing_hi=facing_hi, depth_tol=depth_tol)
    # 2. the mesh in UV space: photo position and weight of each texel and of its mirror point
    attrs = [v[:, 0], v[:, 1], own]
    if mirror:
        attrs += [v[mirror_map, 0], v[mirror_map, 1], own[mirror_map]]
    uvpix = np.stack([uv[:, 0] * (size - 1), (1 - uv[:, 1]) * (size - 1), np.zeros(len(uv), np.float32)], 1)
    tex_attr, uv_depth = render.rasterize(uvpix, triangles, np.stack(attrs, 1), size, size)
    chart = np.isfinite(uv_depth)

    def photo_at(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return cv2.remap(image, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE).astype(np.float64)

    # 3. own colour, blended with the mirror's where the photo shows the texel less well
    seen = np.where(chart, np.clip(tex_attr[..., 2], 0, 1), 0.0)
    out = photo_at(tex_attr[..., 0], tex_attr[..., 1]) * seen[..., None]
    wsum = seen.copy()
    mirrored = np.zeros_like(seen)
    if mirror:
        mirrored = np.where(chart, np.clip(tex_attr[..., 5] - seen, 0, 1), 0.0)
        out += photo_at(tex_attr[..., 3], tex_attr[..., 4]) * mirrored[..., None]
        wsum += mirrored
    filled = np.where(wsum[..., None] > 1e-6, out / np.maximum(wsum, 1e-6)[..., None], 0.0)
    # 4. the rest: push-pull from what is known
    texture = push_pull_fill(filled, np.clip(wsum / fill_below, 0, 1) * chart)
    return UVTexture(np.clip(np.round(texture), 0, 255).astype(np.uint8), seen.astype(np.float32),
                     mirrored.astype(np.float32), chart, uv)


def textured_obj(vertices: np.ndarray, triangles: np.ndarray, uv: np.ndarray, mtl_name: str,
                 texture_name: str, material: str = "face") -> tuple[bytes, bytes]:
    """Wavefront OBJ with ``vt`` coordinates (one per vertex) and its MTL naming the texture PNG.

    ``vertices`` (N, 3) in the frame to store (e.g. :func:`mfirrn.render.meshio.to_viewer_frame`), ``triangles``
    (T, 3) 0-based, ``uv`` (N, 2) with v up (OBJ's convention). Returns ``(obj, mtl)`` bytes.
    """
    check_shape(vertices, (None, 3), "vertices")
    check_shape(uv, (len(vertices), 2), "uv")
    head = f"# mfirrn reconstruction, textured (x right, y up, z toward the camera)\nmtllib {mtl_name}\n"
    t = np.asarray(triangles, np.int64) + 1
    f = ("f %d/%d %d/%d %d/%d\n" * len(t)) % tuple(np.repeat(t, 2, axis=1).ravel().tolist())  # one C-level format
    obj = (head.encode() + format_table("v", np.asarray(vertices, np.float64), 4)
           + format_table("vt", np.asarray(uv, np.float64), 6) + f"usemtl {material}\n{f}".encode())
    mtl = (f"# mfirrn texture material\nnewmtl {material}\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\n"
           f"Ks 0.000 0.000 0.000\nd 1.0\nillum 1\nmap_Kd {texture_name}\n")
    return obj, mtl.encode()


def glb_modules():
    """``(trimesh, PIL.Image)``, which GLB export needs; ValueError naming the missing one and the fix."""
    try:
        import trimesh
        from PIL import Image
    except ImportError as e:
        raise ValueError(f"GLB export needs trimesh and pillow ({e.name} is missing): "
                         "pip install trimesh pillow") from None
    return trimesh, Image


#: The distance between the eye centres (metres) a GLB head is scaled to by :func:`life_size`: an adult's average.
EYE_DISTANCE_M = 0.063


def life_size(vertices: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Viewer-frame vertices (N, 3) in image pixels -> metres, centred on the mesh's centre (the box's middle) and
    scaled so that the centres of the 68 landmarks' eyes (points 36-41 and 42-47, pixels) lie
    :data:`EYE_DISTANCE_M` apart (in 3D: a turned head keeps its size): glTF's unit is the metre, and a viewer shows the head at a person's size.

    >>> v = np.array([[0.0, 0, 0], [200, 100, 40]])
    >>> lm = np.zeros((68, 3)); lm[42:48, 0] = 63.0  # eye centres 63 pixels apart
    >>> life_size(v, lm).tolist()
    [[-0.1, -0.05, -0.02], [0.1, 0.05, 0.02]]
    """
    check_shape(vertices, (None, 3), "vertices")
    check_shape(landmarks, (68, 3), "landmarks")
    eyes = np.linalg.norm(landmarks[42:48].mean(0) - landmarks[36:42].mean(0))
    centre = (vertices.min(0) + vertices.max(0)) / 2
    return (vertices - centre) * (EYE_DISTANCE_M / max(float(eyes), 1e-9))


#: The largest extent (metres) :func:`textured_glb` takes for a head: a mesh larger than this is in pixels.
MAX_HEAD_M = 2.0


def textured_glb(vertices: np.ndarray, triangles: np.ndarray, uv: np.ndarray, texture_bgr: np.ndarray) -> bytes:
    """Binary glTF (GLB) of the textured mesh, via trimesh (needs ``trimesh`` and ``pillow``): the texture embedded
    as the base colour at full strength, a matte, non-metallic material (the MTL's ``Kd 1``; glTF's defaults would be
    a metal, and trimesh's simple material a 0.4 grey factor that darkens the photo), smooth vertex normals.

    ``vertices`` (N, 3) in metres, y up (glTF's frame): ``life_size(to_viewer_frame(face.vertices, ...)[0],
    face.landmarks)``. A mesh larger than :data:`MAX_HEAD_M` (image pixels, a head hundreds of metres wide in a
    viewer) is refused with that fix.
    """
    check_shape(vertices, (None, 3), "vertices")
    extent = float(np.ptp(vertices, axis=0).max()) if len(vertices) else 0.0
    if extent > MAX_HEAD_M:
        raise ValueError(f"textured_glb: the mesh is {extent:.0f} units wide, and glTF's unit is the metre; pass "
                         f"its vertices in metres: mfirrn.render.uvtex.life_size(vertices, landmarks)")
    trimesh, Image = glb_modules()
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.fromarray(texture_bgr[..., ::-1].copy()), baseColorFactor=[255, 255, 255, 255],
        metallicFactor=0.0, roughnessFactor=1.0)
    visual = trimesh.visual.TextureVisuals(uv=np.asarray(uv, np.float64), material=material)
    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(triangles, np.int64), visual=visual,
                           process=False)
    return mesh.export(file_type="glb", include_normals=True)
