"""Resume compatibility: a resumed job must continue the job it claims to continue.

Two resumable jobs exist: ``mfirrn data build`` (chunks written as ``parts/part_XXXXX.npz``) and
``mfirrn train --resume`` (``last.pt``). Continuing either with other inputs or settings would silently
mix two jobs into one result, so both are checked here:

* **data build** — the build folder records a fingerprint of what it is building (:func:`build_fingerprint`:
  the labels' checksums, the build options, the code version) in ``parts/build.json`` before any work. A
  rerun with another fingerprint is refused (:func:`check_build_resume`); a part file that is unreadable or
  whose crops are missing is reported by :func:`part_problem`, and the build redoes that chunk
  (deterministic, so the result is the uninterrupted one).
* **train** — the checkpoint holds the config it was trained with. Settings that only steer the rest of
  the run (:data:`TRAIN_RESUME_MAY_CHANGE`: length, logging, device, ...) may change and are applied and
  reported; any other change is refused (:func:`check_train_resume`), because the restored optimizer,
  data split and model would not follow it while the run's ``config.yaml`` said they did.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from mfirrn.checks import DataFileError, load_json, load_npz

__all__ = ["ResumeError", "BUILD_FORMAT", "BUILD_STATE", "file_sha256", "build_fingerprint", "check_build_resume",
           "write_build_state", "part_problem", "TRAIN_RESUME_MAY_CHANGE", "check_train_resume", "flatten"]

PathLike = Union[str, Path]

#: Version of the data-build algorithm and part-file layout; bump it when a build's output would change.
BUILD_FORMAT = 1
#: The build folder's record of what it is building (inside ``parts/``).
BUILD_STATE = "build.json"

#: Train settings a resumed run may change: they steer the rest of the run, not what was already done.
TRAIN_RESUME_MAY_CHANGE = frozenset({
    "out_dir", "device", "progress", "log_every_steps", "tensorboard", "checkpoint_every_steps", "stop_after_steps",
    "max_steps", "epochs", "data.workers", "data.pin_memory", "val.every_epochs", "val.batch_size",
    "val.aflw2000_root", "val.aflw2000_limit",
})


class ResumeError(ValueError):
    """A job cannot be resumed with these inputs or settings; the message names what differs and the fix."""


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


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return a == b


# ---------------------------------------------------------------------------------------------- data build
_BUILD_OPTION_NAMES = {"profiles_per_face": "--profiles", "seed": "--seed", "limit": "--limit"}


def build_fingerprint(labels_dir: PathLike, options: dict) -> dict:
    """What a data build builds: labels checksums, build options (without ``workers``, which does not change
    the result), package version + :data:`BUILD_FORMAT`, and the source tree's git state (informative)."""
    from mfirrn import __version__
    from mfirrn.train.trainer import code_version

    labels_dir = Path(labels_dir)
    opts = {k: v for k, v in flatten(options).items() if k != "workers"}
    return {"labels_dir": str(labels_dir.resolve()),
            "labels": {name: file_sha256(labels_dir / name) for name in ("labels.npz", "labels.json")},
            "options": json.loads(json.dumps(opts, default=str)),
            "code": {"package": __version__, "format": BUILD_FORMAT},
            "code_version": code_version()}


def write_build_state(out: PathLike, fingerprint: dict) -> None:
    from mfirrn.fileio import atomic_write

    atomic_write(Path(out) / "parts" / BUILD_STATE, json.dumps(fingerprint, indent=2) + "\n")


def check_build_resume(out: PathLike, fingerprint: dict) -> Optional[str]:
    """Refuse (:class:`ResumeError`) to continue a build in ``out`` made from other inputs.

    Returns ``None`` for a fresh (empty or absent) folder, else a note when only the source tree's git
    state differs (same package version and build format: the output is expected to be the same).
    """
    out = Path(out)
    state = out / "parts" / BUILD_STATE
    if not state.is_file():
        leftovers = [p for p in out.iterdir() if not (p.is_dir() and p.name in ("crops", "parts") and not any(p.iterdir()))] \
            if out.is_dir() else []
        if leftovers:
            raise ResumeError(f"--out {out} is not empty and holds no record of a data build (found {leftovers[0].name}); "
                              f"choose a new --out, or delete {out} to rebuild")
        return None
    try:
        old = load_json(state, ("labels", "options", "code"))
    except DataFileError as exc:
        raise ResumeError(f"{exc}; or delete {out} to rebuild") from None
    diffs = []
    for name, digest in fingerprint["labels"].items():
        if old["labels"].get(name) != digest:
            diffs.append(f"{name} differs (was {old.get('labels_dir', 'another folder')})")
    old_opts, new_opts = old["options"], fingerprint["options"]
    for key in sorted(set(old_opts) | set(new_opts)):
        if not _same(old_opts.get(key), new_opts.get(key)):
            diffs.append(f"{_BUILD_OPTION_NAMES.get(key, key)} {old_opts.get(key)} -> {new_opts.get(key)}")
    if old["code"] != fingerprint["code"]:
        diffs.append(f"code {old['code']} -> {fingerprint['code']}")
    if diffs:
        raise ResumeError(f"--out {out} holds a build of other inputs ({'; '.join(diffs)}); rerun with the same "
                          f"--labels and options to resume it, or choose a new --out (or delete {out})")
    if old.get("code_version") != fingerprint.get("code_version"):
        return (f"resuming a build started by {old.get('code_version')} with {fingerprint.get('code_version')} "
                f"(same package version and build format)")
    return None


def part_problem(part: PathLike, crops_dir: PathLike) -> Optional[str]:
    """Why a finished chunk's part file cannot be used (unreadable, inconsistent, crops missing), or ``None``."""
    part, crops_dir = Path(part), Path(crops_dir)
    keys = ("names", "params", "source", "kind", "yaw", "angles")
    try:
        z = load_npz(part, keys)
    except DataFileError as exc:
        return str(exc).split(";")[0]
    n = len(z["names"])
    if z["params"].shape != (n, 62) or any(len(z[k]) != n for k in keys[2:]):
        return f"{part} has arrays of inconsistent lengths"
    if not np.isfinite(z["params"]).all():
        return f"{part} holds non-finite params"
    missing = [str(name) for name in z["names"] if not (crops_dir / str(name)).is_file()]
    if missing:
        return f"{len(missing)} of its crops are missing (e.g. {crops_dir / missing[0]})"
    return None


# ---------------------------------------------------------------------------------------------- train
def check_train_resume(checkpoint_config: Optional[dict], config: dict, defaults: dict, source: PathLike) -> list[str]:
    """Compare the checkpoint's config with the resumed run's (both ``TrainConfig.to_dict()`` form).

    Returns the changes that are applied (``"max_steps 6 -> 10"``); raises :class:`ResumeError` naming
    every other change. Keys the checkpoint does not have (older versions) compare against ``defaults``.
    """
    if checkpoint_config is None:
        return []
    old, new, base = flatten(checkpoint_config), flatten(config), flatten(defaults)
    applied, refused = [], []
    for key in new:
        was = old.get(key, base.get(key))
        if _same(was, new[key]):
            continue
        text = f"{key} {was!r} -> {new[key]!r}" if isinstance(was, str) or isinstance(new[key], str) else \
            f"{key} {was} -> {new[key]}"
        (applied if key in TRAIN_RESUME_MAY_CHANGE else refused).append((key, text))
    if refused:
        keys = ", ".join(f"{k}={_yaml(old.get(k, base.get(k)))}" for k, _ in refused)
        raise ResumeError(f"{source} was trained with other settings ({'; '.join(t for _, t in refused)}); a resumed "
                          f"run keeps the checkpoint's, so resume with {keys}, or start a new run with "
                          f"out_dir=NEW_DIR (a resume may change only the run's length, logging, device and validation settings)")
    return [t for _, t in applied]


def _yaml(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
