"""The settings of training augmentation (:mod:`mfirrn.data.augment`).

Kept apart from the augmentation itself so that training configs load, and the command line shows them, without
PyTorch or OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AugmentConfig"]


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings (probabilities and ranges); all off gives the identity."""

    flip_prob: float = 0.5
    scale: tuple[float, float] = (0.95, 1.05)
    max_rotation_deg: float = 10.0
    max_translate_px: float = 4.0
    brightness: float = 0.2
    contrast: float = 0.2
    channel_gain: float = 0.1
    affine_prob: float = 0.5
    jitter_prob: float = 0.8
