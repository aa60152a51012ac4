"""Training configuration: nested dataclasses read from YAML, with ``key.sub=value`` overrides.

>>> cfg = TrainConfig.from_dict({"model": {"arch": "mfirrn-r18-half"}, "optim": {"lr": 0.01}})
>>> cfg.model.arch, cfg.optim.lr, cfg.optim.name
('mfirrn-r18-half', 0.01, 'sgd')
>>> apply_overrides(cfg, ["optim.lr=0.02", "epochs=3"]).optim.lr
0.02
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import yaml

from mfirrn.data.augment_config import AugmentConfig

__all__ = [
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "LossConfig",
    "OptimConfig",
    "ValidationConfig",
    "TrainConfig",
    "apply_overrides",
    "find_config",
    "package_configs",
]


class ConfigError(ValueError):
    """A config file or override is wrong; the message names the key and the fix."""


@dataclass(frozen=True)
class AugmentSettings(AugmentConfig):
    """The augmentation group of a config: :class:`mfirrn.data.augment_config.AugmentConfig` (its fields and
    defaults), and ``enabled: false`` to turn all augmentation off."""

    enabled: bool = True


@dataclass
class DataConfig:
    """``format``: ``3ddfa`` (root = image folder, list_file, param_file), ``crops-params`` (root) or ``shards``
    (root = a tar shard set from ``mfirrn data build --shards``, streamed; :mod:`mfirrn.data.shards`).

    ``val_fraction`` of the data (a fixed seeded split; for shards, whole shards, so whole faces) is held out
    for validation. ``split_seed`` seeds that split (``None``: the run's ``seed``); a run that continues another
    with a new ``seed`` (a new order and new augmentations) keeps the first run's split with ``split_seed``, so its
    validation data stays unseen. ``shuffle_shards``: shards a loader worker shuffles together (shards only).
    """

    format: str = "crops-params"
    root: str = ""
    list_file: Optional[str] = None
    param_file: Optional[str] = None
    val_fraction: float = 0.05
    split_seed: Optional[int] = None
    batch_size: int = 128
    workers: int = 4
    pin_memory: bool = True
    shuffle_shards: int = 4
    augment: AugmentSettings = field(default_factory=AugmentSettings)


@dataclass
class ModelConfig:
    """A registered architecture (``mfirrn models``); its card gives the stats and convention.

    ``init``: a registered pretrained model (``3ddfa-v2-mb05``) or checkpoint path to initialise from
    (:func:`mfirrn.models.init.init_from_pretrained`; not re-run on resume). ``stats``: a param-stats
    asset (``stats-3ddfa-v2``) replacing the card's, used for the targets, the loss and the checkpoint.
    ``freeze_bn``: keep every BatchNorm in eval mode while training (running statistics and the
    normalisation of the initialisation stay fixed; the usual choice when fine-tuning with small batches).
    ``freeze_bn_except``: module-name prefixes (e.g. ``[head_medium, head_fine]``) whose BatchNorms train
    even with ``freeze_bn``: layers that the initialisation leaves new, whose running statistics are those of a
    fresh layer (mean 0, variance 1) and would never normalise their inputs if frozen.
    ``heads_in_place`` (MFIRRN only): train the medium and fine heads on the crop as it is, the jigsaw kept for
    the features those branches pass to the coarse branch (:class:`mfirrn.models.mfirrn_net.MFIRRN`; the two
    branches run twice per training step; evaluation and inference are unchanged).
    """

    arch: str = "mfirrn-r34"
    init: Optional[str] = None
    stats: Optional[str] = None
    freeze_bn: bool = False
    freeze_bn_except: list[str] = field(default_factory=list)
    heads_in_place: bool = False


@dataclass
class LossConfig:
    """``name``: wpdc | vdc | pdc; ``n_resample`` dense vertices per batch (VDC/WPDC).

    ``distill_from``: a registered pretrained model (or checkpoint path) whose prediction on the same
    (augmented) crop is a second target, with weight ``distill_weight`` β: loss = (1 - β)·L(pred, label)
    + β·L(pred, teacher). It must share the run's pixel convention; its params are carried into the run's
    stats. β = 0 (default) trains on the labels alone.
    """

    name: str = "wpdc"
    n_resample: int = 132
    distill_from: Optional[str] = None
    distill_weight: float = 0.0


@dataclass
class OptimConfig:
    """SGD (Nesterov) + multistep (the paper) or AdamW + cosine. ``warmup_epochs`` ramps lr linearly per step.

    ``clip_grad_norm`` <= 0 disables clipping. ``new_lr_modules``: parameter-name prefixes (modules, e.g.
    ``head_medium``) whose learning rate is ``lr * new_lr_mult`` — for layers a fine-tuning starts from
    scratch; prefixes the model does not have are ignored, so two models can share one recipe.
    """

    name: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "multistep"
    milestones: list[int] = field(default_factory=lambda: [30, 40, 50])
    gamma: float = 0.2
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    new_lr_modules: list[str] = field(default_factory=list)
    new_lr_mult: float = 1.0
    clip_grad_norm: float = 0.0


@dataclass
class ValidationConfig:
    """Validation each ``every_epochs`` on the held-out split; optionally also AFLW2000-3D (``aflw2000_root``)."""

    every_epochs: int = 1
    aflw2000_root: Optional[str] = None
    aflw2000_limit: Optional[int] = None
    batch_size: int = 64


@dataclass
class TrainConfig:
    """Everything a training run needs. ``out_dir`` receives ``config.yaml``, ``last.pt``, ``best.pt`` and logs.

    ``max_steps`` (> 0) caps the run (the schedule still follows ``epochs``); ``stop_after_steps``
    (> 0) stops like a killed job would, after writing the checkpoint (used to test resuming);
    ``stop_after_minutes`` (> 0) does the same once that much wall time has passed since the first step of
    this process (a job with a time limit: a cluster's wall-clock limit, a borrowed GPU), then ``--resume``.
    ``precision``: fp32 | bf16 (autocast, CPU or CUDA) | amp (fp16 autocast + GradScaler, CUDA only).
    ``device``: auto (CUDA if available) | cpu | cuda | cuda:N.
    ``channels_last``: keep the network, the distillation teacher and each batch in the NHWC memory layout.
    The same arithmetic in another memory order (the convolution libraries pick other kernels, so results
    differ at rounding level); faster where the kernels for that layout are (``benchmarks/train_throughput.py``
    compares both). Checkpoints are written in the usual layout either way.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    val: ValidationConfig = field(default_factory=ValidationConfig)
    epochs: int = 40
    max_steps: int = 0
    stop_after_steps: int = 0
    stop_after_minutes: float = 0.0
    checkpoint_every_steps: int = 0
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = False
    out_dir: str = "runs/train"
    log_every_steps: int = 10
    progress: bool = True
    tensorboard: bool = False
    deterministic: bool = False

    # ---- construction ----
    @classmethod
    def from_dict(cls, d: dict, *, source: str = "config") -> "TrainConfig":
        return _build(cls, d or {}, source, "")

    @classmethod
    def from_yaml(cls, path: Union[str, Path], overrides: Sequence[str] = ()) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; pass a YAML file or one of: {', '.join(package_configs())}")
        try:
            d = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); fix the file") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{path} must hold a mapping of settings, not a {type(d).__name__}")
        return apply_overrides(cls.from_dict(d, source=str(path)), overrides)

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def validate(self) -> "TrainConfig":
        choices = {"optim.name": (self.optim.name, ("sgd", "adamw")),
                   "optim.schedule": (self.optim.schedule, ("multistep", "cosine", "constant")),
                   "precision": (self.precision, ("fp32", "bf16", "amp")),
                   "loss.name": (self.loss.name, ("wpdc", "vdc", "pdc")),
                   "data.format": (self.data.format, ("crops-params", "3ddfa", "shards"))}
        for key, (value, allowed) in choices.items():
            if value not in allowed:
                raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}; use one of them")
        from mfirrn.io.options import InputError, check_device, nonnegative_int, number_in, positive_int

        inf = float("inf")
        o, d, v = self.optim, self.data, self.val
        # key -> (value, check): every number a run reads, so a bad one fails here with its key, not mid-run
        checks = {
            "data.batch_size": (d.batch_size, positive_int), "epochs": (self.epochs, positive_int),
            "data.workers": (d.workers, nonnegative_int), "max_steps": (self.max_steps, nonnegative_int),
            "data.shuffle_shards": (d.shuffle_shards, positive_int),
            "stop_after_steps": (self.stop_after_steps, nonnegative_int),
            "stop_after_minutes": (self.stop_after_minutes, lambda x, k: number_in(x, k, 0)),
            "checkpoint_every_steps": (self.checkpoint_every_steps, nonnegative_int),
            "log_every_steps": (self.log_every_steps, positive_int), "loss.n_resample": (self.loss.n_resample, positive_int),
            "val.every_epochs": (v.every_epochs, positive_int), "val.batch_size": (v.batch_size, positive_int),
            "val.aflw2000_limit": (v.aflw2000_limit, lambda x, k: positive_int(x, k, allow_none=True)),
            "data.val_fraction": (d.val_fraction, lambda x, k: number_in(x, k, 0, 1, high_open=True)),
            "data.split_seed": (d.split_seed, lambda x, k: nonnegative_int(x, k, allow_none=True)),
            "seed": (self.seed, nonnegative_int),
            "optim.lr": (o.lr, lambda x, k: number_in(x, k, 0)),  # 0 is allowed: frozen weights (checks, tests)
            "optim.new_lr_mult": (o.new_lr_mult, lambda x, k: number_in(x, k, 0, inf, low_open=True)),
            "optim.momentum": (o.momentum, lambda x, k: number_in(x, k, 0, 1, high_open=True)),
            "optim.weight_decay": (o.weight_decay, lambda x, k: number_in(x, k, 0)),
            "optim.gamma": (o.gamma, lambda x, k: number_in(x, k, 0, inf, low_open=True)),
            "optim.warmup_epochs": (o.warmup_epochs, lambda x, k: number_in(x, k, 0)),
            "optim.min_lr": (o.min_lr, lambda x, k: number_in(x, k, 0)),
            "optim.clip_grad_norm": (o.clip_grad_norm, lambda x, k: number_in(x, k)),
            "loss.distill_weight": (self.loss.distill_weight, lambda x, k: number_in(x, k, 0, 1)),
            "device": (self.device, lambda x, k: check_device(x, k, available=False)),
        }
        try:
            for key, (value, check) in checks.items():
                check(value, key)
            for i, b in enumerate(o.betas):
                number_in(b, f"optim.betas[{i}]", 0, 1, high_open=True)
        except InputError as exc:
            raise ConfigError(str(exc)) from None
        if len(o.betas) != 2:
            raise ConfigError(f"optim.betas must be two numbers, got {list(o.betas)}")
        if self.loss.distill_weight > 0 and not self.loss.distill_from:
            raise ConfigError("loss.distill_weight > 0 needs a teacher: set loss.distill_from=MODEL (e.g. 3ddfa-v2-mb05)")
        if self.model.freeze_bn_except and not self.model.freeze_bn:
            raise ConfigError("model.freeze_bn_except names BatchNorms to keep training while the others are frozen; "
                              "set model.freeze_bn=true, or drop model.freeze_bn_except (every BatchNorm trains)")
        if not str(self.out_dir).strip():
            raise ConfigError("out_dir is empty; set out_dir=PATH")
        return self


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _coerce(value: Any, ftype: Any, key: str) -> Any:
    t = str(ftype)
    if value is None:
        return None
    try:
        if t in ("float", "<class 'float'>") or t.startswith("float"):
            return float(value)
        if t in ("int",) or t.startswith("int"):
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError
            return int(value)
        if t.startswith("bool"):
            if not isinstance(value, bool):
                raise ValueError
            return value
        if t.startswith("tuple"):
            return tuple(float(v) for v in value)
        if t.startswith("list[int]"):
            return [int(v) for v in value]
        if t.startswith("list[str]"):
            if isinstance(value, str):
                raise ValueError
            return [str(v) for v in value]
        if "float" in t and "Optional" in t:
            return float(value)
        if "int" in t and "Optional" in t:
            return int(value)
        if t.startswith("str") or "str" in t:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={value!r} does not fit type {t}; fix the value") from None
    return value


def _build(cls: Any, d: dict, source: str, prefix: str) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping, got {d!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key {prefix}{unknown[0]}; use one of the keys here: {', '.join(fields)}")
    kwargs = {}
    for name, value in d.items():
        f = fields[name]
        sub = f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        if dataclasses.is_dataclass(sub):
            kwargs[name] = _build(type(sub), value or {}, source, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, f.type, f"{prefix}{name}")
    return cls(**kwargs)


def apply_overrides(cfg: TrainConfig, overrides: Sequence[str]) -> TrainConfig:
    """Apply ``a.b=value`` strings (values parsed as YAML) and return a new validated config."""
    d = cfg.to_dict()
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must be written key=value (e.g. optim.lr=0.01)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node = d
        parts = key.strip().split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"override {item!r}: {p} is not a settings group; see the config file for valid keys")
            node = node[p]
        if parts[-1] not in node:
            raise ConfigError(f"override {item!r}: unknown key {key}; use one of the keys here: {', '.join(node)}")
        node[parts[-1]] = value
    return TrainConfig.from_dict(d, source="overrides").validate()


def package_configs() -> list[str]:
    """Names of the training configs shipped in ``mfirrn/train/configs``."""
    here = Path(__file__).resolve().parent / "configs"
    return sorted(p.stem for p in here.glob("*.yaml"))


def find_config(name_or_path: str) -> Path:
    """A YAML path as given, or a shipped config by name (``mfirrn-r34-300wlp``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    shipped = Path(__file__).resolve().parent / "configs" / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    raise ConfigError(f"config {name_or_path} not found; pass a YAML file or one of: {', '.join(package_configs())}")
