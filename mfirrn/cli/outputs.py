"""The files ``mfirrn reconstruct`` writes per image: a registry of output writers.

Each output (``--outputs NAME``) is a function ``(OutputContext) -> [(file name, bytes), ...]``;
:func:`build_outputs` runs the requested ones and returns every file's bytes, so the caller can
publish them all at once (nothing half-written). Add an output with :func:`register_output`.

Meshes: an image with one face gives ``<name>.obj`` / ``<name>.ply``; an image with several faces
gives one file per face, ``<name>_face<k>.obj`` (``k`` = the face's index in ``<name>.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    import numpy as np

__all__ = ["OutputContext", "Output", "OUTPUTS", "register_output", "build_outputs", "available_outputs",
           "prepare_outputs", "encode_image", "mesh_file_names", "DEFAULT_OUTPUTS"]

DEFAULT_OUTPUTS = "json,landmarks,dense"


@dataclass
class OutputContext:
    """What an output writer sees: the BGR uint8 image (H, W, 3), its path, the faces
    (:class:`mfirrn.inference.pipeline.Face`), the model name and the ``stem`` every file name starts with
    (``mfirrn reconstruct``: the image's file name, extension kept: ``photo.jpg`` -> ``photo.jpg.json``)."""

    image: np.ndarray
    image_path: Path
    faces: Sequence
    model_name: str
    stem: str


def _nothing_to_prepare(mesh: str) -> None:
    return None


@dataclass(frozen=True)
class Output:
    """A registered output: ``write`` builds its files; ``dense`` says it needs the dense mesh; ``prepare(mesh)``
    fetches the assets (:mod:`mfirrn.io.assets`) and checks the packages it needs beyond the pipeline's own, for the
    mesh ``"full"`` or ``"noneck"``, raising :class:`mfirrn.io.assets.AssetError` or ``ValueError`` (one line, with
    the fix) when it could write no image: a run calls it first, so that it stops at once rather than failing every
    image."""

    name: str
    write: Callable[[OutputContext], list[tuple[str, bytes]]]
    dense: bool
    help: str
    prepare: Callable[[str], None] = _nothing_to_prepare


OUTPUTS: dict[str, Output] = {}


def register_output(name: str, write: Callable[[OutputContext], list[tuple[str, bytes]]], *, dense: bool,
                    help: str, prepare: Callable[[str], None] = _nothing_to_prepare) -> None:
    """Add an output named ``name`` (``--outputs name``)."""
    OUTPUTS[name] = Output(name, write, dense, help, prepare)


def prepare_outputs(names: Sequence[str], mesh: str) -> None:
    """:attr:`Output.prepare` of each output of ``names`` for the mesh ``mesh``."""
    _register_renderer_outputs()
    for n in names:
        if n in OUTPUTS:
            OUTPUTS[n].prepare(mesh)


def available_outputs() -> tuple[str, ...]:
    _register_renderer_outputs()
    return tuple(OUTPUTS)


def encode_image(ext: str, image: np.ndarray, jpeg_quality: int = 90) -> bytes:
    """Encode a uint8 image as ``.jpg`` (quality ``jpeg_quality``) or ``.png`` bytes."""
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise RuntimeError(f"could not encode {ext} image")
    return buf.tobytes()


def mesh_file_names(stem: str, n_faces: int, ext: str) -> list[str]:
    """``[<name>.<ext>]`` for one face, ``[<name>_face0.<ext>, ...]`` for several.

    >>> mesh_file_names("a", 2, "obj")
    ['a_face0.obj', 'a_face1.obj']
    """
    return [f"{stem}.{ext}"] if n_faces == 1 else [f"{stem}_face{k}.{ext}" for k in range(n_faces)]


def _json(ctx: OutputContext) -> list[tuple[str, bytes]]:
    doc = {"image": str(ctx.image_path), "model": ctx.model_name,
           "image_size": [ctx.image.shape[1], ctx.image.shape[0]], "faces": [f.to_dict() for f in ctx.faces]}
    return [(f"{ctx.stem}.json", (json.dumps(doc, indent=1) + "\n").encode())]


def _landmarks(ctx: OutputContext) -> list[tuple[str, bytes]]:
    from mfirrn import vis

    image, faces = vis.enlarge_for_viewing(ctx.image, ctx.faces)
    return [(f"{ctx.stem}_landmarks.jpg", encode_image(".jpg", vis.draw_landmarks(image, [f.landmarks for f in faces])))]


def _dense(ctx: OutputContext) -> list[tuple[str, bytes]]:
    from mfirrn import vis

    image, faces = vis.enlarge_for_viewing(ctx.image, ctx.faces)
    return [(f"{ctx.stem}_dense.jpg", encode_image(".jpg", vis.draw_dense(image, [f.vertices for f in faces])))]


def _mesh(ext: str) -> Callable[[OutputContext], list[tuple[str, bytes]]]:
    def write(ctx: OutputContext) -> list[tuple[str, bytes]]:
        from mfirrn.render import meshio

        to_bytes = meshio.obj_bytes if ext == "obj" else meshio.ply_bytes
        files = []
        for name, face in zip(mesh_file_names(ctx.stem, len(ctx.faces), ext), ctx.faces):
            if face.vertices is None or face.triangles is None:
                raise ValueError("faces have no dense mesh; reconstruct with dense=True")
            colors = meshio.photo_colors(ctx.image, face.vertices)  # outside the photo: the mirror side, or grey
            v, t = meshio.to_viewer_frame(face.vertices, face.triangles, ctx.image.shape[0])
            files.append((name, to_bytes(v, t, colors)))
        return files

    return write


def _picture(name: str, ext: str, fn: Callable) -> Callable[[OutputContext], list[tuple[str, bytes]]]:
    """Output ``name`` written as ``<stem>_<name><ext>`` (``.jpg`` or ``.png``) from ``fn(image, faces)``."""
    def write(ctx: OutputContext) -> list[tuple[str, bytes]]:
        return [(f"{ctx.stem}_{name}{ext}", encode_image(ext, fn(ctx.image, ctx.faces)))]

    return write


register_output("json", _json, dense=False, help="<name>.json: box, roi, params, pose, 68 landmarks per face")
register_output("landmarks", _landmarks, dense=False, help="<name>_landmarks.jpg: 68 landmarks drawn on the photo (enlarged to 400 px when smaller)")
register_output("dense", _dense, dense=True, help="<name>_dense.jpg: dense vertices drawn on the photo (a subsample, dots sized to the photo; enlarged to 400 px when smaller)")
register_output("obj", _mesh("obj"), dense=True, help="<name>.obj: mesh coloured from the photo (one file per face)")
register_output("ply", _mesh("ply"), dense=True, help="<name>.ply: binary PLY mesh (one file per face)")


def _register_renderer_outputs() -> None:
    """Outputs made with :mod:`mfirrn.render` (skipped when the compiled renderer is unavailable)."""
    if "depth" in OUTPUTS:
        return
    try:
        from mfirrn.cli import render_outputs
    except ImportError:
        return
    for name, (ext, fn) in render_outputs.RENDER_OUTPUTS.items():
        register_output(name, _picture(name, ext, fn), dense=True, help=f"<name>_{name}{ext}",
                        prepare=render_outputs.PREPARE.get(name, _nothing_to_prepare))
    for name, fn in render_outputs.FILE_OUTPUTS.items():
        register_output(name, _files(fn), dense=True, help=f"{name}: several files per face (textured mesh)",
                        prepare=render_outputs.PREPARE.get(name, _nothing_to_prepare))


def _files(fn: Callable) -> Callable[[OutputContext], list[tuple[str, bytes]]]:
    def write(ctx: OutputContext) -> list[tuple[str, bytes]]:
        return list(fn(ctx.image, ctx.faces, ctx.stem))

    return write


def build_outputs(ctx: OutputContext, outputs: Sequence[str]) -> list[tuple[str, bytes]]:
    """Files (name, bytes) of the requested ``outputs``, in registry order."""
    _register_renderer_outputs()
    files: list[tuple[str, bytes]] = []
    for name, out in OUTPUTS.items():
        if name in outputs:
            files += out.write(ctx)
    return files
