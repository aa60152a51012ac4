"""Face detectors and other ways to say where the faces are.

Every detector maps a BGR uint8 image (H, W, 3) to boxes (K, 5) = (x0, y0, x1, y1, score) in image
pixels, sorted by score. Registered detectors: ``faceboxes`` (FaceBoxes, :mod:`mfirrn.detect.faceboxes`; finds
faces of every pose, fast on a CPU), ``dlib-hog`` (dlib's frontal HOG detector), ``dlib-cnn``
(dlib's MMOD CNN, weights fetched as an asset), ``mtcnn`` (:mod:`mfirrn.detect.mtcnn`, the weights of
the ``facenet-pytorch`` wheel) and ``blazeface`` (MediaPipe's full-range model,
:mod:`mfirrn.detect.blazeface`; needs a TensorFlow Lite runtime). The default, :data:`DEFAULT_DETECTOR`, is FaceBoxes
(chosen by measurement: docs/experiments/pipeline.md). A comma list such as ``faceboxes,dlib-hog``
asks each detector in turn until one finds a face. A known face can
also be given as a manual box or as landmarks read from a file (:func:`read_landmarks`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional, Protocol, Union

import cv2
import numpy as np

from mfirrn.io.defaults import DEFAULT_DETECTOR

__all__ = ["Detector", "DlibHOG", "DlibCNN", "FirstOf", "create_detector", "available_detectors", "names_faceboxes",
           "read_landmarks", "LandmarkFileError", "DEFAULT_DETECTOR"]


class Detector(Protocol):
    name: str

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """BGR uint8 (H, W, 3) -> boxes (K, 5) float64 (x0, y0, x1, y1, score), best first."""
        ...


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w)) if max_side > 0 else 1.0
    if scale < 1.0:
        image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return image, scale


def _sorted(boxes: list[list[float]]) -> np.ndarray:
    arr = np.asarray(boxes, np.float64).reshape(-1, 5)
    return arr[np.argsort(-arr[:, 4], kind="stable")]


class DlibHOG:
    """dlib's HOG + linear SVM frontal face detector.

    ``upsample`` times the image is upsampled before detection (finds smaller faces, slower); images
    larger than ``max_side`` pixels are downscaled first (boxes are mapped back) to bound the run time.
    """

    name = "dlib-hog"

    def __init__(self, upsample: int = 1, max_side: int = 1024) -> None:
        import dlib

        self._det = dlib.get_frontal_face_detector()
        self.upsample, self.max_side = upsample, max_side

    def __call__(self, image: np.ndarray) -> np.ndarray:
        small, scale = _downscale(image, self.max_side)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        rects, scores, _ = self._det.run(rgb, self.upsample, 0.0)
        return _sorted([[r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale, s]
                        for r, s in zip(rects, scores)])


class DlibCNN:
    """dlib's MMOD CNN face detector (asset ``detector-dlib-cnn``); more robust to pose, slower on CPU."""

    name = "dlib-cnn"

    def __init__(self, upsample: int = 1, max_side: int = 640) -> None:
        import dlib

        from mfirrn.io.assets import fetch

        self._det = dlib.cnn_face_detection_model_v1(str(fetch("detector-dlib-cnn")))
        self.upsample, self.max_side = upsample, max_side

    def __call__(self, image: np.ndarray) -> np.ndarray:
        small, scale = _downscale(image, self.max_side)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        dets = self._det(rgb, self.upsample)
        return _sorted([[d.rect.left() / scale, d.rect.top() / scale, d.rect.right() / scale,
                         d.rect.bottom() / scale, d.confidence] for d in dets])


class FirstOf:
    """Ask detectors in turn; the first that finds a face answers (built on first use, or by :meth:`build_all`).

    ``FirstOf(["faceboxes", "dlib-hog"])``: FaceBoxes, and dlib HOG on images where FaceBoxes finds
    nothing. ``name`` is the comma list.
    """

    def __init__(self, names: list[str], **options) -> None:
        for n in names:
            if n not in _DETECTORS:
                raise ValueError(f"unknown detector {n!r}; use one of {', '.join(available_detectors())} "
                                 f"or a comma list of them")
        self.names, self._options = list(names), options
        self.name = ",".join(names)
        self._built: list[Detector] = []
        self.last: str = ""  # the detector that answered the last call

    def _get(self, i: int) -> Detector:
        while len(self._built) <= i:
            self._built.append(_build(self.names[len(self._built)], **self._options))
        return self._built[i]

    def build_all(self) -> None:
        """Build every detector of the chain now (a missing package or weights file fails here, not mid-run)."""
        self._get(len(self.names) - 1)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        boxes = np.zeros((0, 5))
        for i, name in enumerate(self.names):
            boxes, self.last = self._get(i)(image), name
            if len(boxes):
                break
        return boxes


def _faceboxes(backend: str = "torch", device: str = "cpu", threads: int = 0,
               score_threshold: Optional[float] = None, max_size: Optional[tuple[int, int]] = None,
               tint_grey: bool = False, min_size: int = 0, recheck: bool = False) -> Detector:
    from mfirrn.detect.faceboxes import MAX_SIZE, SCORE_THRESHOLD, FaceBoxes

    threshold = SCORE_THRESHOLD if score_threshold is None else score_threshold
    return FaceBoxes(backend=backend, device=device, threads=threads, score_threshold=threshold,
                     max_size=MAX_SIZE if max_size is None else max_size, tint_grey=tint_grey, min_size=min_size,
                     recheck=recheck)


def _mtcnn(device: str = "cpu", **_) -> Detector:
    from mfirrn.detect.mtcnn import MTCNN

    return MTCNN(device=device)


def _blazeface(threads: int = 0, **_) -> Detector:
    from mfirrn.detect.blazeface import BlazeFace

    return BlazeFace(threads=threads or 1)


_DETECTORS: dict[str, Callable[..., Detector]] = {
    "faceboxes": _faceboxes,
    "dlib-hog": lambda **_: DlibHOG(),
    "dlib-cnn": lambda **_: DlibCNN(),
    "mtcnn": _mtcnn,
    "blazeface": _blazeface,
}


def _build(name: str, **options) -> Detector:
    return _DETECTORS[name](**options)


def available_detectors() -> list[str]:
    return sorted(_DETECTORS)


def names_faceboxes(spec: object) -> bool:
    """Whether ``spec`` is a detector name or comma list that includes FaceBoxes (a built detector is not).

    >>> names_faceboxes("faceboxes, dlib-hog"), names_faceboxes("dlib-hog"), names_faceboxes(None)
    (True, False, False)
    """
    return isinstance(spec, str) and "faceboxes" in [n.strip() for n in spec.split(",")]


def create_detector(name: str = DEFAULT_DETECTOR, *, backend: str = "torch", device: str = "cpu",
                    threads: int = 0, score_threshold: Optional[float] = None,
                    max_size: Optional[tuple[int, int]] = None, tint_grey: bool = False,
                    min_size: int = 0, recheck: bool = False) -> Detector:
    """Build a registered detector by name, or a :class:`FirstOf` chain from a comma list.

    ``backend`` (``torch`` or ``onnxruntime``), ``device`` and ``threads`` (ONNX Runtime intra-op
    threads, 0: the threading policy's budget) apply to network detectors (FaceBoxes);
    ``score_threshold``: FaceBoxes' score threshold (default ``None``: 3DDFA_V2's 0.5); the other
    detectors' scores are on other scales, so a name without ``faceboxes`` refuses it. ``max_size``: FaceBoxes'
    largest input (height, width; default ``None``: 3DDFA_V2's 720 x 1080; ``(0, 0)``: full resolution).
    ``tint_grey``: FaceBoxes detects black-and-white photos in a skin tint (:func:`mfirrn.detect.faceboxes.tint_grey`).
    ``min_size``: FaceBoxes upscales an image whose longer side is shorter (pixels) to it (0: never).
    ``recheck``: FaceBoxes detects its near misses again on a crop around them: at full resolution in a downscaled
    photo, shown twice as large where they are small faces of a photo seen at its own size
    (:class:`mfirrn.detect.faceboxes.FaceBoxes`); other detectors ignore it.
    Every detector of a chain is built now, so missing weights or packages fail here rather than mid-folder.
    """
    names = [n.strip() for n in name.split(",") if n.strip()]
    if not names:
        raise ValueError(f"no detector named; use one of {', '.join(available_detectors())}")
    if score_threshold is not None:
        if "faceboxes" not in names:
            raise ValueError(f"a score threshold applies to FaceBoxes' scores; the detector {name} has none "
                             f"(drop the threshold or add faceboxes to the detectors)")
        if not 0.0 < score_threshold < 1.0:
            raise ValueError(f"FaceBoxes' score threshold must lie in (0, 1), got {score_threshold}")
    if max_size is not None and "faceboxes" not in names:
        raise ValueError(f"a detector size applies to FaceBoxes; the detector {name} sizes its input itself "
                         f"(drop the size or add faceboxes to the detectors)")
    if tint_grey and "faceboxes" not in names:
        raise ValueError(f"the grey tint applies to FaceBoxes; the detector {name} sees photos as they are "
                         f"(drop the tint or add faceboxes to the detectors)")
    if min_size and "faceboxes" not in names:
        raise ValueError(f"a smallest input size applies to FaceBoxes; the detector {name} sizes its input itself "
                         f"(drop the size or add faceboxes to the detectors)")
    chain = FirstOf(names, backend=backend, device=device, threads=threads, score_threshold=score_threshold,
                    max_size=max_size, **({"tint_grey": True} if tint_grey else {}),
                    **({"min_size": min_size} if min_size else {}), **({"recheck": True} if recheck else {}))
    chain.build_all()
    return chain._built[0] if len(names) == 1 else chain


class LandmarkFileError(ValueError):
    """A landmark file cannot be read; the message names the file and the accepted formats."""


def read_landmarks(path: Union[str, Path]) -> np.ndarray:
    """Read 2D landmarks of one or more faces: returns (F, K, 2) float64 image pixels.

    Formats: menpo/ibug ``.pts`` (``n_points: K`` then ``{ x y ... }``, one face), menpo ``.ljson``
    (``landmarks.points``, one face), ``.npy`` ((K, 2), (F, K, 2), or 3DDFA's (2|3, K)), and text
    (``.txt``/``.csv``: K lines of ``x y``, one face).
    """
    path = Path(path)
    fmt_help = "use .pts, .ljson, .npy ((K,2) or (F,K,2)) or .txt (one 'x y' per line)"
    if not path.is_file():
        raise LandmarkFileError(f"landmark file {path} does not exist; {fmt_help}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".pts":
            text = path.read_text()
            body = text[text.index("{") + 1: text.index("}")]
            pts = np.array([[float(v) for v in line.split()[:2]] for line in body.strip().splitlines() if line.strip()])
        elif suffix == ".ljson":
            data = json.loads(path.read_text())
            groups = [data] if "landmarks" in data else list(data.get("groups", {}).values())
            sets = [np.array(g["landmarks"]["points"], dtype=np.float64) for g in groups]
            sets = sorted(sets, key=lambda a: -len(a))  # the largest group (e.g. 68 points, not "pupils")
            pts = sets[0][:, ::-1]  # menpo stores (y, x)
        elif suffix == ".npy":
            pts = np.load(path).astype(np.float64)
            if pts.ndim == 2 and pts.shape[0] in (2, 3) and pts.shape[1] > 3:
                pts = pts[:2].T
        elif suffix in (".txt", ".csv"):
            pts = np.loadtxt(path, delimiter="," if suffix == ".csv" else None, dtype=np.float64)[:, :2]
        else:
            raise LandmarkFileError(f"landmark file {path}: unknown format {suffix!r}; {fmt_help}")
    except LandmarkFileError:
        raise
    except Exception as exc:
        raise LandmarkFileError(f"landmark file {path} is malformed ({type(exc).__name__}: {exc}); {fmt_help}") from None
    pts = pts.reshape(-1, *pts.shape[-2:]) if pts.ndim >= 2 else pts
    if pts.ndim != 3 or pts.shape[-1] < 2 or pts.shape[1] < 2 or not np.isfinite(pts[..., :2]).all():
        raise LandmarkFileError(f"landmark file {path} gives shape {pts.shape}, not (F, K, 2) finite points; {fmt_help}")
    return pts[..., :2]
