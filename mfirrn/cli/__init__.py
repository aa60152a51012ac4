"""The ``mfirrn`` command line. Each sub-command lives in a module with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

# Modules defining sub-commands; each has ``register(subparsers)`` that adds a parser whose
# ``func(args) -> int`` default runs the command.
COMMAND_MODULES: tuple[str, ...] = (
    "mfirrn.cli.assets_cmd",
    "mfirrn.cli.models_cmd",
    "mfirrn.cli.reconstruct_cmd",
    "mfirrn.cli.benchmark_cmd",
    "mfirrn.cli.data_cmd",
    "mfirrn.cli.train_cmd",
    "mfirrn.cli.export_cmd",
)


class _Parser(argparse.ArgumentParser):
    """Usage errors on one line (``mfirrn benchmark: error: argument --limit: invalid int value: 'x'; see
    mfirrn benchmark --help``), exit status 2; the sub-command parsers inherit it."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    from mfirrn import __version__

    parser = _Parser(prog="mfirrn", description="MFIRRN workbench: 3D dense face alignment")
    parser.add_argument("--version", action="version", version=f"mfirrn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _stdout_closed() -> bool:
    """Whether standard output is a pipe whose reader has gone (``| head`` after its lines)."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll(), or stdout is not a file
        return True


def main(argv: Optional[Sequence[str]] = None) -> int:
    from mfirrn.cli.args import check_args
    from mfirrn.io.options import InputError

    args = build_parser().parse_args(None if argv is None else [str(a) for a in argv])
    prog = " ".join(["mfirrn", args.command, *([args.action] if getattr(args, "action", None) else [])])
    try:
        check_args(args)
    except InputError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a reader that went away (`mfirrn assets list | head`) shows here, not at exit
        return code
    except KeyboardInterrupt:
        print("mfirrn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError as exc:
        if not _stdout_closed():  # another pipe broke: an error like any other
            print(f"{prog}: error: {exc.strerror or exc}", file=sys.stderr)
            return 2
        # the reader of our output closed the pipe: stop quietly with SIGPIPE's status, as Unix tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        # The file system refused (disk full, read-only, permissions) where no command-specific check applies;
        # the library's own data errors (FileNotFoundError subclasses) carry their message.
        if exc.errno is None:
            print(f"{prog}: error: {exc}", file=sys.stderr)
        else:
            where = f" {exc.filename}" if exc.filename else ""
            print(f"{prog}: error: cannot access{where} ({exc.strerror}); check the path, its "
                  f"permissions and the free space", file=sys.stderr)
        return 2

