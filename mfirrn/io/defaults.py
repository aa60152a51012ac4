"""The package's defaults and choices that the command line shows, importable without PyTorch, OpenCV or NumPy.

Each is defined here once; the modules that use them (the model registry, the detector registry, the pipeline,
the ONNX backends) import them from here, so ``mfirrn reconstruct --help`` can show them without loading the
libraries that do the work.

>>> DEFAULT_DETECTOR in DETECTORS and PROPOSAL_THRESHOLD <= 1.0
True
"""

from __future__ import annotations

__all__ = ["DEFAULT_MODEL", "DEFAULT_DETECTOR", "DETECTORS", "REFINE_MODES", "PROPOSAL_THRESHOLD", "DETECTOR_SIZE",
           "DETECTOR_RECHECK", "LOOKING_DOWN_DEGREES", "LOOKING_DOWN_CONFIDENCE", "VERIFIER_NAMES", "BACKENDS",
           "HEAD_OUTPUTS", "CROP_PADDINGS", "DEFAULT_CROP_PADDING", "UPRIGHT_ROLL",
           "TURNED_CONFIDENCE"]

#: The model ``mfirrn reconstruct`` and ``Reconstructor()`` run without ``--model`` (see ``mfirrn models``).
DEFAULT_MODEL = "3ddfa-v2-mb05"

#: The registered detectors (:mod:`mfirrn.detect.registry`) and the default, chosen by measurement
#: (docs/experiments/pipeline.md, docs/experiments/wild.md).
DETECTORS: tuple[str, ...] = ("blazeface", "dlib-cnn", "dlib-hog", "faceboxes", "mtcnn")
DEFAULT_DETECTOR = "faceboxes"

#: The refinement of :class:`mfirrn.inference.pipeline.Reconstructor`: ``robust`` (crops rebuilt from the
#: landmarks; where they agree, the mean of three passes), ``always`` (3DDFA's second pass), ``off``.
REFINE_MODES: tuple[str, ...] = ("robust", "always", "off")

#: FaceBoxes' score threshold when the face verifier filters the faces (the detector proposes, the verifier
#: decides), chosen on tuning data by benchmarks/proposals.py (docs/experiments/wild.md): every lower threshold adds
#: false faces that the verifier keeps (necks, fists, a second face on a face), so it stays at 3DDFA_V2's 0.5, the
#: threshold of the unverified pipeline too.
PROPOSAL_THRESHOLD = 0.5

#: FaceBoxes' largest input (height, width), 3DDFA_V2's: larger photos are downscaled to fit before detection.
DETECTOR_SIZE: tuple[int, int] = (720, 1080)

#: Whether FaceBoxes detects its near misses again on a crop around them, at full resolution in a downscaled photo
#: and twice as large for faces under 32 pixels in a photo seen at its own size
#: (:class:`mfirrn.detect.faceboxes.FaceBoxes`, ``recheck``; docs/experiments/wild.md, "Near misses in a downscaled
#: photo", "Small near misses").
DETECTOR_RECHECK = True

#: A detected face that looks down more steeply than ``LOOKING_DOWN_DEGREES`` below the camera's horizontal plane
#: (:func:`mfirrn.geometry.pose.facing_down`) is kept only with a confidence of at least ``LOOKING_DOWN_CONFIDENCE``:
#: the back of a head comes back as a face looking steeply down; the confidence is the lowest of the real faces
#: that look down so in the tuning data (docs/experiments/wild.md, "Backs of heads").
LOOKING_DOWN_DEGREES = 30.0
LOOKING_DOWN_CONFIDENCE = 0.3

#: The shipped face verifiers (:data:`mfirrn.inference.verify.VERIFIERS`, ``--verifier``); the first is the default
#: (it asks a second head, fine-tuned against animals' faces, about the faces it is unsure of), ``strict`` drops more
#: hands and heads seen from behind and some masked faces, ``blazeface`` asks BlazeFace instead
#: (docs/experiments/wild.md).
VERIFIER_NAMES = ("standard", "strict", "blazeface")

#: What fills a face's crop where it reaches outside the image (:func:`mfirrn.geometry.crop.crop_image`): ``zero``
#: (black, as 3DDFA) or ``edge`` (the image's border carried outward, blurred), and the pipeline's default
#: (docs/experiments/wild.md, "Faces cut by the image border").
CROP_PADDINGS: tuple[str, ...] = ("zero", "edge")
DEFAULT_CROP_PADDING = "zero"

#: Outputs of a multi-head (MFIRRN) model: ``fused`` (the model's prediction) first, then its heads
#: (the fields of :class:`mfirrn.models.mfirrn_net.MFIRRNOutput`).
HEAD_OUTPUTS: tuple[str, ...] = ("fused", "coarse", "medium", "fine")

#: How the networks run: ``auto`` (the fastest that fits the device), ``torch`` or ``onnxruntime`` (CPU, fp32).
BACKENDS: tuple[str, ...] = ("auto", "torch", "onnxruntime")

#: A face found in a copy of a photo turned by quarter turns is upright there when its roll is at most this
#: (degrees): half-way between two quarter turns (``Reconstructor(turned_faces=True)``, the CLI's no-face line)
UPRIGHT_ROLL = 45.0
#: The confidence a face found upright in a turned copy of a photo needs (``turned_faces``, the CLI's no-face line):
#: the middle of the scale; an upright animal photo's turned copy holds doubtful fits (an orangutan at 0.44, a cheetah
#: at 0.07; docs/experiments/wild.md, "Looked at by eye: animals, sports, people in the dark, street crowds")
TURNED_CONFIDENCE = 0.5
