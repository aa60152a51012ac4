"""Checks of option and config values (command-line arguments, training config), before any work starts.

Each check returns the cleaned value or raises :class:`InputError` with one line that names the option
(``--limit``, ``out_dir``, ...) and says what to pass instead. Commands call these first, so a bad
argument costs nothing and leaves nothing on disk.

>>> positive_int(4, "--batch-size")
4
>>> positive_int(0, "--batch-size")
Traceback (most recent call last):
...
mfirrn.io.options.InputError: --batch-size must be a whole number >= 1, got 0
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

__all__ = ["InputError", "positive_int", "nonnegative_int", "number_in", "check_device", "writable_dir",
           "writable_file"]

PathLike = Union[str, Path]


class InputError(ValueError):
    """A command-line argument or config value is wrong; the message names the option and the fix."""


def _int(value: Any, option: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(f"{option} must be a whole number >= {low}, got {value!r}")
    try:
        f = float(value)
    except ValueError:
        raise InputError(f"{option} must be a whole number >= {low}, got {value!r}") from None
    if not math.isfinite(f) or f != int(f) or f < low:
        raise InputError(f"{option} must be a whole number >= {low}, got {value!r}")
    return int(f)


def positive_int(value: Any, option: str, *, allow_none: bool = False) -> Optional[int]:
    """``value`` as an int >= 1 (``None`` passes when ``allow_none``)."""
    if value is None and allow_none:
        return None
    return _int(value, option, 1)


def nonnegative_int(value: Any, option: str, *, allow_none: bool = False) -> Optional[int]:
    """``value`` as an int >= 0 (``None`` passes when ``allow_none``)."""
    if value is None and allow_none:
        return None
    return _int(value, option, 0)


def number_in(value: Any, option: str, low: float = -math.inf, high: float = math.inf, *,
              low_open: bool = False, high_open: bool = False, allow_none: bool = False) -> Optional[float]:
    """``value`` as a finite float in the interval (bounds closed unless ``*_open``).

    >>> number_in(1.5, "data.val_fraction", 0, 1, high_open=True)
    Traceback (most recent call last):
    ...
    mfirrn.io.options.InputError: data.val_fraction must be a number in [0, 1), got 1.5
    """
    if value is None and allow_none:
        return None
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    if math.isinf(low) and math.isinf(high):
        want = "a finite number"
    elif math.isinf(high):
        want = f"a number {'>' if low_open else '>='} {low:g}"
    elif math.isinf(low):
        want = f"a number {'<' if high_open else '<='} {high:g}"
    else:
        want = f"a number in {lo}{low:g}, {high:g}{hi}"
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{option} must be {want}, got {value!r}") from None
    if (isinstance(value, bool) or not math.isfinite(f) or f < low or f > high or (low_open and f == low)
            or (high_open and f == high)):
        raise InputError(f"{option} must be {want}, got {value!r}")
    return f


def detector_size(value: Any, option: str, *, allow_none: bool = False) -> Optional[tuple[int, int]]:
    """``"HEIGHTxWIDTH"`` (each at least 32 pixels) or ``"full"`` as a detector's largest input (height, width);
    ``"full"`` is ``(0, 0)``, no downscaling.

    >>> detector_size("1080x1620", "--detector-size"), detector_size("full", "--detector-size")
    ((1080, 1620), (0, 0))
    >>> detector_size("1080", "--detector-size")
    Traceback (most recent call last):
    ...
    mfirrn.io.options.InputError: --detector-size must be HEIGHTxWIDTH in pixels, each at least 32 (e.g. 1080x1620), or full; got '1080'
    """
    if value is None and allow_none:
        return None
    text = str(value).strip().lower()
    if text == "full":
        return (0, 0)
    parts = text.split("x")
    if len(parts) == 2 and all(p.strip().isdigit() and int(p) >= 32 for p in parts):
        return (int(parts[0]), int(parts[1]))
    raise InputError(f"{option} must be HEIGHTxWIDTH in pixels, each at least 32 (e.g. 1080x1620), or full; "
                     f"got {value!r}")


def check_device(name: Any, option: str = "--device", *, available: bool = True) -> str:
    """A torch device string that exists here: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` (``auto`` passes).
    ``available=False`` checks the spelling only (a config may name a GPU the current machine lacks).

    >>> check_device("cpu")
    'cpu'
    >>> check_device("gpu0")
    Traceback (most recent call last):
    ...
    mfirrn.io.options.InputError: --device 'gpu0' is not a device name; use cpu, cuda or cuda:N
    """
    import torch

    if name == "auto":
        return name
    try:
        dev = torch.device(str(name))
    except (RuntimeError, ValueError, TypeError):
        raise InputError(f"{option} {name!r} is not a device name; use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"{option} {name!r} is not supported; use cpu, cuda or cuda:N")
    if not available:
        return str(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"{option} {name!r} requested but CUDA is not available here; use {option} cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"{option} {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                             f"(cuda:0 ... cuda:{torch.cuda.device_count() - 1}); pick one of them")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise InputError(f"{option} {name!r} requested but MPS is not available here; use {option} cpu")
    return str(name)


def writable_dir(path: PathLike, option: str) -> Path:
    """Check that ``path`` is, or can be created as, a folder we can write into — and leave no trace.

    Missing folders are created for the probe and removed again, so a command that fails later on has
    written nothing. Raises :class:`InputError` for a path that is a file, lies under a file, or is not
    writable (read-only file system, ``/proc``, permissions).
    """
    p = Path(path).expanduser()
    if str(path).strip() == "":
        raise InputError(f"{option} is empty; give a folder path")
    try:
        if p.exists() and not p.is_dir():
            raise InputError(f"{option} {p} is a file, not a folder; choose another path")
        missing: list[Path] = []
        q = p
        while not q.exists() and q != q.parent:
            missing.append(q)
            q = q.parent
        if not q.is_dir():
            raise InputError(f"{option} {p} lies under the file {q}, so no folder can be made there; choose another path")
    except OSError as exc:
        raise InputError(f"{option} {p} cannot be checked ({exc.strerror or exc}); choose another path") from None
    created: list[Path] = []
    try:
        for d in reversed(missing):
            d.mkdir()
            created.append(d)
        fd, probe = tempfile.mkstemp(prefix=".mfirrn-write-test-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"cannot write into {option} {p} ({exc.strerror or exc}); choose a writable folder") from None
    finally:
        for d in reversed(created):
            try:
                d.rmdir()
            except OSError:
                pass
    return p


def writable_file(path: PathLike, option: str, *, suffix: Optional[str] = None) -> Path:
    """Check that ``path`` names a file (not a folder) that can be written; see :func:`writable_dir`."""
    p = Path(path).expanduser()
    if str(path).strip() == "":
        raise InputError(f"{option} is empty; give a file path")
    if p.is_dir():
        example = p / f"model{suffix or ''}"
        raise InputError(f"{option} {p} is a folder; give a file path such as {example}")
    if p.exists() and not p.is_file():
        raise InputError(f"{option} {p} exists and is not a regular file; choose another path")
    writable_dir(p.parent, option)
    return p
