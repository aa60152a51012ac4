"""Face profiling (3DDFA's pose augmentation): rotate a fitted face in 3D and re-render it on its photo.

Given a 120x120 crop and params fitted to it:

1. the dense mesh is rebuilt in the crop frame and textured with the photo colours under its visible
   vertices (visibility from the renderer's z-buffer);
2. the pose is rotated about the head centre: ``P' = [R_Δ·sR | R_Δ(t - c) + c]`` — shape and
   expression are unchanged, so the new params are exact;
3. the original face region is removed from the photo (OpenCV inpainting of the rendered face mask),
   a plausible background fill, and the rotated textured mesh is rendered on top.

Yaw is only increased *in the direction the face already turns* (as 3DDFA does): the side that becomes
more visible is the side the photo already shows, so no unseen texture is invented.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import cv2
import numpy as np
import torch

from mfirrn.geometry.bfm import MorphableModel, mirror_vertex_map
from mfirrn.geometry.frames import CROP_SIZE, Convention
from mfirrn.geometry.params import pose_from_params, split_params
from mfirrn.io.checks import check_shape

__all__ = ["ProfileConfig", "ProfileSource", "rotation_matrix", "rotate_params", "sample_rotation", "sweep_rotations",
           "prepare_profile", "render_profiles", "profile_face"]


@dataclass(frozen=True)
class ProfileConfig:
    """How profiled samples are drawn: ``yaw_step`` (min, max) degrees added in the face's turning
    direction, capped at ``max_yaw``; uniform pitch/roll jitter of ±``pitch_jitter``/``roll_jitter``
    degrees; ``inpaint_radius`` pixels for the background fill; ``mask_dilate`` pixels grown around the
    original face before inpainting; ``min_facing``: a visible vertex takes its colour from the photo only
    where its normal's z component (toward the camera) exceeds it, else it is textured like a hidden one."""

    yaw_step: tuple[float, float] = (15.0, 45.0)
    max_yaw: float = 90.0
    pitch_jitter: float = 8.0
    roll_jitter: float = 8.0
    inpaint_radius: int = 3
    mask_dilate: int = 2
    min_facing: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3, 3) rotation ``R_z(-roll) R_x(-pitch) R_y(-yaw)`` in the posed frame (degrees).

    Left-multiplying a frontal pose by it changes :func:`mfirrn.geometry.params.pose_from_params`'s yaw, pitch and
    roll by ``+yaw``, ``+pitch``, ``+roll`` (exactly for one angle alone; approximately when combined).
    """
    a, b, c = (math.radians(v) for v in (-yaw, -pitch, -roll))
    Ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    Rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    Rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return Rz @ Rx @ Ry


def rotate_params(params: torch.Tensor, R: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """Rotate posed faces about ``centre`` (B, 3) (posed frame) by ``R`` (B, 3, 3): params (B, 62) -> (B, 62)."""
    check_shape(params, (None, 62), "params")
    P = split_params(params).P
    Rs = R.to(params.dtype) @ P[..., :3]
    t = (R.to(params.dtype) @ (P[..., 3] - centre)[..., None])[..., 0] + centre
    out = params.clone()
    out[:, :12] = torch.cat([Rs, t[..., None]], dim=-1).reshape(-1, 12)
    return out


def sample_rotation(yaw: float, rng: np.random.Generator, cfg: ProfileConfig) -> Optional[tuple[float, float, float]]:
    """Angles (Δyaw, Δpitch, Δroll) in degrees that turn a face of ``yaw`` further, or ``None`` when it
    is already at ``max_yaw``. Near-frontal faces (|yaw| < 5) turn either way."""
    sign = float(np.sign(yaw)) if abs(yaw) >= 5 else float(rng.choice([-1.0, 1.0]))
    room = cfg.max_yaw - abs(yaw)
    if room <= cfg.yaw_step[0] / 2:
        return None
    step = min(rng.uniform(*cfg.yaw_step), room)
    return sign * step, rng.uniform(-cfg.pitch_jitter, cfg.pitch_jitter), rng.uniform(-cfg.roll_jitter, cfg.roll_jitter)


@dataclass(frozen=True)
class ProfileSource:
    """What every view of one face shares (:func:`prepare_profile`): the params ``p`` (1, 62), the head
    centre (1, 3) in the posed frame, per-vertex colours (N, 3) RGB in [0, 1], and the photo with the face
    region inpainted, ``background`` (120, 120, 3) float32 in [0, 1]."""

    p: torch.Tensor
    centre: torch.Tensor
    colors: np.ndarray
    background: np.ndarray
    convention: str


def prepare_profile(crop: np.ndarray, params: np.ndarray, bfm: MorphableModel, convention: Convention,
                    cfg: ProfileConfig = ProfileConfig(), mirror: Optional[np.ndarray] = None) -> ProfileSource:
    """Texture and background of a face for :func:`render_profiles` (the view-independent half of profiling).

    ``crop`` (120, 120, 3) uint8 BGR, ``params`` (62,) de-normalised, fitted to the crop with ``convention``.
    Vertices hidden in the photo, or seen at a grazing angle (``cfg.min_facing``), take the colour of
    their mirror vertex where that one is visible and faces the camera (``mirror``, from
    :func:`mfirrn.geometry.bfm.mirror_vertex_map`; computed when not given), else the photo colour under them.
    """
    from mfirrn import render
    from mfirrn.render.meshio import sample_colors

    check_shape(crop, (CROP_SIZE, CROP_SIZE, 3), "crop")
    p = torch.as_tensor(np.asarray(params, np.float32)).reshape(1, 62)
    tri = np.ascontiguousarray(bfm.triangles, dtype=np.int32)
    with torch.no_grad():
        v = bfm.vertices(p, convention=convention)[0].numpy()
        centre = bfm.posed_vertices(p)[0].mean(0, keepdim=True)
    size = CROP_SIZE
    visible = render.visibility(v, tri, size, size, eps=1.0, num_threads=1)
    # the photo shows a vertex's own colour only where its surface faces the camera: at grazing angles
    # (the cheek contour, the jaw's underside, the ear's rim) the pixel under it mixes in the background
    # or the surface in front, and profiling is what stretches those vertices over the newly revealed side
    facing = render.vertex_normals(v, tri)[:, 2] > cfg.min_facing
    reliable = visible & facing
    colors = sample_colors(crop, v)[:, ::-1].astype(np.float32)  # BGR in [0, 1]
    mirror = mirror_vertex_map(bfm) if mirror is None else mirror
    use_mirror = ~reliable & reliable[mirror]
    colors[use_mirror] = colors[mirror[use_mirror]]
    ids, _ = render.rasterize_ids(v, tri, size, size, num_threads=1)
    mask = (ids >= 0).astype(np.uint8) * 255
    if cfg.mask_dilate > 0:
        k = 2 * cfg.mask_dilate + 1
        mask = cv2.dilate(mask, np.ones((k, k), np.uint8))
    background = cv2.inpaint(crop, mask, cfg.inpaint_radius, cv2.INPAINT_TELEA).astype(np.float32) / 255.0
    return ProfileSource(p, centre, colors, background, convention)


def render_profiles(source: ProfileSource, angles: np.ndarray, bfm: MorphableModel) -> tuple[np.ndarray, np.ndarray]:
    """Views of a prepared face rotated by ``angles`` (K, 3) (Δyaw, Δpitch, Δroll degrees) about its head
    centre: crops (K, 120, 120, 3) uint8 BGR and their exact params (K, 62) float32."""
    from mfirrn import render

    angles = np.asarray(angles, np.float64).reshape(-1, 3)
    k = len(angles)
    out = np.empty((k, CROP_SIZE, CROP_SIZE, 3), np.uint8)
    if k == 0:
        return out, np.zeros((0, 62), np.float32)
    tri = np.ascontiguousarray(bfm.triangles, dtype=np.int32)
    R = torch.as_tensor(np.stack([rotation_matrix(*a) for a in angles]), dtype=torch.float32)
    with torch.no_grad():
        p_new = rotate_params(source.p.expand(k, 62), R, source.centre.expand(k, 3))
        v_new = bfm.vertices(p_new, convention=source.convention).numpy()
    for i in range(k):
        image, _ = render.rasterize(v_new[i], tri, source.colors, CROP_SIZE, CROP_SIZE, background=source.background,
                                    num_threads=1)
        out[i] = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    return out, p_new.numpy()


def profile_face(crop: np.ndarray, params: np.ndarray, bfm: MorphableModel, convention: Convention,
                 angles: tuple[float, float, float], cfg: ProfileConfig = ProfileConfig(),
                 mirror: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Re-render a face rotated by ``angles`` (Δyaw, Δpitch, Δroll degrees): :func:`prepare_profile`, then
    :func:`render_profiles` of one view. Returns the new crop (120, 120, 3) uint8 and its params (62,) float32."""
    source = prepare_profile(crop, params, bfm, convention, cfg, mirror)
    images, p_new = render_profiles(source, np.asarray([angles]), bfm)
    return images[0], p_new[0]


def sweep_rotations(yaw: float, n: int, rng: np.random.Generator, cfg: ProfileConfig,
                    power: float = 1.0) -> np.ndarray:
    """``n`` rotations (n, 3) (Δyaw, Δpitch, Δroll degrees) that sweep a face of ``yaw`` degrees over the
    rest of the yaw range in the direction it turns, as 300W-LP's profiling does: view ``k`` turns by
    ``room * f**power``, ``f`` uniform in the k-th of ``n`` equal slices of [0, 1] (stratified) and ``room =
    max_yaw - |yaw|``, with uniform pitch/roll jitter of ±``pitch_jitter``/``roll_jitter``. ``power`` > 1
    puts the views closer to the photo's pose (3 makes the |yaw| of a pool like AFLW's about uniform over
    [0, 90]). Near-frontal faces (|yaw| < 5) turn either way, a coin per view. A face already at ``max_yaw``
    gets views that differ in pitch and roll only."""
    if n <= 0:
        return np.zeros((0, 3))
    room = max(0.0, cfg.max_yaw - abs(yaw))
    frac = ((np.arange(n) + rng.uniform(0.0, 1.0, n)) / n) ** power
    sign = np.full(n, float(np.sign(yaw))) if abs(yaw) >= 5 else rng.choice([-1.0, 1.0], n)
    pitch = rng.uniform(-cfg.pitch_jitter, cfg.pitch_jitter, n)
    roll = rng.uniform(-cfg.roll_jitter, cfg.roll_jitter, n)
    return np.stack([sign * room * frac, pitch, roll], axis=1)


def yaw_of(params: np.ndarray) -> np.ndarray:
    """Yaw in degrees (B,) of de-normalised params (B, 62)."""
    return pose_from_params(torch.as_tensor(np.asarray(params, np.float32))).yaw.numpy()
