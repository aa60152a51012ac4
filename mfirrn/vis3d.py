"""Interactive 3D views of reconstructions (plotly), and widgets that teach what the 3DMM does.

Frames: functions take meshes in the workbench's *image frame* (:meth:`mfirrn.bfm.MorphableModel.vertices`
with a ``roi``: x right, y **down**, z towards the viewer, pixels) and show them upright: plotly gets
``(x, -y, z)`` and a camera looking along -z, so the first view is the photo's view.

* :func:`mesh_figure` — a ``plotly.graph_objects.Mesh3d`` with per-vertex colours (e.g. sampled from the
  photo with :func:`mfirrn.meshio.sample_colors`), optional 68 landmarks and a wireframe, and buttons
  that toggle landmarks / wireframe / shading without a kernel.
* :func:`side_by_side` — two meshes (prediction vs ground truth) in one figure.
* :func:`export_html` — a standalone HTML file with plotly.js inlined (no CDN, works offline).
* :func:`coefficient_explorer` — ipywidgets sliders over shape, expression and pose coefficients that
  rebuild the mesh; needs a live kernel to react, but builds headless.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from mfirrn.checks import check_shape

__all__ = ["mesh_figure", "side_by_side", "export_html", "coefficient_explorer", "wireframe_edges", "LIGHTING"]

# plotly Mesh3d lighting: "shaded" (diffuse + specular) and "flat colour" (ambient only, photo colours as is)
LIGHTING = {
    "shaded": dict(ambient=0.35, diffuse=0.8, specular=0.15, roughness=0.6, fresnel=0.1),
    "flat": dict(ambient=1.0, diffuse=0.0, specular=0.0, roughness=1.0, fresnel=0.0),
}


def _to_plot(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return np.stack([v[:, 0], -v[:, 1], v[:, 2]], axis=1)


def wireframe_edges(vertices: np.ndarray, triangles: np.ndarray, max_edges: int = 20000, seed: int = 0) -> np.ndarray:
    """Line coordinates (3M, 3) of up to ``max_edges`` unique mesh edges, NaN-separated (plotly lines)."""
    t = np.asarray(triangles, np.int64)
    e = np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    if len(e) > max_edges:
        e = e[np.random.default_rng(seed).choice(len(e), max_edges, replace=False)]
    v = np.asarray(vertices, np.float64)
    out = np.full((len(e) * 3, 3), np.nan)
    out[0::3], out[1::3] = v[e[:, 0]], v[e[:, 1]]
    return out


def _mesh_traces(vertices: np.ndarray, triangles: np.ndarray, colors: Optional[np.ndarray], landmarks: Optional[np.ndarray],
                 wireframe: bool, name: str, max_edges: int, scene: str = "scene") -> list:
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
    traces = [go.Mesh3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], i=t[:, 0], j=t[:, 1], k=t[:, 2], vertexcolor=vc, color=color,
                        lighting=LIGHTING["shaded"] if colors is None else LIGHTING["flat"],
                        lightposition=dict(x=0, y=0, z=1e5), flatshading=False, name=name, showscale=False,
                        hoverinfo="skip", scene=scene)]
    if landmarks is not None:
        lm = _to_plot(np.asarray(landmarks)[:, :3])
        traces.append(go.Scatter3d(x=lm[:, 0], y=lm[:, 1], z=lm[:, 2] + 1.0, mode="markers",
                                   marker=dict(size=3, color="red"), name=f"{name}: landmarks", scene=scene))
    if wireframe:
        w = _to_plot(wireframe_edges(v, t, max_edges))
        traces.append(go.Scatter3d(x=w[:, 0], y=w[:, 1], z=w[:, 2] + 0.2, mode="lines", line=dict(color="black", width=1),
                                   opacity=0.35, visible=False, name=f"{name}: wireframe", hoverinfo="skip", scene=scene))
    return traces


def _scene() -> dict:
    return dict(aspectmode="data", camera=dict(eye=dict(x=0, y=0, z=2.0), up=dict(x=0, y=1, z=0)),
                xaxis=dict(visible=False), yaxis=dict(visible=False), zaxis=dict(visible=False))


def _toggle_buttons(fig: Any) -> None:
    """Buttons (no kernel needed): landmarks on/off, wireframe on/off, shaded vs flat colour."""
    names = [tr.name or "" for tr in fig.data]
    kinds = ["landmarks" if n.endswith("landmarks") else "wireframe" if n.endswith("wireframe") else "mesh" for n in names]
    mesh_idx = [i for i, k in enumerate(kinds) if k == "mesh"]
    menus = []
    x = 0.0
    for kind in ("landmarks", "wireframe"):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        if not idx:
            continue
        menus.append(dict(type="buttons", direction="right", x=x, y=1.08, xanchor="left", showactive=True,
                          buttons=[dict(label=f"{kind} on", method="restyle", args=[{"visible": True}, idx]),
                                   dict(label=f"{kind} off", method="restyle", args=[{"visible": False}, idx])]))
        x += 0.33
    menus.append(dict(type="buttons", direction="right", x=x, y=1.08, xanchor="left", showactive=True,
                      buttons=[dict(label="shaded", method="restyle", args=[{"lighting": [LIGHTING["shaded"]] * len(mesh_idx)}, mesh_idx]),
                               dict(label="flat colour", method="restyle", args=[{"lighting": [LIGHTING["flat"]] * len(mesh_idx)}, mesh_idx])]))
    fig.update_layout(updatemenus=menus)


def mesh_figure(vertices: np.ndarray, triangles: np.ndarray, colors: Optional[np.ndarray] = None,
                landmarks: Optional[np.ndarray] = None, *, wireframe: bool = True, title: Optional[str] = None,
                max_edges: int = 20000, height: int = 600, width: Optional[int] = None) -> Any:
    """A plotly figure of one mesh.

    Args:
        vertices: (N, 3) image frame (y down, z towards the viewer), pixels.
        triangles: (T, 3) 0-based indices.
        colors: optional (N, 3) RGB per vertex in [0, 1] (or 0..255); None = grey, shaded.
        landmarks: optional (68, 3) image frame, drawn as red markers (toggle button).
        wireframe: add a (hidden by default) wireframe of up to ``max_edges`` edges (toggle button).

    Returns:
        ``plotly.graph_objects.Figure`` with buttons for landmarks / wireframe / shading.
    """
    import plotly.graph_objects as go

    fig = go.Figure(_mesh_traces(vertices, triangles, colors, landmarks, wireframe, "mesh", max_edges))
    fig.update_layout(scene=_scene(), title=title, height=height, width=width, margin=dict(l=0, r=0, t=60, b=0),
                      showlegend=False)
    _toggle_buttons(fig)
    return fig


def side_by_side(meshes: Sequence[tuple], titles: Sequence[str], *, height: int = 500, max_edges: int = 10000) -> Any:
    """One figure with a 3D scene per mesh; ``meshes`` are ``(vertices, triangles, colors, landmarks)`` tuples
    (colors / landmarks may be None). Cameras are not linked; each scene starts at the frontal view."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(meshes), specs=[[{"type": "scene"}] * len(meshes)], subplot_titles=list(titles))
    for i, (v, t, c, lm) in enumerate(meshes):
        scene = "scene" if i == 0 else f"scene{i + 1}"
        for tr in _mesh_traces(v, t, c, lm, True, titles[i], max_edges, scene=scene):
            fig.add_trace(tr)
        fig.update_layout({scene: _scene()})
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=60, b=0), showlegend=False)
    _toggle_buttons(fig)
    return fig


def export_html(fig: Any, path: Union[str, Path]) -> Path:
    """Write ``fig`` as one self-contained HTML file (plotly.js inlined, no CDN; opens without a kernel)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True, full_html=True, config={"displaylogo": False})
    return path


def coefficient_explorer(bfm: Any, *, n_shape: int = 5, n_exp: int = 5, stats: Any = None, params: Optional[np.ndarray] = None,
                         span: float = 3.0) -> Any:
    """ipywidgets sliders over the first shape / expression coefficients and yaw / pitch / roll, with a plotly
    view of the resulting mesh (rebuilt on every slider change; needs a live kernel to react).

    Coefficients are in units of their std in ``stats`` (default 3DDFA_V2's) around ``params`` (62,)
    (default: the stats' mean, i.e. the average training face), from ``-span`` to ``+span`` std.
    Angles in degrees. Returns an ``ipywidgets.VBox``; the figure is in ``box.figure_output``.
    """
    import ipywidgets as widgets
    import torch

    from mfirrn.params import PARAM_SPEC, ParamStats

    stats = stats if stats is not None else ParamStats.from_asset("stats-3ddfa-v2")
    base = np.asarray(stats.mean if params is None else params, np.float64).copy()
    tri = bfm.triangles

    def slider(desc: str, lo: float, hi: float, step: float) -> Any:
        return widgets.FloatSlider(value=0.0, min=lo, max=hi, step=step, description=desc, continuous_update=False,
                                   layout=widgets.Layout(width="320px"))

    shp = [slider(f"shape {i + 1}", -span, span, 0.1) for i in range(n_shape)]
    exp = [slider(f"exp {i + 1}", -span, span, 0.1) for i in range(n_exp)]
    pose = [slider(a, -80.0, 80.0, 1.0) for a in ("yaw °", "pitch °", "roll °")]
    out = widgets.Output()

    def current_vertices() -> np.ndarray:
        p = base.copy()
        for i, s in enumerate(shp):
            p[PARAM_SPEC.pose + i] += s.value * stats.std[PARAM_SPEC.pose + i]
        for i, s in enumerate(exp):
            j = PARAM_SPEC.pose + PARAM_SPEC.shape + i
            p[j] += s.value * stats.std[j]
        with torch.no_grad():
            S = bfm.shape_vertices(torch.as_tensor(p[PARAM_SPEC.shape_slice][None], dtype=torch.float32),
                                   torch.as_tensor(p[PARAM_SPEC.exp_slice][None], dtype=torch.float32))[0].double().numpy()
        from mfirrn.dense_eval import zhu_rotation

        yaw, pitch, roll = (np.deg2rad(s.value) for s in pose)
        V = (S - S.mean(0)) @ zhu_rotation(pitch, yaw, roll).T
        return np.stack([V[:, 0], -V[:, 1], V[:, 2]], axis=1)  # to the image frame (y down)

    def redraw(_: Any = None) -> None:
        fig = mesh_figure(current_vertices(), tri, wireframe=False, height=450,
                          title="3DMM: mean + shape·α + expression·β, rotated")
        # Replace the Output's content directly: no `with out:` capture and no clear_output(wait=True),
        # which wait for a front end and stall a headless kernel (nbclient, CI) until its timeout.
        out.outputs = ()
        out.append_display_data(fig)

    for s in (*shp, *exp, *pose):
        s.observe(redraw, names="value")
    reset = widgets.Button(description="reset")

    def on_reset(_: Any) -> None:
        for s in (*shp, *exp, *pose):
            s.value = 0.0

    reset.on_click(on_reset)
    controls = widgets.HBox([widgets.VBox([widgets.HTML("<b>shape (std)</b>"), *shp]),
                             widgets.VBox([widgets.HTML("<b>expression (std)</b>"), *exp]),
                             widgets.VBox([widgets.HTML("<b>pose (degrees)</b>"), *pose, reset])])
    box = widgets.VBox([controls, out])
    box.figure_output = out
    box.current_vertices = current_vertices
    redraw()
    return box
