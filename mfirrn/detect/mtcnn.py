"""MTCNN (Zhang et al. 2016): the P-Net / R-Net / O-Net cascade, with the weights the ``facenet-pytorch`` wheel ships.

The three networks are written here from the paper's description and the layer names of the
``facenet-pytorch`` 2.6.0 state dicts (fetched as the assets ``mtcnn-pnet``, ``mtcnn-rnet`` and
``mtcnn-onet``, members of that wheel, so neither ``facenet-pytorch`` nor ``torchvision`` is needed).
Networks take RGB crops scaled as ``(x - 127.5) / 128``; their dense layers were trained on
(N, W, H, C)-ordered features (Caffe's layout), hence the transpose before each flatten.

:class:`MTCNN` is the detector (an image pyramid through P-Net, then R-Net and O-Net on square
crops, non-maximum suppression by OpenCV); :class:`ONetScorer` scores given face boxes with the O-Net
alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np
import torch
from torch import nn

__all__ = ["PNet", "RNet", "ONet", "MTCNN", "ONetScorer", "load_mtcnn_net", "square_boxes", "crop_boxes"]


class PNet(nn.Module):
    """Proposal net, fully convolutional: (N, 3, H, W) -> (box offsets (N, 4, h, w), face prob (N, h, w))."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)[:, 1]


class RNet(nn.Module):
    """Refine net on 24x24 crops: (N, 3, 24, 24) -> (box offsets (N, 4), face prob (N,))."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).flatten(1)
        x = self.prelu4(self.dense4(x))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)[:, 1]


class ONet(nn.Module):
    """Output net on 48x48 crops: (N, 3, 48, 48) -> (box offsets (N, 4), face prob (N,)); its 5-point
    landmark head is not used here."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 48, 48) -> the 256-d features (N, 256) its three heads read."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).flatten(1)
        return self.prelu5(self.dense5(x))

    def face_prob(self, features: torch.Tensor) -> torch.Tensor:
        """Features (N, 256) -> face probability (N,)."""
        return torch.softmax(self.dense6_1(features), dim=1)[:, 1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embed(x)
        return self.dense6_2(x), self.face_prob(x)


class _ProbAndFeatures(nn.Module):
    """O-Net for the face verifier: (N, 3, 48, 48) -> (face prob (N,), features (N, 256))."""

    def __init__(self, onet: ONet) -> None:
        super().__init__()
        self.onet = onet

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.onet.embed(x)
        return self.onet.face_prob(features), features


_NETS = {"pnet": PNet, "rnet": RNet, "onet": ONet}


def load_mtcnn_net(name: str, device: Union[str, torch.device] = "cpu", weights: Optional[Path] = None) -> nn.Module:
    """One of ``"pnet"``, ``"rnet"``, ``"onet"`` with its weights (asset ``mtcnn-<name>``, or the state dict file
    ``weights``, read without running code), in eval mode; ValueError naming a ``weights`` file that does not fit."""
    from mfirrn.io.assets import fetch

    net = _NETS[name]()
    path = weights if weights is not None else fetch(f"mtcnn-{name}")
    try:
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:  # a file from someone else: torch's weights-only reader runs no code, whatever it holds
        if weights is None:
            raise
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"{weights}: cannot be read as weights of MTCNN's {name} ({why}); restore the file") from None
    return net.to(device).eval()


def square_boxes(boxes: np.ndarray) -> np.ndarray:
    """Boxes (N, 4+) made square around their centres (side = the longer side); extra columns kept.

    >>> square_boxes(np.array([[0.0, 0, 10, 20]])).tolist()
    [[-5.0, 0.0, 15.0, 20.0]]
    """
    out = np.array(boxes, np.float64, copy=True)
    w, h = out[:, 2] - out[:, 0], out[:, 3] - out[:, 1]
    side = np.maximum(w, h)
    cx, cy = out[:, 0] + w / 2, out[:, 1] + h / 2
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2
    return out


def crop_boxes(rgb: np.ndarray, boxes: np.ndarray, size: int) -> torch.Tensor:
    """Crops of ``boxes`` (N, 4) from a uint8 image (H, W, 3), zero-padded outside it, resized (area) to
    ``size`` -> float32 (N, 3, size, size) scaled ``(x - 127.5) / 128``, channels in the image's order."""
    h, w = rgb.shape[:2]
    crops = np.zeros((len(boxes), size, size, 3), np.float32)
    for i, (x0, y0, x1, y1) in enumerate(np.round(boxes[:, :4]).astype(np.int64)):
        bw, bh = max(int(x1 - x0), 1), max(int(y1 - y0), 1)
        patch = np.zeros((bh, bw, 3), np.uint8)
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if sx1 > sx0 and sy1 > sy0:
            patch[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
        crops[i] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy((crops - 127.5) / 128.0).permute(0, 3, 1, 2).contiguous()


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply box offsets (N, 4), in units of the box's width and height, to boxes (N, 4+)."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    out[:, :4] = boxes[:, :4] + offsets * np.stack([w, h, w, h], axis=1)
    return out


def _nms(boxes: np.ndarray, iou: float) -> np.ndarray:
    from mfirrn.detect.faceboxes import nms

    return nms(boxes[:, :4], boxes[:, 4], iou) if len(boxes) else np.zeros(0, np.int64)


class ONetScorer:
    """O-Net's face probability (N,) in [0, 1] for face ``boxes`` (N, 4) of a BGR uint8 image: each box is made
    square, cropped (zero-padded outside the image) and resized to 48x48, as the cascade does.
    :meth:`score` also returns the 256-d features O-Net's heads read (the face verifier's embedding).

    ``backend``: ``"torch"`` or ``"onnxruntime"`` (CPU; the export is cached beside the weights);
    ``threads``: ONNX Runtime's intra-op threads (0: all cores); ``weights``: a state dict file in place of
    MTCNN's O-Net (the face verifier's fine-tuned one; its export is cached in the asset cache).
    """

    def __init__(self, *, backend: str = "torch", device: Union[str, torch.device] = "cpu", threads: int = 0,
                 weights: Optional[Path] = None) -> None:
        self.net = _ProbAndFeatures(load_mtcnn_net("onet", device, weights)).eval()
        self._session = None
        if backend == "onnxruntime":
            from mfirrn.detect.faceboxes import onnx_session
            from mfirrn.io.assets import cache_dir, fetch

            self._session = onnx_session(self.net, weights or fetch("mtcnn-onet"), threads, torch.zeros(1, 3, 48, 48),
                                         ["crops"], ["prob", "features"],
                                         {"crops": {0: "n"}, "prob": {0: "n"}, "features": {0: "n"}},
                                         variant="prob-features", export_dir=cache_dir() / "onnx" if weights else None)

    @staticmethod
    def crops(image: np.ndarray, boxes: np.ndarray) -> torch.Tensor:
        """O-Net's inputs (N, 3, 48, 48) float32, RGB, for ``boxes`` (N, 4) in a BGR uint8 ``image`` (what
        :meth:`score` reads; two scorers of the same boxes can share them)."""
        return crop_boxes(image, square_boxes(np.asarray(boxes, np.float64).reshape(-1, 4)), 48).flip(1)

    def score(self, image: np.ndarray, boxes: np.ndarray,
              crops: Optional[torch.Tensor] = None) -> tuple[np.ndarray, np.ndarray]:
        """(face probability (N,), features (N, 256)) float64 of ``boxes`` (N, 4) in a BGR uint8 ``image``, or of
        their ``crops`` (:meth:`crops`) when given."""
        if len(boxes) == 0:
            return np.zeros(0), np.zeros((0, 256))
        x = self.crops(image, boxes) if crops is None else crops
        if self._session is not None:
            prob, features = self._session.run(["prob", "features"], {"crops": x.numpy()})
        else:
            with torch.inference_mode():
                prob, features = (t.float().cpu().numpy() for t in self.net(x.to(next(self.net.parameters()).device)))
        return np.asarray(prob, np.float64), np.asarray(features, np.float64)

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return self.score(image, boxes)[0]


class MTCNN:
    """The MTCNN face detector: BGR uint8 (H, W, 3) -> boxes (K, 5) float64 (x0, y0, x1, y1, O-Net score).

    ``min_face``: smallest face side (pixels) searched; ``thresholds``: P-, R- and O-Net face
    probabilities a window must pass (0.6, 0.7, 0.7 as in the paper's code); ``factor``: the pyramid's
    scale step. Images larger than ``max_side`` pixels are downscaled first (boxes are mapped back).
    """

    name = "mtcnn"

    def __init__(self, *, min_face: int = 20, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709, max_side: int = 1080, device: Union[str, torch.device] = "cpu") -> None:
        self.min_face, self.thresholds, self.factor, self.max_side = min_face, thresholds, factor, max_side
        self.device = torch.device(device)
        self.pnet, self.rnet, self.onet = (load_mtcnn_net(n, self.device) for n in ("pnet", "rnet", "onet"))

    def _proposals(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        scale, side, found = 12.0 / self.min_face, min(h, w) * 12.0 / self.min_face, []
        img = torch.from_numpy(rgb).to(self.device).permute(2, 0, 1)[None].float()
        while side >= 12:
            size = (int(h * scale) + 1, int(w * scale) + 1)
            x = (torch.nn.functional.interpolate(img, size=size, mode="area") - 127.5) / 128.0
            with torch.inference_mode():
                reg, prob = self.pnet(x)
            prob, reg = prob[0].cpu().numpy(), reg[0].cpu().numpy()
            ys, xs = np.nonzero(prob >= self.thresholds[0])
            if len(ys):
                # each output cell sees a 12x12 window, stride 2, of the scaled image
                b = np.stack([2 * xs / scale, 2 * ys / scale, (2 * xs + 12) / scale, (2 * ys + 12) / scale,
                              prob[ys, xs]], axis=1)
                b = _regress(b, reg[:, ys, xs].T)
                found.append(b[_nms(b, 0.5)])
            scale, side = scale * self.factor, side * self.factor
        if not found:
            return np.zeros((0, 5))
        boxes = np.concatenate(found)
        return square_boxes(boxes[_nms(boxes, 0.7)])

    def _stage(self, net: nn.Module, rgb: np.ndarray, boxes: np.ndarray, size: int, threshold: float) -> np.ndarray:
        if len(boxes) == 0:
            return boxes
        with torch.inference_mode():
            reg, prob = net(crop_boxes(rgb, boxes, size).to(self.device))
        prob, reg = prob.cpu().numpy(), reg.cpu().numpy()
        keep = prob >= threshold
        out = boxes[keep].copy()
        out[:, 4] = prob[keep]
        return _regress(out, reg[keep])

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = image if scale == 1.0 else cv2.resize(image, (round(w * scale), round(h * scale)),
                                                      interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        boxes = self._stage(self.rnet, rgb, self._proposals(rgb), 24, self.thresholds[1])
        boxes = square_boxes(boxes[_nms(boxes, 0.7)]) if len(boxes) else boxes
        boxes = self._stage(self.onet, rgb, boxes, 48, self.thresholds[2])
        if len(boxes) == 0:
            return np.zeros((0, 5))
        boxes = boxes[_nms(boxes, 0.7)]
        boxes[:, :4] /= scale
        return boxes[np.argsort(-boxes[:, 4], kind="stable")]
