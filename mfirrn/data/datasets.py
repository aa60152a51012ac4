"""Training datasets of (120x120 crop, 62-d params) pairs, in two on-disk formats.

``"3ddfa"`` — the 3DDFA training layout (300W-LP ``train_aug_120x120``), usable as is::

    <root>/                      # image folder, e.g. train_aug_120x120/
    <list_file>                  # one image path per line, relative to root (train_aug_120x120.list.train)
    <param_file>                 # param_all_norm.pkl: (N, 62) float32, normalised with the v1 stats

``"crops-params"`` — what this project generates::

    <root>/crops/*.png|jpg       # 120x120 BGR crops
    <root>/crops.list            # optional: order of the crops (else sorted file names)
    <root>/params.npy            # (N, 62) de-normalised params, aligned with the crops
    <root>/manifest.json         # optional: {"format": "crops-params", "convention": "v1", "count": N, ...}

Both yield ``(crop, target, index)``: crop (3, 120, 120) float32 ``(BGR - 127.5) / 128``, target (62,)
float32 params normalised with the training stats, index int64. Augmentation (train split only) draws
from ``np.random.default_rng((seed, epoch, index))``, so a sample's augmentation does not depend on
worker count or order — what makes resumed runs reproduce uninterrupted ones.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from mfirrn.geometry.crop import read_crop
from mfirrn.geometry.frames import CROP_SIZE, Convention
from mfirrn.geometry.params import PARAM_SPEC, ParamStats
from mfirrn.io.checks import check_finite_rows, check_shape, load_json, load_npy
from mfirrn.io.safeload import UnsafeFileError, load_pickle

__all__ = [
    "DatasetError",
    "ParamsDataset",
    "load_3ddfa",
    "load_crops_params",
    "DATASET_FORMATS",
    "open_dataset",
    "write_crops_params",
    "split_indices",
]

PathLike = Union[str, Path]
_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")


class DatasetError(FileNotFoundError):
    """Training data is missing or malformed; the message names the file and the fix."""


class ParamsDataset(Dataset):
    """Crops on disk + de-normalised params (N, 62) in memory.

    ``stats`` normalise the targets; ``augment`` (``(img, params, rng) -> (img, params)``) runs when set;
    ``seed`` and :meth:`set_epoch` seed it per sample. ``indices`` restricts to a subset (a split).
    """

    def __init__(self, paths: Sequence[Path], params: np.ndarray, stats: ParamStats, *, convention: Convention = "v1",
                 augment: Optional[Callable] = None, seed: int = 0, indices: Optional[Sequence[int]] = None,
                 name: str = "dataset") -> None:
        params = np.asarray(params, np.float32)
        check_shape(params, (len(paths), PARAM_SPEC.dim), f"{name} params")
        self.paths = list(paths)
        self.params = params
        self.stats = stats
        self.convention = convention
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self.indices = np.arange(len(self.paths)) if indices is None else np.asarray(indices, np.int64)
        self.name = name

    def subset(self, indices: Sequence[int], augment: Optional[Callable] = None) -> "ParamsDataset":
        """A view on ``indices`` (positions in this dataset) with its own augmentation."""
        return ParamsDataset(self.paths, self.params, self.stats, convention=self.convention, augment=augment,
                             seed=self.seed, indices=self.indices[np.asarray(indices, np.int64)], name=self.name)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def read_image(self, i: int) -> np.ndarray:
        path = self.paths[self.indices[i]]
        img = read_crop(path)
        if img is None:
            raise DatasetError(f"cannot read image {path}; restore it (the dataset copy is incomplete or damaged)")
        return img

    def raw_params(self, i: int) -> np.ndarray:
        """De-normalised params (62,) of item ``i`` (no augmentation)."""
        return self.params[self.indices[i]]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        img = self.read_image(i)
        p = self.raw_params(i).astype(np.float64)
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, int(self.indices[i])))
            img, p = self.augment(img, p, rng)
        x = (torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() - 127.5) / 128.0
        y = self.stats.normalize(torch.as_tensor(p, dtype=torch.float64)).float()
        return x, y, int(self.indices[i])


def _read_list(path: Path) -> list[str]:
    return [s.strip() for s in path.read_text().splitlines() if s.strip()]


def load_3ddfa(root: PathLike, list_file: PathLike, param_file: PathLike, stats: ParamStats,
               param_stats: Optional[ParamStats] = None, **kwargs) -> ParamsDataset:
    """The 3DDFA layout: images under ``root`` named by ``list_file``; ``param_file`` a pickle of (N, 62)
    params normalised with ``param_stats`` (default: the v1 stats asset, as 3DDFA's ``param_all_norm.pkl``).
    """
    root, list_file, param_file = Path(root), Path(list_file), Path(param_file)
    for p, what in ((root, "image folder (data.root)"), (list_file, "list file (data.list_file)"),
                    (param_file, "param pickle (data.param_file)")):
        if not p.exists():
            raise DatasetError(f"3DDFA dataset: {what} {p} does not exist; fix the path in the config")
    names = _read_list(list_file)
    try:
        arr = np.asarray(load_pickle(param_file), np.float32)
    except UnsafeFileError as exc:
        raise DatasetError(str(exc)) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as exc:
        raise DatasetError(f"{param_file} is not a readable param pickle ({type(exc).__name__}); restore the file") from None
    if arr.shape != (len(names), PARAM_SPEC.dim):
        raise DatasetError(f"{param_file} holds params of shape {arr.shape}, expected ({len(names)}, 62) "
                           f"to match {list_file}")
    check_finite_rows(arr, str(param_file), labels=names, error=DatasetError)
    pstats = param_stats or ParamStats.from_asset("stats-3ddfa-v1")
    params = pstats.denormalize(torch.from_numpy(arr).double()).numpy().astype(np.float32)
    return ParamsDataset([root / n for n in names], params, stats, name=str(root), **kwargs)


def load_crops_params(root: PathLike, stats: ParamStats, **kwargs) -> ParamsDataset:
    """The generic layout (module doc): ``crops/``, optional ``crops.list``, ``params.npy``, optional ``manifest.json``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"crops-params dataset {root} does not exist; set data.root to a folder with crops/ and params.npy")
    params_path = root / "params.npy"
    if not params_path.is_file():
        raise DatasetError(f"{params_path} is missing; point data.root to a crops-params dataset (crops/ and (N, 62) "
                           f"params.npy), e.g. one made by `mfirrn data build`")
    manifest = {}
    if (root / "manifest.json").exists():
        manifest = load_json(root / "manifest.json", error=DatasetError)
    crops = root / "crops"
    if (root / "crops.list").is_file():
        names = _read_list(root / "crops.list")
    elif crops.is_dir():
        names = sorted(p.name for p in crops.iterdir() if p.suffix.lower() in _IMAGE_EXT)
    else:
        raise DatasetError(f"{crops} is missing; put the 120x120 crops there (or list them in crops.list)")
    if not names:
        raise DatasetError(f"{root} lists no crops; build the dataset first (`mfirrn data build`)")
    params = load_npy(params_path, (None, PARAM_SPEC.dim), finite=True, labels=names, error=DatasetError)
    if params.shape != (len(names), PARAM_SPEC.dim):
        raise DatasetError(f"{params_path} has shape {params.shape}, expected ({len(names)}, 62) for {len(names)} crops; "
                           f"rebuild the dataset or fix crops.list")
    missing = [n for n in names if not (crops / n).is_file()]
    if missing:
        raise DatasetError(f"{len(missing)} of the {len(names)} crops listed for {root} are missing (e.g. {crops / missing[0]}); "
                           f"restore them or rebuild the dataset")
    kwargs.setdefault("convention", manifest.get("convention", "v1"))
    return ParamsDataset([crops / n for n in names], params, stats, name=str(root), **kwargs)


DATASET_FORMATS: dict[str, Callable[..., ParamsDataset]] = {"3ddfa": load_3ddfa, "crops-params": load_crops_params}


def open_dataset(fmt: str, stats: ParamStats, **options) -> ParamsDataset:
    """A dataset by format name (:data:`DATASET_FORMATS`) and its options (``root``, ``list_file``, ...)."""
    try:
        loader = DATASET_FORMATS[fmt]
    except KeyError:
        raise DatasetError(f"unknown dataset format {fmt!r}; use one of {', '.join(DATASET_FORMATS)}") from None
    return loader(stats=stats, **options)


def write_crops_params(out: PathLike, crops: np.ndarray, params: np.ndarray, *, convention: Convention = "v1",
                       extra: Optional[dict] = None, ext: str = ".png") -> Path:
    """Write (N, 120, 120, 3) uint8 BGR crops and (N, 62) de-normalised params in the crops-params layout."""
    out = Path(out)
    check_shape(crops, (None, CROP_SIZE, CROP_SIZE, 3), "crops")
    check_shape(params, (len(crops), PARAM_SPEC.dim), "params")
    (out / "crops").mkdir(parents=True, exist_ok=True)
    names = [f"{i:06d}{ext}" for i in range(len(crops))]
    for n, c in zip(names, crops):
        cv2.imwrite(str(out / "crops" / n), c)
    (out / "crops.list").write_text("\n".join(names) + "\n")
    np.save(out / "params.npy", np.asarray(params, np.float32))
    manifest = {"format": "crops-params", "convention": convention, "count": len(names), **(extra or {})}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def split_indices(n: int, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic held-out split of ``range(n)``: ``(train, val)`` index arrays (val at least 1 if fraction > 0)."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    if val_fraction > 0:
        n_val = max(1, n_val)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
