"""ONNX export of a regressor: (B, 3, 120, 120) normalised BGR crops -> (B, 62) normalised params.

MFIRRN exports its ``fused`` output (evaluation mode: deterministic jigsaw, see
:mod:`mfirrn.models.mfirrn_net`). The batch dimension is dynamic; the param stats and pixel convention
of the model are stored as ONNX metadata (``mfirrn.stats_mean``, ``mfirrn.stats_std`` as JSON lists,
``mfirrn.convention``, ``mfirrn.arch``), because the outputs mean nothing without them.

CLI: ``mfirrn export-onnx --model NAME|--checkpoint PATH -o out.onnx [--opset 17]``.
Needs the ``onnx`` package (and ``onnxruntime`` to verify).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Union

import torch
from torch import nn

from mfirrn.frames import CROP_SIZE

__all__ = ["export_onnx", "FusedOutput", "register", "run", "ExportError"]


class ExportError(RuntimeError):
    """Export cannot proceed; the message says what to install or change."""


class FusedOutput(nn.Module):
    """Wrap a model so it returns a single (B, 62) tensor (``.fused`` for MFIRRN)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y.fused if hasattr(y, "fused") else y


def export_onnx(model: nn.Module, path: Union[str, Path], *, opset: int = 17, batch: int = 2) -> Path:
    """Export ``model`` (carrying ``card``/``stats``, e.g. from :func:`mfirrn.models.create`) to ``path``."""
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install onnx onnxruntime") from None
    if opset < 17:
        raise ExportError(f"opset {opset} is too old; use 17 or newer")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapped = FusedOutput(model).eval().cpu()
    x = torch.zeros(batch, 3, CROP_SIZE, CROP_SIZE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, (x,), str(path), input_names=["crops"], output_names=["params_norm"],
                          dynamic_axes={"crops": {0: "batch"}, "params_norm": {0: "batch"}},
                          opset_version=opset, dynamo=False)
    proto = onnx.load(str(path))
    meta = {"mfirrn.convention": getattr(getattr(model, "card", None), "convention", ""),
            "mfirrn.arch": getattr(getattr(model, "card", None), "name", type(model).__name__)}
    stats = getattr(model, "stats", None)
    if stats is not None:
        meta["mfirrn.stats_mean"] = json.dumps([float(v) for v in stats.mean])
        meta["mfirrn.stats_std"] = json.dumps([float(v) for v in stats.std])
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, str(v)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def register(subparsers) -> None:
    p = subparsers.add_parser("export-onnx", help="export a model to ONNX (dynamic batch, fused output)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="registered model name (pretrained weights, or untrained with --untrained)")
    src.add_argument("--checkpoint", help="checkpoint file written by `mfirrn train` (or foreign with --arch)")
    p.add_argument("--arch", help="architecture of a foreign checkpoint that does not name it")
    p.add_argument("--untrained", action="store_true", help="export --model with random weights (for timing)")
    p.add_argument("-o", "--output", required=True, help="output .onnx file")
    p.add_argument("--opset", type=int, default=17)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mfirrn import models
    from mfirrn.assets import AssetError

    try:
        if args.checkpoint:
            model = models.load_checkpoint(args.checkpoint, model=args.arch)
        else:
            model = models.create(args.model, pretrained=not args.untrained)
        out = export_onnx(model, args.output, opset=args.opset)
    except (models.CheckpointError, ExportError, AssetError) as exc:
        print(f"mfirrn export-onnx: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:
        print(f"mfirrn export-onnx: {exc.args[0]}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0

