"""Fit 62-d 3DMM params to sparse 2D landmarks (the labeller that makes training targets).

The fit minimises, per face, the mean squared 2D distance between the model's landmarks (mapped to the
annotated scheme, e.g. 68 -> AFLW's 21 points) and the visible annotated points, normalised by the
annotation's size, plus a quadratic anchor on the change of the *normalised* params from a teacher's
prediction::

    E(p) = mean_visible ||M·L68(p) - g||² / s²  +  λ · mean((p_norm - p_norm_teacher)²)

Everything is batched in torch (CPU or GPU) and solved with L-BFGS over the whole batch (the objective is a sum of
independent per-face terms, so its minimum is every face's minimum). Points are in crop pixels (y down) with the checkpoint's pixel
convention; ``s`` is ``sqrt(w·h)`` of the visible annotated points (those left out of the fit included).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
import torch

from mfirrn.data.labels.fit_config import POINT_SETS, SAME_DEFINITION, WITHOUT_EARS, FitConfig, unconstrained
from mfirrn.evaluation.metrics import AFLW21_FROM_68
from mfirrn.geometry.bfm import MorphableModel
from mfirrn.geometry.frames import Convention
from mfirrn.geometry.params import ParamStats
from mfirrn.io.checks import check_shape

__all__ = ["FitConfig", "FitResult", "WITHOUT_EARS", "SAME_DEFINITION", "POINT_SETS", "unconstrained", "fit_landmarks",
           "mapping_matrix", "visible_mask"]


class FitResult(NamedTuple):
    """``params`` (B, 62) de-normalised; ``residual`` (B,) RMS distance / annotation size;
    ``accepted`` (B,) bool from the quality gate; ``n_visible`` (B,)."""

    params: torch.Tensor
    residual: torch.Tensor
    accepted: torch.Tensor
    n_visible: torch.Tensor


def mapping_matrix(groups: tuple[tuple[int, ...], ...] = AFLW21_FROM_68) -> torch.Tensor:
    """(K, 68) averaging matrix from 68 landmarks to a K-point scheme given as 1-based index groups."""
    M = torch.zeros(len(groups), 68)
    for k, g in enumerate(groups):
        M[k, [i - 1 for i in g]] = 1.0 / len(g)
    return M


def visible_mask(points: np.ndarray) -> np.ndarray:
    """(B, K) bool: a point is visible unless either coordinate is -1 (AFLW) or non-finite."""
    pts = np.asarray(points)
    return np.isfinite(pts).all(-1) & (pts != -1).all(-1)


def _annotation_scale(target: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    big = torch.finfo(target.dtype).max
    lo = torch.where(vis[..., None], target, torch.full_like(target, big)).amin(1)
    hi = torch.where(vis[..., None], target, torch.full_like(target, -big)).amax(1)
    wh = (hi - lo).clamp_min(1.0)
    return (wh[:, 0] * wh[:, 1]).sqrt()


def _fit_batch(bfm: MorphableModel, stats: ParamStats, init: torch.Tensor, target: torch.Tensor, vis: torch.Tensor,
               scale: torch.Tensor, M: torch.Tensor, convention: Convention,
               cfg: FitConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """L-BFGS on the sum of the per-face energies (faces are independent, so the sum's minimum is each face's).
    ``vis`` (B, K) the points of the data term; ``scale`` (B,) the annotation size in pixels."""
    z0 = stats.normalize(init).detach()
    free = torch.zeros(62, dtype=init.dtype, device=init.device)
    free[:12], free[12:52], free[52:] = float(cfg.fit_pose), float(cfg.fit_shape), float(cfg.fit_exp)
    delta = torch.zeros_like(z0, requires_grad=True)
    w = vis.to(init.dtype)
    scale2 = scale ** 2
    point_w = w / w.sum(1, keepdim=True).clamp_min(1.0) / scale2[:, None]
    contour = [i - 1 for i in cfg.contour]
    with torch.no_grad():
        lm0 = bfm.landmarks(init, convention=convention)[..., contour, :2]

    def energy() -> tuple[torch.Tensor, torch.Tensor]:
        z = z0 + delta * free
        lm = bfm.landmarks(stats.denormalize(z), convention=convention)[..., :2]
        data = (((M @ lm - target) ** 2).sum(-1) * point_w).sum(1)
        total = data + cfg.prior_weight * ((z - z0) ** 2).mean(1)
        if cfg.contour_weight > 0:
            total = total + cfg.contour_weight * ((lm[:, contour] - lm0) ** 2).sum(-1).mean(1) / scale2
        return data, total

    opt = torch.optim.LBFGS([delta], lr=1.0, max_iter=cfg.max_iter, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-10, tolerance_change=1e-14)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = energy()[1].sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        data, _ = energy()
        return stats.denormalize(z0 + delta * free), data.sqrt()


def fit_landmarks(bfm: MorphableModel, stats: ParamStats, init_params: torch.Tensor, target: np.ndarray,
                  *, convention: Convention, groups: tuple[tuple[int, ...], ...] = AFLW21_FROM_68,
                  config: FitConfig = FitConfig(), device: Optional[torch.device] = None,
                  progress: bool = False) -> FitResult:
    """Fit params to 2D landmarks.

    ``init_params`` (B, 62) de-normalised teacher prediction (also the anchor); ``target`` (B, K, 2)
    annotated points in crop pixels, invisible points marked -1 or NaN; ``groups`` maps the 68 model
    landmarks to the K annotated points (default: AFLW's 21). ``stats`` define the normalised space of
    the anchor and the optimisation; ``convention`` the pixel convention of the crop frame.
    """
    target = np.asarray(target, np.float64)
    check_shape(target, (None, len(groups), 2), "target")
    check_shape(init_params, (target.shape[0], 62), "init_params")
    dev = device or bfm.u.device
    annotated = visible_mask(target)
    vis = annotated.copy()
    if config.ignore_points:
        vis[:, [i - 1 for i in config.ignore_points]] = False
    vis_all = torch.as_tensor(vis, device=dev)
    tgt_all = torch.as_tensor(np.where(annotated[..., None], target, 0.0), dtype=torch.float32, device=dev)
    # the face's size comes from every visible annotated point, ignored ones included: leaving points out of
    # the fit must not shrink the unit of the residual (and so tighten the quality gate)
    scale_all = _annotation_scale(tgt_all, torch.as_tensor(annotated, device=dev))
    M = mapping_matrix(groups).to(dev)
    out_p, out_r = [], []
    from tqdm import tqdm

    starts = range(0, target.shape[0], config.batch_size)
    for i in tqdm(starts, desc="fit", unit="batch", disable=not progress):
        sl = slice(i, i + config.batch_size)
        p, r = _fit_batch(bfm, stats, init_params[sl].to(dev, torch.float32), tgt_all[sl], vis_all[sl],
                          scale_all[sl], M, convention, config)
        out_p.append(p.cpu())
        out_r.append(r.cpu())
    params = torch.cat(out_p) if out_p else torch.zeros(0, 62)
    residual = torch.cat(out_r) if out_r else torch.zeros(0)
    n_vis = vis_all.sum(1).cpu()
    accepted = (residual <= config.max_residual) & (n_vis >= config.min_visible) & torch.isfinite(params).all(1)
    return FitResult(params, residual, accepted, n_vis)
