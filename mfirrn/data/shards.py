"""Training data in tar shards (the WebDataset layout), streamed by the trainer.

Layout of a shard set (written by ``mfirrn data build --shards``, :mod:`mfirrn.data.labels.shard_build`)::

    <root>/index.json            {"format": "mfirrn-shards", "version": 1, "convention": "v2", "count": N,
                                  "shards": [{"name", "count", "bytes", "sha256"}, ...], provenance...}
    <root>/shard-00000.tar       per sample, consecutive members sharing a key (WebDataset convention):
                                     <key>.jpg          120x120 crop, JPEG
                                     <key>.params.npy   (62,) float32 de-normalised params
    <root>/parts/                the build's record (resume); not read for training

Sample ``i`` of the set is sample ``i - first`` of the shard whose samples start at ``first`` (shards in
index order). Tar members carry no time, owner or mode that depends on the machine, so a shard's bytes
are a function of its samples alone.

:class:`ShardStream` streams a set for training: it yields whole batches ``(crops (B, 3, 120, 120),
targets (B, 62), indices (B,))`` from loader workers (``DataLoader(batch_size=None)``); shards are split
between ranks and workers, read whole and in a seeded order, and shuffled within groups of
``shuffle_shards`` shards. Batches reach the trainer in the loader's round-robin order over workers,
which :func:`worker_plan` reproduces, so a run resumed mid-epoch is given exactly the batches the
uninterrupted run would have seen next.
"""

from __future__ import annotations

import csv
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from mfirrn.data.datasets import DatasetError
from mfirrn.geometry.params import PARAM_SPEC, ParamStats
from mfirrn.io.checks import load_json

__all__ = ["SHARD_FORMAT", "ShardError", "ShardSet", "ShardStream", "ShardSamples", "ShardCrops", "write_shard",
           "read_shard", "read_shard_crops", "round_robin", "worker_plan"]

PathLike = Union[str, Path]
SHARD_FORMAT = "mfirrn-shards"
_IMAGE_SUFFIX = ".jpg"
_PARAMS_SUFFIX = ".params.npy"


class ShardError(DatasetError):
    """A shard set is missing or malformed; the message names the file and the fix."""


def _member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0o644, 0, 0, "", ""
    return info, io.BytesIO(data)


def params_bytes(params: np.ndarray) -> bytes:
    """The ``.params.npy`` member of one sample: (62,) float32."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(params, np.float32).reshape(PARAM_SPEC.dim))
    return buf.getvalue()


def write_shard(samples: Sequence[tuple[str, bytes, np.ndarray]]) -> bytes:
    """The bytes of a tar shard holding ``samples`` = (key, encoded JPEG, params (62,)) in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for key, image, params in samples:
            if "." in key or "/" in key:
                raise ValueError(f"shard key {key!r} must not contain '.' or '/'")
            tf.addfile(*_member(key + _IMAGE_SUFFIX, image))
            tf.addfile(*_member(key + _PARAMS_SUFFIX, params_bytes(params)))
    return buf.getvalue()


def read_shard(path: PathLike) -> list[tuple[str, bytes, np.ndarray]]:
    """Every sample (key, encoded image, params (62,) float32) of a shard, in order."""
    path = Path(path)
    out: list[tuple[str, bytes, np.ndarray]] = []
    pending: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:") as tf:
            for m in tf:
                if not m.isfile():
                    continue
                key, _, ext = m.name.partition(".")
                data = tf.extractfile(m).read()  # type: ignore[union-attr]
                if pending and pending.get("key") != key.encode():
                    raise ShardError(f"{path}: sample {pending['key'].decode()} is incomplete; rebuild the shard set")
                pending["key"] = key.encode()
                pending[ext] = data
                if "jpg" in pending and "params.npy" in pending:
                    p = np.load(io.BytesIO(pending["params.npy"]), allow_pickle=False)
                    if p.shape != (PARAM_SPEC.dim,):
                        raise ShardError(f"{path}: {key}.params.npy has shape {p.shape}, expected (62,); "
                                         f"rebuild the shard set")
                    out.append((key, pending["jpg"], p.astype(np.float32)))
                    pending = {}
    except (tarfile.TarError, OSError, ValueError) as exc:
        if isinstance(exc, ShardError):
            raise
        raise ShardError(f"{path} is not a readable shard ({type(exc).__name__}: {exc}); rebuild the shard set "
                         f"(rerun the build command: it redoes damaged shards)") from None
    if pending:
        raise ShardError(f"{path}: the last sample is incomplete; rebuild the shard set")
    return out


def _decode(image: bytes, key: str) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ShardError(f"the image of sample {key} cannot be decoded; rebuild the shard set")
    return img


def _to_item(img: np.ndarray, p: np.ndarray, stats: ParamStats, augment: Optional[Callable], rng_key: tuple) -> tuple:
    p = np.asarray(p, np.float64)
    if augment is not None:
        img, p = augment(img, p, np.random.default_rng(rng_key))
    x = (torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() - 127.5) / 128.0
    y = stats.normalize(torch.as_tensor(p, dtype=torch.float64)).float()
    return x, y


class ShardSet:
    """A shard set on disk (its ``index.json``): ``names``, ``counts``, ``first`` (global index of each shard's
    first sample), ``convention``."""

    def __init__(self, root: PathLike) -> None:
        self.root = Path(root)
        fix = ("point data.root to a folder made by `mfirrn data build --shards` (rerun it to finish an "
               "interrupted build)")
        if not self.root.is_dir():
            raise ShardError(f"shard set {self.root} does not exist; {fix}")
        index = load_json(self.root / "index.json", ("format", "shards", "convention"), what=fix, error=ShardError)
        if index["format"] != SHARD_FORMAT:
            raise ShardError(f"{self.root / 'index.json'} describes format {index['format']!r}, not "
                             f"{SHARD_FORMAT}; {fix}")
        self.index = index
        self.names = [s["name"] for s in index["shards"]]
        self.counts = np.array([int(s["count"]) for s in index["shards"]], np.int64)
        self.first = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self.convention = index["convention"]
        missing = [n for n, s in zip(self.names, index["shards"])
                   if not (self.root / n).is_file() or (self.root / n).stat().st_size != int(s["bytes"])]
        if missing:
            raise ShardError(f"{len(missing)} of the {len(self.names)} shards of {self.root} are missing or of the "
                             f"wrong size (e.g. {missing[0]}); rerun the build command to redo them")
        if not self.names:
            raise ShardError(f"{self.root} holds no shards; {fix}")

    def __len__(self) -> int:
        return int(self.counts.sum())

    def split(self, val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
        """Shard ids ``(train, val)``: ``round(val_fraction * shards)`` whole shards held out (at least one when
        the fraction is > 0 and there are two shards or more), chosen by ``seed``. Shards hold whole faces, so
        no face has views on both sides."""
        n = len(self.names)
        n_val = int(round(n * val_fraction))
        if val_fraction > 0 and n > 1:
            n_val = max(1, n_val)
        n_val = min(n_val, n - 1)
        perm = np.random.default_rng(seed).permutation(n)
        return sorted(perm[n_val:].tolist()), sorted(perm[:n_val].tolist())


def round_robin(batches: Sequence[int]) -> list[int]:
    """The order in which a ``DataLoader`` hands over the batches of its workers: worker ids, one per batch, round
    robin over the workers that still have batches (``batches[w]`` each).

    >>> round_robin([2, 1, 3])
    [0, 1, 2, 0, 2, 2]
    """
    left, order = list(batches), []
    while any(left):
        for w, n in enumerate(left):
            if n:
                order.append(w)
                left[w] -= 1
    return order


def worker_plan(batches: Sequence[int], total: int, start: int) -> list[tuple[int, int, int]]:
    """What each loader worker yields so that the loader hands over batches ``start`` to ``total`` of the
    epoch whose workers have ``batches[w]`` each: ``(role, skip, take)`` per loader worker id — worker ``i``
    plays the stream of worker ``role``, skips its first ``skip`` batches and yields ``take``.

    Roles are ordered as the uninterrupted round robin would continue after batch ``start``, so the loader's
    own round robin over the workers reproduces it.

    >>> worker_plan([2, 1, 3], 6, 1)
    [(1, 0, 1), (2, 0, 3), (0, 1, 1)]
    """
    order = round_robin(batches)[:total]
    done, rest = order[:start], order[start:]
    roles = list(dict.fromkeys(rest)) + [w for w in range(len(batches)) if w not in rest]
    return [(w, done.count(w), rest.count(w)) for w in roles]


class ShardStream(IterableDataset):
    """Training batches streamed from shards ``shard_ids`` of a :class:`ShardSet`.

    Shards go to ranks (``shard_ids[rank::world_size]``) and then to loader workers (every ``n_workers``-th
    of the rank's), fixed for the run. Each epoch a worker reads its shards in an order drawn from
    ``(seed, epoch, rank, worker)``, ``shuffle_shards`` at a time, shuffles the samples of each group and
    cuts the stream into batches of ``batch_size`` (the last, partial one is dropped when ``drop_last``).
    Augmentation draws from ``default_rng((seed, epoch, index))`` per sample. An epoch has the same number
    of batches on every rank (the smallest rank's count; the rest of the larger ranks' batches are skipped).

    Use :meth:`set_epoch` with ``start`` = samples of the epoch already trained (a multiple of the batch
    size) to resume mid-epoch; ``len()`` is the samples an epoch trains on (batches x batch size).
    """

    def __init__(self, shards: ShardSet, shard_ids: Sequence[int], stats: ParamStats, *, batch_size: int,
                 n_workers: int = 0, augment: Optional[Callable] = None, seed: int = 0, rank: int = 0,
                 world_size: int = 1, shuffle_shards: int = 4, drop_last: bool = True) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.shards, self.stats, self.augment = shards, stats, augment
        self.convention = shards.convention
        # one stream ("role") per loader worker; without workers one stream in the caller's process
        self.loader_workers = max(0, int(n_workers))
        self.batch_size, self.n_workers, self.seed = int(batch_size), max(1, self.loader_workers), int(seed)
        self.rank, self.world_size = rank, world_size
        self.shuffle_shards, self.drop_last = max(1, int(shuffle_shards)), drop_last
        ids = list(shard_ids)
        self.rank_shards = [ids[r::world_size] for r in range(world_size)]
        per_rank = [sum(self._worker_batches(r)) for r in range(world_size)]
        self.batches_per_epoch = min(per_rank)
        self.epoch, self.start = 0, 0

    def _worker_shards(self, rank: int, worker: int) -> list[int]:
        return self.rank_shards[rank][worker::self.n_workers]

    def _worker_batches(self, rank: int) -> list[int]:
        out = []
        for w in range(self.n_workers):
            n = int(self.shards.counts[self._worker_shards(rank, w)].sum())
            out.append(n // self.batch_size if self.drop_last else -(-n // self.batch_size))
        return out

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        if start % self.batch_size:
            raise ValueError(f"start={start} must be a multiple of the batch size {self.batch_size}")
        self.epoch, self.start = int(epoch), int(start)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "start": self.start, "seed": self.seed}

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size

    def plan(self) -> list[tuple[int, int, int]]:
        """``(role, skip, take)`` per loader worker for this epoch (:func:`worker_plan`)."""
        return worker_plan(self._worker_batches(self.rank), self.batches_per_epoch, self.start // self.batch_size)

    def _samples(self, role: int, skip: int) -> Iterator[tuple[int, bytes, np.ndarray]]:
        """(index, image, params) of worker ``role``'s stream this epoch, from sample ``skip`` on."""
        rng = np.random.default_rng((self.seed, self.epoch, self.rank, role))
        mine = self._worker_shards(self.rank, role)
        order = [mine[i] for i in rng.permutation(len(mine))]
        for g in range(0, len(order), self.shuffle_shards):
            group = order[g:g + self.shuffle_shards]
            n = int(self.shards.counts[group].sum())
            perm = rng.permutation(n)  # drawn even for a skipped group: the stream stays that of the full epoch
            if skip >= n:
                skip -= n
                continue
            items = []
            for s in group:
                for j, (_, image, params) in enumerate(read_shard(self.shards.root / self.shards.names[s])):
                    items.append((int(self.shards.first[s]) + j, image, params))
            if len(items) != n:
                raise ShardError(f"the shards of {self.shards.root} hold other sample counts than index.json says; "
                                 f"rebuild the shard set")
            for i in perm[skip:]:
                yield items[i]
            skip = 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        plans = self.plan()
        if info is None:  # in the caller's process: every role's batches, in the loader's round-robin order
            yield from self._round_robin_here(plans)
            return
        if info.num_workers != self.n_workers:
            raise RuntimeError(f"this stream was planned for {self.n_workers} loader workers, the loader has "
                               f"{info.num_workers}; use .loader()")
        yield from self._batches(*plans[info.id])

    def _round_robin_here(self, plans: list[tuple[int, int, int]]) -> Iterator:
        streams = [self._batches(*p) for p in plans]
        takes = [p[2] for p in plans]
        for w in round_robin(takes):
            yield next(streams[w])

    def _batches(self, role: int, skip: int, take: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        if take <= 0:
            return
        xs, ys, idx = [], [], []
        made = 0
        for index, image, params in self._samples(role, skip * self.batch_size):
            img = _decode(image, str(index))
            x, y = _to_item(img, params, self.stats, self.augment, (self.seed, self.epoch, index))
            xs.append(x), ys.append(y), idx.append(index)
            if len(xs) == self.batch_size:
                yield torch.stack(xs), torch.stack(ys), torch.as_tensor(idx, dtype=torch.int64)
                xs, ys, idx = [], [], []
                made += 1
                if made == take:
                    return
        if xs and not self.drop_last:
            yield torch.stack(xs), torch.stack(ys), torch.as_tensor(idx, dtype=torch.int64)

    def loader(self, *, pin_memory: bool = False) -> torch.utils.data.DataLoader:
        """The DataLoader for this epoch: ``n_workers`` processes (0: the caller's process). It has its own seeded
        generator, so starting it never draws from the global torch RNG (which a resumed run restores)."""
        return torch.utils.data.DataLoader(self, batch_size=None, num_workers=self.loader_workers,
                                           pin_memory=pin_memory, persistent_workers=False,
                                           generator=torch.Generator().manual_seed(self.seed * 1000 + self.epoch))


class ShardSamples(Dataset):
    """Samples of shards ``shard_ids`` held in memory (encoded), indexable: the validation split.

    Items are ``(crop (3, 120, 120), target (62,), index)`` as :class:`mfirrn.data.datasets.ParamsDataset`'s.
    """

    def __init__(self, shards: ShardSet, shard_ids: Sequence[int], stats: ParamStats) -> None:
        self.stats, self.convention = stats, shards.convention
        self.items: list[tuple[int, bytes, np.ndarray]] = []
        for s in shard_ids:
            for j, (_, image, params) in enumerate(read_shard(shards.root / shards.names[s])):
                self.items.append((int(shards.first[s]) + j, image, params))

    def __len__(self) -> int:
        return len(self.items)

    def raw_params(self, i: int) -> np.ndarray:
        return self.items[i][2]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        index, image, params = self.items[i]
        x, y = _to_item(_decode(image, str(index)), params, self.stats, None, ())
        return x, y, index


@dataclass
class ShardCrops:
    """The samples of some shards of a set, decoded, with what ``samples.csv`` says of each: ``images`` (N, 120,
    120, 3) uint8 BGR crops, ``params`` (N, 62) float32 de-normalised labels in ``convention``, ``face`` (N,) the
    source face's index, ``kind`` (N,) ``"photo"`` (the face's own photo) or ``"profiled"`` (a re-rendered view)."""

    root: Path
    shards: list[str]
    convention: str
    images: np.ndarray
    params: np.ndarray
    face: np.ndarray
    kind: np.ndarray


def _sample_rows(root: Path, names: Sequence[str]) -> list[dict[str, str]]:
    """The ``samples.csv`` rows (shard, key, source_index, kind, ...) of shards ``names``, in shard order."""
    path = root / "samples.csv"
    if not path.is_file():
        raise ShardError(f"{path} does not exist; it is written by `mfirrn data build --shards` (rerun the build "
                         "command to finish the set)")
    order = {n: k for k, n in enumerate(names)}
    with path.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["shard"] + ".tar" in order]
    return sorted(rows, key=lambda r: order[r["shard"] + ".tar"])  # stable: keeps the order inside a shard


def read_shard_crops(root: PathLike, shard_ids: Sequence[int]) -> ShardCrops:
    """Every sample of shards ``shard_ids`` of the set ``root``, decoded, with its face and kind (e.g. the shards
    of faces a model never trained on, to score it on the training distribution)."""
    shards = ShardSet(root)
    if not shard_ids or any(not 0 <= s < len(shards.names) for s in shard_ids):
        raise ShardError(f"shard ids must be in 0..{len(shards.names) - 1} (the set has {len(shards.names)} "
                         f"shards), got {list(shard_ids)}")
    names = [shards.names[s] for s in shard_ids]
    samples = [x for name in names for x in read_shard(shards.root / name)]
    rows = _sample_rows(shards.root, names)
    if [r["key"] for r in rows] != [key for key, _, _ in samples]:
        raise ShardError(f"{shards.root / 'samples.csv'} does not list the samples of shards {', '.join(names)} as "
                         "they hold them; rebuild the shard set")
    return ShardCrops(shards.root, names, shards.convention,
                      np.stack([_decode(image, key) for key, image, _ in samples]),
                      np.stack([p for _, _, p in samples]).astype(np.float32),
                      np.array([int(r["source_index"]) for r in rows]), np.array([r["kind"] for r in rows]))
