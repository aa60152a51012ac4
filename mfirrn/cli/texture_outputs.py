"""Multi-file outputs of ``mfirrn reconstruct``: textured meshes in the BFM UV layout (:mod:`mfirrn.render.uvtex`).

Per face ``i`` of ``<name>``: ``uv_tex`` writes ``<name>_face<i>_uv.png`` (the UV texture),
``<name>_face<i>_uv.obj`` (mesh with ``vt`` coordinates, y up, as the ``obj`` output) and
``<name>_face<i>_uv.mtl``; ``uv_glb`` writes ``<name>_face<i>_uv.glb`` (binary glTF, texture embedded;
needs trimesh and pillow).
"""

from __future__ import annotations

import cv2
import numpy as np


def _textures(image: np.ndarray, faces) -> list:
    from mfirrn.render.uvtex import uv_texture

    return [uv_texture(image, f.vertices, f.triangles) for f in faces]


def uv_tex_files(image: np.ndarray, faces, stem: str) -> list[tuple[str, bytes]]:
    from mfirrn.render.meshio import to_viewer_frame
    from mfirrn.render.uvtex import textured_obj

    out = []
    for i, (f, tex) in enumerate(zip(faces, _textures(image, faces))):
        base = f"{stem}_face{i}_uv"
        v, t = to_viewer_frame(f.vertices, f.triangles, image.shape[0])
        obj, mtl = textured_obj(v, t, tex.uv, f"{base}.mtl", f"{base}.png")
        ok, png = cv2.imencode(".png", tex.texture)
        if not ok:
            raise RuntimeError("could not encode the UV texture as PNG")
        out += [(f"{base}.png", png.tobytes()), (f"{base}.obj", obj), (f"{base}.mtl", mtl)]
    return out


def uv_glb_files(image: np.ndarray, faces, stem: str) -> list[tuple[str, bytes]]:
    from mfirrn.render.meshio import to_viewer_frame
    from mfirrn.render.uvtex import textured_glb

    out = []
    for i, (f, tex) in enumerate(zip(faces, _textures(image, faces))):
        v, t = to_viewer_frame(f.vertices, f.triangles, image.shape[0])
        out.append((f"{stem}_face{i}_uv.glb", textured_glb(v, t, tex.uv, tex.texture)))
    return out


# name -> function (BGR uint8 image, faces, stem) -> [(file name, bytes), ...]
FILE_OUTPUTS = {"uv_tex": uv_tex_files, "uv_glb": uv_glb_files}
