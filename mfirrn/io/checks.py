"""Checks at the points where data enters the library: array shapes, and dataset files.

Every reader here turns a missing, empty, truncated, wrong-type, wrong-shape or non-finite file into one
exception whose message names the file (and the rows, for bad values) and says what to do. Callers pass
the exception class their command reports (``error=``), so each command keeps its own error type.

>>> import numpy as np
>>> check_finite_rows(np.array([[0.0, 1.0], [np.nan, 2.0]]), "gt.npy")
Traceback (most recent call last):
...
mfirrn.io.checks.DataFileError: gt.npy: row 1 holds NaN or infinite values; fix or remove that row
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, Type, Union

import numpy as np

if TYPE_CHECKING:  # only in a type hint: the light modules that check shapes import without PyTorch
    import torch

__all__ = ["check_shape", "DataFileError", "describe_rows", "check_finite_rows", "check_array", "load_npy",
           "load_npz", "load_json"]

Dim = Union[int, str, None]
PathLike = Union[str, Path]


class DataFileError(ValueError):
    """A dataset file is missing or malformed; the message names the file and the fix."""


def check_shape(x: Union[np.ndarray, torch.Tensor], shape: Sequence[Dim], name: str = "input") -> None:
    """Raise ``ValueError`` unless ``x.shape`` matches ``shape``.

    ``shape`` entries: an int (exact size), ``None`` or a letter (any size), and at most one leading
    ``"*"`` (any number of leading dimensions, including none).

    >>> check_shape(np.zeros((2, 62)), ("*", 62))
    >>> check_shape(np.zeros((2, 61)), ("*", 62), "params")
    Traceback (most recent call last):
    ...
    ValueError: params: expected shape (*, 62), got (2, 61)
    """
    if not _shape_ok(tuple(x.shape), shape):
        raise ValueError(f"{name}: expected shape ({_shape_text(shape)}), got {tuple(x.shape)}")


def _shape_ok(actual: tuple, shape: Sequence[Any]) -> bool:
    """Like :func:`check_shape`; an entry may also be a tuple of allowed sizes."""
    spec = list(shape)
    star = bool(spec) and spec[0] == "*"
    fixed = spec[1:] if star else spec
    if not (len(actual) >= len(fixed) if star else len(actual) == len(fixed)):
        return False
    tail = actual[len(actual) - len(fixed):] if fixed else ()
    for d, a in zip(fixed, tail):
        if isinstance(d, int) and d != a:
            return False
        if isinstance(d, tuple) and a not in d:
            return False
    return True


def _shape_text(shape: Sequence[Any]) -> str:
    def one(d: Any) -> str:
        if d is None:
            return "?"
        if isinstance(d, tuple):
            return " or ".join(str(v) for v in d)
        return str(d)

    return ", ".join(one(d) for d in shape)


def describe_rows(rows: Sequence[int], labels: Optional[Sequence[str]] = None, show: int = 5) -> str:
    """``"row 3"``, ``"rows 3, 7 (img3.jpg, img7.jpg)"``, ``"rows 1, 2, 3, 4, 5 and 12 more"``.

    >>> describe_rows([3, 7], [f"img{i}.jpg" for i in range(8)])
    'rows 3, 7 (img3.jpg, img7.jpg)'
    """
    rows = [int(r) for r in rows]
    head = ", ".join(str(r) for r in rows[:show])
    text = f"{'row' if len(rows) == 1 else 'rows'} {head}"
    if labels is not None:
        text += " (" + ", ".join(str(labels[r]) for r in rows[:show] if r < len(labels)) + ")"
    if len(rows) > show:
        text += f" and {len(rows) - show} more"
    return text


def check_finite_rows(arr: np.ndarray, name: str, *, labels: Optional[Sequence[str]] = None,
                      error: Type[Exception] = DataFileError) -> None:
    """Raise ``error`` naming the rows (first axis) of ``arr`` that hold NaN or infinite values."""
    a = np.asarray(arr)
    if not np.issubdtype(a.dtype, np.floating) or a.size == 0:
        return
    bad = np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(axis=1)) if a.ndim else np.array([], int)
    if a.ndim == 0 and not np.isfinite(a):
        raise error(f"{name} holds a NaN or infinite value; fix the file")
    if len(bad):
        raise error(f"{name}: {describe_rows(bad, labels)} {'holds' if len(bad) == 1 else 'hold'} NaN or infinite "
                    f"values; fix or remove {'that row' if len(bad) == 1 else 'those rows'}")


def check_array(arr: Any, shape: Sequence[Any], name: str, *, finite: bool = False, numeric: bool = True,
                labels: Optional[Sequence[str]] = None, error: Type[Exception] = DataFileError) -> np.ndarray:
    """``arr`` as an array, checked for shape (entries as :func:`check_shape`, or tuples of allowed sizes),
    a numeric dtype and, with ``finite``, rows free of NaN/inf. ``name`` (a file, or ``file: key``) leads
    every message."""
    a = np.asarray(arr)
    if numeric and not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise error(f"{name} holds {a.dtype} values, expected numbers; regenerate the file")
    if not _shape_ok(a.shape, shape):
        raise error(f"{name} has shape {a.shape}, expected ({_shape_text(shape)}); regenerate the file or point to "
                    f"the right one")
    if finite:
        check_finite_rows(a, name, labels=labels, error=error)
    return a


def _require_file(path: Path, what: str, error: Type[Exception]) -> None:
    if path.is_dir():
        raise error(f"{path} is a folder, expected {what}; point to the file")
    if not path.is_file():
        raise error(f"{path} is missing; {what}")
    if path.stat().st_size == 0:
        raise error(f"{path} is empty (0 bytes); regenerate or restore it")


def load_npy(path: PathLike, shape: Optional[Sequence[Any]] = None, *, what: str = "restore the file",
             finite: bool = False, labels: Optional[Sequence[str]] = None,
             error: Type[Exception] = DataFileError) -> np.ndarray:
    """Read a ``.npy`` array (no pickles) and check it (:func:`check_array`).

    ``what``: the fix when the file is missing (e.g. ``"run \\`mfirrn data fit-landmarks\\` first"``).
    """
    path = Path(path)
    _require_file(path, what, error)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise error(f"{path} is not a readable .npy array (truncated or corrupt: {_short(exc)}); "
                    f"regenerate or restore it") from None
    return check_array(arr, shape if shape is not None else ("*",), str(path), finite=finite, labels=labels,
                       error=error)


def load_npz(path: PathLike, keys: Sequence[str], *, what: str = "restore the file",
             error: Type[Exception] = DataFileError) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` archive into memory; ``keys`` must all be present."""
    path = Path(path)
    _require_file(path, what, error)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise error(f"{path} is not a readable .npz archive (truncated or corrupt: {_short(exc)}); "
                    f"regenerate or restore it") from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise error(f"{path} lacks the arrays {', '.join(missing)} (it has {', '.join(arrays) or 'none'}); "
                    f"regenerate it with the current version")
    return arrays


def load_json(path: PathLike, keys: Sequence[str] = (), *, what: str = "restore the file",
              error: Type[Exception] = DataFileError) -> dict:
    """Read a JSON object (strict: no NaN); ``keys`` must all be present."""
    path = Path(path)
    _require_file(path, what, error)

    def no_constants(token: str) -> Any:
        raise ValueError(f"{token} is not valid JSON")

    try:
        d = json.loads(path.read_text(encoding="utf-8"), parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise error(f"{path} is not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg}); "
                    f"fix or regenerate it") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"{path} is not valid JSON ({_short(exc)}); fix or regenerate it") from None
    if not isinstance(d, dict):
        raise error(f"{path} must hold a JSON object, not a {type(d).__name__}; fix or regenerate it")
    missing = [k for k in keys if k not in d]
    if missing:
        raise error(f"{path} lacks the keys {', '.join(missing)}; regenerate it with the current version")
    return d


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 100 else text[:97] + "..."
