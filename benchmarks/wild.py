"""In the wild: every face and only faces, in photos and in video (detectors, the verified pipeline, tracking).

    MFIRRN_ASSET_MIRROR=... MFIRRN_DATASETS=... python benchmarks/wild.py [--sections detectors,photos,video,cuts]

Data: ``benchmarks/data/wild.tsv`` lists public photos and clips (source repository, commit, path,
sha256; fetched into the asset cache by :func:`mfirrn.io.assets.read_asset_table` /
:func:`~mfirrn.io.assets.fetch_asset`) with their faces counted by hand: a box for every face 20 pixels
or larger, and ``ignore`` boxes (a head seen from behind, a drawn face) where a face is neither required nor
false; ``benchmarks/data/wild-faces68.tsv`` does the same for ``$MFIRRN_DATASETS/faces-68``. Rows with
role ``photo`` and ``clip`` are held out (nothing was chosen on them); ``--tune`` runs the ``tune-clip``
rows instead of the held-out clips.

Scoring a photo: a face (its 68 landmarks' box, or a detector's box) matches a counted face when its
centre lies inside the counted box (greedy, one to one); an unmatched one is a *false face* unless
its centre lies in an ignore box (whatever its size); an unmatched counted face is *missed*.

1. **detectors**: each detector's raw boxes on the held-out photos (false, missed), its recall on the
   500 AFLW2000-3D dev-split originals (all poses; a GT face is found when a box's centre lies in its
   landmarks' box, as benchmarks/pipeline.py counts it) and its median milliseconds per photo;
2. **photos**: ``mfirrn reconstruct``'s pipeline (networks in ONNX Runtime on one thread, as the CLI
   runs them on a CPU) without the face verifier (FaceBoxes at 3DDFA_V2's 0.5), with it and FaceBoxes at
   0.5, and with it as by default (FaceBoxes at the proposal threshold,
   :data:`mfirrn.inference.pipeline.PROPOSAL_THRESHOLD`; a sweep of the verifier's threshold on it), and
   with it but without the recheck of near misses (``--no-detector-recheck``), with it but
   without the higher confidence asked of faces looking steeply down (``--looking-down-confidence 0``), with the
   larger look at photos whose faces are small at the detector's input (``--detector-larger-look``), and with
   the other shipped verifiers (``--verifier strict``, ``--verifier blazeface``, which needs ``mfirrn[detectors]``):
   false and missed faces on the held-out photos, dev-split faces kept and their NME (68 points, GT
   box normaliser), and the time per photo of each, measured side by side (each photo through all
   of them, in rotating order);
3. **video**: the tracker (``mfirrn reconstruct VIDEO``'s defaults) against the photo pipeline run on every
   frame (its faces kept as the pipeline keeps them, :func:`mfirrn.inference.verify.confidence_needed`): *ghost*
   face-frames (a tracked face with no photo-pipeline face under it, landmark boxes' IoU
   > 0.3, for 5 or more frames in a row), *missed confident* face-frames (a photo-pipeline face with
   confidence >= 0.9 that no tracked face overlaps), *implausible* poses (|pitch| > 90 degrees), for the
   defaults, for the defaults with the former scene-cut test (the frame difference alone, no histogram)
   and for the former tracker (detection only on the first frame and when a track is lost, no
   verification);
4. **cuts** (always on the ``tune-clip`` rows): the two halves of the scene-cut test
   (:func:`mfirrn.video.tracking.frame_difference`, :func:`~mfirrn.video.tracking.histogram_change`)
   between consecutive frames within each tuning clip, and across a cut: the last frame of one tuning
   clip followed by the first frame of another, every ordered pair. The defaults lie between the two.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mfirrn import models
from mfirrn.detect.faceboxes import SCORE_THRESHOLD
from mfirrn.detect.registry import available_detectors, create_detector
from mfirrn.evaluation.metrics import nme
from mfirrn.geometry.crop import roi_iou
from mfirrn.inference.pipeline import Reconstructor, read_image
from mfirrn.inference.verify import confidence_needed, landmark_boxes
from mfirrn.io.assets import fetch_asset, read_asset_table, sha256_of
from mfirrn.io.defaults import VERIFIER_NAMES
from mfirrn.io.machine import machine_line

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos68 import match  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
MIN_SIDE = 20.0  # pixels: faces smaller than this were not counted (not required)


def load_photos(datasets: Path) -> list[tuple[str, Path, dict]]:
    """(name, file, labels) of every held-out photo; faces-68 files are checked against their sha256."""
    out = []
    for asset, row in read_asset_table(DATA / "wild.tsv"):
        if row["role"] == "photo":
            out.append((asset.path.split("/", 4)[-1], fetch_asset(asset), json.loads(row["labels"])))
    for line in (DATA / "wild-faces68.tsv").read_text().splitlines()[3:]:
        name, sha, labels = line.split("\t")
        path = datasets / "faces-68" / name
        if not path.is_file() or sha256_of(path) != sha:
            raise SystemExit(f"{path}: missing or not the file the labels are for (sha256 {sha[:12]}...)")
        out.append(("faces-68/" + name, path, json.loads(labels)))
    return out


def load_clips(tune: bool) -> list[tuple[str, Path]]:
    role = "tune-clip" if tune else "clip"
    return [(asset.path.split("/", 4)[-1], fetch_asset(asset))
            for asset, row in read_asset_table(DATA / "wild.tsv") if row["role"] == role]


def score_photo(boxes: np.ndarray, labels: dict) -> tuple[int, int, int]:
    """(true, false, missed) faces for face boxes (K, 4) against a photo's labels."""
    gt = np.array(labels.get("faces", []), np.float64).reshape(-1, 4)
    ignore = np.array(labels.get("ignore", []), np.float64).reshape(-1, 4)
    centres = (boxes[:, :2] + boxes[:, 2:4]) / 2
    gt_pts = np.stack([gt[:, :2], gt[:, 2:4]], axis=1)  # (G, 2, 2): match() reads the box of these points
    pairs = match([c[None] for c in centres], gt_pts) if len(gt) else []
    matched = {i for i, _ in pairs}
    false = 0
    for i, c in enumerate(centres):
        if i in matched:
            continue
        if any(x0 <= c[0] <= x1 and y0 <= c[1] <= y1 for x0, y0, x1, y1 in ignore):
            continue
        false += 1
    counted = [g for g in range(len(gt)) if max(gt[g, 2] - gt[g, 0], gt[g, 3] - gt[g, 1]) >= MIN_SIDE]
    missed = len([g for g in counted if g not in {g2 for _, g2 in pairs}])
    return len(pairs), false, missed


def dev_split(datasets: Path):
    from mfirrn.evaluation.benchmark import AFLW2000

    data = AFLW2000.load(datasets / "aflw2000-3d-dev")
    return [(data.root / "AFLW2000-3D" / name, data.gt[i][None]) for i, name in enumerate(data.names)]


def face_boxes(faces) -> np.ndarray:
    """Landmark boxes (F, 4) of reconstructed faces, (0, 4) for none: what the photo scores compare."""
    return landmark_boxes(np.array([f.landmarks for f in faces])) if faces else np.zeros((0, 4))


def dev_nme(rec: Reconstructor, dev) -> list[float]:
    """68-point NME (%) of the face ``rec`` keeps nearest the annotated face, for each dev-split photo (``dev``:
    :func:`dev_split`) where it keeps one."""
    errors = []
    for path, gt in dev:
        lms = [f.landmarks for f in rec(read_image(path))]
        pairs = match([lm[None, :, :2].mean(1) for lm in lms], gt) if lms else []
        if pairs:
            errors.append(float(nme(lms[pairs[0][0]][None, :, :2], gt)[0]) * 100)
    return errors


# ------------------------------------------------------------------------------------ 1. detectors
def detectors_section(photos, dev, names: list[str]) -> None:
    print("\n## Detectors: raw boxes on the held-out photos, recall over all poses on the dev split")
    n_faces = sum(len(lab.get("faces", [])) for _, _, lab in photos)
    print(f"held-out: {len(photos)} photos, {n_faces} counted faces; dev split: {len(dev)} originals (450x450)")
    print("| detector | false faces (held-out) | missed (held-out) | dev-split found | dev extra boxes "
          "| ms per photo (median, dev) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        try:
            det = create_detector(name, backend="onnxruntime" if name == "faceboxes" else "torch", threads=1)
        except (ImportError, ValueError, RuntimeError) as exc:
            print(f"| {name} | not available: {exc} | | | | |")
            continue
        false = missed = 0
        for _, path, lab in photos:
            b = det(read_image(path))
            _, f, m = score_photo(b[:, :4], lab)
            false, missed = false + f, missed + m
        found = extra = 0
        ms = []
        for path, gt in dev:
            img = read_image(path)
            t0 = time.perf_counter()
            b = det(img)
            ms.append((time.perf_counter() - t0) * 1000)
            pairs = match([((x[:2] + x[2:4]) / 2)[None] for x in b], gt) if len(b) else []
            found, extra = found + (len(pairs) > 0), extra + len(b) - len(pairs)
        print(f"| {name} | {false} | {missed} | {found}/{len(dev)} | {extra} | {np.median(ms):.0f} |")


# ------------------------------------------------------------------------------------ 2. photos
def cli_model(model_name: str):
    """The regressor as ``mfirrn reconstruct`` runs it on a CPU by default (ONNX Runtime, one thread)."""
    from mfirrn.inference.onnx import OnnxRuntimeModel

    return OnnxRuntimeModel.from_model(models.create(model_name), num_threads=1)


PROPOSAL_SWEEP = (0.5, 0.4, 0.3, 0.2, 0.1, 0.05)  # FaceBoxes thresholds of the information-only sweep
SURE = 0.5  # the sweep's second variant: proposals scoring <= 0.5 kept only with a confidence >= SURE


def photos_section(photos, dev, model_name: str, sweep: list[float]) -> None:
    model = cli_model(model_name)
    opts = dict(dense=False, detector_backend="onnxruntime", detector_threads=1)
    verified = Reconstructor(model, **opts)
    plain = Reconstructor(model, verify=False, **opts)
    low = Reconstructor(model, detector_threshold=min(PROPOSAL_SWEEP), min_confidence=0.0, **opts)
    low._verifier = verified.verifier
    threshold, proposal = verified.min_confidence, verified.detector_threshold
    print(f"\n## Photos: the pipeline with and without the face verifier (default threshold {threshold}; "
          f"FaceBoxes' threshold {SCORE_THRESHOLD:g} without it, {proposal:g} with it)")
    recs = {f"without verifier (FaceBoxes {SCORE_THRESHOLD:g})": plain,
            f"with verifier (default, {threshold}; FaceBoxes {proposal:g})": verified}
    if proposal != SCORE_THRESHOLD:
        at_half = Reconstructor(model, detector_threshold=SCORE_THRESHOLD, **opts)
        at_half._verifier = verified.verifier
        recs[f"with verifier, FaceBoxes {SCORE_THRESHOLD:g}"] = at_half
    if verified.detector_recheck:
        once = Reconstructor(model, detector_recheck=False, **opts)
        once._verifier = verified.verifier
        recs["with verifier, near misses not rechecked (--no-detector-recheck)"] = once
    if verified.looking_down_confidence > verified.min_confidence:
        level = Reconstructor(model, looking_down_confidence=0.0, **opts)
        level._verifier = verified.verifier
        recs["with verifier, faces looking steeply down held to the default threshold only "
             "(--looking-down-confidence 0)"] = level
    strict = Reconstructor(model, verifier="strict", **opts)
    recs[f"with the strict verifier (--verifier strict, {strict.min_confidence})"] = strict
    recs[f"with BlazeFace's second opinion (--verifier blazeface, {threshold})"] = Reconstructor(
        model, verifier="blazeface", **opts)
    rows: dict[str, list] = {key: [] for key in recs}
    confid: list[tuple[tuple, dict]] = []
    proposals: list[tuple[tuple, dict]] = []
    times: dict[str, list] = {key: [] for key in recs}
    for k, (_, path, lab) in enumerate(photos):
        img = read_image(path)
        order = list(recs.items())
        for key, rec in order[k % len(order):] + order[:k % len(order)]:
            t0 = time.perf_counter()
            faces = rec(img)
            times[key].append((time.perf_counter() - t0) * 1000)
            rows[key].append(score_photo(face_boxes(faces), lab))
        confid.append((verified_any(verified, img), lab))
        proposals.append((every_proposal(low, img), lab))
    # the options that detect a photo again (four turns of it; the whole photo larger), each in a pass of its own:
    # side by side with the others, the extra detections slowed whichever pipeline came next, the verifier's time
    # ratio among them
    passes = {"with verifier, the photo also searched turned by 90 and 180 degrees (--turned-faces; a pass of its "
              "own)": dict(turned_faces=True)}
    if verified.detector_recheck:
        passes["with verifier, photos with small faces looked at again larger (--detector-larger-look; a pass of its "
               "own)"] = dict(larger_look=True)
    for key, option in passes.items():
        alone = Reconstructor(model, **option, **opts)
        alone._verifier = verified.verifier
        rows[key], times[key] = [], []
        for _, path, lab in photos:
            img = read_image(path)
            t0 = time.perf_counter()
            faces = alone(img)
            times[key].append((time.perf_counter() - t0) * 1000)
            rows[key].append(score_photo(face_boxes(faces), lab))
    print("| pipeline | faces found | false faces | missed faces | ms per photo (median) |")
    print("|---|---:|---:|---:|---:|")
    for key, r in rows.items():
        t, f, m = np.sum(r, axis=0)
        print(f"| {key} | {t} | {f} | {m} | {np.median(times[key]):.1f} |")
    for key, r in rows.items():
        for what, col in (("false faces", 1), ("missed faces", 2)):
            where = [f"{name} ({x[col]})" for (name, _, _), x in zip(photos, r) if x[col]]
            print(f"{key}, {what}: {', '.join(where) or 'none'}")
    names = list(recs)
    for a, b in [(1, 0)] + [(2, 0), (1, 2)] * (len(names) == 3):
        ta, tb = times[names[a]], times[names[b]]
        print(f"time per photo, {names[a]} / {names[b]}: x{np.median(ta) / np.median(tb):.3f} (medians), "
              f"x{np.mean(ta) / np.mean(tb):.3f} (means) of {len(photos)} photos, side by side")
    print("\nThreshold sweep (information only; the default was chosen on the verifier's validation set):")
    print("| min confidence | false faces | missed faces |")
    print("|---:|---:|---:|")
    for thr in sweep:
        f = m = 0
        for (conf, boxes, angles), lab in confid:
            _, ff, mm = score_photo(boxes[conf >= confidence_needed(*angles.T, thr)], lab)
            f, m = f + ff, m + mm
        print(f"| {thr:g} | {f} | {m} |")
    print(f"\nFaceBoxes threshold sweep (information only; the default was chosen on tuning data, "
          f"benchmarks/proposals.py): the proposals of one run at {min(PROPOSAL_SWEEP):g} cut at each threshold "
          f"(lowering the threshold only adds faces), kept at confidence >= {threshold}, and, second variant, "
          f"proposals scoring <= {SCORE_THRESHOLD:g} kept only at confidence >= {SURE}")
    print(f"| FaceBoxes threshold | proposals per photo | false faces | missed faces | false (>= {SURE} below "
          f"{SCORE_THRESHOLD:g}) | missed (same) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for t in PROPOSAL_SWEEP:
        n = f1 = m1 = f2 = m2 = 0
        for (score, conf, boxes, _, angles), lab in proposals:
            n += int((score > t).sum())
            needed = confidence_needed(*angles.T, threshold)
            _, ff, mm = score_photo(boxes[(score > t) & (conf >= needed)], lab)
            f1, m1 = f1 + ff, m1 + mm
            sure = np.maximum(np.where(score > SCORE_THRESHOLD, threshold, max(SURE, threshold)), needed)
            _, ff, mm = score_photo(boxes[(score > t) & (conf >= sure)], lab)
            f2, m2 = f2 + ff, m2 + mm
        print(f"| {t:g} | {n / len(proposals):.2f} | {f1} | {m1} | {f2} | {m2} |")
    dev_sweep(low, dev, threshold, proposal)


def every_proposal(rec: Reconstructor, img: np.ndarray):
    """Every face ``rec`` reconstructs (its ``min_confidence`` 0): scores, confidences (F,), landmark boxes (F, 4),
    landmarks (F, 68, 3) and (yaw, pitch) (F, 2) in degrees (for :func:`confidence_needed`)."""
    faces = rec(img)
    lms = np.array([f.landmarks for f in faces]).reshape(-1, 68, 3)
    return (np.array([f.score for f in faces]), np.array([f.confidence for f in faces]),
            landmark_boxes(lms) if faces else np.zeros((0, 4)), lms, pose_angles(faces))


def pose_angles(faces) -> np.ndarray:
    """(yaw, pitch) (F, 2) in degrees of ``faces``: what :func:`confidence_needed` reads."""
    return np.array([[f.pose["yaw"], f.pose["pitch"]] for f in faces], np.float64).reshape(-1, 2)


def dev_sweep(low: Reconstructor, dev, threshold: float, proposal: float) -> None:
    """Dev-split recall and NME of the verified pipeline at each FaceBoxes threshold of the sweep, from one run of
    ``low`` (every proposal at the sweep's lowest threshold): faces found (the pipeline's face nearest the GT face's
    centre, inside its landmarks' box) and kept by the verifier, their 68-point NME (GT box normaliser), the
    NME on the dev photos whose face is kept at 0.5 (the same faces, unless a new face lands nearer), and the kept
    faces that match no GT face (each dev photo shows one face; an extra one is most often a false face)."""
    runs = [(every_proposal(low, read_image(path)), gt) for path, gt in dev]
    kept_at_half: set[int] = set()
    print(f"\nDev split ({len(dev)} originals), verified pipeline (confidence >= {threshold}) at each FaceBoxes "
          f"threshold (default {proposal:g}):")
    print("| FaceBoxes threshold | found | kept | NME mean on kept | NME mean on those kept at 0.5 "
          "| other faces kept |")
    print("|---:|---:|---:|---:|---:|---:|")
    for t in PROPOSAL_SWEEP:
        found = kept = extra = 0
        nmes, same = [], []
        for k, ((score, conf, _, lms, angles), gt) in enumerate(runs):
            take = score > t
            pairs = match([lm[None, :, :2].mean(1) for lm in lms[take]], gt) if take.any() else []
            if pairs:
                found += 1
            keep = take & (conf >= confidence_needed(*angles.T, threshold))
            pairs = match([lm[None, :, :2].mean(1) for lm in lms[keep]], gt) if keep.any() else []
            extra += int(keep.sum()) - len(pairs)
            if not pairs:
                continue
            kept += 1
            e = float(nme(lms[keep][pairs[0][0]][None, :, :2], gt)[0]) * 100
            nmes.append(e)
            if t == SCORE_THRESHOLD:
                kept_at_half.add(k)
            if k in kept_at_half:
                same.append(e)
        print(f"| {t:g} | {found}/{len(dev)} | {kept}/{len(dev)} | {np.mean(nmes):.3f} % | {np.mean(same):.3f} % "
              f"| {extra} |")


def verified_any(rec: Reconstructor, img: np.ndarray):
    """Every detected face with its confidence, nothing dropped: confidence (F,), landmark boxes (F, 4) and (yaw,
    pitch) (F, 2) in degrees (a face is kept when its confidence reaches :func:`confidence_needed` of them)."""
    boxes = rec.detector(img)
    faces = rec(img, boxes=boxes) if len(boxes) else []
    return np.array([f.confidence for f in faces]), face_boxes(faces), pose_angles(faces)


# ------------------------------------------------------------------------------------ 3. video
def _runs(flags: list[bool]) -> np.ndarray:
    """Mark the True entries that belong to runs of 5 or more consecutive Trues."""
    flags = np.asarray(flags, bool)
    out = np.zeros(len(flags), bool)
    i = 0
    while i < len(flags):
        if flags[i]:
            j = i
            while j < len(flags) and flags[j]:
                j += 1
            if j - i >= 5:
                out[i:j] = True
            i = j
        else:
            i += 1
    return out


def video_metrics(reference: list[list[tuple[np.ndarray, float]]], tracked: list[list[tuple[int, np.ndarray, float]]]):
    """(ghost face-frames, tracked face-frames, missed confident, confident, implausible) for one clip.

    ``reference[t]``: the photo pipeline's faces of frame t as (landmark box, confidence);
    ``tracked[t]``: the tracker's as (id, landmark box, pitch)."""
    ghost_flags: dict[int, list[tuple[int, bool]]] = {}
    missed = confident = implausible = n_tracked = 0
    for t, (ref, trk) in enumerate(zip(reference, tracked)):
        rb = np.array([b for b, _ in ref]).reshape(-1, 4)
        tb = np.array([b for _, b, _ in trk]).reshape(-1, 4)
        for tid, b, pitch in trk:
            n_tracked += 1
            implausible += abs(pitch) > 90
            under = len(rb) > 0 and roi_iou(b, rb).max() > 0.3
            ghost_flags.setdefault(tid, []).append((t, not under))
        for b, c in ref:
            if c >= 0.9:
                confident += 1
                missed += not (len(tb) > 0 and roi_iou(b, tb).max() > 0.3)
    ghosts = 0
    for flags in ghost_flags.values():  # runs of consecutive frames of one track
        frames = [t for t, _ in flags]
        g = [gh for _, gh in flags]
        split = [0] + [k for k in range(1, len(frames)) if frames[k] != frames[k - 1] + 1] + [len(frames)]
        for a, b in zip(split[:-1], split[1:]):
            ghosts += int(_runs(g[a:b]).sum())
    return ghosts, n_tracked, missed, confident, implausible


def video_section(clips, model_name: str, max_frames: int, verifier: str = VERIFIER_NAMES[0]) -> None:
    from mfirrn.video.io import VideoReader
    from mfirrn.video.tracking import FaceTracker, TrackerSettings, track_video

    model = cli_model(model_name)
    rec = Reconstructor(model, dense=False, detector_backend="onnxruntime", detector_threads=1, verifier=verifier)
    print(f"\n## Video: the tracker against the photo pipeline on every frame (first {max_frames} frames per clip; "
          f"verifier {verifier})")
    configs = {"former tracker (detect on loss only, no verification)": None,
               "defaults, frame difference alone as the cut test": TrackerSettings(scene_cut_histogram=0.0),
               "defaults, a track starts at any confidence": TrackerSettings(start_confidence=0.0),
               "defaults, no turn-speed test (max_turn_speed 0)": TrackerSettings(max_turn_speed=0.0),
               "defaults": TrackerSettings()}
    print("| clip | frames | tracker | tracked face-frames | ghost | missed confident | implausible | ids "
          "| detector frames | frames/s |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    totals = {k: np.zeros(5) for k in configs}
    for name, path in clips:
        with VideoReader(path, max_frames=max_frames) as reader:
            frames = [(i, t, f) for i, t, f in reader]
        reference = []
        for _, _, frame in frames:
            conf, boxes, angles = verified_any(rec, frame)
            needed = rec.confidence_needed(*angles.T)
            reference.append([(b, c) for b, c, n in zip(boxes, conf, needed) if c >= n])
        for label, settings in configs.items():
            if settings is None:
                old = Reconstructor(model, dense=False, verify=False, detector_backend="onnxruntime",
                                    detector_threads=1)
                tracker = FaceTracker(old, TrackerSettings(redetect_every=0, scene_cut=0, max_unconfirmed=10 ** 9,
                                                           start_confidence=0.0))
            else:
                tracker = FaceTracker(rec, settings)
            out = [[] for _ in frames]
            ids = set()
            t0 = time.perf_counter()
            for i, _, _, faces in track_video(frames, tracker):
                out[i] = [(tf.id, landmark_boxes(tf.face.landmarks[None])[0], tf.face.pose["pitch"]) for tf in faces]
                ids.update(tf.id for tf in faces)
            fps = len(frames) / (time.perf_counter() - t0)
            g, n, m, c, imp = video_metrics(reference, out)
            totals[label] += [g, n, m, c, imp]
            print(f"| {name.split('/')[-1]} | {len(frames)} | {label} | {n} | {g} ({100 * g / max(n, 1):.1f} %) "
                  f"| {m}/{c} ({100 * m / max(c, 1):.1f} %) | {imp} | {len(ids)} | {tracker.n_detections} "
                  f"| {fps:.1f} |")
    for label, (g, n, m, c, imp) in totals.items():
        print(f"| **all** | | {label} | {int(n)} | {int(g)} ({100 * g / max(n, 1):.1f} %) "
              f"| {int(m)}/{int(c)} ({100 * m / max(c, 1):.1f} %) | {int(imp)} | | | |")


def cuts_section(clips, max_frames: int) -> None:
    from mfirrn.video.io import VideoReader
    from mfirrn.video.tracking import TrackerSettings, frame_difference, histogram_change

    defaults = TrackerSettings()
    print(f"\n## Scene cuts: frame difference (0-255) and histogram change (0-1) on the tuning clips; defaults "
          f"{defaults.scene_cut:g} and {defaults.scene_cut_histogram:g}, a cut needs both")
    print("| clip | frames | largest frame difference (histogram change there) | largest histogram change "
          "(frame difference there) |")
    print("|---|---:|---|---|")
    ends = {}
    within = []
    for name, path in clips:
        with VideoReader(path, max_frames=max_frames) as reader:
            frames = [f for _, _, f in reader]
        ends[name] = (frames[0], frames[-1])
        d = np.array([frame_difference(a, b) for a, b in zip(frames, frames[1:])])
        h = np.array([histogram_change(a, b) for a, b in zip(frames, frames[1:])])
        i, j = int(d.argmax()), int(h.argmax())
        within.append((d.max(), h.max(), int(((d > defaults.scene_cut) & (h > defaults.scene_cut_histogram)).sum()),
                       int((d > defaults.scene_cut).sum())))
        print(f"| {name.split('/')[-1]} | {len(frames)} | {d[i]:.1f} ({h[i]:.3f}) | {h[j]:.3f} ({d[j]:.1f}) |")
    pairs = [(a, b) for a in ends for b in ends if a != b]
    d = np.array([frame_difference(ends[a][1], ends[b][0]) for a, b in pairs])
    h = np.array([histogram_change(ends[a][1], ends[b][0]) for a, b in pairs])
    print(f"- within the clips: frame difference at most {max(w[0] for w in within):.1f}, histogram change at most "
          f"{max(w[1] for w in within):.3f}; frames taken for cuts: {sum(w[2] for w in within)} by the defaults, "
          f"{sum(w[3] for w in within)} by the frame difference alone")
    print(f"- across a cut ({len(pairs)} pairs): frame difference {d.min():.1f} to {d.max():.1f}, histogram change "
          f"{h.min():.3f} to {h.max():.3f}; cuts found by the defaults "
          f"{int(((d > defaults.scene_cut) & (h > defaults.scene_cut_histogram)).sum())}/{len(pairs)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=os.environ.get("MFIRRN_DATASETS", "../shared/datasets"))
    ap.add_argument("--model", default=models.DEFAULT_MODEL)
    ap.add_argument("--sections", default="detectors,photos,video,cuts")
    ap.add_argument("--detectors", default=",".join(available_detectors()),
                    help="detectors compared in the detectors section (default: every registered one)")
    ap.add_argument("--sweep", default="0,0.1,0.2,0.3,0.5,0.7,0.9", help="min-confidence values of the sweep")
    ap.add_argument("--max-frames", type=int, default=300, help="frames per clip (default %(default)s)")
    ap.add_argument("--tune", action="store_true", help="video on the tune-clip rows instead of the held-out clips")
    ap.add_argument("--verifier", choices=VERIFIER_NAMES, default=VERIFIER_NAMES[0],
                    help="the verifier of the video section's tracker and photo pipeline (default %(default)s)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    datasets = Path(args.datasets)
    sections = args.sections.split(",")
    print(f"CPU: {machine_line()}; one thread per network; model {args.model}")
    photos = load_photos(datasets) if {"detectors", "photos"} & set(sections) else []
    dev = dev_split(datasets) if {"detectors", "photos"} & set(sections) else []
    if "detectors" in sections:
        detectors_section(photos, dev, args.detectors.split(","))
    if "photos" in sections:
        photos_section(photos, dev, args.model, [float(v) for v in args.sweep.split(",")])
    if "video" in sections:
        video_section(load_clips(args.tune), args.model, args.max_frames, args.verifier)
    if "cuts" in sections:
        cuts_section(load_clips(True), args.max_frames)


if __name__ == "__main__":
    main()
