"""3DDFA_V2's own still-image pipeline (mb05, 120x120), as a callable to time beside ours.

One call of the returned ``run(img_bgr)`` is: FaceBoxes detection, ``tddfa(img, boxes)``, the landmark
refinement of 3DDFA_V2's demo_video_smooth.py (sparse ``recon_vers``, then
``tddfa(img, vers, crop_policy='landmark')``), then dense ``recon_vers`` (38365 vertices per face). It
returns the face count and each face's refined 68 landmarks, (3, 68) arrays in image pixels.

Needs a local checkout of cleardusk/3DDFA_V2 at 1b6c67601abffc1e9f248b291708aef0e43b55ae (it is not
imported from this project), built as follows:

* FaceBoxes' Cython NMS: ``cd FaceBoxes/utils && python build.py build_ext --inplace``; with numpy 2
  the .pyx needs ``np.int_t``/``np.int``/``np.float`` replaced by ``np.intp_t``/``np.intp``/``double``.
* weights/mb05_120x120.pth, FaceBoxes/weights/FaceBoxesProd.pth and configs/bfm_noneck_v3.pkl in place.
* ``onnx=True`` exports FaceBoxesProd.onnx, mb05_120x120.onnx and bfm_noneck_v3.onnx next to their
  sources on first use (3DDFA_V2's own code; run here with torch's legacy exporter, which needs no
  onnxscript).

torch runs on 1 thread, and every ONNX Runtime session is rebuilt with 1 intra-op thread.

    python benchmarks/tddfa_v2.py /path/to/3DDFA_V2 /folder/of/jpgs [--n 20]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import sys
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

CONFIG = "configs/mb05_120x120.yml"

Run = Callable[[np.ndarray], tuple[int, list[np.ndarray]]]


def _ensure_torchvision() -> None:
    """TDDFA.py only needs ``torchvision.transforms.Compose``; stand in for it where torchvision is absent."""
    try:
        import torchvision.transforms  # noqa: F401
    except ImportError:

        class Compose:
            def __init__(self, transforms: list) -> None:
                self.transforms = transforms

            def __call__(self, x):
                for t in self.transforms:
                    x = t(x)
                return x

        transforms = types.ModuleType("torchvision.transforms")
        transforms.Compose = Compose
        package = types.ModuleType("torchvision")
        package.transforms = transforms
        sys.modules.update({"torchvision": package, "torchvision.transforms": transforms})


@contextlib.contextmanager
def _legacy_onnx_export() -> Iterator[None]:
    """3DDFA_V2 calls ``torch.onnx.export`` with its 2020 defaults: the TorchScript exporter."""
    import torch

    export = torch.onnx.export
    torch.onnx.export = functools.partial(export, dynamo=False)
    try:
        yield
    finally:
        torch.onnx.export = export


def _one_thread_session(path: str):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def load(root: str, onnx: bool) -> Run:
    """Build FaceBoxes + TDDFA (mb05) from the 3DDFA_V2 checkout at ``root`` as its demo.py does."""
    import torch
    import yaml

    root = os.path.abspath(root)
    for name in ("utils", "models", "bfm", "FaceBoxes"):
        mod = sys.modules.get(name)
        if mod is not None and not (getattr(mod, "__file__", None) or "").startswith(root):
            raise ImportError(f"a foreign top-level module {name!r} is already imported; 3DDFA_V2 needs its own")
    if root not in sys.path:
        sys.path.insert(0, root)
    _ensure_torchvision()
    torch.set_num_threads(1)

    with open(os.path.join(root, CONFIG)) as f:
        cfg = yaml.safe_load(f)
    for key in ("checkpoint_fp", "bfm_fp"):
        cfg[key] = os.path.join(root, cfg[key])

    if onnx:
        from FaceBoxes.FaceBoxes_ONNX import FaceBoxes_ONNX, onnx_path
        from TDDFA_ONNX import TDDFA_ONNX

        with _legacy_onnx_export():
            face_boxes = FaceBoxes_ONNX()
            tddfa = TDDFA_ONNX(**cfg)
        face_boxes.session = _one_thread_session(onnx_path)
        tddfa.session = _one_thread_session(cfg["checkpoint_fp"].replace(".pth", ".onnx"))
        tddfa.bfm_session = _one_thread_session(cfg["bfm_fp"].replace(".pkl", ".onnx"))
    else:
        from FaceBoxes import FaceBoxes
        from TDDFA import TDDFA

        tddfa = TDDFA(gpu_mode=False, **cfg)
        face_boxes = FaceBoxes()

    def run(img_bgr: np.ndarray) -> tuple[int, list[np.ndarray]]:
        boxes = face_boxes(img_bgr)
        if not boxes:
            return 0, []
        param_lst, roi_box_lst = tddfa(img_bgr, boxes)
        vers = tddfa.recon_vers(param_lst, roi_box_lst, dense_flag=False)
        param_lst, roi_box_lst = tddfa(img_bgr, vers, crop_policy="landmark")
        tddfa.recon_vers(param_lst, roi_box_lst, dense_flag=True)
        return len(boxes), tddfa.recon_vers(param_lst, roi_box_lst, dense_flag=False)

    return run


def main() -> None:
    import cv2

    ap = argparse.ArgumentParser(description="median ms per image of 3DDFA_V2, PyTorch vs ONNX, interleaved")
    ap.add_argument("root", help="3DDFA_V2 checkout")
    ap.add_argument("images", help="folder of .jpg")
    ap.add_argument("--n", type=int, default=20, help="images to time (sorted by name)")
    args = ap.parse_args()
    paths = sorted(Path(args.images).rglob("*.jpg"))[: args.n]
    imgs = [cv2.imread(str(p)) for p in paths]
    runs = {mode: load(args.root, onnx=mode == "onnx") for mode in ("torch", "onnx")}
    for run in runs.values():
        run(imgs[0])  # warm-up
    ms: dict[str, list[float]] = {mode: [] for mode in runs}
    faces = dict.fromkeys(runs, 0)
    for i, img in enumerate(imgs):
        for mode in list(runs)[:: 1 if i % 2 == 0 else -1]:
            t = time.perf_counter()
            n, _ = runs[mode](img)
            ms[mode].append((time.perf_counter() - t) * 1e3)
            faces[mode] += n
    for mode in runs:
        print(f"{mode:5s}  {statistics.median(ms[mode]):7.1f} ms/image (median of {len(imgs)})  {faces[mode]} faces")


if __name__ == "__main__":
    main()
