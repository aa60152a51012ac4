"""Mesh files (.obj, .ply) with per-vertex colour, readable by MeshLab, Blender and trimesh."""

from __future__ import annotations


import numpy as np

from mfirrn.checks import check_shape

__all__ = ["sample_colors", "to_viewer_frame", "obj_bytes", "ply_bytes"]


def sample_colors(image: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Bilinear sample of a BGR uint8 image (H, W, 3) at vertices' x, y (N, >=2) -> RGB float (N, 3) in [0, 1].

    Points outside the image take the nearest border pixel.
    """
    h, w = image.shape[:2]
    x = np.clip(vertices[:, 0], 0, w - 1)
    y = np.clip(vertices[:, 1], 0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    img = image.astype(np.float64)
    c = (img[y0, x0] * (1 - fx) * (1 - fy) + img[y0, x1] * fx * (1 - fy)
         + img[y1, x0] * (1 - fx) * fy + img[y1, x1] * fx * fy)
    return c[:, ::-1] / 255.0


def to_viewer_frame(vertices: np.ndarray, triangles: np.ndarray, image_height: int) -> tuple[np.ndarray, np.ndarray]:
    """Image-frame vertices (y down, z toward the camera) -> right-handed y-up frame ``(x, H - y, z)``,
    with triangle winding made counter-clockwise seen from the camera (normals point at the viewer)."""
    check_shape(vertices, (None, 3), "vertices")
    check_shape(triangles, (None, 3), "triangles")
    v = np.asarray(vertices, np.float64).copy()
    v[:, 1] = image_height - v[:, 1]
    tri = np.asarray(triangles, np.int64)
    n = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])
    if n[:, 2].sum() < 0:
        tri = tri[:, [0, 2, 1]]
    return v, tri


def obj_bytes(vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray | None = None) -> bytes:
    """Wavefront OBJ text: ``v x y z [r g b]`` (colours in [0, 1]) and 1-based ``f a b c``."""
    lines = ["# mfirrn reconstruction (x right, y up, z toward the camera; image pixels)"]
    if colors is None:
        lines += [f"v {x:.4f} {y:.4f} {z:.4f}" for x, y, z in vertices]
    else:
        lines += [f"v {x:.4f} {y:.4f} {z:.4f} {r:.4f} {g:.4f} {b:.4f}"
                  for (x, y, z), (r, g, b) in zip(vertices, colors)]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in triangles]
    return ("\n".join(lines) + "\n").encode()


def ply_bytes(vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray | None = None) -> bytes:
    """Binary little-endian PLY with float32 positions, optional uchar RGB and int32 triangles."""
    n, t = len(vertices), len(triangles)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vert = np.empty(n, dtype=fields)
    vert["x"], vert["y"], vert["z"] = (vertices[:, i] for i in range(3))
    if colors is not None:
        rgb = np.clip(np.round(np.asarray(colors) * 255), 0, 255).astype(np.uint8)
        vert["red"], vert["green"], vert["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    face = np.empty(t, dtype=[("n", "u1"), ("v", "<i4", (3,))])
    face["n"], face["v"] = 3, triangles
    props = "".join(f"property {'float' if d == '<f4' else 'uchar'} {k}\n" for k, d in fields)
    header = (f"ply\nformat binary_little_endian 1.0\ncomment mfirrn reconstruction\nelement vertex {n}\n{props}"
              f"element face {t}\nproperty list uchar int vertex_indices\nend_header\n")
    return header.encode() + vert.tobytes() + face.tobytes()
