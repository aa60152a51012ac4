"""The Basel Face Model in 3DDFA form: 62-d params -> 68 landmarks and dense vertices.

``S = u + w_shp·alpha_shp + w_exp·alpha_exp`` (vertex-major flat, 3N), posed by ``P = [s·R | t]``,
flipped to crop pixels with the checkpoint's convention, optionally mapped to the original image with a
crop box (see :mod:`mfirrn.geometry.frames`). Every path — training losses, evaluation, inference — calls
:meth:`MorphableModel.vertices`; there is no second implementation.

Two meshes: ``"full"`` (53215 vertices, 105840 triangles, 3DDFA ``tri.mat``) and ``"noneck"``
(3DDFA_V2's 38365-vertex subset, 76073 triangles). The 68 landmarks are the same in both.
"""

from __future__ import annotations

import functools
from typing import Callable, Literal, Optional, TypeVar

import numpy as np
import scipy.io
import torch
from torch import nn

from mfirrn.geometry.frames import Convention, crop_to_image, posed_to_crop
from mfirrn.geometry.params import PARAM_SPEC, split_params
from mfirrn.io.checks import check_shape
from mfirrn.io.safeload import load_pickle

__all__ = ["MorphableModel", "MeshName", "load_bfm_arrays", "mirror_vertex_map", "load_mirror", "N_LANDMARKS"]

MeshName = Literal["full", "noneck"]
N_LANDMARKS = 68
F = TypeVar("F", bound=Callable)


def _numpy_in_numpy_out(fn: F) -> F:
    """Let a tensor method take numpy arrays: they are converted (on the model's device) and back."""

    @functools.wraps(fn)
    def wrapper(self: "MorphableModel", params, *args, roi=None, **kwargs):
        if isinstance(params, torch.Tensor):
            return fn(self, params, *args, roi=roi, **kwargs)
        arr = np.asarray(params)
        t = torch.as_tensor(arr, dtype=self.u.dtype, device=self.u.device)
        r = None if roi is None else torch.as_tensor(np.asarray(roi), dtype=t.dtype, device=t.device)
        with torch.no_grad():
            out = fn(self, t, *args, roi=r, **kwargs)
        return out.cpu().numpy()

    return wrapper  # type: ignore[return-value]


def load_bfm_arrays(mesh: MeshName = "full") -> dict[str, np.ndarray]:
    """Fetch (see :mod:`mfirrn.io.assets`) and load the BFM arrays.

    Returns ``u`` (3N,), ``w_shp`` (3N, 40), ``w_exp`` (3N, 10) restricted to ``mesh``, ``keypoints``
    (204,) flat indices into the **full** 3·53215 vector, and ``triangles`` (T, 3) int64, 0-based,
    indexing the mesh's vertices.
    """
    from mfirrn.io.assets import fetch

    u = (np.load(fetch("bfm-u-shp")) + np.load(fetch("bfm-u-exp"))).astype(np.float32).reshape(-1)
    w_shp = np.load(fetch("bfm-w-shp")).astype(np.float32)
    w_exp = np.load(fetch("bfm-w-exp")).astype(np.float32)
    keypoints = np.load(fetch("bfm-keypoints")).astype(np.int64).reshape(-1)
    if mesh == "full":
        tri = scipy.io.loadmat(fetch("bfm-tri"))["tri"].astype(np.int64).T - 1
        rows = None
    elif mesh == "noneck":
        idx = np.load(fetch("bfm-noneck-indices")).astype(np.int64)
        tri = np.asarray(load_pickle(fetch("bfm-noneck-tri"))).astype(np.int64).T
        rows = (3 * idx[:, None] + np.arange(3)).reshape(-1)
    else:
        raise ValueError(f"unknown mesh {mesh!r}; use 'full' or 'noneck'")
    arrays = {"u_full": u, "keypoints": keypoints, "triangles": np.ascontiguousarray(tri)}
    arrays["w_shp_full"], arrays["w_exp_full"] = w_shp, w_exp
    if rows is not None:
        u, w_shp, w_exp = u[rows], w_shp[rows], w_exp[rows]
    arrays.update(u=u, w_shp=w_shp, w_exp=w_exp)
    return arrays


class MorphableModel(nn.Module):
    """Batched 3DMM reconstruction (torch, differentiable, any device; numpy in -> numpy out).

    Build with ``MorphableModel(mesh="full")`` (loads the BFM assets) or :meth:`from_arrays` (any
    small model, e.g. in tests). Move with ``.to(device)``.

    >>> bfm = MorphableModel()                                    # doctest: +SKIP
    >>> bfm.landmarks(params, convention="v2", roi=roi).shape     # doctest: +SKIP
    torch.Size([B, 68, 3])
    """

    u: torch.Tensor
    w_shp: torch.Tensor
    w_exp: torch.Tensor
    u_kp: torch.Tensor
    w_shp_kp: torch.Tensor
    w_exp_kp: torch.Tensor

    def __init__(self, mesh: MeshName = "full", *, arrays: Optional[dict[str, np.ndarray]] = None) -> None:
        super().__init__()
        a = load_bfm_arrays(mesh) if arrays is None else arrays
        u, w_shp, w_exp = (np.asarray(a[k], np.float32) for k in ("u", "w_shp", "w_exp"))
        n3 = u.reshape(-1).shape[0]
        if n3 % 3:
            raise ValueError(f"u must hold 3N numbers, got {n3}")
        check_shape(w_shp, (n3, PARAM_SPEC.shape), "w_shp")
        check_shape(w_exp, (n3, PARAM_SPEC.exp), "w_exp")
        kp = np.asarray(a["keypoints"], np.int64).reshape(-1)
        u_full = np.asarray(a.get("u_full", u), np.float32).reshape(-1)
        w_shp_full = np.asarray(a.get("w_shp_full", w_shp), np.float32)
        w_exp_full = np.asarray(a.get("w_exp_full", w_exp), np.float32)
        self.mesh = mesh
        self.triangles = np.asarray(a["triangles"], np.int64)
        check_shape(self.triangles, (None, 3), "triangles")
        self.register_buffer("u", torch.from_numpy(u.reshape(-1).copy()), persistent=False)
        self.register_buffer("w_shp", torch.from_numpy(w_shp.copy()), persistent=False)
        self.register_buffer("w_exp", torch.from_numpy(w_exp.copy()), persistent=False)
        self.register_buffer("u_kp", torch.from_numpy(u_full[kp].copy()), persistent=False)
        self.register_buffer("w_shp_kp", torch.from_numpy(w_shp_full[kp].copy()), persistent=False)
        self.register_buffer("w_exp_kp", torch.from_numpy(w_exp_full[kp].copy()), persistent=False)

    @classmethod
    def from_arrays(cls, u: np.ndarray, w_shp: np.ndarray, w_exp: np.ndarray, keypoints: np.ndarray,
                    triangles: np.ndarray, mesh: str = "custom") -> "MorphableModel":
        """A model from explicit arrays: ``u`` (3N,), ``w_shp`` (3N, 40), ``w_exp`` (3N, 10),
        ``keypoints`` flat row indices (3K,), ``triangles`` (T, 3) 0-based."""
        model = cls(mesh, arrays=dict(u=u, w_shp=w_shp, w_exp=w_exp, keypoints=keypoints, triangles=triangles))
        return model

    @property
    def n_vertices(self) -> int:
        return self.u.shape[0] // 3

    def shape_vertices(self, alpha_shp: torch.Tensor, alpha_exp: torch.Tensor, dense: bool = True) -> torch.Tensor:
        """Unposed shape (B, N, 3) (or (B, 68, 3) with ``dense=False``) in BFM units from (B, 40), (B, 10).

        Without gradients each face is one matrix-vector product per basis: a face's vertices are then the same
        bits whatever the other faces of the batch and the thread count (a batched matrix product picks its
        reduction order by both: up to 1e-5 apart). With gradients (training) the batch is one product.
        """
        u, ws, we = (self.u, self.w_shp, self.w_exp) if dense else (self.u_kp, self.w_shp_kp, self.w_exp_kp)
        if torch.is_grad_enabled() and (alpha_shp.requires_grad or alpha_exp.requires_grad or ws.requires_grad):
            flat = u + alpha_shp @ ws.T + alpha_exp @ we.T
        else:
            a_shp, a_exp = alpha_shp.reshape(-1, alpha_shp.shape[-1]), alpha_exp.reshape(-1, alpha_exp.shape[-1])
            rows = [torch.addmv(torch.addmv(u, ws, a_shp[i]), we, a_exp[i]) for i in range(a_shp.shape[0])]
            flat = (torch.stack(rows) if rows else u.new_zeros(0, u.shape[0])).reshape(*alpha_shp.shape[:-1], -1)
        return flat.reshape(*flat.shape[:-1], -1, 3)

    def posed_vertices(self, params: torch.Tensor, dense: bool = True) -> torch.Tensor:
        """``P[:, :3] @ S + P[:, 3]`` for de-normalised params (B, 62) -> (B, N, 3), posed frame (y up)."""
        check_shape(params, ("*", PARAM_SPEC.dim), "params")
        P, a_shp, a_exp = split_params(params)
        S = self.shape_vertices(a_shp, a_exp, dense=dense)
        return S @ P[..., :3].transpose(-1, -2) + P[..., 3].unsqueeze(-2)

    @_numpy_in_numpy_out
    def vertices(self, params: torch.Tensor, *, convention: Convention, roi: Optional[torch.Tensor] = None,
                 dense: bool = True) -> torch.Tensor:
        """Vertices (B, N, 3) from de-normalised params (B, 62).

        Without ``roi``: crop-frame pixels (120x120 crop, y down). With ``roi`` (B, 4) = (sx, sy, ex, ey):
        original-image pixels. ``dense=False`` gives the 68 landmarks (B, 68, 3).
        """
        v = posed_to_crop(self.posed_vertices(params, dense=dense), convention)
        return v if roi is None else crop_to_image(v, roi)

    def landmarks(self, params, *, convention: Convention, roi=None):
        """The 68 landmarks (B, 68, 3); same frames as :meth:`vertices`."""
        return self.vertices(params, convention=convention, roi=roi, dense=False)


def mirror_vertex_map(bfm: MorphableModel) -> np.ndarray:
    """(N,) index of each vertex's left/right mirror in the mean shape (nearest neighbour of x -> -x about
    the mean face's symmetry plane). Used to texture what the photo does not show from the other side (face
    profiling, UV textures)."""
    from scipy.spatial import cKDTree

    u = bfm.u.reshape(-1, 3).cpu().numpy().astype(np.float64)
    mirrored = u.copy()
    mirrored[:, 0] = 2 * u[:, 0].mean() - u[:, 0]
    return cKDTree(u).query(mirrored)[1].astype(np.int64)


@functools.lru_cache(maxsize=2)
def _bfm_mirror(mesh: str) -> np.ndarray:
    return mirror_vertex_map(MorphableModel(mesh))  # type: ignore[arg-type]


def load_mirror(n_vertices: int) -> np.ndarray:
    """(N,) index of each vertex's left/right mirror for the full (53215) or no-neck (38365) BFM mesh
    (:func:`mirror_vertex_map` of its mean shape; computed once per process); ValueError for another mesh."""
    meshes = {53215: "full", 38365: "noneck"}
    if n_vertices not in meshes:
        raise ValueError(f"no mirror map for a mesh of {n_vertices} vertices (full: 53215, no-neck: 38365); "
                         "pass mirror_map= or mirror=False")
    return _bfm_mirror(meshes[n_vertices]).copy()
