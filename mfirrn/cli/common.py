"""Helpers shared by the sub-commands: one-line errors, model selection and the reconstructor their options ask for."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Sequence

from mfirrn.cli.args import add_trust_checkpoint_arg
from mfirrn.io.defaults import BACKENDS, DEFAULT_CROP_PADDING, LOOKING_DOWN_CONFIDENCE, VERIFIER_NAMES

if TYPE_CHECKING:
    from torch import nn

    from mfirrn.inference.pipeline import Reconstructor

__all__ = ["fail", "show_progress", "add_model_args", "model_from_args", "prefetch", "reconstructor_from_args",
           "resolve_backend", "resolve_device", "warn_bf16", "BACKENDS"]



def fail(message: str, code: int = 2) -> int:
    """Print ``mfirrn: error: <message>`` on one line to stderr and return ``code``."""
    print(f"mfirrn: error: {message}", file=sys.stderr)
    return code


def show_progress() -> bool:
    """Progress bars go to a terminal only (``MFIRRN_PROGRESS=1`` forces them): written to a log file, a bar
    that redraws itself becomes one ever-growing line."""
    return sys.stderr.isatty() or os.environ.get("MFIRRN_PROGRESS") == "1"


def add_model_args(p: argparse.ArgumentParser, default_model: str | None, default_backend: str = "torch",
                   backend_note: str = "") -> None:
    """``--model``, ``--checkpoint``, ``--device``, ``--bf16``, ``--backend``; ``backend_note`` ends the help of
    ``--backend`` (what the command runs in PyTorch whatever the backend)."""
    p.add_argument("--model", default=None,
                   help=f"registered model name (default {default_model}); see `mfirrn models`")
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint file; a workbench checkpoint names its model, a 3DDFA .pth needs --model")
    add_trust_checkpoint_arg(p)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default cpu)")
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast for the network (CPUs with AVX512-BF16 or AMX, GPUs; on other CPUs "
                        "PyTorch emulates it, several times slower, and a warning says so)")
    p.add_argument("--backend", choices=list(BACKENDS), default=default_backend,
                   help="run the networks (regressor; in reconstruct also the FaceBoxes detector) in PyTorch or in "
                        "ONNX Runtime (CPU, fp32; exported once into the asset cache); auto: ONNX Runtime on the CPU "
                        f"without --bf16, else PyTorch (default {default_backend}){backend_note}")


def resolve_backend(backend: str, device: str, bf16: bool = False) -> str:
    """``auto`` -> ``onnxruntime`` for fp32 on a CPU, else ``torch`` (:func:`mfirrn.inference.onnx.resolve_backend`)."""
    from mfirrn.inference.onnx import resolve_backend as resolve

    return resolve(backend, device, bf16)


def resolve_device(name: str) -> str:
    import torch

    from mfirrn.io.options import check_device

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return check_device(name, "--device")  # InputError (a ValueError) names the option and the fix


def model_from_args(args: argparse.Namespace, default_model: str | None) -> nn.Module:
    """Build the model named by ``--model``/``--checkpoint``; raises ValueError/KeyError with a clear message."""
    from mfirrn import models

    device = resolve_device(args.device)
    requested = getattr(args, "backend", "torch")
    backend = resolve_backend(requested, device, getattr(args, "bf16", False))
    if backend == "onnxruntime" and (device != "cpu" or getattr(args, "bf16", False)):
        raise ValueError("--backend onnxruntime runs fp32 on the CPU; drop --device/--bf16 or use --backend torch")
    if args.checkpoint:
        model = models.load_checkpoint(args.checkpoint, model=args.model, device=device,
                                       trust_checkpoint=getattr(args, "trust_checkpoint", False))
    else:
        name = args.model or default_model
        if name is None:
            raise ValueError("give --model NAME or --checkpoint PATH (see `mfirrn models`)")
        if name in models.available() and name not in models.available(pretrained=True):
            raise ValueError(f"model {name} has no pretrained weights; train it (`mfirrn train`) and pass "
                             f"--checkpoint PATH, or pick one of {', '.join(models.available(pretrained=True))}")
        model = models.create(name, pretrained=True, device=device)
    if backend == "onnxruntime":
        from mfirrn.inference.onnx import ExportError, model_for_backend

        try:  # auto: a model ONNX cannot take stays in PyTorch (same results, slower)
            model = model_for_backend(model, requested, threads=getattr(args, "threads", None) or None)
        except ExportError as e:
            raise ValueError(str(e)) from None
    return model


def prefetch(rec: "Reconstructor", outputs: Sequence[str], mesh: str, *, detect: bool) -> None:
    """Build and fetch, before any input is read, what the run would otherwise build at its first image: the
    detector (``detect``: the faces are not given), every detector of a ``--detector`` chain, the verifier's networks
    and what the requested ``outputs`` need for ``mesh`` (:func:`mfirrn.cli.outputs.prepare_outputs`). A bad detector
    name, missing weights, a missing asset or package raise here (``ValueError``, ``AssetError``, ``ImportError``:
    one line, with the fix) instead of failing every image, or the run half-way."""
    from mfirrn.cli.outputs import prepare_outputs

    if detect:
        rec.detector  # a chain's detectors are all built (mfirrn.detect.registry.create_detector)
    if rec.verify:
        rec.verifier.prepare()
    prepare_outputs(outputs, mesh)


def warn_bf16(args: argparse.Namespace) -> None:
    """One ``warning:`` line when ``--bf16`` would run emulated on this CPU
    (:func:`mfirrn.io.machine.bf16_emulated_note`): said once the command's checks have passed and its work starts."""
    if not getattr(args, "bf16", False) or resolve_device(getattr(args, "device", "cpu")).split(":")[0] != "cpu":
        return
    from mfirrn.io.machine import bf16_emulated_note

    if note := bf16_emulated_note():
        print(f"warning: --bf16: {note}; drop --bf16 (the default is faster here)", file=sys.stderr)


def reconstructor_from_args(args: argparse.Namespace, *, dense: bool) -> "Reconstructor":
    """The :class:`~mfirrn.inference.pipeline.Reconstructor` that ``mfirrn reconstruct`` options ask for (model or
    checkpoint, detector, refinement, mesh, device, bf16, backend, threads), photos and videos alike."""
    from mfirrn import models
    from mfirrn.detect.registry import names_faceboxes
    from mfirrn.inference.pipeline import Reconstructor
    from mfirrn.io.defaults import DETECTOR_RECHECK
    from mfirrn.io.options import detector_size

    faceboxes = names_faceboxes(args.detector)
    threshold = getattr(args, "detector_threshold", None)
    if threshold is not None and not faceboxes:
        raise ValueError(f"--detector-threshold sets FaceBoxes' score threshold; --detector {args.detector} has "
                         f"none (name faceboxes in --detector, or drop --detector-threshold)")
    size = getattr(args, "detector_size", None)
    if size is not None and not faceboxes:
        raise ValueError(f"--detector-size sets FaceBoxes' input size; --detector {args.detector} sizes its own "
                         f"(name faceboxes in --detector, or drop --detector-size)")
    tint = bool(getattr(args, "detector_tint_grey", False))
    if tint and not faceboxes:
        raise ValueError(f"--detector-tint-grey tints grey photos for FaceBoxes; --detector {args.detector} sees them "
                         f"as they are (name faceboxes in --detector, or drop --detector-tint-grey)")
    min_size = getattr(args, "detector_min_size", 0) or 0
    if min_size and not faceboxes:
        raise ValueError(f"--detector-min-size upscales small photos for FaceBoxes; --detector {args.detector} sizes "
                         f"its own (name faceboxes in --detector, or drop --detector-min-size)")
    recheck = bool(getattr(args, "detector_recheck", DETECTOR_RECHECK))
    larger = bool(getattr(args, "detector_larger_look", False))
    if larger and not (faceboxes and recheck):
        raise ValueError("--detector-larger-look is one of FaceBoxes' second looks; name faceboxes in --detector and "
                         "drop --no-detector-recheck, or drop --detector-larger-look")
    model = model_from_args(args, default_model=models.DEFAULT_MODEL)
    device = resolve_device(args.device)
    return Reconstructor(model, detector=args.detector, refine=args.refine, mesh=args.mesh, dense=dense,
                         device=device, bf16=args.bf16, backend=args.backend, threads=args.threads or None,
                         min_confidence=getattr(args, "min_confidence", None),
                         verifier=getattr(args, "verifier", VERIFIER_NAMES[0]),
                         min_face_size=getattr(args, "min_face_size", 0.0),
                         looking_down_confidence=getattr(args, "looking_down_confidence", LOOKING_DOWN_CONFIDENCE),
                         detector_threshold=threshold,
                         detector_size=None if size is None else detector_size(size, "--detector-size"),
                         detector_tint_grey=tint, detector_min_size=min_size, detector_recheck=recheck,
                         turn_upside_down=bool(getattr(args, "turn_upside_down", False)),
                         turned_faces=bool(getattr(args, "turned_faces", False)), larger_look=larger,
                         crop_padding=getattr(args, "crop_padding", DEFAULT_CROP_PADDING))
