"""``mfirrn reconstruct IMAGE... -o OUTDIR``: the main job.

For each image: ``<stem>.json`` (faces with box, roi, params, pose, 68 landmarks) and, per
``--outputs``, overlays and meshes. Bad inputs are reported on one line and skipped; the exit code is
non-zero only if no image succeeded.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from mfirrn.commands.common import add_model_args, fail, model_from_args, resolve_device

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
BASE_OUTPUTS = ("json", "landmarks", "dense", "obj", "ply")
DEFAULT_OUTPUTS = "json,landmarks,dense,obj"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reconstruct", help="reconstruct faces in images (landmarks, pose, dense mesh)",
                       description="Detect faces, regress 3DMM params and write results per image. "
                                   "Without IMAGE arguments, the sample photos are reconstructed.")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files, folders or glob patterns")
    p.add_argument("--list", dest="list_file", default=None, help="a text file with one image path per line")
    p.add_argument("-o", "--out", default="results/reconstruct", help="output folder (default results/reconstruct)")
    p.add_argument("--outputs", default=DEFAULT_OUTPUTS,
                   help=f"comma list of {', '.join(all_outputs())} (default {DEFAULT_OUTPUTS})")
    add_model_args(p, default_model=None)
    p.add_argument("--detector", default="dlib-hog", help="dlib-hog (default) or dlib-cnn")
    p.add_argument("--box", action="append", default=None, metavar="X0,Y0,X1,Y1",
                   help="a face box in pixels instead of detection (repeat for several faces)")
    p.add_argument("--landmarks", default=None, metavar="FILE",
                   help="landmark file (.pts/.ljson/.npy/.txt) giving the face roi instead of detection")
    p.add_argument("--no-refine", dest="refine", action="store_false",
                   help="single pass (default: 3DDFA two-step refinement of the roi)")
    p.add_argument("--mesh", default="full", choices=("full", "noneck"), help="dense mesh (default full)")
    from mfirrn.commands import video_cmd

    video_cmd.add_arguments(p)  # IMAGE may be a video: tracked, smoothed, written as JSON Lines + overlay video
    p.set_defaults(func=run)


def _renderer_outputs() -> dict[str, Callable]:
    """Outputs produced with :mod:`mfirrn.render` (empty when the compiled renderer is unavailable)."""
    try:
        from mfirrn.commands import render_outputs
    except ImportError:
        return {}
    return render_outputs.RENDER_OUTPUTS


def _file_outputs() -> dict[str, Callable]:
    """Outputs of several files per face (textured meshes); empty without the compiled renderer."""
    try:
        from mfirrn.commands import render_outputs
    except ImportError:
        return {}
    return render_outputs.FILE_OUTPUTS


def all_outputs() -> tuple[str, ...]:
    return BASE_OUTPUTS + tuple(_renderer_outputs()) + tuple(_file_outputs())


def expand_inputs(items: list[str]) -> list[Path]:
    """Files as given, folders -> their images (sorted), glob patterns -> their matches (sorted)."""
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
        elif not p.exists() and any(c in item for c in "*?["):
            out += sorted(Path(m) for m in glob.glob(item, recursive=True))
        else:
            out.append(p)
    return out


def _unique_stem(path: Path, seen: set[str]) -> str:
    stem, k = path.stem, 1
    while stem in seen:
        stem, k = f"{path.stem}_{k}", k + 1
    seen.add(stem)
    return stem


def _parse_boxes(boxes: list[str] | None) -> np.ndarray | None:
    if not boxes:
        return None
    try:
        arr = np.array([[float(v) for v in b.split(",")] for b in boxes])
    except ValueError:
        raise ValueError(f"--box takes X0,Y0,X1,Y1 numbers, got {boxes}") from None
    if arr.shape[1] != 4 or (arr[:, 2] <= arr[:, 0]).any() or (arr[:, 3] <= arr[:, 1]).any():
        raise ValueError(f"--box takes X0,Y0,X1,Y1 with X1 > X0 and Y1 > Y0, got {boxes}")
    return arr


def _encode(ext: str, image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    if not ok:
        raise RuntimeError(f"could not encode {ext} image")
    return buf.tobytes()


def write_outputs(image: np.ndarray, image_path: Path, faces: list, model_name: str, out_dir: Path, stem: str,
                  outputs: list[str]):
    """Build every requested output in memory, then publish them all at once (nothing half-written)."""
    from mfirrn import meshio, vis
    from mfirrn.fileio import StagedOutputs

    render = _renderer_outputs()
    with StagedOutputs() as staged:
        if "json" in outputs:
            doc = {"image": str(image_path), "model": model_name, "image_size": [image.shape[1], image.shape[0]],
                   "faces": [f.to_dict() for f in faces]}
            staged.add(out_dir / f"{stem}.json", json.dumps(doc, indent=1) + "\n")
        if "landmarks" in outputs:
            staged.add(out_dir / f"{stem}_landmarks.jpg", _encode(".jpg", vis.draw_landmarks(image, [f.landmarks for f in faces])))
        if "dense" in outputs:
            staged.add(out_dir / f"{stem}_dense.jpg", _encode(".jpg", vis.draw_dense(image, [f.vertices for f in faces])))
        if "obj" in outputs or "ply" in outputs:
            merged, tris = vis.merge_face_meshes(faces)
            c = meshio.sample_colors(image, merged)
            v, t = meshio.to_viewer_frame(merged, tris, image.shape[0])
            if "obj" in outputs:
                staged.add(out_dir / f"{stem}.obj", meshio.obj_bytes(v, t, c))
            if "ply" in outputs:
                staged.add(out_dir / f"{stem}.ply", meshio.ply_bytes(v, t, c))
        for name, fn in render.items():
            if name in outputs:
                staged.add(out_dir / f"{stem}_{name}.png", _encode(".png", fn(image, faces)))
        for name, fn in _file_outputs().items():
            if name in outputs:
                for file_name, data in fn(image, faces, stem):
                    staged.add(out_dir / file_name, data)
    return staged.written


def run(args: argparse.Namespace) -> int:
    from mfirrn import assets, models
    from mfirrn.detect import LandmarkFileError, read_landmarks
    from mfirrn.commands import video_cmd
    from mfirrn.pipeline import ImageError, Reconstructor, read_image

    if video_cmd.wants_video(args):
        return video_cmd.run(args)
    outputs = [o.strip() for o in args.outputs.split(",") if o.strip()]
    unknown = sorted(set(outputs) - set(all_outputs()))
    if unknown:
        return fail(f"unknown --outputs {', '.join(unknown)}; choose from {', '.join(all_outputs())}")
    needs_dense = any(o not in ("json", "landmarks") for o in outputs)
    items = list(args.images)
    if args.list_file:
        try:
            items += [s.strip() for s in Path(args.list_file).read_text().splitlines() if s.strip()]
        except OSError as e:
            return fail(f"cannot read --list {args.list_file}: {e.strerror}")
    demo = not items
    try:
        boxes = _parse_boxes(args.box)
        landmarks = read_landmarks(args.landmarks) if args.landmarks else None
        if demo:
            items = [str(assets.fetch(n)) for n in assets.SAMPLE_PHOTOS]
            print(f"no images given: reconstructing the sample photos ({', '.join(Path(i).name for i in items)})")
        model = model_from_args(args, default_model=models.DEFAULT_MODEL)
        rec = Reconstructor(model, detector=args.detector, refine=args.refine, mesh=args.mesh, dense=needs_dense,
                            device=resolve_device(args.device), bf16=args.bf16)
        if boxes is None and landmarks is None:
            rec.detector  # build it now so a bad detector name fails before any image is read
    except (ValueError, KeyError, assets.AssetError, LandmarkFileError, OSError) as e:
        return fail(str(e).strip("'\""))
    if (boxes is not None or landmarks is not None) and len(items) > 1:
        return fail("--box/--landmarks describe one image; give exactly one IMAGE with them")

    paths = expand_inputs(items)
    if not paths:
        return fail(f"no images found in {' '.join(items)}")
    out_dir = Path(args.out)
    seen: set[str] = set()
    n_ok = n_faces = 0
    from tqdm import tqdm

    bar = tqdm(paths, desc="reconstruct", unit="img", disable=len(paths) < 2, file=sys.stderr)
    for path in bar:
        try:
            image = read_image(path)
            faces = rec(image, boxes=boxes, landmarks=landmarks)
            if not faces:
                tqdm.write(f"skip {path}: no face found (try --detector dlib-cnn, --box or --landmarks)", file=sys.stderr)
                continue
            written = write_outputs(image, path, faces, rec.model_name, out_dir, _unique_stem(path, seen), outputs)
        except ImageError as e:
            tqdm.write(f"skip {e}", file=sys.stderr)
            continue
        except ValueError as e:
            tqdm.write(f"skip {path}: {e}", file=sys.stderr)
            continue
        n_ok += 1
        n_faces += len(faces)
        if len(paths) < 2 or demo:
            names = ", ".join(p.name for p in written)
            print(f"{path.name}: {len(faces)} face(s) -> {names}")
    if n_ok == 0:
        return fail(f"no image was reconstructed ({len(paths)} input(s) skipped)", 1)
    print(f"{n_ok}/{len(paths)} image(s), {n_faces} face(s); results in {out_dir.resolve()}")
    return 0
