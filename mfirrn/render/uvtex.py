"""UV texture of a reconstructed face and textured mesh files (OBJ + MTL + PNG, optionally GLB).

The face is unwrapped into the BFM UV layout of 3DDFA_V2 (asset ``bfm-uv``: (53215, 2) coordinates in
[0, 1], v = 0 at the bottom row, the layout nearly mirror-symmetric about u = 0.5):

1. the mesh is rasterized *in UV space* (:func:`mfirrn.render.raster.rasterize`), each texel interpolating
   the image position (x, y, z) and the facing ``n_z`` of the surface point it holds;
2. each texel samples the photo bilinearly at (x, y) — full photo resolution, not per-vertex colours;
3. a texel is *seen* when the z-buffer of the mesh in the photo (:func:`mfirrn.render.raster.rasterize_ids`)
   holds its depth there (within ``depth_tol`` pixels) and it faces the camera (``n_z``); grazing
   texels get less weight (``facing_lo`` .. ``facing_hi``), and the seen mask is cleaned of isolated
   texels (a 5x5 median), so no speckle of a hidden surface survives;
4. hidden texels take the mirrored texel (u -> 1 - u) where that one is seen, with feathered weights
   (no seam at the boundary);
5. what neither side sees, and the margin around the UV charts, is filled by push-pull interpolation
   (smooth, and bilinear sampling at chart borders never reads black).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from mfirrn.io.checks import check_shape

__all__ = ["UVTexture", "load_uv", "uv_texture", "textured_obj", "textured_glb", "push_pull_fill"]


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
    up = cv2.resize(coarse, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR).reshape(img.shape)
    return img * w[..., None] + up * (1 - w[..., None])


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
               size: int = 512, *, depth_tol: float = 2.0, facing_lo: float = 0.1, facing_hi: float = 0.35,
               mirror: bool = True) -> UVTexture:
    """Unwrap the photo's face into the UV layout (see the module docstring).

    ``image`` BGR uint8 (H, W, 3); ``vertices`` (N, 3) image pixels (y down, z towards the viewer, as
    :class:`mfirrn.inference.pipeline.Face`); ``triangles`` (T, 3); ``uv`` (N, 2) in [0, 1], v up (default: the BFM
    layout, :func:`load_uv`); ``size``: texture side in pixels.
    """
    from mfirrn import render

    check_shape(vertices, (None, 3), "vertices")
    v = np.asarray(vertices, np.float32)
    uv = load_uv(len(v)) if uv is None else np.asarray(uv, np.float32)
    check_shape(uv, (len(v), 2), "uv")
    h, w = image.shape[:2]
    # 1. the mesh in UV space, interpolating image position and facing
    normals = render.vertex_normals(v, triangles)
    uvpix = np.stack([uv[:, 0] * (size - 1), (1 - uv[:, 1]) * (size - 1), np.zeros(len(uv), np.float32)], 1)
    attrs = np.concatenate([v, normals[:, 2:3]], axis=1)
    tex_attr, uv_depth = render.rasterize(uvpix, triangles, attrs, size, size)
    chart = np.isfinite(uv_depth)
    x, y, z, nz = (tex_attr[..., k] for k in range(4))
    # 2. photo colours at full resolution
    colour = cv2.remap(image, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE).astype(np.float64)
    # 3. seen: in the image, on the visible surface (z-buffer), facing the camera
    _, zbuf = render.rasterize_ids(v, triangles, h, w)
    col = np.clip(np.floor(x + 0.5).astype(np.int64), 0, w - 1)
    row = np.clip(np.floor(y + 0.5).astype(np.int64), 0, h - 1)
    inside = chart & (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    # the z-buffer is read at the nearest pixel centre, up to 0.7 px away: allow the depth change of the
    # surface over that distance (its slope, from the facing n_z) on top of depth_tol
    slope = np.sqrt(np.clip(1 - nz ** 2, 0, 1)) / np.maximum(nz, 0.05)
    visible = inside & (z >= zbuf[row, col] - depth_tol - 0.7 * slope)
    visible = cv2.medianBlur(visible.astype(np.uint8) * 255, 5) > 127  # no isolated (in)visible texels
    facing = np.clip((nz - facing_lo) / (facing_hi - facing_lo), 0, 1)
    seen = np.where(visible, facing, 0.0)
    seen = np.minimum(seen, cv2.GaussianBlur(seen, (0, 0), 1.5) * 1.5)  # feather the mask's edges
    seen = np.where(chart, np.clip(seen, 0, 1), 0.0)
    # 4. hidden texels from the mirrored side
    mirrored = np.zeros_like(seen)
    out = colour * seen[..., None]
    wsum = seen.copy()
    if mirror:
        m_seen, m_colour = seen[:, ::-1], colour[:, ::-1]
        mirrored = np.where(chart, (1 - seen) * m_seen, 0.0)
        out += m_colour * mirrored[..., None]
        wsum += mirrored
    filled = np.where(wsum[..., None] > 1e-6, out / np.maximum(wsum, 1e-6)[..., None], 0.0)
    # 5. the rest: push-pull from what is known
    texture = push_pull_fill(filled, np.clip(wsum * 4, 0, 1) * chart)
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
    v = "\n".join(f"v {a:.4f} {b:.4f} {c:.4f}" for a, b, c in np.asarray(vertices, np.float64))
    vt = "\n".join(f"vt {a:.6f} {b:.6f}" for a, b in np.asarray(uv, np.float64))
    t = np.asarray(triangles, np.int64) + 1
    f = "\n".join(f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in t)
    obj = f"{head}{v}\n{vt}\nusemtl {material}\n{f}\n"
    mtl = (f"# mfirrn texture material\nnewmtl {material}\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\n"
           f"Ks 0.000 0.000 0.000\nd 1.0\nillum 1\nmap_Kd {texture_name}\n")
    return obj.encode(), mtl.encode()


def textured_glb(vertices: np.ndarray, triangles: np.ndarray, uv: np.ndarray, texture_bgr: np.ndarray) -> bytes:
    """Binary glTF (GLB) of the textured mesh, via trimesh (needs ``trimesh`` and ``pillow``)."""
    try:
        import trimesh
        from PIL import Image
    except ImportError as e:
        raise ValueError(f"GLB export needs trimesh and pillow ({e.name} is missing): pip install trimesh pillow") from None
    material = trimesh.visual.material.SimpleMaterial(image=Image.fromarray(texture_bgr[..., ::-1].copy()))
    visual = trimesh.visual.TextureVisuals(uv=np.asarray(uv, np.float64), material=material)
    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(triangles, np.int64), visual=visual,
                           process=False)
    return mesh.export(file_type="glb")
