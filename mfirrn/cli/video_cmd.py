"""``mfirrn reconstruct VIDEO -o OUT``: faces tracked through a video (or a camera), smoothed, written as
JSON Lines, an overlay video and optional per-frame meshes.

Hooked into ``reconstruct`` (:mod:`mfirrn.cli.reconstruct_cmd`): :func:`add_arguments` adds the
video options, and :func:`wants_video` routes video inputs (and ``--camera``) to :func:`run`.

Per video ``<name>`` (its file name, extension kept, in the folder that mirrors its place below the inputs'
common folder): ``<name>.jsonl`` (one line per frame: ``frame``, ``time`` in seconds, ``faces``
with ``id``, ``detected``, box, score, confidence, roi, params, pose, 68 landmarks, and ``events``: the
tracks that start (``{"id", "event": "start"}``, ``"reused": true`` when an id comes back after a short
occlusion) or end there (``{"id", "event": "end", "reason"}``)), ``<name>_overlay.mp4`` (the
requested drawings), ``<name>_meshes/<name>_<frame>.obj|ply`` (with ``obj``/``ply``). Every file is
written to a temporary name and published when the video is done, so an error or Ctrl-C leaves
nothing half-written.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mfirrn.cli.common import fail, show_progress

if TYPE_CHECKING:
    import numpy as np

VIDEO_OUTPUTS = ("json", "landmarks", "dense", "render", "pose", "obj", "ply")
VIDEO_DEFAULT_OUTPUTS = "json,landmarks,pose"
_OVERLAYS = ("landmarks", "dense", "render", "pose")
#: Until a clip has a face, its brightness (:func:`mfirrn.detect.faceboxes.brightest_level`, for the hint of a clip
#: without a face) is read on every this many frames
BRIGHTNESS_EVERY = 10


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("video (IMAGE may be a .mp4/.avi/.mov/.mkv/.webm video, an animated GIF or a folder "
                             "of videos)",
                             f"Video outputs: {', '.join(VIDEO_OUTPUTS)} (default {VIDEO_DEFAULT_OUTPUTS}): json -> "
                             f"<name>.jsonl, the drawings -> <name>_overlay.mp4, obj/ply -> per-frame meshes "
                                  f"(<name>: the video's file name, e.g. clip.mp4.jsonl).")
    g.add_argument("--camera", type=int, default=None, metavar="INDEX", help="read a camera (e.g. 0) instead of files")
    g.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    g.add_argument("--smooth", default=None, choices=("window", "one-euro", "none"),
                   help="temporal smoothing of the params: window (default for files: look-ahead polynomial fit, "
                        "no lag), one-euro (default for --camera: causal One-Euro filter) or none")
    g.add_argument("--smooth-window", type=int, default=11, metavar="FRAMES",
                   help="window: frames fitted around each frame (odd; default 11)")
    g.add_argument("--smooth-order", type=int, default=2, metavar="N", help="window: polynomial order (default 2)")
    g.add_argument("--smooth-tolerance", type=float, default=0.5, metavar="PCT",
                   help="window: at each frame the window shrinks (down to 5 frames) until its landmarks are within "
                        "PCT %% of the face size of the 5-frame fit's, so that fast moves are followed (default 0.5; "
                        "0: the whole window always)")
    g.add_argument("--smooth-raw-tolerance", type=float, default=2.0, metavar="PCT",
                   help="window: a frame whose 5-frame fit is more than PCT %% of the face size from its own "
                        "landmarks keeps its own (a move too fast to smooth; default 2; 0: never)")
    g.add_argument("--smooth-min-cutoff", type=float, default=1.0, metavar="HZ",
                   help="one-euro: cut-off at rest (default 1.0; lower = smoother, more lag)")
    g.add_argument("--smooth-beta", type=float, default=0.05, metavar="PER_PX",
                   help="one-euro: speed coefficient (default 0.05; higher = less lag in fast motion)")
    g.add_argument("--smooth-d-cutoff", type=float, default=1.0, metavar="HZ",
                   help="one-euro: cut-off of the speed estimate (default 1.0)")
    g.add_argument("--smooth-max-lag", type=float, default=1.0, metavar="PCT",
                   help="one-euro: the smoothed landmarks stay within PCT %% of the face size of the frame's own, so "
                        "that fast moves are followed (default 1; 0: unbounded)")
    g.add_argument("--redetect-every", type=int, default=10, metavar="N",
                   help="also run the detector every N frames, to find new faces and drop tracks no face "
                        "confirms (default 10; 0: only on scene cuts, when a face is lost or none is tracked)")
    g.add_argument("--scene-cut", type=float, default=15.0, metavar="DIFF",
                   help="run the detector on frames whose mean grey-level change (0-255, on 64-pixel-wide "
                        "thumbnails) exceeds DIFF and whose grey-level histogram changes too: a scene cut, where "
                        "tracks end (default 15; 0 turns the test off)")
    g.add_argument("--max-faces", type=int, default=0, metavar="N", help="track at most N faces (default 0: all)")


def wants_video(args: argparse.Namespace) -> bool:
    """Whether ``reconstruct`` tracks videos: a camera, a video among the inputs, or only folders and glob patterns
    whose files hold videos and no image (an animated GIF is a video, :func:`mfirrn.io.media.is_video`)."""
    from mfirrn.inference.sources import IMAGE_SUFFIXES, holds_file, is_glob, takes
    from mfirrn.video.io import VIDEO_SUFFIXES, is_video

    if getattr(args, "camera", None) is not None or any(is_video(i) for i in args.images):
        return True

    def holds(item: str, suffixes: frozenset[str]) -> bool:
        if Path(item).is_dir():
            return holds_file(Path(item), suffixes)
        return any(Path(m).is_file() and takes(Path(m), suffixes) for m in glob.glob(item, recursive=True))

    groups = [i for i in args.images if Path(i).is_dir() or (not Path(i).exists() and is_glob(i))]
    return (bool(groups) and len(groups) == len(args.images)
            and not any(holds(i, IMAGE_SUFFIXES) for i in groups)
            and any(holds(i, VIDEO_SUFFIXES) for i in groups))


def _settings(args: argparse.Namespace):
    from mfirrn.video.smoothing import OneEuroSettings
    from mfirrn.video.tracking import TrackerSettings

    if args.redetect_every < 0 or args.max_faces < 0 or not args.scene_cut >= 0:
        raise ValueError("--redetect-every, --scene-cut and --max-faces take numbers >= 0")
    for name in ("smooth_tolerance", "smooth_raw_tolerance", "smooth_max_lag"):
        if not 0 <= getattr(args, name) < 100:
            raise ValueError(f"--{name.replace('_', '-')} takes a percentage of the face size in [0, 100), got "
                             f"{getattr(args, name):g}")
    smooth = args.smooth or ("one-euro" if args.camera is not None else "window")
    return TrackerSettings(smooth=smooth, window=args.smooth_window, order=args.smooth_order,
                           window_tolerance=args.smooth_tolerance / 100,
                           window_raw_tolerance=args.smooth_raw_tolerance / 100,
                           one_euro_tolerance=args.smooth_max_lag / 100,
                           redetect_every=args.redetect_every, scene_cut=args.scene_cut, max_faces=args.max_faces,
                           one_euro=OneEuroSettings(args.smooth_min_cutoff, args.smooth_beta, args.smooth_d_cutoff))


def _overlay(frame: np.ndarray, tracked: list, outputs: list[str]) -> np.ndarray:
    from mfirrn import vis

    faces = [tf.face for tf in tracked]
    out = frame
    if not faces:
        return out
    if "render" in outputs:
        out = vis.render_shaded(out, faces)
    if "dense" in outputs:
        out = vis.draw_dense(out, [f.vertices for f in faces])
    if "landmarks" in outputs:
        out = vis.draw_landmarks(out, [f.landmarks for f in faces])
    names = [f"#{tf.id}" for tf in tracked]  # track ids, placed like the pose labels: readable in a crowd
    if "pose" in outputs:
        from mfirrn.vis.pose import draw_pose

        return draw_pose(out, faces, names=names)
    from mfirrn.vis.labels import draw_labels, layout_labels

    boxes = [(*f.landmarks[:, :2].min(axis=0), *f.landmarks[:, :2].max(axis=0)) for f in faces]
    out = out.copy() if out is frame else out
    return draw_labels(out, layout_labels(names, boxes, out.shape, names=names))


def _write_meshes(frame: np.ndarray, tracked: list, mesh_dir: Path, name: str, outputs: list[str]) -> None:
    import numpy as np

    from mfirrn import vis
    from mfirrn.render import meshio

    v, tri = vis.merge_face_meshes([tf.face for tf in tracked])
    c = np.concatenate([meshio.photo_colors(frame, tf.face.vertices) for tf in tracked])  # face by face: its mirror
    v, tri = meshio.to_viewer_frame(v, tri, frame.shape[0])
    mesh_dir.mkdir(exist_ok=True)
    for ext, fn in (("obj", meshio.obj_bytes), ("ply", meshio.ply_bytes)):
        if ext in outputs:
            (mesh_dir / f"{name}.{ext}").write_bytes(fn(v, tri, c))


def process_video(source, rec, out_dir: Path, stem: str, outputs: list[str], settings, *, max_frames=None,
                  progress: bool = True) -> dict:
    """Track, smooth and write the outputs of one video; returns counts (frames, faces, detections, fps).

    Raises :class:`mfirrn.video.io.VideoError` for a bad video; on any error nothing is published.
    """
    import time

    from tqdm import tqdm

    from mfirrn.detect.faceboxes import brightest_level
    from mfirrn.inference.pipeline import landmark_side
    from mfirrn.video.io import VideoReader, VideoWriter
    from mfirrn.video.tracking import FaceTracker, track_video

    dense = any(o in outputs for o in ("dense", "render", "obj", "ply"))
    overlays = [o for o in outputs if o in _OVERLAYS]
    created = [d for d in (out_dir, *out_dir.parents) if not d.exists()]
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(f".{glob.escape(stem)}.*.part"):  # left by a killed run of this video
        shutil.rmtree(stale, ignore_errors=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{stem}.", suffix=".part", dir=out_dir))
    published: list[Path] = []
    try:
        with VideoReader(source, max_frames=max_frames) as reader:
            tracker = FaceTracker(rec, settings, dense=dense)
            info = reader.info
            writer = VideoWriter(tmp_dir / f"{stem}_overlay.mp4", info.fps) if overlays else None
            jsonl = open(tmp_dir / f"{stem}.jsonl", "w") if "json" in outputs else None
            mesh_dir = tmp_dir / f"{stem}_meshes"
            n = n_faces = brightest = 0
            ids: set[int] = set()
            smallest = None  # the smallest face written (its landmarks' longer side), for the note on small faces
            t0 = time.perf_counter()
            bar = tqdm(total=info.n_frames or None, desc=stem, unit="frame", disable=not progress, file=sys.stderr)
            try:
                try:
                    for i, t, frame, tracked in track_video(reader, tracker):
                        n, n_faces = n + 1, n_faces + len(tracked)
                        ids.update(tf.id for tf in tracked)
                        for tf in tracked:
                            if smallest is None or landmark_side(tf.face) < landmark_side(smallest):
                                smallest = tf.face
                        if not n_faces and i % BRIGHTNESS_EVERY == 0:  # for the hint of a clip without a face
                            brightest = max(brightest, brightest_level(frame))
                        events = tracker.events.pop(i, [])
                        if jsonl is not None:
                            jsonl.write(json.dumps({"frame": i, "time": round(t, 6),
                                                    "faces": [tf.to_dict() for tf in tracked],
                                                    "events": events}) + "\n")
                        if writer is not None:
                            writer.write(_overlay(frame, tracked, overlays))
                        if tracked and ("obj" in outputs or "ply" in outputs):
                            _write_meshes(frame, tracked, mesh_dir, f"{stem}_{i:06d}", outputs)
                        bar.update(1)
                except KeyboardInterrupt:
                    if not isinstance(source, int):
                        raise
                    # Ctrl-C is how a camera stops: keep what was recorded
            except BaseException:
                if writer is not None:
                    writer.abort()
                raise
            finally:
                bar.close()
                if jsonl is not None:
                    jsonl.close()
            elapsed = time.perf_counter() - t0
            if writer is not None:
                writer.close()
            truncated = info.n_frames and max_frames is None and n < 0.9 * info.n_frames
        for p in sorted(tmp_dir.iterdir()):
            dest = out_dir / p.name
            if dest.is_dir():
                shutil.rmtree(dest)
            os.replace(p, dest)
            published.append(dest)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if not published:  # a failed video leaves no empty folders behind
            for d in created:
                try:
                    d.rmdir()
                except OSError:
                    break
    return {"frames": n, "faces": n_faces, "ids": len(ids), "detections": tracker.n_detections,
            "doubted": tracker.n_doubted,
            "fps": n / elapsed if elapsed > 0 else float("nan"), "written": published,
            "truncated": bool(truncated), "expected_frames": info.n_frames, "total_frames": reader.total_frames,
            "size": (info.width, info.height),
            "brightest": brightest, "small_faces": _small_faces_option(rec, info.height, info.width, smallest)}


def _small_faces_option(rec, height: int, width: int, smallest) -> str:
    """The option that shows FaceBoxes a clip's frames larger when the ``smallest`` face written spans fewer pixels
    at its input than its smallest anchor (smaller faces of the clip are likely missed,
    :func:`mfirrn.inference.pipeline.small_at_input`), else "" (no face, another detector)."""
    from mfirrn.cli.photo_job import larger_detector_input
    from mfirrn.inference.pipeline import small_at_input

    scale_for = getattr(rec.detector, "scale_for", None)
    if smallest is None or scale_for is None:
        return ""
    scale = scale_for(height, width)
    return larger_detector_input((height, width), scale) if small_at_input([smallest], scale) else ""


def _no_face_hints(args: argparse.Namespace, result: dict) -> str:
    """What to try on a clip where no frame had a face: the photo hints that apply to its frames, after the
    detections the face verifier doubted, when there were some."""
    from mfirrn.cli.photo_job import (
        GROUP_PHOTO,
        other_detectors,
        suggest_confidence,
        suggest_threshold,
        suggested_min_size,
    )
    from mfirrn.detect.faceboxes import DARK_LEVEL
    from mfirrn.detect.registry import names_faceboxes

    if result["brightest"] <= DARK_LEVEL:  # nothing else helps (docs/experiments/wild.md, "people in the dark")
        return f"try brightening it: a very dark clip, its brightest pixels at {result['brightest']} of 255"
    hints, options = [], vars(args)
    if names_faceboxes(args.detector):
        w, h = result["size"]
        if not args.detector_min_size and suggested_min_size((h, w)):  # frames under 2000 pixels: upscaled
            hints.append(f"--detector-min-size {GROUP_PHOTO} for faces under 30 pixels")
        if suggest_threshold(options):
            hints.append("--detector-threshold 0.05 for faint faces")
    hints += ["--detector dlib-cnn"] if "dlib-cnn" in " ".join(other_detectors(args.detector)) else []
    doubted = result["doubted"] if suggest_confidence(options) else 0
    hints += ["--min-confidence 0"] if suggest_confidence(options) and not doubted else []
    if result["detections"] < result["frames"]:  # frames the detector did not see
        hints.append("a smaller --redetect-every")
    tried = "" if not hints else "if it shows faces, try " + (hints[0] if len(hints) == 1
                                                             else ", ".join(hints[:-1]) + " or " + hints[-1])
    if doubted:
        them = "them" if doubted > 1 else "it"
        return (f"{doubted} detection{'s' * (doubted > 1)} the face verifier doubted, taken for no human face (an "
                f"animal, a hand, a pattern, a face mostly hidden or too small to tell): --min-confidence 0 follows "
                f"{them}"
                + (f"; or {tried}" if tried else ""))
    return tried


def run(args: argparse.Namespace) -> int:
    from mfirrn.cli.common import prefetch, reconstructor_from_args, warn_bf16
    from mfirrn.cli.outputs import DEFAULT_OUTPUTS
    from mfirrn.io import assets
    from mfirrn.video.io import is_video

    spec = VIDEO_DEFAULT_OUTPUTS if args.outputs == DEFAULT_OUTPUTS else args.outputs
    outputs = [o.strip() for o in spec.split(",") if o.strip()]
    bad = sorted(set(outputs) - set(VIDEO_OUTPUTS))
    if bad:
        return fail(f"--outputs {', '.join(bad)} not available for videos; choose from {', '.join(VIDEO_OUTPUTS)}")
    if args.box or args.landmarks or args.list_file:
        return fail("--box/--landmarks/--list apply to images; videos are tracked from detections")
    if args.camera is not None and args.images:
        return fail("give either --camera INDEX or VIDEO files, not both")
    from mfirrn.inference.sources import is_glob

    others = [i for i in args.images if not is_video(i) and not Path(i).is_dir() and not is_glob(i)]
    if others:
        return fail(f"mix of videos and other inputs ({others[0]}); reconstruct videos and images in separate runs")
    if args.max_frames is not None and args.max_frames < 1:
        return fail("--max-frames takes a number >= 1")
    from mfirrn.inference.sources import expand_inputs
    from mfirrn.io.options import InputError, writable_dir
    from mfirrn.video.io import VIDEO_SUFFIXES

    try:
        out_dir = writable_dir(args.out, "-o/--out")
    except InputError as e:
        return fail(str(e))
    paths, _ = expand_inputs(args.images, suffixes=VIDEO_SUFFIXES)  # a quoted glob ("clips/*.mp4") too
    if args.camera is None and not paths:
        return fail(f"no videos found in {' '.join(args.images)}")
    try:
        settings = _settings(args)
        rec = reconstructor_from_args(args, dense=False)
        prefetch(rec, outputs, args.mesh, detect=True)  # a bad detector or a missing asset fail before any frame
    except (ValueError, KeyError, ImportError, assets.AssetError, OSError) as e:
        return fail(str(e).strip("'\""))
    warn_bf16(args)
    sources = [args.camera] if args.camera is not None else [str(p) for p in paths]
    n_ok = 0
    import torch

    threads = torch.get_num_threads()
    if rec.device.type == "cpu":
        # one crop per face per frame is too small to split across cores; the video decoder and encoder
        # use the others (and an oversubscribed CPU slows the network tenfold)
        torch.set_num_threads(1)
    try:
        n_ok = _run_sources(sources, rec, out_dir, outputs, settings, args)
    finally:
        torch.set_num_threads(threads)
    if n_ok == 0:
        return 2
    print(f"{n_ok}/{len(sources)} video(s); results in {out_dir.resolve()}")
    return 0 if n_ok == len(sources) else 1


def _run_sources(sources, rec, out_dir, outputs, settings, args) -> int:
    from mfirrn.inference.sources import common_root, relative_name
    from mfirrn.video.io import VideoError

    n_ok = 0
    root = common_root(sources) if not isinstance(sources[0], int) else None
    for src in sources:
        # clips mirror their tree below the inputs' root, extension kept: a/clip.mp4 -> OUT/a/clip.mp4.jsonl
        rel = Path(f"camera{src}") if root is None else Path(relative_name(src, root))
        try:
            r = process_video(src, rec, out_dir / rel.parent, rel.name, outputs, settings, max_frames=args.max_frames,
                              progress=show_progress())
        except VideoError as e:
            print(f"mfirrn: error: {e}", file=sys.stderr)
            continue
        n_ok += 1
        if r["faces"] == 0:
            hints = _no_face_hints(args, r)
            print(f"warning: {src}: no face found in any frame" + (f" ({hints})" if hints else ""), file=sys.stderr)
        if r["truncated"]:
            print(f"warning: {src}: decoding stopped at frame {r['frames']} of {r['expected_frames']} "
                  f"(truncated or corrupt); results cover the decoded frames", file=sys.stderr)
        tracks = f"{r['ids']} track" + ("" if r["ids"] == 1 else "s")
        stopped = args.max_frames and r["frames"] < r["total_frames"]  # the clip goes on past --max-frames
        frames = f"{r['frames']} of {r['total_frames']} frames (--max-frames)" if stopped else f"{r['frames']} frames"
        print(f"{src}: {frames}, {r['faces']} face-frames in all ({tracks}), detector run on "
              f"{r['detections']} frame(s), {r['fps']:.1f} frames/s -> {', '.join(p.name for p in r['written'])}")
        if r["small_faces"]:
            print(f"note: {src} holds faces near the smallest the detector finds at the scale it sees its frames; "
                  f"{r['small_faces']} may find more faces in it (slower)", file=sys.stderr)
    return n_ok
