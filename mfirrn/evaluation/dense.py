"""Dense 3D evaluation on AFLW2000-3D: vertex-level error of a reconstruction against the dataset's 3DMM fits.

Ground truth
    Each AFLW2000-3D image ``imageNNNNN.jpg`` has a fit ``imageNNNNN.mat`` (Zhu et al., CVPR 2016) with
    ``Pose_Para`` (1, 7) = pitch, yaw, roll (radians), tx, ty, tz, s; ``Shape_Para`` (199, 1);
    ``Exp_Para`` (29, 1); ``pt3d_68`` (3, 68) and ``roi``. Our BFM bases hold only the first **40 shape
    and 10 expression** columns (3DDFA's ``w_shp_sim``/``w_exp_sim``), so the GT mesh is rebuilt from the
    first 40 / 10 coefficients: **the ground truth is truncated, and every dense number is approximate**.
    The bases are in the units of ``Shape_Para``/``Exp_Para`` — checked, not assumed: with the pose
    convention below, the 68 keypoint vertices of the truncated GT mesh land on ``pt3d_68`` within
    1.65 px on average (max 4.5 px; 500 dev images of 450x450 pixels); with the 40/10 coefficients
    zeroed (mean shape) it is 4.8 px (``tests/test_dense_eval.py``).

Pose convention (Zhu / 3DDFA MATLAB code), :func:`zhu_rotation` and :func:`gt_vertices`::

    R = Rx(pitch) @ Ry(yaw) @ Rz(roll)       Rx = [[1, 0, 0], [0, c, s], [0, -s, c]]
                                             Ry = [[c, 0, -s], [0, 1, 0], [s, 0, c]]
                                             Rz = [[c, s, 0], [-s, c, 0], [0, 0, 1]]
    V = s * R @ S + t                        (S: 3 x N BFM shape, t = (tx, ty, tz))
    image:  x = V_x,  y = H + 1 - V_y,  z = V_z      (H = image height; 1-based pixels like pt3d_68)

``y = H + 1 - y`` (not ``H - y``) is measured: its mean y residual against ``pt3d_68`` is +0.2 px,
``H - y`` gives -0.8 px. The frame is the frame of ``AFLW2000-3D.pts68.npy`` (the benchmark GT), which
equals ``pt3d_68``; predictions from :meth:`mfirrn.geometry.bfm.MorphableModel.vertices` with the model's
convention and the crop ``roi`` are compared in it unchanged.

Protocol (:func:`evaluate_dense`)
    * Mesh: the **no-neck** mesh (3DDFA_V2's 38365-vertex subset), so neck and ears' back, which no
      photo constrains, do not count. Vertex correspondence is exact (same BFM topology), so no ICP.
    * Alignment of the prediction to the GT (``align``):

      - ``"rigid"`` (default, the headline *3D reconstruction* number): the best rotation + translation
        (Kabsch, no scale) on the dense vertices. Pose errors are removed, errors of shape, expression
        *and size* remain — a face reconstructed too small is wrong in the image, so scale is not
        forgiven (``"similarity"`` would hide it).
      - ``"similarity"``: rotation + translation + isotropic scale (Umeyama) — shape-only error.
      - ``"none"``: the *dense alignment* error in the image frame; only the mean depth is matched,
        because an orthographic camera has no depth origin (``tz`` of the fit is arbitrary).

    * Error per image: mean over vertices of the 3D Euclidean distance, normalised like the 68-point
      protocol by ``sqrt(w·h)`` of the GT mesh's x-y bounding box (the "bounding-box NME" of 3DDFA_V2 /
      SynergyNet's reconstruction table; PRNet's outer-interocular normaliser is available as
      ``normaliser="interocular"``). Reported in %.
    * Yaw bins and the mean of bin means exactly as :mod:`mfirrn.evaluation.metrics`.

Published dense numbers (e.g. 3DDFA_V2/SynergyNet's reconstruction NME) use the full 199/29-component GT
and their own alignment (ICP); ours are **not comparable** to them in absolute value, only between
models evaluated here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Sequence, Union

import cv2
import numpy as np
import scipy.io
import torch
from torch import nn

from mfirrn.evaluation.benchmark import AFLW2000
from mfirrn.evaluation.metrics import YawBinSummary, summarize_by_yaw
from mfirrn.geometry.bfm import MorphableModel
from mfirrn.geometry.crop import crops_to_tensor
from mfirrn.inference.predict import predict_params
from mfirrn.io.checks import check_shape

__all__ = [
    "Align",
    "Fit",
    "DenseResult",
    "zhu_rotation",
    "load_fit",
    "fit_path",
    "gt_vertices",
    "keypoint_agreement",
    "align_points",
    "dense_errors",
    "evaluate_dense",
    "error_heatmap",
    "PROTOCOL",
]

Align = Literal["none", "rigid", "similarity"]
Normaliser = Literal["bbox", "interocular"]
PROTOCOL = ("AFLW2000-3D .mat fits truncated to 40 shape + 10 expression components (approximate GT); "
            "no-neck mesh (38365 vertices); prediction aligned to GT ({align}); mean 3D vertex distance / "
            "sqrt(w*h) of the GT mesh's x-y box; yaw-bin mean of bin means")
# 0-based indices of the outer eye corners in the 68-point scheme (PRNet's interocular normaliser)
_OUTER_EYE_CORNERS = (36, 45)


@dataclass(frozen=True)
class Fit:
    """One AFLW2000-3D fit. ``pose`` (7,) pitch, yaw, roll (rad), tx, ty, tz, s; ``shape`` (199,);
    ``exp`` (29,); ``pt3d_68`` (68, 3) image pixels (1-based, y down); ``height`` of the image in pixels."""

    name: str
    pose: np.ndarray
    shape: np.ndarray
    exp: np.ndarray
    pt3d_68: np.ndarray
    height: int


def fit_path(data_dir: Union[str, Path], image_name: str) -> Path:
    """The ``.mat`` of a crop-list entry: ``<test.data>/AFLW2000-3D/<stem>.mat``."""
    return Path(data_dir) / "AFLW2000-3D" / (Path(image_name).stem + ".mat")


def load_fit(mat_path: Union[str, Path], height: Optional[int] = None) -> Fit:
    """Read a fit; ``height`` defaults to the height of the ``.jpg`` beside it."""
    mat_path = Path(mat_path)
    if not mat_path.is_file():
        raise FileNotFoundError(f"no AFLW2000-3D fit {mat_path}; the dense evaluation needs the original "
                                f"AFLW2000-3D folder (images + .mat) inside test.data")
    d = scipy.io.loadmat(str(mat_path))
    if height is None:
        img = cv2.imread(str(mat_path.with_suffix(".jpg")), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise FileNotFoundError(f"cannot read {mat_path.with_suffix('.jpg')} for the image height")
        height = img.shape[0]
    return Fit(mat_path.stem, np.asarray(d["Pose_Para"], np.float64).reshape(-1),
               np.asarray(d["Shape_Para"], np.float64).reshape(-1), np.asarray(d["Exp_Para"], np.float64).reshape(-1),
               np.asarray(d["pt3d_68"], np.float64).T.copy(), int(height))


def zhu_rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """Rotation (3, 3) of the Zhu/3DDFA fits, angles in radians: ``Rx(pitch) @ Ry(yaw) @ Rz(roll)``.

    >>> np.allclose(zhu_rotation(0.0, 0.0, 0.0), np.eye(3))
    True
    >>> np.round(zhu_rotation(0.0, np.pi / 2, 0.0) @ [1.0, 0.0, 0.0], 6).tolist()  # yaw turns +x to +z
    [0.0, 0.0, 1.0]
    """
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    cr, sr = np.cos(roll), np.sin(roll)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, sp], [0.0, -sp, cp]])
    ry = np.array([[cy, 0.0, -sy], [0.0, 1.0, 0.0], [sy, 0.0, cy]])
    rz = np.array([[cr, sr, 0.0], [-sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return rx @ ry @ rz


def _numpy_basis(bfm: MorphableModel, dense: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 numpy copies of the model's mean and bases, cached on the model (converted once)."""
    cache = bfm.__dict__.setdefault("_dense_eval_numpy", {})
    if dense not in cache:
        names = ("u", "w_shp", "w_exp") if dense else ("u_kp", "w_shp_kp", "w_exp_kp")
        cache[dense] = tuple(getattr(bfm, k).detach().double().cpu().numpy() for k in names)
    return cache[dense]


def gt_vertices(fit: Fit, bfm: MorphableModel, *, dense: bool = True, n_shape: Optional[int] = None,
                n_exp: Optional[int] = None) -> np.ndarray:
    """The fit's mesh (N, 3) (``dense=False``: the 68 keypoints (68, 3)) in image pixels, pt3d_68's frame.

    Uses the first ``n_shape`` / ``n_exp`` coefficients (default: all the bases hold, 40 / 10; 0 gives
    the mean shape) — the truncation that makes this GT approximate.
    """
    ns = bfm.w_shp.shape[1] if n_shape is None else n_shape
    ne = bfm.w_exp.shape[1] if n_exp is None else n_exp
    a_shp = np.zeros(bfm.w_shp.shape[1])
    a_exp = np.zeros(bfm.w_exp.shape[1])
    a_shp[:ns] = fit.shape[:ns]
    a_exp[:ne] = fit.exp[:ne]
    u, ws, we = _numpy_basis(bfm, dense)
    S = (u + ws @ a_shp + we @ a_exp).reshape(-1, 3)
    pitch, yaw, roll, tx, ty, tz, s = fit.pose
    V = s * S @ zhu_rotation(pitch, yaw, roll).T + np.array([tx, ty, tz])
    V[:, 1] = fit.height + 1 - V[:, 1]
    return V


def keypoint_agreement(fits: Sequence[Fit], bfm: MorphableModel, **kwargs) -> np.ndarray:
    """Mean 2D distance (pixels) per fit between the GT mesh's 68 keypoint vertices and ``pt3d_68`` (F,).

    The check that the truncated GT and the pose convention are right (kwargs go to :func:`gt_vertices`).
    """
    return np.array([np.linalg.norm(gt_vertices(f, bfm, dense=False, **kwargs)[:, :2] - f.pt3d_68[:, :2], axis=1).mean()
                     for f in fits])


def align_points(src: np.ndarray, dst: np.ndarray, mode: Align = "rigid") -> np.ndarray:
    """``src`` (N, 3) moved onto ``dst`` (N, 3) (known correspondence) by the least-squares transform of ``mode``.

    ``"none"``: z shifted by the mean depth difference only; ``"rigid"``: rotation + translation
    (Kabsch); ``"similarity"``: plus isotropic scale (Umeyama). Reflections are excluded.

    >>> a = np.random.default_rng(0).normal(size=(50, 3))
    >>> b = 2.0 * a @ zhu_rotation(0.3, -0.2, 0.1).T + [5.0, -1.0, 2.0]
    >>> bool(np.allclose(align_points(a, b, "similarity"), b))
    True
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    check_shape(src, (None, 3), "src")
    check_shape(dst, (src.shape[0], 3), "dst")
    if mode == "none":
        out = src.copy()
        out[:, 2] += dst[:, 2].mean() - src[:, 2].mean()
        return out
    if mode not in ("rigid", "similarity"):
        raise ValueError(f"align must be 'none', 'rigid' or 'similarity', got {mode!r}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(xd.T @ xs)
    d = np.sign(np.linalg.det(u @ vt))
    D = np.diag([1.0, 1.0, d])
    R = u @ D @ vt
    scale = float((sig * np.diag(D)).sum() / (xs**2).sum()) if mode == "similarity" else 1.0
    return scale * xs @ R.T + mu_d


def _normaliser(gt: np.ndarray, gt68: Optional[np.ndarray], kind: Normaliser) -> float:
    if kind == "bbox":
        w, h = np.ptp(gt[:, 0]), np.ptp(gt[:, 1])
        return float(np.sqrt(w * h))
    if kind == "interocular":
        if gt68 is None:
            raise ValueError("the interocular normaliser needs the GT 68 keypoints")
        a, b = _OUTER_EYE_CORNERS
        return float(np.linalg.norm(gt68[a] - gt68[b]))
    raise ValueError(f"normaliser must be 'bbox' or 'interocular', got {kind!r}")


def dense_errors(pred: np.ndarray, gt: np.ndarray, align: Align = "rigid") -> np.ndarray:
    """Per-vertex 3D distance (N,) in pixels after aligning ``pred`` (N, 3) to ``gt`` (N, 3)."""
    return np.linalg.norm(align_points(pred, gt, align) - np.asarray(gt, np.float64), axis=1)


@dataclass
class DenseResult:
    """Dense errors of one model. ``nme`` (F,) fractions per image; ``per_vertex`` (N,) mean normalised
    error per vertex (fraction) over all images; ``summary`` in %, as for the 68-point benchmark;
    ``gt_agreement`` (F,) pixels between the truncated GT's keypoints and ``pt3d_68``."""

    model: str
    align: str
    normaliser: str
    mesh: str
    names: list[str]
    yaw: np.ndarray
    nme: np.ndarray
    per_vertex: np.ndarray
    gt_agreement: np.ndarray
    summary: YawBinSummary
    notes: dict = field(default_factory=dict)

    @property
    def protocol(self) -> str:
        return PROTOCOL.format(align=self.align)

    def summary_dict(self) -> dict:
        return {**self.summary.to_dict(), "model": self.model, "align": self.align, "normaliser": self.normaliser,
                "mesh": self.mesh, "n_images": len(self.names), "protocol": self.protocol,
                "gt_keypoint_agreement_px": {"mean": float(self.gt_agreement.mean()),
                                             "max": float(self.gt_agreement.max())}}


def evaluate_dense(model: nn.Module, data: AFLW2000, *, bfm: Optional[MorphableModel] = None,
                   align: Align = "rigid", normaliser: Normaliser = "bbox", batch_size: int = 64,
                   name: Optional[str] = None, params: Optional[torch.Tensor] = None) -> DenseResult:
    """Dense NME of ``model`` on ``data`` against the truncated AFLW2000-3D fits (protocol: module docstring).

    ``bfm`` defaults to the no-neck mesh. ``params`` (F, 62) skips the network (already predicted).
    """
    bfm = bfm if bfm is not None else MorphableModel("noneck")
    bfm = bfm.to("cpu")
    if params is None:
        params = predict_params(model, crops_to_tensor(data.crops), batch_size=batch_size)
    roi = torch.as_tensor(data.roi, dtype=torch.float32)
    n = len(data.names)
    per_image = np.empty(n)
    agree = np.empty(n)
    vert_sum = np.zeros(bfm.n_vertices)
    for i0 in range(0, n, batch_size):
        sl = slice(i0, min(n, i0 + batch_size))
        with torch.no_grad():
            pred = bfm.vertices(params[sl], convention=model.card.convention, roi=roi[sl]).double().numpy()
        for j, i in enumerate(range(sl.start, sl.stop)):
            fit = load_fit(fit_path(data.root, data.names[i]))
            gt = gt_vertices(fit, bfm)
            gt68 = gt_vertices(fit, bfm, dense=False)
            agree[i] = np.linalg.norm(gt68[:, :2] - fit.pt3d_68[:, :2], axis=1).mean()
            err = dense_errors(pred[j], gt, align) / _normaliser(gt, gt68, normaliser)
            per_image[i] = err.mean()
            vert_sum += err
    return DenseResult(name or model.card.name, align, normaliser, bfm.mesh, list(data.names), data.yaw, per_image,
                       vert_sum / max(n, 1), agree, summarize_by_yaw(per_image, data.yaw))


def error_heatmap(per_vertex: np.ndarray, bfm: MorphableModel, *, size: int = 320, vmax: Optional[float] = None,
                  cmap: str = "inferno", shading: bool = True) -> tuple[np.ndarray, float]:
    """Per-vertex values (N,) painted on the frontal mean face, rendered with :func:`mfirrn.render.raster.rasterize`.

    Returns an RGB float image (size, size, 3) in [0, 1] (white background) and the colour-scale
    maximum used (``vmax``, default the 99th percentile). Colours come from a matplotlib colormap.
    """
    from matplotlib import colormaps

    from mfirrn import render

    check_shape(np.asarray(per_vertex), (bfm.n_vertices,), "per_vertex")
    S = bfm.u.double().cpu().numpy().reshape(-1, 3)
    S = S - S.mean(0)
    span = np.ptp(S[:, :2], axis=0).max()
    k = 0.9 * size / span
    V = np.stack([S[:, 0] * k + size / 2, size / 2 - S[:, 1] * k, S[:, 2] * k], axis=1)  # y down, z to viewer
    vmax = float(np.percentile(per_vertex, 99)) if vmax is None else float(vmax)
    colors = colormaps[cmap](np.clip(np.asarray(per_vertex) / max(vmax, 1e-12), 0, 1))[:, :3].astype(np.float32)
    if shading:
        n = render.vertex_normals(V, bfm.triangles)
        colors = colors * (0.55 + 0.45 * np.clip(n[:, 2:3], 0, 1)).astype(np.float32)
    img, depth = render.rasterize(V, bfm.triangles, colors, size, size)
    img[~np.isfinite(depth)] = 1.0
    return img, vmax
