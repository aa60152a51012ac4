"""3DDFA training losses on 62-d params (PDC, VDC, WPDC as in 3DDFA), on :class:`mfirrn.geometry.bfm.MorphableModel`.

All criteria take **normalised** predictions and targets (B, 62) — what the networks output — and the
:class:`~mfirrn.geometry.params.ParamStats` the targets were normalised with:

- :class:`PDCLoss` — MSE on normalised params;
- :class:`VDCLoss` — mean squared distance between vertices rebuilt from predicted and GT de-normalised
  params, on the 68 landmarks plus a fresh random sample of ``n_resample`` (132) dense vertices per call
  ("resample"); the predicted z-offset is replaced by the GT one (z-translation is not learnable from a
  crop);
- :class:`WPDCLoss` — ``mean(w * (p_norm - g_norm)^2)`` with per-param weights ``w_i = |Δp_i| · ||∂V/∂p_i||``
  (de-normalised Δp), normalised by the per-sample max, z-translation weight 0, detached from the graph.
  ``||∂V/∂p_i||`` is, for the 3x4 pose entries, the norm over the sampled GT shape vertices of the
  coordinate that entry multiplies (x for ``P[:, 0]``, ...; ``sqrt(K)`` for the x/y translations, K =
  number of sampled vertices); for shape/expression coefficients, ``s · ||basis column||`` over the
  sampled rows with 3DDFA's fixed typical scale ``s`` (:data:`WPDC_SHAPE_SCALE`).

Vertices are in the posed frame (crop pixels, y up; no convention flip, which would cancel in the
differences anyway). :func:`multi_output_loss` sums a criterion over the four MFIRRN outputs with equal
weights, sharing one vertex sample per batch. ``*_reference`` functions are slow loop-based twins used
by the tests.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from mfirrn.geometry.bfm import MorphableModel
from mfirrn.geometry.params import PARAM_SPEC, ParamStats, split_params
from mfirrn.io.checks import check_shape

__all__ = [
    "PDCLoss",
    "VDCLoss",
    "WPDCLoss",
    "LOSSES",
    "build_loss",
    "multi_output_loss",
    "sample_vertex_rows",
    "posed_vertices_at",
    "wpdc_weights",
    "wpdc_weights_reference",
    "vdc_loss_reference",
    "WPDC_SHAPE_SCALE",
    "Z_TRANSLATION",
]

WPDC_SHAPE_SCALE = 0.00057339936  # 3DDFA's typical pose scale s, used for the shape/exp weights
Z_TRANSLATION = 11  # index of P[2, 3] in the 62-d vector
_EPS = 1e-6

Outputs = Union[torch.Tensor, Sequence[torch.Tensor]]


def sample_vertex_rows(bfm: MorphableModel, n_resample: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Flat row indices (3·(68 + n)) of the 68 landmarks plus ``n_resample`` random dense vertices.

    Landmark rows come first and index the ``*_kp`` buffers; the sampled vertex rows follow as
    ``3·v + (0, 1, 2)`` into the dense buffers. Uses ``generator`` or the global torch RNG.
    """
    device = bfm.u.device
    idx = torch.randperm(bfm.n_vertices, generator=generator)[:n_resample].to(device)
    return (3 * idx[:, None] + torch.arange(3, device=device)).reshape(-1)


def _basis_at(bfm: MorphableModel, rows: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``u``, ``w_shp``, ``w_exp`` restricted to the 68 landmarks plus the dense ``rows``."""
    u, ws, we = bfm.u_kp, bfm.w_shp_kp, bfm.w_exp_kp
    if rows is not None and rows.numel():
        u = torch.cat([u, bfm.u[rows]])
        ws = torch.cat([ws, bfm.w_shp[rows]])
        we = torch.cat([we, bfm.w_exp[rows]])
    return u, ws, we


def posed_vertices_at(bfm: MorphableModel, params: torch.Tensor, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Posed vertices (B, 68 + len(rows)/3, 3) of de-normalised params (B, 62) at landmarks + sampled rows.

    Equals ``bfm.posed_vertices(params, dense=False)`` concatenated with the matching vertices of
    ``bfm.posed_vertices(params)`` (tested), without building the dense mesh.
    """
    P, a_shp, a_exp = split_params(params)
    u, ws, we = _basis_at(bfm, rows)
    S = (u + a_shp @ ws.T + a_exp @ we.T).reshape(params.shape[0], -1, 3)
    return S @ P[..., :3].transpose(-1, -2) + P[..., 3].unsqueeze(-2)


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    check_shape(pred, (None, PARAM_SPEC.dim), "pred")
    check_shape(target, (pred.shape[0], PARAM_SPEC.dim), "target")


class _ParamLoss(nn.Module):
    """Base: holds the stats (as buffers) and optionally the morphable model."""

    needs_rows = False

    def __init__(self, stats: ParamStats, bfm: Optional[MorphableModel] = None, n_resample: int = 132) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(stats.mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.as_tensor(stats.std, dtype=torch.float32), persistent=False)
        self.bfm = bfm
        self.n_resample = n_resample

    def denormalize(self, p_norm: torch.Tensor) -> torch.Tensor:
        return p_norm * self.std.to(p_norm.dtype) + self.mean.to(p_norm.dtype)

    def sample_rows(self, generator: Optional[torch.Generator] = None) -> Optional[torch.Tensor]:
        if not self.needs_rows or self.bfm is None or self.n_resample <= 0:
            return None
        return sample_vertex_rows(self.bfm, self.n_resample, generator)


class PDCLoss(_ParamLoss):
    """Parameter distance: ``mean((pred - target)^2)`` over normalised params (B, 62) -> scalar."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        _check_pair(pred, target)
        return torch.mean((pred - target.to(pred.dtype)) ** 2)


class VDCLoss(_ParamLoss):
    """Vertex distance on landmarks + ``n_resample`` fresh random vertices (posed frame, crop pixels²)."""

    needs_rows = True

    def forward(self, pred: torch.Tensor, target: torch.Tensor, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        _check_pair(pred, target)
        assert self.bfm is not None, "VDCLoss needs a MorphableModel"
        rows = self.sample_rows() if rows is None else rows
        p = self.denormalize(pred)
        g = self.denormalize(target.to(pred.dtype))
        p = torch.cat([p[:, :Z_TRANSLATION], g[:, Z_TRANSLATION:Z_TRANSLATION + 1], p[:, Z_TRANSLATION + 1:]], dim=1)
        v = posed_vertices_at(self.bfm, p, rows)
        vg = posed_vertices_at(self.bfm, g, rows)
        return torch.mean((v - vg) ** 2)


@torch.no_grad()
def wpdc_weights(bfm: MorphableModel, pred: torch.Tensor, target: torch.Tensor,
                 rows: Optional[torch.Tensor] = None, shape_scale: float = WPDC_SHAPE_SCALE) -> torch.Tensor:
    """WPDC weights (B, 62) from **de-normalised** pred and target (B, 62); no gradient.

    ``w_i = |Δp_i| · ||∂V/∂p_i|| + eps``, divided by the per-sample max, ``w[:, 11] = 0`` (see module doc).
    """
    pred, target = pred.detach(), target.detach()
    u, ws, we = _basis_at(bfm, rows)
    _, a_shp, a_exp = split_params(target)
    S = (u + a_shp @ ws.T + a_exp @ we.T).reshape(target.shape[0], -1, 3)  # GT shape (B, K, 3)
    coord_norm = S.norm(dim=1)  # (B, 3): norm of all x, all y, all z
    k = S.shape[1]
    diff = (pred - target).abs()
    pose = diff[:, :PARAM_SPEC.pose].reshape(-1, 3, 4)
    scale_pose = torch.cat([coord_norm, torch.full_like(coord_norm[:, :1], math.sqrt(k))], dim=1)  # (B, 4)
    w_pose = (pose * scale_pose[:, None, :]).reshape(-1, PARAM_SPEC.pose)
    col_norm = torch.cat([ws, we], dim=1).norm(dim=0)  # (50,)
    w_se = shape_scale * diff[:, PARAM_SPEC.pose:] * col_norm
    w = torch.cat([w_pose, w_se], dim=1) + _EPS
    w = w / w.max(dim=1, keepdim=True).values
    w[:, Z_TRANSLATION] = 0
    return w


class WPDCLoss(_ParamLoss):
    """Weighted parameter distance ``mean(w · (pred - target)^2)`` on normalised params, weights detached."""

    needs_rows = True

    def __init__(self, stats: ParamStats, bfm: Optional[MorphableModel] = None, n_resample: int = 132,
                 shape_scale: float = WPDC_SHAPE_SCALE) -> None:
        super().__init__(stats, bfm, n_resample)
        self.shape_scale = shape_scale

    def forward(self, pred: torch.Tensor, target: torch.Tensor, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        _check_pair(pred, target)
        assert self.bfm is not None, "WPDCLoss needs a MorphableModel"
        rows = self.sample_rows() if rows is None else rows
        target = target.to(pred.dtype)
        w = wpdc_weights(self.bfm, self.denormalize(pred), self.denormalize(target), rows, self.shape_scale)
        return torch.mean(w * (pred - target) ** 2)


LOSSES: dict[str, type[_ParamLoss]] = {"pdc": PDCLoss, "vdc": VDCLoss, "wpdc": WPDCLoss}


def build_loss(name: str, stats: ParamStats, bfm: Optional[MorphableModel] = None, **kwargs) -> _ParamLoss:
    """A criterion by name (``pdc``, ``vdc``, ``wpdc``); VDC/WPDC need ``bfm``."""
    try:
        cls = LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; use one of {', '.join(LOSSES)}") from None
    if cls.needs_rows and bfm is None:
        raise ValueError(f"loss {name!r} needs a MorphableModel (bfm=...)")
    return cls(stats, bfm, **kwargs)


def multi_output_loss(criterion: _ParamLoss, outputs: Outputs, target: torch.Tensor,
                      generator: Optional[torch.Generator] = None, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``criterion`` summed over all outputs (MFIRRN's 4 heads, equal weights) or on a single tensor.

    One vertex sample is drawn per call and shared by every output (or ``rows`` given, to share one
    sample between several targets).
    """
    rows = criterion.sample_rows(generator) if rows is None else rows
    if isinstance(outputs, torch.Tensor):
        return criterion(outputs, target, rows)
    return sum((criterion(o, target, rows) for o in outputs), torch.zeros((), device=target.device))


# ---------------------------------------------------------------------------------------------
# Slow reference twins (numpy, loops over samples and params), used by the tests only.


def _np_basis(bfm: MorphableModel, rows: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    u = bfm.u_kp.double().cpu().numpy()
    ws = bfm.w_shp_kp.double().cpu().numpy()
    we = bfm.w_exp_kp.double().cpu().numpy()
    if rows is not None and len(rows):
        u = np.concatenate([u, bfm.u.double().cpu().numpy()[rows]])
        ws = np.concatenate([ws, bfm.w_shp.double().cpu().numpy()[rows]])
        we = np.concatenate([we, bfm.w_exp.double().cpu().numpy()[rows]])
    return u, ws, we


def wpdc_weights_reference(bfm: MorphableModel, pred: np.ndarray, target: np.ndarray,
                           rows: Optional[np.ndarray] = None, shape_scale: float = WPDC_SHAPE_SCALE) -> np.ndarray:
    """Loop version of :func:`wpdc_weights` (float64 numpy, de-normalised inputs (B, 62))."""
    u, ws, we = _np_basis(bfm, rows)
    out = np.zeros_like(np.asarray(pred, np.float64))
    for b in range(len(pred)):
        a_shp, a_exp = target[b, 12:52], target[b, 52:62]
        verts = []
        for j in range(len(u) // 3):
            verts.append([u[3 * j + c] + ws[3 * j + c] @ a_shp + we[3 * j + c] @ a_exp for c in range(3)])
        verts = np.array(verts)
        for i in range(62):
            d = abs(pred[b, i] - target[b, i])
            if i < 12:
                col = i % 4
                mag = math.sqrt(len(verts)) if col == 3 else math.sqrt(sum(v[col] ** 2 for v in verts))
            else:
                basis = ws[:, i - 12] if i < 52 else we[:, i - 52]
                mag = shape_scale * math.sqrt(sum(x * x for x in basis))
            out[b, i] = d * mag + _EPS
        out[b] /= out[b].max()
        out[b, Z_TRANSLATION] = 0
    return out


def vdc_loss_reference(bfm: MorphableModel, pred: np.ndarray, target: np.ndarray,
                       rows: Optional[np.ndarray] = None) -> float:
    """Loop version of :class:`VDCLoss` on **de-normalised** params (B, 62), float64."""
    u, ws, we = _np_basis(bfm, rows)
    total, count = 0.0, 0
    for b in range(len(pred)):
        vs = []
        for p in (pred[b].copy(), target[b]):
            p[Z_TRANSLATION] = target[b, Z_TRANSLATION]
            P = p[:12].reshape(3, 4)
            S = (u + ws @ p[12:52] + we @ p[52:62]).reshape(-1, 3)
            vs.append(np.array([P[:, :3] @ s + P[:, 3] for s in S]))
        total += float(((vs[0] - vs[1]) ** 2).sum())
        count += vs[0].size
    return total / count

