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
