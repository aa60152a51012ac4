"""Faces across video frames: tracking as 3DDFA does it, identities, and temporal smoothing.

* **Tracking** (after 3DDFA / 3DDFA_V2's video demos): between detections each face's crop comes from
  its previous frame's 68 landmarks (:func:`mfirrn.geometry.crop.roi_from_landmarks`), and a second
  network pass from the new landmarks' crop refines it (3DDFA's two-step, per frame). A face cut by the
  image border, whose landmarks' crop leaves the image, is followed from its detector box instead.
* **Detection** runs on the first frame, every ``redetect_every`` frames, on scene cuts (a cheap test: the
  frame changes, :func:`frame_difference`, and so does its histogram, :func:`histogram_change`) and whenever
  a track ends or none is left; it is the photo pipeline, so its faces are verified.
* **Every track is verified every frame** and ends when the face verifier's confidence
  (:mod:`mfirrn.inference.verify`) stays below the threshold (higher for a face looking steeply down: the back
  of a head is read as one), when its pose is impossible
  (|pitch| > 90 degrees: such a face is never output), when detections stop confirming it (no detection
  over it on ``max_unconfirmed`` detection frames in a row), on a scene cut, or when its roi leaves
  the image, shrinks below ``min_face`` or jumps in size by more than ``max_scale_jump`` and the detector,
  run on that frame, does not find the face there (its crop overlapping the track's, or framing the same place at
  up to twice or half the size, :func:`concentric`: a small face's crop, fitted from its landmarks, can shrink
  faster than the face).
* **Identities**: each track keeps an integer id; a detection overlapping a tracked face (roi IoU >
  ``match_iou``) is that face; a new detection overlapping a face lost in the last ``reuse_frames``
  frames gets its id back (short occlusions keep ids), never across a scene cut (a face whose crop goes on
  across a frame the cut test fires on is no face of another shot: it keeps its id); a cut within
  ``transition_seconds`` of the previous one (a wipe) keeps the ids of the faces found since that cut where
  the detector finds them again, and when the picture of before the cut comes back as soon (a camera
  flash), its faces take back their ids (through the look-ahead window, the flash's faces too); two
  tracks that converge on one face are merged (the older id stays). Each frame's ``events`` say which tracks
  started and ended, and why.
* **Smoothing** of all 62 params expressed in the *image* frame
  (:func:`mfirrn.geometry.frames.params_to_image_camera`, so crops that move with the face do not move the params). Two filters:

  - ``"window"`` (default for video files; :func:`track_video`): 3DDFA_V2's look-ahead idea done as a
    Savitzky-Golay fit — each frame's params are replaced by the value at that frame of a polynomial
    (``order`` 2) least-squares fitted over the ``window`` frames centred on it (fewer at the ends of a
    track). No lag (exact for motion of constant acceleration), at the cost of ``window // 2`` frames of
    delay, which only matters live. A head that bobs or shakes changes direction within 11 frames, where one
    polynomial cannot follow it: at each frame the window shrinks (down to 5 frames) until its landmarks are
    within ``window_tolerance`` (0.5 % of the face size) of the 5-frame fit's, and a frame whose 5-frame fit
    is more than ``window_raw_tolerance`` (2 %) from its own params keeps its own (settings chosen by
    ``benchmarks/smoothing.py``, docs/experiments/video.md);
  - ``"one-euro"`` (:class:`FaceSmoother`, causal, for cameras): a One-Euro filter
    (:mod:`mfirrn.video.smoothing`), each param scaled to the pixels of landmark motion it causes so one
    ``min_cutoff`` / ``beta`` suits pose, shape and expression. Any causal filter lags behind moving
    faces: measured on the synthetic clips it cuts less jitter than the window for the same accuracy. Its lag
    is bounded: the output stays within ``one_euro_tolerance`` (1 % of the face size) of the frame's own
    landmarks.

  Landmarks, mesh and pose are rebuilt from the smoothed params, so every output stays consistent.
  Tracking itself uses the raw (unsmoothed) landmarks, so smoothing never shifts the crops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import cv2
import numpy as np
import torch

from mfirrn.evaluation.metrics import nme
from mfirrn.geometry.crop import SAME_FACE_IOU, crop_image, roi_from_landmarks, roi_iou
from mfirrn.geometry.frames import Convention, params_from_image_camera, params_to_image_camera
from mfirrn.geometry.params import PARAM_SPEC, pose_from_params
from mfirrn.geometry.pose import rotation_angle, rotation_from_params
from mfirrn.video.smoothing import OneEuroFilter, OneEuroSettings

__all__ = ["SMOOTHERS", "TrackerSettings", "TrackedFace", "FaceSmoother", "FaceTracker", "WindowSmoother",
           "track_video", "frame_difference", "histogram_change", "plausible", "MAX_PITCH"]


# ------------------------------------------------------------------------------------ image-frame params
# ------------------------------------------------------------------------------------ smoothing
class _ImageLandmarks:
    """The 68 landmarks (68, 2), image pixels, of an image-frame vector (62,) (camera ``M`` flattened, then the
    50 shape and expression coefficients), as the smoothers measure how far a smoothed face strays."""

    def __init__(self, bfm) -> None:
        self.u = bfm.u_kp.detach().cpu().double().numpy().reshape(-1, 3)  # (68, 3) sparse mean shape
        self.w = torch.cat([bfm.w_shp_kp, bfm.w_exp_kp], 1).detach().cpu().double().numpy()  # (204, 50)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        M = x[:12].reshape(3, 4)
        S = self.u + (self.w @ x[12:]).reshape(-1, 3)
        return S @ M[:2, :3].T + M[:2, 3]

    def deviation(self, landmarks: np.ndarray, x: np.ndarray) -> float:
        """How far the landmarks of ``x`` are from ``landmarks`` (68, 2): their NME with ``landmarks`` as the
        reference (mean distance over the square root of the reference's box area; a fraction)."""
        return float(nme(self(x)[None], np.asarray(landmarks)[None])[0])


class FaceSmoother:
    """One-Euro smoothing of one face's params in the image frame (see the module docstring).

    Each of the 62 image-frame numbers (12 of the camera ``M``, 40 shape, 10 expression) is scaled by the
    RMS landmark displacement (pixels) a unit change of it causes on the first frame, filtered, and
    scaled back; ``settings`` are therefore in pixels (``beta`` in 1/pixel).

    ``tolerance`` > 0 bounds the lag: where the filtered landmarks are further than ``tolerance`` times the
    face size from this frame's own, the output is moved towards the frame's own params until they are that
    far (a blend of the two image-frame vectors), and the filter goes on from there.
    """

    def __init__(self, bfm, convention: Convention, settings: OneEuroSettings = OneEuroSettings(),
                 tolerance: float = 0.0) -> None:
        self.bfm, self.convention, self.tolerance = bfm, convention, tolerance
        self.filter = OneEuroFilter(settings)
        self._scale: Optional[np.ndarray] = None
        self._landmarks = _ImageLandmarks(bfm) if tolerance > 0 else None

    def _pixel_scales(self, M: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
        u = self.bfm.u_kp.detach().cpu().double().numpy()
        ws = self.bfm.w_shp_kp.detach().cpu().double().numpy()
        we = self.bfm.w_exp_kp.detach().cpu().double().numpy()
        S = (u + ws @ coeffs[:PARAM_SPEC.shape] + we @ coeffs[PARAM_SPEC.shape:]).reshape(-1, 3)
        cam = np.sqrt((S ** 2).mean(axis=0))  # px per unit of M[r, c], c < 3
        m_scale = np.concatenate([np.tile(np.append(cam, 1.0), 3)])
        basis = np.concatenate([ws, we], axis=1).reshape(-1, 3, ws.shape[1] + we.shape[1])  # (68, 3, 50)
        disp = np.einsum("rc,kcj->krj", M[:, :3], basis)  # image px per unit coefficient
        c_scale = np.sqrt((disp ** 2).sum(axis=1).mean(axis=0))
        return np.maximum(np.concatenate([m_scale, c_scale]), 1e-12)

    def __call__(self, t: float, params: np.ndarray, roi: np.ndarray) -> np.ndarray:
        """Smoothed params (62,) relative to ``roi`` (4,) from this frame's params (62,) at time ``t`` (s)."""
        M = params_to_image_camera(params, roi, self.convention)
        coeffs = np.asarray(params, np.float64)[12:]
        if self._scale is None:
            self._scale = self._pixel_scales(M, coeffs)
        raw = np.concatenate([M.reshape(-1), coeffs])
        y = self.filter(t, raw * self._scale) / self._scale
        if self._landmarks is not None:
            dev = self._landmarks.deviation(self._landmarks(raw), y)
            if dev > self.tolerance:
                y = raw + (self.tolerance / dev) * (y - raw)
                self.filter.restart_from(y * self._scale)
        return params_from_image_camera(y[:12].reshape(3, 4), y[12:], roi, self.convention)


# ------------------------------------------------------------------------------------ tracking
SMOOTHERS = ("window", "one-euro", "none")


@dataclass(frozen=True)
class TrackerSettings:
    """How faces are found and followed from frame to frame (see the module docstring).

    ``smooth``: ``"window"``, ``"one-euro"`` or ``"none"``; ``window`` (odd, frames) and ``order`` of the
    look-ahead fit, ``window_tolerance`` and ``window_raw_tolerance`` (fractions of the face size; 0 turns each
    off) how it follows fast moves (:class:`WindowSmoother`); ``one_euro``: the causal filter's settings and
    ``one_euro_tolerance`` the bound on its lag (a fraction of the face size, :class:`FaceSmoother`; 0: unbounded).

    A detection starts a track when its confidence is at least ``start_confidence`` (a face in doubt is not
    followed until a detection is surer of it); a track goes on down to ``min_confidence``. With a
    ``min_confidence`` of 0 (the verifier filters nothing) every detection starts a track.

    When the detector runs: on the first frame, whenever no face is tracked or a track ends, every
    ``redetect_every`` frames (0: never periodically) and on scene cuts: frames whose mean absolute
    grey-level difference to the previous frame, both shrunk to 64 pixels wide, exceeds ``scene_cut``
    (0-255; 0: no cut test) *and* whose grey-level histogram changes by more than ``scene_cut_histogram``
    (:func:`histogram_change`, 0-1; 0: the difference alone decides). The histogram keeps a face that fills
    the frame and moves fast (a close-up, a jump cut within one shot) from passing for a cut. A track whose face
    goes on across a frame the test takes for a cut is no face of another shot: when the grey crop the track
    follows it to and its crop in the frame before correlate by at least ``cut_continuity``
    (:func:`crop_continuity`; 0: never) it goes on (a dancer under stage lights, a webcam's exposure, a low frame
    rate), the other tracks end.

    When a track ends: on a scene cut (the faces after it are new faces, with new ids), except that a cut within
    ``transition_seconds`` of the previous one continues one transition (a wipe or a push, which moves
    the picture over several frames, fires the test on several of them): a track started since that earlier
    cut goes on with its id where the cut frame's detection confirms it, and ends if none does; and when a frame
    within ``transition_seconds`` of the transition's first cut is no cut from the frame before that cut (a camera
    flash: the picture of before is back), the tracks of the flash end and the faces of before take back their
    ids; when its confidence (the face verifier's, computed every frame) stays below ``min_confidence`` (``None``: the
    pipeline's threshold; for a face looking steeply down, the pipeline's ``looking_down_confidence``,
    :func:`mfirrn.inference.verify.confidence_needed`) for ``low_confidence_frames`` frames in a row, or its pitch
    leaves +-90 degrees for as many (:func:`plausible`; a face in doubt is not output, and no detection with such a pitch
    starts a track); when its head turns faster than ``max_turn_speed`` degrees per second from one frame to the next
    (:func:`mfirrn.geometry.pose.rotation_angle`; a fit that collapsed onto another head in front of it, a ghost that
    flipped over; 0: never), said ``pose jump`` (a detection over the track that would turn it so fast leaves the
    track on its own fit: a face half hidden behind another head, whose detection's fit collapses onto the head in
    front); when no detection
    overlaps it on ``max_unconfirmed`` detection frames in a row (with ``concentric_drift``, a detection that frames
    its place at another scale, :func:`concentric`, and that no other track overlaps confirms it and becomes its crop:
    a small face's crop that creeps up its forehead, smaller, is not left beside a second track the detector starts on
    the same face); when its roi leaves the image (less than ``min_inside`` of it inside), shrinks below ``min_face``
    pixels or changes size by more than ``max_scale_jump`` in one frame (said ``left the image`` when that crop
    reaches past the border), unless the detector, run on that frame, finds the face where the track was
    (overlapping its crop, or :func:`concentric` with it): a face cut by the image border, whose crop from its
    landmarks reaches far outside, goes on with its id instead of ending and starting again, and is then followed
    from its detector box (the photo pipeline from that box, moved with the face's landmarks) until its landmarks'
    crop fits the image again.

    ``max_faces``: keep at most this many faces (largest first; 0 = all); ``match_iou``: roi overlap
    that makes a detection the same face; ``reuse_frames``: how long an ended track's id can be given
    back to a face found at the same place.
    """

    smooth: str = "window"
    window: int = 11
    order: int = 2
    window_tolerance: float = 0.005
    window_raw_tolerance: float = 0.02
    one_euro: OneEuroSettings = field(default_factory=OneEuroSettings)
    one_euro_tolerance: float = 0.01
    redetect_every: int = 10
    scene_cut: float = 15.0
    scene_cut_histogram: float = 0.1
    cut_continuity: float = 0.6
    transition_seconds: float = 0.25
    min_confidence: Optional[float] = None
    start_confidence: float = 0.5
    low_confidence_frames: int = 2
    max_unconfirmed: int = 2
    max_faces: int = 0
    min_face: float = 24.0
    max_scale_jump: float = 1.5
    min_inside: float = 0.5
    max_turn_speed: float = 900.0
    match_iou: float = 0.3
    reuse_frames: int = 30
    concentric_drift: bool = True

    def __post_init__(self) -> None:
        if self.smooth not in SMOOTHERS:
            raise ValueError(f"smooth must be one of {', '.join(SMOOTHERS)}, got {self.smooth!r}")
        if self.window < 1 or self.window % 2 == 0 or self.order < 0:
            raise ValueError(f"the smoothing window must be an odd number of frames >= 1 and the order >= 0, "
                             f"got window {self.window}, order {self.order}")
        if not (0 <= self.window_tolerance < 1 and 0 <= self.window_raw_tolerance < 1 and 0 <= self.one_euro_tolerance < 1):
            raise ValueError(f"the smoothers' tolerances are fractions of the face size in [0, 1), got "
                             f"{self.window_tolerance}, {self.window_raw_tolerance} and {self.one_euro_tolerance}")
        if self.min_confidence is not None and not 0 <= self.min_confidence <= 1:
            raise ValueError(f"min_confidence must lie in [0, 1], got {self.min_confidence}")
        if not 0 <= self.start_confidence <= 1:
            raise ValueError(f"start_confidence must lie in [0, 1], got {self.start_confidence}")
        if (self.redetect_every < 0 or self.scene_cut < 0 or not self.transition_seconds >= 0
                or self.low_confidence_frames < 1 or self.max_unconfirmed < 1):
            raise ValueError("redetect_every, scene_cut and transition_seconds take numbers >= 0, "
                             "low_confidence_frames and max_unconfirmed numbers >= 1")
        if not 0 <= self.scene_cut_histogram <= 1:
            raise ValueError(f"scene_cut_histogram must lie in [0, 1], got {self.scene_cut_histogram}")
        if not self.max_turn_speed >= 0:
            raise ValueError(f"max_turn_speed is in degrees per second, >= 0 (0: never), got {self.max_turn_speed}")
        if not 0 <= self.cut_continuity <= 1:
            raise ValueError(f"cut_continuity must lie in [0, 1] (0: never), got {self.cut_continuity}")


@dataclass
class TrackedFace:
    """A face in one frame: its track ``id``, whether the detector found it this frame (``detected``),
    and the :class:`mfirrn.inference.pipeline.Face` built from the (smoothed) params."""

    id: int
    detected: bool
    face: object

    def to_dict(self) -> dict:
        return {"id": self.id, "detected": self.detected, **self.face.to_dict()}


@dataclass
class _Track:
    id: int
    landmarks: np.ndarray  # raw (68, 3) of the last frame: the next roi comes from them
    roi: np.ndarray
    smoother: Optional[FaceSmoother]
    low: int = 0  # frames in a row below the confidence threshold
    bad: int = 0  # frames in a row with an implausible pose
    unconfirmed: int = 0  # detection frames in a row without a detection on it
    rotation: Optional[np.ndarray] = None  # (3, 3) the head's rotation in the last frame, and that frame's time (s)
    time: float = float("nan")
    box: Optional[np.ndarray] = None  # (4,) set: followed from its detector box (a face cut by the border)


class _Transition(NamedTuple):
    """An open transition: its first cut's frame index and time (s), the frame before that cut, (id, roi) of
    the tracks the cut ended, and the ids of those whose face went on across it (:func:`crop_continuity`)."""

    frame: int
    time: float
    before: np.ndarray
    ended: list[tuple[int, np.ndarray]]
    continued: frozenset = frozenset()


_GEOMETRIC = ("too small", "size jump", "left the image")  # the reasons of FaceTracker._alive
MAX_PITCH = 90.0  # degrees: no tracked face with |pitch| beyond this is output


def concentric(roi: np.ndarray, rois: np.ndarray, max_shift: float = 0.5, max_ratio: float = 2.0) -> Optional[int]:
    """Index of the crop among ``rois`` (K, 4) that frames the same place as ``roi`` (4,) at another scale, or None:
    centres at most ``max_shift`` of the larger side apart, sides within a factor ``max_ratio``; the nearest first.

    A small face whose crop, fitted from its landmarks, shrinks faster than the face overlaps the detector's crop of
    it too little for the IoU test; faces side by side are a side or more apart.

    >>> concentric(np.array([10.0, 10, 36, 36]), np.array([[0.0, 0, 39, 39], [40, 0, 79, 39]]))
    0
    >>> concentric(np.array([10.0, 10, 36, 36]), np.array([[30.0, 0, 69, 39], [0, 0, 100, 100]])) is None
    True
    """
    if len(rois) == 0:
        return None
    side, sides = roi[2] - roi[0], rois[:, 2] - rois[:, 0]
    shift = np.hypot(*((rois[:, :2] + rois[:, 2:]) / 2 - (roi[:2] + roi[2:]) / 2).T)
    larger, smaller = np.maximum(side, sides), np.minimum(side, sides)
    ok = (shift <= max_shift * larger) & (larger <= max_ratio * smaller)
    return int(np.flatnonzero(ok)[np.argmin(shift[ok])]) if ok.any() else None


def without_restarts(events: list[dict]) -> list[dict]:
    """One frame's track ``events`` less each ``end`` of an id that the same frame then starts again (``"reused"``):
    the detector, run where a track was lost, found its face at once, and to the reader of the frames that id goes
    on (a face whose fit turned too fast, or fell below the confidence for a frame, taken up again by the detection).

    >>> without_restarts([{"id": 1, "event": "end", "reason": "pose jump"}, {"id": 1, "event": "start", "reused": True},
    ...                   {"id": 2, "event": "end", "reason": "low confidence"}, {"id": 3, "event": "start"}])
    [{'id': 2, 'event': 'end', 'reason': 'low confidence'}, {'id': 3, 'event': 'start'}]
    """
    drop: set[int] = set()
    ended: dict[int, int] = {}  # id -> index of its open end event
    for i, e in enumerate(events):
        if e["event"] == "end":
            ended[e["id"]] = i
        elif e.get("reused") and e["id"] in ended:
            drop |= {ended.pop(e["id"]), i}
    return [e for i, e in enumerate(events) if i not in drop]


def plausible(face) -> bool:
    """Whether a face's pose may be output in a video: |pitch| <= :data:`MAX_PITCH` degrees.

    The yaw-pitch-roll decomposition (yaw within +-90) reports |pitch| > 90 for a few real faces turned
    close to profile (where pitch and roll trade off), so photos keep them; a tracker never outputs them.
    """
    return abs(face.pose["pitch"]) <= MAX_PITCH


def _thumbnail(frame: np.ndarray, width: int) -> np.ndarray:
    """The frame in grey, shrunk to ``width`` pixels wide (area averaging), float32."""
    h, w = frame.shape[:2]
    g = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    return cv2.resize(g, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA).astype(np.float32)


def frame_difference(a: np.ndarray, b: np.ndarray, width: int = 64) -> float:
    """Mean absolute grey-level difference (0-255) of two BGR frames shrunk to ``width`` pixels wide: the first
    half of the scene-cut test (a cut changes most pixels at once; motion changes a few).

    >>> z = np.zeros((48, 64, 3), np.uint8)
    >>> frame_difference(z, z), frame_difference(z, z + 40)
    (0.0, 40.0)
    """
    sa, sb = _thumbnail(a, width), _thumbnail(b, width)
    if sa.shape != sb.shape:
        return 255.0
    return float(np.abs(sa - sb).mean())


def histogram_change(a: np.ndarray, b: np.ndarray, width: int = 64, bins: int = 32) -> float:
    """How much the grey-level histogram (``bins`` bins) of two BGR frames shrunk to ``width`` pixels wide changes:
    half the sum of the absolute differences of the two normalised histograms, 0 (same) to 1 (no level in
    common). The second half of the scene-cut test: a face or a camera that moves changes where the grey levels
    are, not how many pixels have each, while a cut to another shot changes both.

    >>> ramp = np.tile(np.arange(0, 256, 2, dtype=np.uint8), (32, 1))  # 128 x 32 pixels, every other grey level
    >>> histogram_change(ramp, ramp[:, ::-1]), histogram_change(ramp, np.zeros_like(ramp)), histogram_change(
    ...     ramp, ramp // 2)
    (0.0, 0.96875, 0.5)
    """
    def hist(f: np.ndarray) -> np.ndarray:
        levels = (_thumbnail(f, width).astype(np.int64) * bins) // 256
        counts = np.bincount(np.clip(levels, 0, bins - 1).ravel(), minlength=bins).astype(np.float64)
        return counts / counts.sum()

    return 0.5 * float(np.abs(hist(a) - hist(b)).sum())


def crop_continuity(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation (-1 to 1) of two crops (H, W, 3) BGR uint8 of the same size, in grey: near 1
    when ``b`` shows what ``a`` shows, under another exposure too (a gain and an offset of the grey levels change
    nothing); low for another face or another picture; 0 when either crop is flat.

    >>> a = np.random.default_rng(0).integers(0, 200, (8, 8, 3), dtype=np.uint8)
    >>> round(crop_continuity(a, a // 2 + 40), 2), round(crop_continuity(a, a[::-1]), 2) < 0.5
    (1.0, True)
    """
    x = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY).astype(np.float64).ravel()
    y = cv2.cvtColor(b, cv2.COLOR_BGR2GRAY).astype(np.float64).ravel()
    x, y = x - x.mean(), y - y.mean()
    norm = float(np.sqrt((x @ x) * (y @ y)))
    return float(x @ y) / norm if norm > 0 else 0.0


class FaceTracker:
    """Follow the faces of a video, one frame at a time.

    ``rec`` is a :class:`mfirrn.inference.pipeline.Reconstructor`: detection frames run it as a photo
    (detector, its ``refine``, the face verifier, its ``min_confidence``); tracking frames run two network
    passes per face (the crop from the last frame's landmarks, then from the new ones) and the
    verifier. ``dense``: also rebuild the dense mesh of each face (for meshes and shaded overlays).

    Calling it returns each frame's faces at once, smoothed only with ``smooth="one-euro"``;
    :func:`track_video` adds the look-ahead window. ``n_detections`` counts the frames the detector ran
    on, ``n_doubted`` the detections not followed for their confidence (below the verifier's threshold, or
    below ``start_confidence`` where no track holds them); ``last_events`` lists what happened to tracks in the
    last frame (``{"id", "event": "start"}``, with ``"reused": true`` when an ended track's id came back, or
    ``{"id", "event": "end", "reason"}``; an id that ends and starts again on one frame, its face found at once by
    the detector, goes on without events: :func:`without_restarts`);
    :func:`track_video` keeps them by frame index in ``events`` for the caller to take.
    """

    def __init__(self, rec, settings: TrackerSettings = TrackerSettings(), *, dense: bool = False) -> None:
        from mfirrn.inference.pipeline import Reconstructor, StageTimes

        self.settings, self.dense = settings, dense
        det = rec.detector  # built once, shared
        backend = getattr(rec, "backend", "auto")  # the model as rec runs it (a PyTorch module stays one)
        common = dict(dense=False, backend=backend, device=rec.device, bf16=rec.bf16, bfm=rec.bfm,
                      crop_padding=rec.crop_padding,
                      min_confidence=settings.min_confidence if settings.min_confidence is not None
                      else rec.min_confidence, min_face_size=rec.min_face_size,
                      looking_down_confidence=rec.looking_down_confidence,
                      turn_upside_down=False,  # a track follows its landmarks in upright crops: upright faces only
                      larger_look=False)  # photos only: small faces are followed from frame to frame
        self.detect_rec = Reconstructor(rec.model, det, refine=rec.refine, **common)
        self.track_rec = Reconstructor(rec.model, det, refine="always", **common)
        self.detect_rec._verifier = self.track_rec._verifier = rec.verifier  # one verifier (networks built once)
        self.min_confidence = self.detect_rec.min_confidence
        self.confidence_needed = self.detect_rec.confidence_needed  # per face: a face looking steeply down needs more
        self.bfm, self.convention = rec.bfm, rec.model.card.convention
        self._tracks: list[_Track] = []
        self._lost: list[tuple[int, int, np.ndarray]] = []  # (id, frame lost, last roi)
        self._next_id = 0
        self._frame = -1
        self._previous: Optional[np.ndarray] = None
        self._last_cut: Optional[float] = None  # time (s) of the last scene cut
        self._transition: Optional[_Transition] = None
        self.n_detections = 0
        self._counted = StageTimes()  # its ``rejected``: the detections the verifier left out
        self._doubtful = 0  # detections that started no track for their confidence
        self.last_events: list[dict] = []
        # (id of a flash's face or None, an id of before that came back, the flash's first frame)
        self.last_renames: list[tuple[Optional[int], int, int]] = []
        self.events: dict[int, list[dict]] = {}  # frame index -> its events, filled by track_video

    @property
    def n_doubted(self) -> int:
        """The detections not followed for their confidence, summed over the frames so far."""
        return self._counted.rejected + self._doubtful

    # -- helpers
    def _alive(self, old_roi: np.ndarray, roi: np.ndarray, lm: np.ndarray, shape: tuple[int, int]) -> Optional[str]:
        """Why the track cannot go on with this roi (a short reason), or None."""
        s = self.settings
        h, w = shape
        side, old_side = roi[2] - roi[0], old_roi[2] - old_roi[0]
        if not (np.isfinite(lm).all() and np.isfinite(roi).all()) or side < s.min_face:
            return "too small"
        ix = max(0.0, min(roi[2], w) - max(roi[0], 0.0))
        iy = max(0.0, min(roi[3], h) - max(roi[1], 0.0))
        frac = ix * iy / ((roi[2] - roi[0]) * (roi[3] - roi[1]))
        if not (1 / s.max_scale_jump <= side / old_side <= s.max_scale_jump):
            return "size jump" if frac >= 1 else "left the image"  # a crop cut by the border: the face is leaving
        return None if frac >= s.min_inside else "left the image"

    def _new_track(self, roi: np.ndarray, lm: np.ndarray) -> _Track:
        s = self.settings
        reuse = [k for k, (_, f, r) in enumerate(self._lost)
                 if self._frame - f <= s.reuse_frames and roi_iou(roi, r) > s.match_iou]
        if reuse:
            tid = self._lost.pop(reuse[-1])[0]
        else:
            tid, self._next_id = self._next_id, self._next_id + 1
        smoother = (FaceSmoother(self.bfm, self.convention, self.settings.one_euro, self.settings.one_euro_tolerance)
                    if self.settings.smooth == "one-euro" else None)
        self.last_events.append({"id": tid, "event": "start", **({"reused": True} if reuse else {})})
        return _Track(tid, lm, roi, smoother)

    def _turned_too_fast(self, track: _Track, rotation: np.ndarray, t: float) -> bool:
        """Whether the head turned faster than ``max_turn_speed`` (degrees per second) since the track's last frame:
        a fit that collapsed onto another head in front, a ghost that flipped over."""
        limit = self.settings.max_turn_speed
        if limit <= 0 or track.rotation is None or not t > track.time:
            return False
        return float(rotation_angle(track.rotation, rotation)) > limit * (t - track.time)

    def _lose(self, track: _Track, reason: str = "lost") -> None:
        if reason != "scene cut":  # the id of a face at this place before a cut is not given to one after it
            self._lost.append((track.id, self._frame, track.roi))
        self._lost = [x for x in self._lost if self._frame - x[1] <= self.settings.reuse_frames]
        self.last_events.append({"id": track.id, "event": "end", "reason": reason})

    def make_face(self, params: np.ndarray, roi: np.ndarray, box, score: float, dense: Optional[bool] = None,
                  confidence: float = float("nan")):
        """A :class:`mfirrn.inference.pipeline.Face` (landmarks, pose, mesh if ``dense``, default the tracker's) from
        params (62,) at ``roi``."""
        from mfirrn.inference.pipeline import Face

        dense = self.dense if dense is None else dense
        p = torch.as_tensor(params[None], dtype=torch.float32)
        r = torch.as_tensor(roi[None], dtype=torch.float32)
        with torch.no_grad():
            lm = self.bfm.landmarks(p.to(self.bfm.u.device), convention=self.convention, roi=r.to(self.bfm.u.device))
            verts = (self.bfm.vertices(p.to(self.bfm.u.device), convention=self.convention, roi=r.to(self.bfm.u.device))
                     if dense else None)
        pose = pose_from_params(p)
        return Face(box=box, roi=roi.copy(), params=params.astype(np.float64),
                    pose={"yaw": float(pose.yaw[0]), "pitch": float(pose.pitch[0]), "roll": float(pose.roll[0]),
                          "scale": float(pose.scale[0])},
                    landmarks=lm[0].cpu().numpy(), vertices=None if verts is None else verts[0].cpu().numpy(),
                    triangles=self.bfm.triangles if dense else None, score=score, confidence=confidence)

    def _follow(self, frame: np.ndarray) -> list:
        """This frame's face of each track, in track order: from the last frame's landmarks (3DDFA's tracking), or,
        for a track whose landmarks' crop left the image, from its detector box as the detector would give it."""
        faces: list = [None] * len(self._tracks)
        by_lm = [i for i, tr in enumerate(self._tracks) if tr.box is None]
        by_box = [i for i, tr in enumerate(self._tracks) if tr.box is not None]
        if by_lm:
            got = self.track_rec(frame, landmarks=np.stack([self._tracks[i].landmarks[:, :2] for i in by_lm]))
            for i, f in zip(by_lm, got):
                faces[i] = f
        if by_box:
            got = self.detect_rec(frame, boxes=np.stack([self._tracks[i].box for i in by_box]))
            for i, f in zip(by_box, got):
                faces[i] = f
        return faces

    def _continuing(self, before: np.ndarray, frame: np.ndarray, t: float) -> list[_Track]:
        """The tracks whose face goes on from frame ``before`` into ``frame`` (at time ``t``): its crop there and the
        crop this frame's network passes follow it to correlate by at least ``cut_continuity``
        (:func:`crop_continuity`), and the head turns no faster than ``max_turn_speed`` between the two (two people
        framed alike in a talk show's close-ups correlate too)."""
        threshold = self.settings.cut_continuity
        if threshold <= 0 or not self._tracks:
            return []
        pad = self.detect_rec.crop_padding
        return [tr for tr, f in zip(self._tracks, self._follow(frame))
                if crop_continuity(crop_image(before, tr.roi, pad=pad), crop_image(frame, f.roi, pad=pad)) >= threshold
                and not self._turned_too_fast(tr, rotation_from_params(f.params), t)]

    def _is_cut(self, a: np.ndarray, b: np.ndarray) -> bool:
        """Whether frame ``b`` is another shot than frame ``a`` by the scene-cut test (see :class:`TrackerSettings`)."""
        s = self.settings
        return bool(s.scene_cut > 0 and frame_difference(a, b) > s.scene_cut
                    and histogram_change(a, b) > s.scene_cut_histogram)

    # -- one frame
    def __call__(self, frame: np.ndarray, t: float) -> list[TrackedFace]:
        """Faces of ``frame`` (BGR uint8) at time ``t`` (seconds), sorted by track id."""
        s = self.settings
        self._frame += 1
        self.last_events, self.last_renames = [], []
        shape = frame.shape[:2]
        previous, self._previous = self._previous, frame
        cut = previous is not None and self._is_cut(previous, frame)
        back = False  # the picture of before the open transition is back: it was a flash (or a short insert)
        if self._transition is not None:
            if t - self._transition.time > s.transition_seconds:
                self._transition = None
            else:
                back = not self._is_cut(self._transition.before, frame)
        current: dict[int, tuple[object, bool]] = {}  # track id -> (the reconstructor's Face, detected)
        turned: dict[int, np.ndarray] = {}  # track id -> its head's rotation this frame
        lost_now = False
        pending: list[tuple[_Track, str]] = []  # a geometric test failed, or a transition: the detector decides
        flash: Optional[list[tuple[int, np.ndarray]]] = None  # (id, roi) of the faces found during a flash
        if back:  # the faces of the flash end; those of before it take back their ids where the detector finds them
            went_on = [tr for tr in self._tracks if tr.id in self._transition.continued]  # never left: go on
            flashed = [tr for tr in self._tracks if tr.id not in self._transition.continued]
            flash, flash_from = [(tr.id, tr.roi) for tr in flashed], self._transition.frame
            for tr in flashed:
                self._lose(tr, "scene cut")
            self._tracks, self._lost = went_on, [(tid, self._frame, roi) for tid, roi in self._transition.ended]
            self._transition, self._last_cut = None, t
        elif cut and self._last_cut is not None and t - self._last_cut <= s.transition_seconds:
            # the same transition: its tracks (all started since its first cut) go on where the detector confirms them
            pending += [(tr, "scene cut") for tr in self._tracks]
            self._tracks, self._lost, self._last_cut = [], [], t
        elif cut:  # another shot: every face in it is a new face, wherever it is, but a face that goes on across it
            went_on = self._continuing(previous, frame, t)
            continued = frozenset(tr.id for tr in went_on)
            ended = [tr for tr in self._tracks if tr.id not in continued]
            self._transition = _Transition(self._frame, t, previous, [(tr.id, tr.roi) for tr in ended], continued)
            for tr in ended:
                self._lose(tr, "scene cut")
            self._tracks, self._lost, self._last_cut = went_on, [], t  # no id ended before a cut comes back
        if self._tracks:
            faces = self._follow(frame)
            kept = []
            for tr, f in zip(self._tracks, faces):
                needed = float(self.confidence_needed(f.pose["yaw"], f.pose["pitch"]))
                tr.low = tr.low + 1 if f.confidence < needed else 0
                tr.bad = tr.bad + 1 if not plausible(f) else 0
                why = self._alive(tr.roi, f.roi, f.landmarks, shape)
                rotation = rotation_from_params(f.params)
                if why is None and self._turned_too_fast(tr, rotation, t):
                    why = "pose jump"
                turned[tr.id] = rotation
                if why is None and tr.bad >= s.low_confidence_frames:
                    why = "implausible pose"
                if why is None and tr.low >= s.low_confidence_frames:
                    why = "low confidence"
                if why is None:
                    if tr.box is not None:  # the box moves with the face; back to landmarks once their crop fits
                        tr.box = tr.box + np.tile(f.landmarks[:, :2].mean(0) - tr.landmarks[:, :2].mean(0), 2)
                        if self._alive(f.roi, roi_from_landmarks(f.landmarks[:, :2]), f.landmarks, shape) is None:
                            tr.box = None
                    tr.landmarks, tr.roi = f.landmarks, f.roi
                    kept.append(tr)
                    if tr.low == 0 and tr.bad == 0:  # a face in doubt is not output
                        current[tr.id] = (f, False)
                elif why in _GEOMETRIC:  # the crop, not the face, is in doubt: ends unless a detection confirms it
                    pending.append((tr, why))
                    lost_now = True
                else:
                    self._lose(tr, why)
                    lost_now = True
            self._tracks = kept
        detect = (not self._tracks or lost_now or self._frame == 0 or cut or back
                  or (s.redetect_every > 0 and self._frame % s.redetect_every == 0))
        if detect:
            self.n_detections += 1
            found = [f for f in self.detect_rec(frame, times=self._counted) if plausible(f)]
            found.sort(key=lambda f: -(f.roi[2] - f.roi[0]))
            rois = np.array([f.roi for f in found]).reshape(-1, 4)
            kept = []
            why_pending = {id(tr): why for tr, why in pending}
            checked = self._tracks + [tr for tr, _ in pending]
            ious = roi_iou(np.array([tr.roi for tr in checked]).reshape(-1, 4)[:, None], rois[None])  # (T, K)
            held = ious > s.match_iou
            for i, tr in enumerate(checked):  # a track must stay on a face the detector confirms
                iou = ious[i]
                k = int(np.argmax(iou)) if iou.size and iou.max() > s.match_iou else None
                if k is None and id(tr) in why_pending:  # its crop failed: the face may be found at another scale
                    k = concentric(tr.roi, rois)
                elif k is None and s.concentric_drift:  # its crop drifted (up a small face's forehead): the
                    free = np.flatnonzero(~np.delete(held, i, axis=0).any(axis=0))  # detection framing its place that
                    j = concentric(tr.roi, rois[free])  # no other track holds
                    k = None if j is None else int(free[j])
                if (k is not None and id(tr) not in why_pending
                        and self._turned_too_fast(tr, rotation_from_params(found[k].params), t)):
                    kept.append(tr)  # a face is there, but its fit turns the head too fast: a face hidden behind
                    continue  # another goes on from its own fit, which the detection's would collapse onto the other
                if k is not None:
                    f = found[k]
                    tr.unconfirmed, tr.low, tr.bad, tr.landmarks, tr.roi = 0, 0, 0, f.landmarks, f.roi
                    turned[tr.id] = rotation_from_params(f.params)
                    if (why_pending.get(id(tr)) in _GEOMETRIC or tr.box is not None) and f.box is not None:
                        tr.box = np.asarray(f.box[:4], np.float64).copy()  # its landmarks' crop fails: follow the box
                    current[tr.id] = (f, True)
                    kept.append(tr)
                    continue
                if id(tr) in why_pending:
                    self._lose(tr, why_pending[id(tr)])
                    continue
                tr.unconfirmed += 1
                if tr.unconfirmed >= s.max_unconfirmed:
                    self._lose(tr, "no face under the crop")
                    current.pop(tr.id, None)
                else:
                    kept.append(tr)
            self._tracks = kept
            for f in found:
                tracked = np.array([tr.roi for tr in self._tracks]).reshape(-1, 4)
                if len(tracked) and roi_iou(f.roi, tracked).max() > s.match_iou:
                    continue  # already tracked
                if self.min_confidence > 0 and f.confidence < s.start_confidence:
                    self._doubtful += 1
                    continue  # too doubtful to start a track (one that exists goes on down to min_confidence)
                if s.max_faces and len(self._tracks) >= s.max_faces:
                    break
                tr = self._new_track(f.roi, f.landmarks)
                turned[tr.id] = rotation_from_params(f.params)
                self._tracks.append(tr)
                current[tr.id] = (f, True)
        if flash is not None:  # each face of the flash is the face of before it that took its id back where it is
            back_ids = {e["id"] for e in self.last_events if e.get("reused")}
            revived = {tr.id: tr.roi for tr in self._tracks if tr.id in back_ids}
            for fid, froi in flash:
                overlap = {tid: float(roi_iou(froi, r)) for tid, r in revived.items()}
                best = max(overlap, key=overlap.__getitem__, default=None)
                if best is not None and overlap[best] > s.match_iou:
                    self.last_renames.append((fid, best, flash_from))
                    del revived[best]
            self.last_renames += [(None, tid, flash_from) for tid in revived]  # back without a face in the flash
        for tr in self._tracks:  # the pose the next frame's turn is measured from
            if tr.id in turned:
                tr.rotation, tr.time = turned[tr.id], t
        # merge tracks that converged on one face (keep the older id)
        if len(self._tracks) > 1:
            rois = np.array([tr.roi for tr in self._tracks])
            iou = roi_iou(rois[:, None], rois[None])
            drop = {max(self._tracks[i].id, self._tracks[j].id)
                    for i in range(len(rois)) for j in range(i + 1, len(rois)) if iou[i, j] > SAME_FACE_IOU}
            for tr in self._tracks:
                if tr.id in drop:
                    self.last_events.append({"id": tr.id, "event": "end", "reason": "merged"})
                    current.pop(tr.id, None)
            self._tracks = [tr for tr in self._tracks if tr.id not in drop]
        self.last_events = without_restarts(self.last_events)
        out = []
        for tr in self._tracks:
            if tr.id not in current:
                continue
            f, detected = current[tr.id]
            if tr.smoother is not None:
                p = tr.smoother(t, f.params, f.roi)
                f = self.make_face(p, f.roi, f.box, f.score, confidence=f.confidence)
                if not plausible(f):  # smoothing can tip a pose over the limit
                    continue
            elif self.dense and s.smooth != "window":  # with the window, meshes come from the smoothed params
                f = self.make_face(f.params, f.roi, f.box, f.score, confidence=f.confidence)
            out.append(TrackedFace(tr.id, detected, f))
        return sorted(out, key=lambda x: x.id)


# ------------------------------------------------------------------------------------ look-ahead window
def _fit_weights(left: int, right: int, order: int) -> np.ndarray:
    """Weights (left + right + 1,) giving the value at offset 0 of the least-squares polynomial of degree
    ``min(order, n - 1)`` through samples at offsets ``-left .. right``.

    >>> _fit_weights(1, 1, 1).round(6).tolist()
    [0.333333, 0.333333, 0.333333]
    >>> _fit_weights(0, 2, 1).round(6).tolist()  # line through 3 points, read at the first
    [0.833333, 0.333333, -0.166667]
    """
    o = np.arange(-left, right + 1, dtype=np.float64)
    V = o[:, None] ** np.arange(min(order, len(o) - 1) + 1)[None, :]
    return np.linalg.pinv(V)[0]


class WindowSmoother:
    """Look-ahead smoothing of a tracker's raw output (see the module docstring): :meth:`push` each frame's
    ``(index, time, frame, tracked faces)`` and get back the frames whose window is complete, smoothed;
    :meth:`flush` returns the rest at the end. Frames come out in order, ``window // 2`` frames late.

    ``tolerance`` > 0: each frame's window shrinks from ``window`` towards 5 frames until the mean distance of
    its 68 landmarks from the 5-frame fit's is at most ``tolerance`` times the face size (the square root of
    the landmark box's area); ``raw_tolerance`` > 0: a frame whose 5-frame fit is further than that from the
    frame's own landmarks keeps its own params. Both 0: the whole window at every frame."""

    def __init__(self, tracker: "FaceTracker", window: int = 11, order: int = 2, tolerance: float = 0.0,
                 raw_tolerance: float = 0.0) -> None:
        self.tracker, self.half, self.order = tracker, window // 2, order
        self.tolerance, self.raw_tolerance = tolerance, raw_tolerance
        self._frames: list[tuple[int, float, np.ndarray, list[TrackedFace]]] = []
        self._samples: dict[int, dict[int, np.ndarray]] = {}  # track id -> frame index -> image-frame params
        self._weights: dict[tuple[int, int], np.ndarray] = {}
        self._landmarks = _ImageLandmarks(tracker.bfm)

    def _fit(self, samples: dict[int, np.ndarray], index: int, left: int, right: int) -> np.ndarray:
        key = (left, right)
        if key not in self._weights:
            self._weights[key] = _fit_weights(left, right, self.order)
        return self._weights[key] @ np.stack([samples[i] for i in range(index - left, index + right + 1)])

    def _vector(self, tf: TrackedFace) -> np.ndarray:
        M = params_to_image_camera(tf.face.params, tf.face.roi, self.tracker.convention)
        return np.concatenate([M.reshape(-1), np.asarray(tf.face.params, np.float64)[12:]])

    def push(self, index: int, t: float, frame: np.ndarray, faces: list[TrackedFace]):
        self._frames.append((index, t, frame, faces))
        for tf in faces:
            self._samples.setdefault(tf.id, {})[index] = self._vector(tf)
        ready = []
        while self._frames and self._frames[0][0] + self.half <= index:
            ready.append(self._emit(self._frames.pop(0)))
        return ready

    def rename(self, renames: list[tuple[Optional[int], int, int]], events: dict[int, list[dict]]) -> None:
        """Give the faces of a flash still in the window the ids they had before it (``renames``:
        :attr:`FaceTracker.last_renames`): their frames, samples and ``events`` (frame index -> events, not yet
        taken) are rewritten, and the ends and starts of the flash cancel out (a face of before that the flash
        hid is missing there, without events). A flash whose first frame has left the window keeps its own ids."""
        for flash_id, old_id, since in renames:
            if not self._frames or self._frames[0][0] > since:
                continue
            if flash_id is not None:
                self._frames = [(i, t, frame, sorted((TrackedFace(old_id, tf.detected, tf.face) if tf.id == flash_id
                                                      else tf for tf in faces), key=lambda tf: tf.id))
                                for i, t, frame, faces in self._frames]
                self._samples.setdefault(old_id, {}).update(self._samples.pop(flash_id, {}))
            for i in [i for i in events if i >= since]:
                events[i] = [e for e in events[i] if e["id"] not in (flash_id, old_id)]
                if not events[i]:
                    del events[i]

    def flush(self):
        out = [self._emit(f) for f in self._frames]
        self._frames = []
        return out

    def _emit(self, record):
        index, t, frame, faces = record
        out = []
        for tf in faces:
            s = self._samples[tf.id]
            left = 0
            while left < self.half and index - left - 1 in s:
                left += 1
            right = 0
            while right < self.half and index + right + 1 in s:
                right += 1
            x = self._fit(s, index, left, right)
            if self.tolerance > 0 or self.raw_tolerance > 0:
                short = self._landmarks(self._fit(s, index, min(left, 2), min(right, 2)))  # the 5-frame fit's
                if self.raw_tolerance > 0 and self._landmarks.deviation(short, s[index]) > self.raw_tolerance:
                    x = s[index]  # a move too fast even for 5 frames: the frame's own params
                elif self.tolerance > 0:  # the widest window within tolerance of the 5-frame fit
                    h = max(left, right)
                    while h > 2 and self._landmarks.deviation(short, x) > self.tolerance:
                        h -= 1
                        x = self._fit(s, index, min(left, h), min(right, h))
            f = tf.face
            p = params_from_image_camera(x[:12].reshape(3, 4), x[12:], f.roi, self.tracker.convention)
            face = self.tracker.make_face(p, f.roi, f.box, f.score, confidence=f.confidence)
            if plausible(face):  # smoothing can tip a pose over the limit: it is checked again
                out.append(TrackedFace(tf.id, tf.detected, face))
        for s in self._samples.values():  # forget samples no later frame can need
            for i in [i for i in s if i < index - self.half]:
                del s[i]
        return index, t, frame, out


def track_video(frames, tracker: FaceTracker):
    """Track and smooth (as ``tracker.settings`` say) the faces of ``frames``, an iterable of
    ``(index, time, frame)`` such as a :class:`mfirrn.video.io.VideoReader`; yields
    ``(index, time, frame, [TrackedFace, ...])`` in frame order.

    >>> tracker = FaceTracker(Reconstructor("3ddfa-v2-mb05"))                     # doctest: +SKIP
    >>> for i, t, frame, faces in track_video(VideoReader("clip.mp4"), tracker):  # doctest: +SKIP
    ...     print(i, [(f.id, f.face.pose["yaw"]) for f in faces])
    """
    settings = tracker.settings
    window = (WindowSmoother(tracker, settings.window, settings.order, settings.window_tolerance,
                             settings.window_raw_tolerance) if settings.smooth == "window" else None)
    for index, t, frame in frames:
        faces = tracker(frame, t)
        if tracker.last_events:
            tracker.events[index] = tracker.last_events
        if window is not None and tracker.last_renames:
            window.rename(tracker.last_renames, tracker.events)
        if window is None:
            yield index, t, frame, faces
        else:
            yield from window.push(index, t, frame, faces)
    if window is not None:
        yield from window.flush()
