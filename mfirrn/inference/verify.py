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
subset of :data:`FEATURES`) into the confidence. Two heads ship, each the head of a verifier of :data:`VERIFIERS`:
``standard``'s (the default; ``data/weights/face-verifier.json``) reads the three cues and O-Net's 256 features, and
asks a second head about the faces it is unsure of (below);
``strict``'s (``face-verifier-strict.json``) reads the three cues and the 50 coefficients: it passes far fewer
hands, fists and backs of heads, and loses some masked faces and small, badly fitted faces in crowds
(docs/experiments/wild.md, "The regressor's coefficients as a verifier cue"). O-Net runs once per face for all
(and a second head's O-Net on the faces it is asked about).

A third verifier, ``blazeface``, is the standard head with a **second opinion** (:class:`SecondOpinion`,
:data:`BLAZEFACE_OPINION`): BlazeFace full range, a detector trained on human faces only, run on the crop of each
face the head would keep but is unsure of (confidence below 0.99) and that is turned less than 45 degrees; where it
finds no face there, the confidence is 0. Cats' and dogs' faces, which O-Net and the regressor take for human ones,
mostly fail it; a few human faces do too (a man in a gas mask and foil hood), and it costs about 3 % of a photo,
which kept it from the default (docs/experiments/wild.md, "The second opinion for the default verifier"). It needs a
TensorFlow Lite runtime (``pip install 'mfirrn[detectors]'``).

The ``standard`` verifier's own second opinion is another head (:class:`HeadOpinion`, :data:`ANIMALS_OPINION`) with
an O-Net of its own, fine-tuned on faces against cats', dogs' and other animals' faces and on poor photos
(``data/weights/face-verifier-animals.json``, C7 of docs/experiments/wild.md), asked about each detected face the
standard head keeps but is not sure of (below 0.999); where it is sure there is no face (below 0.02), the face's
confidence becomes its own. O-Net's crops are made once for both heads.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from mfirrn.detect.blazeface import INPUT_SIZE as BLAZEFACE_INPUT
from mfirrn.geometry.crop import crop_image, roi_iou
from mfirrn.geometry.params import PARAM_SPEC
from mfirrn.geometry.pose import facing_down
from mfirrn.io.assets import project_weights_dir
from mfirrn.io.defaults import LOOKING_DOWN_CONFIDENCE, LOOKING_DOWN_DEGREES, VERIFIER_NAMES

__all__ = ["CUES", "EMBEDDING", "COEFFICIENTS", "FEATURES", "VERIFIERS", "STRICT_HEAD_PATH", "ANIMALS_HEAD_PATH",
           "VerifierHead", "SecondOpinion", "HeadOpinion", "BLAZEFACE_OPINION", "ANIMALS_OPINION", "SECOND_OPINIONS",
           "FaceVerifier", "crop_square", "centre_score",
           "pass_agreement", "landmark_boxes", "looking_down", "confidence_needed", "DEFAULT_HEAD_PATH", "head_path"]

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
#: The standard verifier's second head (it names its own O-Net weights, beside it).
ANIMALS_HEAD_PATH = project_weights_dir() / "face-verifier-animals.json"
#: The shipped verifiers' heads by name (``Reconstructor(verifier=...)``, ``--verifier``); the first is the default.
VERIFIERS: dict[str, Path] = dict(zip(VERIFIER_NAMES, (DEFAULT_HEAD_PATH, STRICT_HEAD_PATH, DEFAULT_HEAD_PATH)))


def head_path(name: Union[str, Path]) -> Path:
    """The weights file of the shipped verifier head ``name`` (:data:`VERIFIERS`), or ``name`` itself when it is a
    head's JSON file (one written by ``benchmarks/verifiers.py --fit`` or ``benchmarks/verifier_sources.py --write``);
    ValueError naming the choices.

    >>> head_path("strict").name
    'face-verifier-strict.json'
    """
    if str(name) in VERIFIERS:
        return VERIFIERS[str(name)]
    if str(name).endswith(".json"):
        if not Path(name).is_file():
            raise ValueError(f"verifier {name}: no such file; give one of {', '.join(VERIFIERS)} or a verifier head's "
                             "JSON file (benchmarks/verifier_sources.py --write DIR writes one)")
        return Path(name)
    raise ValueError(f"verifier must be one of {', '.join(VERIFIERS)} or a verifier head's JSON file, got {name}")


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


def crop_square(rois: np.ndarray, scale: float) -> np.ndarray:
    """Squares (F, 4) ``scale`` times the side of the square crops ``rois`` (F, 4), on the same centres (pixels).

    >>> crop_square(np.array([[10.0, 20, 30, 40]]), 1.5).tolist()
    [[5.0, 15.0, 35.0, 45.0]]
    """
    rois = np.asarray(rois, np.float64).reshape(-1, 4)
    centre, half = (rois[:, :2] + rois[:, 2:]) / 2, (rois[:, 2:3] - rois[:, 0:1]) * scale / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def centre_score(found: np.ndarray, point: np.ndarray) -> float:
    """The best score of the boxes ``found`` (K, 5) = (x0, y0, x1, y1, score) that hold ``point`` (2,); 0 if none does.

    >>> centre_score(np.array([[0.0, 0, 10, 10, 0.9], [20, 20, 30, 30, 0.99]]), np.array([5.0, 5]))
    0.9
    >>> centre_score(np.zeros((0, 5)), np.array([5.0, 5]))
    0.0
    """
    found = np.asarray(found, np.float64).reshape(-1, 5)
    x, y = point
    hit = (found[:, 0] <= x) & (x <= found[:, 2]) & (found[:, 1] <= y) & (y <= found[:, 3])
    return float(found[hit, 4].max()) if hit.any() else 0.0


@dataclass(frozen=True)
class SecondOpinion:
    """A veto by BlazeFace full range (:class:`mfirrn.detect.blazeface.BlazeFace`) on faces turned less than
    ``max_yaw`` degrees whose confidence is below ``max_confidence`` (faces the head is surer of are not asked): its
    best score, on the square ``crop_scale`` times the face's crop seen at its 192x192 input, for a box holding the
    centre of the face's landmark box; below ``min_score`` the face's confidence becomes 0. ``given_boxes``: asked
    about faces fitted from given boxes too (a video's tracked faces), not only about the detector's."""

    max_yaw: float
    min_score: float
    crop_scale: float
    max_confidence: float = 1.0
    given_boxes: bool = True


@dataclass(frozen=True)
class HeadOpinion:
    """A veto by a second verifier head ``head`` (a :class:`VerifierHead` JSON file naming O-Net weights of its own)
    on the faces whose confidence is below ``max_confidence``: its confidence, from its O-Net on the same square and
    the same ``lmdiff`` and ``agree``; below ``min_confidence`` the face's confidence becomes it. ``given_boxes``: as
    :class:`SecondOpinion`'s (by default only the detector's faces are asked: in a video, a track starts from a
    detection it passed, and the tracking frames do not pay for a second O-Net)."""

    head: Path
    min_confidence: float
    max_confidence: float
    given_boxes: bool = False


#: The ``blazeface`` verifier's second opinion, chosen by the rule of docs/experiments/wild.md ("A human face
#: detector's second opinion", "The second opinion for the default verifier"): faces turned less than 45 degrees and
#: less sure than 0.99, BlazeFace's score below 0.05 (the 0.5 % quantile of the good AFLW fit faces, rounded down).
BLAZEFACE_OPINION = SecondOpinion(max_yaw=45.0, min_score=0.05, crop_scale=1.6, max_confidence=0.99)
#: The ``standard`` verifier's second opinion, chosen by the rule of docs/experiments/wild.md ("C7 asked only where
#: the default verifier is unsure"): C7's head asked below 0.999, its veto below 0.02.
ANIMALS_OPINION = HeadOpinion(ANIMALS_HEAD_PATH, min_confidence=0.02, max_confidence=0.999)
#: The second opinion each shipped verifier asks (none for the others).
SECOND_OPINIONS: dict[str, Union[SecondOpinion, HeadOpinion]] = {"standard": ANIMALS_OPINION,
                                                                 "blazeface": BLAZEFACE_OPINION}


@functools.lru_cache(maxsize=16)
def _columns_of(names: tuple[str, ...]) -> np.ndarray:
    """:meth:`VerifierHead.columns` of a head reading ``names``, found once per process (a second head is asked on
    every photo with an unsure face); read-only."""
    columns = np.array([FEATURES.index(n) for n in names], dtype=np.intp)
    columns.setflags(write=False)
    return columns


@dataclass(frozen=True)
class VerifierHead:
    """Logistic model: ``confidence = sigmoid(sum_k weights[k] * (x[k] - mean[k]) / std[k] + bias)`` over the
    features ``names`` (F, K) -> (F,). ``threshold`` is the default ``min_confidence`` chosen with it; ``onet``: the
    O-Net weights its O-Net features come from (a PyTorch state dict, e.g. fine-tuned), or "" for MTCNN's own."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float
    note: str = ""
    onet: str = ""

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
            onet = str(path.parent / d["onet"]) if d.get("onet") else ""  # a file beside the JSON
            head = cls(tuple(d["names"]), tuple(d["mean"]), tuple(d["std"]), tuple(d["weights"]), float(d["bias"]),
                       float(d["threshold"]), d.get("note", ""), onet)
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
        if head.onet and not Path(head.onet).is_file():
            raise ValueError(f"face verifier weights {path}: its O-Net weights {head.onet} are missing; restore the "
                             "file from the repository")
        return head

    def columns(self) -> np.ndarray:
        """Indices (K,) of the head's features in :data:`FEATURES` (the columns of :meth:`FaceVerifier.features`).

        >>> VerifierHead(("agree", "shape_0"), (0.0, 0.0), (1.0, 1.0), (1.0, 1.0), 0.0, 0.5).columns().tolist()
        [2, 259]
        """
        return _columns_of(self.names)

    def to_json(self) -> str:
        """The head as :meth:`load` reads it (``onet`` by its file name: the weights go beside the JSON)."""
        return json.dumps({"names": list(self.names), "mean": list(self.mean), "std": list(self.std),
                           "weights": list(self.weights), "bias": self.bias, "threshold": self.threshold,
                           "note": self.note, **({"onet": Path(self.onet).name} if self.onet else {})}, indent=1)


class FaceVerifier:
    """Confidence in [0, 1] that reconstructed faces are human faces (see the module docstring).

    ``device``: where O-Net runs; ``backend``/``threads``: ``"torch"`` or ``"onnxruntime"`` and its threads
    (as the pipeline's detector); ``head``: the logistic model, a head's JSON file, or the name of a shipped verifier
    (:data:`VERIFIERS`; default ``"standard"``), which brings its second opinion (:data:`SECOND_OPINIONS`);
    ``second_opinion``: one to ask (default: the named verifier's, else none). O-Net and BlazeFace are built on first
    use.
    """

    def __init__(self, *, device: str = "cpu", backend: str = "torch", threads: int = 0,
                 head: Union[VerifierHead, str, None] = None,
                 second_opinion: Union[SecondOpinion, HeadOpinion, None] = None) -> None:
        self.device, self.backend, self.threads = device, backend, threads
        if head is None or isinstance(head, (str, Path)):
            name = str(head or VERIFIER_NAMES[0])
            head = VerifierHead.load(head_path(name))
            second_opinion = second_opinion or SECOND_OPINIONS.get(name)
        self.head, self.opinion = head, second_opinion
        self._columns = self.head.columns()
        self._onet = None
        self._blazeface = None
        self._second: Optional[tuple[VerifierHead, object]] = None  # a HeadOpinion's head and its O-Net

    @property
    def threshold(self) -> float:
        return self.head.threshold

    def _onet_of(self, head: VerifierHead):
        """The O-Net scorer ``head`` reads its O-Net features from (its own weights, or MTCNN's)."""
        from mfirrn.detect.mtcnn import ONetScorer

        return ONetScorer(backend=self.backend, device=self.device, threads=self.threads,
                          weights=Path(head.onet) if head.onet else None)

    @property
    def onet(self):
        if self._onet is None:
            self._onet = self._onet_of(self.head)
        return self._onet

    @property
    def blazeface(self):
        """The second opinion's detector (built on first use); ImportError naming the package when no TensorFlow Lite
        runtime is installed."""
        if self._blazeface is None:
            from mfirrn.detect.blazeface import BlazeFace

            try:
                self._blazeface = BlazeFace(score_threshold=0.01, threads=self.threads)
            except ImportError:
                raise ImportError("the blazeface verifier's second opinion needs a TensorFlow Lite runtime: "
                                  "pip install 'mfirrn[detectors]' (ai-edge-litert), or use another "
                                  "verifier") from None
        return self._blazeface

    @property
    def second_head(self):
        """A :class:`HeadOpinion`'s head and its O-Net scorer (built on first use)."""
        if self._second is None:
            head = VerifierHead.load(self.opinion.head)
            self._second = head, self._onet_of(head)
        return self._second

    def prepare(self) -> None:
        """Build O-Net and the second opinion's network, if the verifier asks one (raises here, not at the first
        face)."""
        self.onet
        if isinstance(self.opinion, HeadOpinion):
            self.second_head
        elif self.opinion is not None:
            self.blazeface

    def crops(self, image: np.ndarray, landmarks: np.ndarray):
        """O-Net's inputs (F, 3, 48, 48) for faces with ``landmarks`` (F, 68, 2+) in a BGR uint8 ``image``: the square
        around each landmark box, as :meth:`features` and a second head's opinion read it (computed once for both)."""
        from mfirrn.detect.mtcnn import ONetScorer

        return ONetScorer.crops(image, landmark_boxes(landmarks))

    def second_opinion(self, image: np.ndarray, rois: np.ndarray, landmarks: np.ndarray, yaw: np.ndarray,
                       confidence: np.ndarray, ask: Optional[np.ndarray] = None,
                       features: Optional[np.ndarray] = None, crops=None) -> np.ndarray:
        """The confidences (F,) after the verifier's second opinion (unchanged if it asks none), for the faces less
        sure than its ``max_confidence``. BlazeFace's (:class:`SecondOpinion`): 0 for each face turned less than its
        ``max_yaw`` (``yaw`` (F,) degrees) where BlazeFace finds no face on its crop (``rois`` (F, 4) square crops,
        ``landmarks`` (F, 68, 2+) in image pixels). A second head's (:class:`HeadOpinion`): its confidence where it is
        below its ``min_confidence``; it reads ``features`` (F, 309), the faces' :meth:`features`, with O-Net's
        columns replaced by its own O-Net's on the faces' :meth:`crops` (given, or made here). ``ask`` (F,) bool: the
        faces it may be asked about (default all; the pipeline asks only about faces it would otherwise keep, as no
        other answer matters)."""
        rule = self.opinion
        confidence = np.array(confidence, np.float64)
        if rule is None or len(confidence) == 0:
            return confidence
        ask = np.ones(len(confidence), bool) if ask is None else np.asarray(ask, bool)
        ask = ask & (confidence < rule.max_confidence)
        if isinstance(rule, HeadOpinion):
            if features is None:
                raise ValueError("a second head's opinion reads the faces' features: pass features=")
            idx = np.flatnonzero(ask)
            if len(idx):
                head, onet = self.second_head
                boxes = landmark_boxes(np.asarray(landmarks)[idx])
                prob, embedding = onet.score(image, boxes, None if crops is None else crops[idx])
                own = np.asarray(features, np.float64)[idx]  # a copy: the caller's features stay as they are
                own[:, 0], own[:, len(CUES):len(CUES) + len(EMBEDDING)] = prob, embedding
                second = head(own[:, head.columns()])
                veto = second < rule.min_confidence
                confidence[idx[veto]] = second[veto]
            return confidence
        squares = crop_square(rois, rule.crop_scale)
        centres = landmark_boxes(landmarks).reshape(-1, 2, 2).mean(axis=1)
        size = BLAZEFACE_INPUT  # the crop is not resized again
        for i in np.flatnonzero(ask & (np.abs(np.asarray(yaw, np.float64)) < rule.max_yaw)):
            found = self.blazeface(crop_image(image, squares[i], size))
            point = (centres[i] - squares[i, :2]) * size / (squares[i, 2] - squares[i, 0])
            if centre_score(found, point) < rule.min_score:
                confidence[i] = 0.0
        return confidence

    def features(self, image: np.ndarray, landmarks: np.ndarray, lmdiff: np.ndarray, agree: np.ndarray,
                 params: np.ndarray, crops=None) -> np.ndarray:
        """The feature matrix (F, 309) in :data:`FEATURES` order for faces with final ``landmarks`` (F, 68, 2+) and
        de-normalised ``params`` (F, 62) in a BGR uint8 ``image``; ``lmdiff``, ``agree`` (F,) from
        :func:`pass_agreement`; ``crops``: the faces' :meth:`crops`, when made already."""
        prob, embedding = self.onet.score(image, landmark_boxes(landmarks), crops)
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
