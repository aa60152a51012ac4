"""Matplotlib figures a reader looks at: readable axes (no tick labels piled up or overlapping), and the paper
figures of :mod:`mfirrn.vis.paper` at paper sizes with fonts that stay readable there."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _overlapping_labels(fig, texts) -> list[tuple[str, str]]:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_visible() and t.get_text()]
    return [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb)]


def _face_cloud() -> np.ndarray:
    """A face-sized half ellipsoid in image pixels (x right, y down, z towards the camera)."""
    th, ph = np.meshgrid(np.linspace(0, np.pi / 2, 30), np.linspace(0, 2 * np.pi, 60), indexing="ij")
    return np.stack([200 + 80 * np.sin(th) * np.cos(ph), 250 + 100 * np.sin(th) * np.sin(ph), 60 * np.cos(th)],
                    -1).reshape(-1, 3)


@pytest.mark.parametrize("azim", [-90, -45, -70])
def test_mesh_points_axes_are_readable(azim):
    from mfirrn.vis.overlays import plot_mesh_points

    fig = plt.figure(figsize=(5, 4.6))
    ax = fig.add_subplot(projection="3d")
    plot_mesh_points(ax, _face_cloud(), azim=azim, step=1)
    fig.canvas.draw()

    def shown(axis):  # the tick labels drawn: inside the axis' limits
        lo, hi = sorted(axis.get_view_interval())
        return [t for t, loc in zip(axis.get_ticklabels(), axis.get_majorticklocs()) if t.get_text() and lo <= loc <= hi]

    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        labels = shown(axis)
        assert len(labels) <= 4
        assert not _overlapping_labels(fig, labels), f"tick labels pile up at azimuth {azim}"
    texts = [*shown(ax.xaxis), *shown(ax.yaxis), *shown(ax.zaxis)]
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):  # an axis label never sits on tick labels
        if axis.label.get_text():
            assert not [p for p in _overlapping_labels(fig, [axis.label, *texts]) if axis.label.get_text() in p]
    assert ax.zaxis.label.get_text() == "y (px)"
    ticks = [float(t.get_text().replace("−", "-")) for t in shown(ax.zaxis)]
    assert ticks and min(ticks) > 0  # image y, not its negative
    if azim == -90:  # the depth axis is seen end-on: nothing to read there
        assert not ax.yaxis.label.get_text() and not shown(ax.yaxis)
    else:
        assert ax.yaxis.label.get_text() == "z, depth (px)"
    plt.close(fig)


# --- the paper figures (mfirrn.vis.paper) ---------------------------------------------------------------------------


def _texts(fig):
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _check_paper_figure(fig, width: float, tmp_path, stem: str, vector: bool) -> None:
    """Exactly ``width`` inches wide, every text at least MIN_FONT_PT, saved as PDF (fonts embedded; no raster
    for a ``vector`` figure) and PNG of the same size."""
    from PIL import Image

    from mfirrn.vis import paper

    assert fig.get_size_inches()[0] == pytest.approx(width)
    small = [(t.get_text(), t.get_fontsize()) for t in _texts(fig) if t.get_fontsize() < paper.MIN_FONT_PT]
    assert not small, f"text below {paper.MIN_FONT_PT} pt: {small}"
    paths = paper.save_paper_figure(fig, tmp_path, stem)
    pdf = paths["pdf"].read_bytes()
    assert pdf.startswith(b"%PDF") and (b"/FontFile2" in pdf or b"/FontFile" in pdf)  # fonts travel with it
    assert (b"/Subtype /Image" in pdf) == (not vector)
    with Image.open(paths["png"]) as png:
        assert png.size[0] == round(width * 300) and abs(png.size[1] - fig.get_size_inches()[1] * 300) <= 1
    plt.close(fig)


@pytest.fixture(scope="module")
def sample_faces(sample_photo):
    """Two photos and their faces from the pipeline: what a user passes for their own photos."""
    from mfirrn.inference.pipeline import Reconstructor, read_image

    rec = Reconstructor("3ddfa-v2-mb05", mesh="noneck")
    photo = read_image(sample_photo)
    face = rec(photo)[0]
    flipped = photo[:, ::-1].copy()  # the same face looking the other way
    return [photo, flipped], [face, rec(flipped)[0]]


def test_dense_alignment_and_reconstruction_strip(sample_faces, tmp_path):
    from mfirrn.vis import paper

    photos, faces = sample_faces
    fig = paper.dense_alignment_figure(photos, faces, ["a", "b"])
    assert len([ax for ax in fig.axes if ax.images]) == 4
    _check_paper_figure(fig, paper.DOUBLE_COLUMN, tmp_path, "dense", vector=False)
    fig = paper.reconstruction_strip(photos * 2 + photos[:1], faces * 2 + faces[:1], per_row=2)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 15 and len(fig.axes) == 15  # 5 photos x 3 panels, two per row, nothing left over
    titles = [ax.get_title() for ax in panels]
    assert titles[:3] == ["(a) photo 1", "(b) 3D mesh", "(c) textured"]
    for ax in panels[1:3]:  # the meshes drawn on white, the face filling a good part of the panel
        img = ax.images[0].get_array()
        covered = (np.asarray(img)[..., :3] < 0.98).any(-1).mean()
        assert 0.2 < covered < 0.9
    _check_paper_figure(fig, paper.DOUBLE_COLUMN, tmp_path, "strip", vector=False)
    with pytest.raises(ValueError, match="one face per photo"):
        paper.reconstruction_strip(photos, faces[:1])


def test_mesh_turned_to_a_three_quarter_view():
    from mfirrn.vis.paper import _eye_line_yaw, _turned

    lm = np.zeros((68, 3))
    lm[36], lm[45] = [0, 0, 0], [10, 0, 10]  # the left eye corner 10 px nearer: a face turned 45 degrees
    assert _eye_line_yaw(lm) == pytest.approx(45.0)
    assert _eye_line_yaw(lm[:, :2]) == 0.0
    turned = _turned(lm, 45.0)  # turning by the yaw brings the eye line square to the camera
    assert turned[45, 2] - turned[36, 2] == pytest.approx(0.0, abs=1e-9)
    assert np.linalg.norm(turned[45] - turned[36]) == pytest.approx(np.linalg.norm(lm[45] - lm[36]))


def _table():
    from mfirrn.evaluation import report
    from mfirrn.evaluation.benchmark import BenchmarkResult
    from mfirrn.evaluation.metrics import summarize_by_yaw

    rng = np.random.default_rng(0)
    yaw = np.r_[np.full(20, 10.0), np.full(10, 45.0), np.full(10, 75.0)]
    results = []
    for name, scale in (("3ddfa-v2-mb05", 1.0), ("a-model-with-a-rather-long-checkpoint-name", 0.9)):
        nme = np.abs(rng.normal(0.035, 0.01, len(yaw))) * scale
        results.append(BenchmarkResult(name, "original", [f"i{k}" for k in range(len(yaw))], yaw, nme,
                                       np.zeros((len(yaw), 68, 3)), summarize_by_yaw(nme, yaw)))
    return report.comparison_table(results, split="test"), results


def test_nme_by_yaw_table_and_its_figure(tmp_path):
    from mfirrn.evaluation import report
    from mfirrn.vis import paper

    table, results = _table()
    rows = paper.nme_by_yaw_table(table, first="3ddfa-v2-mb05")
    assert list(rows["method"]) == [*report.HEADLINE_PUBLISHED, "3ddfa-v2-mb05",
                                    "a-model-with-a-rather-long-checkpoint-name"]
    assert list(rows.columns) == ["method", "kind", *report.BIN_COLUMNS, "Mean", "Std"]
    assert rows.loc[4, "Mean"] == pytest.approx(results[0].summary.mean)
    for width in (paper.SINGLE_COLUMN, paper.DOUBLE_COLUMN):
        fig = paper.table_figure(rows, width=width, title="NME (%)")
        texts = _texts(fig)
        assert not _overlapping_labels(fig, texts), "table cells run into each other"
        shown = [t.get_text() for t in texts]
        assert "SynergyNet (3DV21)" in shown and "3.41" in shown and "–" in shown  # no Std published
        if width == paper.SINGLE_COLUMN:
            assert any(t.endswith("…") for t in shown)  # the long name shortened to leave room for the numbers
        bold = [t.get_text() for t in texts if t.get_fontweight() == "bold" and t.get_text()[0].isdigit()]
        assert "3.41" in bold  # the lowest mean
        _check_paper_figure(fig, width, tmp_path, f"table{width}", vector=True)


def test_ced_figure(tmp_path):
    from mfirrn.vis import paper

    fig = paper.ced_figure({"perfect": np.zeros(10), "half": np.full(10, 5.0)}, title="CED")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0].startswith("perfect (AUC 1.0") and labels[1].startswith("half (AUC 0.50")  # best first
    _check_paper_figure(fig, paper.SINGLE_COLUMN, tmp_path, "ced", vector=True)


def test_faces_on_photos_follow_the_benchmark(dev_root):
    """The figures' faces on AFLW2000-3D photos are the benchmark's predictions: same 68 landmarks."""
    from mfirrn import models
    from mfirrn.evaluation.benchmark import AFLW2000, evaluate
    from mfirrn.vis import paper

    data = AFLW2000.load(dev_root, limit=3)
    model = models.create("3ddfa-v2-mb05")
    photos, faces = paper.faces_on_photos(model, data, data.names[1:3])
    result = evaluate(model, data)
    for k, face in enumerate(faces, start=1):
        np.testing.assert_allclose(face.landmarks[:, :2], result.landmarks[k][:, :2], atol=1e-3)
        assert photos[k - 1].shape[:2] == (450, 450) and face.vertices.shape == (38365, 3)
    with pytest.raises(ValueError, match="image02428.jpg not in"):
        paper.faces_on_photos(model, data, ["image02428.jpg"])
