"""Multi-file outputs of ``mfirrn reconstruct``: textured meshes in the BFM UV layout (:mod:`mfirrn.render.uvtex`).

Per face ``i`` of ``<name>``: ``uv_tex`` writes ``<name>_face<i>_uv.png`` (the UV texture),
``<name>_face<i>_uv.obj`` (mesh with ``vt`` coordinates, y up, as the ``obj`` output) and
``<name>_face<i>_uv.mtl``; ``uv_glb`` writes ``<name>_face<i>_uv.glb`` (binary glTF, texture embedded, the head at
life size in metres: :func:`life_size`; needs trimesh and pillow).
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


#: The distance between the eye centres (metres) a ``uv_glb`` head is scaled to: an adult's average, about 63 mm.
EYE_DISTANCE_M = 0.063


def life_size(vertices: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Viewer-frame vertices (N, 3) in image pixels -> metres, centred on the mesh's centre (the box's middle) and
    scaled so that the centres of the 68 landmarks' eyes (points 36-41 and 42-47, pixels) lie
    :data:`EYE_DISTANCE_M` apart: glTF's unit is the metre, and a viewer shows the head at a person's size.

    >>> v = np.array([[0.0, 0, 0], [200, 100, 40]])
    >>> lm = np.zeros((68, 3)); lm[42:48, 0] = 63.0  # eye centres 63 pixels apart
    >>> life_size(v, lm).tolist()
    [[-0.1, -0.05, -0.02], [0.1, 0.05, 0.02]]
    """
    eyes = np.linalg.norm(landmarks[42:48].mean(0) - landmarks[36:42].mean(0))
    centre = (vertices.min(0) + vertices.max(0)) / 2
    return (vertices - centre) * (EYE_DISTANCE_M / max(float(eyes), 1e-9))


def uv_glb_files(image: np.ndarray, faces, stem: str) -> list[tuple[str, bytes]]:
    from mfirrn.render.meshio import to_viewer_frame
    from mfirrn.render.uvtex import textured_glb

    out = []
    for i, (f, tex) in enumerate(zip(faces, _textures(image, faces))):
        v, t = to_viewer_frame(f.vertices, f.triangles, image.shape[0])
        glb = textured_glb(life_size(v, np.asarray(f.landmarks, np.float64)), t, tex.uv, tex.texture)
        out.append((f"{stem}_face{i}_uv.glb", glb))
    return out


# name -> function (BGR uint8 image, faces, stem) -> [(file name, bytes), ...]
FILE_OUTPUTS = {"uv_tex": uv_tex_files, "uv_glb": uv_glb_files}
