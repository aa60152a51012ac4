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


# output -> function (BGR uint8 image, faces) -> uint8 image written as <name>_<output>.png
RENDER_OUTPUTS = {
    "depth": _lazy("mfirrn.vis", "render_depth"),
    "pncc": _lazy("mfirrn.vis", "render_pncc"),
    "render": _lazy("mfirrn.vis", "render_shaded"),
    "texture": _lazy("mfirrn.vis", "render_textured"),
    "pose": _enlarged(_lazy("mfirrn.vis.pose", "draw_pose")),  # a drawing, not a render: enlarged when small
}


def _uv_assets(mesh: str) -> tuple[str, ...]:
    return ("bfm-uv", "bfm-noneck-indices")  # mfirrn.render.uvtex: the UV layout is the no-neck mesh's


# output -> the assets it reads for the mesh "full" or "noneck" (mfirrn.vis.overlays._pncc_code, mfirrn.render.uvtex)
ASSETS: dict[str, Callable[[str], tuple[str, ...]]] = {
    "pncc": lambda mesh: ("pncc-code",) if mesh == "full" else ("ncc-code",),
    "uv_tex": _uv_assets,
    "uv_glb": _uv_assets,
}
