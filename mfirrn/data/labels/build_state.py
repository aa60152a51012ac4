"""The record of a data build in progress (``parts/build.json``): what it builds, and which finished parts
a resumed build may keep.

Before any work the build folder records a fingerprint of what it is building (:func:`build_fingerprint`: the
labels' checksums, the build options, the code version). A rerun with another fingerprint is refused
(:func:`check_build_resume`); a part file that is unreadable or whose crops are missing is reported by
:func:`part_problem`, and the build redoes that chunk (deterministic, so the result is the uninterrupted one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

import numpy as np

from mfirrn.io.checks import DataFileError, load_json, load_npz
from mfirrn.io.resume import ResumeError, code_version, file_sha256, flatten, same_setting

__all__ = ["BUILD_FORMAT", "BUILD_STATE", "build_fingerprint", "write_build_state", "check_build_resume", "part_problem"]

PathLike = Union[str, Path]

#: Version of the data-build algorithm and part-file layout; bump it when a build's output would change.
BUILD_FORMAT = 1
#: The build folder's record of what it is building (inside ``parts/``).
BUILD_STATE = "build.json"

_BUILD_OPTION_NAMES = {"profiles_per_face": "--profiles", "seed": "--seed", "limit": "--limit"}


def build_fingerprint(labels_dir: PathLike, options: dict) -> dict:
    """What a data build builds: labels checksums, build options (without ``workers``, which does not change
    the result), package version + :data:`BUILD_FORMAT`, and the source tree's git state (informative)."""
    from mfirrn import __version__

    labels_dir = Path(labels_dir)
    opts = {k: v for k, v in flatten(options).items() if k != "workers"}
    return {"labels_dir": str(labels_dir.resolve()),
            "labels": {name: file_sha256(labels_dir / name) for name in ("labels.npz", "labels.json")},
            "options": json.loads(json.dumps(opts, default=str)),
            "code": {"package": __version__, "format": BUILD_FORMAT},
            "code_version": code_version()}


def write_build_state(out: PathLike, fingerprint: dict) -> None:
    from mfirrn.io.fileio import atomic_write

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
        if not same_setting(old_opts.get(key), new_opts.get(key)):
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
