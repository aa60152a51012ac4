"""The ``mfirrn`` command line. Each sub-command lives in a module with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

#: The sub-commands: name -> (module, one-line help). Each module has ``register(subparsers)`` that adds the
#: command's parser, whose ``func(args) -> int`` default runs it. A module is imported, and its parser built,
#: only when its command is used: ``mfirrn --help`` lists them all from this table without importing PyTorch,
#: OpenCV or NumPy (a test checks it).
COMMANDS: dict[str, tuple[str, str]] = {
    "assets": ("mfirrn.cli.assets_cmd", "list, fetch and verify third-party assets (BFM, weights, samples)"),
    "models": ("mfirrn.cli.models_cmd", "list registered models (stats, pixel convention, pretrained weights)"),
    "reconstruct": ("mfirrn.cli.reconstruct_cmd", "reconstruct faces in images or videos (landmarks, pose, dense "
                                                   "mesh)"),
    "benchmark": ("mfirrn.cli.benchmark_cmd", "AFLW2000-3D NME by yaw bin (and AFLW 21-point); writes summary.json "
                                               "and per_image.csv"),
    "data": ("mfirrn.cli.data_cmd", "fetch benchmark and training data; build training data (landmark-fit labels)"),
    "train": ("mfirrn.cli.train_cmd", "train a model (MFIRRN or a 3DDFA baseline) from a YAML config"),
    "export-onnx": ("mfirrn.cli.export_cmd", "export a model to ONNX (dynamic batch, fused output)"),
}
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(m for m, _ in COMMANDS.values()))


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, with lines broken at spaces only: never inside ``--config`` or
    ``aflw-mb05-baseline`` (``textwrap`` breaks after hyphens by default)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        return textwrap.fill(self._whitespace_matcher.sub(" ", text).strip(), width, initial_indent=indent,
                             subsequent_indent=indent, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """Usage errors on one line (``mfirrn benchmark: error: argument --limit: invalid int value: 'x'; see
    mfirrn benchmark --help``), exit status 2; help text broken at spaces only (:class:`_Formatter`); the
    sub-command parsers inherit both."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {_with_suggestion(message)}; see `{self.prog} --help`\n")


def _with_suggestion(message: str) -> str:
    """argparse's ``invalid choice: 'X' (choose from ...)`` with the closest choice named first, for a mistyped
    command or option value.

    >>> _with_suggestion("argument COMMAND: invalid choice: 'reconstrct' (choose from 'assets', 'reconstruct')")
    "argument COMMAND: invalid choice: 'reconstrct' (did you mean 'reconstruct'? choices: 'assets', 'reconstruct')"
    """
    import difflib
    import re

    m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
    if not m:
        return message
    choices = re.findall(r"'([^']*)'", m.group(2))
    close = difflib.get_close_matches(m.group(1), choices, n=1)
    if not close:
        return message
    return message[:m.start(0)] + f"invalid choice: '{m.group(1)}' (did you mean '{close[0]}'? choices: {m.group(2)})"


class _LazyCommands(argparse._SubParsersAction):
    """The sub-commands of :data:`COMMANDS`, listed with their help at once and built on first use (when
    argparse selects one, or by :meth:`build`)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[str, str] = {}

    def add_lazy(self, name: str, module: str, help: str) -> None:
        self._pending[name] = module
        self._name_parser_map[name] = None  # a valid choice until built
        self._choices_actions.append(self._ChoicesPseudoAction(name, (), help))

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:  # type: ignore[override]
        if name in COMMANDS:  # listed by add_lazy already, with the help of the table
            kwargs.pop("help", None)
            if self._name_parser_map.get(name, False) is None:
                del self._name_parser_map[name]
        parser = super().add_parser(name, **kwargs)
        order = {n: i for i, n in enumerate(COMMANDS)}  # keep the table's order (usage, errors, the docs)
        items = sorted(self._name_parser_map.items(), key=lambda kv: order.get(kv[0], len(order)))
        self._name_parser_map.clear()
        self._name_parser_map.update(items)
        return parser

    def build(self, name: str) -> argparse.ArgumentParser:
        """The parser of command ``name``, its module imported and registered first if needed."""
        module = self._pending.pop(name, None)
        if module is not None:
            importlib.import_module(module).register(self)
        return self._name_parser_map[name]

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if values and values[0] in self._pending:
            self.build(values[0])
        super().__call__(parser, namespace, values, option_string)


def build_parser(*, lazy: bool = True) -> argparse.ArgumentParser:
    """The ``mfirrn`` parser. ``lazy`` (what the command line uses): each sub-command's module is imported and
    its parser built when that command is parsed; ``lazy=False`` builds every one now (the docs' CLI
    reference, tests that inspect the parsers)."""
    from mfirrn import __version__

    parser = _Parser(prog="mfirrn", description="MFIRRN workbench: 3D dense face alignment")
    parser.add_argument("--version", action="version", version=f"mfirrn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", action=_LazyCommands)
    for name, (module, help) in COMMANDS.items():
        sub.add_lazy(name, module, help)
    if not lazy:
        for name in COMMANDS:
            sub.build(name)
    return parser


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost (sub-)command parser that ``args`` went through (``mfirrn data fetch``: that of ``fetch``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(args, action.dest, None)
            child = action._name_parser_map.get(name) if name else None
            if isinstance(child, argparse.ArgumentParser):
                return _command_parser(child, args)
    return parser


def _unrecognized(extras: Sequence[str], parser: argparse.ArgumentParser) -> str:
    """``unrecognized arguments: ...``, with the closest option of ``parser`` for each mistyped one.

    >>> p = argparse.ArgumentParser(); _ = p.add_argument("--outputs"); _ = p.add_argument("--workers")
    >>> _unrecognized(["--outptus", "json", "--wrokers"], p)
    'unrecognized arguments: --outptus json --wrokers (did you mean --outputs? --workers?)'
    """
    import difflib

    options = [o for o in parser._option_string_actions if o.startswith("--")]
    close = [m[0] for e in extras if e.startswith("--")
             for m in [difflib.get_close_matches(e.split("=")[0], options, n=1)] if m]
    hint = f" (did you mean {'? '.join(close)}?)" if close else ""
    return f"unrecognized arguments: {' '.join(extras)}{hint}"


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

    parser = build_parser()
    args, extras = parser.parse_known_args(None if argv is None else [str(a) for a in argv])
    if extras:  # as parse_args would, from the command's own parser, with the closest option named
        command = _command_parser(parser, args)
        command.error(_unrecognized(extras, command))
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

