"""AFLW2000-3D benchmark in the 3DDFA layout (REFERENCE §3): load, predict, score, report.

Protocol: the 120x120 crops of ``AFLW2000-3D_crop/`` are fed in list order; predicted 68 landmarks are
mapped back to the original image with ``AFLW2000-3D_crop.roi_box.npy``; per-image NME is normalised by
``sqrt(w·h)`` of the GT landmarks' box; images are binned by |yaw| from ``AFLW2000-3D.pose.npy``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Union

import numpy as np
import torch
from torch import nn

from mfirrn.bfm import MorphableModel
from mfirrn.checks import describe_rows, load_npy
from mfirrn.crop import crops_to_tensor, read_crop
from mfirrn.fileio import StagedOutputs, strict_json
from mfirrn.frames import CROP_SIZE
from mfirrn.inference import predict_params
from mfirrn.metrics import YawBinSummary, nme, summarize_by_yaw

__all__ = ["AFLW2000", "BenchmarkResult", "resolve_aflw2000_root", "evaluate", "format_table", "write_result"]

GtKind = Literal["original", "reannotated"]
_LIST = "AFLW2000-3D_crop.list"


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

    def summary_dict(self) -> dict:
        return {**self.summary.to_dict(), "model": self.model, "gt": self.gt, "n_images": len(self.names)}


def evaluate(model: nn.Module, data: AFLW2000, *, bfm: Optional[MorphableModel] = None, batch_size: int = 128,
             bf16: bool = False, name: Optional[str] = None, output: str = "fused") -> BenchmarkResult:
    """Predict all crops with ``model`` (carrying ``card``/``stats``) and score them on ``data``.

    ``output``: which head of an MFIRRN model to score (see :func:`mfirrn.inference.predict_params`).
    """
    bfm = bfm if bfm is not None else MorphableModel("full")
    x = crops_to_tensor(data.crops)
    params = predict_params(model, x, batch_size=batch_size, bf16=bf16, output=output)
    roi = torch.as_tensor(data.roi, dtype=torch.float32)
    with torch.no_grad():
        lms = bfm.to("cpu").landmarks(params, convention=model.card.convention, roi=roi).numpy()
    per_image = nme(lms, data.gt)
    bad = np.flatnonzero(~np.isfinite(per_image))
    if len(bad):
        raise ValueError(f"model {name or model.card.name} predicted non-finite landmarks for "
                         f"{describe_rows(bad, data.names)}; the checkpoint is broken (NaN weights?), retrain or re-export it")
    return BenchmarkResult(name or model.card.name, data.gt_kind, data.names, data.yaw, per_image, lms,
                           summarize_by_yaw(per_image, data.yaw))


def format_table(result: BenchmarkResult) -> str:
    """Plain-text table: the three yaw bins, mean and std of bin means, per-image mean, counts."""
    s = result.summary
    head = f"{'model':<24} {'GT':<12} {'[0,30]':>8} {'(30,60]':>8} {'(60,90]':>8} {'Mean':>8} {'Std':>8} {'img-mean':>9}"
    row = (f"{result.model:<24} {result.gt:<12} " + " ".join(f"{b:8.3f}" for b in s.bins)
           + f" {s.mean:8.3f} {s.std:8.3f} {s.per_image_mean:9.3f}")
    counts = f"{'images per bin':<37} " + " ".join(f"{c:8d}" for c in s.counts) + f"   total {sum(s.counts)}"
    return "\n".join([f"AFLW2000-3D 68-point NME (%), {len(result.names)} images", head, row, counts])


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
