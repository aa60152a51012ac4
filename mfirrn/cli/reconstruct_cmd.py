"""``mfirrn reconstruct IMAGE... -o OUTDIR``: the main job.

For each image: ``<stem>.json`` (faces with box, roi, params, pose, 68 landmarks) and, per
``--outputs`` (:mod:`mfirrn.cli.outputs`), overlays, meshes and renders. Bad inputs are reported
on one line and skipped; the exit code is 2 only if no image succeeded (then a single bad input's
reason is the one error line).

Images stream: the next image is read and decoded, and the previous image's files are encoded and
written, in background threads while the network runs on the current one.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mfirrn.cli.common import add_model_args, fail, reconstructor_from_args
from mfirrn.cli.outputs import DEFAULT_OUTPUTS, OUTPUTS, OutputContext, available_outputs, build_outputs
from mfirrn.detect.registry import DEFAULT_DETECTOR

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
# at most this many images' outputs wait to be written (bounds memory when writing is the slow part)
MAX_PENDING_WRITES = 4


def register(sub: argparse._SubParsersAction) -> None:
    from mfirrn.detect.registry import available_detectors
    from mfirrn.inference.pipeline import REFINE_MODES
    from mfirrn.models import DEFAULT_MODEL

    p = sub.add_parser("reconstruct", help="reconstruct faces in images (landmarks, pose, dense mesh)",
                       description="Detect faces, regress 3DMM params and write results per image. "
                                   "Without IMAGE arguments, the sample photos are reconstructed.")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files, folders or glob patterns")
    p.add_argument("--list", dest="list_file", default=None, metavar="FILE",
                   help="a text file with one image path per line (added to IMAGE)")
    p.add_argument("-o", "--out", default="results/reconstruct", help="output folder (default results/reconstruct)")
    p.add_argument("--outputs", default=DEFAULT_OUTPUTS,
                   help=f"comma list of {', '.join(available_outputs())} (default {DEFAULT_OUTPUTS})")
    add_model_args(p, default_model=DEFAULT_MODEL, default_backend="auto")
    p.add_argument("--detector", default=DEFAULT_DETECTOR,
                   help=f"{', '.join(available_detectors())} (default {DEFAULT_DETECTOR}), or a comma list tried in "
                        f"turn until one finds a face, e.g. faceboxes,dlib-hog")
    p.add_argument("--box", action="append", default=None, metavar="X0,Y0,X1,Y1",
                   help="a face box in pixels instead of detection (repeat for several faces)")
    p.add_argument("--landmarks", default=None, metavar="FILE",
                   help="landmark file (.pts/.ljson/.npy/.txt) giving the face roi instead of detection")
    p.add_argument("--refine", default="robust", choices=REFINE_MODES,
                   help="more passes on rois rebuilt from the landmarks: robust (default: the mean of three "
                        "passes where their rois agree, else the first), always (3DDFA's two-step), off (single pass)")
    p.add_argument("--no-refine", dest="refine", action="store_const", const="off", help="same as --refine off")
    p.add_argument("--mesh", default="full", choices=("full", "noneck"), help="dense mesh (default full)")
    p.add_argument("--min-confidence", type=float, default=None, metavar="C",
                   help="keep detected faces whose face-verifier confidence (0-1, in the JSON) is at least C "
                        "(default: the verifier's threshold, chosen by measurement; 0 keeps every detection)")
    p.add_argument("--min-face-size", type=float, default=0.0, metavar="PX",
                   help="keep detected faces whose 68 landmarks span at least PX pixels (default 0)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="CPU threads of the networks (PyTorch and ONNX Runtime); 0 = all cores. Default 1: "
                        "images stream through a reader and a writer thread beside it, and one thread stays "
                        "fast on a busy machine, where several slow down many times")
    from mfirrn.cli import video_cmd

    video_cmd.add_arguments(p)  # IMAGE may be a video: tracked, smoothed, written as JSON Lines + overlay video
    p.set_defaults(func=run)


def all_outputs() -> tuple[str, ...]:
    return available_outputs()


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


def write_outputs(image: np.ndarray, image_path: Path, faces: list, model_name: str, out_dir: Path, stem: str,
                  outputs: list[str]) -> list[Path]:
    """Build every requested output in memory, then publish them all at once (nothing half-written)."""
    from mfirrn.io.fileio import StagedOutputs

    files = build_outputs(OutputContext(image, image_path, faces, model_name, stem), outputs)
    with StagedOutputs() as staged:
        for name, data in files:
            staged.add(out_dir / name, data)
    return staged.written


def run(args: argparse.Namespace) -> int:
    import torch

    threads = torch.get_num_threads()
    if args.threads < 0:
        return fail(f"--threads takes 0 (all cores) or a positive number, got {args.threads}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> int:
    from mfirrn.cli import video_cmd
    from mfirrn.detect.registry import LandmarkFileError, read_landmarks
    from mfirrn.inference.pipeline import ImageError, read_image
    from mfirrn.io import assets

    if video_cmd.wants_video(args):
        return video_cmd.run(args)
    outputs = [o.strip() for o in args.outputs.split(",") if o.strip()]
    unknown = sorted(set(outputs) - set(all_outputs()))
    if unknown:
        return fail(f"unknown --outputs {', '.join(unknown)}; choose from {', '.join(all_outputs())}")
    needs_dense = any(OUTPUTS[o].dense for o in outputs)
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
        rec = reconstructor_from_args(args, dense=needs_dense)
        if boxes is None and landmarks is None:
            rec.detector  # build it now so a bad detector name or missing weights fail before any image is read
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

    bar = tqdm(total=len(paths), desc="reconstruct", unit="img", disable=len(paths) < 2, file=sys.stderr)
    verbose = len(paths) < 2 or demo
    skipped: list[str] = []

    def skip(message: str) -> None:
        """One line per bad input; a lone input's reason becomes the command's error line instead."""
        skipped.append(message)
        if len(paths) > 1:
            tqdm.write(f"skip {message}", file=sys.stderr)

    def finish(path: Path, n: int, fut: Future) -> None:
        nonlocal n_ok, n_faces
        try:
            written = fut.result()
        except (ValueError, OSError, RuntimeError) as e:
            skip(f"{path}: {e}")
        else:
            n_ok += 1
            n_faces += n
            if verbose:
                tqdm.write(f"{path.name}: {n} face(s) -> {', '.join(p.name for p in written)}", file=sys.stdout)
        bar.update(1)

    t_start = time.perf_counter()
    with ThreadPoolExecutor(1, thread_name_prefix="mfirrn-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="mfirrn-write") as writer:
        pending: deque[tuple[Path, int, Future]] = deque()
        next_read: Future | None = reader.submit(read_image, paths[0])
        for i, path in enumerate(paths):
            reading = next_read
            assert reading is not None
            next_read = reader.submit(read_image, paths[i + 1]) if i + 1 < len(paths) else None  # read ahead
            while pending and (pending[0][2].done() or len(pending) >= MAX_PENDING_WRITES):
                finish(*pending.popleft())
            try:
                image = reading.result()
                faces = rec(image, boxes=boxes, landmarks=landmarks)
            except ImageError as e:
                skip(str(e))
                bar.update(1)
                continue
            except ValueError as e:
                skip(f"{path}: {e}")
                bar.update(1)
                continue
            if not faces:
                hint = ("try --detector dlib-hog or dlib-cnn, --min-confidence 0, --box or --landmarks"
                        if boxes is None and landmarks is None else "")
                skip(f"{path}: no face found{f' ({hint})' if hint else ''}")
                bar.update(1)
                continue
            stem = _unique_stem(path, seen)
            pending.append((path, len(faces), writer.submit(write_outputs, image, path, faces, rec.model_name,
                                                             out_dir, stem, outputs)))
        while pending:
            finish(*pending.popleft())
    bar.close()
    if n_ok == 0:
        return fail(skipped[0] if len(paths) == 1 else f"no image was reconstructed ({len(paths)} inputs skipped)")
    seconds = time.perf_counter() - t_start
    print(f"{n_ok}/{len(paths)} image(s), {n_faces} face(s) in {seconds:.1f} s ({len(paths) / seconds:.1f} images/s, "
          f"start-up not counted); results in {out_dir.resolve()}")
    return 0
