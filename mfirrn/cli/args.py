"""The checks of each command's arguments (:data:`ARG_RULES`), run by :func:`mfirrn.cli.main` before the
command does any work; the value checks themselves are :mod:`mfirrn.io.options`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mfirrn.io.options import (
    InputError,
    check_device,
    detector_size,
    nonnegative_int,
    number_in,
    positive_int,
    writable_dir,
    writable_file,
)

__all__ = ["ARG_RULES", "check_args", "model_or_checkpoint", "add_trust_checkpoint_arg"]


def add_trust_checkpoint_arg(p: Any, reads: str = "--checkpoint") -> None:
    """``--trust-checkpoint``: the opt-in for checkpoints that the safe reader refuses
    (:func:`mfirrn.io.safeload.load_checkpoint_file`); ``reads`` says which of the command's options it applies to."""
    p.add_argument("--trust-checkpoint", action="store_true",
                   help=f"also read a {reads} file that holds more than tensors, arrays and plain values (old "
                        f"checkpoints such as the released MFIRRN .pth.tar): this runs code from the file; only for "
                        f"files you trust")


def model_or_checkpoint(spec: str, option: str) -> str:
    """A registered model name, or a checkpoint file that exists (a path-like spec that is missing fails here,
    not as "unknown model")."""
    from mfirrn import models

    if spec in models.available():
        return spec
    p = Path(spec)
    if p.is_file():
        return spec
    if p.is_dir():
        raise InputError(f"{option} {spec} is a folder; give a checkpoint file inside it (e.g. {p / 'best.pt'})")
    looks_like_path = os.sep in spec or "/" in spec or p.suffix in (".pt", ".pth", ".ckpt", ".tar", ".bin")
    if looks_like_path:
        raise InputError(f"{option}: checkpoint file {spec} does not exist; check the path")
    raise InputError(f"{option}: {spec!r} is neither a registered model ({', '.join(models.available())}) nor an "
                     f"existing checkpoint file; see `mfirrn models`")


def _none_or(check):
    return lambda v, opt: check(v, opt, allow_none=True)


_POSITIVE = _none_or(positive_int)
_NONNEGATIVE = _none_or(nonnegative_int)
_DEVICE = lambda v, opt: check_device(v, opt)  # noqa: E731
_OUT_DIR = lambda v, opt: None if v is None else writable_dir(v, opt)  # noqa: E731
_MODELS = lambda v, opt: None if v is None else [model_or_checkpoint(s, opt) for s in v]  # noqa: E731

#: Per command (``"benchmark"``, ``"data build"``, ...): argparse dest -> (option as the user types it, check).
#: :func:`check_args` runs them before the command does any work.
ARG_RULES: dict[str, dict[str, tuple[str, Any]]] = {
    "benchmark": {
        "limit": ("--limit", _POSITIVE), "batch_size": ("--batch-size", _POSITIVE), "device": ("--device", _DEVICE),
        "bootstrap": ("--bootstrap", _POSITIVE), "compare": ("--compare", _MODELS), "out": ("--out", _OUT_DIR),
    },
    "data fit-landmarks": {
        "limit": ("--limit", _POSITIVE), "batch_size": ("--batch-size", _POSITIVE),
        "max_iter": ("--max-iter", _POSITIVE), "device": ("--device", _DEVICE),
        "prior_weight": ("--prior-weight", lambda v, o: number_in(v, o, 0, allow_none=True)),
        "max_residual": ("--max-residual", lambda v, o: number_in(v, o, 0, low_open=True, allow_none=True)),
        "out": ("--out", _OUT_DIR),
    },
    "data build": {
        "profiles": ("--profiles", _NONNEGATIVE), "workers": ("--workers", _NONNEGATIVE),
        "limit": ("--limit", _POSITIVE), "out": ("--out", _OUT_DIR),
    },
    "reconstruct": {
        "min_confidence": ("--min-confidence", lambda v, o: number_in(v, o, 0, 1, allow_none=True)),
        "min_face_size": ("--min-face-size", lambda v, o: number_in(v, o, 0)),
        "looking_down_confidence": ("--looking-down-confidence", lambda v, o: number_in(v, o, 0, 1)),
        "detector_threshold": ("--detector-threshold",
                               lambda v, o: number_in(v, o, 0, 1, low_open=True, high_open=True, allow_none=True)),
        "detector_size": ("--detector-size", _none_or(detector_size)),
        "detector_min_size": ("--detector-min-size", _NONNEGATIVE),
    },
    "export-onnx": {
        "opset": ("--opset", _POSITIVE),
        "output": ("-o/--output", lambda v, o: writable_file(v, o, suffix=".onnx")),
    },
}


def check_args(args: Any) -> None:
    """Check the parsed arguments of ``mfirrn <command> [<action>]`` against :data:`ARG_RULES`."""
    command = getattr(args, "command", None)
    action = getattr(args, "action", None)
    rules = ARG_RULES.get(f"{command} {action}" if action else str(command), {})
    for dest, (option, check) in rules.items():
        if hasattr(args, dest):
            check(getattr(args, dest), option)
