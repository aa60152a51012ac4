"""``mfirrn export-onnx``: a regressor as an ONNX file (:mod:`mfirrn.inference.onnx`)."""

from __future__ import annotations

import argparse
import sys

from mfirrn.cli.args import add_trust_checkpoint_arg


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export-onnx",  # its one-line help: mfirrn.cli.COMMANDS
        description="Write a regressor as an ONNX file: input `crops` (B, 3, 120, 120) normalised BGR crops, "
                    "output `params_norm` (B, 62) normalised 3DMM params (MFIRRN: its fused output), batch size "
                    "dynamic. The model's param stats, pixel convention and architecture go into the file's "
                    "metadata (the outputs mean nothing without them). Needs the onnx package; "
                    "`--backend onnxruntime` of reconstruct and benchmark runs such files.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="registered model name (pretrained weights, or untrained with --untrained)")
    src.add_argument("--checkpoint", help="checkpoint file written by `mfirrn train` (or foreign with --arch)")
    p.add_argument("--arch", help="architecture of a foreign checkpoint that does not name it")
    add_trust_checkpoint_arg(p)
    p.add_argument("--untrained", action="store_true", help="export --model with random weights (for timing)")
    p.add_argument("-o", "--output", required=True, help="output .onnx file")
    p.add_argument("--opset", type=int, default=17, metavar="N",
                   help="ONNX opset version to write: 17 (default) or newer, up to what the installed torch exports")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mfirrn import models
    from mfirrn.inference.onnx import ExportError, export_onnx
    from mfirrn.io.assets import AssetError

    try:
        if args.checkpoint:
            model = models.load_checkpoint(args.checkpoint, model=args.arch, trust_checkpoint=args.trust_checkpoint)
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

