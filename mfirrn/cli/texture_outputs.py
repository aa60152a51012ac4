"""Multi-file outputs of ``mfirrn reconstruct``: textured meshes in the BFM UV layout (:mod:`mfirrn.render.uvtex`).

Per face ``i`` of ``<name>``: ``uv_tex`` writes ``<name>_face<i>_uv.obj`` (mesh with ``vt`` coordinates, y up, as
the ``obj`` output), its material ``<name>_face<i>_uv.mtl`` and texture ``<name>_face<i>_uv.png`` (these two names
with each space and ``#`` of ``<name>`` written ``_``: many OBJ readers end the ``mtllib`` and ``map_Kd`` lines
there); ``uv_glb`` writes ``<name>_face<i>_uv.glb`` (binary glTF, texture embedded, the head at life size in
metres: :func:`mfirrn.render.uvtex.life_size`; needs trimesh and pillow).
"""

from __future__ import annotations

import re

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
        ref = re.sub(r"[\s#]", "_", base)  # the names the OBJ and MTL refer to
        v, t = to_viewer_frame(f.vertices, f.triangles, image.shape[0])
        obj, mtl = textured_obj(v, t, tex.uv, f"{ref}.mtl", f"{ref}.png")
        ok, png = cv2.imencode(".png", tex.texture)
        if not ok:
            raise RuntimeError("could not encode the UV texture as PNG")
        out += [(f"{ref}.png", png.tobytes()), (f"{base}.obj", obj), (f"{ref}.mtl", mtl)]
    return out


def uv_glb_files(image: np.ndarray, faces, stem: str) -> list[tuple[str, bytes]]:
    from mfirrn.render.meshio import to_viewer_frame
    from mfirrn.render.uvtex import life_size, textured_glb

    out = []
    for i, (f, tex) in enumerate(zip(faces, _textures(image, faces))):
        v, t = to_viewer_frame(f.vertices, f.triangles, image.shape[0])
        glb = textured_glb(life_size(v, np.asarray(f.landmarks, np.float64)), t, tex.uv, tex.texture)
        out.append((f"{stem}_face{i}_uv.glb", glb))
    return out


# name -> function (BGR uint8 image, faces, stem) -> [(file name, bytes), ...]
FILE_OUTPUTS = {"uv_tex": uv_tex_files, "uv_glb": uv_glb_files}
