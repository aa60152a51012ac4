"""Mesh files (.obj, .ply) with per-vertex colour, readable by MeshLab, Blender and trimesh."""

from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from mfirrn.io.checks import check_shape

__all__ = ["sample_colors", "photo_colors", "to_viewer_frame", "format_table", "obj_bytes", "obj_bytes_reference",
           "ply_bytes"]


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


def photo_colors(image: np.ndarray, vertices: np.ndarray, mirror_map: Optional[np.ndarray] = None) -> np.ndarray:
    """The photo's colour of each vertex of a face mesh, RGB float (N, 3) in [0, 1]: :func:`sample_colors`, except
    that a vertex outside the image (a face cut by the border) takes its mirror vertex's colour where that one is
    inside (the other side of the face, as the UV texture fills it), else mid-grey, instead of the border pixel
    smeared outward. ``mirror_map`` (N,) int: each vertex's mirror, an index into ``vertices`` (default: the BFM's,
    for its full or no-neck mesh; for another mesh, outside vertices are grey).

    >>> img = np.zeros((4, 4, 3), np.uint8); img[:, :2] = (0, 0, 255)  # red left half, black right half (BGR)
    >>> v = np.array([[0.0, 1, 0], [3, 1, 0], [-2.0, 1, 0], [9.0, 1, 0]])
    >>> photo_colors(img, v, mirror_map=np.array([1, 0, 1, 2])).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]
    """
    if mirror_map is not None:
        mirror_map = np.asarray(mirror_map)
        check_shape(mirror_map, (len(vertices),), "mirror_map")
        if len(vertices) and not (0 <= np.min(mirror_map) and np.max(mirror_map) < len(vertices)):
            raise ValueError(f"mirror_map: indices must lie in [0, {len(vertices)}), the vertices' count; got "
                             f"{np.min(mirror_map)}..{np.max(mirror_map)}")
    c = sample_colors(image, vertices)
    h, w = image.shape[:2]
    x, y = vertices[:, 0], vertices[:, 1]
    outside = np.flatnonzero((x < 0) | (x > w - 1) | (y < 0) | (y > h - 1))
    if not len(outside):
        return c
    if mirror_map is None:
        from mfirrn.geometry.bfm import load_mirror

        try:
            mirror_map = load_mirror(len(vertices))
        except ValueError:  # not a BFM mesh: no mirror to ask
            mirror_map = None
    c[outside] = 0.5
    if mirror_map is not None:
        inside = np.ones(len(vertices), bool)
        inside[outside] = False
        mirror = np.asarray(mirror_map, np.int64)[outside]
        seen = inside[mirror]
        c[outside[seen]] = c[mirror[seen]]
    return c


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


@functools.lru_cache(maxsize=8)
def _int_spellings(digits: int) -> np.ndarray:
    """(2·10^digits, digits + 1) uint8: row ``k`` spells ``k`` right-aligned, row ``10^digits + k`` spells
    ``-k``; unused bytes on the left are 0 (dropped when the text is assembled)."""
    n = 10 ** digits
    k = np.arange(n)
    ndig = 1 + sum((k >= 10 ** p).astype(np.int64) for p in range(1, digits))
    tab = np.zeros((2, n, digits + 1), np.uint8)
    for p in range(digits):
        tab[:, :, digits - p] = np.where(p < ndig, ord("0") + (k // 10 ** p) % 10, 0)
    tab[1, k, digits - ndig] = ord("-")
    return tab.reshape(2 * n, digits + 1)


@functools.lru_cache(maxsize=8)
def _frac_spellings(decimals: int) -> np.ndarray:
    """(10^decimals, decimals + 1) uint8: ``.`` then the zero-padded digits of each fraction."""
    k = np.arange(10 ** decimals)
    tab = np.empty((len(k), decimals + 1), np.uint8)
    tab[:, 0] = ord(".")
    for p in range(decimals):
        tab[:, decimals - p] = ord("0") + (k // 10 ** p) % 10
    return tab


def format_table(prefix: str, values: np.ndarray, decimals: int) -> bytes:
    """Rows ``f"{prefix} {v0:.{decimals}f} {v1:.{decimals}f} ...\\n"`` of a (N, C) table, vectorised.

    Byte-identical to Python's formatting (round half to even on the exact binary value, ``-0.0000`` for
    small negatives) for finite values: the few within 1e-6 of a rounding tie are formatted by Python.
    An integer array is written without a decimal point (``decimals`` ignored). Values beyond 10^7 in
    magnitude, and non-finite ones, take the slow path (Python formatting).

    >>> format_table("v", np.array([[1.5, -0.00001, 123.45678]]), 4)
    b'v 1.5000 -0.0000 123.4568\\n'
    >>> format_table("f", np.array([[1, 20, 300]]), 0)
    b'f 1 20 300\\n'
    """
    values = np.asarray(values)
    check_shape(values, (None, None), "values")
    n, c = values.shape
    if n == 0:
        return b""
    is_int = np.issubdtype(values.dtype, np.integer)
    d = 0 if is_int else int(decimals)
    slow = lambda: "".join(  # noqa: E731
        f"{prefix} " + " ".join(f"{x:.{d}f}" if not is_int else str(x) for x in row) + "\n" for row in values).encode()
    if is_int:
        v = values.astype(np.int64)
        neg, ip = v < 0, np.abs(v)
    else:
        v = values.astype(np.float64)
        if not np.isfinite(v).all():
            return slow()
        scaled = np.abs(v) * 10.0 ** d
        q = np.rint(scaled).astype(np.int64)
        neg = np.signbit(v)
        ip, fp = np.divmod(q, 10 ** d)
    top = int(ip.max())
    if top >= 10 ** 7:
        return slow()
    digits = max(1, len(str(top)))
    ints = _int_spellings(digits)
    idx = ip + neg * 10 ** digits
    wi, wf = digits + 1, (d + 1 if d else 0)
    field = 1 + wi + wf
    head = prefix.encode()
    row = len(head) + c * field + 1
    out = np.zeros((n, row), np.uint8)
    out[:, :len(head)] = np.frombuffer(head, np.uint8)
    fracs = _frac_spellings(d) if d else None
    for j in range(c):
        o = len(head) + j * field
        out[:, o] = ord(" ")
        out[:, o + 1:o + 1 + wi] = ints[idx[:, j]]
        if fracs is not None:
            out[:, o + 1 + wi:o + field] = fracs[fp[:, j]]
    out[:, -1] = ord("\n")
    text = out.tobytes().translate(None, b"\0")  # drop the padding (a C loop; faster than a numpy mask)
    if not is_int:
        near_tie = np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6
        if near_tie.any():  # rare: let Python decide how those rows round
            lines = text.split(b"\n")
            for i in np.flatnonzero(near_tie.any(1)):
                lines[i] = (f"{prefix} " + " ".join(f"{x:.{d}f}" for x in v[i])).encode()
            text = b"\n".join(lines)
    return text


def obj_bytes(vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray | None = None) -> bytes:
    """Wavefront OBJ text: ``v x y z [r g b]`` (4 decimals, colours in [0, 1]) and 1-based ``f a b c``."""
    check_shape(vertices, (None, 3), "vertices")
    check_shape(triangles, (None, 3), "triangles")
    table = vertices if colors is None else np.concatenate([np.asarray(vertices, np.float64),
                                                            np.asarray(colors, np.float64)], 1)
    return (b"# mfirrn reconstruction (x right, y up, z toward the camera; image pixels)\n"
            + format_table("v", table, 4) + format_table("f", np.asarray(triangles, np.int64) + 1, 0))


def obj_bytes_reference(vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray | None = None) -> bytes:
    """Slow reference twin of :func:`obj_bytes` (Python string formatting), for tests."""
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
