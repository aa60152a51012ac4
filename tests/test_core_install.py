"""The everyday commands run on the core dependencies alone (``pip install mfirrn`` without extras): every package
that only an extra of ``pyproject.toml`` installs is made unimportable in a fresh interpreter, which then runs the
commands. ``mfirrn models`` and ``mfirrn benchmark`` printed a traceback without pandas before it joined the core."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import need_aflw2000

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
# packages that come with an extra's package without being named in it (matplotlib brings pillow)
ALSO_EXTRA = ("PIL",)


def _module(requirement: str) -> str:
    """The import name of a requirement such as ``ray[data]>=2.9`` or ``ai-edge-litert>=2.3``."""
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].strip().lower().replace("-", "_")


def extra_only_modules() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_module(r) for r in project["dependencies"]}
    extras = {_module(r) for reqs in project["optional-dependencies"].values() for r in reqs}
    return sorted((extras - core - {"pytest"}) | set(ALSO_EXTRA))


def run_core_only(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    code = (f"import sys\nfor m in {extra_only_modules()!r}:\n    sys.modules[m] = None\n"
            f"from mfirrn.cli import main\nsys.exit(main({argv!r}))\n")
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)


def test_the_extras_are_what_is_blocked():
    blocked = extra_only_modules()
    assert {"matplotlib", "plotly", "pyarrow", "ray", "trimesh", "ai_edge_litert"} <= set(blocked)
    assert not {"pandas", "torch", "numpy", "onnxruntime", "dlib_bin"} & set(blocked)


@pytest.mark.parametrize("argv", [["models"], ["reconstruct", "-o", "out", "--outputs",
                                           "json,landmarks,dense,render,pose,uv_tex"]])
def test_everyday_commands_run_without_any_extra(argv, tmp_path):
    r = run_core_only(argv, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr


def test_benchmark_runs_without_any_extra(tmp_path):
    need_aflw2000()
    r = run_core_only(["benchmark", "--limit", "20"], tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "NME" in r.stdout


def test_training_runs_without_any_extra(tmp_path):
    from _hostile import tiny_train_config

    from mfirrn.data import make_synthetic_dataset

    syn = make_synthetic_dataset(tmp_path / "syn", 20, seed=0)["root"]
    cfg = tiny_train_config(tmp_path / "t.yaml", syn, tmp_path / "run", **{"model.arch": "3ddfa-mb05", "epochs": 1})
    r = run_core_only(["train", "--config", str(cfg)], tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert (tmp_path / "run" / "last.pt").is_file()
