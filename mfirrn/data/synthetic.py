"""Tiny synthetic training sets for tests, smoke runs and the training notebook.

Params are sampled around the v1 stats mean (``mean + spread·std·N(0, 1)``); each crop is low-contrast
noise with the params' 68 landmarks drawn as bright dots (v1 convention), so there is a real, learnable
signal from image to params.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Literal, Optional, Union

import cv2
import numpy as np
import torch

from mfirrn.geometry.frames import CROP_SIZE
from mfirrn.geometry.params import ParamStats

__all__ = ["synthetic_samples", "make_synthetic_dataset"]


def synthetic_samples(n: int, stats: ParamStats, *, seed: int = 0, spread: float = 0.3, bfm=None,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``(crops (n, 120, 120, 3) uint8 BGR, params (n, 62) float32 de-normalised)``.

    Without ``bfm`` the crops are pure noise (enough for pipeline tests); with a
    :class:`~mfirrn.geometry.bfm.MorphableModel` the 68 landmarks are drawn in.
    """
    rng = np.random.default_rng(seed)
    params = (stats.mean + spread * stats.std * rng.standard_normal((n, stats.mean.shape[0]))).astype(np.float32)
    crops = rng.integers(0, 60, size=(n, CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)
    if bfm is not None:
        with torch.no_grad():
            lms = bfm.landmarks(params.astype(np.float64), convention="v1")
        for c, lm in zip(crops, lms):
            for x, y in lm[:, :2]:
                if 0 <= x < CROP_SIZE and 0 <= y < CROP_SIZE:
                    cv2.circle(c, (int(round(x)), int(round(y))), 1, (230, 230, 230), -1)
    return crops, params


def make_synthetic_dataset(out: Union[str, Path], n: int, stats: Optional[ParamStats] = None, *,
                           fmt: Literal["crops-params", "3ddfa"] = "crops-params", seed: int = 0,
                           spread: float = 0.3, bfm=None) -> dict[str, str]:
    """Write a synthetic set in either training format; returns the data config options to read it back.

    ``"crops-params"`` -> ``{"format", "root"}``; ``"3ddfa"`` -> ``{"format", "root", "list_file",
    "param_file"}`` with params normalised by the v1 stats as in ``param_all_norm.pkl``.
    """
    from mfirrn.data.datasets import write_crops_params

    stats = stats or ParamStats.from_asset("stats-3ddfa-v1")
    crops, params = synthetic_samples(n, stats, seed=seed, spread=spread, bfm=bfm)
    out = Path(out)
    if fmt == "crops-params":
        write_crops_params(out, crops, params, extra={"source": "synthetic", "seed": seed})
        return {"format": fmt, "root": str(out)}
    if fmt != "3ddfa":
        raise ValueError(f"unknown format {fmt!r}")
    img_dir = out / "train_aug_120x120"
    img_dir.mkdir(parents=True, exist_ok=True)
    names = [f"synthetic_{i:06d}.jpg" for i in range(n)]
    for name, c in zip(names, crops):
        cv2.imwrite(str(img_dir / name), c, [cv2.IMWRITE_JPEG_QUALITY, 98])
    (out / "train_aug_120x120.list.train").write_text("\n".join(names) + "\n")
    norm = stats.normalize(torch.from_numpy(params).double()).numpy().astype(np.float32)
    with open(out / "param_all_norm.pkl", "wb") as f:
        pickle.dump(norm, f)
    return {"format": fmt, "root": str(img_dir), "list_file": str(out / "train_aug_120x120.list.train"),
            "param_file": str(out / "param_all_norm.pkl")}
