"""Image outputs of ``mfirrn reconstruct`` made with the compiled renderer (:mod:`mfirrn.render`)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from mfirrn.cli.texture_outputs import FILE_OUTPUTS  # noqa: F401  (uv_tex, uv_glb: several files per face)

# listing the outputs (``--help``) must not load the renderer or PyTorch: look for the compiled module's file
if not any((Path(__file__).resolve().parents[1] / "render").glob("_raster.*")):
    raise ImportError("the compiled renderer mfirrn.render._raster is not built (pip install -e . builds it)")


def _lazy(module: str, name: str) -> Callable[..., Any]:
    """``module.name``, imported at its first call."""
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


def _enlarged(draw: Callable[..., Any]) -> Callable[..., Any]:
    """``draw(image, faces)`` on the image enlarged for viewing when it is small (:func:`mfirrn.vis.enlarge_for_viewing`)."""
    def call(image: Any, faces: Any) -> Any:
        from mfirrn.vis.overlays import enlarge_for_viewing

        return draw(*enlarge_for_viewing(image, faces))

    call.__name__ = call.__qualname__ = draw.__name__
    return call


# output -> (file extension, function (BGR uint8 image, faces) -> uint8 image), written as <name>_<output><ext>.
# What is drawn over the photo is a photo: JPEG, as the landmarks and dense drawings (a PNG of a 36-megapixel
# photo is tens of megabytes); the renders on black (depth, PNCC code, texture) stay lossless PNG.
RENDER_OUTPUTS: dict[str, tuple[str, Callable[..., Any]]] = {
    "depth": (".png", _lazy("mfirrn.vis", "render_depth")),
    "pncc": (".png", _lazy("mfirrn.vis", "render_pncc")),
    "render": (".jpg", _lazy("mfirrn.vis", "render_shaded")),
    "texture": (".png", _lazy("mfirrn.vis", "render_textured")),
    "pose": (".jpg", _enlarged(_lazy("mfirrn.vis.pose", "draw_pose"))),  # a drawing, not a render: enlarged when small
}


def _prepare_pncc(mesh: str) -> None:
    from mfirrn.io.assets import fetch

    fetch("pncc-code" if mesh == "full" else "ncc-code")  # mfirrn.vis.overlays._pncc_code


def _prepare_uv(mesh: str) -> None:
    from mfirrn.io.assets import fetch

    fetch("bfm-uv")  # mfirrn.render.uvtex: the UV layout is the no-neck mesh's, whatever the mesh
    fetch("bfm-noneck-indices")


def _prepare_glb(mesh: str) -> None:
    from mfirrn.render.uvtex import glb_modules

    _prepare_uv(mesh)
    glb_modules()


# output -> what it fetches and checks before a run (mfirrn.cli.outputs.Output.prepare)
PREPARE: dict[str, Callable[[str], None]] = {"pncc": _prepare_pncc, "uv_tex": _prepare_uv, "uv_glb": _prepare_glb}
