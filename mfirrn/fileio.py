"""Writing results without leaving half-written files behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union

__all__ = ["atomic_write", "StagedOutputs"]


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
