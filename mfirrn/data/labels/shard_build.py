"""``mfirrn data build --shards``: a 300W-LP-sized training set in tar shards, by profiling every face many times.

Input: a labels folder from ``mfirrn data fit-landmarks``. Each accepted face gives ``views_per_face``
crops: the photo and ``views_per_face - 1`` profiled views sweeping the rest of the yaw range in the
direction it turns (:func:`mfirrn.data.labels.profiling.sweep_rotations`), as 300W-LP was made from 300W.
Output: the shard layout of :mod:`mfirrn.data.shards` (``index.json``, ``shard-XXXXX.tar``), plus::

    <out>/parts/build.json            what is being built (labels checksums, options, code)
    <out>/parts/shard-XXXXX.npz       per finished shard: keys, params, source face, kind, yaw, angles, sha256
    <out>/samples.csv                 per crop: shard, key, source index, kind, yaw, Δyaw/Δpitch/Δroll

Faces are put in a seeded random order and cut into shards of ``faces_per_shard`` faces, so every shard is
a sample of the whole pool and holds all views of its faces. A shard is done when its part file exists
(written last, atomically) and names the tar's checksum; a killed build reruns only the shards not done,
and since every face draws its views from ``default_rng((seed, face index))`` and tar members carry no
machine-dependent fields, a resumed build writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np

from mfirrn.data.labels.build import init_worker, worker_model
from mfirrn.data.labels.build_state import build_fingerprint, check_build_resume, write_build_state
from mfirrn.data.labels.pool import PoolError, load_labels
from mfirrn.data.labels.profiling import ProfileConfig
from mfirrn.io.checks import DataFileError, load_npz
from mfirrn.io.fileio import atomic_write, remove_stale_temporaries

__all__ = ["ShardBuildConfig", "build_shards"]

_YAW_EDGES = np.arange(-90, 91, 10)


@dataclass(frozen=True)
class ShardBuildConfig:
    """``views_per_face`` crops per accepted face (the photo + profiled views); ``sweep_power``: how the
    profiled views spread over the rest of the yaw range (:func:`mfirrn.data.labels.profiling.sweep_rotations`;
    3 gives the AFLW pool an about uniform |yaw| over [0, 90], 1 would put half the crops above 60°);
    ``faces_per_shard`` faces per tar shard (the resumable unit); ``seed`` of the face order and the views;
    ``workers`` processes (0: all cores); ``jpeg_quality`` of the crops; ``limit``: only the first N accepted
    faces (tests, trials)."""

    views_per_face: int = 36
    sweep_power: float = 3.0
    faces_per_shard: int = 100
    seed: int = 0
    workers: int = 0
    jpeg_quality: int = 90
    limit: Optional[int] = None
    profile: ProfileConfig = field(default_factory=ProfileConfig)

    def to_dict(self) -> dict:
        return {"layout": "shards", **asdict(self)}


def _shard_name(k: int) -> str:
    return f"shard-{k:05d}"


def _build_shard(job: dict) -> int:
    """Profile the faces of one shard; write its tar, then its part file. Returns the number of crops."""
    from mfirrn.data.labels.profiling import prepare_profile, render_profiles, sweep_rotations, yaw_of
    from mfirrn.data.shards import write_shard

    bfm, mirror = worker_model()
    cfg: ShardBuildConfig = job["cfg"]
    out = Path(job["out"])
    samples, source, kind, angles = [], [], [], []
    for face_idx, name, p, y in zip(job["indices"], job["names"], job["params"], yaw_of(job["params"])):
        crop = cv2.imread(str(Path(job["crop_dir"]) / name), cv2.IMREAD_COLOR)
        if crop is None:
            raise FileNotFoundError(f"cannot read crop {Path(job['crop_dir']) / name}; restore it (or relabel with "
                                    f"`mfirrn data fit-landmarks`) and rerun to resume the build")
        rng = np.random.default_rng((cfg.seed, int(face_idx)))
        turn = sweep_rotations(float(y), cfg.views_per_face - 1, rng, cfg.profile, power=cfg.sweep_power)
        prepared = prepare_profile(crop, p, bfm, job["convention"], cfg.profile, mirror=mirror)
        images, params = render_profiles(prepared, turn, bfm)
        views = [(crop, np.asarray(p, np.float32), (0.0, 0.0, 0.0), "photo")]
        views += [(im, pp, tuple(a), "profiled") for im, pp, a in zip(images, params, turn)]
        for k, (img, pp, ang, kd) in enumerate(views):
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
            if not ok:
                raise RuntimeError(f"could not encode view {k} of face {face_idx}")
            samples.append((f"{int(face_idx):06d}_{k:02d}", buf.tobytes(), pp))
            source.append(int(face_idx))
            kind.append(kd)
            angles.append(ang)
    data = write_shard(samples)
    name = _shard_name(job["shard_id"])
    atomic_write(out / f"{name}.tar", data)
    params = np.stack([s[2] for s in samples]).astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, keys=np.array([s[0] for s in samples]), params=params, source=np.array(source, np.int64),
             kind=np.array(kind), yaw=yaw_of(params), angles=np.array(angles, np.float64).reshape(-1, 3),
             sha256=np.array(hashlib.sha256(data).hexdigest()), bytes=np.array(len(data), np.int64))
    atomic_write(out / "parts" / f"{name}.npz", buf.getvalue())
    return len(samples)


def _shard_done(out: Path, k: int) -> bool:
    """Whether shard ``k`` is finished: its part file is readable and names the checksum of its tar. A part
    without its tar, or with another tar, is removed (the shard is redone)."""
    name = _shard_name(k)
    part, tar = out / "parts" / f"{name}.npz", out / f"{name}.tar"
    if not part.exists():
        return False
    problem = None
    try:
        z = load_npz(part, ("keys", "params", "sha256", "bytes"))
        if not tar.is_file() or tar.stat().st_size != int(z["bytes"]):
            problem = f"{tar.name} is missing or of the wrong size"
        elif hashlib.sha256(tar.read_bytes()).hexdigest() != str(z["sha256"]):
            problem = f"{tar.name} does not match its checksum"
    except DataFileError as exc:
        problem = str(exc).split(";")[0]
    if problem is None:
        return True
    print(f"mfirrn data build: redoing {name}: {problem}", file=sys.stderr)
    part.unlink()
    return False


def build_shards(labels_dir: Union[str, Path], out_dir: Union[str, Path], cfg: ShardBuildConfig = ShardBuildConfig(),
                 *, progress: bool = True) -> dict:
    """Build (or resume) the shard set; returns its index (the dict written to ``index.json``)."""
    from tqdm import tqdm

    if cfg.views_per_face < 1 or cfg.faces_per_shard < 1:
        raise ValueError(f"views per face ({cfg.views_per_face}) and faces per shard ({cfg.faces_per_shard}) must be "
                         f"at least 1")
    arrays, meta = load_labels(labels_dir)
    crop_dir = Path(meta["crop_dir"])
    if not crop_dir.is_dir():
        raise PoolError(f"the crop folder {crop_dir} named by {Path(labels_dir) / 'labels.json'} is missing; "
                        f"restore it or relabel with `mfirrn data fit-landmarks`")
    keep = np.flatnonzero(arrays["accepted"])
    if cfg.limit is not None:
        keep = keep[: cfg.limit]
    missing = [str(arrays["names"][i]) for i in keep if not (crop_dir / str(arrays["names"][i])).is_file()]
    if missing:
        raise PoolError(f"{len(missing)} crops named by {Path(labels_dir) / 'labels.npz'} are missing from "
                        f"{crop_dir} (e.g. {missing[0]}); restore them or relabel with `mfirrn data fit-landmarks`")
    out = Path(out_dir)
    fingerprint = build_fingerprint(labels_dir, cfg.to_dict())
    note = check_build_resume(out, fingerprint)
    if note:
        print(f"mfirrn data build: note: {note}", file=sys.stderr)
    (out / "parts").mkdir(parents=True, exist_ok=True)
    write_build_state(out, fingerprint)
    for folder in (out, out / "parts"):
        remove_stale_temporaries(folder)
    order = keep[np.random.default_rng(cfg.seed).permutation(len(keep))]
    shards = [order[i:i + cfg.faces_per_shard] for i in range(0, len(order), cfg.faces_per_shard)]
    jobs = [dict(shard_id=k, indices=c, names=[str(arrays["names"][i]) for i in c], params=arrays["params"][c],
                 crop_dir=str(crop_dir), convention=meta["convention"], out=str(out), cfg=cfg)
            for k, c in enumerate(shards) if not _shard_done(out, k)]
    workers = cfg.workers or os.cpu_count() or 1
    total = len(keep) * cfg.views_per_face
    todo = sum(len(j["indices"]) for j in jobs) * cfg.views_per_face
    bar = tqdm(total=total, initial=total - todo, desc="build", unit="crop", disable=not progress, smoothing=0.05)
    t0, made = time.perf_counter(), 0

    def tick(n: int) -> None:
        nonlocal made
        made += n
        bar.update(n)
        bar.set_postfix(shards=f"{bar.n // max(1, cfg.views_per_face * cfg.faces_per_shard)}/{len(shards)}",
                        rate=f"{made / max(1e-9, time.perf_counter() - t0):.0f}/s")

    if workers == 1 or len(jobs) <= 1:
        import torch

        threads = torch.get_num_threads(), cv2.getNumThreads()
        try:  # in this process: the worker set-up's one-thread settings must not outlive the build
            for job in jobs:
                tick(_build_shard(job))
        finally:
            torch.set_num_threads(threads[0])
            cv2.setNumThreads(threads[1])
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=init_worker, initargs=(os.getpid(),)) as pool:
            for n in pool.map(_build_shard, jobs):
                tick(n)
    bar.close()
    return _finalize(out, len(shards), meta, cfg, labels_dir)


def _finalize(out: Path, n_shards: int, meta: dict, cfg: ShardBuildConfig, labels_dir) -> dict:
    from mfirrn.data.shards import SHARD_FORMAT

    rows = io.StringIO()
    w = csv.writer(rows)
    w.writerow(["shard", "key", "source_index", "kind", "yaw", "d_yaw", "d_pitch", "d_roll"])
    entries, yaws, kinds = [], [], []
    for k in range(n_shards):
        name = _shard_name(k)
        z = load_npz(out / "parts" / f"{name}.npz",
                     ("keys", "params", "source", "kind", "yaw", "angles", "sha256", "bytes"))
        entries.append({"name": f"{name}.tar", "count": int(len(z["keys"])), "bytes": int(z["bytes"]),
                        "sha256": str(z["sha256"])})
        for key, s, kd, y, a in zip(z["keys"], z["source"], z["kind"], z["yaw"], z["angles"]):
            w.writerow([name, str(key), int(s), str(kd), f"{y:.3f}", *(f"{v:.3f}" for v in a)])
        yaws.append(z["yaw"])
        kinds.append(z["kind"])
    yaw = np.concatenate(yaws) if yaws else np.zeros(0)
    photo = np.concatenate(kinds) == "photo" if kinds else np.zeros(0, bool)
    atomic_write(out / "samples.csv", rows.getvalue())
    index = {
        "format": SHARD_FORMAT, "version": 1, "convention": meta["convention"], "count": int(len(yaw)),
        "faces": int(photo.sum()), "profiled": int((~photo).sum()), "bytes": int(sum(e["bytes"] for e in entries)),
        "shards": entries,
        "layout": {"image": "<key>.jpg (120x120 BGR crop, JPEG)",
                   "params": "<key>.params.npy ((62,) float32, de-normalised, the labels' convention)",
                   "key": "<source face index:06d>_<view:02d>; view 00 is the photo"},
        "source": {"labels": str(Path(labels_dir).resolve()), **meta},
        "build": cfg.to_dict(),
        "yaw_histogram": {"edges": _YAW_EDGES.tolist(),
                          "photos": np.histogram(np.clip(yaw[photo], -90, 90), _YAW_EDGES)[0].tolist(),
                          "all": np.histogram(np.clip(yaw, -90, 90), _YAW_EDGES)[0].tolist()},
        "note": "AFLW-derived: a model trained on this set has seen AFLW images and must not be scored on AFLW-21.",
    }
    atomic_write(out / "index.json", json.dumps(index, indent=2, default=str) + "\n")
    return index
