"""mfirrn.vis.mesh3d: plotly figures, standalone HTML, and a headless-Chromium check that the 3D view renders."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mfirrn.vis import mesh3d as vis3d

CHROMIUM = "/usr/bin/chromium"


def _sphere(n=24):
    th, ph = np.meshgrid(np.linspace(0.1, np.pi - 0.1, n), np.linspace(0, 2 * np.pi, n, endpoint=False), indexing="ij")
    v = np.stack([np.sin(th) * np.cos(ph), np.cos(th), np.sin(th) * np.sin(ph)], -1).reshape(-1, 3) * 100 + [200, 200, 0]
    tri = []
    for i in range(n - 1):
        for j in range(n):
            a, b, c, d = i * n + j, i * n + (j + 1) % n, (i + 1) * n + j, (i + 1) * n + (j + 1) % n
            tri += [[a, c, b], [b, c, d]]
    return v, np.array(tri)


def test_mesh_figure_has_mesh_landmarks_wireframe_and_buttons():
    v, t = _sphere()
    fig = vis3d.mesh_figure(v, t, colors=np.full((len(v), 3), 0.5), landmarks=v[:68])
    kinds = [tr.type for tr in fig.data]
    assert kinds == ["mesh3d", "scatter3d", "scatter3d"]
    assert fig.data[0].y.max() == pytest.approx(-v[:, 1].min())  # y flipped: upright
    labels = [b.label for m in fig.layout.updatemenus for b in m.buttons]
    assert {"landmarks on", "wireframe off", "shaded", "flat colour"} <= set(labels)
    fig2 = vis3d.side_by_side([(v, t, None, None), (v, t, None, v[:5])], ["prediction", "ground truth"])
    assert fig2.layout.scene2 is not None


def test_export_html_is_self_contained(tmp_path):
    v, t = _sphere(8)
    p = vis3d.export_html(vis3d.mesh_figure(v, t), tmp_path / "m.html")
    text = p.read_text()
    import re

    assert not re.search(r"<script[^>]*\bsrc=", text), "an external script: the page would need the network"
    assert len(text) > 1_000_000  # plotly.js inlined


def _browser_or_skip():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        if os.environ.get("MFIRRN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is required (MFIRRN_REQUIRE_BROWSER=1); apt-get install -y chromium")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium); set MFIRRN_REQUIRE_BROWSER=1 to require it")
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


def _chromium(exe, tmp_path, *extra):
    args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--virtual-time-budget=10000", *extra]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_standalone_html_renders_a_3d_view_in_headless_chromium(tmp_path):
    import cv2

    exe = _browser_or_skip()
    v, t = _sphere(32)
    page = vis3d.export_html(vis3d.mesh_figure(v, t, wireframe=False, width=600, height=500), tmp_path / "mesh.html")
    dom = _chromium(exe, tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "gl-container" in dom.stdout and "<canvas" in dom.stdout
    shot = tmp_path / "shot.png"
    run = _chromium(exe, tmp_path, f"--screenshot={shot}", "--window-size=600,500", page.as_uri())
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    img = cv2.imread(str(shot), cv2.IMREAD_GRAYSCALE)
    plot_area = img[120:420, 150:450].astype(float)  # below the buttons, around the centre
    assert plot_area.std() > 5 and (plot_area < 200).mean() > 0.2, "the 3D view is blank"


def test_buttons_and_tool_bar_leave_the_titles_free():
    v, t = _sphere()
    figs = [vis3d.mesh_figure(v, t, landmarks=v[:68], title="a title"),
            vis3d.side_by_side([(v, t, None, None), (v, t, None, v[:5])], ["prediction", "ground truth"])]
    for fig in figs:
        assert fig.layout.updatemenus
        for menu in fig.layout.updatemenus:  # in the strip below the scenes, not over a title
            assert menu.y <= 0 and menu.yanchor == "top"
        assert fig.layout.margin.b >= vis3d.BUTTON_STRIP
    assert figs[0].layout.title.xanchor == "left" and figs[0].layout.title.x < 0.1  # the tool bar is top right
    assert figs[1].layout.margin.t >= vis3d.MODEBAR_STRIP + 20  # subplot titles below the tool bar


def test_notebook_renderer_draws_offline_without_a_kernel():
    import plotly.io as pio

    v, t = _sphere(8)
    before = pio.renderers.default
    try:
        assert vis3d.use_notebook_renderer() == pio.renderers.default == vis3d.NOTEBOOK_RENDERER
        html = pio.renderers["mfirrn_notebook"].to_mimebundle(vis3d.mesh_figure(v, t).to_dict())["text/html"]
    finally:
        pio.renderers.default = before
    import re

    assert "Plotly.newPlot" in html  # drawn by the page itself (static copies: nbconvert HTML, docs site)
    assert not re.search(r"<script[^>]*\bsrc=", html), "a script from the internet"
    assert "plotly.js v" not in html  # the library comes once per notebook, not with every figure


@pytest.fixture(scope="module")
def noneck():
    from mfirrn.geometry.bfm import MorphableModel

    return MorphableModel("noneck")


def _plotly_array(value) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array ``{"dtype": ..., "bdata": base64}`` (plotly >= 6)."""
    if isinstance(value, dict):
        import base64

        return np.frombuffer(base64.b64decode(value["bdata"]), np.dtype(value["dtype"]))
    return np.asarray(value)


def test_coefficient_explorer_draws_inside_its_widget(noneck):
    box = vis3d.coefficient_explorer(noneck, n_shape=2, n_exp=2)
    out = box.figure_output
    assert len(out.outputs) == 1 and "application/vnd.plotly.v1+json" in out.outputs[0]["data"]
    before = box.current_vertices()
    box.sliders["shape 1"].value = 3.0
    assert len(out.outputs) == 1, "a slider change must replace the figure, not add one"
    after = box.current_vertices()
    assert np.abs(after - before).max() > 1.0
    mesh = out.outputs[0]["data"]["application/vnd.plotly.v1+json"]["data"][0]
    scene = out.outputs[0]["data"]["application/vnd.plotly.v1+json"]["layout"]["scene"]
    # the effect is visible: one fixed scale (a bigger face looks bigger), vertices coloured by how far they moved
    assert scene["xaxis"]["autorange"] is False and scene["aspectmode"] == "cube"
    assert abs(scene["xaxis"]["range"][1]) > np.abs(after[:, 0]).max()  # the whole face inside the fixed view
    moved = _plotly_array(mesh["intensity"])
    assert moved.max() > 3.0, "shape 1 at +3 std moves the face by more than 3 % of its height somewhere"
    box.sliders["shape 1"].value = 0.0
    zero = _plotly_array(out.outputs[0]["data"]["application/vnd.plotly.v1+json"]["data"][0]["intensity"])
    assert np.abs(zero).max() < 1e-6


def test_wireframe_is_a_coarse_connected_mesh(noneck):
    """The wireframe is the edge set of a coarse copy of the mesh (every vertex on the surface, edges that
    join up into a net), not a random sample of the fine mesh's edges (scattered specks)."""
    from mfirrn.geometry.params import ParamStats

    stats = ParamStats.from_asset("stats-3ddfa-v2")
    v = vis3d._coefficient_vertices(noneck, stats, stats.mean, [], [])
    w = vis3d.wireframe_edges(v, noneck.triangles, cells=24)
    ends = w[~np.isnan(w).any(1)]
    assert 300 < len(ends) // 2 < 4000
    on_surface = {tuple(p) for p in np.round(v, 6)}
    assert all(tuple(p) in on_surface for p in np.round(ends, 6))  # line ends are mesh vertices
    uniq, degree = np.unique(np.round(ends, 6), axis=0, return_counts=True)
    assert np.median(degree) >= 5  # a net: most coarse vertices join five or six edges, a random sample one
    lengths = np.linalg.norm(w[0::3] - w[1::3], axis=1)
    assert np.median(lengths) > 0.5 * np.ptp(v[:, :2], axis=0).max() / 24  # edges about a cell long


def test_coefficient_sweep_shows_each_coefficient_moving_the_face(noneck):
    fig = vis3d.coefficient_sweep(noneck, coefficients=[("shape", 0), ("exp", 0)], values=(-3, 0, 3), size=96)
    panels = np.stack([ax.images[0].get_array() for ax in fig.axes])  # (6, 96, 96, 3) row by row
    assert panels.shape == (6, 96, 96, 3) and all(p.std() > 0.05 for p in panels)  # a face on each
    assert np.abs(panels[0] - panels[1]).mean() > 1e-3 and np.abs(panels[3] - panels[4]).mean() > 1e-3
    np.testing.assert_array_equal(panels[1], panels[4])  # the mean face in both rows
    with pytest.raises(ValueError, match="shape"):
        vis3d.coefficient_sweep(noneck, coefficients=[("shape", 40)])
