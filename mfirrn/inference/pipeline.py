"""Inference facade: image -> detected faces -> crops -> params -> landmarks and dense mesh in image pixels.

>>> rec = Reconstructor(model="3ddfa-v2-mb05")            # doctest: +SKIP
>>> faces = rec(cv2.imread("photo.jpg"))                 # doctest: +SKIP
>>> faces[0].landmarks.shape, faces[0].pose["yaw"]       # doctest: +SKIP
((68, 3), -12.3)
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from mfirrn.detect.faceboxes import RECHECK_SMALL_SIDE
from mfirrn.detect.registry import Detector, create_detector, names_faceboxes
from mfirrn.geometry.bfm import MeshName, MorphableModel
from mfirrn.geometry.crop import (
    CROP_PADDINGS,
    DEFAULT_CROP_PADDING,
    centres_inside,
    crop_image,
    crops_to_tensor,
    roi_from_box,
    roi_from_landmarks,
    roi_iou,
    same_face_kept,
    turned_boxes,
)
from mfirrn.geometry.frames import Convention, params_from_image_camera, params_to_image_camera
from mfirrn.geometry.params import PARAM_SPEC, pose_from_params
from mfirrn.geometry.turns import boxes_back, camera_back, counts_upright, rois_back, turn_back
from mfirrn.inference.inputs import ImageError, ImageInput, check_boxes, check_landmarks, read_image, to_bgr
from mfirrn.inference.predict import predict_params
from mfirrn.inference.verify import (
    FaceVerifier,
    VerifierHead,
    confidence_needed,
    head_path,
    landmark_boxes,
    pass_agreement,
)
from mfirrn.io.defaults import (
    DEFAULT_DETECTOR,
    DETECTOR_RECHECK,
    LOOKING_DOWN_CONFIDENCE,
    PROPOSAL_THRESHOLD,
    REFINE_MODES,
    VERIFIER_NAMES,
)

__all__ = ["Face", "Reconstructor", "reconstruct", "read_image", "ImageError", "NoFaceError", "StageTimes",
           "RefineMode", "REFINE_MODES", "average_passes", "refined_roi_agrees", "PROPOSAL_THRESHOLD",
           "UPSIDE_DOWN_MARGIN", "UPSIDE_DOWN_MIN"]

RefineMode = Literal["robust", "always", "off"]

#: A face is upside down when O-Net finds the square around its landmarks more face-like in the photo turned by
#: 180 degrees by more than this margin, and at least :data:`UPSIDE_DOWN_MIN` there (chosen on AFLW training crops,
#: docs/experiments/wild.md, "Faces upside down").
UPSIDE_DOWN_MARGIN = 0.3
UPSIDE_DOWN_MIN = 0.5


class NoFaceError(RuntimeError):
    """The detector found no face in an image."""


@dataclass
class Face:
    """One reconstructed face, everything in original-image pixels (x right, y down, z larger = closer).

    ``box`` (4,) detector box or ``None`` when the face came from landmarks; ``roi`` (4,) the crop box;
    ``params`` (62,) de-normalised 3DMM params; ``pose`` yaw/pitch/roll in degrees plus ``scale``;
    ``landmarks`` (68, 3); ``vertices`` (N, 3) float32 dense mesh (``None`` if not requested; from a
    :class:`Reconstructor` it is computed on first access, for all faces of the image at once);
    ``triangles`` (T, 3) int64 of that mesh; ``score`` detector score; ``refined`` whether the roi
    comes from the second (landmark) pass of the refinement (and, with ``refine="robust"``, the params are
    the mean of the refinement's passes); ``confidence`` in [0, 1]: how sure the face verifier
    (:mod:`mfirrn.inference.verify`) is that this is a human face (NaN when it did not run).
    """

    box: Optional[np.ndarray]
    roi: np.ndarray
    params: np.ndarray
    pose: dict[str, float]
    landmarks: np.ndarray
    vertices: Optional[np.ndarray] = field(default=None, repr=False)
    triangles: Optional[np.ndarray] = field(default=None, repr=False)
    score: float = float("nan")
    refined: bool = False
    confidence: float = float("nan")
    _dense: Optional[tuple["_DenseMeshes", int]] = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        """Pickled with its mesh computed (the lazy mesh refers to the model's basis)."""
        state = dict(self.__dict__)
        state["_vertices"], state["_dense"] = self.vertices, None
        return state

    def __repr__(self) -> str:
        """One line: box, score, pose in degrees and the array shapes (the arrays themselves are in the fields).

        >>> Face(np.array([10.0, 20, 110, 140]), np.zeros(4), np.zeros(62), {"yaw": -12.34, "pitch": 4.0, "roll": 0.5},
        ...      np.zeros((68, 3)), np.zeros((38365, 3)), score=0.987, refined=True)  # doctest: +ELLIPSIS
        Face(box=[10, 20, 110, 140], score=0.99, yaw=-12.3°, pitch=4.0°, roll=0.5°, ..., vertices (38365, 3), refined)
        """
        box = "None" if self.box is None else "[" + ", ".join(f"{v:.0f}" for v in self.box[:4]) + "]"
        pose = ", ".join(f"{k}={self.pose[k]:.1f}°" for k in ("yaw", "pitch", "roll") if k in self.pose)
        parts = [f"box={box}", f"score={self.score:.2f}", pose, f"landmarks {tuple(np.shape(self.landmarks))}"]
        if self.vertices is not None:
            parts.append(f"vertices {tuple(np.shape(self.vertices))}")
        if np.isfinite(self.confidence):
            parts.append(f"confidence={self.confidence:.2f}")
        if self.refined:
            parts.append("refined")
        return f"Face({', '.join(p for p in parts if p)})"

    def to_dict(self) -> dict:
        """The JSON form written by ``mfirrn reconstruct`` (box, score, confidence, roi, refined, params, pose,
        landmarks)."""
        return {
            "box": None if self.box is None else [float(v) for v in self.box[:4]],
            "score": None if not np.isfinite(self.score) else float(self.score),
            "confidence": None if not np.isfinite(self.confidence) else round(float(self.confidence), 4),
            "roi": [float(v) for v in self.roi],
            "refined": bool(self.refined),
            "params": [float(v) for v in self.params],
            "pose": {k: float(self.pose[k]) for k in ("yaw", "pitch", "roll")},
            "landmarks": [[float(c) for c in p] for p in self.landmarks],
        }


def _get_vertices(face: Face) -> Optional[np.ndarray]:
    if face._vertices is None and face._dense is not None:  # type: ignore[attr-defined]
        meshes, i = face._dense
        face._vertices, face._dense = meshes.get(i), None  # type: ignore[attr-defined]
    return face._vertices  # type: ignore[attr-defined]


def _set_vertices(face: Face, value: Optional[np.ndarray]) -> None:
    face._vertices, face.__dict__["_dense"] = value, None  # type: ignore[attr-defined]


Face.vertices = property(_get_vertices, _set_vertices, doc="(N, 3) dense mesh in image pixels, or None")  # type: ignore


class _DenseMeshes:
    """The dense meshes of one image's faces, computed together (one pass over the basis) when the first is read."""

    def __init__(self, bfm: MorphableModel, params: torch.Tensor, rois: np.ndarray, convention: Convention) -> None:
        self.bfm, self.params, self.rois, self.convention = bfm, params, rois, convention
        self._verts: Optional[np.ndarray] = None

    def get(self, i: int) -> np.ndarray:
        if self._verts is None:
            dev = self.bfm.u.device
            roi = torch.as_tensor(self.rois, dtype=torch.float32, device=dev)
            with torch.no_grad():
                self._verts = self.bfm.vertices(self.params.to(dev), convention=self.convention, roi=roi).cpu().numpy()
            self.bfm = None  # type: ignore[assignment]  # the faces no longer need the model
        return self._verts[i]


class StageTimes:
    """Wall time per pipeline stage, summed over calls (seconds): ``times.seconds["detect"]``; and ``rejected``, the
    detected faces the face verifier left out (below its threshold, of the size ``min_face_size`` keeps), summed over
    calls: what tells "no face" from "faces not taken for human ones".

    >>> t = StageTimes()
    >>> with t("detect"):
    ...     pass
    >>> sorted(t.seconds), t.rejected
    (['detect'], 0)
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.rejected = 0

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0


@contextmanager
def _no_timer(stage: str) -> Iterator[None]:
    yield


def landmark_side(face: "Face") -> float:
    """The longer side (pixels) of a face's landmark box: its size as the notes on small faces measure it."""
    return float(np.ptp(face.landmarks[:, :2], axis=0).max())


def small_at_input(faces: Sequence["Face"], scale: float) -> bool:
    """Whether one of ``faces`` spans fewer than :data:`~mfirrn.detect.faceboxes.RECHECK_SMALL_SIDE` pixels (its
    landmarks' longer side) at a detector's input that showed the photo at ``scale``: FaceBoxes' smallest anchor, so
    the photo's other faces, if smaller, are likely too small for it at that scale (the larger look; the run's note).

    >>> class F:
    ...     landmarks = np.array([[0.0, 0.0], [40.0, 50.0]])  # a face of 50 pixels
    >>> small_at_input([F()], 0.6), small_at_input([F()], 0.7)
    (True, False)
    """
    if not faces:
        return False
    return min(landmark_side(f) for f in faces) * scale < RECHECK_SMALL_SIDE


def refined_roi_agrees(first: np.ndarray, second: np.ndarray, third: np.ndarray, min_iou: float = 1 / 3,
                       settled_iou: float = 0.5) -> np.ndarray:
    """The robust refinement's test -> (F,) bool: keep the second pass where its roi agrees with the first.

    ``first`` (F, 4): the roi of the first pass (from the detector box); ``second``: the roi built from
    the first pass's landmarks (the second pass's crop); ``third``: the roi built from the second pass's
    landmarks. The refinement is one step of the fixed-point iteration roi -> landmarks -> roi; it is
    kept when

    - the second crop overlaps the first with IoU >= ``min_iou`` (a crop that jumps further sees a
      different patch of the image: the first landmarks were not on the face), and
    - the iteration settles: the next step would move the roi no more than this one did
      (``IoU(second, third) >= IoU(first, second)``), or only a little (``IoU(second, third) >=
      settled_iou``). A diverging second pass moves it further.

    >>> a = np.array([[0.0, 0, 100, 100]]); b = a + 5; c = b + 1
    >>> refined_roi_agrees(a, b, c).tolist(), refined_roi_agrees(a, b, b + 50).tolist()
    ([True], [False])
    """
    iou12, iou23 = roi_iou(first, second), roi_iou(second, third)
    return (iou12 >= min_iou) & (iou23 >= np.minimum(iou12, settled_iou))


def average_passes(params: Sequence[torch.Tensor], rois: Sequence[np.ndarray], out_roi: np.ndarray,
                   convention: Convention) -> torch.Tensor:
    """The mean of several passes' estimates of the same faces, as params (F, 62) for the crop ``out_roi`` (F, 4).

    Pass ``k`` predicted de-normalised ``params[k]`` (F, 62) from the crop ``rois[k]`` (F, 4). Its camera
    ``P = [sR | t]`` is moved to image pixels (:func:`mfirrn.geometry.frames.params_to_image_camera`), the cameras
    and the shape and expression coefficients are averaged there, and the mean camera is moved back into
    the frame of ``out_roi``. The mesh of the result is the mean of the passes' meshes
    in the image exactly when the passes agree on shape and expression (it is bilinear in camera and
    coefficients), and within the product of the two spreads otherwise; its landmarks are then at most
    the mean of the passes' errors away from any target (triangle inequality).

    >>> from mfirrn.geometry.params import PARAM_SPEC
    >>> p = torch.randn(2, PARAM_SPEC.dim, dtype=torch.float64); r = np.array([[0.0, 0, 120, 120], [10, 20, 70, 80]])
    >>> torch.allclose(average_passes([p], [r], r, "v2"), p)
    True
    """
    cams, coeffs = [], []
    for p, r in zip(params, rois):
        p = torch.as_tensor(p).detach().cpu().to(torch.float64).numpy()
        cams.append(params_to_image_camera(p, r, convention))
        coeffs.append(p[..., PARAM_SPEC.pose:])
    mean = params_from_image_camera(np.mean(cams, axis=0), np.mean(coeffs, axis=0), out_roi, convention)
    return torch.from_numpy(mean).to(torch.as_tensor(params[0]).dtype)


class Reconstructor:
    """Detect, crop, predict and reconstruct all faces of an image.

    ``model``: a registered model name or a module from :func:`mfirrn.models.create` /
    :func:`mfirrn.models.load_checkpoint` (it carries its stats and pixel convention).
    ``detector``: a registered detector name (default ``faceboxes``), a comma list tried in turn until
    one finds a face (e.g. ``faceboxes,dlib-hog``) or any callable image -> (K, 5) boxes.
    ``refine``: 3DDFA's two-step mode predicts, rebuilds the roi from the predicted 68 landmarks and
    predicts again; ``"always"`` is that rule. ``"robust"`` (default, also ``True``) goes one step further
    (a third crop from the second pass's landmarks, a third prediction) and, where the three crops agree
    (:func:`refined_roi_agrees`), gives the mean of the three passes (:func:`average_passes`, in the
    frame of the second crop; ``roi`` is that crop); elsewhere the face keeps its first pass. A single
    pass that lands badly is thus diluted rather than taken. ``"off"`` (or ``False``) is a single pass. ``mesh``: ``"full"`` (53215 vertices) or ``"noneck"`` (38365); ``dense=False`` skips
    the dense mesh. ``bf16``: bfloat16 autocast for the network (fast on AVX512-BF16/AMX CPUs and GPUs; on other CPUs
    emulated and several times slower than the default, :func:`mfirrn.io.machine.bf16_emulated_note`).
    ``backend``: how the networks run (regressor, and a network detector named by string): ``"auto"``
    (default: ONNX Runtime for fp32 on a CPU, the fastest there; PyTorch on CUDA or with ``bf16``),
    ``"torch"`` (the module itself, e.g. to see a model you keep training) or ``"onnxruntime"``;
    ``detector_backend`` overrides it for the detector. ``threads``: the CPU thread budget, given to
    PyTorch, ONNX Runtime, OpenCV and the renderer for the whole process (:mod:`mfirrn.io.threads`;
    default: the budget set earlier in this process, else ``OMP_NUM_THREADS``, else the cores the process
    may use); ``detector_threads`` overrides it for the detector's ONNX Runtime session.
    Every face gets a ``confidence`` from the face verifier (:class:`mfirrn.inference.verify.FaceVerifier`;
    with ``refine="off"`` it runs the second network pass it needs). Detected faces are kept when their
    confidence is at least ``min_confidence`` (``None``: the verifier's default, chosen by measurement in
    docs/experiments/wild.md; 0 keeps every face) and their landmarks' box is at least ``min_face_size``
    pixels on its longer side; a detected face that looks down more than
    :data:`mfirrn.io.defaults.LOOKING_DOWN_DEGREES` needs ``looking_down_confidence`` (default
    :data:`~mfirrn.io.defaults.LOOKING_DOWN_CONFIDENCE`; the back of a head is read as such a face;
    :meth:`confidence_needed`), unless ``min_confidence`` is 0. Faces given as ``boxes`` or ``landmarks`` are
    never dropped (they get a confidence).
    ``verify=False`` skips the verifier (confidence NaN, no face dropped for it; ``min_face_size`` still
    applies). ``verifier``: which shipped verifier (:data:`mfirrn.inference.verify.VERIFIERS`): ``"standard"``
    (default; it asks a second head, fine-tuned against cats' and dogs' faces, about the detected faces it is unsure
    of: :data:`mfirrn.inference.verify.ANIMALS_OPINION`); ``"strict"``, which also reads the face's fitted shape and
    expression and passes far fewer hands, fists and backs of heads, at the cost of some masked faces and small, badly
    fitted faces in crowds (its own default ``min_confidence``); ``"blazeface"``, the standard head asking BlazeFace
    instead about the frontal faces it is unsure of (:class:`mfirrn.inference.verify.SecondOpinion`): it drops most
    cats' and dogs' faces, and a rare heavily masked face (needs a TensorFlow Lite runtime,
    ``pip install 'mfirrn[detectors]'``); or a verifier head's JSON file of your own
    (``benchmarks/verifier_sources.py --write DIR`` writes one with a fine-tuned O-Net beside it; its threshold is
    the default ``min_confidence``).
    ``detector_threshold``: the score a FaceBoxes box needs to become a face (``detector`` given by name). Default
    ``None``: :data:`PROPOSAL_THRESHOLD` when the verifier filters the faces (the detector only proposes), else
    (``verify=False`` or ``min_confidence=0``) 3DDFA_V2's 0.5. A lower threshold only adds faces: those found at a
    higher one stay, unchanged. The other detectors keep their own thresholds.
    ``detector_size``: FaceBoxes' largest input (height, width) in pixels; larger photos are downscaled to fit
    before detection, an image more than twice as long as high (or high as long) to that many pixels
    (:func:`mfirrn.detect.faceboxes.fit_scale`) (default ``None``: 3DDFA_V2's 720 x 1080; ``(0, 0)``: full
    resolution). A larger size
    finds faces that the downscale makes too small or too faint in large photos (``docs/experiments/wild.md``),
    at a detection cost that grows with the pixels detected.
    ``detector_tint_grey``: FaceBoxes detects black-and-white photos in a skin tint
    (:func:`mfirrn.detect.faceboxes.tint_grey`): on grey photos it finds far more small and faint faces, and a
    few more false ones (measured in ``docs/experiments/wild.md``); colour photos are detected as they are.
    ``detector_min_size``: FaceBoxes upscales a photo whose longer side is shorter (pixels) to it before detection
    (default 0: never). 240 finds most faces of tight face crops and thumbnails that FaceBoxes misses as they are
    (masked faces above all), and a few more false faces on small animal photos (``docs/experiments/wild.md``).
    ``detector_recheck`` (FaceBoxes named in ``detector``; a built detector keeps its own setting): FaceBoxes' near
    misses (proposals scoring 0.1-0.5, small at its input) are detected again on a crop around them
    (:class:`mfirrn.detect.faceboxes.FaceBoxes`, ``recheck``): at full resolution in a photo detected downscaled
    (its score of such faces moves with the exact scale), shown twice as large for faces under 32 pixels in a photo
    detected at its own size (FaceBoxes scores faces of 15-30 pixels low). Default
    :data:`mfirrn.io.defaults.DETECTOR_RECHECK`.
    ``turn_upside_down`` (with the verifier): a detected face that MTCNN's O-Net finds far more face-like with the
    photo turned by 180 degrees (:meth:`_upside_down`) is reconstructed on the turned photo and mapped back, instead
    of being fitted as an upright face; its roll is then near 180 degrees. Faces given as ``landmarks`` are never
    turned. Off by default: on a stage clip it also turned a few small, dark upright faces
    (``docs/experiments/wild.md``, "Faces upside down").
    ``turned_faces`` (detected faces): the photo is also searched turned by 90 degrees either way and by 180 degrees
    (a person lying down, a dancer in a dip, a photo stored sideways): a face found upright in a turned copy where
    the photo itself has none (:meth:`_with_turned_faces`) is mapped back into the photo's pixels
    (:mod:`mfirrn.geometry.turns`), its roll near +-90 or 180 degrees. Off by default: the detector runs four
    times, and a few false faces more (``docs/experiments/wild.md``, "Faces at any roll").
    ``larger_look`` (detected faces; a detector with a ``larger_look`` method: FaceBoxes with its rechecks): when a
    face found spans fewer pixels at the detector's input than its smallest anchor, the photo's other faces may be
    too small for it, and the detector looks at the whole photo again, larger (:meth:`_with_a_larger_look`); faces
    it finds apart from those found join them. Off by default: on group photos it finds many faces, but only the
    photos with a small face pay for it, about three times their time, and on the held-out photos it added two faces
    the labels do not count (``docs/experiments/wild.md``, "Small faces found").
    ``crop_padding``: what fills a crop where it reaches outside the image (:func:`mfirrn.geometry.crop.crop_image`):
    ``"zero"`` (black, as 3DDFA) or ``"edge"`` (the image's border carried outward, blurred).
    """

    def __init__(self, model: Union[str, nn.Module] = "3ddfa-v2-mb05", detector: Union[str, Detector] = DEFAULT_DETECTOR,
                 *, refine: Union[bool, RefineMode] = "robust", mesh: MeshName = "full", dense: bool = True,
                 device: Union[str, torch.device] = "cpu", bf16: bool = False,
                 bfm: Optional[MorphableModel] = None, backend: str = "auto", threads: Optional[int] = None,
                 detector_backend: Optional[str] = None, detector_threads: Optional[int] = None,
                 min_confidence: Optional[float] = None, min_face_size: float = 0.0, verify: bool = True,
                 verifier: Union[str, Path] = VERIFIER_NAMES[0],
                 looking_down_confidence: float = LOOKING_DOWN_CONFIDENCE, detector_threshold: Optional[float] = None,
                 detector_size: Optional[tuple[int, int]] = None, detector_tint_grey: bool = False,
                 detector_min_size: int = 0, detector_recheck: bool = DETECTOR_RECHECK,
                 turn_upside_down: bool = False, turned_faces: bool = False, larger_look: bool = False,
                 crop_padding: str = DEFAULT_CROP_PADDING) -> None:
        from mfirrn import models
        from mfirrn.inference.onnx import model_for_backend, resolve_backend
        from mfirrn.io.threads import apply_threads

        self.device = torch.device(device)
        self.threads = apply_threads(threads)
        self.model = models.create(model, device=self.device) if isinstance(model, str) else model.to(self.device).eval()
        if not hasattr(self.model, "card") or not hasattr(self.model, "stats"):
            raise ValueError("model must come from mfirrn.models.create or load_checkpoint (it needs .card and .stats)")
        self.model = model_for_backend(self.model, backend, device=self.device, bf16=bf16, threads=self.threads)
        self.backend = "onnxruntime" if hasattr(self.model, "session") else "torch"
        refine = {True: "robust", False: "off"}.get(refine, refine) if isinstance(refine, bool) else refine
        if refine not in REFINE_MODES:
            raise ValueError(f"refine must be one of {', '.join(REFINE_MODES)} (or True/False), got {refine!r}")
        self._detector_spec = detector
        self._detector: Optional[Detector] = None
        self.detector_backend = resolve_backend(detector_backend or backend, self.device, bf16)
        self.detector_threads = detector_threads or self.threads
        self.refine: RefineMode = refine  # type: ignore[assignment]
        self.dense, self.bf16 = dense, bf16
        self.bfm = (bfm if bfm is not None else MorphableModel(mesh)).to(self.device)
        if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1], got {min_confidence}")
        if not min_face_size >= 0.0:
            raise ValueError(f"min_face_size must be >= 0 pixels, got {min_face_size}")
        if not 0.0 <= looking_down_confidence <= 1.0:
            raise ValueError(f"looking_down_confidence must lie in [0, 1], got {looking_down_confidence}")
        path = head_path(verifier)  # an unknown name fails here, not at the first face
        # a head's JSON file: read now (a bad one fails here too), and kept for the verifier
        self._own_head = VerifierHead.load(path) if str(verifier) not in VERIFIER_NAMES else None
        self._min_confidence, self.min_face_size, self.verify = min_confidence, float(min_face_size), verify
        self.verifier_name = str(verifier)
        self.looking_down_confidence = float(looking_down_confidence)
        self._verifier: Optional[FaceVerifier] = None
        self.detector_threshold = self._resolve_detector_threshold(detector, detector_threshold)
        self.detector_size = self._resolve_detector_size(detector, detector_size)
        if detector_tint_grey and not names_faceboxes(detector):
            raise ValueError(f"detector_tint_grey tints grey photos for FaceBoxes; the detector "
                             f"{getattr(detector, 'name', detector)} is not FaceBoxes built by name (build it with "
                             f"FaceBoxes(tint_grey=True), or drop detector_tint_grey)")
        self.detector_tint_grey = bool(detector_tint_grey)
        if not (isinstance(detector_min_size, (int, np.integer)) and detector_min_size >= 0):
            raise ValueError(f"detector_min_size must be a number of pixels >= 0, got {detector_min_size}")
        if detector_min_size and not names_faceboxes(detector):
            raise ValueError(f"detector_min_size upscales small photos for FaceBoxes; the detector "
                             f"{getattr(detector, 'name', detector)} is not FaceBoxes built by name (build it with "
                             f"FaceBoxes(min_size=...), or drop detector_min_size)")
        self.detector_min_size = int(detector_min_size)
        self.detector_recheck = bool(detector_recheck)
        self.turn_upside_down, self.turned_faces = bool(turn_upside_down), bool(turned_faces)
        self.larger_look = bool(larger_look)
        if crop_padding not in CROP_PADDINGS:
            raise ValueError(f"crop_padding must be one of {', '.join(CROP_PADDINGS)}, got {crop_padding!r}")
        self.crop_padding = crop_padding

    @staticmethod
    def _resolve_detector_size(detector: Union[str, Detector],
                               given: Optional[tuple[int, int]]) -> Optional[tuple[int, int]]:
        """FaceBoxes' largest input for a detector named ``detector`` (None: its default, or not FaceBoxes)."""
        if given is None:
            return None
        if not names_faceboxes(detector):
            raise ValueError(f"detector_size sets FaceBoxes' input size; the detector "
                             f"{getattr(detector, 'name', detector)} is not FaceBoxes built by name (size that "
                             f"detector itself, or drop detector_size)")
        size = tuple(given)
        if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and (v == 0 or v >= 32) for v in size):
            raise ValueError(f"detector_size must be (height, width) in pixels, each 0 (no limit) or at least 32, "
                             f"got {given}")
        return (int(size[0]), int(size[1]))

    def _resolve_detector_threshold(self, detector: Union[str, Detector], given: Optional[float]) -> Optional[float]:
        """FaceBoxes' score threshold for a detector named ``detector`` (None: not a FaceBoxes built here)."""
        from mfirrn.detect.faceboxes import SCORE_THRESHOLD

        if given is not None and not 0.0 < given < 1.0:
            raise ValueError(f"detector_threshold must lie in (0, 1), got {given}")
        if not names_faceboxes(detector):
            if given is not None:
                raise ValueError(f"detector_threshold sets FaceBoxes' score threshold; the detector "
                                 f"{getattr(detector, 'name', detector)} is not FaceBoxes built by name (set the "
                                 f"threshold on that detector, or drop detector_threshold)")
            return None
        if given is not None:
            return float(given)
        filters = self.verify and self._min_confidence != 0.0
        return PROPOSAL_THRESHOLD if filters else SCORE_THRESHOLD

    @property
    def verifier(self) -> FaceVerifier:
        if self._verifier is None:
            dev = "cpu" if self.device.type != "cuda" else str(self.device)
            self._verifier = FaceVerifier(device=dev, backend=self.detector_backend, threads=self.detector_threads,
                                          head=self._own_head or self.verifier_name)
        return self._verifier

    @property
    def min_confidence(self) -> float:
        """The confidence a detected face needs to be kept (the verifier's default unless given)."""
        return self._min_confidence if self._min_confidence is not None else self.verifier.threshold

    def confidence_needed(self, yaw, pitch) -> np.ndarray:
        """The confidence (F,) detected faces with these pose angles (F,) in degrees need to be kept:
        :attr:`min_confidence`, and ``looking_down_confidence`` for a face looking steeply down
        (:func:`mfirrn.inference.verify.confidence_needed`)."""
        return confidence_needed(yaw, pitch, self.min_confidence, self.looking_down_confidence)

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            spec = self._detector_spec
            dev = "cpu" if self.device.type != "cuda" else str(self.device)
            self._detector = (create_detector(spec, backend=self.detector_backend, device=dev,
                                              threads=self.detector_threads, score_threshold=self.detector_threshold,
                                              max_size=self.detector_size, tint_grey=self.detector_tint_grey,
                                              min_size=self.detector_min_size, recheck=self.detector_recheck)
                              if isinstance(spec, str) else spec)
        return self._detector

    @property
    def model_name(self) -> str:
        return self.model.card.name

    def _predict(self, image: np.ndarray, rois: np.ndarray) -> torch.Tensor:
        crops = crops_to_tensor([crop_image(image, r, pad=self.crop_padding) for r in rois])
        return predict_params(self.model, crops, bf16=self.bf16, device=self.device)

    def _landmarks(self, params: torch.Tensor, rois: np.ndarray) -> torch.Tensor:
        roi_t = torch.as_tensor(rois, dtype=torch.float32, device=self.device)
        with torch.no_grad():
            return self.bfm.landmarks(params.to(self.device), convention=self.model.card.convention, roi=roi_t)

    def _upside_down(self, image: np.ndarray, landmarks: np.ndarray, p_up: np.ndarray) -> np.ndarray:
        """Indices of the faces (``landmarks`` (F, 68, 3), O-Net's probability ``p_up`` (F,) on the square around
        them) that O-Net finds more face-like with the photo turned by 180 degrees: by more than
        :data:`UPSIDE_DOWN_MARGIN`, and at least :data:`UPSIDE_DOWN_MIN` (docs/experiments/wild.md)."""
        cand = np.flatnonzero(np.asarray(p_up) < 1.0 - UPSIDE_DOWN_MARGIN)  # no other face can pass
        if len(cand) == 0:
            return cand
        h, w = image.shape[:2]
        boxes = turned_boxes(landmark_boxes(landmarks[cand]), w, h)
        p_turned = self.verifier.onet(np.ascontiguousarray(image[::-1, ::-1]), boxes)
        return cand[(p_turned - p_up[cand] > UPSIDE_DOWN_MARGIN) & (p_turned >= UPSIDE_DOWN_MIN)]

    def _turned_back(self, faces: list[Face], A: np.ndarray, dtype: torch.dtype = torch.float32):
        """(params (F, 62), landmarks (F, 68, 3), rois (F, 4)) in the photo of ``faces`` reconstructed in a copy of
        it turned by quarter turns (``A``: :func:`turn_back`): the same pixels, each face's crop box and image-frame
        camera turned back, its landmarks from the mapped parameters."""
        conv = self.model.card.convention
        params, rois = np.stack([f.params for f in faces]), np.stack([f.roi for f in faces])
        back = rois_back(rois, A)
        camera = camera_back(params_to_image_camera(params, rois, conv), A)
        p = torch.as_tensor(params_from_image_camera(camera, params[:, 12:], back, conv), dtype=dtype)
        return p, self._landmarks(p, back).cpu().numpy(), back

    def __call__(self, image: ImageInput, boxes: Optional[np.ndarray] = None,
                 landmarks: Optional[np.ndarray] = None, *, times: Optional[StageTimes] = None) -> list[Face]:
        """Reconstruct the faces of an image: a file path, a PIL image (RGB) or an array, **BGR** uint8 (H, W, 3)
        as OpenCV reads it (:func:`mfirrn.inference.inputs.to_bgr`; flip an RGB array with ``img[..., ::-1]``).

        Faces come from ``landmarks`` (F, K, 2) if given (roi from landmarks, as in 3DDFA's second step), else from
        ``boxes`` (F, 4 or 5), else from the detector. Returns [] when no face is found. ``times``
        collects the seconds spent per stage (detect, network, landmarks, refine, verify, turn) and counts the
        detected faces the verifier rejects (see the class docstring), which are left out; the dense mesh of
        ``dense=True`` is computed when a face's ``vertices`` is first read.
        """
        image = to_bgr(image)
        faces = self._run(image, boxes, landmarks, times, turn=self.turn_upside_down)
        if self.larger_look and boxes is None and landmarks is None and faces:
            faces = self._with_a_larger_look(image, faces, times)
        if self.turned_faces and boxes is None and landmarks is None:
            faces = self._with_turned_faces(image, faces, times)
        return faces

    def _with_turned_faces(self, image: np.ndarray, faces: list[Face], times: Optional[StageTimes]) -> list[Face]:
        """``faces`` of ``image`` and the faces found upright in its copies turned by 1, 2, 3 quarter turns, mapped
        back (``turned_faces``). A copy's face counts when it is upright there
        (:func:`mfirrn.geometry.turns.counts_upright`, its confidence with the verifier) and more face-like to O-Net
        in the copy than in the photo
        (an upright face of the photo is upside down in the copy turned by 180 degrees, and often fitted there as an
        upright face). A face whose crop box and that of a face kept before it hold each other's centre
        (:func:`centres_inside`: two fits of one face) is dropped: the photo's own upright faces are kept first, then
        the surer fits (a sideways face that the photo's own search fitted gives way to a surer fit in the copy that
        shows it upright). A copy's detection whose centre lies in the crop box of one of the photo's upright faces
        is not reconstructed: it would be dropped."""
        h, w = image.shape[:2]
        found: list[Face] = []
        own = [f.roi for f in faces if counts_upright(f.pose["roll"])]  # kept before any copy's face
        seen = getattr(self.detector, "seen_scale", None)  # the scale FaceBoxes saw the photo itself at
        rejected = times.rejected if times is not None else 0  # the photo's own: what --min-confidence 0 would keep
        for k in (1, 2, 3):
            copy = np.ascontiguousarray(np.rot90(image, k))
            timer = times if times is not None else _no_timer
            with timer("detect"):
                boxes = self.detector(copy)
            if own and len(boxes):  # a detection on one of them would be dropped: not reconstructed at all
                mine = rois_back(np.stack(own), turn_back(-k, copy.shape[1], copy.shape[0]))  # in the copy's pixels
                boxes = boxes[~centres_inside(boxes, mine).any(axis=1)]
            if not len(boxes):
                continue
            upright = [f for f in self._run(copy, None, None, times, turn=False, detections=boxes)
                       if counts_upright(f.pose["roll"], f.confidence if self.verify else None)]
            if not upright:
                continue
            back = self._faces_back(upright, turn_back(k, w, h))
            if self.verify:
                p_copy = self.verifier.onet(copy, landmark_boxes(np.stack([f.landmarks for f in upright])))
                p_photo = self.verifier.onet(image, landmark_boxes(np.stack([f.landmarks for f in back])))
                back = [f for f, a, b in zip(back, p_copy, p_photo) if a > b]
            found += back
        if seen is not None:
            self.detector.seen_scale = seen  # what the CLI's note on small faces reads: the photo's, not a copy's
        if times is not None:
            times.rejected = rejected
        if not found:
            return faces
        every = faces + found
        sure = np.nan_to_num(np.array([f.confidence for f in every]), nan=0.0)
        upright = np.array([i < len(faces) and counts_upright(f.pose["roll"]) for i, f in enumerate(every)])
        rois = np.stack([f.roi for f in every])
        keep = np.zeros(len(every), bool)
        for i in np.lexsort((-sure, ~upright)):  # the photo's upright faces first, then the surer fits
            keep[i] = not centres_inside(rois[i:i + 1], rois[keep]).any()
        return [f for f, k in zip(every, keep) if k]

    def _with_a_larger_look(self, image: np.ndarray, faces: list[Face], times: Optional[StageTimes]) -> list[Face]:
        """``faces`` of ``image`` and, where one of them spans fewer than :data:`RECHECK_SMALL_SIDE` pixels at the
        detector's input (FaceBoxes' smallest anchor: the photo's other faces may be too small for it), the faces
        of the detector's look at the whole photo shown larger (``FaceBoxes.larger_look``) that lie apart from them
        (no crop-box centre in the other's crop box)."""
        look = getattr(self.detector, "larger_look", None)
        seen = getattr(self.detector, "seen_scale", None)
        if look is None or seen is None:
            return faces
        if not small_at_input(faces, seen):
            return faces
        timer = times if times is not None else _no_timer
        with timer("detect"):
            boxes = look(image)
        own = np.stack([f.roi for f in faces])
        boxes = boxes[~centres_inside(boxes, own).any(axis=1)] if len(boxes) else boxes
        if not len(boxes):
            return faces
        found = self._run(image, None, None, times, turn=self.turn_upside_down, detections=boxes)
        return faces + [f for f in found if not centres_inside(f.roi[None], own).any()]

    def _faces_back(self, faces: list[Face], A: np.ndarray) -> list[Face]:
        """``faces`` reconstructed in a turned copy of the photo, in the photo (``A``: :func:`turn_back`): crop boxes,
        detector boxes and image-frame cameras mapped, landmarks and pose from the mapped parameters."""
        p, lms, back = self._turned_back(faces, A)
        boxes = None if any(f.box is None for f in faces) else boxes_back(np.stack([f.box for f in faces]), A)
        return self._faces(back, p, lms, np.array([f.refined for f in faces]),
                           np.array([f.confidence for f in faces]), np.array([f.score for f in faces]), boxes)

    def _run(self, image: np.ndarray, boxes: Optional[np.ndarray], landmarks: Optional[np.ndarray],
             times: Optional[StageTimes], *, turn: bool, detections: Optional[np.ndarray] = None) -> list[Face]:
        """:meth:`__call__` on a BGR image; ``turn``: faces found upside down are reconstructed turned;
        ``detections``: the detector's boxes (K, 5) of ``image``, already found (detected faces, filtered as such)."""
        timer = times if times is not None else _no_timer
        detected = landmarks is None and boxes is None  # only detected faces are filtered
        box_arr: Optional[np.ndarray]
        if landmarks is not None:
            lm = check_landmarks(landmarks)
            rois, box_arr, scores = roi_from_landmarks(lm), None, np.full(len(lm), np.nan)
        else:
            if boxes is None and detections is not None:
                box_arr = detections
            elif boxes is None:
                with timer("detect"):
                    box_arr = self.detector(image)
            else:
                box_arr = check_boxes(boxes)
            scores = box_arr[:, 4] if box_arr.shape[1] == 5 else np.full(len(box_arr), np.nan)
            rois = roi_from_box(box_arr[:, :4])
        if len(rois) == 0:
            return []
        with timer("network"):
            params = self._predict(image, rois)
        refined = np.zeros(len(rois), bool)
        with timer("landmarks"):
            lms_t = self._landmarks(params, rois)
        first_lms, rois2, second_lms, rois3 = lms_t.cpu().numpy(), None, None, None
        if self.refine != "off":
            with timer("refine"):
                rois2 = roi_from_landmarks(lms_t.cpu().numpy()[..., :2])
                params2 = self._predict(image, rois2)
                lms2_t = self._landmarks(params2, rois2)
                second_lms = lms2_t.cpu().numpy()
                if self.refine == "always":
                    refined = np.ones(len(rois), bool)
                else:
                    rois3 = roi_from_landmarks(lms2_t.cpu().numpy()[..., :2])
                    refined = refined_roi_agrees(rois, rois2, rois3)
                    if refined.any():  # the mean of three passes, in the frame of the second crop
                        k = np.flatnonzero(refined)  # a third pass only where it is kept: the others keep pass 1
                        params3 = self._predict(image, rois3[k])
                        mean = average_passes([params[k], params2[k], params3], [rois[k], rois2[k], rois3[k]], rois2[k],
                                              self.model.card.convention).to(params2.dtype)
                        params2, lms2_t = params2.clone(), lms2_t.clone()
                        params2[k], lms2_t[k] = mean, self._landmarks(mean, rois2[k]).to(lms2_t.dtype)
                take = torch.as_tensor(refined)
                params = torch.where(take[:, None], params2, params)
                lms_t = torch.where(take.to(lms_t.device)[:, None, None], lms2_t, lms_t)
                rois = np.where(refined[:, None], rois2, rois)
        lms = lms_t.cpu().numpy()
        pose = pose_from_params(params)
        confidence = np.full(len(rois), np.nan)
        if self.verify:
            with timer("verify"):
                if second_lms is None:  # refine="off": the verifier's second pass
                    rois2 = roi_from_landmarks(first_lms[..., :2])
                    second_lms = self._landmarks(self._predict(image, rois2), rois2).cpu().numpy()
                rois3 = roi_from_landmarks(second_lms[..., :2]) if rois3 is None else rois3
                crops = self.verifier.crops(image, lms)  # O-Net's inputs, read by a second head's opinion too
                features = self.verifier.features(image, lms, *pass_agreement(first_lms, second_lms, rois2, rois3),
                                                  params=params.detach().cpu().numpy(), crops=crops)
                confidence = self.verifier.score(features)
                opinion = self.verifier.opinion  # a second opinion, asked only where the answer can matter
                if opinion is not None and (detected or opinion.given_boxes):
                    yaw = pose.yaw.cpu().numpy()
                    ask = confidence >= self.confidence_needed(yaw, pose.pitch.cpu().numpy()) if detected else None
                    confidence = self.verifier.second_opinion(image, rois, lms, yaw, confidence, ask, features, crops)
            if turn and box_arr is not None:
                with timer("turn"):
                    k = self._upside_down(image, lms, features[:, 0])
                    if len(k):
                        turned = self._run(np.ascontiguousarray(image[::-1, ::-1]),
                                           turned_boxes(box_arr[k], image.shape[1], image.shape[0]), None, times,
                                           turn=False)
                        params, lms, rois = params.clone(), lms.copy(), rois.copy()
                        back = turn_back(2, image.shape[1], image.shape[0])
                        params[k], lms[k], rois[k] = self._turned_back(turned, back, params.dtype)
                        confidence[k] = [f.confidence for f in turned]
                        refined[k] = [f.refined for f in turned]
                        pose = pose_from_params(params)
        keep = np.ones(len(rois), bool)
        if detected:
            keep = np.ptp(lms[..., :2], axis=-2).max(axis=-1) >= self.min_face_size
            if self.verify:
                sure = confidence >= self.confidence_needed(pose.yaw.cpu().numpy(), pose.pitch.cpu().numpy())
                if times is not None:
                    times.rejected += int((keep & ~sure).sum())
                keep &= sure
            if keep.sum() > 1:  # one face reconstructed twice (from two detector boxes): the surer one stays
                idx = np.flatnonzero(keep)  # detector order (best score first) decides a tie
                keep[idx] = same_face_kept(rois[idx], lms[idx], confidence[idx] if self.verify else np.zeros(len(idx)))
            if not keep.any():
                return []
            if not keep.all():
                idx = np.flatnonzero(keep)
                rois, params, lms, refined, confidence = (rois[idx], params[torch.as_tensor(idx)], lms[idx],
                                                          refined[idx], confidence[idx])
                scores, pose = scores[idx], pose_from_params(params)
                box_arr = None if box_arr is None else box_arr[idx]
        return self._faces(rois, params, lms, refined, confidence, scores, box_arr, pose)


    def _faces(self, rois: np.ndarray, params: torch.Tensor, lms: np.ndarray, refined: np.ndarray,
               confidence: np.ndarray, scores: np.ndarray, box_arr: Optional[np.ndarray], pose=None) -> list[Face]:
        """The :class:`Face` objects of F reconstructed faces (arrays of F rows; ``pose`` from ``params`` if None)."""
        pose = pose_from_params(params) if pose is None else pose
        # the dense mesh only when asked: computed for all faces at the first read of a face's .vertices
        meshes = _DenseMeshes(self.bfm, params, rois, self.model.card.convention) if self.dense else None
        faces = []
        for i in range(len(rois)):
            faces.append(Face(
                box=None if box_arr is None else box_arr[i, :4].copy(),
                roi=np.asarray(rois[i], np.float64),
                params=params[i].numpy().astype(np.float64),
                pose={"yaw": float(pose.yaw[i]), "pitch": float(pose.pitch[i]), "roll": float(pose.roll[i]),
                      "scale": float(pose.scale[i])},
                landmarks=lms[i],
                triangles=self.bfm.triangles if meshes is not None else None,
                score=float(scores[i]),
                refined=bool(refined[i]),
                _dense=None if meshes is None else (meshes, i),
                confidence=float(confidence[i]),
            ))
        return faces


def reconstruct(image: ImageInput, model: Union[str, nn.Module] = "3ddfa-v2-mb05",
                boxes: Optional[np.ndarray] = None, landmarks: Optional[np.ndarray] = None,
                **kwargs) -> list[Face]:
    """One-call reconstruction of a path, a PIL image or a BGR array (builds a :class:`Reconstructor`; reuse one
    for many images)."""
    img = to_bgr(image)  # a bad image fails before the model loads
    return Reconstructor(model, **kwargs)(img, boxes=boxes, landmarks=landmarks)

