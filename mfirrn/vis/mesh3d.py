"""Interactive 3D views of reconstructions (plotly), and widgets that teach what the 3DMM does.

Frames: functions take meshes in the workbench's *image frame* (:meth:`mfirrn.geometry.bfm.MorphableModel.vertices`
with a ``roi``: x right, y **down**, z towards the viewer, pixels) and show them upright: plotly gets
``(x, -y, z)`` and a camera looking along -z, so the first view is the photo's view.

* :func:`mesh_figure` — a ``plotly.graph_objects.Mesh3d`` with per-vertex colours (e.g. sampled from the
  photo with :func:`mfirrn.render.meshio.sample_colors`), optional 68 landmarks and a wireframe, and buttons
  that toggle landmarks / wireframe / shading without a kernel.
* :func:`side_by_side` — two meshes (prediction vs ground truth) in one figure.
* :func:`export_html` — a standalone HTML file with plotly.js inlined (no CDN, works offline).
* :func:`coefficient_explorer` — ipywidgets sliders over shape, expression and pose coefficients that
  rebuild the mesh; needs a live kernel to react, but builds headless.
* :func:`coefficient_sweep` — the same lesson as a static matplotlib figure (mean face and ±k std of a few
  coefficients), for readers of a static copy of a notebook.
* :func:`use_notebook_renderer` — plotly output that JupyterLab draws *and* static copies (nbconvert HTML,
  the docs site) draw without a kernel or the internet (plotly.js embedded once per notebook).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from mfirrn.io.checks import check_shape

__all__ = ["mesh_figure", "side_by_side", "export_html", "coefficient_explorer", "coefficient_sweep",
           "use_notebook_renderer", "wireframe_edges", "LIGHTING", "NOTEBOOK_RENDERER"]

# plotly Mesh3d lighting: "shaded" (diffuse + specular) and "flat colour" (ambient only, photo colours as is)
LIGHTING = {
    "shaded": dict(ambient=0.35, diffuse=0.8, specular=0.15, roughness=0.6, fresnel=0.1),
    "flat": dict(ambient=1.0, diffuse=0.0, specular=0.0, roughness=1.0, fresnel=0.0),
}


def _to_plot(v: np.ndarray) -> np.ndarray:
    """Image frame -> plotly frame (y up); float32, which plotly stores as compact typed arrays."""
    v = np.asarray(v, np.float32)
    return np.stack([v[:, 0], -v[:, 1], v[:, 2]], axis=1)


def wireframe_edges(vertices: np.ndarray, triangles: np.ndarray, cells: int = 32) -> np.ndarray:
    """Line coordinates (3M, 3), NaN-separated (plotly lines), of the edges of a coarse copy of the mesh: a
    wireframe a reader can see, where the mesh's own ~10^5 edges would be a grey smear (and a random sample
    of them scattered specks).

    The coarse copy is made by vertex clustering: space is cut into cubes of ``1/cells`` of the mesh's
    larger x-y extent, each cube's vertices merge into the one nearest their mean (so every line ends on
    the surface), and the triangles that still join three cubes keep their edges. About ``cells``² / 2
    vertices remain on a face.

    >>> v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]); t = np.array([[0, 1, 2], [1, 3, 2]])
    >>> len(wireframe_edges(v, t, cells=1)) // 3, len(wireframe_edges(v, t, cells=2)) // 3   # merged; all 5 edges
    (0, 5)
    """
    v = np.asarray(vertices, np.float64)
    t = np.asarray(triangles, np.int64)
    side = max(float(np.ptp(v[:, :2], axis=0).max()), 1e-9) / max(cells, 1) * (1 + 1e-9)
    keys = np.floor((v - v.min(0)) / side).astype(np.int64)
    _, cluster = np.unique(keys, axis=0, return_inverse=True)
    cluster = cluster.ravel()
    n = int(cluster.max()) + 1
    mean = np.zeros((n, 3))
    np.add.at(mean, cluster, v)
    mean /= np.bincount(cluster, minlength=n)[:, None]
    dist = np.linalg.norm(v - mean[cluster], axis=1)  # the member nearest the mean represents the cube
    order = np.lexsort((dist, cluster))
    first = order[np.r_[True, cluster[order][1:] != cluster[order][:-1]]]
    rep = np.empty((n, 3))
    rep[cluster[first]] = v[first]
    ct = cluster[t]
    ct = ct[(ct[:, 0] != ct[:, 1]) & (ct[:, 1] != ct[:, 2]) & (ct[:, 0] != ct[:, 2])]
    e = np.concatenate([ct[:, [0, 1]], ct[:, [1, 2]], ct[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0) if len(e) else np.zeros((0, 2), np.int64)
    out = np.full((len(e) * 3, 3), np.nan)
    out[0::3], out[1::3] = rep[e[:, 0]], rep[e[:, 1]]
    return out


def _mesh_traces(vertices: np.ndarray, triangles: np.ndarray, colors: Optional[np.ndarray], landmarks: Optional[np.ndarray],
                 wireframe: bool, name: str, cells: int, scene: str = "scene") -> list:
    import plotly.graph_objects as go

    v = np.asarray(vertices)
    check_shape(v, (None, 3), "vertices")
    t = np.asarray(triangles, np.int64)
    check_shape(t, (None, 3), "triangles")
    p = _to_plot(v)
    if colors is None:
        vc = None
        color = "lightgrey"
    else:
        c = np.asarray(colors, np.float64)
        check_shape(c, (len(v), 3), "colors")
        c = c / 255.0 if c.max() > 1.0 else c
        vc = [f"rgb({r},{g},{b})" for r, g, b in np.round(np.clip(c, 0, 1) * 255).astype(int)]
        color = None
    t32 = t.astype(np.int32)
    traces = [go.Mesh3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], i=t32[:, 0], j=t32[:, 1], k=t32[:, 2], vertexcolor=vc, color=color,
                        lighting=LIGHTING["shaded"] if colors is None else LIGHTING["flat"],
                        lightposition=dict(x=0, y=0, z=1e5), flatshading=False, name=name, showscale=False,
                        hoverinfo="skip", scene=scene)]
    if landmarks is not None:
        lm = _to_plot(np.asarray(landmarks)[:, :3])
        traces.append(go.Scatter3d(x=lm[:, 0], y=lm[:, 1], z=lm[:, 2] + 1.0, mode="markers",
                                   marker=dict(size=3, color="red"), name=f"{name}: landmarks", scene=scene))
    if wireframe:
        w = _to_plot(wireframe_edges(v, t, cells))
        lift = 0.004 * float(np.ptp(p[:, :2], axis=0).max())  # towards the viewer: lines stay above the surface
        traces.append(go.Scatter3d(x=w[:, 0], y=w[:, 1], z=w[:, 2] + lift, mode="lines",
                                   line=dict(color="rgb(20,20,60)", width=1.5), opacity=0.8, visible=False,
                                   name=f"{name}: wireframe", hoverinfo="skip", scene=scene))
    return traces


def _scene() -> dict:
    return dict(aspectmode="data", camera=dict(eye=dict(x=0, y=0, z=2.0), up=dict(x=0, y=1, z=0)),
                xaxis=dict(visible=False), yaxis=dict(visible=False), zaxis=dict(visible=False))


# Toggle buttons sit in a strip below the 3D scenes, so they never cover the figure's title or the subplot
# titles at the top (plotly draws menus over everything else).
BUTTON_STRIP = 44  # px, bottom margin that holds the buttons
MODEBAR_STRIP = 50  # px, top margin: plotly's tool bar and the title (subplot titles go below it)


def _toggle_buttons(fig: Any) -> None:
    """Buttons (no kernel needed): landmarks on/off, wireframe on/off, shaded vs flat colour; in a strip
    below the scenes (``BUTTON_STRIP`` px of bottom margin)."""
    names = [tr.name or "" for tr in fig.data]
    kinds = ["landmarks" if n.endswith("landmarks") else "wireframe" if n.endswith("wireframe") else "mesh" for n in names]
    mesh_idx = [i for i, k in enumerate(kinds) if k == "mesh"]
    menus = []
    x = 0.0
    for kind in ("landmarks", "wireframe"):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        if not idx:
            continue
        menus.append(dict(type="buttons", direction="right", x=x, y=0, xanchor="left", yanchor="top",
                          pad=dict(t=6), showactive=True,
                          buttons=[dict(label=f"{kind} on", method="restyle", args=[{"visible": True}, idx]),
                                   dict(label=f"{kind} off", method="restyle", args=[{"visible": False}, idx])]))
        x += 0.33
    menus.append(dict(type="buttons", direction="right", x=x, y=0, xanchor="left", yanchor="top",
                      pad=dict(t=6), showactive=True,
                      buttons=[dict(label="shaded", method="restyle", args=[{"lighting": [LIGHTING["shaded"]] * len(mesh_idx)}, mesh_idx]),
                               dict(label="flat colour", method="restyle", args=[{"lighting": [LIGHTING["flat"]] * len(mesh_idx)}, mesh_idx])]))
    fig.update_layout(updatemenus=menus, margin=dict(b=BUTTON_STRIP))


def mesh_figure(vertices: np.ndarray, triangles: np.ndarray, colors: Optional[np.ndarray] = None,
                landmarks: Optional[np.ndarray] = None, *, wireframe: bool = True, title: Optional[str] = None,
                wireframe_cells: int = 32, height: int = 600, width: Optional[int] = None) -> Any:
    """A plotly figure of one mesh.

    Args:
        vertices: (N, 3) image frame (y down, z towards the viewer), pixels.
        triangles: (T, 3) 0-based indices.
        colors: optional (N, 3) RGB per vertex in [0, 1] (or 0..255); None = grey, shaded.
        landmarks: optional (68, 3) image frame, drawn as red markers (toggle button).
        wireframe: add a (hidden by default) wireframe (toggle button): the edges of a coarse copy of the mesh,
            ``wireframe_cells`` cells across (:func:`wireframe_edges`).

    Returns:
        ``plotly.graph_objects.Figure`` with buttons for landmarks / wireframe / shading.
    """
    import plotly.graph_objects as go

    fig = go.Figure(_mesh_traces(vertices, triangles, colors, landmarks, wireframe, "mesh", wireframe_cells))
    # title on the left: plotly's tool bar (mode bar) sits at the top right
    fig.update_layout(scene=_scene(), title=dict(text=title, x=0.01, xanchor="left"), height=height, width=width,
                      margin=dict(l=0, r=0, t=MODEBAR_STRIP, b=BUTTON_STRIP),
                      showlegend=False)
    _toggle_buttons(fig)
    return fig


def side_by_side(meshes: Sequence[tuple], titles: Sequence[str], *, height: int = 500,
                 wireframe_cells: int = 32) -> Any:
    """One figure with a 3D scene per mesh; ``meshes`` are ``(vertices, triangles, colors, landmarks)`` tuples
    (colors / landmarks may be None). Cameras are not linked; each scene starts at the frontal view."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(meshes), specs=[[{"type": "scene"}] * len(meshes)], subplot_titles=list(titles))
    for i, (v, t, c, lm) in enumerate(meshes):
        scene = "scene" if i == 0 else f"scene{i + 1}"
        for tr in _mesh_traces(v, t, c, lm, True, titles[i], wireframe_cells, scene=scene):
            fig.add_trace(tr)
        fig.update_layout({scene: _scene()})
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=MODEBAR_STRIP + 20, b=BUTTON_STRIP), showlegend=False)
    _toggle_buttons(fig)
    return fig


def export_html(fig: Any, path: Union[str, Path]) -> Path:
    """Write ``fig`` as one self-contained HTML file (plotly.js inlined, no CDN; opens without a kernel)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True, full_html=True, config={"displaylogo": False})
    return path


def coefficient_explorer(bfm: Any, *, n_shape: int = 5, n_exp: int = 5, stats: Any = None, params: Optional[np.ndarray] = None,
                         span: float = 3.0, height: int = 480) -> Any:
    """ipywidgets sliders over the first shape / expression coefficients and yaw / pitch / roll, beside a plotly
    view of the resulting mesh (rebuilt on every slider change; needs a live kernel to react).

    Coefficients are in units of their std in ``stats`` (default 3DDFA_V2's) around ``params`` (62,)
    (default: the stats' mean, i.e. the average training face), from ``-span`` to ``+span`` std.
    Angles in degrees. The view keeps one scale for every setting (a coefficient that mostly changes the
    face's size shows as a size change, not hidden by re-fitting the camera) and colours each vertex by its
    distance from the face with every slider at 0, as a percentage of the face's height. The sliders stand
    in one column left of the mesh, so both fit on a laptop screen (about ``height`` + 40 px high).

    Returns an ``ipywidgets.HBox``; ``box.figure_output`` holds the figure, ``box.sliders`` the sliders by
    label (``"shape 1"``, ``"exp 1"``, ``"yaw °"``, ...), ``box.current_vertices()`` the mesh shown.
    """
    import ipywidgets as widgets

    from mfirrn.geometry.params import ParamStats

    stats = stats if stats is not None else ParamStats.from_asset("stats-3ddfa-v2")
    base = np.asarray(stats.mean if params is None else params, np.float64).copy()
    tri = bfm.triangles
    rest = _coefficient_vertices(bfm, stats, base, [], [])
    face_height = float(np.ptp(rest[:, 1]))
    half = 0.62 * float(np.ptp(rest, axis=0).max())  # a fixed cube around the centred face, rotations included

    def slider(desc: str, lo: float, hi: float, step: float) -> Any:
        return widgets.FloatSlider(value=0.0, min=lo, max=hi, step=step, description=desc, continuous_update=False,
                                   readout_format=".1f", style={"description_width": "56px"},
                                   layout=widgets.Layout(width="250px", height="26px"))

    shp = [slider(f"shape {i + 1}", -span, span, 0.1) for i in range(n_shape)]
    exp = [slider(f"exp {i + 1}", -span, span, 0.1) for i in range(n_exp)]
    pose = [slider(a, -80.0, 80.0, 1.0) for a in ("yaw °", "pitch °", "roll °")]
    out = widgets.Output(layout=widgets.Layout(width="560px"))

    def current_vertices() -> np.ndarray:
        return _coefficient_vertices(bfm, stats, base, [s.value for s in shp], [s.value for s in exp],
                                     *(s.value for s in pose))

    def redraw(_: Any = None) -> None:
        import plotly.io as pio

        v = current_vertices()
        posed_rest = _coefficient_vertices(bfm, stats, base, [], [], *(s.value for s in pose))
        moved = 100 * np.linalg.norm(v - posed_rest, axis=1) / face_height
        fig = mesh_figure(v, tri, wireframe=False, height=height, width=540, title="mean + shape·α + expression·β")
        fig.data[0].update(intensity=moved, colorscale="Viridis", cmin=0, cmax=max(5.0, float(moved.max())),
                           showscale=True, colorbar=dict(title=dict(text="moved<br>(% of<br>height)", side="top"),
                                                         len=0.6, thickness=12))
        axis = dict(visible=False, autorange=False)
        fig.update_layout(scene=dict(aspectmode="cube", camera=dict(eye=dict(x=0, y=0, z=1.5)),
                                     xaxis=dict(axis, range=[-half, half]),
                                     yaxis=dict(axis, range=[-half, half]), zaxis=dict(axis, range=[-half, half])))
        # Replace the Output's content directly: no `with out:` capture and no clear_output(wait=True),
        # which wait for a front end and stall a headless kernel (nbclient, CI) until its timeout.
        # A mime bundle, not the figure: IPython's formatter would call the figure's _ipython_display_,
        # which publishes it to the running cell's output instead of the widget.
        bundle = pio.renderers["plotly_mimetype"].to_mimebundle(fig.to_plotly_json())
        out.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)

    for s in (*shp, *exp, *pose):
        s.observe(redraw, names="value")
    reset = widgets.Button(description="reset", layout=widgets.Layout(width="90px"))

    def on_reset(_: Any) -> None:
        for s in (*shp, *exp, *pose):
            s.value = 0.0

    reset.on_click(on_reset)

    def header(text: str) -> Any:
        return widgets.HTML(f"<b>{text}</b>", layout=widgets.Layout(height="22px", margin="4px 0 0 0"))

    controls = widgets.VBox([header("shape (std)"), *shp, header("expression (std)"), *exp,
                             header("pose (degrees)"), *pose, reset], layout=widgets.Layout(width="262px"))
    box = widgets.HBox([controls, out])
    box.figure_output = out
    box.sliders = {s.description: s for s in (*shp, *exp, *pose)}
    box.current_vertices = current_vertices
    redraw()
    return box


def _coefficient_vertices(bfm: Any, stats: Any, base: np.ndarray, shape_std: Sequence[float], exp_std: Sequence[float],
                          yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Mesh (N, 3), image frame (y down), centred at 0, model units: ``base`` params (62,) with the first
    shape / expression coefficients moved by ``shape_std`` / ``exp_std`` times their std, rotated by the
    angles (degrees, 3DDFA's Zhu convention)."""
    import torch

    from mfirrn.evaluation.dense import zhu_rotation
    from mfirrn.geometry.params import PARAM_SPEC

    p = np.asarray(base, np.float64).copy()
    for i, value in enumerate(shape_std):
        p[PARAM_SPEC.pose + i] += value * stats.std[PARAM_SPEC.pose + i]
    for i, value in enumerate(exp_std):
        j = PARAM_SPEC.pose + PARAM_SPEC.shape + i
        p[j] += value * stats.std[j]
    with torch.no_grad():
        S = bfm.shape_vertices(torch.as_tensor(p[PARAM_SPEC.shape_slice][None], dtype=torch.float32),
                               torch.as_tensor(p[PARAM_SPEC.exp_slice][None], dtype=torch.float32))[0].double().numpy()
    V = (S - S.mean(0)) @ zhu_rotation(*np.deg2rad([pitch, yaw, roll])).T
    return np.stack([V[:, 0], -V[:, 1], V[:, 2]], axis=1)


def coefficient_sweep(bfm: Any, *, stats: Any = None, coefficients: Sequence[tuple[str, int]] = (
        ("shape", 0), ("shape", 1), ("exp", 0), ("exp", 1)), values: Sequence[float] = (-3.0, 0.0, 3.0),
        yaw: float = 25.0, size: int = 220) -> Any:
    """A matplotlib figure: one row per coefficient, one column per value (in std of ``stats``), each panel
    the mean face with that one coefficient moved, shaded by :func:`mfirrn.render.raster.shade` and seen at
    ``yaw`` degrees. All panels share one scale, so size changes show. The static twin of
    :func:`coefficient_explorer`.

    Args:
        bfm: a :class:`mfirrn.geometry.bfm.MorphableModel`.
        stats: :class:`mfirrn.geometry.params.ParamStats` (default 3DDFA_V2's); the face is its mean.
        coefficients: ``("shape" | "exp", index)`` pairs, 0-based.
        values: coefficient offsets in std.
        size: panel size in pixels.
    """
    import matplotlib.pyplot as plt

    from mfirrn import render
    from mfirrn.geometry.params import ParamStats

    stats = stats if stats is not None else ParamStats.from_asset("stats-3ddfa-v2")
    for kind, index in coefficients:
        if kind not in ("shape", "exp") or not 0 <= index < (40 if kind == "shape" else 10):
            raise ValueError(f"coefficient {(kind, index)!r}: expected ('shape', 0..39) or ('exp', 0..9)")
    meshes = []
    for kind, index in coefficients:
        row = []
        for value in values:
            offsets = np.zeros(index + 1)
            offsets[index] = value
            row.append(_coefficient_vertices(bfm, stats, stats.mean, offsets if kind == "shape" else [],
                                             offsets if kind == "exp" else [], yaw=yaw))
        meshes.append(row)
    ref = _coefficient_vertices(bfm, stats, stats.mean, [], [], yaw=yaw)
    scale = 0.8 * size / np.ptp(ref[:, :2], axis=0).max()
    fig, axes = plt.subplots(len(coefficients), len(values), figsize=(2.2 * len(values), 2.2 * len(coefficients)),
                             squeeze=False)
    for r, ((kind, index), row) in enumerate(zip(coefficients, meshes)):
        for c, (value, v) in enumerate(zip(values, row)):
            pix = v * scale
            pix[:, :2] += size / 2
            img = render.shade(pix, bfm.triangles, size, size, light_dir=(0.3, -0.3, 1.0))
            ax = axes[r, c]
            ax.imshow(np.clip(img, 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{value:+g} std" if value else "mean", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{'shape' if kind == 'shape' else 'expression'} {index + 1}", fontsize=9)
    fig.suptitle("3DMM coefficients: the mean face with one coefficient moved", fontsize=10)
    fig.tight_layout()
    return fig


NOTEBOOK_RENDERER = "plotly_mimetype+mfirrn_notebook"


def use_notebook_renderer() -> str:
    """Make plotly figures visible everywhere a notebook is read, and return the renderer's name.

    Each figure output then carries the plotly mime type (drawn by JupyterLab) and an HTML version with a
    ``Plotly.newPlot`` call (drawn by nbconvert HTML and the docs site, no kernel needed). plotly.js is
    embedded once, with the first figure; the MathJax ``<script src>`` that plotly's own notebook renderer
    adds to every figure is left out, so static copies load nothing from the internet.
    """
    import plotly.io as pio
    from plotly.io._base_renderers import NotebookRenderer

    class OfflineNotebookRenderer(NotebookRenderer):
        def to_mimebundle(self, fig_dict: dict) -> dict:
            bundle = super().to_mimebundle(fig_dict)
            bundle["text/html"] = re.sub(r"<script[^>]*\bsrc=[\"']https?://[^>]*></script>", "", bundle["text/html"])
            return bundle

    if "mfirrn_notebook" not in pio.renderers:
        pio.renderers["mfirrn_notebook"] = OfflineNotebookRenderer()
    pio.renderers.default = NOTEBOOK_RENDERER
    return NOTEBOOK_RENDERER
