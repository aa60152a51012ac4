"""AFLW2000-3D benchmark in the 3DDFA layout and protocol: load, predict, score, report.

Protocol: the 120x120 crops of ``AFLW2000-3D_crop/`` are fed in list order; predicted 68 landmarks are
mapped back to the original image with ``AFLW2000-3D_crop.roi_box.npy``; per-image NME is normalised by
``sqrt(w·h)`` of the GT landmarks' box; images are binned by |yaw| from ``AFLW2000-3D.pose.npy``.

Where the data is (:func:`find_aflw2000_root`), first match wins:

1. ``--data-root DIR`` (the ``root`` argument);
2. ``$MFIRRN_AFLW2000``;
3. ``$MFIRRN_DATASETS/aflw2000-3d-dev`` (the 500-image dev split of this project's data folder);
4. the copy fetched by ``mfirrn data fetch aflw2000-3d`` (``<user cache>/datasets/aflw2000-3d``).

AFLW (21 points, :func:`find_aflw21_root`, :func:`evaluate_aflw21`): ``--aflw-root DIR``, ``$MFIRRN_AFLW21``,
``$MFIRRN_DATASETS/aflw-21pt-test``, then the copy fetched by ``mfirrn data fetch aflw``. Its NME is
approximate: the official normaliser, ``sqrt(w·h)`` of the 68-point GT box, needs ``AFLW_GT_pts68.npy``,
which is not public. The crop box stands in for it (:data:`AFLW21_NORMALISER`): 3DDFA crops are squares of
side ``sqrt(2)·max(w, h)`` of that 68-point box, so ``side / sqrt(2)`` recovers ``max(w, h)``, slightly
larger than ``sqrt(w·h)`` (docs/data.md gives the measured size of the difference).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Union

import numpy as np
import torch
from torch import nn

from mfirrn.evaluation.metrics import YawBinSummary, nme, summarize_by_yaw
from mfirrn.evaluation.pose import PoseSummary, score_pose
from mfirrn.geometry.bfm import MorphableModel
from mfirrn.geometry.crop import crops_to_tensor, read_crop
from mfirrn.geometry.frames import CROP_SIZE
from mfirrn.inference.predict import predict_params
from mfirrn.io.checks import describe_rows, load_npy
from mfirrn.io.fileio import StagedOutputs, strict_json

__all__ = ["AFLW2000", "AFLW21", "BenchmarkResult", "resolve_aflw2000_root", "find_aflw2000_root",
           "find_aflw21_root", "evaluate", "score_params", "evaluate_aflw21", "aflw21_normaliser", "format_table",
           "write_result", "DATA_ENV", "DATASETS_ENV", "AFLW21_ENV", "AFLW21_NORMALISER"]

GtKind = Literal["original", "reannotated"]
_LIST = "AFLW2000-3D_crop.list"
DATA_ENV = "MFIRRN_AFLW2000"
DATASETS_ENV = "MFIRRN_DATASETS"
AFLW21_ENV = "MFIRRN_AFLW21"
DEV_SPLIT = "aflw2000-3d-dev"
AFLW21_TEST = "aflw-21pt-test"
AFLW21_NORMALISER = ("crop side / sqrt(2) = max(w, h) of the 68-point GT box (approximate: the official sqrt(w*h) "
                     "of that box needs AFLW_GT_pts68.npy, which is not public)")


class DatasetError(FileNotFoundError):
    """The benchmark data is missing or malformed; the message names the file and the fix."""


def resolve_aflw2000_root(root: Union[str, Path]) -> tuple[Path, Path]:
    """Find ``(test.data dir, test.configs dir)`` from a folder holding both, or from ``test.data`` itself."""
    root = Path(root).expanduser()
    candidates = [(root / "test.data", root / "test.configs"), (root, root.parent / "test.configs"), (root, root)]
    for data, configs in candidates:
        if (data / _LIST).is_file() and (configs / "AFLW2000-3D.pts68.npy").is_file():
            return data, configs
    raise DatasetError(
        f"no AFLW2000-3D benchmark data under {root}: expected test.data/{_LIST} and "
        f"test.configs/AFLW2000-3D.pts68.npy (3DDFA layout); pass --data-root to that folder"
    )


def _fetched(name: str, with_originals: bool = False) -> tuple[Optional[Path], str]:
    """The complete fetched copy of dataset ``name`` (or None) and a description for error messages."""
    from mfirrn.io.fetch import default_dest, fetched_root

    dest = default_dest(name)
    if fetched_root(name, with_originals) is not None:
        return dest, f"the fetched copy {dest}"
    if fetched_root(name) is not None:
        state = "without the original photos: fetch again with --with-originals"
    else:
        state = "incomplete" if dest.exists() else "not fetched"
    return None, f"the fetched copy {dest} ({state})"


def find_aflw2000_root(root: Union[str, Path, None] = None, *, fetch: bool = False,
                       with_originals: bool = False) -> tuple[Path, str]:
    """Where the AFLW2000-3D benchmark data is: ``(folder, how it was found)``, in the documented order
    (module docstring): ``root`` (``--data-root``), ``$MFIRRN_AFLW2000``, ``$MFIRRN_DATASETS/aflw2000-3d-dev``,
    the fetched copy. An explicit ``root`` or ``$MFIRRN_AFLW2000`` must hold the data (no fall-through).
    Raises :class:`DatasetError` with one line listing what was tried and the fix.

    ``fetch=True`` (what the notebooks use): found nowhere, the data is fetched into the user cache
    (:func:`mfirrn.io.fetch.ensure_dataset` says what and how big first) and that copy returned.
    ``with_originals``: a fetched copy only counts with the original photos and fits (fetched too when
    ``fetch``); the other places are taken as they are.
    """
    if root is not None:
        resolve_aflw2000_root(root)
        return Path(root).expanduser(), "--data-root"
    env = os.environ.get(DATA_ENV)
    if env:
        try:
            resolve_aflw2000_root(env)
        except DatasetError:
            raise DatasetError(f"${DATA_ENV}={env} holds no AFLW2000-3D benchmark data (3DDFA layout: "
                               f"test.data/{_LIST}, test.configs/*.npy); fix or unset it, or pass --data-root DIR"
                               ) from None
        return Path(env).expanduser(), f"${DATA_ENV}"
    tried = ["--data-root (not given)", f"${DATA_ENV} (unset)"]
    datasets = os.environ.get(DATASETS_ENV)
    if datasets:
        dev = Path(datasets).expanduser() / DEV_SPLIT
        if dev.exists():
            resolve_aflw2000_root(dev)
            return dev, f"${DATASETS_ENV}/{DEV_SPLIT}"
        tried.append(f"{dev} (missing)")
    else:
        tried.append(f"${DATASETS_ENV}/{DEV_SPLIT} (${DATASETS_ENV} unset)")
    fetched, what = _fetched("aflw2000-3d", with_originals)
    if fetched is not None:
        resolve_aflw2000_root(fetched)
        return fetched, "the fetched copy"
    if fetch:
        from mfirrn.io.fetch import ensure_dataset

        return ensure_dataset("aflw2000-3d", with_originals=with_originals), "fetched now"
    tried.append(what)
    raise DatasetError(f"no AFLW2000-3D benchmark data found (tried {', '.join(tried)}); "
                       f"run `mfirrn data fetch aflw2000-3d` or pass --data-root DIR")


def find_aflw21_root(root: Union[str, Path, None] = None) -> tuple[Optional[Path], str]:
    """Where the AFLW 21-point test set is: ``(folder or None, what was tried)``. Order: ``root``
    (``--aflw-root``), ``$MFIRRN_AFLW21``, ``$MFIRRN_DATASETS/aflw-21pt-test``, the fetched copy
    (``mfirrn data fetch aflw``). The training pool ``aflw-21pt-train`` is never returned. An explicit
    ``root`` or ``$MFIRRN_AFLW21`` without the data raises :class:`DatasetError`."""
    explicit = root if root is not None else os.environ.get(AFLW21_ENV)
    if explicit:
        p = Path(explicit).expanduser()
        if not (p / "AFLW_GT_crop.list").is_file():
            src = "--aflw-root" if root is not None else f"${AFLW21_ENV}"
            raise DatasetError(f"{src} {p} holds no AFLW 21-point test set (AFLW_GT_crop.list, AFLW_GT_crop/, "
                               f"AFLW_GT_pts21.npy, ...); run `mfirrn data fetch aflw --dest {p}`")
        return p, "--aflw-root" if root is not None else f"${AFLW21_ENV}"
    tried = ["--aflw-root (not given)", f"${AFLW21_ENV} (unset)"]
    datasets = os.environ.get(DATASETS_ENV)
    if datasets:
        p = Path(datasets).expanduser() / AFLW21_TEST
        if (p / "AFLW_GT_crop.list").is_file():
            return p, f"${DATASETS_ENV}/{AFLW21_TEST}"
        tried.append(f"{p} (missing)")
    fetched, what = _fetched("aflw")
    if fetched is not None:
        return fetched, "the fetched copy"
    tried.append(what)
    return None, "tried " + ", ".join(tried) + "; run `mfirrn data fetch aflw`"


@dataclass
class AFLW2000:
    """The benchmark arrays, aligned with the crop list.

    ``names`` (N,); ``crops`` (N, 120, 120, 3) uint8 BGR; ``roi`` (N, 4); ``yaw`` (N,) degrees;
    ``gt`` (N, 68, 2) image pixels (original or re-annotated).
    """

    names: list[str]
    crops: np.ndarray
    roi: np.ndarray
    yaw: np.ndarray
    gt: np.ndarray
    gt_kind: str
    root: Path

    @classmethod
    def load(cls, root: Union[str, Path], gt: GtKind = "original", limit: Optional[int] = None) -> "AFLW2000":
        data, configs = resolve_aflw2000_root(root)
        names = [s.strip() for s in (data / _LIST).read_text().splitlines() if s.strip()]
        gt_file = {"original": "AFLW2000-3D.pts68.npy", "reannotated": "AFLW2000-3D-Reannotated.pts68.npy"}
        if gt not in gt_file:
            raise ValueError(f"gt must be 'original' or 'reannotated', got {gt!r}")
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1 (or None for all images), got {limit}")
        arrays = {}
        shapes = {"gt": (None, (2, 3), 68), "roi": (None, 4), "yaw": (None,)}
        for key, fname in (("gt", gt_file[gt]), ("roi", "AFLW2000-3D_crop.roi_box.npy"), ("yaw", "AFLW2000-3D.pose.npy")):
            path = configs / fname
            arrays[key] = load_npy(path, shapes[key], what=f"restore it (the 3DDFA test.configs folder must hold {fname})",
                                   finite=True, labels=names, error=DatasetError)
            if len(arrays[key]) != len(names):
                raise DatasetError(f"{path} has {len(arrays[key])} rows but {_LIST} lists {len(names)} images; "
                                   f"the dataset copy is inconsistent, restore it")
        if not names:
            raise DatasetError(f"{data / _LIST} lists no images; restore the dataset")
        n = len(names) if limit is None else min(limit, len(names))
        crops = np.empty((n, CROP_SIZE, CROP_SIZE, 3), np.uint8)
        for i, name in enumerate(names[:n]):
            img = read_crop(data / "AFLW2000-3D_crop" / name)
            if img is None:
                raise DatasetError(f"cannot read crop {data / 'AFLW2000-3D_crop' / name}; restore it (the dataset copy is "
                                   f"incomplete or damaged)")
            crops[i] = img
        gt_pts = np.asarray(arrays["gt"][:n], np.float64)[:, :2, :].transpose(0, 2, 1)
        return cls(names[:n], crops, np.asarray(arrays["roi"][:n], np.float64),
                   np.asarray(arrays["yaw"][:n], np.float64).reshape(-1), gt_pts, gt, data)


@dataclass
class BenchmarkResult:
    """Per-image results and the yaw-bin summary of one model on one GT set."""

    model: str
    gt: str
    names: list[str]
    yaw: np.ndarray
    nme: np.ndarray
    landmarks: np.ndarray
    summary: YawBinSummary
    params: Optional[np.ndarray] = None  # (N, 62) de-normalised predictions
    pose: Optional[PoseSummary] = None  # head-pose MAE, when the originals' .mat fits are present

    def summary_dict(self) -> dict:
        d = {**self.summary.to_dict(), "model": self.model, "gt": self.gt, "n_images": len(self.names)}
        if self.pose is not None:
            d["pose_mae_deg"] = self.pose.to_dict()
        return d


def evaluate(model: nn.Module, data: AFLW2000, *, bfm: Optional[MorphableModel] = None, batch_size: int = 128,
             bf16: bool = False, name: Optional[str] = None, output: str = "fused") -> BenchmarkResult:
    """Predict all crops with ``model`` (carrying ``card``/``stats``) and score them on ``data``.

    ``output``: which head of an MFIRRN model to score (see :func:`mfirrn.inference.predict.predict_params`).
    """
    params = predict_params(model, crops_to_tensor(data.crops), batch_size=batch_size, bf16=bf16, output=output)
    return score_params(params, data, convention=model.card.convention, bfm=bfm, name=name or model.card.name)


def score_params(params: torch.Tensor, data: AFLW2000, *, convention: str, name: str,
                 bfm: Optional[MorphableModel] = None, pose: bool = True) -> BenchmarkResult:
    """Score de-normalised params (N, 62) predicted for ``data``'s crops, in the model's pixel ``convention``;
    ``pose=False`` skips the head-pose MAE (it reads every original's ``.mat`` fit)."""
    bfm = bfm if bfm is not None else MorphableModel("full")
    roi = torch.as_tensor(data.roi, dtype=torch.float32)
    with torch.no_grad():
        lms = bfm.to("cpu").landmarks(params, convention=convention, roi=roi).numpy()
    per_image = nme(lms, data.gt)
    bad = np.flatnonzero(~np.isfinite(per_image))
    if len(bad):
        raise ValueError(f"model {name} predicted non-finite landmarks for {describe_rows(bad, data.names)}; "
                         "the checkpoint is broken (NaN weights?), retrain or re-export it")
    return BenchmarkResult(name, data.gt_kind, data.names, data.yaw, per_image, lms, summarize_by_yaw(per_image, data.yaw),
                           params.numpy(), score_pose(params, data.root, data.names) if pose else None)


@dataclass
class AFLW21:
    """The AFLW 21-point test set (3DDFA layout, as fetched by ``mfirrn data fetch aflw``), crops read lazily.

    ``names`` (N,); ``roi`` (N, 4) crop boxes; ``yaw`` (N,) degrees; ``gt`` (N, 21, 2) image pixels with
    invisible points NaN (stored as -1). Crops are read by :meth:`read_crops` (21080 crops would take 0.9 GB).
    """

    names: list[str]
    roi: np.ndarray
    yaw: np.ndarray
    gt: np.ndarray
    root: Path

    @classmethod
    def load(cls, root: Union[str, Path], limit: Optional[int] = None) -> "AFLW21":
        root = Path(root).expanduser()
        files = {"list": "AFLW_GT_crop.list", "gt": "AFLW_GT_pts21.npy", "roi": "AFLW_GT_crop_roi_box.npy",
                 "yaw": "AFLW_GT_crop_yaws.npy"}
        for f in files.values():
            if not (root / f).is_file():
                raise DatasetError(f"missing {root / f}; the AFLW 21-point set needs {', '.join(files.values())} "
                                   f"and AFLW_GT_crop/ (run `mfirrn data fetch aflw`)")
        names = [s.strip() for s in (root / files["list"]).read_text().splitlines() if s.strip()]
        gt = np.load(root / files["gt"]).astype(np.float64)
        roi, yaw = np.load(root / files["roi"]).astype(np.float64), np.load(root / files["yaw"]).astype(np.float64)
        if not (len(names) == len(gt) == len(roi) == len(yaw)):
            raise DatasetError(f"{root}: list, points, roi and yaw lengths differ "
                               f"({len(names)}, {len(gt)}, {len(roi)}, {len(yaw)})")
        if gt.shape[1:] != (2, 21):
            raise DatasetError(f"{root / files['gt']} has shape {gt.shape}, expected (N, 2, 21)")
        n = len(names) if limit is None else min(limit, len(names))
        pts = gt[:n].transpose(0, 2, 1).copy()
        pts[(pts == -1).any(-1)] = np.nan
        return cls(names[:n], roi[:n], yaw[:n].reshape(-1), pts, root)

    def read_crops(self, start: int, stop: int) -> np.ndarray:
        """(n, 120, 120, 3) uint8 BGR crops ``start:stop``."""
        out = np.empty((stop - start, CROP_SIZE, CROP_SIZE, 3), np.uint8)
        for j, name in enumerate(self.names[start:stop]):
            img = read_crop(self.root / "AFLW_GT_crop" / name)
            if img is None:
                raise DatasetError(f"cannot read crop {self.root / 'AFLW_GT_crop' / name}; the copy is incomplete: "
                                   f"rerun `mfirrn data fetch aflw`")
            out[j] = img
        return out


def aflw21_normaliser(roi: np.ndarray) -> np.ndarray:
    """Approximate AFLW normaliser (N,) in pixels from crop boxes (N, 4): ``(x1 - x0) / sqrt(2)``.

    >>> aflw21_normaliser(np.array([[10.0, 20.0, 151.4213562, 161.4213562]])).round(6).tolist()
    [100.0]
    """
    roi = np.asarray(roi, np.float64)
    return (roi[:, 2] - roi[:, 0]) / np.sqrt(2.0)


def evaluate_aflw21(model: nn.Module, data: AFLW21, *, bfm: Optional[MorphableModel] = None, batch_size: int = 128,
                    bf16: bool = False, name: Optional[str] = None, chunk: int = 2048) -> BenchmarkResult:
    """AFLW 21-point NME by yaw bin (approximate normaliser, :data:`AFLW21_NORMALISER`).

    Predicted 68 points (image pixels, via the roi) are reduced to AFLW's 21 with
    :func:`mfirrn.evaluation.metrics.map_68_to_21`; invisible GT points are skipped; each image's error is divided by
    its crop side / sqrt(2). The caller must not pass a model trained on the AFLW pool
    (:func:`mfirrn.evaluation.report.aflw21_exclusion`). ``landmarks`` of the result: (N, 21, 3).
    """
    from mfirrn.evaluation.metrics import map_68_to_21

    bfm = (bfm if bfm is not None else MorphableModel("full")).to("cpu")
    lms = []
    for i in range(0, len(data.names), chunk):
        stop = min(i + chunk, len(data.names))
        params = predict_params(model, crops_to_tensor(data.read_crops(i, stop)), batch_size=batch_size, bf16=bf16)
        roi = torch.as_tensor(data.roi[i:stop], dtype=torch.float32)
        with torch.no_grad():
            lms.append(map_68_to_21(bfm.landmarks(params, convention=model.card.convention, roi=roi).numpy()))
    pred = np.concatenate(lms) if lms else np.empty((0, 21, 3))
    per_image = nme(pred, data.gt, normaliser=aflw21_normaliser(data.roi))
    return BenchmarkResult(name or model.card.name, "aflw21-approx", data.names, data.yaw, per_image, pred,
                           summarize_by_yaw(per_image, data.yaw))


def _num(v: float, width: int) -> str:
    """A table cell: the number with 3 decimals, or an em dash for an empty bin (NaN)."""
    return f"{v:{width}.3f}" if np.isfinite(v) else f"{'—':>{width}}"


def format_table(result: BenchmarkResult) -> str:
    """Plain-text table: the three yaw bins, mean and std of bin means, per-image mean, counts."""
    s = result.summary
    w = max(24, len(result.model))  # the columns stay aligned under a long model name
    head = f"{'model':<{w}} {'GT':<12} {'[0,30]':>8} {'(30,60]':>8} {'(60,90]':>8} {'Mean':>8} {'Std':>8} {'img-mean':>9}"
    row = (f"{result.model:<{w}} {result.gt:<12} " + " ".join(_num(b, 8) for b in s.bins)
           + f" {_num(s.mean, 8)} {_num(s.std, 8)} {_num(s.per_image_mean, 9)}")
    counts = f"{'images per bin':<{w + 13}} " + " ".join(f"{c:8d}" for c in s.counts) + f"   total {sum(s.counts)}"
    title = (f"AFLW 21-point NME (%, approximate normaliser), {len(result.names)} images"
             if result.gt == "aflw21-approx" else f"AFLW2000-3D 68-point NME (%), {len(result.names)} images")
    lines = [title, head, row, counts]
    if not all(s.counts):
        lines.append("— : no image in that yaw bin, so no bin mean (and no Mean/Std of the three bins)")
    if result.pose is not None:
        p = result.pose
        lines.append(f"head pose MAE (degrees, {p.n_used} images with |angles| <= {p.limit:g}): yaw {p.yaw:.3f}  "
                     f"pitch {p.pitch:.3f}  roll {p.roll:.3f}  mean {p.mean:.3f}")
    return "\n".join(lines)


def write_result(result: BenchmarkResult, out_dir: Union[str, Path]) -> dict[str, Path]:
    """Write ``summary.json`` (strict JSON: an empty bin's mean is ``null``) and ``per_image.csv`` (image, yaw,
    nme in %) into ``out_dir``, together and atomically."""
    out = Path(out_dir)
    summary_path, csv_path = out / "summary.json", out / "per_image.csv"
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["image", "yaw", "nme"])
    for name, yaw, e in zip(result.names, result.yaw, result.nme):
        w.writerow([name, f"{yaw:.4f}", f"{e * 100:.6f}"])
    with StagedOutputs() as staged:
        staged.add(summary_path, strict_json(result.summary_dict(), indent=2) + "\n")
        staged.add(csv_path, buf.getvalue())
    return {"summary": summary_path, "per_image": csv_path}
