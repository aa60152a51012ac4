"""Rendering: the compiled z-buffer rasterizer and its passes (depth, PNCC, shading, visibility), UV textures and
mesh files."""

from mfirrn.render.raster import (
    COORD_LIMIT,
    Mesh,
    depth_map,
    make_pncc_code,
    pncc,
    rasterize,
    rasterize_ids,
    rasterize_reference,
    render_batch,
    render_uv_texture,
    shade,
    vertex_normals,
    visibility,
)

__all__ = ["Mesh", "rasterize", "rasterize_ids", "rasterize_reference", "depth_map", "make_pncc_code", "pncc",
           "vertex_normals", "shade", "render_uv_texture", "visibility", "render_batch", "COORD_LIMIT"]
