"""Pictures of results: 2D overlays on photos, the head-pose box, interactive 3D views (plotly)."""

from mfirrn.vis.overlays import (
    LANDMARK_CONTOURS,
    draw_dense,
    draw_landmarks,
    enlarge_for_viewing,
    merge_face_meshes,
    plot_mesh_points,
    render_depth,
    render_pncc,
    render_shaded,
    render_textured,
)

__all__ = ["draw_landmarks", "draw_dense", "plot_mesh_points", "merge_face_meshes", "render_depth", "render_pncc",
           "render_shaded", "render_textured", "LANDMARK_CONTOURS", "enlarge_for_viewing"]
