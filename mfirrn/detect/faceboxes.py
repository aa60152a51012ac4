"""FaceBoxes (Zhang et al., IJCB 2017): a CPU-fast single-shot face detector, as 3DDFA_V2 ships it.

Network, anchors and box decoding are written from the paper and 3DDFA_V2's published configuration
(min sizes ``[[32, 64, 128], [256], [512]]`` on strides ``[32, 64, 128]``, anchor densification 4x for
32 px and 2x for 64 px anchors, SSD variances ``(0.1, 0.2)``); the weights are the registered asset
``detector-faceboxes`` (``FaceBoxesProd.pth``). Non-maximum suppression is OpenCV's
``cv2.dnn.NMSBoxes``. The network runs in PyTorch or, with ``backend="onnxruntime"``, in ONNX Runtime
(exported once and kept in the asset cache).

Input: BGR uint8 (H, W, 3). Images taller than 720 or wider than 1080 pixels are downscaled first (as
3DDFA_V2 does), and so are images where ``min_face`` allows it (FaceBoxes finds faces down to its smallest
anchor, 32 pixels at its input); boxes come back in the original image's pixels.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mfirrn.geometry.crop import roi_iou
from mfirrn.io.defaults import DETECTOR_SIZE

__all__ = ["FaceBoxesNet", "FaceBoxes", "prior_boxes", "decode_boxes", "nms", "is_grey", "brightest_level", "tint_grey",
           "MIN_SIZES", "STEPS", "VARIANCES", "SCORE_THRESHOLD", "MAX_SIZE", "GREY_TINT", "GREY_SPREAD", "DARK_LEVEL",
           "RECHECK_SCORE", "RECHECK_SIDE", "RECHECK_CONTEXT", "RECHECK_MAX", "RECHECK_SMALL_SIDE", "RECHECK_UPSCALE",
           "RECHECK_SMALL_MAX", "ELONGATED", "fit_scale"]

MIN_SIZES: tuple[tuple[int, ...], ...] = ((32, 64, 128), (256,), (512,))
STEPS: tuple[int, ...] = (32, 64, 128)
VARIANCES: tuple[float, float] = (0.1, 0.2)
#: 3DDFA_V2's score threshold: a box scoring at or below it is dropped before NMS.
SCORE_THRESHOLD = 0.5
#: 3DDFA_V2's largest detector input (height, width): larger images are downscaled to fit.
MAX_SIZE: tuple[int, int] = DETECTOR_SIZE
#: An image whose longer side is more than this many times its shorter one (a panorama, a strip of photos, a phone
#: screenshot) is detected at the pixel count of the largest input rather than fitted into its sides
#: (:func:`fit_scale`).
ELONGATED = 2.0
BGR_MEAN: tuple[float, float, float] = (104.0, 117.0, 123.0)
#: Gains (B, G, R) that turn a grey level into a skin tone of the same luminance: the median colour of the
#: centres of 600 AFLW training faces over their grey level (benchmarks/grey_photos.py prints it). FaceBoxes
#: was trained on colour photos and finds far fewer faces in grey ones; a grey photo is shown to it tinted so.
GREY_TINT: tuple[float, float, float] = (0.803, 0.935, 1.212)
#: A photo is grey when its pixels' spread over the three channels (max - min) averages at most this many
#: grey levels (JPEG keeps a little colour noise in black-and-white photos).
GREY_SPREAD = 2.0
#: A photo is too dark for the detector when its brightest pixels (the 99.5th percentile of its grey levels) stay at
#: or below this level: photos of a low-light face detection set (brightest 7-23 of 255) gave no face, even at
#: ``--detector-threshold 0.05``; the 73 low-light photos of enhancement papers reach 79-255 and their faces are found
#: (docs/experiments/wild.md, "Looked at by eye: animals, sports, people in the dark, street crowds")
DARK_LEVEL = 40
#: Near misses of a downscaled photo that are detected again (``FaceBoxes(recheck=True)``): proposals scoring
#: above ``RECHECK_SCORE`` (and at most the threshold, or 0.5) whose box spans fewer than ``RECHECK_SIDE`` pixels at the
#: detector's input, at most ``RECHECK_MAX`` a photo, each on a crop ``RECHECK_CONTEXT`` times its side
#: (docs/experiments/wild.md, "Near misses in a downscaled photo").
RECHECK_SCORE = 0.1
RECHECK_SIDE = 128.0
RECHECK_CONTEXT = 3.0
RECHECK_MAX = 5
#: Near misses of an image detected at its own size (or upscaled) are small faces: those under
#: ``RECHECK_SMALL_SIDE`` pixels at the input (FaceBoxes' smallest anchor) are detected again on their crop shown
#: ``RECHECK_UPSCALE`` times larger than the image was (docs/experiments/wild.md, "Small near misses").
RECHECK_SMALL_SIDE = 32.0
RECHECK_UPSCALE = 2.0
#: At most this many such small near misses a photo (a group photo holds many faces of 15-30 pixels).
RECHECK_SMALL_MAX = 20
#: A crowd: a photo seen smaller than ``CROWD_SIDE`` pixels with at least ``CROWD_PROPOSALS`` proposals under
#: ``RECHECK_SMALL_SIDE`` pixels at the input is detected again whole, instead of crop by crop, at least
#: ``RECHECK_UPSCALE`` times larger than it was seen: a photo seen at its own size (or upscaled) with its longer side
#: at ``CROWD_SIDE`` pixels if that is more, a downscaled one at ``CROWD_LARGE_SIDE`` pixels if that is more, but not
#: beyond its own size for that (its own pixels hold its faces; docs/experiments/wild.md, "A crowd", "A crowd in a
#: large photo").
CROWD_PROPOSALS = 20
CROWD_SIDE = 2000.0
CROWD_LARGE_SIDE = 4000.0
# anchors per feature-map cell: a 32 px anchor is densified 4x4, a 64 px one 2x2 (FaceBoxes §3.3)
_DENSITY = {32: 4, 64: 2}


class _ConvBN(nn.Module):
    """conv (no bias) -> batch norm -> ReLU; ``crelu`` concatenates (x, -x) before the ReLU (C.ReLU)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, crelu: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5)
        self.crelu = crelu

    def fuse(self) -> None:
        """Fold the (eval-mode) batch norm into the convolution: same outputs, one op fewer."""
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv = torch.nn.utils.fusion.fuse_conv_bn_eval(self.conv.eval(), self.bn.eval())
            self.bn = nn.Identity()  # type: ignore[assignment]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        if self.crelu:
            x = torch.cat([x, -x], 1)
        return F.relu(x)


class _Inception(nn.Module):
    """128 -> 4 x 32 channels: 1x1 | avgpool 1x1 | 1x1 3x3 | 1x1 3x3 3x3."""

    def __init__(self) -> None:
        super().__init__()
        self.branch1x1 = _ConvBN(128, 32, 1)
        self.branch1x1_2 = _ConvBN(128, 32, 1)
        self.branch3x3_reduce = _ConvBN(128, 24, 1)
        self.branch3x3 = _ConvBN(24, 32, 3, padding=1)
        self.branch3x3_reduce_2 = _ConvBN(128, 24, 1)
        self.branch3x3_2 = _ConvBN(24, 32, 3, padding=1)
        self.branch3x3_3 = _ConvBN(32, 32, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch1x1_2(F.avg_pool2d(x, 3, stride=1, padding=1))
        c = self.branch3x3(self.branch3x3_reduce(x))
        d = self.branch3x3_3(self.branch3x3_2(self.branch3x3_reduce_2(x)))
        return torch.cat([a, b, c, d], 1)


def _anchors_per_cell(min_sizes: tuple[int, ...]) -> int:
    return sum(_DENSITY.get(s, 1) ** 2 for s in min_sizes)


class FaceBoxesNet(nn.Module):
    """FaceBoxes: (B, 3, H, W) float BGR minus :data:`BGR_MEAN` -> (loc (B, P, 4), face score (B, P)).

    ``loc`` are SSD offsets against :func:`prior_boxes`; scores are softmax face probabilities. P is
    the number of anchors for an H x W input (21 per 32-stride cell, 1 per 64- and 128-stride cell).
    Layer names follow the published checkpoint so its state dict loads as is.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = _ConvBN(3, 24, 7, stride=4, padding=3, crelu=True)
        self.conv2 = _ConvBN(48, 64, 5, stride=2, padding=2, crelu=True)
        self.inception1, self.inception2, self.inception3 = _Inception(), _Inception(), _Inception()
        self.conv3_1 = _ConvBN(128, 128, 1)
        self.conv3_2 = _ConvBN(128, 256, 3, stride=2, padding=1)
        self.conv4_1 = _ConvBN(256, 128, 1)
        self.conv4_2 = _ConvBN(128, 256, 3, stride=2, padding=1)
        chans = (128, 256, 256)
        self.loc = nn.Sequential(*(nn.Conv2d(c, _anchors_per_cell(m) * 4, 3, padding=1) for c, m in zip(chans, MIN_SIZES)))
        self.conf = nn.Sequential(*(nn.Conv2d(c, _anchors_per_cell(m) * 2, 3, padding=1) for c, m in zip(chans, MIN_SIZES)))

    def fuse(self) -> "FaceBoxesNet":
        """Fold every batch norm into its convolution (inference only); returns ``self``."""
        for m in self.modules():
            if isinstance(m, _ConvBN):
                m.fuse()
        return self.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.conv1(x), 3, stride=2, padding=1)
        x = F.max_pool2d(self.conv2(x), 3, stride=2, padding=1)
        s1 = self.inception3(self.inception2(self.inception1(x)))
        s2 = self.conv3_2(self.conv3_1(s1))
        s3 = self.conv4_2(self.conv4_1(s2))
        b = x.shape[0]
        loc = torch.cat([head(s).permute(0, 2, 3, 1).reshape(b, -1, 4) for head, s in zip(self.loc, (s1, s2, s3))], 1)
        conf = torch.cat([head(s).permute(0, 2, 3, 1).reshape(b, -1, 2) for head, s in zip(self.conf, (s1, s2, s3))], 1)
        return loc, conf.softmax(-1)[..., 1]


def prior_boxes(height: int, width: int) -> np.ndarray:
    """FaceBoxes anchors for an ``height`` x ``width`` input: (P, 4) float32 ``(cx, cy, w, h)`` as fractions
    of the image width/height, in the network's output order (feature map, row, column, anchor).

    >>> prior_boxes(32, 32).shape  # one 32-stride cell (21 anchors), one 64- and one 128-stride cell
    (23, 4)
    >>> prior_boxes(32, 32)[20].tolist()  # the cell's 128 px anchor, centred
    [0.5, 0.5, 4.0, 4.0]
    """
    out = []
    for step, sizes in zip(STEPS, MIN_SIZES):
        fh, fw = -(-height // step), -(-width // step)  # ceil
        per_cell = []
        for s in sizes:
            d = _DENSITY.get(s, 1)
            offs = (np.arange(d) / d) if d > 1 else np.array([0.5])
            oy, ox = np.meshgrid(offs, offs, indexing="ij")  # cy outer, cx inner
            per_cell.append(np.stack([ox.ravel(), oy.ravel(), np.full(d * d, s), np.full(d * d, s)], -1))
        cell = np.concatenate(per_cell)  # (A, 4): offsets within the cell and size in pixels
        ii, jj = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        cx = (jj.reshape(-1, 1) + cell[None, :, 0]) * step / width
        cy = (ii.reshape(-1, 1) + cell[None, :, 1]) * step / height
        w = np.broadcast_to(cell[None, :, 2] / width, cx.shape)
        h = np.broadcast_to(cell[None, :, 3] / height, cx.shape)
        out.append(np.stack([cx, cy, w, h], -1).reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


def decode_boxes(loc: np.ndarray, priors: np.ndarray, variances: tuple[float, float] = VARIANCES) -> np.ndarray:
    """SSD decoding: offsets (P, 4) against priors (P, 4) (cx, cy, w, h) -> boxes (P, 4) (x0, y0, x1, y1),
    in the priors' units (fractions of the image).

    >>> decode_boxes(np.zeros((1, 4)), np.array([[0.5, 0.5, 0.2, 0.4]])).round(6).tolist()
    [[0.4, 0.3, 0.6, 0.7]]
    """
    centre = priors[:, :2] + loc[:, :2] * variances[0] * priors[:, 2:]
    size = priors[:, 2:] * np.exp(loc[:, 2:] * variances[1])
    return np.concatenate([centre - size / 2, centre + size / 2], 1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, score_threshold: float = 0.0,
        top_k: int = 0) -> np.ndarray:
    """Greedy non-maximum suppression (OpenCV ``cv2.dnn.NMSBoxes``): indices (K,) of the kept boxes, best first.

    ``boxes`` (N, 4) (x0, y0, x1, y1) pixels, ``scores`` (N,). Boxes scoring below ``score_threshold``
    are dropped; a box is suppressed by a better one overlapping it with IoU > ``iou_threshold``.

    >>> nms(np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]]), np.array([0.9, 0.8, 0.7]), 0.3).tolist()
    [0, 2]
    """
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:4] - boxes[:, :2]], 1).astype(np.float64)
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), np.asarray(scores, np.float64).tolist(), float(score_threshold),
                            float(iou_threshold), top_k=int(top_k))
    return np.asarray(keep, np.int64).reshape(-1)


def is_grey(image: np.ndarray, spread: float = GREY_SPREAD) -> bool:
    """Whether a BGR uint8 image is black and white: the spread of its pixels over the three channels (max - min,
    read on every 4th pixel of every 4th row) averages at most ``spread`` grey levels.

    >>> g = np.tile(np.arange(0, 250, 10, dtype=np.uint8)[:, None, None], (1, 8, 3))
    >>> is_grey(g), is_grey(g + np.array([0, 0, 9], np.uint8))
    (True, False)
    """
    b, g, r = cv2.split(np.ascontiguousarray(image[::4, ::4]))
    return float(cv2.max(cv2.max(cv2.absdiff(b, g), cv2.absdiff(g, r)), cv2.absdiff(b, r)).mean()) <= spread


def brightest_level(image: np.ndarray) -> int:
    """The grey level (0-255) that 99.5 % of a BGR uint8 image's pixels do not exceed (read on every 4th pixel of
    every 4th row); a photo at or below :data:`DARK_LEVEL` is too dark for the detector.

    >>> dark = np.zeros((40, 40, 3), np.uint8); dark[:20] = 12
    >>> brightest_level(dark), brightest_level(dark + 100)
    (12, 112)
    """
    grey = cv2.cvtColor(np.ascontiguousarray(image[::4, ::4]), cv2.COLOR_BGR2GRAY)
    counts = np.cumsum(np.bincount(grey.ravel(), minlength=256))
    return int(np.searchsorted(counts, 0.995 * counts[-1]))


def tint_grey(image: np.ndarray, gains: tuple[float, float, float] = GREY_TINT) -> np.ndarray:
    """A grey BGR uint8 image tinted by ``gains`` (B, G, R) per grey level, rounded and clipped to 0..255.

    >>> tint_grey(np.full((1, 1, 3), 100, np.uint8)).tolist()
    [[[80, 94, 121]]]
    """
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    levels = np.arange(256, dtype=np.float64)
    return np.stack([cv2.LUT(grey, np.clip(np.round(levels * g), 0, 255).astype(np.uint8)) for g in gains], axis=-1)


def _load_net(weights: Union[str, Path]) -> FaceBoxesNet:
    from mfirrn.io.safeload import UnsafeFileError, load_checkpoint_file

    try:
        state = load_checkpoint_file(weights)
    except UnsafeFileError as exc:
        raise ValueError(f"{weights} needs {exc.wants} to load, which could run code from the file; "
                         f"`mfirrn assets fetch detector-faceboxes` gives a verified copy") from None
    except Exception as exc:  # truncated file, not a checkpoint, ...
        raise ValueError(f"{weights} is not a readable FaceBoxes checkpoint ({type(exc).__name__}); "
                         f"`mfirrn assets fetch detector-faceboxes` gives a verified copy") from None
    if not isinstance(state, dict):
        raise ValueError(f"{weights} is not a FaceBoxes checkpoint (no state dict)")
    state = state.get("state_dict", state)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    net = FaceBoxesNet()
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError:  # shapes do not match
        missing, unexpected = ["(shapes differ)"], []
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{weights} is not a FaceBoxes checkpoint (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return net.eval()


def _onnx_session(net: FaceBoxesNet, weights: Path, threads: int):
    return onnx_session(net, weights, threads, torch.zeros(1, 3, 256, 256), ["image"], ["loc", "score"],
                        {"image": {0: "batch", 2: "height", 3: "width"}, "loc": {0: "batch", 1: "anchors"},
                         "score": {0: "batch", 1: "anchors"}})


def onnx_session(net: nn.Module, weights: Path, threads: int, example: torch.Tensor, input_names: list[str],
                 output_names: list[str], dynamic_axes: dict, variant: str = "", export_dir: Optional[Path] = None):
    """An ONNX Runtime session of a detector network ``net`` (CPU, ``threads`` intra-op threads, 0: all cores);
    the export (from ``example``) is kept beside its ``weights`` (or in ``export_dir``), keyed by their sha256, the
    torch version and ``variant`` (a name for a network that wraps the weights differently, e.g. with other
    outputs)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ValueError("the onnxruntime backend needs onnxruntime: pip install onnx onnxruntime") from None
    from mfirrn.io.fileio import atomic_write

    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    tag = f"-{variant}" if variant else ""
    name = f"{weights.stem}{tag}-{digest}-torch{torch.__version__.split('+')[0]}.onnx"
    path: Optional[Path] = (export_dir or weights.parent) / name
    if not path.is_file():
        import io
        import warnings

        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (example,), buf, input_names=input_names, output_names=output_names,
                              opset_version=17, dynamo=False, dynamic_axes=dynamic_axes)
        try:
            atomic_write(path, buf.getvalue())
        except OSError:  # read-only cache: keep the export in memory
            path = None
    from mfirrn.io.threads import ort_session_options

    opts = ort_session_options(threads)
    model = str(path) if path is not None else buf.getvalue()
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def fit_scale(height: int, width: int, max_size: tuple[int, int] = MAX_SIZE) -> float:
    """The factor (<= 1) an image of ``height`` x ``width`` pixels is downscaled by before detection with the largest
    input ``max_size`` (height, width; 0: no limit): 3DDFA_V2's rule (the height to at most ``max_size[0]``, then the
    width to at most ``max_size[1]``), except for an image more elongated than :data:`ELONGATED`, which is shown at
    ``max_size[0] * max_size[1]`` pixels (at most its own size): fitted into the sides, a 6000 x 332 panorama of a
    group would be seen at 0.18, its faces of 45 pixels at 8; at the pixel count, at 0.62, for the detection time of
    a 1080 x 720 photo.

    >>> round(fit_scale(3024, 4032), 3), fit_scale(450, 450), round(fit_scale(332, 6000), 3), fit_scale(100, 6000)
    (0.238, 1.0, 0.625, 1.0)
    """
    max_h, max_w = max_size
    scale = min(1.0, max_h / height) if max_h > 0 else 1.0
    if max_w > 0 and width * scale > max_w:
        scale *= max_w / (width * scale)
    if max_h > 0 and max_w > 0 and max(height, width) > ELONGATED * min(height, width):
        scale = max(scale, min(1.0, float(np.sqrt(max_h * max_w / (height * width)))))
    return scale


class FaceBoxes:
    """FaceBoxes face detector: BGR uint8 (H, W, 3) -> boxes (K, 5) float64 (x0, y0, x1, y1, score), best first.

    ``score_threshold`` 0.5 (:data:`SCORE_THRESHOLD`; boxes scoring above it are kept) and ``iou_threshold`` 0.3
    are 3DDFA_V2's settings. NMS is greedy by score, so lowering ``score_threshold`` only adds boxes: those kept at
    a higher threshold stay, unchanged. ``max_size`` (height,
    width): larger images are downscaled to fit before detection (3DDFA_V2: 720 x 1080; a panorama or a strip to
    that many pixels, :func:`fit_scale`). ``min_size``: an image
    whose longer side is shorter (pixels) is upscaled to it before detection (0, the default: never, as
    3DDFA_V2). FaceBoxes' first anchors sit on a 32-pixel grid, and in a small image (a tight face crop, a
    thumbnail) it scores a face low or not at all; 240 finds most of them (docs/experiments/wild.md, "Small
    photos"), and more false faces on small animal photos. ``min_face``: the
    smallest face side (image pixels) to find; the image is downscaled by ``32 / min_face`` when that is
    below 1, so such a face still spans FaceBoxes' smallest anchor (32 pixels; ``min_face=32``: 3DDFA_V2's
    full resolution). Detection time falls with the square of the scale. ``tint_grey``: a black-and-white photo
    (:func:`is_grey`) is detected in a skin tint (:func:`tint_grey`, :data:`GREY_TINT`); colour photos are
    detected as they are. ``recheck``: in a downscaled image, FaceBoxes' score of a face of 50-130 pixels at its
    input moves with the exact scale (a dark face of a grid of faces: 0.36 at one width, 0.65 a pixel wider,
    0.995 at full resolution); each near miss (a proposal scoring above :data:`RECHECK_SCORE` and at most the
    threshold, or 0.5 if the threshold is lower; under :data:`RECHECK_SIDE` pixels at the input; at most
    :data:`RECHECK_MAX`, best first) is detected again on a crop of :data:`RECHECK_CONTEXT` times its side at full
    resolution (or the largest ``max_size`` allows). A box found there above that score, overlapping the proposal
    (IoU > 0.3) and no box already kept, takes the proposal's place (a near miss not confirmed so is kept only if
    it scores above the threshold). In an image detected at its own size (or upscaled, ``min_size``), the near
    misses under :data:`RECHECK_SMALL_SIDE` pixels at the input (faces of 15-30 pixels, which FaceBoxes scores low
    at their own size; at most :data:`RECHECK_SMALL_MAX`) are detected again on such a crop shown
    :data:`RECHECK_UPSCALE` times larger. A crowd (at least :data:`CROWD_PROPOSALS` proposals under
    :data:`RECHECK_SMALL_SIDE` pixels at the input of an image seen smaller than :data:`CROWD_SIDE` pixels) is
    detected again whole, at least :data:`RECHECK_UPSCALE` times larger: its longer side at :data:`CROWD_SIDE` pixels
    if it was seen at its own size or upscaled, at :data:`CROWD_LARGE_SIDE` (at most its own size) if it was
    downscaled, where that is larger. The boxes found there that overlap no kept box join, and only the small near
    misses that none of them overlaps are looked at on their crops
    (``seen_scale``: the largest scale the last image was detected at whole). The boxes above it stay as they are,
    and a lower threshold still only adds boxes. ``weights``: a checkpoint path (default: the registered asset
    ``detector-faceboxes``). ``backend``: ``"torch"`` or ``"onnxruntime"`` (CPU; needs onnx and onnxruntime).
    ``threads``: ONNX Runtime intra-op threads (0: the budget of the threading policy, :mod:`mfirrn.io.threads`).
    """

    name = "faceboxes"

    def __init__(self, *, score_threshold: float = SCORE_THRESHOLD, iou_threshold: float = 0.3,
                 max_size: tuple[int, int] = MAX_SIZE, min_size: int = 0, min_face: float = 32.0,
                 tint_grey: bool = False, recheck: bool = False,
                 weights: Optional[Union[str, Path]] = None, backend: str = "torch",
                 device: Union[str, torch.device] = "cpu", threads: int = 0) -> None:
        if backend not in ("torch", "onnxruntime"):
            raise ValueError(f"FaceBoxes backend must be torch or onnxruntime, got {backend!r}")
        if weights is None:
            from mfirrn.io.assets import fetch

            weights = fetch("detector-faceboxes")
        weights = Path(weights)
        if not min_face > 0:
            raise ValueError(f"min_face must be a positive number of pixels, got {min_face}")
        max_size = tuple(max_size)  # type: ignore[assignment]
        if len(max_size) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 0 for v in max_size):
            raise ValueError(f"max_size must be (height, width) in pixels, 0 for no limit, got {max_size}")
        if not (isinstance(min_size, (int, np.integer)) and min_size >= 0):
            raise ValueError(f"min_size must be a number of pixels >= 0 (0: never upscale), got {min_size}")
        self.score_threshold, self.iou_threshold, self.max_size = score_threshold, iou_threshold, max_size
        self.min_size = int(min_size)
        self.min_face = float(min_face)
        self.tint_grey = bool(tint_grey)
        self.recheck = bool(recheck)
        self.backend, self.device = backend, torch.device(device)
        net = _load_net(weights)
        self._session = _onnx_session(net, weights, threads) if backend == "onnxruntime" else None
        # channels-last: the HWC image is already in that layout, and oneDNN's convolutions run faster in it
        self.net = net.fuse().to(self.device, memory_format=torch.channels_last)
        self._priors: dict[tuple[int, int], np.ndarray] = {}
        self.seen_scale = 1.0

    def scale_for(self, height: int, width: int) -> float:
        """The factor an image is resized by before detection: > 1 for an image whose longer side is below
        ``min_size`` (to that size), else <= 1 by the size rule (:func:`fit_scale`) and ``min_face``."""
        if max(height, width) < self.min_size:
            return self.min_size / max(height, width)
        return min(fit_scale(height, width, self.max_size), MIN_SIZES[0][0] / self.min_face)

    def _forward(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """BGR uint8 (h, w, 3) -> (loc (P, 4), face score (P,)) float32."""
        if self._session is not None:
            x = np.empty((1, 3, *image.shape[:2]), np.float32)  # NCHW minus the mean, one channel at a time
            for c in range(3):
                np.subtract(image[..., c], np.float32(BGR_MEAN[c]), out=x[0, c], dtype=np.float32)
            loc, score = self._session.run(None, {"image": x})
            return loc[0], score[0]
        with torch.inference_mode():
            x = torch.from_numpy(image).to(self.device)[None].permute(0, 3, 1, 2)  # NCHW view, channels-last strides
            x = x.float() - torch.tensor(BGR_MEAN, device=self.device).view(1, 3, 1, 1)
            loc, score = self.net(x.contiguous(memory_format=torch.channels_last))
        return loc[0].float().cpu().numpy(), score[0].float().cpu().numpy()

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        scale = self.scale_for(h, w)
        self.seen_scale = scale  # the largest scale this image is detected at whole (a crowd's look raises it)
        if not self.recheck:
            return self._detect(image, scale, self.score_threshold)
        boxes = self._detect(image, scale, min(RECHECK_SCORE, self.score_threshold))
        # greedy NMS: the boxes above any score are those that detecting at that score would give. Near misses
        # score in (RECHECK_SCORE, top] whatever the threshold, so a lower threshold only adds boxes
        top = max(self.score_threshold, SCORE_THRESHOLD)
        sure = boxes[:, 4] > top
        kept = boxes[sure]
        side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * scale
        # a downscaled photo's near misses are looked at again at full resolution, the small ones of a photo seen
        # at its own size (or larger) upscaled
        limit, cap, crop_scale = ((RECHECK_SIDE, RECHECK_MAX, None) if scale < 1 else
                                  (RECHECK_SMALL_SIDE, RECHECK_SMALL_MAX, RECHECK_UPSCALE * scale))
        rechecked = np.zeros(len(boxes), bool)
        near = ~sure & (boxes[:, 4] > RECHECK_SCORE) & (side < limit)
        small = (boxes[:, 4] > RECHECK_SCORE) & (side < RECHECK_SMALL_SIDE)  # sure or not
        if max(h, w) * scale < CROWD_SIDE and np.count_nonzero(small) >= CROWD_PROPOSALS:
            # a crowd: more small faces than crops are worth, the whole photo shown larger (a downscaled one at most
            # at its own size for CROWD_LARGE_SIDE)
            side_scale = CROWD_SIDE / max(h, w) if scale >= 1 else min(1.0, CROWD_LARGE_SIDE / max(h, w))
            self.seen_scale = max(RECHECK_UPSCALE * scale, side_scale)
            found = self._detect(image, self.seen_scale, top)
            for box in found:
                if not (len(kept) and roi_iou(kept[:, :4], box[None, :4]).max() > 0.3):
                    kept = np.concatenate([kept, box[None]])
            if len(found) and near.any():  # near misses found again are not kept twice, the others looked at
                rechecked[near] = roi_iou(boxes[near, None, :4], found[None, :, :4]).max(axis=1) > 0.3
                near &= ~rechecked
        for i in np.flatnonzero(near)[:cap]:
            found = self._recheck(image, boxes[i], top, crop_scale)
            if found is not None and not (len(kept) and roi_iou(kept[:, :4], found[None, :4]).max() > 0.3):
                kept, rechecked[i] = np.concatenate([kept, found[None]]), True
        kept = np.concatenate([kept, boxes[~sure & ~rechecked & (boxes[:, 4] > self.score_threshold)]])
        return kept[np.argsort(-kept[:, 4], kind="stable")]

    def can_look_larger(self, shape: tuple) -> bool:
        """Whether :meth:`larger_look` would look again at an image of ``shape`` (H, W, ...) last seen at
        ``seen_scale``: with ``recheck``, and not already seen at :data:`CROWD_SIDE` pixels or more."""
        return self.recheck and max(shape[:2]) * self.seen_scale < CROWD_SIDE

    def larger_look(self, image: np.ndarray) -> np.ndarray:
        """The boxes (K, 5) above the threshold of ``image``, the image :meth:`__call__` last saw, detected again whole
        and larger: its longer side at :data:`CROWD_SIDE` pixels if it is shorter, else at :data:`CROWD_LARGE_SIDE`
        pixels but not beyond its own size, and at least :data:`RECHECK_UPSCALE` times ``seen_scale`` (which it then
        raises). Empty, ``seen_scale`` unchanged, without ``recheck`` or when the image was already seen at
        :data:`CROWD_SIDE` pixels or more (a crowd's look, a large ``min_size`` or ``max_size``)."""
        if not self.can_look_larger(image.shape):
            return np.zeros((0, 5))
        longer = max(image.shape[:2])
        side_scale = CROWD_SIDE / longer if longer < CROWD_SIDE else min(1.0, CROWD_LARGE_SIDE / longer)
        self.seen_scale = max(RECHECK_UPSCALE * self.seen_scale, side_scale)
        return self._detect(image, self.seen_scale, max(self.score_threshold, SCORE_THRESHOLD))

    def _recheck(self, image: np.ndarray, box: np.ndarray, threshold: float,
                 scale: Optional[float] = None) -> Optional[np.ndarray]:
        """The best box (5,) scoring above ``threshold`` that overlaps ``box`` (IoU > 0.3), detected on a crop
        :data:`RECHECK_CONTEXT` times its side around it, resized by ``scale`` (``None``: as :meth:`scale_for`
        the crop); ``None`` if there is none."""
        h, w = image.shape[:2]
        half = 0.5 * RECHECK_CONTEXT * max(box[2] - box[0], box[3] - box[1])
        cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
        x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
        x1, y1 = int(min(w, np.ceil(cx + half))), int(min(h, np.ceil(cy + half)))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        found = self._detect(crop, self.scale_for(*crop.shape[:2]) if scale is None else scale, threshold)
        if len(found) == 0:
            return None
        found[:, :4] += np.array([x0, y0, x0, y0], np.float64)
        iou = roi_iou(found[:, :4], box[None, :4])
        best = int(iou.argmax())
        return found[best] if iou[best] > 0.3 else None

    def _detect(self, image: np.ndarray, scale: float, threshold: float) -> np.ndarray:
        """Boxes (K, 5) scoring above ``threshold`` in ``image`` detected at ``scale``, after NMS, best first."""
        h, w = image.shape[:2]
        small = image if scale == 1.0 else cv2.resize(image, (int(w * scale), int(h * scale)))
        if self.tint_grey and is_grey(small):
            small = tint_grey(small)
        sh, sw = small.shape[:2]
        loc, score = self._forward(np.ascontiguousarray(small))
        keep = np.flatnonzero(score > threshold)
        if len(keep) == 0:
            return np.zeros((0, 5))
        if (sh, sw) not in self._priors:
            if len(self._priors) >= 4:  # a few sizes cached (a folder usually shares one, rechecks add crops)
                self._priors.clear()
            self._priors[(sh, sw)] = prior_boxes(sh, sw)
        boxes = decode_boxes(loc[keep].astype(np.float64), self._priors[(sh, sw)][keep].astype(np.float64))
        boxes *= np.array([w, h, w, h], np.float64)  # fractions of the resized image = of the original
        scores = score[keep].astype(np.float64)
        order = nms(boxes, scores, self.iou_threshold)
        return np.concatenate([boxes[order], scores[order, None]], 1)
