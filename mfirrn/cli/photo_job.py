"""One photo of ``mfirrn reconstruct``: read it, reconstruct its faces, publish its files and table rows.

:class:`PhotoJob` is the picklable description a worker (this process, a local process, a Ray actor) builds
its :class:`PhotoProcessor` from (the engines are :mod:`mfirrn.inference.engine`). Every outcome of an input
is an :class:`~mfirrn.inference.runrecord.InputResult`; a bad photo never stops the others.

Names: the files of ``ROOT/a/x.jpg`` are ``OUT/a/x.jpg.json``, ``OUT/a/x.jpg_landmarks.jpg``,
``OUT/a/x.jpg_face0.obj``, ...: the input's path below the inputs' root, extension kept, plus the output's
suffix. Two inputs never share a name (not ``a/x.jpg`` and ``b/x.jpg``, not ``x.jpg`` and ``x.png``, not
``x.jpg`` with two faces and ``x_face0.png``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from mfirrn.inference.runrecord import DONE, FAILED, NO_FACE, InputResult

__all__ = ["PhotoJob", "PhotoProcessor", "TABLE_OUTPUT", "Item", "set_threads"]

TABLE_OUTPUT = "table"
#: Photos whose longer side is below this many pixels get ``--detector-min-size`` of it in the no-face hint
#: (docs/experiments/wild.md, "Small photos")
SMALL_PHOTO = 240
#: Photos under this size (not downscaled for detection) get ``--detector-min-size`` of it in the no-face hint:
#: upscaled to it, FaceBoxes finds faces of 11-16 pixels in a group photo of 490 pixels
GROUP_PHOTO = 2000
#: Smaller images (longer side, pixels) get no hint but their size: no face of a few pixels is reconstructed
TOO_SMALL = 20
#: A photo without a face is told to be turned when, turned by 90 degrees either way or by 180, it holds a face at least
#: TURNED_CONFIDENCE sure, nearer upright than sideways there (|roll| <= UPRIGHT_ROLL, both in mfirrn.io.defaults;
#: :func:`upright_turn`): of 717
#: copies of tuning photos stored turned, no face found, 675 are told the right turn and 17 a wrong one, and 19 of 537
#: photos of animals and hands without a face are told to be turned (`benchmarks/turned_photos.py`;
#: docs/experiments/wild.md, "Photos stored sideways")
#: The turns the no-face line tries, as the photo must be turned: (``numpy.rot90``'s k, quarter turns
#: counter-clockwise; the words for it)
TURNS = ((-1, "by 90 degrees clockwise"), (2, "by 180 degrees"), (1, "by 90 degrees counter-clockwise"))
#: An input: (its path as the workers open it, its name relative to the inputs' root)
Item = tuple[str, str]


def upright_turn(faces_by_turn) -> Optional[tuple[int, int]]:
    """Which copy of a photo stored turned (without an EXIF orientation tag) shows its faces upright: given the faces
    found in each turned copy (sequences of objects with ``confidence`` and ``pose["roll"]``, degrees), the index of
    the copy holding the most faces sure and upright there (:func:`mfirrn.geometry.turns.counts_upright`), and their
    count; None when no copy holds one. Ties go to the larger sum of confidences: an upside-down face is often fitted
    as an upright one, a little less sure.

    >>> from types import SimpleNamespace as F
    >>> upright = F(confidence=0.99, pose={"roll": 3.0})
    >>> fitted_upside_down, sideways = F(confidence=0.9, pose={"roll": -8.0}), F(confidence=1.0, pose={"roll": 88.0})
    >>> upright_turn([[sideways], [fitted_upside_down], [upright]])
    (2, 1)
    >>> upright_turn([[sideways], [F(confidence=0.3, pose={"roll": 0.0})], []]) is None
    True
    """
    from mfirrn.geometry.turns import counts_upright

    best, index = (0, 0.0), None
    for i, faces in enumerate(faces_by_turn):
        sure = [f.confidence for f in faces if counts_upright(f.pose["roll"], f.confidence)]
        if (len(sure), sum(sure)) > best:
            best, index = (len(sure), sum(sure)), i
    return (index, best[0]) if index is not None else None


def _first_line(e: BaseException, last: bool = False) -> str:
    """One line of an exception's message (OpenCV's end with the reason; others start with it)."""
    lines = [s for s in str(e).strip().splitlines() if s.strip()] or [type(e).__name__]
    return lines[-1] if last else lines[0]


def suggested_min_size(shape: tuple) -> Optional[int]:
    """The ``--detector-min-size`` a no-face line suggests for an image of ``shape`` (H, W, ...): :data:`SMALL_PHOTO`
    for a small photo, :data:`GROUP_PHOTO` for a larger one under that many pixels (seen at its own size or
    downscaled: upscaled to it, its faces are shown larger than at full resolution), else None (a large photo:
    ``--detector-size``).

    >>> [suggested_min_size(shape) for shape in ((120, 100), (353, 490), (800, 1200), (1500, 2000))]
    [240, 2000, 2000, None]
    """
    longest = max(shape[:2])
    if longest < SMALL_PHOTO:
        return SMALL_PHOTO
    return GROUP_PHOTO if longest < GROUP_PHOTO else None


def suggest_threshold(options: dict) -> bool:
    """Whether a no-face line may suggest ``--detector-threshold 0.05``: not when it is that low already."""
    threshold = options.get("detector_threshold")
    return threshold is None or threshold > 0.05


def suggest_confidence(options: dict) -> bool:
    """Whether a no-face line may suggest ``--min-confidence 0``: not when the verifier keeps every face already."""
    confidence = options.get("min_confidence")
    return confidence is None or confidence > 0


def other_detectors(detector: Optional[str]) -> list[str]:
    """The ``--detector`` suggestion of a no-face line: the dlib detectors the run did not use (none left: []).

    >>> other_detectors(None), other_detectors("faceboxes,dlib-hog"), other_detectors("dlib-cnn, dlib-hog")
    (['--detector dlib-hog or dlib-cnn'], ['--detector dlib-cnn'], [])
    """
    used = {n.strip() for n in (detector or "").split(",")}
    left = [d for d in ("dlib-hog", "dlib-cnn") if d not in used]
    return [f"--detector {' or '.join(left)}"] if left else []


def downscaled_for_detection(shape: tuple, size: Optional[str]) -> bool:
    """Whether FaceBoxes saw an image of ``shape`` (H, W, ...) downscaled, at ``--detector-size`` ``size``."""
    from mfirrn.detect.faceboxes import fit_scale
    from mfirrn.io.defaults import DETECTOR_SIZE
    from mfirrn.io.options import detector_size

    return fit_scale(shape[0], shape[1], DETECTOR_SIZE if size is None else detector_size(size, "--detector-size")) < 1


def larger_detector_input(shape: tuple, scale: float) -> str:
    """The option that shows FaceBoxes an image of ``shape`` (H, W, ...), which it saw at ``scale``, larger: upscaled
    to :data:`GROUP_PHOTO` pixels on its longer side where that is larger than it saw it (``--detector-min-size``),
    else at full resolution where it saw it downscaled (``--detector-size full``); "" when neither is larger.

    >>> larger_detector_input((732, 1024), 0.98), larger_detector_input((1150, 2048), 0.53)
    ('--detector-min-size 2000', '--detector-size full')
    >>> larger_detector_input((732, 1024), 2000 / 1024), larger_detector_input((1150, 2048), 1.0)
    ('', '')
    """
    longer = max(shape[:2])
    if longer < GROUP_PHOTO and scale < GROUP_PHOTO / longer:
        return f"--detector-min-size {GROUP_PHOTO}"
    return "--detector-size full" if scale < 1.0 else ""


def set_threads(threads: int) -> None:
    """Give this worker's networks, OpenCV and the renderer ``threads`` CPU threads (its share of ``--threads``;
    0: decide from the machine), under the one threading policy (:func:`mfirrn.io.threads.apply_threads`)."""
    from mfirrn.io.threads import apply_threads

    apply_threads(threads)


@dataclass(frozen=True)
class PhotoJob:
    """What a worker needs: the options of ``reconstruct`` (``options``: the parsed arguments without the input
    list), the outputs, the output folder, a given box or landmarks, and the threads of its networks."""

    options: dict
    outputs: tuple[str, ...]
    out_dir: str
    boxes: Optional[Any] = None
    landmarks: Optional[Any] = None
    threads: int = 1

    def __call__(self, rec: Any = None) -> "PhotoProcessor":
        return PhotoProcessor(self, rec)

    def crashed(self, item: Item, reason: str = "") -> InputResult:
        """The result of an input whose worker died on it (out of memory, a crash in a library)."""
        why = reason or "its worker process died (out of memory, or a crash in a library)"
        return InputResult(item[1], FAILED, reason=f"{item[0]}: {why}")

    @property
    def dense(self) -> bool:
        from mfirrn.cli.outputs import OUTPUTS, available_outputs

        registered = available_outputs()  # the renderer's outputs register on first use
        return any(OUTPUTS[o].dense for o in self.outputs if o in registered)


class PhotoProcessor:
    """The stages of one photo for one worker (see :mod:`mfirrn.inference.engine`): ``read``, ``infer``,
    ``write``; ``__call__`` runs the three."""

    def __init__(self, job: PhotoJob, rec: Any = None) -> None:
        from mfirrn.cli.common import reconstructor_from_args
        from mfirrn.inference.engine import plain_image_warnings, silence_opencv

        silence_opencv()  # OpenCV's own [ WARN] lines: the outcome of each photo is reported on one line
        plain_image_warnings()  # a decoder's warning on a damaged file, with the file's name
        self.job = job
        if rec is None:
            set_threads(job.threads)
            rec = reconstructor_from_args(argparse.Namespace(**job.options), dense=job.dense)
        self.rec = rec
        self.files = [o for o in job.outputs if o != TABLE_OUTPUT]
        self.table = TABLE_OUTPUT in job.outputs

    def read(self, item: Item) -> tuple:
        import cv2

        from mfirrn.inference.engine import InputFailure
        from mfirrn.inference.pipeline import read_image
        from mfirrn.inference.sources import check_boxes_in_image, check_pixel_count, show_path

        t0 = time.perf_counter()
        try:
            check_pixel_count(item[0])
            image = read_image(item[0])
            if self.job.boxes is not None:
                check_boxes_in_image(self.job.boxes, image.shape[1], image.shape[0])
        except ValueError as e:  # ImageError too
            raise InputFailure(InputResult(item[1], FAILED, reason=show_path(str(e)))) from None
        except cv2.error as e:
            reason = f"{show_path(item[0])}: OpenCV cannot decode it ({_first_line(e, last=True)})"
            raise InputFailure(InputResult(item[1], FAILED, reason=reason)) from None
        except MemoryError:
            raise InputFailure(InputResult(item[1], FAILED, reason=f"{show_path(item[0])}: too large to decode in "
                                                                   f"the memory left")) from None
        return item, image, time.perf_counter() - t0

    def infer(self, loaded: tuple) -> tuple:
        from mfirrn.detect.registry import names_faceboxes
        from mfirrn.inference.engine import InputFailure
        from mfirrn.inference.pipeline import StageTimes
        from mfirrn.inference.sources import show_path

        item, image, seconds = loaded
        t0 = time.perf_counter()
        counted = StageTimes()  # the detections the verifier rejects, for the line of a photo without a face
        try:
            faces = self.rec(image, boxes=self.job.boxes, landmarks=self.job.landmarks, times=counted)
        except ValueError as e:
            raise InputFailure(InputResult(item[1], FAILED, reason=f"{show_path(item[0])}: {e}")) from None
        except (RuntimeError, MemoryError) as e:  # a network runtime's error on this image: the others go on
            reason = f"{show_path(item[0])}: the reconstruction failed ({type(e).__name__}: {_first_line(e)})"
            raise InputFailure(InputResult(item[1], FAILED, reason=reason)) from None
        if not faces:
            opts = self.job.options
            fb = names_faceboxes(opts.get("detector"))
            faint = "--detector-threshold 0.05 for faint faces, " if fb and suggest_threshold(opts) else ""
            size = opts.get("detector_size")
            if fb and downscaled_for_detection(image.shape, size) and max(image.shape[:2]) >= GROUP_PHOTO:
                larger = "1080x1620 or full" if size is None else "full"
                faint = f"--detector-size {larger} for small faces in a large photo, " + faint
            asked = opts.get("detector_min_size")
            upscale = suggested_min_size(image.shape) if fb and not asked else None
            if upscale == SMALL_PHOTO:
                faint = (f"--detector-min-size {SMALL_PHOTO} for a small photo or a tight face crop ({GROUP_PHOTO} "
                         f"for a small group photo), " + faint)
            elif upscale == GROUP_PHOTO:
                faint = f"--detector-min-size {GROUP_PHOTO} for faces under 30 pixels (a group photo), " + faint
            from mfirrn.detect.faceboxes import DARK_LEVEL, brightest_level, is_grey

            dark = brightest_level(image)
            if fb and not opts.get("detector_tint_grey") and dark > DARK_LEVEL and is_grey(image):
                faint = "--detector-tint-grey for a black-and-white photo, " + faint
            detected = self.job.boxes is None and self.job.landmarks is None
            rejected = counted.rejected if detected and suggest_confidence(opts) else 0
            rest = [*other_detectors(opts.get("detector")),
                    *(["--min-confidence 0"] if suggest_confidence(opts) and not rejected else []),
                    "--box or --landmarks"]
            tries = f"{faint}{', '.join(rest)}" if detected else ""  # what may find a face the photo shows
            hint = ""  # what is known of this photo
            if rejected:
                them = "them" if rejected > 1 else "it"
                hint = (f"{rejected} detection{'s' * (rejected > 1)} below the face verifier's threshold, taken for no "
                        f"human face (an animal, a hand, a pattern, a face mostly hidden or too small to tell): "
                        f"--min-confidence 0 keeps {them}")
            if tries and dark <= DARK_LEVEL:
                hint, tries = f"a very dark photo, its brightest pixels at {dark} of 255: brighten it and try again", ""
            elif tries and not getattr(self.rec, "turned_faces", False) and (turn := self._turn_upright(image)):
                hint, tries = (f"turned {turn[0]} it holds {turn[1]} face(s): turn the photo that way, or pass "
                               f"--turned-faces"), ""
            if max(image.shape[:2]) < TOO_SMALL:
                hint, tries = f"the image is only {image.shape[1]}x{image.shape[0]} pixels", ""
            reason = f"{show_path(item[0])}: no face found{f' ({hint})' if hint else ''}"
            raise InputFailure(InputResult(item[1], NO_FACE, reason=reason, tries=tries))
        return item, image, faces, seconds + time.perf_counter() - t0, self._small_faces(image, faces)

    def _turn_upright(self, image) -> Optional[tuple[str, int]]:
        """:func:`upright_turn` of ``image`` (a photo in which no face was found) turned each way of :data:`TURNS`:
        its words and count, or None (asked only of photos without a face)."""
        import numpy as np

        if min(image.shape[:2]) < TOO_SMALL:
            return None
        found = upright_turn([self.rec(np.ascontiguousarray(np.rot90(image, k))) for k, _ in TURNS])
        return (TURNS[found[0]][1], found[1]) if found else None

    def _small_faces(self, image, faces) -> str:
        """The option that may find more faces in ``image`` when FaceBoxes found a face small at its input
        (:func:`mfirrn.inference.pipeline.small_at_input`; detected faces only: smaller faces are likely there, too
        small to find at that scale; docs/experiments/wild.md, "Small faces in a downscaled photo"), else "":
        ``--detector-larger-look``, which looks again at such photos only, where it was not given and can look
        larger, else :func:`larger_detector_input`."""
        from mfirrn.inference.pipeline import small_at_input

        det = self.rec.detector
        scale_for = getattr(det, "scale_for", None)
        if self.job.boxes is not None or self.job.landmarks is not None or scale_for is None:
            return ""
        # the scale FaceBoxes last saw the whole photo at: a crowd is detected again larger (FaceBoxes.seen_scale)
        scale = getattr(det, "seen_scale", None) or scale_for(*image.shape[:2])
        if not small_at_input(faces, scale):
            return ""
        can_look_larger = getattr(det, "can_look_larger", None)  # FaceBoxes with its rechecks
        if not self.rec.larger_look and can_look_larger is not None and can_look_larger(image.shape):
            return "--detector-larger-look"  # it looks again at such photos only
        return larger_detector_input(image.shape, scale)

    def write(self, inferred: tuple) -> InputResult:
        from mfirrn.cli.outputs import OutputContext, available_outputs, build_outputs
        from mfirrn.inference.sources import show_path
        from mfirrn.io.fileio import StagedOutputs

        item, image, faces, seconds, small = inferred
        t0 = time.perf_counter()
        missing = [o for o in self.files if o not in available_outputs()]
        if missing:  # registered by the calling process only, not in this worker
            return InputResult(item[1], FAILED, reason=f"--outputs {', '.join(missing)} is not registered in this "
                                                       f"worker process; register it in a module it imports, or "
                                                       f"use --workers 1")
        out_dir = Path(self.job.out_dir)
        rel = Path(item[1])
        rows = None
        try:
            written: list[str] = []
            if self.files:
                ctx = OutputContext(image, Path(item[0]), faces, self.rec.model_name, rel.name)
                files = build_outputs(ctx, self.files)
                with StagedOutputs() as staged:
                    for name, data in files:
                        staged.add(out_dir / rel.parent / name, data)
                written = [(rel.parent / name).as_posix() for name, _ in files]
            if self.table:
                from mfirrn.inference.facetable import face_rows

                rows = face_rows(item[1], faces, image.shape[1], image.shape[0])
        except (OSError, ValueError, RuntimeError) as e:
            return InputResult(item[1], FAILED, reason=f"{show_path(item[0])}: cannot write its outputs ({e})")
        return InputResult(item[1], DONE, faces=len(faces), files=written, rows=rows,
                           seconds=seconds + time.perf_counter() - t0, small_faces=small)

    def __call__(self, item: Item) -> InputResult:
        from mfirrn.inference.engine import InputFailure

        try:
            return self.write(self.infer(self.read(item)))
        except InputFailure as stop:
            return stop.result
