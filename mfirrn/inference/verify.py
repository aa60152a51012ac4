"""Is it a face? The verifier that gives each reconstructed face a ``confidence`` in [0, 1].

A detector box on a hand, a clock or a sliver of background still gives a complete 3D face: the
regressor always answers. The verifier looks at what the pipeline produced and reads (chosen by
measurement, docs/experiments/wild.md):

- ``onet``: the face probability of MTCNN's O-Net (:mod:`mfirrn.detect.mtcnn`) on the square around
  the face's 68 landmarks;
- ``lmdiff``: how far the landmarks move from one network pass to the next (mean point distance over
  the side of the second crop): on a face the passes agree, on anything else each crop sees a
  different patch and the landmarks wander;
- ``agree``: the IoU of the second crop with the crop the second pass's landmarks would give (the
  robust refinement's own settling test, :func:`mfirrn.inference.pipeline.refined_roi_agrees`);
- O-Net's 256 features (the layer its face probability is read from) on the same square: O-Net was
  trained for faces turned less than about 60 degrees, and a new linear read of its features, fitted on
  faces of every pose against hands and background, tells a profile from a fist better than its own;
- the face's 40 shape and 10 expression coefficients (its final params, de-normalised): the regressor
  fits anything it is shown, but a hand or a patch of background with coefficients no face has.

A logistic model (:class:`VerifierHead`, fitted by ``benchmarks/verifiers.py``) turns the features it names (a
subset of :data:`FEATURES`) into the confidence. Two heads ship (:data:`VERIFIERS`): ``standard`` (the default;
``data/weights/face-verifier.json``) reads the three cues and O-Net's 256 features; ``strict``
(``face-verifier-strict.json``) reads the three cues and the 50 coefficients: it passes far fewer hands, fists and
backs of heads, and loses some masked faces and small, badly fitted faces in crowds (docs/experiments/wild.md,
"The regressor's coefficients as a verifier cue"). O-Net runs once per face for all of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from mfirrn.geometry.crop import roi_iou
from mfirrn.geometry.params import PARAM_SPEC
from mfirrn.geometry.pose import facing_down
from mfirrn.io.assets import project_weights_dir
from mfirrn.io.defaults import LOOKING_DOWN_CONFIDENCE, LOOKING_DOWN_DEGREES, VERIFIER_NAMES

__all__ = ["CUES", "EMBEDDING", "COEFFICIENTS", "FEATURES", "VERIFIERS", "STRICT_HEAD_PATH", "VerifierHead",
           "FaceVerifier", "pass_agreement", "landmark_boxes", "looking_down", "confidence_needed", "DEFAULT_HEAD_PATH",
           "head_path"]

#: The three scalar cues.
CUES: tuple[str, ...] = ("onet", "lmdiff", "agree")
#: O-Net's 256 features, named ``onet_feature_0`` ... ``onet_feature_255``.
EMBEDDING: tuple[str, ...] = tuple(f"onet_feature_{i}" for i in range(256))
#: The face's shape and expression coefficients, ``shape_0`` ... ``shape_39``, ``expression_0`` ... ``expression_9``.
COEFFICIENTS: tuple[str, ...] = (tuple(f"shape_{i}" for i in range(PARAM_SPEC.shape))
                                 + tuple(f"expression_{i}" for i in range(PARAM_SPEC.exp)))
#: Every feature the verifier computes, in the order of :meth:`FaceVerifier.features`; a head reads some of them.
FEATURES: tuple[str, ...] = CUES + EMBEDDING + COEFFICIENTS
DEFAULT_HEAD_PATH = project_weights_dir() / "face-verifier.json"
STRICT_HEAD_PATH = project_weights_dir() / "face-verifier-strict.json"
#: The shipped verifier heads by name (``Reconstructor(verifier=...)``, ``--verifier``); the first is the default.
VERIFIERS: dict[str, Path] = dict(zip(VERIFIER_NAMES, (DEFAULT_HEAD_PATH, STRICT_HEAD_PATH)))


def head_path(name: str) -> Path:
    """The weights file of the shipped verifier head ``name`` (:data:`VERIFIERS`); ValueError naming the choices.

    >>> head_path("strict").name
    'face-verifier-strict.json'
    """
    if name not in VERIFIERS:
        raise ValueError(f"verifier must be one of {', '.join(VERIFIERS)}, got {name!r}")
    return VERIFIERS[name]


def landmark_boxes(landmarks: np.ndarray) -> np.ndarray:
    """The boxes (F, 4) = (x0, y0, x1, y1) of landmarks (F, K, 2 or 3) in image pixels.

    >>> landmark_boxes(np.array([[[1.0, 2], [3, 7]]])).tolist()
    [[1.0, 2.0, 3.0, 7.0]]
    """
    lm = np.asarray(landmarks, np.float64)[..., :2]
    return np.concatenate([lm.min(axis=-2), lm.max(axis=-2)], axis=-1)


def pass_agreement(first: np.ndarray, second: np.ndarray, second_roi: np.ndarray,
                   third_roi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(lmdiff, agree)`` (F,) each: how well two network passes over the same face agree.

    ``first``, ``second`` (F, K, 2+): the landmarks of the first pass and of the second pass (predicted
    from the crop ``second_roi`` (F, 4) that the first pass's landmarks gave); ``third_roi`` (F, 4): the
    crop the second pass's landmarks give. ``lmdiff`` = mean distance between the two passes' points
    over the side of ``second_roi``; ``agree`` = IoU(second_roi, third_roi).

    >>> lm = np.zeros((1, 2, 2)); r = np.array([[0.0, 0, 10, 10]])
    >>> [v.tolist() for v in pass_agreement(lm, lm + 1, r, r)]
    [[0.1414213562373095], [1.0]]
    """
    d = np.linalg.norm(np.asarray(second, np.float64)[..., :2] - np.asarray(first, np.float64)[..., :2], axis=-1)
    side = np.maximum(second_roi[:, 2] - second_roi[:, 0], 1e-9)
    return d.mean(axis=-1) / side, roi_iou(second_roi, third_roi)


def looking_down(yaw, pitch, degrees: float = LOOKING_DOWN_DEGREES) -> np.ndarray:
    """Whether faces with these pose angles (F,) in degrees look down more steeply than ``degrees`` below the
    camera's horizontal plane (:func:`mfirrn.geometry.pose.facing_down`), (F,) bool.

    >>> looking_down([0.0, 0.0, 80.0], [-29.0, -31.0, -60.0]).tolist()
    [False, True, False]
    """
    return facing_down(yaw, pitch) > np.sin(np.radians(degrees))


def confidence_needed(yaw, pitch, min_confidence: float, looking_down_confidence: float = LOOKING_DOWN_CONFIDENCE,
                      looking_down_degrees: float = LOOKING_DOWN_DEGREES) -> np.ndarray:
    """The confidence (F,) each detected face needs to be kept, from its pose angles (F,) in degrees.

    ``min_confidence``, and for a face that looks down more steeply than ``looking_down_degrees``
    (:func:`mfirrn.geometry.pose.facing_down`) the larger of it and ``looking_down_confidence``: the back of a
    head is read as a face looking steeply down, and the verifier, which never saw one, can pass it; real faces that
    look down so steeply are few and the verifier is fairly sure of them (docs/experiments/wild.md, "Backs of
    heads").
    ``min_confidence`` 0 keeps every face, looking down or not.

    >>> confidence_needed([0.0, 0.0, 80.0], [-10.0, -40.0, -60.0], 0.05).tolist()
    [0.05, 0.3, 0.05]
    >>> confidence_needed([0.0], [-40.0], 0.0).tolist()
    [0.0]
    """
    steep = looking_down(yaw, pitch, looking_down_degrees)
    needed = np.full(steep.shape, float(min_confidence))
    if min_confidence > 0:
        needed[steep] = max(min_confidence, looking_down_confidence)
    return needed


@dataclass(frozen=True)
class VerifierHead:
    """Logistic model: ``confidence = sigmoid(sum_k weights[k] * (x[k] - mean[k]) / std[k] + bias)`` over the
    features ``names`` (F, K) -> (F,). ``threshold`` is the default ``min_confidence`` chosen with it."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float
    note: str = ""

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Confidences (F,) from the head's own features (F, K), in the order of ``names``."""
        x = (np.asarray(features, np.float64) - np.asarray(self.mean)) / np.asarray(self.std)
        z = x @ np.asarray(self.weights) + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))

    @classmethod
    def load(cls, path: Union[str, Path, None] = None) -> "VerifierHead":
        """Read the head from JSON (default: the project's ``data/weights/face-verifier.json``)."""
        path = Path(path) if path is not None else DEFAULT_HEAD_PATH
        try:
            d = json.loads(path.read_text())
            head = cls(tuple(d["names"]), tuple(d["mean"]), tuple(d["std"]), tuple(d["weights"]), float(d["bias"]),
                       float(d["threshold"]), d.get("note", ""))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"face verifier weights {path}: unreadable ({type(exc).__name__}: {exc}); restore the "
                             f"file from the repository or refit it with benchmarks/verifiers.py --fit") from None
        unknown = [n for n in head.names if n not in FEATURES]
        if (unknown or not head.names or len(set(head.names)) != len(head.names)
                or not (len(head.mean) == len(head.std) == len(head.weights) == len(head.names))):
            raise ValueError(f"face verifier weights {path}: expected distinct names among the verifier's features "
                             f"({', '.join(CUES)}, onet_feature_*, shape_*, expression_*), each with a mean, std and "
                             f"weight; got {len(head.names)} names{f' ({unknown[:3]} unknown)' if unknown else ''}; "
                             "restore the file from the repository or refit it with benchmarks/verifiers.py --fit")
        return head

    def columns(self) -> np.ndarray:
        """Indices (K,) of the head's features in :data:`FEATURES` (the columns of :meth:`FaceVerifier.features`).

        >>> VerifierHead(("agree", "shape_0"), (0.0, 0.0), (1.0, 1.0), (1.0, 1.0), 0.0, 0.5).columns().tolist()
        [2, 259]
        """
        return np.array([FEATURES.index(n) for n in self.names], dtype=np.intp)

    def to_json(self) -> str:
        return json.dumps({"names": list(self.names), "mean": list(self.mean), "std": list(self.std),
                           "weights": list(self.weights), "bias": self.bias, "threshold": self.threshold,
                           "note": self.note}, indent=1)


class FaceVerifier:
    """Confidence in [0, 1] that reconstructed faces are human faces (see the module docstring).

    ``device``: where O-Net runs; ``backend``/``threads``: ``"torch"`` or ``"onnxruntime"`` and its threads
    (as the pipeline's detector); ``head``: the logistic model, or the name of a shipped one (:data:`VERIFIERS`;
    default ``"standard"``). O-Net is built on first use.
    """

    def __init__(self, *, device: str = "cpu", backend: str = "torch", threads: int = 0,
                 head: Union[VerifierHead, str, None] = None) -> None:
        self.device, self.backend, self.threads = device, backend, threads
        if head is None or isinstance(head, str):
            head = VerifierHead.load(head_path(head or VERIFIER_NAMES[0]))
        self.head = head
        self._columns = self.head.columns()
        self._onet = None

    @property
    def threshold(self) -> float:
        return self.head.threshold

    @property
    def onet(self):
        if self._onet is None:
            from mfirrn.detect.mtcnn import ONetScorer

            self._onet = ONetScorer(backend=self.backend, device=self.device, threads=self.threads)
        return self._onet

    def features(self, image: np.ndarray, landmarks: np.ndarray, lmdiff: np.ndarray, agree: np.ndarray,
                 params: np.ndarray) -> np.ndarray:
        """The feature matrix (F, 309) in :data:`FEATURES` order for faces with final ``landmarks`` (F, 68, 2+) and
        de-normalised ``params`` (F, 62) in a BGR uint8 ``image``; ``lmdiff``, ``agree`` (F,) from
        :func:`pass_agreement`."""
        prob, embedding = self.onet.score(image, landmark_boxes(landmarks))
        cues = np.stack([prob, np.asarray(lmdiff, np.float64), np.asarray(agree, np.float64)], axis=1)
        coefficients = np.asarray(params, np.float64).reshape(len(cues), PARAM_SPEC.dim)[:, PARAM_SPEC.pose:]
        return np.concatenate([cues, embedding, coefficients], axis=1)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Confidence (F,) from the feature matrix (F, 309) of :meth:`features` (the head reads its own columns)."""
        return self.head(np.asarray(features)[:, self._columns])

    def __call__(self, image: np.ndarray, landmarks: np.ndarray, lmdiff: np.ndarray, agree: np.ndarray,
                 params: np.ndarray) -> np.ndarray:
        """Confidence (F,) of each face (arguments as :meth:`features`)."""
        if len(landmarks) == 0:
            return np.zeros(0)
        return self.score(self.features(image, landmarks, lmdiff, agree, params))
