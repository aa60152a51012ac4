"""Every script of benchmarks/ starts: its imports resolve and its options parse (``--help``)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
# *_worker.py are timing workers that another script starts (MediaPipe's in its own environment), not commands
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py")
                 if 'if __name__ == "__main__"' in p.read_text() and not p.stem.endswith("_worker"))


def test_there_are_benchmark_scripts():
    assert len(SCRIPTS) >= 10, [p.name for p in SCRIPTS]


@pytest.mark.slow
def test_every_benchmark_script_starts():
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    procs = {p.name: subprocess.Popen([sys.executable, str(p), "--help"], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env, cwd=BENCHMARKS.parent)
             for p in SCRIPTS}
    failed = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0 or "usage" not in out.lower():
            failed[name] = (err.strip().splitlines() or ["no output"])[-1]
    assert not failed, failed


@pytest.mark.parametrize("table, at_least", [("wild.tsv", 100), ("verifier.tsv", 100), ("large-photos.tsv", 100),
                                              ("smoothing-clips.tsv", 17)])
def test_benchmark_asset_tables_parse(table, at_least):
    from mfirrn.io.assets import read_asset_table

    rows = read_asset_table(BENCHMARKS / "data" / table)
    paths = [asset.path for asset, _ in rows]
    assert len(rows) >= at_least and len(set(paths)) == len(paths)
    assert all(asset.kind == "github" and asset.size > 0 for asset, _ in rows)
