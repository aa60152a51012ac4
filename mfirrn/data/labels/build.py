"""``mfirrn data build``: a training set in the crops-params layout from fitted labels (+ face profiling).

Input: a labels folder from ``mfirrn data fit-landmarks`` (crops + fitted params + quality gate).
Output (the generic layout read by :func:`mfirrn.data.datasets.load_crops_params`)::

    <out>/crops/*.jpg        120x120 crops: every accepted face, plus K profiled copies of each
    <out>/crops.list         their order
    <out>/params.npy         (N, 62) de-normalised params (the labels' convention)
    <out>/samples.csv        per crop: source index, kind (photo|profiled), yaw, Δyaw/Δpitch/Δroll
    <out>/manifest.json      provenance: labeller settings, teacher, build settings, counts, yaw histograms

The build is resumable: work is cut into chunks; a chunk is done when its ``parts/part_XXXXX.npz``
exists (written last, atomically), so a killed build continues where it stopped. Chunks run on all
cores (processes), each drawing its random rotations from ``default_rng((seed, face index))`` so the
result does not depend on the number of workers. A rerun continues only the same build (same labels,
options and code: :mod:`mfirrn.io.resume`); a part file that is damaged or whose crops are gone is redone;
temp files of a killed run are removed; workers die with the build process.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np

from mfirrn.data.labels.build_state import build_fingerprint, check_build_resume, part_problem, write_build_state
from mfirrn.data.labels.pool import PoolError, load_labels
from mfirrn.data.labels.profiling import ProfileConfig
from mfirrn.io.fileio import atomic_write, remove_stale_temporaries

__all__ = ["BuildConfig", "build_dataset", "YAW_HIST_EDGES"]

YAW_HIST_EDGES = np.arange(-90, 91, 10)


@dataclass(frozen=True)
class BuildConfig:
    """``profiles_per_face`` profiled copies of every accepted face; ``seed`` of the rotations;
    ``chunk`` faces per resumable unit; ``workers`` processes (default: all cores)."""

    profiles_per_face: int = 2
    seed: int = 0
    chunk: int = 400
    workers: int = 0
    jpeg_quality: int = 95
    limit: Optional[int] = None
    profile: ProfileConfig = field(default_factory=ProfileConfig)

    def to_dict(self) -> dict:
        return asdict(self)


# Per-process state of the build workers (the BFM and mirror map are loaded once per process).
_WORKER: dict = {}


def init_worker(parent_pid: Optional[int] = None) -> None:
    """Set up a build worker process (this one and the shard build's): one thread, dying with ``parent_pid``,
    the BFM and its mirror map loaded once."""
    import torch

    from mfirrn.geometry.bfm import MorphableModel, mirror_vertex_map
    from mfirrn.io.workers import die_with_parent

    if parent_pid is not None:
        die_with_parent(parent_pid)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    bfm = MorphableModel("full")
    _WORKER.update(bfm=bfm, mirror=mirror_vertex_map(bfm))


def worker_model() -> tuple:
    """The ``(bfm, mirror)`` of this worker process (set up on first use when the build runs in-process)."""
    if not _WORKER:
        init_worker()
    return _WORKER["bfm"], _WORKER["mirror"]


def _process_chunk(job: dict) -> int:
    from mfirrn.data.labels.profiling import profile_face, sample_rotation, yaw_of

    bfm, mirror = worker_model()
    cfg: BuildConfig = job["cfg"]
    out = Path(job["out"])
    names, params, src, kind, yaws, angles = [], [], [], [], [], []
    base_yaw = yaw_of(job["params"])
    for face_idx, name, p, y in zip(job["indices"], job["names"], job["params"], base_yaw):
        crop = cv2.imread(str(Path(job["crop_dir"]) / name), cv2.IMREAD_COLOR)
        if crop is None:
            raise FileNotFoundError(f"cannot read crop {Path(job['crop_dir']) / name}; restore it (or relabel with "
                                    f"`mfirrn data fit-landmarks`) and rerun to resume the build")
        samples = [(crop, p, (0.0, 0.0, 0.0), "photo")]
        rng = np.random.default_rng((cfg.seed, int(face_idx)))
        for _ in range(cfg.profiles_per_face):
            ang = sample_rotation(float(y), rng, cfg.profile)
            if ang is None:
                break
            img, p_new = profile_face(crop, p, bfm, job["convention"], ang, cfg.profile, mirror=mirror)
            samples.append((img, p_new, ang, "profiled"))
        for k, (img, pp, ang, kd) in enumerate(samples):
            fname = f"{int(face_idx):06d}_{k}.jpg"
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
            if not ok:
                raise RuntimeError(f"could not encode {fname}")
            atomic_write(out / "crops" / fname, buf.tobytes())
            names.append(fname)
            params.append(np.asarray(pp, np.float32))
            src.append(int(face_idx))
            kind.append(kd)
            angles.append(ang)
    yaws = yaw_of(np.stack(params)) if params else np.zeros(0)
    buf = io.BytesIO()
    np.savez(buf, names=np.array(names), params=np.stack(params) if params else np.zeros((0, 62), np.float32),
             source=np.array(src, np.int64), kind=np.array(kind), yaw=yaws, angles=np.array(angles, np.float64).reshape(-1, 3))
    atomic_write(out / "parts" / f"part_{job['chunk_id']:05d}.npz", buf.getvalue())
    return len(names)


def build_dataset(labels_dir: Union[str, Path], out_dir: Union[str, Path], cfg: BuildConfig = BuildConfig(),
                  *, progress: bool = True) -> dict:
    """Build (or resume) the dataset; returns the manifest dict."""
    from tqdm import tqdm

    arrays, meta = load_labels(labels_dir)
    if not Path(meta["crop_dir"]).is_dir():
        raise PoolError(f"the crop folder {meta['crop_dir']} named by {Path(labels_dir) / 'labels.json'} is missing; "
                        f"restore it or relabel with `mfirrn data fit-landmarks`")
    keep = np.flatnonzero(arrays["accepted"])
    if cfg.limit is not None:
        keep = keep[: cfg.limit]
    missing = [str(arrays["names"][i]) for i in keep if not (Path(meta["crop_dir"]) / str(arrays["names"][i])).is_file()]
    if missing:
        raise PoolError(f"{len(missing)} crops named by {Path(labels_dir) / 'labels.npz'} are missing from "
                        f"{meta['crop_dir']} (e.g. {missing[0]}); restore them or relabel with `mfirrn data fit-landmarks`")
    out = Path(out_dir)
    fingerprint = build_fingerprint(labels_dir, cfg.to_dict())
    note = check_build_resume(out, fingerprint)
    if note:
        print(f"mfirrn data build: note: {note}", file=sys.stderr)
    (out / "crops").mkdir(parents=True, exist_ok=True)
    (out / "parts").mkdir(parents=True, exist_ok=True)
    write_build_state(out, fingerprint)
    for folder in (out, out / "crops", out / "parts"):
        remove_stale_temporaries(folder)
    chunks = [keep[i:i + cfg.chunk] for i in range(0, len(keep), cfg.chunk)]
    jobs = [dict(chunk_id=k, indices=c, names=[str(arrays["names"][i]) for i in c], params=arrays["params"][c],
                 crop_dir=meta["crop_dir"], convention=meta["convention"], out=str(out), cfg=cfg)
            for k, c in enumerate(chunks) if not _chunk_done(out, k)]
    workers = cfg.workers or os.cpu_count() or 1
    bar = tqdm(total=len(chunks), initial=len(chunks) - len(jobs), desc="build", unit="chunk", disable=not progress)
    if workers == 1 or len(jobs) <= 1:
        import torch

        threads = torch.get_num_threads(), cv2.getNumThreads()
        try:  # in this process: the worker set-up's one-thread settings must not outlive the build
            for job in jobs:
                _process_chunk(job)
                bar.update()
        finally:
            torch.set_num_threads(threads[0])
            cv2.setNumThreads(threads[1])
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=init_worker, initargs=(os.getpid(),)) as pool:
            for _ in pool.map(_process_chunk, jobs):
                bar.update()
    bar.close()
    return _finalize(out, len(chunks), arrays, meta, cfg, labels_dir)


def _chunk_done(out: Path, k: int) -> bool:
    """Whether chunk ``k`` has a usable part file; a damaged one (or one whose crops are gone) is removed."""
    part = out / "parts" / f"part_{k:05d}.npz"
    if not part.exists():
        return False
    problem = part_problem(part, out / "crops")
    if problem is None:
        return True
    print(f"mfirrn data build: redoing chunk {k}: {problem}", file=sys.stderr)
    part.unlink()
    return False


def _finalize(out: Path, n_chunks: int, arrays: dict, meta: dict, cfg: BuildConfig, labels_dir) -> dict:
    parts = [np.load(out / "parts" / f"part_{k:05d}.npz") for k in range(n_chunks)]
    names = [str(n) for p in parts for n in p["names"]]
    params = np.concatenate([p["params"] for p in parts]) if parts else np.zeros((0, 62), np.float32)
    kind = np.concatenate([p["kind"] for p in parts]) if parts else np.zeros(0, str)
    yaw = np.concatenate([p["yaw"] for p in parts]) if parts else np.zeros(0)
    source = np.concatenate([p["source"] for p in parts]) if parts else np.zeros(0, np.int64)
    angles = np.concatenate([p["angles"] for p in parts]) if parts else np.zeros((0, 3))
    rows = io.StringIO()
    w = csv.writer(rows)
    w.writerow(["crop", "source_index", "kind", "yaw", "d_yaw", "d_pitch", "d_roll"])
    for n, s, k, y, a in zip(names, source, kind, yaw, angles):
        w.writerow([n, int(s), k, f"{y:.3f}", *(f"{v:.3f}" for v in a)])
    atomic_write(out / "samples.csv", rows.getvalue())
    atomic_write(out / "crops.list", "\n".join(names) + "\n")
    buf = io.BytesIO()
    np.save(buf, params.astype(np.float32))
    atomic_write(out / "params.npy", buf.getvalue())
    photo = kind == "photo"
    manifest = {
        "format": "crops-params", "convention": meta["convention"], "count": len(names),
        "faces": int(photo.sum()), "profiled": int((~photo).sum()),
        "source": {"labels": str(Path(labels_dir).resolve()), **meta},
        "build": cfg.to_dict(),
        "yaw_histogram": {"edges": YAW_HIST_EDGES.tolist(),
                          "photos": np.histogram(np.clip(yaw[photo], -90, 90), YAW_HIST_EDGES)[0].tolist(),
                          "all": np.histogram(np.clip(yaw, -90, 90), YAW_HIST_EDGES)[0].tolist()},
        "note": "AFLW-derived: a model trained on this set has seen AFLW images and must not be scored on AFLW-21.",
    }
    atomic_write(out / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest
