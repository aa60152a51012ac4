"""MFIRRN workbench: 3D dense face alignment and reconstruction from a single image.

Quick use::

    import mfirrn
    faces = mfirrn.reconstruct("photo.jpg")       # pretrained 3DDFA_V2 mb05, FaceBoxes detector
    faces[0].landmarks                             # (68, 3) image pixels
    faces[0].pose["yaw"]                           # degrees

The subpackages follow the data (``docs/development.md`` has the map): :mod:`mfirrn.io` (assets, datasets,
files, input checks) -> :mod:`mfirrn.geometry` (params, 3DMM, frames, crops, pose) -> :mod:`mfirrn.detect`,
:mod:`mfirrn.models` -> :mod:`mfirrn.inference` (the :class:`Reconstructor`) -> :mod:`mfirrn.render`,
:mod:`mfirrn.vis`, :mod:`mfirrn.video`; :mod:`mfirrn.data` -> :mod:`mfirrn.train` -> :mod:`mfirrn.evaluation`;
:mod:`mfirrn.cli` on top.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import TYPE_CHECKING

__version__ = "0.1.0"

from mfirrn.io.threads import passive_openmp  # noqa: E402

passive_openmp()  # before anything loads OpenMP (PyTorch, the renderer): no spinning thread pools

__all__ = ["__version__", "MorphableModel", "Face", "Reconstructor", "read_image", "reconstruct"]

#: The public names of the top level and the modules that define them. They are imported on first use
#: (``mfirrn.Reconstructor``, ``from mfirrn import Face``), so ``import mfirrn`` and the command line's
#: ``mfirrn --help`` do not pay for PyTorch and OpenCV.
PUBLIC: dict[str, str] = {
    "MorphableModel": "mfirrn.geometry.bfm",
    "Face": "mfirrn.inference.pipeline",
    "Reconstructor": "mfirrn.inference.pipeline",
    "read_image": "mfirrn.inference.pipeline",
    "reconstruct": "mfirrn.inference.pipeline",
}

if TYPE_CHECKING:  # what type checkers and documentation tools read
    from mfirrn.geometry.bfm import MorphableModel
    from mfirrn.inference.pipeline import Face, Reconstructor, read_image, reconstruct

#: Module paths of the flat layout before 0.2 that the docs named, and the modules that now hold their contents.
#: Importing one still works in 0.2 with a ``DeprecationWarning``; the old paths go in 0.3.
MOVED_MODULES: dict[str, tuple[str, ...]] = {
    "mfirrn.assets": ("mfirrn.io.assets",),
    "mfirrn.checks": ("mfirrn.io.checks",),
    "mfirrn.datafetch": ("mfirrn.io.fetch",),
    "mfirrn.fileio": ("mfirrn.io.fileio",),
    "mfirrn.resume": ("mfirrn.io.resume", "mfirrn.data.labels.build_state", "mfirrn.train.resume"),
    "mfirrn.validate": ("mfirrn.io.options", "mfirrn.cli.args"),
    "mfirrn.bfm": ("mfirrn.geometry.bfm",),
    "mfirrn.crop": ("mfirrn.geometry.crop",),
    "mfirrn.frames": ("mfirrn.geometry.frames",),
    "mfirrn.params": ("mfirrn.geometry.params",),
    "mfirrn.pose": ("mfirrn.geometry.pose", "mfirrn.evaluation.pose"),
    "mfirrn.faceboxes": ("mfirrn.detect.faceboxes",),
    "mfirrn.pipeline": ("mfirrn.inference.pipeline",),
    "mfirrn.export": ("mfirrn.inference.onnx",),
    "mfirrn.tracking": ("mfirrn.video.tracking",),
    "mfirrn.smoothing": ("mfirrn.video.smoothing",),
    "mfirrn.synthetic_video": ("mfirrn.video.synthetic",),
    "mfirrn.meshio": ("mfirrn.render.meshio",),
    "mfirrn.uvtex": ("mfirrn.render.uvtex",),
    "mfirrn.vis3d": ("mfirrn.vis.mesh3d",),
    "mfirrn.vis_pose": ("mfirrn.vis.pose",),
    "mfirrn.fitting": ("mfirrn.data.labels.fitting",),
    "mfirrn.labelling": ("mfirrn.data.labels.pool",),
    "mfirrn.profiling": ("mfirrn.data.labels.profiling",),
    "mfirrn.databuild": ("mfirrn.data.labels.build",),
    "mfirrn.losses": ("mfirrn.train.losses",),
    "mfirrn.benchmark": ("mfirrn.evaluation.benchmark",),
    "mfirrn.dense_eval": ("mfirrn.evaluation.dense",),
    "mfirrn.metrics": ("mfirrn.evaluation.metrics",),
    "mfirrn.report": ("mfirrn.evaluation.report",),
    "mfirrn.commands": ("mfirrn.cli",),
    "mfirrn.commands.outputs": ("mfirrn.cli.outputs",),
}


def _moved_message(old: str) -> str:
    return f"{old} is now {' and '.join(MOVED_MODULES[old])}; import it from there (the old path goes in mfirrn 0.3)"


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old path of :data:`MOVED_MODULES` as a module holding the public names of its new modules."""

    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED_MODULES else None

    def create_module(self, spec):
        return None

    def exec_module(self, module: ModuleType) -> None:
        targets = MOVED_MODULES[module.__name__]
        if any(old.startswith(module.__name__ + ".") for old in MOVED_MODULES):
            module.__path__ = []  # a former package: the parent of moved modules
        # stacklevel 2: the user's import statement (warnings skips importlib's own frames)
        warnings.warn(_moved_message(module.__name__), DeprecationWarning, stacklevel=2)
        for name in reversed(targets):
            new = importlib.import_module(name)
            module.__dict__.update({k: v for k, v in vars(new).items() if not k.startswith("__")})
        module.__all__ = [n for name in targets for n in getattr(sys.modules[name], "__all__", ())]


sys.meta_path.append(_MovedModules())


def __getattr__(name: str):
    """The public names of :data:`PUBLIC`, imported on first use; ``mfirrn.pipeline`` and the other old paths
    as attributes (deprecated, see :data:`MOVED_MODULES`)."""
    if name in PUBLIC:
        value = getattr(importlib.import_module(PUBLIC[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    old = f"mfirrn.{name}"
    if old in MOVED_MODULES:
        if old not in sys.modules:  # warn here, at the user's line, rather than inside importlib.import_module
            warnings.warn(_moved_message(old), DeprecationWarning, stacklevel=2)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return importlib.import_module(old)
        return sys.modules[old]
    raise AttributeError(f"module 'mfirrn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(PUBLIC))
