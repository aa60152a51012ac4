"""Model registry: every model maps (B, 3, 120, 120) normalised BGR crops to (B, 62) normalised params.

A :class:`ModelCard` says how to build a model and what its outputs mean: the param stats used to
de-normalise them and the pixel convention of its training targets. Both belong to the checkpoint, so
they travel with the model (``model.card``) into the pipeline and the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
from torch import nn

from mfirrn.geometry.frames import CONVENTIONS, Convention
from mfirrn.geometry.params import ParamStats

__all__ = ["ModelCard", "register_model", "available", "get_card", "create", "load_checkpoint", "load", "CheckpointError"]


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded into the requested model; the message says what to do."""


@dataclass(frozen=True)
class ModelCard:
    """What a registered model is.

    ``builder`` makes the untrained module; ``stats_asset`` names the param stats asset (or ``stats``
    holds them inline); ``convention`` is ``"v1"`` or ``"v2"``; ``weights_asset`` (or ``weights_path``)
    holds pretrained weights; ``state_dict_key`` is where the weights sit inside the checkpoint dict.
    """

    name: str
    builder: Callable[[], nn.Module]
    convention: Convention
    stats_asset: Optional[str] = None
    stats: Optional[ParamStats] = None
    weights_asset: Optional[str] = None
    weights_path: Optional[str] = None
    state_dict_key: Optional[str] = "state_dict"
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.convention not in CONVENTIONS:
            raise ValueError(f"model {self.name}: convention must be one of {CONVENTIONS}")

    @property
    def has_pretrained(self) -> bool:
        return self.weights_asset is not None or self.weights_path is not None

    def load_stats(self) -> ParamStats:
        if self.stats is not None:
            return self.stats
        if self.stats_asset is None:
            raise CheckpointError(f"model {self.name} has no param stats; give them in its card or checkpoint")
        return ParamStats.from_asset(self.stats_asset)


_REGISTRY: dict[str, ModelCard] = {}


def register_model(card: ModelCard) -> ModelCard:
    """Add a model card to the registry (names are unique)."""
    if card.name in _REGISTRY:
        raise ValueError(f"model {card.name!r} is already registered")
    _REGISTRY[card.name] = card
    return card


def available(pretrained: Optional[bool] = None) -> list[str]:
    """Registered model names; ``pretrained=True`` keeps only those with pretrained weights."""
    return sorted(n for n, c in _REGISTRY.items() if pretrained is None or c.has_pretrained == pretrained)


def get_card(name: str) -> ModelCard:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; use one of {', '.join(available())} (see `mfirrn models`)") from None


def _strip_prefix(state_dict: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def _load_into(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str, name: str) -> None:
    sd = _strip_prefix(state_dict)
    remap = getattr(model, "remap_state_dict", None)
    if callable(remap):
        sd = remap(sd)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    mismatched = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
    if missing or unexpected or mismatched:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if mismatched:
            detail.append(f"{len(mismatched)} of another shape (e.g. {mismatched[0]})")
        raise CheckpointError(
            f"checkpoint {source} does not fit model {name}: {'; '.join(detail)}; "
            f"pass the model the checkpoint was trained with (see `mfirrn models`)"
        )
    model.load_state_dict(sd, strict=True)


def _read_checkpoint(path: Union[str, Path], trust_checkpoint: bool = False) -> Any:
    """The checkpoint's contents, read without running code from it unless ``trust_checkpoint``
    (:func:`mfirrn.io.safeload.load_checkpoint_file`)."""
    from mfirrn.io.safeload import UnsafeFileError, load_checkpoint_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path")
    try:
        return load_checkpoint_file(path, trust=trust_checkpoint)
    except UnsafeFileError as exc:
        raise CheckpointError(str(exc)) from None
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {path} is not a readable PyTorch file ({type(exc).__name__}); re-download or re-train it"
        ) from None


def create(name: str, pretrained: bool = True, device: Union[str, torch.device] = "cpu") -> nn.Module:
    """Build a registered model in eval mode; with ``pretrained`` load its weights (fetched as assets).

    The returned module has ``model.card`` (its :class:`ModelCard`) and ``model.stats``
    (:class:`ParamStats`) set.
    """
    card = get_card(name)
    model = card.builder()
    if pretrained:
        if not card.has_pretrained:
            variants = [v for v in available(pretrained=False) if v.startswith(name + "-")]  # e.g. mfirrn-mb05-flat
            trained = [n for n in available(pretrained=True) if n.startswith(name + "-")
                       and not any(n.startswith(v + "-") for v in variants)]
            hint = f"; trained weights of it ship as {', '.join(trained)}" if trained else ""
            raise CheckpointError(f"model {name} has no pretrained weights{hint}; use pretrained=False or --checkpoint")
        if card.weights_asset is not None:
            from mfirrn.io.assets import fetch

            source: Union[str, Path] = fetch(card.weights_asset)
        else:
            source = Path(card.weights_path)  # type: ignore[arg-type]
        ckpt = _read_checkpoint(source)
        sd = ckpt[card.state_dict_key] if card.state_dict_key and isinstance(ckpt, dict) and card.state_dict_key in ckpt else ckpt
        _load_into(model, {k: v.float() for k, v in sd.items()}, str(source), name)
    model.card = card  # type: ignore[assignment]
    model.stats = card.load_stats()  # type: ignore[assignment]
    return model.to(device).eval()


def load_checkpoint(path: Union[str, Path], model: Optional[str] = None,
                    device: Union[str, torch.device] = "cpu", *, trust_checkpoint: bool = False) -> nn.Module:
    """Load a checkpoint file.

    A workbench checkpoint (a dict with ``arch``, ``state_dict`` and optional ``stats``/``convention``)
    rebuilds its own architecture. A foreign checkpoint (e.g. a 3DDFA ``.pth``) needs ``model``: the
    registered architecture it fits, whose stats and convention are then used.

    The file is read without running code from it: tensors, numpy arrays and plain values only. A checkpoint
    pickled with other objects (old releases such as MFIRRN's ``.pth.tar``) raises :class:`CheckpointError`
    naming what it needs; ``trust_checkpoint=True`` reads it anyway, which runs code from the file: only for
    files you trust.
    """
    ckpt = _read_checkpoint(path, trust_checkpoint)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(ckpt).__name__}, not a dict with a state_dict")
    arch = ckpt.get("arch") or model
    if arch is None:
        raise CheckpointError(f"checkpoint {path} does not name its architecture; pass --model NAME (see `mfirrn models`)")
    card = get_card(arch)
    if model is not None and ckpt.get("arch") not in (None, model):
        raise CheckpointError(f"checkpoint {path} is for model {ckpt['arch']}, not {model}; drop --model or fix it")
    net = card.builder()
    sd = ckpt.get("state_dict", ckpt.get("model", ckpt))
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"checkpoint {path} has no state_dict of tensors; is it a model checkpoint?")
    _load_into(net, {k: v.float() for k, v in sd.items()}, str(path), arch)
    stats = card.load_stats()
    if "stats" in ckpt:
        stats = ParamStats(ckpt["stats"]["mean"], ckpt["stats"]["std"], name=f"{path}:stats")
    convention = ckpt.get("convention", card.convention)
    # named after the file and its folder: runs keep their checkpoints as <run>/best.pt, <run>/last.pt
    where = Path(path).resolve()
    label = f"{where.parent.name}/{where.name}" if where.parent.name else where.name
    net.card = ModelCard(name=f"{arch}@{label}", builder=card.builder, convention=convention,  # type: ignore[assignment]
                         stats=stats, weights_path=str(path), description=f"{arch} loaded from {path}")
    net.stats = stats  # type: ignore[assignment]
    return net.to(device).eval()


def load(spec: Union[str, Path], device: Union[str, torch.device] = "cpu", *,
         trust_checkpoint: bool = False) -> nn.Module:
    """A checkpoint file (``spec`` names an existing file, see :func:`load_checkpoint`, also for
    ``trust_checkpoint``) or else a registered model with its pretrained weights (:func:`create`)."""
    if Path(spec).is_file():
        return load_checkpoint(spec, device=device, trust_checkpoint=trust_checkpoint)
    return create(str(spec), pretrained=True, device=device)
