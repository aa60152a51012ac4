"""Synthetic test clips with known truth: a real photo moved smoothly through a video frame.

Each frame is the photo under a similarity transform (pan, zoom, in-plane rotation, all smooth
sinusoids of time) on a ``width`` x ``height`` canvas, plus fresh Gaussian pixel noise; the same
transform applied to the photo's annotated 68 landmarks gives the true landmarks of every frame.
Used by the video tests, ``benchmarks/video.py`` and the video tutorial.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

import cv2
import numpy as np

from mfirrn.io.checks import check_shape

__all__ = ["ClipMotion", "FAST_MOTION", "SyntheticClip", "make_clip"]


@dataclass(frozen=True)
class ClipMotion:
    """Smooth motion of the face: pan amplitudes (pixels) and periods (s), zoom amplitude (fraction of
    ``face_size``) and period, rotation amplitude (degrees) and period, and the noise std (grey levels)."""

    pan_x: float = 110.0
    pan_y: float = 40.0
    pan_period_x: float = 4.0
    pan_period_y: float = 2.7
    zoom: float = 0.15
    zoom_period: float = 3.3
    rotation: float = 12.0
    rotation_period: float = 2.9
    noise: float = 6.0


FAST_MOTION = ClipMotion(pan_x=50.0, pan_y=40.0, pan_period_x=0.7, pan_period_y=0.45, zoom=0.1, zoom_period=0.9,
                         rotation=20.0, rotation_period=0.6)
"""A head that bobs and shakes, as in dancing or a lively talk: at 30 frames/s a 170-pixel face moves up to about
20 pixels (11 % of its size) and turns up to 7 degrees from one frame to the next, as measured on real clips."""


@dataclass
class SyntheticClip:
    """``transforms`` (T, 2, 3) photo -> frame affine maps, ``landmarks`` (T, 68, 2) true frame landmarks,
    ``fps``, ``size`` (width, height); :meth:`frames` renders the frames (BGR uint8), :meth:`write` an mp4."""

    photo: np.ndarray
    transforms: np.ndarray
    landmarks: np.ndarray
    fps: float
    size: tuple[int, int]
    noise: float
    seed: int

    def __len__(self) -> int:
        return len(self.transforms)

    def frames(self) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        for A in self.transforms:
            f = cv2.warpAffine(self.photo, A, self.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            if self.noise > 0:
                f = np.clip(f + rng.normal(0.0, self.noise, f.shape), 0, 255).astype(np.uint8)
            yield f

    def write(self, path: Union[str, Path]) -> Path:
        """Write the clip as an mp4 (MPEG-4 part 2, as :class:`mfirrn.video.io.VideoWriter`)."""
        from mfirrn.video.io import VideoWriter

        with VideoWriter(path, self.fps) as w:
            for f in self.frames():
                w.write(f)
        return Path(path)


def make_clip(photo: np.ndarray, landmarks: np.ndarray, *, n_frames: int = 90, fps: float = 30.0,
              size: tuple[int, int] = (640, 480), face_size: Optional[float] = 170.0,
              motion: ClipMotion = ClipMotion(), seed: int = 0, phase: Optional[float] = None) -> SyntheticClip:
    """A clip of ``n_frames`` frames of ``photo`` (BGR uint8) whose face, annotated by ``landmarks`` (68, 2)
    photo pixels (or the points of several faces), is scaled to ``face_size`` pixels (sqrt of their box's
    area) and moved by ``motion`` around the canvas centre. ``face_size=None``: the photo itself fills the
    frame, its centre moved by ``motion``, at the smallest scale that keeps every frame inside it (no reflected
    copy of the photo shows). ``phase`` (s) shifts the motion in time (default: random from ``seed``)."""
    lm = np.asarray(landmarks, np.float64)
    check_shape(lm, (None, 2), "landmarks")
    w, h = size
    rng = np.random.default_rng(seed)
    phase = float(rng.uniform(0, 10)) if phase is None else phase
    centre = (lm.min(0) + lm.max(0)) / 2
    extent = lm.max(0) - lm.min(0)
    m = motion
    if face_size is None:  # the photo's centre moves; the frame, turned by the largest rotation, fits in the photo
        centre = np.array(photo.shape[1::-1], np.float64) / 2
        a = np.radians(abs(m.rotation))
        half = np.array([w * np.cos(a) + h * np.sin(a), w * np.sin(a) + h * np.cos(a)]) / 2 + [abs(m.pan_x),
                                                                                              abs(m.pan_y)]
        base = float(np.max(half / centre)) / max(1.0 - m.zoom, 0.1)
    else:
        base = face_size / np.sqrt(extent[0] * extent[1])
    t = np.arange(n_frames) / fps + phase
    scale = base * (1 + m.zoom * np.sin(2 * np.pi * t / m.zoom_period))
    angle = np.radians(m.rotation * np.sin(2 * np.pi * t / m.rotation_period))
    cx = w / 2 + m.pan_x * np.sin(2 * np.pi * t / m.pan_period_x)
    cy = h / 2 + m.pan_y * np.sin(2 * np.pi * t / m.pan_period_y)
    A = np.zeros((n_frames, 2, 3))
    A[:, 0, 0], A[:, 0, 1] = scale * np.cos(angle), -scale * np.sin(angle)
    A[:, 1, 0], A[:, 1, 1] = scale * np.sin(angle), scale * np.cos(angle)
    A[:, :, 2] = np.stack([cx, cy], 1) - np.einsum("tij,j->ti", A[:, :, :2], centre)
    true = np.einsum("tij,kj->tki", A[:, :, :2], lm) + A[:, None, :, 2]
    return SyntheticClip(photo, A.astype(np.float64), true, fps, (w, h), m.noise, seed)
