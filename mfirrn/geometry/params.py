"""The 62-d 3DMM parameter vector (3DDFA layout), its normalisation stats and the pose it encodes.

Layout (3DDFA's): ``p[0:12]`` is ``P = [s·R | t]`` (3x4, row-major), ``p[12:52]`` the 40 shape
coefficients, ``p[52:62]`` the 10 expression coefficients. Networks predict *normalised* params
``p_norm = (p - mean) / std``; the stats belong to the checkpoint (:class:`ParamStats`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from mfirrn.io.checks import check_shape
from mfirrn.io.safeload import load_pickle

__all__ = [
    "ParamSpec",
    "PARAM_SPEC",
    "split_params",
    "ParamStats",
    "Pose",
    "pose_from_params",
    "rotation_to_euler",
]


@dataclass(frozen=True)
class ParamSpec:
    """Sizes of the blocks of the parameter vector; the single place the 62-d layout is named."""

    pose: int = 12
    shape: int = 40
    exp: int = 10

    @property
    def dim(self) -> int:
        return self.pose + self.shape + self.exp

    @property
    def shape_slice(self) -> slice:
        return slice(self.pose, self.pose + self.shape)

    @property
    def exp_slice(self) -> slice:
        return slice(self.pose + self.shape, self.dim)


PARAM_SPEC = ParamSpec()


class SplitParams(NamedTuple):
    """``P`` (*, 3, 4) camera matrix ``[s·R | t]``; ``alpha_shp`` (*, 40); ``alpha_exp`` (*, 10)."""

    P: torch.Tensor
    alpha_shp: torch.Tensor
    alpha_exp: torch.Tensor


def split_params(params: torch.Tensor, spec: ParamSpec = PARAM_SPEC) -> SplitParams:
    """Split de-normalised params (*, 62) into ``P`` (*, 3, 4), shape (*, 40) and expression (*, 10)."""
    check_shape(params, ("*", spec.dim), "params")
    P = params[..., : spec.pose].reshape(*params.shape[:-1], 3, 4)
    return SplitParams(P, params[..., spec.shape_slice], params[..., spec.exp_slice])


@dataclass(frozen=True)
class ParamStats:
    """Mean and std (62,) of the params a checkpoint was trained on: ``p = p_norm * std + mean``."""

    mean: np.ndarray
    std: np.ndarray
    name: str = "custom"

    def __post_init__(self) -> None:
        for field in ("mean", "std"):
            arr = np.asarray(getattr(self, field), dtype=np.float32).reshape(-1)
            check_shape(arr, (PARAM_SPEC.dim,), f"ParamStats.{field}")
            object.__setattr__(self, field, arr)

    @classmethod
    def from_pickle(cls, path: str, name: str = "custom") -> "ParamStats":
        """Read a 3DDFA stats pickle: v1 keys ``param_mean``/``param_std`` or V2 keys ``mean``/``std``.

        Only numpy arrays and plain containers are unpickled (:func:`mfirrn.io.safeload.load_pickle`): a pickle
        that asks for anything else raises :class:`~mfirrn.io.safeload.UnsafeFileError` (a ``ValueError``).
        """
        d = load_pickle(path)
        if not isinstance(d, dict):
            raise ValueError(f"{path}: expected a dict with keys mean/std or param_mean/param_std, found a "
                             f"{type(d).__name__}; restore the stats file")
        for mk, sk in (("mean", "std"), ("param_mean", "param_std")):
            if mk in d and sk in d:
                return cls(np.asarray(d[mk]), np.asarray(d[sk]), name=name)
        raise ValueError(f"{path}: expected keys mean/std or param_mean/param_std, found {sorted(d)}")

    @classmethod
    def from_asset(cls, asset_name: str) -> "ParamStats":
        """Load stats from a registered asset (``stats-3ddfa-v1`` or ``stats-3ddfa-v2``)."""
        from mfirrn.io.assets import fetch

        return cls.from_pickle(str(fetch(asset_name)), name=asset_name)

    def denormalize(self, p_norm: torch.Tensor) -> torch.Tensor:
        """(*, 62) normalised -> (*, 62) params, on ``p_norm``'s device and dtype."""
        mean = torch.as_tensor(self.mean, dtype=p_norm.dtype, device=p_norm.device)
        std = torch.as_tensor(self.std, dtype=p_norm.dtype, device=p_norm.device)
        return p_norm * std + mean

    def normalize(self, params: torch.Tensor) -> torch.Tensor:
        """(*, 62) params -> (*, 62) normalised."""
        mean = torch.as_tensor(self.mean, dtype=params.dtype, device=params.device)
        std = torch.as_tensor(self.std, dtype=params.dtype, device=params.device)
        return (params - mean) / std


class Pose(NamedTuple):
    """Similarity pose of de-normalised params.

    ``scale`` (*,): crop pixels per BFM unit; ``R`` (*, 3, 3) rotation; ``t`` (*, 3) translation in
    crop pixels (before the image-axis flip); ``yaw``, ``pitch``, ``roll`` (*,) in **degrees**.
    """

    scale: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    yaw: torch.Tensor
    pitch: torch.Tensor
    roll: torch.Tensor


def rotation_to_euler(R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Yaw, pitch, roll in degrees (*,) from rotations (*, 3, 3), in the AFLW2000-3D / 300W-LP convention.

    The fits compose ``R = Rx(pitch) · Ry(yaw) · Rz(roll)`` (their ``RotationMatrix.m``), so exactly:
    ``yaw = asin(-R[0,2])``, ``pitch = atan2(R[1,2], R[2,2])``, ``roll = atan2(R[0,1], R[0,0])``. At the
    gimbal lock (|yaw| = 90 degrees, to float precision) roll is set to 0 and pitch takes the rest.
    3DDFA_V2's ``matrix2angle`` reads the same matrix in the other order (pitch and roll of opposite sign);
    see the head-pose page of the docs.
    """
    check_shape(R, ("*", 3, 3), "R")
    s = (-R[..., 0, 2]).clamp(-1.0, 1.0)
    yaw = torch.asin(s)
    pitch = torch.atan2(R[..., 1, 2], R[..., 2, 2])
    roll = torch.atan2(R[..., 0, 1], R[..., 0, 0])
    lock = s.abs() > 1 - (1e-9 if R.dtype == torch.float64 else 1e-6)
    # cos(yaw) = 0: row 1 is (sin(pitch +- roll), cos(pitch +- roll), 0); take roll = 0
    pitch = torch.where(lock, torch.atan2(torch.sign(s) * R[..., 1, 0], R[..., 1, 1]), pitch)
    roll = torch.where(lock, torch.zeros_like(roll), roll)
    deg = 180.0 / math.pi
    return yaw * deg, pitch * deg, roll * deg


def pose_from_params(params: torch.Tensor) -> Pose:
    """Decompose ``P = [s·R | t]`` of de-normalised params (*, 62) into a :class:`Pose`.

    ``s`` is the mean norm of the first two rows of ``P[:, :3]``; R's rows are those rows normalised and
    their cross product (as 3DDFA decomposes it).
    """
    P = split_params(params).P
    r1, r2 = P[..., 0, :3], P[..., 1, :3]
    n1, n2 = r1.norm(dim=-1), r2.norm(dim=-1)
    scale = (n1 + n2) / 2
    r1 = r1 / n1.unsqueeze(-1)
    r2 = r2 / n2.unsqueeze(-1)
    r3 = torch.cross(r1, r2, dim=-1)
    R = torch.stack([r1, r2, r3], dim=-2)
    yaw, pitch, roll = rotation_to_euler(R)
    return Pose(scale, R, P[..., :, 3], yaw, pitch, roll)
