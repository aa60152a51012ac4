"""A synthetic turned head with a known texture, to check UV textures: the photo, the true texel colours, tears.

The BFM mean face (full mesh) gets a smooth, left/right symmetric albedo in the UV layout, is turned by a
yaw, lit by one directional light plus ambient (so its two halves differ in brightness, as in photos),
and rendered with the compiled rasterizer on a magenta background, a colour no texel of the face has.
A UV texture of that photo (:func:`mfirrn.render.uvtex.uv_texture`) should be smooth wherever the true
surface colours are: :func:`tear_texels` marks the texels where it is not (a seam where the photo's side
meets the mirrored side, the background or an occluder sampled onto the face).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["SyntheticHead", "synthetic_head", "tear_texels"]

BACKGROUND = (200.0, 40.0, 200.0)  # BGR magenta


@dataclass
class SyntheticHead:
    """``photo`` (H, W, 3) BGR uint8; ``vertices`` (N, 3) float32 the true mesh in the photo's frame
    (pixels, y down, z towards the viewer) and ``triangles`` (T, 3); ``reference`` (S, S, 3) float32 BGR:
    the true colour of the surface point of each texel, as lit in the photo (also where the photo does
    not show it); ``mirror_reference`` (S, S, 3): the true colour of each texel's mirror point; ``chart``
    (S, S) bool: texels inside the UV charts; ``mirror_map`` (N,) the mesh's mirror vertex map."""

    photo: np.ndarray
    vertices: np.ndarray
    triangles: np.ndarray
    reference: np.ndarray
    mirror_reference: np.ndarray
    chart: np.ndarray
    mirror_map: np.ndarray

    def misfit(self, shift: tuple[float, float] = (4.0, -3.0), scale: float = 1.03) -> np.ndarray:
        """The mesh as an imperfect fit would place it: scaled by ``scale`` about its centroid and moved by
        ``shift`` (x, y) pixels; (N, 3) float32."""
        c = self.vertices.mean(axis=0)
        v = (self.vertices - c) * scale + c
        v[:, :2] += np.asarray(shift, np.float32)
        return v.astype(np.float32)


def synthetic_head(yaw: float = 60.0, *, image_size: int = 400, face_width: float = 300.0, texture_size: int = 512,
                   light: tuple[float, float, float] = (0.55, -0.35, 0.75), ambient: float = 0.45,
                   seed: int = 0) -> SyntheticHead:
    """Render the BFM mean face turned by ``yaw`` degrees about the vertical axis (positive: its nose
    towards the image's right), ``face_width`` pixels wide (ear to ear, before turning), centred in an
    ``image_size`` square photo. ``light``: direction towards the light in the photo's frame (x right,
    y down, z towards the viewer); shading ``ambient + (1 - ambient) · max(0, n · light)``. The
    background is magenta with Gaussian noise (``seed``)."""
    from mfirrn import render
    from mfirrn.geometry.bfm import MorphableModel, mirror_vertex_map
    from mfirrn.render.uvtex import load_uv

    bfm = MorphableModel("full")
    mean = bfm.u.reshape(-1, 3).cpu().numpy().astype(np.float64)
    tri = np.ascontiguousarray(bfm.triangles, dtype=np.int32)
    mirror = mirror_vertex_map(bfm)
    uv = load_uv(len(mean))
    a = np.radians(yaw)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    v = (mean - mean.mean(axis=0)) @ rot.T * (face_width / np.ptp(mean[:, 0]))
    v[:, 1] *= -1  # BFM y up -> image y down (z stays towards the viewer)
    v[:, :2] += image_size / 2
    v = v.astype(np.float32)
    # albedo: smooth, and the same at a vertex and its mirror (a function of |u - 0.5| and v)
    du, vv = np.abs(uv[:, 0] - 0.5), uv[:, 1]
    albedo = np.stack([90 + 60 * vv, 150 + 40 * np.cos(4 * du), 190 - 80 * du], axis=1)
    ldir = np.asarray(light, np.float64) / np.linalg.norm(light)
    shade = ambient + (1 - ambient) * np.clip(render.vertex_normals(v, tri) @ ldir, 0, 1)
    colors = (albedo * shade[:, None]).astype(np.float32)
    rng = np.random.default_rng(seed)
    bg = np.asarray(BACKGROUND, np.float32) + rng.normal(0, 6, (image_size, image_size, 3)).astype(np.float32)
    photo, _ = render.rasterize(v, tri, colors, image_size, image_size, background=bg)
    s = texture_size
    uvpix = np.stack([uv[:, 0] * (s - 1), (1 - uv[:, 1]) * (s - 1), np.zeros(len(uv))], axis=1).astype(np.float32)
    ref, depth = render.rasterize(uvpix, tri, np.concatenate([colors, colors[mirror]], axis=1), s, s)
    return SyntheticHead(np.clip(np.round(photo), 0, 255).astype(np.uint8), v, tri, ref[..., :3], ref[..., 3:],
                         np.isfinite(depth), mirror)


def _gradient(image: np.ndarray) -> np.ndarray:
    """Grey-level gradient magnitude (H, W) per pixel of a BGR image, after a Gaussian of 1 pixel."""
    grey = cv2.cvtColor(np.clip(image, 0, 255).astype(np.float32), cv2.COLOR_BGR2GRAY)
    g = cv2.GaussianBlur(grey, (0, 0), 1.0)
    return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8, cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8)


def tear_texels(texture: np.ndarray, head: SyntheticHead, threshold: float = 8.0, border: int = 4) -> np.ndarray:
    """(S, S) bool: texels of ``texture`` (S, S, 3) BGR, a UV texture of ``head.photo``, that are a tear.

    A tear is a texel whose grey-level gradient (per texel, after a 1-texel Gaussian) exceeds by more
    than ``threshold`` both the gradient of the true surface colours there (``head.reference``) and that
    of the mirror point's (``head.mirror_reference``): an edge neither the face nor its mirror image has.
    Texels within ``border`` of the charts' edge are left out (the gradient there sees the fill outside).
    """
    legit = np.maximum(_gradient(head.reference), _gradient(head.mirror_reference))
    k = 2 * border + 1
    inner = cv2.erode(head.chart.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    return inner & (_gradient(texture) - legit > threshold)
