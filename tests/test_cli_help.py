"""The command line as a newcomer first meets it: ``mfirrn --help`` without loading PyTorch, OpenCV or NumPy,
every command and argument explained, the model listing aligned, the same default backend where the same
option appears."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import pytest

from mfirrn.cli import COMMANDS, build_parser, main

HEAVY = ("torch", "cv2", "numpy", "scipy", "pandas", "matplotlib", "onnxruntime")


def _subparsers(parser):
    return next(a for a in parser._actions if a.dest in ("command", "action"))


def test_top_level_help_imports_nothing_heavy():
    """What `mfirrn --help` costs: the package, the CLI and every command module, built lazily (a subprocess,
    so the test's own imports do not count)."""
    code = ("import importlib, json, sys\n"
            "import mfirrn.cli as cli\n"
            "cli.build_parser()\n"
            "for m in cli.COMMAND_MODULES + ('mfirrn.cli.video_cmd', 'mfirrn.cli.outputs', 'mfirrn.cli.args'):\n"
            "    importlib.import_module(m)\n"
            "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))\n")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert not set(HEAVY) & set(loaded), f"imported at parser build time: {sorted(set(HEAVY) & set(loaded))}"
    out = subprocess.run([sys.executable, "-m", "mfirrn.cli", "--help"], capture_output=True, text=True, check=True)
    for name, (_, help) in COMMANDS.items():
        assert name in out.stdout and help.split()[0] in out.stdout


@pytest.mark.parametrize("command, shown", [
    (("reconstruct",), ("--detector-threshold", "faceboxes", "3ddfa-v2-mb05")),
    (("benchmark",), ("--output", "medium", "3ddfa-v2-mb05")),
    (("data", "fit-landmarks"), ("--prior-weight", "(default 0.05)", "same-definition")),
    (("data", "build"), ("--shards", "--views")),
    (("train",), ("--config", "--resume")),
])
def test_every_command_shows_its_help_without_pytorch(command, shown):
    """`mfirrn reconstruct --help`, `benchmark --help`, `data ... --help`, `train --help` show every default
    without loading PyTorch."""
    code = ("import json, sys\n"
            "from mfirrn.cli import main\n"
            "try:\n"
            f"    main([*{command!r}, '--help'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out.splitlines()[-1])
    assert "torch" not in loaded and "onnxruntime" not in loaded
    assert all(s in out for s in shown), shown


def test_lazy_and_full_parsers_agree(capsys):
    full = _subparsers(build_parser(lazy=False))
    assert list(full.choices) == list(COMMANDS) and all(p is not None for p in full.choices.values())
    assert [a.dest for a in full._choices_actions] == list(COMMANDS)  # each command listed once
    lazy = build_parser()
    args = lazy.parse_args(["export-onnx", "--model", "3ddfa-v2-mb05", "-o", "x.onnx"])
    assert args.command == "export-onnx" and args.opset == 17 and callable(args.func)
    assert list(_subparsers(lazy).choices) == list(COMMANDS)  # building one keeps the order
    with pytest.raises(SystemExit):
        build_parser().parse_args(["recontruct"])
    err = capsys.readouterr().err
    assert "invalid choice: 'recontruct'" in err and "'reconstruct'" in err and err.count("\n") == 1



@pytest.mark.parametrize("argv, line", [
    (["reconstrct"], "mfirrn: error: argument COMMAND: invalid choice: 'reconstrct' (did you mean 'reconstruct'? "
                     "choices: 'assets', 'models', 'reconstruct', 'benchmark', 'data', 'train', 'export-onnx'); "
                     "see `mfirrn --help`"),
    (["reconstruct", "--refine", "robus"], "mfirrn reconstruct: error: argument --refine: invalid choice: 'robus' "
                                           "(did you mean 'robust'? choices: 'robust', 'always', 'off'); see "
                                           "`mfirrn reconstruct --help`"),
    (["benchmark", "--limt", "3"], "mfirrn benchmark: error: unrecognized arguments: --limt 3 (did you mean "
                                   "--limit?); see `mfirrn benchmark --help`"),
    (["data", "fetch", "aflw", "--with-orignals"], "mfirrn data fetch: error: unrecognized arguments: --with-orignals "
                                                   "(did you mean --with-originals?); see `mfirrn data fetch --help`"),
    (["models", "--foo"], "mfirrn models: error: unrecognized arguments: --foo; see `mfirrn models --help`"),
])
def test_a_mistyped_command_or_option_names_the_closest(argv, line, capsys):
    from mfirrn.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and capsys.readouterr().err.splitlines() == [line]

def _help_of(*path: str) -> str:
    parser = build_parser(lazy=False)
    for name in path:
        parser = _subparsers(parser).choices[name]
    return parser.format_help()


def test_every_argument_has_help():
    def walk(parser, path):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    yield from walk(sub, f"{path} {name}")
            elif a.dest != "help":
                yield path, a

    missing = [f"{path} {a.option_strings or a.dest}" for path, a in walk(build_parser(lazy=False), "mfirrn")
               if not a.help and a.dest != "version"]
    assert not missing, f"arguments without help: {missing}"
    onnx = _help_of("export-onnx")
    assert "ONNX" in onnx.split("options:")[0].split("usage:")[1] and "--opset N" in onnx and "opset version" in onnx
    assert "`mfirrn assets list` shows" in _help_of("assets", "fetch") + _help_of("assets", "verify")


def test_benchmark_and_reconstruct_share_the_default_backend():
    for cmd in ("reconstruct", "benchmark"):
        parser = _subparsers(build_parser(lazy=False)).choices[cmd]
        backend = next(a for a in parser._actions if a.dest == "backend")
        assert backend.default == "auto", cmd
        assert "(default auto)" in backend.help
    assert "--output HEAD and --compare run in PyTorch" in backend.help  # benchmark: what stays in PyTorch


def test_benchmark_one_head_runs_in_pytorch(capsys):
    assert main(["benchmark", "--output", "coarse", "--backend", "onnxruntime"]) == 2
    assert "drop --backend onnxruntime" in capsys.readouterr().err
    assert main(["benchmark", "--compare", "3ddfa-v2-mb05", "--backend", "onnxruntime"]) == 2
    assert "--compare runs every model in PyTorch" in capsys.readouterr().err


def test_models_listing_columns_line_up(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "110")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    table = out.split("\n\n")[0].splitlines()
    header = table[0]
    starts = [header.index(c) for c in ("conv", "stats", "weights", "description")]
    rows = [line for line in table[1:] if not line.startswith(" ")]
    assert len(rows) >= 10 and any(len(r.split()[0]) > 20 for r in rows)  # names longer than the old column
    for row in rows:
        cells = [m.start() for m in re.finditer(r"(?<=  )\S", row)][:4]
        assert cells == starts, row
    assert max(len(line) for line in table) <= 110


def test_help_never_breaks_a_word_at_its_hyphen():
    """`--config` or `aflw-mb05-baseline` stay whole in every help text (argparse's textwrap would split them)."""
    def walk(parser):
        yield parser
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sub in a.choices.values():
                    yield from walk(sub)

    broken = []
    for parser in walk(build_parser(lazy=False)):
        for line in parser.format_help().splitlines():
            if re.search(r"[\w`]-$", line.rstrip()) or re.search(r"(^|\s)-$", line.rstrip()):
                broken.append(f"{parser.prog}: {line.strip()}")
    assert not broken, broken
