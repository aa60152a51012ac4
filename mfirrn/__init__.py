"""MFIRRN workbench: 3D dense face alignment and reconstruction from a single image.

Quick use::

    import mfirrn
    faces = mfirrn.reconstruct("photo.jpg")       # pretrained 3DDFA_V2 mb05, dlib HOG detector
    faces[0].landmarks                             # (68, 3) image pixels
    faces[0].pose["yaw"]                           # degrees

Sub-modules: :mod:`mfirrn.assets` (downloads), :mod:`mfirrn.params` (62-d layout, stats, pose),
:mod:`mfirrn.bfm` (3DMM), :mod:`mfirrn.frames` (pixel conventions), :mod:`mfirrn.crop`,
:mod:`mfirrn.models`, :mod:`mfirrn.pipeline`, :mod:`mfirrn.metrics`, :mod:`mfirrn.benchmark`,
:mod:`mfirrn.vis`, :mod:`mfirrn.meshio`.
"""

__version__ = "0.1.0"

from mfirrn.bfm import MorphableModel  # noqa: E402
from mfirrn.pipeline import Face, Reconstructor, read_image, reconstruct  # noqa: E402

__all__ = ["__version__", "MorphableModel", "Face", "Reconstructor", "read_image", "reconstruct"]
