"""The ``mfirrn`` command line. Each sub-command lives in a module with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

# Modules defining sub-commands; each has ``register(subparsers)`` that adds a parser whose
# ``func(args) -> int`` default runs the command.
COMMAND_MODULES: tuple[str, ...] = (
    "mfirrn.commands.assets_cmd",
    "mfirrn.commands.models_cmd",
    "mfirrn.commands.reconstruct_cmd",
    "mfirrn.commands.benchmark_cmd",
    "mfirrn.commands.data_cmd",
    "mfirrn.train.cli",
    "mfirrn.export",
)


def build_parser() -> argparse.ArgumentParser:
    from mfirrn import __version__

    parser = argparse.ArgumentParser(prog="mfirrn", description="MFIRRN workbench: 3D dense face alignment")
    parser.add_argument("--version", action="version", version=f"mfirrn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("mfirrn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
