"""The training loop: one implementation for ``mfirrn train``, Python and notebooks.

>>> result = train(TrainConfig.from_yaml("data/configs/mfirrn_r18_half_smoke.yaml"))   # doctest: +SKIP
>>> mfirrn.models.load_checkpoint(result.best)                                         # doctest: +SKIP

What a run writes to ``out_dir``: ``config.yaml`` (the resolved config), ``last.pt`` (each epoch, every
``checkpoint_every_steps`` and at the end), ``best.pt`` (lowest validation NME), ``train_log.csv`` (every
``log_every_steps``), ``val_log.csv`` (each validation) and TensorBoard events if enabled.

Checkpoints are written atomically (temp file + ``os.replace``) and hold what
:func:`mfirrn.models.load_checkpoint` needs (``arch``, ``state_dict``, ``stats`` {mean, std},
``convention``) plus the optimizer, scheduler, ``epoch``/``step``, the RNG states of every rank (torch,
numpy, python, CUDA), the sampler position, the config and the code version. Resuming restores all of
it: the sampler, augmentation (seeded per sample and epoch), jigsaw permutations, dropout and vertex
sampling then draw exactly what the uninterrupted run would have drawn (tested bitwise on CPU).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import random
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import cv2
import numpy as np
import torch
from torch import nn

from mfirrn.data.augment import Augmenter, default_mirror
from mfirrn.data.datasets import ParamsDataset, open_dataset, split_indices
from mfirrn.data.sampler import ResumableSampler, make_loader
from mfirrn.evaluation.metrics import nme, summarize_by_yaw
from mfirrn.geometry.bfm import MorphableModel
from mfirrn.geometry.params import ParamStats, pose_from_params
from mfirrn.io.heap import keep_freed_memory, restore_heap_defaults
from mfirrn.io.resume import code_version
from mfirrn.models.registry import get_card
from mfirrn.train.config import ConfigError, TrainConfig
from mfirrn.train.ddp import all_gather_object, barrier, cleanup_distributed, init_distributed
from mfirrn.train.losses import build_loss, multi_output_loss

__all__ = ["train", "Trainer", "TrainResult", "TrainError", "save_checkpoint_atomic", "validate_params"]


class TrainError(RuntimeError):
    """A run cannot start or resume; the message says what to change."""


def _under(name: str, prefixes: list[str]) -> bool:
    """Whether a module or parameter ``name`` is one of ``prefixes`` or inside one (``head_fine.conv.0.1`` is
    under ``head_fine``)."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@dataclass
class TrainResult:
    out_dir: Path
    last: Path
    best: Optional[Path]
    step: int
    epoch: int
    best_nme: float
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False


def save_checkpoint_atomic(obj: dict, path: Path) -> None:
    """``torch.save`` to a temp file beside ``path``, then ``os.replace`` (never a half-written checkpoint)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


@torch.no_grad()
def validate_params(model: nn.Module, dataset: ParamsDataset, bfm: MorphableModel, criterion, *, device: torch.device,
                    batch_size: int = 64, autocast_ctx=None, seed: int = 0) -> dict:
    """Held-out validation: loss, and 68-point NME (crop frame, GT landmarks rebuilt from GT params) by yaw bin;
    for a multi-head model (MFIRRN) also each head's NME alone (``nme_coarse``, ``nme_medium``, ``nme_fine``:
    per-image means), to watch the heads learn.

    Uses a private generator for the loss's vertex sample, so validation never touches the global RNG.
    """
    model.eval()
    stats, conv = dataset.stats, dataset.convention
    preds, gts, losses, weights = [], [], [], []
    heads: dict[str, list[torch.Tensor]] = {}
    gen = torch.Generator().manual_seed(seed)
    for i in range(0, len(dataset), batch_size):
        items = [dataset[j] for j in range(i, min(len(dataset), i + batch_size))]
        x = torch.stack([it[0] for it in items]).to(device)
        y = torch.stack([it[1] for it in items]).to(device)
        with autocast_ctx() if autocast_ctx else nullcontext():
            out = model(x)
        outs = [o.float() for o in out] if isinstance(out, tuple) else out.float()
        losses.append(float(multi_output_loss(criterion, outs, y, generator=gen)))
        weights.append(len(items))
        fused = out.fused if hasattr(out, "fused") else out
        preds.append(stats.denormalize(fused.float().cpu().double()))
        for name in getattr(out, "_fields", ()):
            if name != "fused":
                heads.setdefault(name, []).append(stats.denormalize(getattr(out, name).float().cpu().double()))
        gts.append(stats.denormalize(y.cpu().double()))
    model.train()
    if not preds:
        return {}
    p, g = torch.cat(preds), torch.cat(gts)
    lm = bfm.landmarks(p.to(bfm.u.device, torch.float32), convention=conv).cpu().numpy()
    lg = bfm.landmarks(g.to(bfm.u.device, torch.float32), convention=conv).cpu().numpy()
    per = nme(lm, lg)
    yaw = pose_from_params(g).yaw.numpy()
    s = summarize_by_yaw(per, yaw)
    row = {"val_loss": float(np.average(losses, weights=weights)), "nme": s.per_image_mean,
           "nme_0_30": s.bins[0], "nme_30_60": s.bins[1], "nme_60_90": s.bins[2], "nme_bin_mean": s.mean,
           "n_val": int(len(per))}
    for name, outs in heads.items():
        lh = bfm.landmarks(torch.cat(outs).to(bfm.u.device, torch.float32), convention=conv).cpu().numpy()
        row[f"nme_{name}"] = float(nme(lh, lg).mean() * 100)  # percent, as the other NME columns
    return row


def _lr_lambda(cfg: TrainConfig, steps_per_epoch: int, total_steps: int):
    o = cfg.optim
    warm = o.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        w = min(1.0, (step + 1) / warm) if warm > 0 else 1.0
        if o.schedule == "multistep":
            epoch = step // steps_per_epoch
            f = o.gamma ** sum(epoch >= m for m in o.milestones)
        elif o.schedule == "cosine":
            floor = o.min_lr / o.lr if o.lr > 0 else 0.0
            f = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / max(1, total_steps)))
        else:
            f = 1.0
        return w * f

    return factor


class _CsvLog:
    """Append-only CSV with a fixed header; on resume drops rows past the resumed step."""

    def __init__(self, path: Path, columns: list[str], enabled: bool, resume_step: Optional[int]) -> None:
        self.path, self.columns, self.enabled = path, columns, enabled
        if not enabled:
            return
        rows: list[dict] = []
        if resume_step is not None and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(float(r["step"])) <= resume_step]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, columns)
            w.writeheader()
            w.writerows(rows)

    def write(self, row: dict) -> None:
        if self.enabled:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)


class Trainer:
    """Build everything from a :class:`TrainConfig`; :meth:`fit` runs (or resumes) the training."""

    def __init__(self, cfg: TrainConfig, *, resume: Union[bool, str, Path] = False,
                 trust_checkpoint: bool = False) -> None:
        self.cfg = cfg.validate()
        self.resume = resume
        self.trust_checkpoint = trust_checkpoint

    # ---------------------------------------------------------------- setup
    def _setup(self) -> None:
        cfg = self.cfg
        from mfirrn.io.options import InputError, check_device, writable_dir

        try:
            check_device(cfg.device, "device")
            if int(os.environ.get("RANK", "0")) == 0:
                writable_dir(cfg.out_dir, "out_dir")
        except InputError as exc:
            raise ConfigError(str(exc)) from None
        self.dist, self.device = init_distributed(cfg.device)
        if cfg.precision == "amp" and self.device.type != "cuda":
            raise ConfigError("precision=amp needs CUDA; use precision=bf16 or fp32 on CPU")
        if self.device.type == "cuda" and not cfg.deterministic:
            torch.backends.cudnn.benchmark = True  # fixed 120x120 input: let cuDNN time and pick its fastest kernels
        self.out_dir = Path(cfg.out_dir)
        torch.manual_seed(cfg.seed + self.dist.rank)
        np.random.seed((cfg.seed + self.dist.rank) % 2**32)
        random.seed(cfg.seed + self.dist.rank)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            self.card = get_card(cfg.model.arch)
        except KeyError as exc:
            raise ConfigError(f"model.arch: {exc.args[0]}") from None
        if cfg.model.stats:
            try:
                self.stats = ParamStats.from_asset(cfg.model.stats)
            except (KeyError, FileNotFoundError, ValueError) as exc:
                raise ConfigError(f"model.stats={cfg.model.stats!r} is not a usable stats asset ({exc})") from None
            self.card = dataclasses.replace(self.card, stats=self.stats)
        else:
            self.stats = self.card.load_stats()
        self.convention = self.card.convention
        net = self.card.builder()
        self.init_summary: Optional[dict] = None
        if cfg.model.init and not self.resume:
            from mfirrn.models.init import init_from_pretrained

            s = init_from_pretrained(net, cfg.model.init, trust_checkpoint=self.trust_checkpoint)
            self.init_summary = {"source": s["source"], "copied": s["copied"], "initialised": s.get("initialised", 0),
                                 "skipped": len(s["skipped"]), "unused": s["unused"], "notes": s.get("notes", [])}
            if self.dist.is_main:
                print(f"mfirrn train: init from {s['source']}: {s['copied']} tensors copied, "
                      f"{s.get('initialised', 0)} set by rule, {len(s['skipped'])} left at random init"
                      f"{' (' + ', '.join(s['skipped'][:4]) + ' ...)' if s['skipped'] else ''}; "
                      f"unused source tensors: {', '.join(s['unused']) or 'none'}", file=sys.stderr)
        if cfg.model.heads_in_place:
            if not hasattr(net, "heads_in_place"):
                raise ConfigError(f"model.heads_in_place: {cfg.model.arch} has no medium and fine heads; it applies "
                                  f"to MFIRRN architectures (mfirrn models)")
            net.heads_in_place = True
        net.card, net.stats = self.card, self.stats  # type: ignore[assignment]
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.net = net.to(self.device, memory_format=self.memory_format)
        bn_names = [n for n, m in net.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for prefix in cfg.model.freeze_bn_except:
            if not any(_under(n, [prefix]) for n in bn_names):
                tops = sorted({n.split(".")[0] for n in bn_names})
                raise ConfigError(f"model.freeze_bn_except: {cfg.model.arch} has no BatchNorm under {prefix!r}; name "
                                  f"modules that hold some, e.g. {', '.join(tops[:6])}")
        self.bfm = MorphableModel("full").to(self.device)
        self.criterion = build_loss(cfg.loss.name, self.stats, self.bfm, n_resample=cfg.loss.n_resample).to(self.device)
        d = cfg.data
        options = {"root": d.root}
        if d.format == "3ddfa":
            options.update(list_file=d.list_file, param_file=d.param_file)
        if not d.root:
            raise ConfigError("data.root is empty; set it in the config or with data.root=PATH (300W-LP's "
                              "train_aug_120x120 with data.format=3ddfa, or a crops+params folder, e.g. one "
                              "`mfirrn data build` makes from the AFLW pool: docs/training.md)")
        if d.format == "shards":
            from mfirrn.data.shards import ShardSet

            full = ShardSet(d.root)
        else:
            full = open_dataset(d.format, self.stats, seed=cfg.seed, **options)
        # The labels' pixel convention is what the network learns to output: it goes into the checkpoint.
        self.convention = full.convention
        self.teacher = self._load_teacher() if cfg.loss.distill_weight > 0 else None
        self.net.card = dataclasses.replace(self.card, convention=full.convention)  # type: ignore[assignment]
        aug = None
        if d.augment.enabled:  # the settings are an AugmentConfig
            aug = Augmenter(d.augment, default_mirror() if d.augment.flip_prob > 0 else None, full.convention)
        split_seed = cfg.seed if d.split_seed is None else d.split_seed
        if d.format == "shards":  # streamed: the stream is its own sampler (set_epoch, state_dict, len)
            from mfirrn.data.shards import ShardSamples, ShardStream

            train_ids, val_ids = full.split(d.val_fraction, split_seed)
            self.train_set = ShardStream(full, train_ids, self.stats, batch_size=d.batch_size, n_workers=d.workers,
                                         augment=aug, seed=cfg.seed, rank=self.dist.rank,
                                         world_size=self.dist.world_size, shuffle_shards=d.shuffle_shards)
            self.val_set = ShardSamples(full, val_ids, self.stats)
            self.sampler = self.train_set
        else:
            train_idx, val_idx = split_indices(len(full), d.val_fraction, split_seed)
            self.train_set = full.subset(train_idx, augment=aug)
            self.val_set = full.subset(val_idx, augment=None)
            self.sampler = ResumableSampler(len(self.train_set), shuffle=True, seed=cfg.seed,
                                            rank=self.dist.rank, world_size=self.dist.world_size)
        self.steps_per_epoch = len(self.sampler) // d.batch_size
        if self.steps_per_epoch < 1:
            raise ConfigError(f"data.batch_size={d.batch_size} exceeds the {len(self.sampler)} training samples per "
                              f"process; lower data.batch_size or add data")
        self.total_steps = cfg.epochs * self.steps_per_epoch
        if cfg.max_steps > 0:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        o = cfg.optim
        trainable = [(n, p) for n, p in self.net.named_parameters() if p.requires_grad]
        is_new = [_under(n, o.new_lr_modules) for n, _ in trainable]
        if any(is_new) and o.new_lr_mult != 1.0:
            params: list = [{"params": [p for (_, p), new in zip(trainable, is_new) if not new]},
                            {"params": [p for (_, p), new in zip(trainable, is_new) if new], "lr": o.lr * o.new_lr_mult}]
        else:
            params = [p for _, p in trainable]
        if o.name == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                                             weight_decay=o.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)  # type: ignore[arg-type]
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_lambda(cfg, self.steps_per_epoch, self.total_steps))
        self.scaler = torch.amp.GradScaler("cuda") if cfg.precision == "amp" else None
        self.model: nn.Module = self.net
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        self.step, self.best_nme, self.history = 0, float("inf"), []

    def _load_teacher(self) -> nn.Module:
        """The frozen distillation teacher (``loss.distill_from``), on the run's device, in eval mode."""
        from mfirrn import models
        from mfirrn.io.assets import AssetError

        spec = self.cfg.loss.distill_from
        try:
            with torch.random.fork_rng(devices=[]):  # building it must not move the run's random stream
                teacher = models.load(spec, device=self.device, trust_checkpoint=self.trust_checkpoint)
        except (KeyError, ValueError, OSError, models.CheckpointError, AssetError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            raise ConfigError(f"loss.distill_from={spec!r}: {msg}") from None
        if teacher.card.convention != self.convention:
            raise ConfigError(f"loss.distill_from={spec!r} uses the {teacher.card.convention} pixel convention, the run "
                              f"{self.convention}; pick a teacher of the same convention")
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher.to(memory_format=self.memory_format).eval()

    def _distill_target(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's params for crops ``x``, normalised with the run's stats (B, 62)."""
        with torch.no_grad():
            out = self.teacher(x)
            out = out.fused if hasattr(out, "fused") else out
            return self.stats.normalize(self.teacher.stats.denormalize(out.float()))

    def _autocast(self):
        p = self.cfg.precision
        if p == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if p == "amp":
            return torch.autocast(self.device.type, dtype=torch.float16)
        return nullcontext()

    # ---------------------------------------------------------------- checkpoints
    def _checkpoint(self) -> dict:
        rngs = all_gather_object(self.dist, _rng_state())
        return {
            "arch": self.cfg.model.arch,
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()},
            "stats": {"mean": self.stats.mean.copy(), "std": self.stats.std.copy()},
            "convention": self.convention,
            "init": self.init_summary,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "sampler": {**self.sampler.state_dict(), "epoch": self.step // self.steps_per_epoch,
                        "start": (self.step % self.steps_per_epoch) * self.cfg.data.batch_size},
            "rng": rngs,
            "best_nme": self.best_nme,
            "history": self.history,
            "config": self.cfg.to_dict(),
            "code_version": code_version(),
            "world_size": self.dist.world_size,
        }

    def _save(self, best: bool = False) -> None:
        ckpt = self._checkpoint()  # every rank joins the RNG gather
        if self.dist.is_main:
            # best.pt first: a run killed between the two writes resumes from the previous last.pt and redoes
            # (and rewrites) this step, so best.pt is never missing a step that last.pt already has
            if best:
                save_checkpoint_atomic(ckpt, self.out_dir / "best.pt")
            save_checkpoint_atomic(ckpt, self.out_dir / "last.pt")
        barrier(self.dist)

    def _load(self, path: Path) -> None:
        from mfirrn.io.safeload import UnsafeFileError, load_checkpoint_file

        try:
            ckpt = load_checkpoint_file(path, trust=self.trust_checkpoint)
        except UnsafeFileError as exc:
            raise TrainError(str(exc)) from None
        except Exception as exc:
            raise TrainError(f"cannot read checkpoint {path} ({type(exc).__name__}); delete it or start a new out_dir") from None
        if not isinstance(ckpt, dict) or "optimizer" not in ckpt:
            raise TrainError(f"{path} is not a training checkpoint of this trainer; resume from its last.pt")
        if ckpt.get("arch") != self.cfg.model.arch:
            raise TrainError(f"{path} was trained as {ckpt.get('arch')}, the config says {self.cfg.model.arch}; "
                             f"fix model.arch or the out_dir")
        from mfirrn.io.resume import ResumeError
        from mfirrn.train.resume import check_train_resume

        try:
            self.resume_changes = check_train_resume(ckpt.get("config"), self.cfg.to_dict(), TrainConfig().to_dict(), path)
        except ResumeError as exc:
            raise TrainError(str(exc)) from None
        if ckpt.get("steps_per_epoch") != self.steps_per_epoch or ckpt.get("world_size", 1) != self.dist.world_size:
            raise TrainError(f"{path} was written with {ckpt.get('steps_per_epoch')} steps/epoch on "
                             f"{ckpt.get('world_size', 1)} process(es), this run has {self.steps_per_epoch} on "
                             f"{self.dist.world_size}; resume with the same data, batch size and process count")
        self.net.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        self.init_summary = ckpt.get("init")
        self.best_nme = float(ckpt.get("best_nme", float("inf")))
        self.history = list(ckpt.get("history", []))
        rngs = ckpt["rng"]
        _set_rng_state(rngs[self.dist.rank] if isinstance(rngs, list) else rngs)

    # ---------------------------------------------------------------- loop
    def _validate(self, epoch: int) -> dict:
        row: dict[str, Any] = {"epoch": epoch, "step": self.step}
        if self.dist.is_main and len(self.val_set):
            row.update(validate_params(self.net, self.val_set, self.bfm, self.criterion, device=self.device,
                                       batch_size=self.cfg.val.batch_size, autocast_ctx=self._autocast_factory(),
                                       seed=self.cfg.seed))
            if self.cfg.val.aflw2000_root:
                from mfirrn.evaluation.benchmark import AFLW2000, evaluate

                data = AFLW2000.load(self.cfg.val.aflw2000_root, limit=self.cfg.val.aflw2000_limit)
                res = evaluate(self.net, data, bfm=self.bfm if self.device.type == "cpu" else None,
                               batch_size=self.cfg.val.batch_size, bf16=self.cfg.precision == "bf16")
                row.update(aflw2000_mean=res.summary.mean, aflw2000_per_image=res.summary.per_image_mean)
            self._train_mode()
        return row

    def _train_mode(self) -> None:
        """Training mode, with BatchNorm layers kept in eval mode when ``model.freeze_bn`` is set (but those
        under ``model.freeze_bn_except``)."""
        self.model.train()
        if self.cfg.model.freeze_bn:
            keep = self.cfg.model.freeze_bn_except
            for name, m in self.net.named_modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and not _under(name, keep):
                    m.eval()

    def _autocast_factory(self):
        return self._autocast if self.cfg.precision != "fp32" else None

    def fit(self) -> TrainResult:
        threads = cv2.getNumThreads()
        if self.cfg.data.workers > 0:
            # Loader workers are forked from this process and inherit OpenCV's thread count: one each, so that N
            # workers do not each run an all-core pool (on a 2-core machine, 16 threads per worker cost 1.4x in
            # loader throughput; a 16-core GPU machine has 16 by default). Set here, not in the workers:
            # cv2.setNumThreads in a forked child deadlocks once the parent has used OpenCV's pool.
            cv2.setNumThreads(1)
        try:
            return self._fit()
        finally:
            cv2.setNumThreads(threads)
            cleanup_distributed()

    def _fit(self) -> TrainResult:
        self._setup()
        kept = self.device.type == "cpu" and keep_freed_memory()  # no fresh pages every step (mfirrn.io.heap)
        try:
            return self._fit_loop()
        finally:
            if kept:
                restore_heap_defaults()

    def _fit_loop(self) -> TrainResult:
        cfg, main = self.cfg, self.dist.is_main
        last = self.out_dir / "last.pt"
        resume_step: Optional[int] = None
        if main:  # a run killed while writing a checkpoint leaves its temp file: remove it
            from mfirrn.io.fileio import remove_stale_temporaries

            for p in remove_stale_temporaries(self.out_dir, (".last.pt.*.tmp", ".best.pt.*.tmp")):
                print(f"mfirrn train: removed {p.name}, left by a run killed while writing a checkpoint", file=sys.stderr)
        self.resume_changes: list[str] = []
        if self.resume:
            path = Path(self.resume) if isinstance(self.resume, (str, Path)) and not isinstance(self.resume, bool) else last
            if not path.is_file():
                raise TrainError(f"nothing to resume: {path} does not exist; drop --resume to start a new run")
            self._load(path)
            resume_step = self.step
        elif last.is_file():
            raise TrainError(f"{self.out_dir} already holds a run (last.pt); pass --resume to continue it or set out_dir=NEW_DIR")
        if main and cfg.precision == "bf16" and self.device.type == "cpu":  # said once the run is sure to start
            from mfirrn.io.machine import bf16_emulated_note

            if note := bf16_emulated_note():
                print(f"mfirrn train: warning: precision bf16: {note}; use precision: fp32", file=sys.stderr)
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            from mfirrn.io.fileio import atomic_write

            atomic_write(self.out_dir / "config.yaml", cfg.to_yaml())
            if self.resume_changes:  # applied, so config.yaml (the settings in use) says so; logged with the step
                line = f"step {self.step}: resumed with changed settings: {', '.join(self.resume_changes)}"
                print(f"mfirrn train: {line}", file=sys.stderr)
                with open(self.out_dir / "resume_log.txt", "a") as f:
                    f.write(line + "\n")
        barrier(self.dist)
        train_log = _CsvLog(self.out_dir / "train_log.csv", ["step", "epoch", "lr", "loss", "crops_per_s"], main, resume_step)
        val_cols = ["epoch", "step", "val_loss", "nme", "nme_0_30", "nme_30_60", "nme_60_90", "nme_bin_mean",
                    "n_val", "aflw2000_mean", "aflw2000_per_image", "nme_coarse", "nme_medium", "nme_fine"]
        val_log = _CsvLog(self.out_dir / "val_log.csv", val_cols, main, resume_step)
        tb = None
        if cfg.tensorboard and main:
            try:
                from torch.utils.tensorboard import SummaryWriter

                tb = SummaryWriter(str(self.out_dir / "tb"))
            except ImportError:
                print("mfirrn train: tensorboard not installed; logging to CSV only", file=sys.stderr)
        from tqdm.auto import tqdm

        bar = tqdm(total=self.total_steps, initial=self.step, disable=not (cfg.progress and main), desc="train",
                   dynamic_ncols=True)
        spe, bs = self.steps_per_epoch, cfg.data.batch_size
        self._train_mode()
        stopped = False
        t0, n_seen = time.perf_counter(), 0
        while self.step < self.total_steps and not stopped:
            epoch, offset = divmod(self.step, spe)
            pin = cfg.data.pin_memory and self.device.type == "cuda"
            self.sampler.set_epoch(epoch, offset * bs)
            if self.sampler is self.train_set:  # a shard stream: batches made in its workers
                loader = self.train_set.loader(pin_memory=pin)
            else:
                self.train_set.set_epoch(epoch)
                loader = make_loader(self.train_set, bs, sampler=self.sampler, workers=cfg.data.workers,
                                     pin_memory=pin, seed=cfg.seed * 1000 + epoch)
            for x, y, _ in loader:
                x = x.to(self.device, non_blocking=True, memory_format=self.memory_format)
                y = y.to(self.device, non_blocking=True)
                with self._autocast():
                    out = self.model(x)
                outs = [o.float() for o in out] if isinstance(out, tuple) else out.float()
                if self.teacher is not None:  # one vertex sample for both targets
                    beta, rows = cfg.loss.distill_weight, self.criterion.sample_rows(None)
                    loss = (1 - beta) * multi_output_loss(self.criterion, outs, y, rows=rows) + \
                        beta * multi_output_loss(self.criterion, outs, self._distill_target(x), rows=rows)
                else:
                    loss = multi_output_loss(self.criterion, outs, y)
                self.optimizer.zero_grad(set_to_none=True)
                if self.scaler:
                    self.scaler.scale(loss).backward()
                    self.scaler.unscale_(self.optimizer)
                else:
                    loss.backward()
                if cfg.optim.clip_grad_norm > 0:
                    nn.utils.clip_grad_norm_(self.net.parameters(), cfg.optim.clip_grad_norm)
                if self.scaler:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                lr = self.optimizer.param_groups[0]["lr"]
                self.scheduler.step()
                self.step += 1
                n_seen += x.shape[0]
                lval = float(loss.detach())
                if not math.isfinite(lval):
                    raise TrainError(f"loss became {lval} at step {self.step}; lower optim.lr or enable optim.clip_grad_norm")
                bar.update(1)
                bar.set_postfix(loss=f"{lval:.4f}", epoch=epoch)
                if main and (self.step % max(1, cfg.log_every_steps) == 0 or self.step == self.total_steps):
                    rate = n_seen * self.dist.world_size / max(1e-9, time.perf_counter() - t0)
                    train_log.write({"step": self.step, "epoch": epoch, "lr": f"{lr:.6g}", "loss": f"{lval:.6g}",
                                     "crops_per_s": f"{rate:.1f}"})
                    if tb:
                        tb.add_scalar("train/loss", lval, self.step)
                        tb.add_scalar("train/lr", lr, self.step)
                end_of_epoch = self.step % spe == 0
                done = self.step >= self.total_steps
                if end_of_epoch or done:
                    if (epoch + 1) % max(1, cfg.val.every_epochs) == 0 or done:
                        row = self._validate(epoch)
                        improved = main and row.get("nme", float("inf")) < self.best_nme
                        if improved:
                            self.best_nme = row["nme"]
                        if main:
                            self.history.append(row)
                            val_log.write(row)
                            if tb and "nme" in row:
                                tb.add_scalar("val/nme", row["nme"], self.step)
                                tb.add_scalar("val/loss", row["val_loss"], self.step)
                        flags = all_gather_object(self.dist, bool(improved))
                        self._save(best=flags[0])
                    else:
                        self._save()
                elif cfg.checkpoint_every_steps > 0 and self.step % cfg.checkpoint_every_steps == 0:
                    self._save()
                out_of_time = cfg.stop_after_minutes > 0 and time.perf_counter() - t0 >= 60 * cfg.stop_after_minutes
                if cfg.stop_after_minutes > 0 and self.dist.enabled:  # every rank stops at the same step
                    out_of_time = any(all_gather_object(self.dist, out_of_time))
                if (out_of_time or 0 < cfg.stop_after_steps <= self.step) and not done:
                    if not (end_of_epoch or (cfg.checkpoint_every_steps > 0 and self.step % cfg.checkpoint_every_steps == 0)):
                        self._save()
                    stopped = True
                    break
                if done:
                    break
        bar.close()
        if tb:
            tb.close()
        best = self.out_dir / "best.pt"
        return TrainResult(self.out_dir, last, best if best.is_file() else None, self.step, self.step // spe,
                           self.best_nme, self.history, stopped)


def train(cfg: TrainConfig, *, resume: Union[bool, str, Path] = False, trust_checkpoint: bool = False) -> TrainResult:
    """Run (or with ``resume`` continue) a training run described by ``cfg``.

    Checkpoints it reads (the one resumed, ``model.init`` and ``loss.distill_from`` files) are read without
    running code from them; ``trust_checkpoint=True`` reads old full-pickle checkpoints too, which runs code
    from the file: only for files you trust (:func:`mfirrn.models.load_checkpoint`)."""
    return Trainer(cfg, resume=resume, trust_checkpoint=trust_checkpoint).fit()
