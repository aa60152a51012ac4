"""Inference facade: image -> detected faces -> crops -> params -> landmarks and dense mesh in image pixels.

>>> rec = Reconstructor(model="3ddfa-v2-mb05")            # doctest: +SKIP
>>> faces = rec(cv2.imread("photo.jpg"))                 # doctest: +SKIP
>>> faces[0].landmarks.shape, faces[0].pose["yaw"]       # doctest: +SKIP
((68, 3), -12.3)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np
import torch
from torch import nn

from mfirrn.bfm import MeshName, MorphableModel
from mfirrn.crop import crop_image, crops_to_tensor, roi_from_box, roi_from_landmarks
from mfirrn.detect import Detector, create_detector
from mfirrn.inference import predict_params
from mfirrn.params import pose_from_params

__all__ = ["Face", "Reconstructor", "reconstruct", "read_image", "ImageError", "NoFaceError"]


class ImageError(ValueError):
    """An image file is missing, unreadable or not an image."""


class NoFaceError(RuntimeError):
    """The detector found no face in an image."""


def read_image(path: Union[str, Path]) -> np.ndarray:
    """Read an image file as BGR uint8 (H, W, 3); grey and alpha images are converted."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise ImageError(f"{path}: not a readable image (corrupt or not an image format OpenCV knows)")
    return img


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Check and convert an in-memory image to BGR uint8 (H, W, 3) (grey or BGRA accepted)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ImageError(f"image: expected uint8 pixels, got {image.dtype}; convert with (img*255).astype(np.uint8)")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ImageError(f"image: expected (H, W), (H, W, 3) or (H, W, 4), got shape {image.shape}")


@dataclass
class Face:
    """One reconstructed face, everything in original-image pixels (x right, y down, z larger = closer).

    ``box`` (4,) detector box or ``None`` when the face came from landmarks; ``roi`` (4,) the crop box;
    ``params`` (62,) de-normalised 3DMM params; ``pose`` yaw/pitch/roll in degrees plus ``scale``;
    ``landmarks`` (68, 3); ``vertices`` (N, 3) dense mesh (``None`` if not requested);
    ``triangles`` (T, 3) int64 of that mesh; ``score`` detector score.
    """

    box: Optional[np.ndarray]
    roi: np.ndarray
    params: np.ndarray
    pose: dict[str, float]
    landmarks: np.ndarray
    vertices: Optional[np.ndarray] = None
    triangles: Optional[np.ndarray] = field(default=None, repr=False)
    score: float = float("nan")

    def to_dict(self) -> dict:
        """The JSON form written by ``mfirrn reconstruct`` (box, roi, params, pose, landmarks)."""
        return {
            "box": None if self.box is None else [float(v) for v in self.box[:4]],
            "score": None if not np.isfinite(self.score) else float(self.score),
            "roi": [float(v) for v in self.roi],
            "params": [float(v) for v in self.params],
            "pose": {k: float(self.pose[k]) for k in ("yaw", "pitch", "roll")},
            "landmarks": [[float(c) for c in p] for p in self.landmarks],
        }


class Reconstructor:
    """Detect, crop, predict and reconstruct all faces of an image.

    ``model``: a registered model name or a module from :func:`mfirrn.models.create` /
    :func:`mfirrn.models.load_checkpoint` (it carries its stats and pixel convention).
    ``detector``: a registered detector name or any callable image -> (K, 5) boxes.
    ``refine``: 3DDFA's two-step mode — predict, rebuild the roi from the predicted 68 landmarks,
    predict again. ``mesh``: ``"full"`` (53215 vertices) or ``"noneck"`` (38365); ``dense=False`` skips
    the dense mesh. ``bf16``: bfloat16 autocast for the network (fast on AVX512-BF16/AMX CPUs and GPUs).
    """

    def __init__(self, model: Union[str, nn.Module] = "3ddfa-v2-mb05", detector: Union[str, Detector] = "dlib-hog",
                 *, refine: bool = True, mesh: MeshName = "full", dense: bool = True,
                 device: Union[str, torch.device] = "cpu", bf16: bool = False,
                 bfm: Optional[MorphableModel] = None) -> None:
        from mfirrn import models

        self.device = torch.device(device)
        self.model = models.create(model, device=self.device) if isinstance(model, str) else model.to(self.device).eval()
        if not hasattr(self.model, "card") or not hasattr(self.model, "stats"):
            raise ValueError("model must come from mfirrn.models.create or load_checkpoint (it needs .card and .stats)")
        self._detector_spec = detector
        self._detector: Optional[Detector] = None
        self.refine, self.dense, self.bf16 = refine, dense, bf16
        self.bfm = (bfm if bfm is not None else MorphableModel(mesh)).to(self.device)

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            spec = self._detector_spec
            self._detector = create_detector(spec) if isinstance(spec, str) else spec
        return self._detector

    @property
    def model_name(self) -> str:
        return self.model.card.name

    def _predict(self, image: np.ndarray, rois: np.ndarray) -> torch.Tensor:
        crops = crops_to_tensor([crop_image(image, r) for r in rois])
        return predict_params(self.model, crops, bf16=self.bf16, device=self.device)

    def _landmarks(self, params: torch.Tensor, rois: np.ndarray) -> torch.Tensor:
        roi_t = torch.as_tensor(rois, dtype=torch.float32, device=self.device)
        with torch.no_grad():
            return self.bfm.landmarks(params.to(self.device), convention=self.model.card.convention, roi=roi_t)

    def __call__(self, image: np.ndarray, boxes: Optional[np.ndarray] = None,
                 landmarks: Optional[np.ndarray] = None) -> list[Face]:
        """Reconstruct the faces of a BGR uint8 image.

        Faces come from ``landmarks`` (F, K, 2) if given (roi from landmarks, REFERENCE §2), else from
        ``boxes`` (F, 4 or 5), else from the detector. Returns [] when no face is found.
        """
        image = as_bgr(image)
        box_arr: Optional[np.ndarray]
        if landmarks is not None:
            lm = np.asarray(landmarks, np.float64)
            lm = lm[None] if lm.ndim == 2 else lm
            rois, box_arr, scores = roi_from_landmarks(lm), None, np.full(len(lm), np.nan)
        else:
            box_arr = self.detector(image) if boxes is None else np.asarray(boxes, np.float64).reshape(-1, np.shape(boxes)[-1])
            if box_arr.shape[-1] not in (4, 5):
                raise ValueError(f"boxes: expected (F, 4) or (F, 5), got {box_arr.shape}")
            scores = box_arr[:, 4] if box_arr.shape[1] == 5 else np.full(len(box_arr), np.nan)
            rois = roi_from_box(box_arr[:, :4])
        if len(rois) == 0:
            return []
        params = self._predict(image, rois)
        if self.refine:
            rois = roi_from_landmarks(self._landmarks(params, rois).cpu().numpy()[..., :2])
            params = self._predict(image, rois)
        lms = self._landmarks(params, rois).cpu().numpy()
        pose = pose_from_params(params)
        verts = None
        if self.dense:
            roi_t = torch.as_tensor(rois, dtype=torch.float32, device=self.device)
            with torch.no_grad():
                verts = self.bfm.vertices(params.to(self.device), convention=self.model.card.convention,
                                          roi=roi_t).cpu().numpy()
        faces = []
        for i in range(len(rois)):
            faces.append(Face(
                box=None if box_arr is None else box_arr[i, :4].copy(),
                roi=np.asarray(rois[i], np.float64),
                params=params[i].numpy().astype(np.float64),
                pose={"yaw": float(pose.yaw[i]), "pitch": float(pose.pitch[i]), "roll": float(pose.roll[i]),
                      "scale": float(pose.scale[i])},
                landmarks=lms[i],
                vertices=None if verts is None else verts[i],
                triangles=self.bfm.triangles if verts is not None else None,
                score=float(scores[i]),
            ))
        return faces


def reconstruct(image: Union[str, Path, np.ndarray], model: Union[str, nn.Module] = "3ddfa-v2-mb05",
                boxes: Optional[np.ndarray] = None, landmarks: Optional[np.ndarray] = None,
                **kwargs) -> list[Face]:
    """One-call reconstruction of a path or BGR array (builds a :class:`Reconstructor`; reuse one for many images)."""
    img = read_image(image) if isinstance(image, (str, Path)) else image
    return Reconstructor(model, **kwargs)(img, boxes=boxes, landmarks=landmarks)

