"""Training labels from sparse landmarks: teacher prediction + landmark fit (:mod:`mfirrn.data.labels.fitting`).

This is how 300W-LP itself was labelled (3DMM fitting to landmarks). Here the sources are the AFLW
21-point pool (``aflw-21pt-train``: 120x120 crops, 21 GT points in original-image pixels, -1 =
invisible, crop boxes) and, for validation only, the AFLW2000-3D dev split (its ``pts21`` file, scored
against its 68-point GT).

Where the pool is (:func:`find_pool_root`), first match wins: ``--pool DIR`` (the ``root`` argument),
``$MFIRRN_DATASETS/aflw-21pt-train``, the copy fetched by ``mfirrn data fetch aflw-train``
(``<user cache>/datasets/aflw-21pt-train``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from mfirrn.data.labels.fitting import FitConfig, FitResult, fit_landmarks, visible_mask
from mfirrn.geometry.bfm import MorphableModel
from mfirrn.geometry.crop import crops_to_tensor, read_crop
from mfirrn.geometry.frames import CROP_SIZE
from mfirrn.inference.predict import predict_params
from mfirrn.io.checks import check_array, load_json, load_npy, load_npz
from mfirrn.io.fileio import StagedOutputs, strict_json

__all__ = ["LandmarkPool", "PoolError", "POOL_NAME", "find_pool_root", "points_to_crop", "label_pool", "save_labels",
           "load_labels"]

POOL_NAME = "aflw-21pt-train"  # the pool's folder under $MFIRRN_DATASETS and in the user cache
_FETCH_NAME = "aflw-train"      # its name for `mfirrn data fetch`


class PoolError(FileNotFoundError):
    """A landmark pool is missing or malformed; the message names the file and the fix."""


def find_pool_root(root: Union[str, Path, None] = None, *, fetch: bool = False) -> tuple[Path, str]:
    """Where the AFLW training pool is: ``(folder, how it was found)``. Order: ``root`` (``--pool``),
    ``$MFIRRN_DATASETS/aflw-21pt-train``, the fetched copy (``mfirrn data fetch aflw-train``). With
    ``fetch=True`` a pool found nowhere is fetched into the user cache (:func:`mfirrn.io.fetch.ensure_dataset`
    says what and how big first); else :class:`PoolError` names what was tried and the fix, on one line.
    An explicit ``root`` is returned as given (:meth:`LandmarkPool.aflw21` checks its files)."""
    from mfirrn.io.fetch import default_dest, ensure_dataset, fetched_root, plan

    if root is not None:
        return Path(root).expanduser(), "--pool"
    tried = []
    datasets = os.environ.get("MFIRRN_DATASETS")
    if datasets:
        p = Path(datasets).expanduser() / POOL_NAME
        if p.exists():
            return p, f"$MFIRRN_DATASETS/{POOL_NAME}"
        tried.append(f"{p} (missing)")
    else:
        tried.append(f"$MFIRRN_DATASETS/{POOL_NAME} ($MFIRRN_DATASETS unset)")
    fetched = fetched_root(_FETCH_NAME)
    if fetched is not None:
        return fetched, "the fetched copy"
    if fetch:
        return ensure_dataset(_FETCH_NAME), "fetched now"
    dest = default_dest(_FETCH_NAME)
    tried.append(f"the fetched copy {dest} ({'incomplete' if dest.exists() else 'not fetched'})")
    size = sum(e.size for e, _ in plan(_FETCH_NAME)) / 1e6
    raise PoolError(f"no AFLW training pool found (tried {', '.join(tried)}); run `mfirrn data fetch {_FETCH_NAME}` "
                    f"({size:.0f} MB) or pass --pool DIR")


def points_to_crop(points: np.ndarray, roi: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Image-pixel points (N, K, 2) -> crop pixels with crop boxes (N, 4); invisible (-1/NaN) points stay -1."""
    pts = np.asarray(points, np.float64)
    roi = np.asarray(roi, np.float64)
    kx = size / (roi[:, 2] - roi[:, 0])
    ky = size / (roi[:, 3] - roi[:, 1])
    out = np.stack([(pts[..., 0] - roi[:, None, 0]) * kx[:, None], (pts[..., 1] - roi[:, None, 1]) * ky[:, None]], -1)
    out[~visible_mask(pts)] = -1.0
    return out


@dataclass
class LandmarkPool:
    """Crops with sparse landmarks: ``names`` (N,), ``crop_dir``, ``points`` (N, K, 2) **crop** pixels
    (-1 invisible), ``roi`` (N, 4) crop boxes in the original images, ``yaw`` (N,) degrees or NaN."""

    names: list[str]
    crop_dir: Path
    points: np.ndarray
    roi: np.ndarray
    yaw: np.ndarray

    @classmethod
    def aflw21(cls, root: Union[str, Path]) -> "LandmarkPool":
        """The AFLW 21-point pool layout: ``AFLW_GT_crop/``, ``AFLW_GT_crop.list``, ``AFLW_GT_pts21.npy``
        (N, 2, 21), ``AFLW_GT_crop_roi_box.npy`` (N, 4), ``AFLW_GT_crop_yaws.npy`` (N,)."""
        root = Path(root)
        files = {"list": "AFLW_GT_crop.list", "pts": "AFLW_GT_pts21.npy", "roi": "AFLW_GT_crop_roi_box.npy"}
        for f in files.values():
            if not (root / f).is_file():
                raise PoolError(f"{root / f} is missing; --pool must be the aflw-21pt-train folder")
        names = [s.strip() for s in (root / files["list"]).read_text().splitlines() if s.strip()]
        fix = "--pool must be the aflw-21pt-train folder"
        pts = load_npy(root / files["pts"], (None, 2, 21), what=fix, error=PoolError).astype(np.float64).transpose(0, 2, 1)
        roi = load_npy(root / files["roi"], (None, 4), what=fix, finite=True, error=PoolError).astype(np.float64)
        yaw_path = root / "AFLW_GT_crop_yaws.npy"
        yaw = (load_npy(yaw_path, (None,), error=PoolError).astype(np.float64) if yaw_path.is_file()
               else np.full(len(names), np.nan))
        if not (len(names) == len(pts) == len(roi) == len(yaw)):
            raise PoolError(f"{root}: list, points, roi and yaw lengths differ ({len(names)}, {len(pts)}, {len(roi)}, {len(yaw)}); "
                            f"restore the pool files (they must describe the same crops)")
        return cls(names, root / "AFLW_GT_crop", points_to_crop(pts, roi), roi, yaw)

    def read_crops(self, indices: Union[range, np.ndarray]) -> np.ndarray:
        """(n, 120, 120, 3) uint8 BGR crops."""
        out = np.empty((len(indices), CROP_SIZE, CROP_SIZE, 3), np.uint8)
        for j, i in enumerate(indices):
            img = read_crop(self.crop_dir / self.names[i])
            if img is None:
                raise PoolError(f"cannot read {self.crop_dir / self.names[i]}; restore it (the pool copy is incomplete or damaged)")
            out[j] = img
        return out


def label_pool(pool: LandmarkPool, teacher: nn.Module, bfm: MorphableModel, config: FitConfig = FitConfig(),
               *, chunk: int = 2048, bf16: bool = False, progress: bool = True) -> FitResult:
    """Teacher params for every crop, then the landmark fit anchored to them (teacher's stats and convention)."""
    from tqdm import tqdm

    params = []
    for i in tqdm(range(0, len(pool.names), chunk), desc="teacher", unit="chunk", disable=not progress):
        crops = pool.read_crops(range(i, min(i + chunk, len(pool.names))))
        params.append(predict_params(teacher, crops_to_tensor(crops), bf16=bf16))
    init = torch.cat(params)
    return fit_landmarks(bfm, teacher.stats, init, pool.points, convention=teacher.card.convention,
                         config=config, progress=progress)


def save_labels(out: Union[str, Path], pool: LandmarkPool, result: FitResult, *, teacher: str, convention: str,
                config: FitConfig, source: str) -> Path:
    """Write ``labels.npz`` (params, residual, accepted, n_visible, yaw, roi, names) and ``labels.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    import io

    buf = io.BytesIO()
    np.savez(buf, params=result.params.numpy().astype(np.float32), residual=result.residual.numpy(),
             accepted=result.accepted.numpy(), n_visible=result.n_visible.numpy(), yaw=pool.yaw, roi=pool.roi,
             names=np.array(pool.names))
    meta = {"source": source, "crop_dir": str(pool.crop_dir), "count": len(pool.names),
            "accepted": int(result.accepted.sum()), "teacher": teacher, "convention": convention,
            "labeller": {"method": "landmark fit anchored to teacher (mfirrn.data.labels.fitting)", **config.to_dict()},
            "residual_median": float(result.residual.median()) if len(result.residual) else None}
    with StagedOutputs() as staged:  # both files or neither: `data build` never sees labels without their metadata
        staged.add(out / "labels.npz", buf.getvalue())
        staged.add(out / "labels.json", strict_json(meta, indent=2) + "\n")
    return out


def load_labels(path: Union[str, Path]) -> tuple[dict, dict]:
    """``(arrays, meta)`` from a folder written by :func:`save_labels`."""
    path = Path(path)
    fix = "run `mfirrn data fit-landmarks` first (--labels is its --out folder)"
    if not path.is_dir():
        raise PoolError(f"labels folder {path} does not exist; {fix}")
    arrays = load_npz(path / "labels.npz", ("params", "accepted", "names"), what=fix, error=PoolError)
    names = arrays["names"]
    name = str(path / "labels.npz")
    check_array(names, (None,), f"{name}: names", numeric=False, error=PoolError)
    n = len(names)
    check_array(arrays["params"], (n, 62), f"{name}: params", finite=True, labels=[str(v) for v in names], error=PoolError)
    check_array(arrays["accepted"], (n,), f"{name}: accepted", error=PoolError)
    arrays["accepted"] = arrays["accepted"].astype(bool)
    meta = load_json(path / "labels.json", ("crop_dir", "convention"), what=fix, error=PoolError)
    if meta["convention"] not in ("v1", "v2"):
        raise PoolError(f"{path / 'labels.json'}: convention {meta['convention']!r} is not v1 or v2; regenerate the labels")
    return arrays, meta


def validate_on_aflw2000(data_root: Union[str, Path], teacher: nn.Module, bfm: MorphableModel,
                         config: FitConfig = FitConfig(), limit: Optional[int] = None):
    """Fit to AFLW2000-3D's 21 points, score the fitted 68 points against the 68-point GT.

    Returns ``(fitted, teacher_only)`` :class:`mfirrn.evaluation.metrics.YawBinSummary` (original GT).
    """
    from mfirrn.evaluation.benchmark import AFLW2000, resolve_aflw2000_root
    from mfirrn.evaluation.metrics import nme, summarize_by_yaw

    data = AFLW2000.load(data_root, limit=limit)
    _, configs = resolve_aflw2000_root(data_root)
    pts21_path = configs / "AFLW2000-3D.pts21.npy"
    if not pts21_path.is_file():
        raise PoolError(f"{pts21_path} is missing; labeller validation needs the 21-point AFLW2000-3D annotations")
    pts21 = load_npy(pts21_path, (None, 2, 21), error=PoolError)
    if len(pts21) < len(data.names):
        raise PoolError(f"{pts21_path} has {len(pts21)} rows but the crop list has {len(data.names)} images; "
                        f"restore the file")
    pts21 = pts21.astype(np.float64).transpose(0, 2, 1)[: len(data.names)]
    init = predict_params(teacher, crops_to_tensor(data.crops))
    res = fit_landmarks(bfm, teacher.stats, init, points_to_crop(pts21, data.roi),
                        convention=teacher.card.convention, config=config)
    roi = torch.as_tensor(data.roi, dtype=torch.float32)
    out = []
    for p in (res.params, init):
        lm = bfm.landmarks(p, convention=teacher.card.convention, roi=roi).numpy()
        out.append(summarize_by_yaw(nme(lm, data.gt), data.yaw))
    return out[0], out[1], res
