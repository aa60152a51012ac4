"""Writing results without leaving half-written files behind."""

from __future__ import annotations

import fnmatch
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Union

__all__ = ["atomic_write", "StagedOutputs", "remove_stale_temporaries", "strict_json"]


def _default_mode() -> int:
    """File mode a plain ``open(..., "w")`` would give (``mkstemp`` makes 0600 files)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Union[str, Path], data: Union[bytes, str]) -> Path:
    """Write ``data`` to a temp file beside ``path`` and rename it into place (readers never see a partial file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _finite_or_none(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite_or_none(v) for v in x]
    if hasattr(x, "item") and hasattr(x, "dtype") and getattr(x, "ndim", 1) == 0:  # numpy scalar
        return _finite_or_none(x.item())
    return x


def strict_json(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` that writes valid (strict) JSON: NaN and infinities become ``null`` (e.g. the mean of a
    yaw bin with no images), never the bare ``NaN`` other parsers reject.

    >>> strict_json({"bins": [2.5, float("nan")]})
    '{"bins": [2.5, null]}'
    """
    return json.dumps(_finite_or_none(obj), allow_nan=False, **kwargs)


def remove_stale_temporaries(folder: Union[str, Path], patterns: tuple[str, ...] = (".*.part",)) -> list[Path]:
    """Delete temp files left in ``folder`` by a writer that was killed before its rename (``SIGKILL``, power
    loss): :func:`atomic_write`'s ``.<name>.*.part`` by default. Call it when a job (re)starts in a folder it
    owns; returns what was removed.

    >>> import tempfile; d = Path(tempfile.mkdtemp()); _ = (d / ".a.npz.x1.part").write_bytes(b"half")
    >>> [p.name for p in remove_stale_temporaries(d)], sorted(p.name for p in d.iterdir())
    (['.a.npz.x1.part'], [])
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if entry.is_file() and any(fnmatch.fnmatchcase(entry.name, pat) for pat in patterns):
            try:
                entry.unlink()
                removed.append(entry)
            except FileNotFoundError:
                pass
    return removed


class StagedOutputs:
    """Collect several output files and publish them together: all or none.

    >>> with StagedOutputs() as out:          # doctest: +SKIP
    ...     out.add("a.json", b"{}")
    ...     out.add("a.png", png_bytes)        # an exception here writes neither file
    """

    def __init__(self) -> None:
        self._items: list[tuple[Path, bytes]] = []
        self.written: list[Path] = []

    def add(self, path: Union[str, Path], data: Union[bytes, str]) -> None:
        self._items.append((Path(path), data.encode() if isinstance(data, str) else data))

    def __enter__(self) -> "StagedOutputs":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            return
        staged: list[tuple[str, Path]] = []
        try:
            for path, data in self._items:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.chmod(tmp, _default_mode())
                staged.append((tmp, path))
            for tmp, path in staged:
                os.replace(tmp, path)
                self.written.append(path)
        finally:
            for tmp, _ in staged:
                if os.path.exists(tmp):
                    os.unlink(tmp)
