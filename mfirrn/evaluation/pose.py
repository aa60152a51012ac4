"""Head pose as a result: its error metric on AFLW2000-3D, the ground truth read from the fits, and the
published numbers. The angle convention is :mod:`mfirrn.geometry.pose`.

**Metric** (the protocol of the published head-pose tables, e.g. FSA-Net's and SynergyNet's): mean
absolute error in degrees of yaw, pitch and roll over the images whose
three ground-truth angles lie within ±99 degrees, and the mean of the three.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from mfirrn.geometry.pose import angles_from_params
from mfirrn.io.checks import check_shape

__all__ = [
    "POSE_LIMIT_DEG",
    "read_fit_pose",
    "find_fits_dir",
    "load_gt_poses",
    "score_pose",
    "angle_error",
    "PoseSummary",
    "pose_mae",
    "PublishedPose",
    "PUBLISHED_POSE",
]

POSE_LIMIT_DEG = 99.0  # the usual protocol keeps images whose three GT angles lie within ±99 degrees


def read_fit_pose(path: Union[str, Path]) -> np.ndarray:
    """(yaw, pitch, roll) (3,) in degrees from an AFLW2000-3D ``.mat`` fit's ``Pose_Para`` (pitch, yaw, roll
    in radians)."""
    import scipy.io

    pose = np.asarray(scipy.io.loadmat(str(path), variable_names=["Pose_Para"])["Pose_Para"], np.float64).reshape(-1)
    return np.degrees(np.array([pose[1], pose[0], pose[2]]))


_FITS_DIRS = ("AFLW2000-3D", "AFLW2000", "AFLW-2000-3D")


def find_fits_dir(data_dir: Union[str, Path], names: Sequence[str]) -> Optional[Path]:
    """The folder beside the crops that holds the originals' ``.mat`` fits for every crop name (``x.jpg``
    -> ``x.mat``), or ``None`` when they are absent (then no pose ground truth)."""
    data_dir = Path(data_dir)
    for sub in _FITS_DIRS:
        d = data_dir / sub
        if d.is_dir() and names and all((d / (Path(n).stem + ".mat")).is_file() for n in names):
            return d
    return None


def load_gt_poses(data_dir: Union[str, Path], names: Sequence[str]) -> Optional[np.ndarray]:
    """GT (yaw, pitch, roll) (N, 3) in degrees for the crops ``names`` of a 3DDFA ``test.data`` folder, from
    the originals' ``.mat`` fits; ``None`` when the fits are not there."""
    d = find_fits_dir(data_dir, names)
    if d is None:
        return None
    return np.stack([read_fit_pose(d / (Path(n).stem + ".mat")) for n in names])


def score_pose(params, data_dir: Union[str, Path], names: Sequence[str],
               limit: float = POSE_LIMIT_DEG) -> Optional["PoseSummary"]:
    """Head-pose MAE of predicted params (N, 62) for the crops ``names`` of a 3DDFA ``test.data`` folder,
    against the originals' ``.mat`` fits; ``None`` when the fits are not there."""
    gt = load_gt_poses(data_dir, names)
    return None if gt is None else pose_mae(angles_from_params(params), gt, limit)


def angle_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Absolute angle differences in degrees, wrapped to [0, 180] (any matching shapes).

    >>> angle_error(np.array([179.0, 10.0]), np.array([-179.0, -5.0])).tolist()
    [2.0, 15.0]
    """
    d = np.asarray(pred, np.float64) - np.asarray(gt, np.float64)
    return np.abs((d + 180.0) % 360.0 - 180.0)


@dataclass(frozen=True)
class PoseSummary:
    """Head-pose MAE in degrees (``yaw``, ``pitch``, ``roll``, ``mean`` of the three) over ``n_used`` of
    ``n_images`` images (those with every GT angle within ±``limit``)."""

    yaw: float
    pitch: float
    roll: float
    mean: float
    n_used: int
    n_images: int
    limit: float = POSE_LIMIT_DEG

    def to_dict(self) -> dict:
        return {"yaw": self.yaw, "pitch": self.pitch, "roll": self.roll, "mean": self.mean,
                "n_used": self.n_used, "n_images": self.n_images, "limit_deg": self.limit}


def pose_mae(pred: np.ndarray, gt: np.ndarray, limit: float = POSE_LIMIT_DEG) -> PoseSummary:
    """MAE of predicted vs GT (yaw, pitch, roll) (N, 3), degrees, over images whose GT angles all lie in
    [-limit, limit] (the published protocol uses ±99 degrees).

    >>> s = pose_mae(np.array([[1.0, 2.0, 3.0], [0, 0, 0]]), np.array([[0.0, 0, 0], [0, 0, 120]]))
    >>> (s.yaw, s.pitch, s.roll, s.mean, s.n_used)
    (1.0, 2.0, 3.0, 2.0, 1)
    """
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    check_shape(pred, (None, 3), "pred")
    check_shape(gt, (pred.shape[0], 3), "gt")
    keep = (np.abs(gt) <= limit).all(axis=1)
    err = angle_error(pred[keep], gt[keep])
    per = err.mean(axis=0) if keep.any() else np.full(3, np.nan)
    return PoseSummary(float(per[0]), float(per[1]), float(per[2]), float(per.mean()), int(keep.sum()),
                       len(gt), limit)


@dataclass(frozen=True)
class PublishedPose:
    """A published head-pose MAE row on AFLW2000-3D (degrees)."""

    method: str
    yaw: float
    pitch: float
    roll: float
    mean: float
    source: str = "SynergyNet paper (3DV 2021), figure"


# Published head-pose MAE (SynergyNet paper's figure), AFLW2000-3D, 2000 images, ±99 degree protocol.
PUBLISHED_POSE: tuple[PublishedPose, ...] = (
    PublishedPose("3DDFA-TPAMI", 4.33, 5.98, 4.30, 4.87),
    PublishedPose("FSA-Net", 4.50, 6.08, 4.64, 5.07),
    PublishedPose("2DASL", 3.85, 5.06, 3.50, 4.13),
    PublishedPose("3DDFA_V2", 4.06, 5.26, 3.48, 4.27),
    PublishedPose("SynergyNet", 3.42, 4.09, 2.55, 3.35),
)
