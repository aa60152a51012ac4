"""Head pose as a result: Euler angles in the AFLW2000-3D / 300W-LP convention and their error metric.

**Convention.** The fits shipped with AFLW2000-3D (and 300W-LP, 3DDFA's training data) store
``Pose_Para = (pitch, yaw, roll, tx, ty, tz, f)`` (radians) and project a BFM shape ``S`` (3, N) as
``f · R · S + t`` with ``R = Rx(pitch) · Ry(yaw) · Rz(roll)``, where (their ``RotationMatrix.m``)::

    Rx(a) = [[1, 0, 0], [0, cos a, sin a], [0, -sin a, cos a]]
    Ry(a) = [[cos a, 0, -sin a], [0, 1, 0], [sin a, 0, cos a]]
    Rz(a) = [[cos a, sin a, 0], [-sin a, cos a, 0], [0, 0, 1]]

then flip y to the image (``y = H + 1 - y``, 1-based). 3DDFA's params hold that same matrix:
``P[:, :3] = f · R`` (checked on the dev fits: the 62-d params built from a fit reproduce its 68
landmarks within 1-3 px, the rest being the 199 -> 40 shape and 29 -> 10 expression truncation). So
the rotation of a prediction is ``R = rows of P[:, :3], normalised`` (:func:`mfirrn.params.pose_from_params`)
and the dataset's angles are its exact inverse (:func:`angles_from_rotation`)::

    yaw = asin(-R[0, 2]),  pitch = atan2(R[1, 2], R[2, 2]),  roll = atan2(R[0, 1], R[0, 0])

Signs, seen in the photo (checked on dev images): yaw > 0 turns the face towards the image's left
(the subject's own right), pitch > 0 raises the chin (looks up), roll > 0 tilts the head clockwise
in the image.

``Face.pose`` (and the JSON written by ``mfirrn reconstruct``) uses the same decomposition
(:func:`mfirrn.params.rotation_to_euler`). 3DDFA_V2's ``matrix2angle`` decomposes ``R`` in the other
order (``asin(R[2, 0])`` ...): its yaw agrees with the dataset's to first order, but its pitch and roll
have the **opposite sign** and differ by more at large combined angles; see docs/pose.md.

**Metric** (REFERENCE §6): mean absolute error in degrees of yaw, pitch and roll over the images whose
three ground-truth angles lie within ±99 degrees, and the mean of the three.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from mfirrn.checks import check_shape

__all__ = [
    "ANGLE_NAMES",
    "POSE_LIMIT_DEG",
    "rotation_from_angles",
    "angles_from_rotation",
    "rotation_from_params",
    "angles_from_params",
    "params_from_fit",
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

ANGLE_NAMES = ("yaw", "pitch", "roll")
POSE_LIMIT_DEG = 99.0  # the usual protocol keeps images whose three GT angles lie within ±99 degrees


def rotation_from_angles(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """The dataset's rotation ``Rx(pitch) · Ry(yaw) · Rz(roll)`` (*, 3, 3) from angles (*,) in **degrees**.

    >>> rotation_from_angles(0.0, 0.0, 0.0).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    a, b, c = (np.radians(np.asarray(x, np.float64)) for x in (pitch, yaw, roll))
    a, b, c = np.broadcast_arrays(a, b, c)
    one, zero = np.ones_like(a), np.zeros_like(a)

    def mat(rows):
        return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)

    rx = mat([[one, zero, zero], [zero, np.cos(a), np.sin(a)], [zero, -np.sin(a), np.cos(a)]])
    ry = mat([[np.cos(b), zero, -np.sin(b)], [zero, one, zero], [np.sin(b), zero, np.cos(b)]])
    rz = mat([[np.cos(c), np.sin(c), zero], [-np.sin(c), np.cos(c), zero], [zero, zero, one]])
    return rx @ ry @ rz


def angles_from_rotation(R: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) (*, 3) in degrees of rotations (*, 3, 3) in the dataset's convention; the exact
    inverse of :func:`rotation_from_angles` for |yaw| < 90. At |yaw| = 90 (gimbal lock) roll is set to 0.

    >>> angles_from_rotation(rotation_from_angles(30.0, -10.0, 5.0)).round(6).tolist()
    [30.0, -10.0, 5.0]
    """
    import torch

    from mfirrn.params import rotation_to_euler

    angles = rotation_to_euler(torch.as_tensor(np.asarray(R, np.float64)))
    return torch.stack(angles, dim=-1).numpy()


def rotation_from_params(params) -> np.ndarray:
    """Rotation (*, 3, 3) of de-normalised 3DDFA params (*, 62) (numpy or torch): the rows of ``P[:, :3]``
    normalised, the third their cross product (:func:`mfirrn.params.pose_from_params`)."""
    import torch

    from mfirrn.params import pose_from_params

    t = params if isinstance(params, torch.Tensor) else torch.as_tensor(np.asarray(params, np.float64))
    return pose_from_params(t.detach().cpu().to(torch.float64)).R.numpy()


def angles_from_params(params) -> np.ndarray:
    """(yaw, pitch, roll) (*, 3) in degrees, dataset convention, of de-normalised params (*, 62)."""
    return angles_from_rotation(rotation_from_params(params))


def params_from_fit(fit: dict) -> np.ndarray:
    """The 62-d 3DDFA params (62,) of an AFLW2000-3D / 300W-LP fit (a loaded ``.mat``): ``P = [f·R | t]``
    in the original image frame (posed y up; ``y_image = H + 1 - y``, 1-based), the first 40 shape and
    first 10 expression coefficients."""
    pose = np.asarray(fit["Pose_Para"], np.float64).reshape(-1)
    pitch, yaw, roll = np.degrees(pose[:3])
    R = rotation_from_angles(yaw, pitch, roll)
    P = np.concatenate([pose[6] * R, pose[3:6, None]], axis=1)
    shp = np.asarray(fit["Shape_Para"], np.float64).reshape(-1)[:40]
    exp = np.asarray(fit["Exp_Para"], np.float64).reshape(-1)[:10]
    return np.concatenate([P.reshape(-1), shp, exp])


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
    [-limit, limit] (REFERENCE §6).

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


# REFERENCE §6 (SynergyNet paper's figure), AFLW2000-3D, 2000 images, ±99 degree protocol.
PUBLISHED_POSE: tuple[PublishedPose, ...] = (
    PublishedPose("3DDFA-TPAMI", 4.33, 5.98, 4.30, 4.87),
    PublishedPose("FSA-Net", 4.50, 6.08, 4.64, 5.07),
    PublishedPose("2DASL", 3.85, 5.06, 3.50, 4.13),
    PublishedPose("3DDFA_V2", 4.06, 5.26, 3.48, 4.27),
    PublishedPose("SynergyNet", 3.42, 4.09, 2.55, 3.35),
)
