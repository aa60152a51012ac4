"""Head pose: Euler angles in the AFLW2000-3D / 300W-LP convention, to and from rotations and 3DDFA params.

**Convention.** The fits shipped with AFLW2000-3D (and 300W-LP, 3DDFA's training data) store
``Pose_Para = (pitch, yaw, roll, tx, ty, tz, f)`` (radians) and project a BFM shape ``S`` (3, N) as
``f · R · S + t`` with ``R = Rx(pitch) · Ry(yaw) · Rz(roll)``, where (their ``RotationMatrix.m``)::

    Rx(a) = [[1, 0, 0], [0, cos a, sin a], [0, -sin a, cos a]]
    Ry(a) = [[cos a, 0, -sin a], [0, 1, 0], [sin a, 0, cos a]]
    Rz(a) = [[cos a, sin a, 0], [-sin a, cos a, 0], [0, 0, 1]]

then flip y to the image (``y = H + 1 - y``, 1-based). 3DDFA's params hold that same matrix:
``P[:, :3] = f · R`` (checked on the dev fits: the 62-d params built from a fit reproduce its 68
landmarks within 1-3 px, the rest being the 199 -> 40 shape and 29 -> 10 expression truncation). So
the rotation of a prediction is ``R = rows of P[:, :3], normalised`` (:func:`mfirrn.geometry.params.pose_from_params`)
and the dataset's angles are its exact inverse (:func:`angles_from_rotation`)::

    yaw = asin(-R[0, 2]),  pitch = atan2(R[1, 2], R[2, 2]),  roll = atan2(R[0, 1], R[0, 0])

Signs, seen in the photo (checked on dev images): yaw > 0 turns the face towards the image's left
(the subject's own right), pitch > 0 raises the chin (looks up), roll > 0 tilts the head clockwise
in the image.

``Face.pose`` (and the JSON written by ``mfirrn reconstruct``) uses the same decomposition
(:func:`mfirrn.geometry.params.rotation_to_euler`). 3DDFA_V2's ``matrix2angle`` decomposes ``R`` in the other
order (``asin(R[2, 0])`` ...): its yaw agrees with the dataset's to first order, but its pitch and roll
have the **opposite sign** and differ by more at large combined angles; see docs/pose.md.

The error metric and the published numbers are in :mod:`mfirrn.evaluation.pose`.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ANGLE_NAMES",
    "rotation_from_angles",
    "angles_from_rotation",
    "rotation_angle",
    "rotation_from_params",
    "angles_from_params",
    "params_from_fit",
    "facing_down",
]

ANGLE_NAMES = ("yaw", "pitch", "roll")


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


def facing_down(yaw, pitch) -> np.ndarray:
    """How steeply a face looks down: the sine (*,) of the angle between its forward direction (from the back of
    the head through the nose, model axis +z) and the camera's horizontal plane, positive below it, from angles
    (*,) in **degrees** in the dataset's convention. Roll does not change where the face points.

    The forward direction in the camera is the third column of ``Rx(pitch) · Ry(yaw) · Rz(roll)``:
    ``(-sin yaw, sin pitch · cos yaw, cos pitch · cos yaw)`` (model y up, before the flip to the image), so
    ``down = -sin(pitch) · cos(yaw)``. The pitch angle alone does not say it: a profile fitted with yaw 80 and
    pitch -60 degrees points almost sideways (0.15).

    >>> facing_down(0.0, -30.0).round(6).tolist(), facing_down(0.0, 20.0).round(6).tolist()
    (0.5, -0.34202)
    >>> facing_down(80.0, -60.0).round(3).tolist()
    0.15
    >>> abs(float(facing_down(40.0, -25.0)) + float(rotation_from_angles(40.0, -25.0, 70.0)[1, 2])) < 1e-12
    True
    """
    b, a = (np.radians(np.asarray(x, np.float64)) for x in (yaw, pitch))
    return -np.sin(a) * np.cos(b)


def angles_from_rotation(R: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) (*, 3) in degrees of rotations (*, 3, 3) in the dataset's convention; the exact
    inverse of :func:`rotation_from_angles` for |yaw| < 90. At |yaw| = 90 (gimbal lock) roll is set to 0.

    >>> angles_from_rotation(rotation_from_angles(30.0, -10.0, 5.0)).round(6).tolist()
    [30.0, -10.0, 5.0]
    """
    import torch

    from mfirrn.geometry.params import rotation_to_euler

    angles = rotation_to_euler(torch.as_tensor(np.asarray(R, np.float64)))
    return torch.stack(angles, dim=-1).numpy()


def rotation_from_params(params) -> np.ndarray:
    """Rotation (*, 3, 3) of de-normalised 3DDFA params (*, 62) (numpy or torch): the rows of ``P[:, :3]``
    normalised, the third their cross product (:func:`mfirrn.geometry.params.pose_from_params`)."""
    import torch

    from mfirrn.geometry.params import pose_from_params

    t = params if isinstance(params, torch.Tensor) else torch.as_tensor(np.asarray(params, np.float64))
    return pose_from_params(t.detach().cpu().to(torch.float64)).R.numpy()


def rotation_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The angle (*,) in degrees of the rotation taking rotations ``a`` (*, 3, 3) to ``b`` (*, 3, 3): how far a head
    turned between two poses, whatever the axis (no Euler angles, so no gimbal lock near a profile).

    >>> z = rotation_from_angles(np.array(80.0), np.array(0.0), np.array(0.0))
    >>> float(rotation_angle(np.eye(3), z).round(6))
    80.0
    """
    c = (np.einsum("...ij,...ij->...", np.asarray(a, np.float64), np.asarray(b, np.float64)) - 1) / 2
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


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
