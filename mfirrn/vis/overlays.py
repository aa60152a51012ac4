"""2D overlays of reconstructions on photos (OpenCV drawing, BGR uint8 in/out)."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import cv2
import numpy as np

__all__ = ["draw_landmarks", "draw_dense", "dense_dots", "LANDMARK_CONTOURS", "viewing_scale", "enlarge_for_viewing"]

# 0-based index ranges of the 68-point scheme drawn as polylines: (start, end, closed).
LANDMARK_CONTOURS: tuple[tuple[int, int, bool], ...] = (
    (0, 17, False), (17, 22, False), (22, 27, False), (27, 31, False), (31, 36, False),
    (36, 42, True), (42, 48, True), (48, 60, True), (60, 68, True),
)


_SHIFT = 4  # fractional bits of the coordinates given to OpenCV's drawing (1/16 pixel)


def _thickness(image: np.ndarray) -> int:
    return max(1, round(max(image.shape[:2]) / 500))


def draw_landmarks(image: np.ndarray, landmarks: Sequence[np.ndarray], color=(0, 255, 0),
                   lines: bool = True) -> np.ndarray:
    """A copy of ``image`` with each face's 68 landmarks (68, >=2) drawn as points and contours.

    Points and lines grow with the image (so that they show when a large photo is viewed whole) but stay
    small on a small face, where larger ones would merge into a blob: a point's radius is 1/100 of the face's
    size (the larger side of its landmarks' box; a fraction of a pixel is drawn as such) up to the image's
    line width + 1, a line's width at most 1/80 of the face. The radius changes continuously with the face, so
    that faces of about one size in one photo look alike. On a face under 80 pixels, where a disc would cover
    the eye it outlines, a point is the one pixel under it. Lines and discs are drawn at
    sub-pixel positions and radii (1/16 pixel), anti-aliased.
    """
    out = image.copy()
    h, w = out.shape[:2]
    t = _thickness(image)
    for lm in landmarks:
        xy = np.asarray(lm, np.float64)[:, :2]
        if not len(xy):
            continue
        face = float(np.ptp(xy, axis=0).max())
        fixed = np.round(xy * (1 << _SHIFT)).astype(np.int32)
        if lines and len(xy) == 68:
            width = max(1, min(t, round(face / 80)))
            for a, b, closed in LANDMARK_CONTOURS:
                cv2.polylines(out, [fixed[a:b]], closed, (255, 255, 255), width, cv2.LINE_AA, _SHIFT)
        radius = min(t + 1, face / 100)
        if radius >= 0.8:
            for x, y in fixed:
                cv2.circle(out, (int(x), int(y)), round(radius * (1 << _SHIFT)), color, -1, cv2.LINE_AA, _SHIFT)
        else:
            px = np.floor(xy + 0.5).astype(np.int64)
            inside = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
            out[px[inside, 1], px[inside, 0]] = color
    return out


VIEW_MIN_SIDE = 400  # pixels: overlays of smaller images are drawn on an enlarged copy


def viewing_scale(image_shape: Sequence[int], min_side: int = VIEW_MIN_SIDE) -> int:
    """The whole factor by which an overlay of an image of ``image_shape`` (H, W, ...) is drawn enlarged.

    1 for an image whose longer side is at least ``min_side`` pixels; for a smaller one (a tight face crop, a
    thumbnail) the smallest whole factor that brings its longer side to ``min_side``, so that 68 points, a pose
    box and its label have the pixels to stay apart.

    >>> viewing_scale((112, 112)), viewing_scale((218, 178, 3)), viewing_scale((250, 250)), viewing_scale((300, 400))
    (4, 2, 2, 1)
    """
    longest = max(int(image_shape[0]), int(image_shape[1]))
    return 1 if longest >= min_side else -(-min_side // max(1, longest))


class _EnlargedFace:
    """A face-like view of ``face`` in the pixels of its image enlarged ``k`` times: the pixel centre ``x``
    becomes ``k * x + (k - 1) / 2`` (the mapping of :func:`cv2.resize`), depths are scaled by ``k``; params and
    pose are the face's (its ``roi`` is mapped, so the params still cross from the crop to the new pixels)."""

    def __init__(self, face: object, k: int) -> None:
        self._face, self._k = face, k
        self.params, self.pose = face.params, getattr(face, "pose", None)  # type: ignore[attr-defined]
        self.confidence = getattr(face, "confidence", float("nan"))
        self.roi = self._map_box(face.roi)  # type: ignore[attr-defined]
        box = getattr(face, "box", None)
        self.box = None if box is None else self._map_box(box)
        self.landmarks = self._map_points(face.landmarks)  # type: ignore[attr-defined]

    def _map_box(self, box: np.ndarray) -> np.ndarray:
        return np.asarray(box, np.float64) * self._k + (self._k - 1) / 2

    def _map_points(self, points: np.ndarray) -> np.ndarray:
        p = np.array(points, np.float64)
        p *= self._k
        p[:, :2] += (self._k - 1) / 2
        return p

    @property
    def vertices(self) -> Optional[np.ndarray]:
        v = getattr(self._face, "vertices", None)  # computed on first use only: the dense overlay needs it
        return None if v is None else self._map_points(v)


def enlarge_for_viewing(image: np.ndarray, faces: Sequence, min_side: int = VIEW_MIN_SIDE) -> tuple[np.ndarray, list]:
    """``image`` enlarged :func:`viewing_scale` times (bicubic) and ``faces`` moved into its pixels, for the
    overlays of a small image (unchanged when it is large enough). ``faces``: :class:`mfirrn.inference.pipeline.Face`
    -like objects (``roi``, ``params``, ``landmarks``; ``box``, ``pose``, ``vertices`` when present); the
    returned faces carry the same attributes, mapped. An overlay drawn on the result is ``k`` times the image's
    size; the face's data (JSON, meshes) stay in the image's own pixels.

    >>> from types import SimpleNamespace
    >>> f = SimpleNamespace(roi=np.array([0.0, 0, 99, 99]), params=np.zeros(62), landmarks=np.array([[10.0, 20, 5]]))
    >>> big, (g,) = enlarge_for_viewing(np.zeros((100, 80, 3), np.uint8), [f])
    >>> big.shape, g.landmarks.tolist(), g.roi.tolist()   # k = 4: x -> 4 x + 1.5, z -> 4 z
    ((400, 320, 3), [[41.5, 81.5, 20.0]], [1.5, 1.5, 397.5, 397.5])
    """
    k = viewing_scale(image.shape, min_side)
    if k == 1:
        return image, list(faces)
    h, w = image.shape[:2]
    return cv2.resize(image, (w * k, h * k), interpolation=cv2.INTER_CUBIC), [_EnlargedFace(f, k) for f in faces]


def dense_dots(image_shape: Sequence[int], vertices: np.ndarray) -> tuple[int, int]:
    """How many of one face's dense vertices (N, >=2, image frame) :func:`draw_dense` draws, and the dots' radius.

    The dot grows with the image (radius ``max(h, w) // 1000`` pixels: 0, a single pixel, below 1000 pixels),
    so that the overlay still shows when a large photo is viewed whole, but stays below 1/150 of
    the face's size (a small face in a large photo gets single pixels). The count keeps the dots about 2.5 dot
    widths apart (at least 3 pixels) over the face's box, so that the face shows between them.

    >>> v = np.stack(np.meshgrid(np.arange(200.0), np.arange(200.0)), -1).reshape(-1, 2)  # a 199 px box
    >>> dense_dots((450, 450), v)   # single pixels 3 px apart: 0.7 * 199**2 / 3**2
    (3080, 0)
    >>> dense_dots((3000, 3000), v * 4)   # 7-pixel dots 17.5 px apart: 0.7 * 796**2 / 17.5**2
    (1448, 3)
    """
    xy = np.asarray(vertices)[:, :2]
    size = float(np.ptp(xy[:, 0])) * float(np.ptp(xy[:, 1]))  # the face's box, pixels^2
    radius = int(max(0, min(max(image_shape[:2]) // 1000, round(np.sqrt(size) / 150))))
    spacing = max(3.0, 2.5 * (2 * radius + 1))
    return int(min(len(xy), max(1, 0.7 * size / spacing**2))), radius  # the face fills about 70 % of its box


def draw_dense(image: np.ndarray, vertices: Sequence[np.ndarray], step: Optional[int] = None,
               color=(255, 200, 0), alpha: float = 0.8) -> np.ndarray:
    """A copy of ``image`` with a subsample of each face's dense vertices (N, >=2) drawn as dots.

    ``step=None`` (the default) draws every k-th vertex, k = N // the count :func:`dense_dots` gives, in dots of
    its size, so that they are visible and apart whatever the photo's and the face's size; the stride through
    the mesh's vertex order draws the dots along curves over the surface, as 3DDFA's figures do. An explicit
    ``step`` draws every ``step``-th vertex as single pixels. Dots are blended with the photo (``alpha``);
    occluded vertices are drawn too (the mesh seen through).
    """
    out = image.copy()
    h, w = image.shape[:2]
    colour = alpha * np.asarray(color, np.float32)
    for v in vertices:
        v = np.asarray(v)
        if step is None:
            count, radius = dense_dots(image.shape, v)
            xy = v[:: max(1, len(v) // count), :2]
        else:
            xy, radius = v[::step, :2], 0
        pts = np.round(xy).astype(np.int64)
        pts = pts[(pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)]
        if not len(pts):
            continue
        # within the face's box only: the cost follows the face, not the photo
        (x0, y0), (x1, y1) = np.maximum(pts.min(0) - radius, 0), np.minimum(pts.max(0) + radius + 1, (w, h))
        dots = np.zeros((y1 - y0, x1 - x0), np.uint8)
        dots[pts[:, 1] - y0, pts[:, 0] - x0] = 1
        if radius:
            dots = cv2.dilate(dots, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2))
        region, sel = out[y0:y1, x0:x1], dots.astype(bool)
        region[sel] = np.clip(np.round(colour + (1 - alpha) * region[sel].astype(np.float32)), 0, 255).astype(np.uint8)
    return out


def plot_mesh_points(ax, vertices: np.ndarray, colors: np.ndarray | None = None, step: int = 3, size: float = 2.0,
                     azim: float = -70.0, elev: float = 10.0):
    """Scatter every ``step``-th vertex (N, 3) of an image-frame mesh on a matplotlib 3D axis, viewed from the camera.

    ``colors``: RGB (N, 3) in [0, 1] (e.g. :func:`mfirrn.render.meshio.sample_colors`). The image y axis is
    flipped so the face is upright (its ticks still read image ``y``, growing downwards); the depth axis is
    ``z`` (larger = closer). ``azim=-90`` looks straight at the face. Each axis gets three ticks in small type; an axis seen nearly
    end-on (depth at ``azim`` near ±90) shows neither ticks nor label, which would pile up in one spot.
    """
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    v = np.asarray(vertices)[::step]
    c = None if colors is None else np.asarray(colors)[::step]
    ax.scatter(v[:, 0], v[:, 2], -v[:, 1], c=c, s=size, linewidths=0, depthshade=False)
    ax.view_init(elev=elev, azim=azim)
    ax.set_box_aspect((1, 1, 1))
    span = (v.max(0) - v.min(0)).max() / 2
    mid = (v.max(0) + v.min(0)) / 2
    ax.set_xlim(mid[0] - span, mid[0] + span)
    ax.set_ylim(mid[2] - span, mid[2] + span)
    ax.set_zlim(-mid[1] - span, -mid[1] + span)
    a = np.radians(azim)
    # how much of each horizontal axis lies across the line of sight: x as |sin(azim)|, depth as |cos(azim)|
    shown = {"x": abs(np.sin(a)), "y": abs(np.cos(a))}
    ax.zaxis.set_major_formatter(FuncFormatter(lambda t, _: f"{-t:g}"))  # plotted as -y, labelled as y
    for name, axis, label in (("x", ax.xaxis, "x (px)"), ("y", ax.yaxis, "z, depth (px)"), ("z", ax.zaxis, "y (px)")):
        axis.set_major_locator(MaxNLocator(3))
        ax.tick_params(axis=name, labelsize=7, pad=1)
        if shown.get(name, 1.0) < 0.2:  # seen end-on (within about 12 degrees)
            axis.set_ticklabels([])
            axis.set_label_text("")
        else:
            axis.set_label_text(label, fontsize=8)
            axis.labelpad = 8
    return ax


def merge_face_meshes(faces) -> tuple[np.ndarray, np.ndarray]:
    """All faces' dense meshes as one (vertices (N, 3) float32, triangles (T, 3) int32): one z-buffer pass,
    one mesh file."""
    verts, tris, offset = [], [], 0
    for f in faces:
        if f.vertices is None or f.triangles is None:
            raise ValueError("faces have no dense mesh; reconstruct with dense=True")
        if offset + len(f.vertices) > 2**31:
            raise ValueError(f"{len(faces)} faces hold more vertices than one mesh can index (2**31)")
        verts.append(np.asarray(f.vertices, np.float32))
        tris.append(np.asarray(f.triangles, np.int32) + np.int32(offset))
        offset += len(f.vertices)
    return np.concatenate(verts), np.concatenate(tris)


def face_normals(faces) -> np.ndarray:
    """The unit vertex normals (N, 3) float32 of all faces' dense meshes, in :func:`merge_face_meshes`' order,
    computed face by face: the merged mesh's own :func:`mfirrn.render.vertex_normals` (its faces share no
    vertex), without the memory of one pass over every face's triangles (a crowd of 142 faces: 4.4 GB)."""
    from mfirrn import render

    return np.concatenate([render.vertex_normals(f.vertices, f.triangles) for f in faces])


def _pncc_code(n_vertices: int) -> np.ndarray:
    """3DDFA's PNCC colour code (N, 3) in [0, 1] for the full (53215) or no-neck (38365) mesh."""
    from mfirrn.io.assets import fetch

    names = {53215: "pncc-code", 38365: "ncc-code"}
    if n_vertices not in names:
        raise ValueError(f"no PNCC code for a mesh of {n_vertices} vertices (full: 53215, no-neck: 38365)")
    return np.ascontiguousarray(np.load(fetch(names[n_vertices])).T.astype(np.float32))


def render_depth(image: np.ndarray, faces) -> np.ndarray:
    """Depth map of all faces (H, W) uint8: 255 = closest vertex, 0 = background (3DDFA style)."""
    from mfirrn import render

    v, t = merge_face_meshes(faces)
    d = render.depth_map(v, t, image.shape[0], image.shape[1])
    return np.clip(np.round(d * 255), 0, 255).astype(np.uint8)


def render_pncc(image: np.ndarray, faces) -> np.ndarray:
    """PNCC image of all faces (H, W, 3) uint8 BGR: each pixel coloured by the normalised mean-shape
    coordinate of the surface point it sees (x -> R, y -> G, z -> B), black background."""
    from mfirrn import render

    v, t = merge_face_meshes(faces)
    code = np.concatenate([_pncc_code(len(f.vertices)) for f in faces])
    img = render.pncc(v, t, code, image.shape[0], image.shape[1])
    return np.clip(np.round(img[..., ::-1] * 255), 0, 255).astype(np.uint8)


#: The shaded overlay's fade-in from each mesh's outline, as a fraction of the face's size (the larger side of its
#: mesh's box): the BFM mesh's cut edge is a line of small steps, which show on faces of a thousand pixels (a
#: 2 000-pixel face: steps of about 20 pixels, faded over 40); on a 200-pixel face it is a 4-pixel soft edge.
RENDER_FEATHER = 0.02


def feather_widths(shape: tuple[int, int], faces, feather: float = RENDER_FEATHER) -> Union[float, np.ndarray]:
    """The fade-in width (pixels) of :func:`render_shaded` for each pixel of an (H, W) image: ``feather`` times the
    size of the face whose mesh box holds it (the larger face where boxes overlap); a scalar for one face."""
    boxes = [(v.min(0), v.max(0)) for v in (np.asarray(f.vertices)[:, :2] for f in faces)]
    sizes = [float(feather * (hi - lo).max()) for lo, hi in boxes]
    if len(faces) == 1:
        return sizes[0]
    widths = np.zeros(shape, np.float32)
    for k in np.argsort(sizes):  # the larger face last
        (x0, y0), (x1, y1) = np.floor(boxes[k][0]).astype(int), np.ceil(boxes[k][1]).astype(int)
        widths[max(y0, 0):max(y1 + 1, 0), max(x0, 0):max(x1 + 1, 0)] = sizes[k]
    return widths


def render_shaded(image: np.ndarray, faces, alpha: float = 0.6, feather: float = RENDER_FEATHER) -> np.ndarray:
    """Grey Phong-shaded meshes blended over the photo (H, W, 3) uint8 BGR (3DDFA_V2-style overlay), each faded in
    from its outline over ``feather`` times the face's size (:data:`RENDER_FEATHER`; 0: a hard edge)."""
    from mfirrn import render

    v, t = merge_face_meshes(faces)
    widths = feather_widths(image.shape[:2], faces, feather) if feather > 0 and faces else 0.0
    out = render.shade(v, t, image.shape[0], image.shape[1], background=image.astype(np.float32) / 255.0, alpha=alpha,
                       normals=face_normals(faces), feather=widths)
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)


def render_textured(image: np.ndarray, faces) -> np.ndarray:
    """Meshes textured with the photo colours under their visible vertices, on black (H, W, 3) uint8 BGR;
    vertices the camera does not see (renderer visibility) are drawn grey."""
    from mfirrn import render
    from mfirrn.render import meshio

    v, t = merge_face_meshes(faces)
    h, w = image.shape[:2]
    colors = meshio.sample_colors(image, v)[:, ::-1].astype(np.float32)  # back to BGR order
    visible = render.visibility(v, t, h, w, eps=1.0)
    colors[~visible] = 0.5
    img, _ = render.rasterize(v, t, colors, h, w)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
