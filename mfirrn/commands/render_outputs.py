"""Image outputs of ``mfirrn reconstruct`` made with the compiled renderer (:mod:`mfirrn.render`)."""

from __future__ import annotations

from mfirrn import vis

# name -> function (BGR uint8 image, faces) -> uint8 image written as <stem>_<name>.png
RENDER_OUTPUTS = {
    "depth": vis.render_depth,
    "pncc": vis.render_pncc,
    "render": vis.render_shaded,
    "texture": vis.render_textured,
}
