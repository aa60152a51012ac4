"""Reading pickled files (checkpoints, 3DDFA param pickles) without running code from them.

A pickle names the functions it calls to rebuild its objects; a hostile one names ``os.system``. Both readers
here accept a short list of names and refuse any other in one line that says which name the file wanted:

- :func:`load_checkpoint_file`: ``torch.load(weights_only=True)`` allowing what the workbench writes into a
  checkpoint besides tensors: numpy arrays and scalars (param stats, numpy RNG state) and paths;
  ``trust=True`` is the full unpickler, for old checkpoints from a source the user trusts;
- :func:`load_pickle`: numpy arrays and scalars and plain containers only (3DDFA's ``param_all_norm.pkl``,
  ``param_mean_std_62d_120x120.pkl``, ``tri.pkl``).

>>> import io, os, pickle
>>> class Hostile:
...     def __reduce__(self):
...         return (os.system, ("echo hostile",))
>>> try:
...     load_pickle(io.BytesIO(pickle.dumps(Hostile())), "stats.pkl")
... except UnsafeFileError as exc:
...     exc.wants
'posix.system'
"""

from __future__ import annotations

import importlib
import pickle
import re
import warnings
from pathlib import Path
from typing import IO, Any, Callable, Union

__all__ = ["UnsafeFileError", "TRUST_OPT_IN", "load_checkpoint_file", "load_pickle", "checkpoint_globals"]

PathLike = Union[str, Path]

#: The opt-in a refused checkpoint names: the CLI option and the Python keyword.
TRUST_OPT_IN = "--trust-checkpoint (Python: trust_checkpoint=True)"


class UnsafeFileError(ValueError):
    """A pickled file needs a name outside the allowlist to load (loading it could run code from it).

    ``path``: the file; ``wants``: the name it asked for (``posix.system``)."""

    def __init__(self, message: str, path: str, wants: str) -> None:
        super().__init__(message)
        self.path, self.wants = path, wants


def _numpy_globals() -> dict[str, Callable]:
    """What a pickled numpy array or scalar calls, under its numpy 1 and numpy 2 module names."""
    import numpy as np

    core = "numpy._core" if hasattr(np, "_core") else "numpy.core"
    multiarray = importlib.import_module(f"{core}.multiarray")
    numeric = importlib.import_module(f"{core}.numeric")
    out: dict[str, Callable] = {"numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype}
    for package in ("numpy.core", "numpy._core"):
        out[f"{package}.multiarray._reconstruct"] = multiarray._reconstruct
        out[f"{package}.multiarray.scalar"] = multiarray.scalar
        out[f"{package}.numeric._frombuffer"] = numeric._frombuffer  # arrays pickled with protocol 5
    # a dtype unpickles as an instance of its own class (numpy.dtypes.Float32DType), which torch's reader
    # must know to restore its state
    for code in np.typecodes["All"]:
        cls = type(np.dtype(code))
        out[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return out


def _path_globals() -> dict[str, Callable]:
    """Path classes (a checkpoint's config may hold one), under their names before and after Python 3.13."""
    import pathlib

    out: dict[str, Callable] = {}
    for name in ("PurePath", "PurePosixPath", "PureWindowsPath", "Path", "PosixPath", "WindowsPath"):
        for module in ("pathlib", "pathlib._local"):
            out[f"{module}.{name}"] = getattr(pathlib, name)
    return out


def checkpoint_globals() -> dict[str, Callable]:
    """Names a workbench checkpoint may use beyond what ``torch.load(weights_only=True)`` allows by itself:
    numpy arrays, dtypes and scalars, and paths (full dotted name -> object)."""
    return {**_numpy_globals(), **_path_globals()}


_WANTED = (
    re.compile(r"GLOBAL (\S+) (?:was not an allowed global|whose module)"),
    re.compile(r"unrecognized function (.+?)(?: which belongs to .*)?$", re.MULTILINE),
    re.compile(r"(?:Can only create new object|Can only build)\b.*?but got (<[^>]+>)"),
)


def _wanted(message: str) -> str | None:
    """The name a refusal of torch's weights-only unpickler says the file wanted, or None for other errors."""
    for pattern in _WANTED:
        m = pattern.search(message)
        if m:
            name = m.group(1).strip()
            return name if "." in name or name.startswith("<") else f"builtins.{name}"  # torch drops "builtins."
    return None


def _pickle_globals(data: bytes) -> list[str]:
    """The ``module.name`` globals a pickle stream asks for, in order, read without running it."""
    import pickletools

    found: list[str] = []
    pushed: list = []  # the values of the opcodes read so far (strings matter), for STACK_GLOBAL
    memo: dict = {}
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(pushed) >= 2:
                found.append(f"{pushed[-2]}.{pushed[-1]}")
            if op.name == "MEMOIZE":
                memo[len(memo)] = pushed[-1] if pushed else None
            elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = pushed[-1] if pushed else None
            elif op.name in ("GET", "BINGET", "LONG_BINGET"):
                pushed.append(memo.get(arg))
            elif op.name not in ("FRAME", "PROTO", "MARK"):
                pushed.append(arg)
    except Exception:  # a truncated stream: what was read so far
        pass
    return found


#: Names outside ``torch.*`` that torch's weights-only reader accepts by itself.
_TORCH_ALLOWS = frozenset({"collections.OrderedDict", "collections.Counter", "_codecs.encode", "builtins.set",
                           "builtins.bytearray", "builtins.complex"})


def _first_unsafe_global(path: Path, allowed: dict[str, Callable]) -> str | None:
    """The first global of ``path``'s pickle (a torch zip's ``data.pkl``, else the raw file) that neither
    ``allowed`` nor torch's weights-only reader accepts (for a refusal whose message names none)."""
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                name = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
                data = z.read(name) if name else b""
        else:
            data = path.read_bytes()
    except OSError:
        return None
    for name in _pickle_globals(data):
        if name not in allowed and name not in _TORCH_ALLOWS and not name.startswith("torch."):
            return name
    return None


def load_checkpoint_file(path: PathLike, *, trust: bool = False, map_location: Any = "cpu") -> Any:
    """``torch.load`` a checkpoint without running code from it (unless ``trust``).

    Reads with ``weights_only=True``, allowing :func:`checkpoint_globals` for this one call. A file that needs
    anything else raises :class:`UnsafeFileError` naming what it wanted and the opt-in; ``trust=True`` reads it
    with the full unpickler, which runs whatever code the file holds. Other failures (a truncated file, not a
    PyTorch file) raise what ``torch.load`` raises.
    """
    import torch

    path = Path(path)
    if trust:
        return torch.load(path, map_location=map_location, weights_only=False)
    allowed = checkpoint_globals()
    try:
        with torch.serialization.safe_globals([(obj, name) for name, obj in allowed.items()]), \
                warnings.catch_warnings():
            # a raw pickle of protocol > 2 is refused below or loads; torch's warning about it is noise here
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        wants = _wanted(str(exc)) or _first_unsafe_global(path, allowed)
        if wants is None:
            raise
        raise UnsafeFileError(
            f"checkpoint {path} needs {wants} to load, which could run code from the file; use a checkpoint "
            f"written by `mfirrn train`, or pass {TRUST_OPT_IN} only if you trust who made the file",
            str(path), wants) from None


def _plain_globals() -> dict[str, Callable]:
    """Plain containers a data pickle may name (tuples, lists, dicts and strings need no name)."""
    import builtins
    import codecs
    import collections

    out: dict[str, Callable] = {f"builtins.{n}": getattr(builtins, n)
                                for n in ("set", "frozenset", "complex", "bytearray")}
    out.update({"collections.OrderedDict": collections.OrderedDict, "_codecs.encode": codecs.encode})
    return out


class _Unpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy arrays/scalars and plain containers."""

    def __init__(self, file: IO[bytes], source: str) -> None:
        super().__init__(file)
        self.source = source
        self.allowed = {**_numpy_globals(), **_plain_globals()}

    def find_class(self, module: str, name: str) -> Any:
        module = "builtins" if module == "__builtin__" else module  # Python 2 pickles
        full = f"{module}.{name}"
        if full in self.allowed:
            return self.allowed[full]
        raise UnsafeFileError(
            f"{self.source} needs {full} to load, which could run code from the file; a data pickle may hold only "
            f"numpy arrays and plain containers: restore the file from a source you trust",
            self.source, full)


def load_pickle(file: Union[PathLike, IO[bytes]], source: str | None = None) -> Any:
    """Unpickle numpy arrays, numpy scalars and plain containers (dict, list, tuple, str, numbers) only.

    ``file``: a path or a binary file object; ``source``: how the message names it (default: the path).
    Any other name the pickle asks for raises :class:`UnsafeFileError` before anything of it runs; other
    failures raise what :mod:`pickle` raises (``UnpicklingError``, ``EOFError``, ...).
    """
    if isinstance(file, (str, Path)):
        with open(file, "rb") as f:
            return _Unpickler(f, source or str(file)).load()
    return _Unpickler(file, source or getattr(file, "name", "pickle")).load()
