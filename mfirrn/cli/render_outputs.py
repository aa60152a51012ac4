"""Image outputs of ``mfirrn reconstruct`` made with the compiled renderer (:mod:`mfirrn.render`)."""

from __future__ import annotations

from mfirrn import vis
from mfirrn.cli.texture_outputs import FILE_OUTPUTS  # noqa: F401  (uv_tex, uv_glb: several files per face)
from mfirrn.vis.pose import draw_pose

# output -> function (BGR uint8 image, faces) -> uint8 image written as <name>_<output>.png
RENDER_OUTPUTS = {
    "depth": vis.render_depth,
    "pncc": vis.render_pncc,
    "render": vis.render_shaded,
    "texture": vis.render_textured,
    "pose": draw_pose,
}
