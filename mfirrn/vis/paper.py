"""The MFIRRN paper's figures made with any model, at paper sizes: dense alignment, reconstruction, NME by yaw, CED.

Each figure is one function that takes what a user has (photos and the faces a model reconstructed from them,
benchmark results) and returns a matplotlib figure exactly one column wide (:data:`SINGLE_COLUMN`, 3.33 in) or
two (:data:`DOUBLE_COLUMN`, 6.9 in), drawn in :data:`PAPER_STYLE` (7 pt text, nothing below 6 pt, so it stays
readable printed at that width). :func:`save_paper_figure` writes it as vector PDF (fonts embedded) and PNG at
that size. Redo them for your own model::

    model = mfirrn.models.load_checkpoint("runs/mine/best.pt")
    photos, faces = faces_on_photos(model, data, ["image02428.jpg", "image04292.jpg"])
    save_paper_figure(dense_alignment_figure(photos, faces), "figures", "dense_alignment")

* :func:`dense_alignment_figure` — per photo, the 68 landmarks and the dense mesh over it (the paper's
  AFLW2000-3D panel);
* :func:`reconstruction_strip` — per photo: the photo, the untextured mesh, the mesh textured from the photo;
* :func:`nme_by_yaw_table` / :func:`table_figure` — the NME-by-yaw table (published rows beside measured
  ones) as a DataFrame (LaTeX with :func:`mfirrn.evaluation.report.to_latex`) and as a figure;
* :func:`ced_figure` — cumulative error distributions with their AUC.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

__all__ = ["SINGLE_COLUMN", "DOUBLE_COLUMN", "PAPER_STYLE", "MIN_FONT_PT", "PAPER_IMAGES", "paper_style",
           "save_paper_figure", "face_box", "example_images", "faces_on_photos", "dense_alignment_figure",
           "reconstruction_strip", "nme_by_yaw_table", "table_figure", "ced_figure"]

SINGLE_COLUMN = 3.33  # inches: one column of a two-column paper (IEEE, ICASSP, CVPR)
DOUBLE_COLUMN = 6.9   # inches: the full text width
MIN_FONT_PT = 6.0     # the smallest text on any figure here
PAPER_STYLE: dict[str, Any] = {
    "font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "xtick.labelsize": 6, "ytick.labelsize": 6,
    "legend.fontsize": 6, "figure.titlesize": 7, "axes.linewidth": 0.6, "lines.linewidth": 1.0,
    "xtick.major.width": 0.6, "ytick.major.width": 0.6, "xtick.major.size": 2.5, "ytick.major.size": 2.5,
    "legend.frameon": False, "savefig.dpi": 300, "pdf.fonttype": 42, "ps.fonttype": 42,  # TrueType, editable
    "figure.constrained_layout.use": False,
}


@contextmanager
def paper_style() -> Iterator[None]:
    """Matplotlib settings of :data:`PAPER_STYLE` inside the ``with`` block (every function here uses it)."""
    import matplotlib

    with matplotlib.rc_context(PAPER_STYLE):
        yield


def save_paper_figure(fig: Any, out_dir: Union[str, Path], stem: str, dpi: int = 300) -> dict[str, Path]:
    """Write ``fig`` as ``<stem>.pdf`` (vector, fonts embedded) and ``<stem>.png`` (``dpi``) in ``out_dir``, at
    exactly the figure's size (no tight bounding box: a column-wide figure stays column-wide)."""
    from mfirrn.io.fileio import StagedOutputs

    out = Path(out_dir)
    paths = {"pdf": out / f"{stem}.pdf", "png": out / f"{stem}.png"}
    import io

    with StagedOutputs() as staged:  # both files or neither
        for kind, path in paths.items():
            buf = io.BytesIO()
            with paper_style():
                fig.savefig(buf, format=kind, dpi=dpi)
            staged.add(path, buf.getvalue())
    return paths


def face_box(points: np.ndarray, margin: float = 0.12, square: bool = True) -> tuple[int, int, int, int]:
    """A box ``(x0, y0, x1, y1)`` in pixels around image points (N, 2+), widened by ``margin`` of its size on
    each side, square around the points' centre by default.

    >>> face_box(np.array([[10.0, 20.0], [50.0, 40.0]]), margin=0.0)
    (10, 10, 50, 50)
    """
    p = np.asarray(points, np.float64)[:, :2]
    lo, hi = p.min(0), p.max(0)
    size = (hi - lo) * (1 + 2 * margin)
    if square:
        size = np.full(2, size.max())
    c = (lo + hi) / 2
    x0, y0 = np.floor(c - size / 2).astype(int)
    x1, y1 = np.ceil(c + size / 2).astype(int)
    return int(x0), int(y0), int(x1), int(y1)


def _crop(image: np.ndarray, box: tuple[int, int, int, int], fill: float = 255) -> np.ndarray:
    """``image[y0:y1, x0:x1]``, padded with ``fill`` where the box leaves the image."""
    x0, y0, x1, y1 = box
    out = np.full((y1 - y0, x1 - x0, *image.shape[2:]), fill, image.dtype)
    h, w = image.shape[:2]
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def _zoom(image: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """The ``box`` of ``image`` (padded white outside it) resized to ``size`` x ``size`` pixels."""
    import cv2

    crop = _crop(image, box)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC if size > crop.shape[1] else cv2.INTER_AREA)


#: The AFLW2000-3D images of the MFIRRN paper's dense-alignment figure.
PAPER_IMAGES = ("image02428.jpg", "image04292.jpg")


def example_images(data: Any, wanted: Sequence[str] = PAPER_IMAGES) -> tuple[list[str], str]:
    """``(names, note)``: the ``wanted`` images that ``data`` (an AFLW2000-3D set) holds, each missing one
    replaced by an image it does hold, with a |yaw| in (30, 60], then (60, 90], then [0, 30] (first in list
    order, none twice): a medium and a large pose, as figures of this kind show. ``note`` says what was
    replaced, or is empty.

    >>> from types import SimpleNamespace as NS
    >>> data = NS(names=["a.jpg", "b.jpg", "c.jpg"], yaw=np.array([10.0, -70.0, 45.0]), root="dev")
    >>> example_images(data, ["x.jpg", "b.jpg"])
    (['c.jpg', 'b.jpg'], 'x.jpg is not in dev (3 images): c.jpg (|yaw| 45°) stands in for it')
    """
    names = list(data.names)
    yaw = np.abs(np.asarray(data.yaw, np.float64))
    chosen = [w if w in names else None for w in wanted]
    used = {w for w in chosen if w is not None}
    bins = ((30, 60), (60, 90), (-1, 30))
    replaced = []
    for k, w in enumerate(chosen):
        if w is not None:
            continue
        for lo, hi in bins[len(replaced) % 2:] + bins[:len(replaced) % 2]:
            pick = next((n for n, y in zip(names, yaw) if lo < y <= hi and n not in used), None)
            if pick is not None:
                break
        if pick is None:
            raise ValueError(f"{data.root} holds too few images to show {len(wanted)}")
        chosen[k] = pick
        used.add(pick)
        replaced.append(f"{wanted[k]} is not in {data.root} ({len(names)} images): {pick} "
                        f"(|yaw| {yaw[names.index(pick)]:.0f}°) stands in for it")
    return chosen, "; ".join(replaced)


def faces_on_photos(model: Any, data: Any, names: Sequence[str], *, bfm: Any = None) -> tuple[list[np.ndarray],
                                                                                                list[SimpleNamespace]]:
    """The original photos (BGR) of AFLW2000-3D images ``names`` and ``model``'s faces on them, as the benchmark
    predicts them: from the dataset's 120x120 crops, mapped back to the photo with the crop boxes.

    ``data``: an :class:`mfirrn.evaluation.benchmark.AFLW2000` with the originals (``test.data/AFLW2000-3D/``).
    Each face has ``landmarks`` (68, 3), ``vertices`` (N, 3) and ``triangles`` of ``bfm`` (default: the
    no-neck mesh) in photo pixels, what :func:`dense_alignment_figure` and :func:`reconstruction_strip` draw.
    """
    import cv2
    import torch

    from mfirrn.geometry.bfm import MorphableModel
    from mfirrn.geometry.crop import crops_to_tensor
    from mfirrn.inference.predict import predict_params

    missing = [n for n in names if n not in data.names]
    if missing:
        raise ValueError(f"{', '.join(missing)} not in {data.root} ({len(data.names)} images); pick names from "
                         f"data.names or fetch the full set (`mfirrn data fetch aflw2000-3d --with-originals`)")
    idx = [data.names.index(n) for n in names]
    bfm = bfm if bfm is not None else MorphableModel("noneck")
    full = MorphableModel("full")
    params = predict_params(model, crops_to_tensor(data.crops[idx]))
    roi = torch.as_tensor(data.roi[idx], dtype=torch.float32)
    conv = model.card.convention
    with torch.no_grad():
        verts = bfm.vertices(params, convention=conv, roi=roi).numpy()
        lms = full.landmarks(params, convention=conv, roi=roi).numpy()
    photos = []
    for n in names:
        photo = cv2.imread(str(data.root / "AFLW2000-3D" / n))
        if photo is None:
            raise FileNotFoundError(f"{data.root / 'AFLW2000-3D' / n} is missing: the figures need the original "
                                    f"photos (`mfirrn data fetch aflw2000-3d --with-originals`)")
        photos.append(photo)
    faces = [SimpleNamespace(landmarks=lms[k], vertices=verts[k], triangles=bfm.triangles) for k in range(len(idx))]
    return photos, faces


def _grid(rows: int, cols: int, width: float, aspect: float = 1.0, title_lines: int = 1) -> tuple[Any, np.ndarray]:
    """A figure ``width`` inches wide of ``rows`` x ``cols`` image panels (height / width = ``aspect``), with room
    for a title of ``title_lines`` lines above each panel and nothing else between them."""
    import matplotlib.pyplot as plt

    gap, title = 0.04, 0.11 * title_lines + 0.03  # inches
    pw = (width - gap * (cols + 1)) / cols
    ph = pw * aspect
    height = rows * (ph + title) + gap
    fig = plt.figure(figsize=(width, height))
    axes = np.empty((rows, cols), object)
    for r in range(rows):
        for c in range(cols):
            left = gap + c * (pw + gap)
            bottom = height - (r + 1) * (ph + title)
            axes[r, c] = fig.add_axes((left / width, bottom / height, pw / width, ph / height))
            axes[r, c].set_axis_off()
    return fig, axes


def _panel_label(k: int) -> str:
    return f"({chr(ord('a') + k)})"


def dense_alignment_figure(photos: Sequence[np.ndarray], faces: Sequence[Any], names: Optional[Sequence[str]] = None,
                           *, width: float = DOUBLE_COLUMN, alpha: float = 0.65, size: int = 480) -> Any:
    """Per photo two panels: its 68 landmarks, and the dense mesh shaded over it (the paper's dense-alignment
    figure), each cropped to the face and drawn at ``size`` pixels. ``photos``: BGR uint8; ``faces``: one per
    photo with ``landmarks`` (68, 2+), ``vertices`` (N, 3), ``triangles`` (T, 3) in photo pixels (a
    :class:`mfirrn.inference.pipeline.Face`, or from :func:`faces_on_photos`). All photos sit in one row,
    ``width`` inches wide."""
    from mfirrn.vis.overlays import draw_landmarks, render_shaded

    if len(photos) != len(faces) or not photos:
        raise ValueError(f"dense_alignment_figure: give one face per photo, got {len(photos)} photos and "
                         f"{len(faces)} faces")
    names = list(names) if names is not None else [f"photo {k + 1}" for k in range(len(photos))]
    with paper_style():
        fig, axes = _grid(1, 2 * len(photos), width)
        for k, (photo, face) in enumerate(zip(photos, faces)):
            box = face_box(face.vertices)
            zoom = size / (box[2] - box[0])
            lm = (np.asarray(face.landmarks)[:, :2] - box[:2]) * zoom  # drawn after zooming: crisp at any size
            marks = draw_landmarks(_zoom(photo, box, size), [lm])
            dense = _zoom(render_shaded(photo, [face], alpha=alpha), box, size)
            for j, (img, what) in enumerate(((marks, "landmarks"), (dense, "dense"))):
                ax = axes[0, 2 * k + j]
                ax.imshow(img[..., ::-1])
                ax.set_title(f"{_panel_label(2 * k + j)} {names[k]}, {what}", pad=2)
    return fig


def _turned(vertices: np.ndarray, degrees: float) -> np.ndarray:
    """Vertices (N, 3) in image pixels turned by ``degrees`` about the vertical axis through their centre
    (positive: the face's left side, on the right of the photo, comes forward)."""
    v = np.asarray(vertices, np.float64)
    c = v.mean(0)
    a = np.radians(degrees)
    x, z = v[:, 0] - c[0], v[:, 2] - c[2]
    out = v.copy()
    out[:, 0] = c[0] + x * np.cos(a) + z * np.sin(a)
    out[:, 2] = c[2] - x * np.sin(a) + z * np.cos(a)
    return out


def _eye_line_yaw(landmarks: np.ndarray) -> float:
    """The yaw of a face in degrees, as the angle of the line between its outer eye corners (68-point
    landmarks 37 and 46, with depth) to the image's x axis; 0 for a frontal face or landmarks without depth."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape[1] < 3:
        return 0.0
    e = lm[45] - lm[36]
    return float(np.degrees(np.arctan2(e[2], e[0])))


def reconstruction_strip(photos: Sequence[np.ndarray], faces: Sequence[Any], names: Optional[Sequence[str]] = None,
                         *, width: float = DOUBLE_COLUMN, per_row: int = 2, view: Optional[float] = 30.0,
                         size: int = 360) -> Any:
    """Per photo three panels: the photo, the untextured mesh, the mesh textured from the photo; ``per_row``
    photos side by side, ``width`` inches wide. The meshes are shown in a three-quarter view, turned to ``view``
    degrees of yaw on the side the face shows in the photo, so their depth shows whatever the photo's pose
    (``None``: the photo's own view, where the textured mesh looks like the photo). Vertices the photo does
    not see are grey on the textured mesh. Inputs as :func:`dense_alignment_figure`; panels are rendered at
    ``size`` pixels."""
    from mfirrn import render
    from mfirrn.render import meshio

    if len(photos) != len(faces) or not photos:
        raise ValueError(f"reconstruction_strip: give one face per photo, got {len(photos)} photos and "
                         f"{len(faces)} faces")
    names = list(names) if names is not None else [f"photo {k + 1}" for k in range(len(photos))]
    per_row = max(1, min(per_row, len(photos)))
    with paper_style():
        fig, axes = _grid(-(-len(photos) // per_row), 3 * per_row, width)
        for k, (photo, face) in enumerate(zip(photos, faces)):
            v = np.asarray(face.vertices, np.float64)
            t = np.asarray(face.triangles)
            h, w = photo.shape[:2]
            colors = meshio.sample_colors(photo, v).astype(np.float32)  # RGB in [0, 1]
            colors[~render.visibility(v, t, h, w, eps=1.0)] = 0.6
            yaw = _eye_line_yaw(face.landmarks)
            turned = v if view is None else _turned(v, yaw - np.copysign(view, yaw))
            tb = face_box(turned)
            pix = (turned - [tb[0], tb[1], 0]) * (size / (tb[2] - tb[0]))  # one scale for x, y and z
            white = np.ones((size, size, 3), np.float32)
            mesh = render.shade(pix, t, size, size, light_dir=(0.3, -0.4, 1.0), background=white, alpha=1.0)
            textured, _ = render.rasterize(pix, t, colors, size, size, white)
            panels = ((_zoom(photo, face_box(v), size)[..., ::-1], names[k]), (mesh, "3D mesh"),
                      (np.clip(textured, 0, 1), "textured"))
            for j, (img, what) in enumerate(panels):
                ax = axes[k // per_row, 3 * (k % per_row) + j]
                ax.imshow(img)
                ax.set_title(f"{_panel_label(3 * k + j)} {what}", pad=2)
        for ax in axes.ravel()[3 * len(photos):]:
            ax.remove()
    return fig


def nme_by_yaw_table(table: Any, published: Optional[Sequence[str]] = None, first: Optional[str] = None) -> Any:
    """The paper's NME-by-yaw table from a :func:`mfirrn.evaluation.report.comparison_table`: the published
    rows a reader compares with (default :data:`mfirrn.evaluation.report.HEADLINE_PUBLISHED`), then every
    measured row (``first`` first, then by Mean); columns method, the three yaw bins, Mean, Std. Write it with
    :func:`mfirrn.evaluation.report.to_latex`, draw it with :func:`table_figure`."""
    from mfirrn.evaluation import report

    rows = report.headline_rows(table, published if published is not None else report.HEADLINE_PUBLISHED,
                                first=first)
    return rows[["method", "kind", *report.BIN_COLUMNS, "Mean", "Std"]].reset_index(drop=True)


def table_figure(rows: Any, *, width: float = SINGLE_COLUMN, digits: int = 2, title: Optional[str] = None) -> Any:
    """A table of numbers drawn as a figure ``width`` inches wide, centred: the first column's names (shortened
    with "…" where the numbers would not fit beside them), the numeric columns with ``digits`` decimals
    (``–`` where empty), the lowest of each numeric column in bold, published and measured rows parted by a
    rule (column ``kind``, if present, is not drawn)."""
    import matplotlib.pyplot as plt
    import pandas as pd

    cols = [c for c in rows.columns if c != "kind"]
    numeric = [c for c in cols[1:] if pd.api.types.is_numeric_dtype(rows[c])]
    best = {c: rows[c].min() for c in numeric}
    n = len(rows)
    line = 0.135  # inches per row at 6 pt
    top = 0.18 if title else 0.0
    with paper_style():
        height = (n + 1) * line + 0.08 + top
        fig = plt.figure(figsize=(width, height))
        ax = fig.add_axes((0, 0, 1, 1 - top / height))
        ax.set_axis_off()
        ax.set_xlim(0, 1)
        ax.set_ylim(n + 0.6, -0.6)
        renderer = fig.canvas.get_renderer()

        def text_width(text: str, **kw: Any) -> float:  # in axes fraction
            t = ax.text(0, 0, text, fontsize=6, **kw)
            w = t.get_window_extent(renderer).width / ax.get_window_extent(renderer).width
            t.remove()
            return w

        num_w = max([text_width(f"{v:.{digits}f}", fontweight="bold") for c in numeric for v in rows[c].dropna()]
                    + [text_width(str(c), fontweight="bold") for c in cols[1:]] + [0.04])
        step = num_w + 0.03  # one numeric column, with its gap
        room = 0.98 - step * (len(cols) - 1)  # what the names may take
        shortened = []
        for name in (str(v) for v in rows[cols[0]]):
            while text_width(name) > room and len(name) > 4:
                name = name.rstrip("…")[:-1] + "…"
            shortened.append(name)
        names_w = max([text_width(x) for x in shortened] + [text_width(str(cols[0]), fontweight="bold")])
        left = max(0.01, (1 - names_w - step * (len(cols) - 1)) / 2)  # the table centred in the width
        xs = [left] + [left + names_w + step * j for j in range(1, len(cols))]

        def rule(y: float, lw: float) -> None:  # as wide as the table
            ax.plot([xs[0] - 0.005, xs[-1] + 0.005], [y, y], color="black", lw=lw, solid_capstyle="butt")
        for j, c in enumerate(cols):
            ax.text(xs[j], 0, str(c), ha="left" if j == 0 else "right", va="center", fontweight="bold", fontsize=6)
        rule(0.5, 0.6)
        kinds = list(rows["kind"]) if "kind" in rows.columns else [""] * n
        for i, (_, row) in enumerate(rows.iterrows(), start=1):
            if i > 1 and kinds[i - 1] != kinds[i - 2]:
                rule(i - 0.5, 0.4)
            ax.text(xs[0], i, shortened[i - 1], ha="left", va="center", fontsize=6)
            for j, c in enumerate(cols[1:], start=1):
                v = row[c]
                if c in numeric:
                    bold = not pd.isna(v) and np.isclose(v, best[c])
                    ax.text(xs[j], i, "–" if pd.isna(v) else f"{v:.{digits}f}", ha="right", va="center", fontsize=6,
                            fontweight="bold" if bold else "normal")
                else:
                    ax.text(xs[j], i, str(v), ha="right", va="center", fontsize=6)
        rule(n + 0.5, 0.6)
        if title:
            fig.suptitle(title, y=1 - 0.03 / height, va="top", fontsize=7)
    return fig


def ced_figure(curves: Mapping[str, np.ndarray], *, width: float = SINGLE_COLUMN, max_nme: float = 10.0,
               title: Optional[str] = None) -> Any:
    """Cumulative error distributions, one curve per model (name -> per-image NME in %, e.g. ``result.nme * 100``),
    with the area under each up to ``max_nme`` (AUC, 1 = every image at 0 %) in the legend, best first."""
    import matplotlib.pyplot as plt

    from mfirrn.evaluation.report import ced_curve

    with paper_style():
        fig, ax = plt.subplots(figsize=(width, width * 0.72))
        scored = []
        for name, values in curves.items():
            t, f = ced_curve(values, max_nme=max_nme)
            keep = t <= max_nme
            scored.append((float(np.trapezoid(f[keep], t[keep]) / max_nme), name, t, f))
        for auc, name, t, f in sorted(scored, key=lambda s: -s[0]):
            ax.plot(t, f, label=f"{name} (AUC {auc:.3f})")
        ax.set_xlim(0, max_nme)
        ax.set_ylim(0, 1.0)
        ax.set_xlabel("NME (%)")
        ax.set_ylabel("fraction of images")
        ax.grid(alpha=0.3, lw=0.4)
        ax.legend(loc="lower right", handlelength=1.5)
        if title:
            ax.set_title(title)
        fig.tight_layout(pad=0.3)
    return fig
