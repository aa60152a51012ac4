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
                                              ("smoothing-clips.tsv", 17), ("hair-photos.tsv", 400)])
def test_benchmark_asset_tables_parse(table, at_least):
    from mfirrn.io.assets import read_asset_table

    rows = read_asset_table(BENCHMARKS / "data" / table)
    paths = [asset.path for asset, _ in rows]
    assert len(rows) >= at_least and len(set(paths)) == len(paths)
    assert all(asset.kind == "github" and asset.size > 0 for asset, _ in rows)


def test_hair_photo_labels_are_boxes_in_two_splits():
    """benchmarks/looking_down.py tunes on the train rows and checks on the val rows: both hold faces and
    non-faces, every label is a box (x0, y0, x1, y1) with x0 < x1 and y0 < y1."""
    import json

    from mfirrn.io.assets import read_asset_table

    counts = {}
    for _, row in read_asset_table(BENCHMARKS / "data" / "hair-photos.tsv"):
        labels = json.loads(row["labels"])
        assert set(labels) <= {"faces", "non_faces"} and labels
        for kind, boxes in labels.items():
            counts[row["split"], kind] = counts.get((row["split"], kind), 0) + len(boxes)
            assert all(len(b) == 4 and b[0] < b[2] and b[1] < b[3] for b in boxes)
    assert set(counts) == {(s, k) for s in ("train", "val") for k in ("faces", "non_faces")}, counts
