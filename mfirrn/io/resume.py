"""Resume compatibility: a resumed job must continue the job it claims to continue.

Two resumable jobs exist: ``mfirrn data build`` (:mod:`mfirrn.data.labels.build_state`) and ``mfirrn train
--resume`` (:mod:`mfirrn.train.resume`). Continuing either with other inputs or settings would silently mix
two jobs into one result; each records what it is doing and compares a rerun with that record. This module
holds what they share: the error, the code version a result was made by, checksums and flattened settings.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any, Union

__all__ = ["ResumeError", "code_version", "file_sha256", "flatten", "same_setting"]

PathLike = Union[str, Path]


class ResumeError(ValueError):
    """A job cannot be resumed with these inputs or settings; the message names what differs and the fix."""


def code_version() -> str:
    """``mfirrn.__version__`` plus ``git describe --always --dirty`` of the source tree when available."""
    import mfirrn

    v = mfirrn.__version__
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(mfirrn.__file__).parent,
                             capture_output=True, text=True, timeout=5)
        if out.returncode == 0 and out.stdout.strip():
            v += "+" + out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return v


def file_sha256(path: PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (tuples as lists, so values compare like their YAML/JSON form).

    >>> flatten({"optim": {"lr": 0.1, "betas": (0.9, 0.99)}, "seed": 0})
    {'optim.lr': 0.1, 'optim.betas': [0.9, 0.99], 'seed': 0}
    """
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def same_setting(a: Any, b: Any) -> bool:
    """Whether two setting values are the same as YAML/JSON would write them (``1 == 1.0``, tuples as lists)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_setting(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return a == b
