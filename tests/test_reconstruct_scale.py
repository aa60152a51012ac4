"""``mfirrn reconstruct`` on several workers: local processes and a local Ray cluster give the bytes of one process,
and a run killed with SIGKILL and resumed ends with the bytes of an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mfirrn.cli import main
from mfirrn.inference.runrecord import JOURNAL, RECORD_FILES


def outputs_of(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in RECORD_FILES}


def table_rows(path: Path):
    import pyarrow.parquet as pq

    return pq.read_table(path).replace_schema_metadata(None)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, sample_photo) -> Path:
    """Eight photos in two subfolders: the sample photo and its mirror image."""
    import cv2

    root = tmp_path_factory.mktemp("scale") / "photos"
    img = cv2.imread(str(sample_photo))
    for i in range(8):
        p = root / f"s{i % 2}" / f"p{i}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(p), img if i % 2 else img[:, ::-1])
    return root


@pytest.fixture(scope="module")
def single(folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single") / "out"
    assert main(["reconstruct", str(folder), "-o", str(out), "--outputs", "json,landmarks,table",
                 "--workers", "1"]) == 0
    return out


@pytest.mark.slow
def test_two_worker_processes_write_the_bytes_of_one(folder, single, tmp_path):
    out = tmp_path / "out"
    assert main(["reconstruct", str(folder), "-o", str(out), "--outputs", "json,landmarks,table",
                 "--workers", "2"]) == 0
    assert outputs_of(out) == outputs_of(single)


@pytest.mark.slow
def test_ray_table_equals_the_single_process_table(folder, single, tmp_path):
    pytest.importorskip("ray.data", reason="--engine ray needs Ray Data: pip install 'mfirrn[ray]'")
    out = tmp_path / "out"
    assert main(["reconstruct", str(folder), "-o", str(out), "--outputs", "json,landmarks,table", "--engine", "ray",
                 "--workers", "2"]) == 0
    assert table_rows(out / "faces.parquet").equals(table_rows(single / "faces.parquet"))
    assert outputs_of(out) == outputs_of(single)  # the metadata names the same run: the same bytes


def _run_and_kill(args: list[str], out: Path, after_lines: int, timeout: float = 300) -> None:
    """Start ``mfirrn reconstruct`` and SIGKILL it once its journal has ``after_lines`` lines."""
    p = subprocess.Popen([sys.executable, "-m", "mfirrn.cli", *args], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < timeout:
            journal = out / JOURNAL
            if journal.is_file() and journal.read_bytes().count(b"\n") >= after_lines:
                break
            if p.poll() is not None:
                return
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait()


@pytest.mark.slow
def test_a_run_killed_and_resumed_ends_with_the_bytes_of_an_uninterrupted_one(folder, single, tmp_path):
    out = tmp_path / "out"
    args = ["reconstruct", str(folder), "-o", str(out), "--outputs", "json,landmarks", "--workers", "1", "--resume"]
    for after in (2, 5):
        _run_and_kill(args, out, after)
    lines = [json.loads(s) for s in (out / JOURNAL).read_text().splitlines()]
    assert 2 <= len({d["input"] for d in lines}) < 8, "the kills came too late to test anything"
    assert main(args) == 0
    assert outputs_of(out) == {k: v for k, v in outputs_of(single).items() if k != "faces.parquet"}
    assert not list(out.rglob(".*"))  # no temporaries, and no lock once the run ended


def test_worker_processes_default_to_the_cpus_this_process_may_use(monkeypatch):
    from argparse import Namespace

    from mfirrn.cli import reconstruct_cmd
    from mfirrn.io import threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    monkeypatch.setattr(threads, "_cgroup_limit_cached", lambda: None)
    assert threads.available_cores() == 3
    auto = Namespace(workers=0, engine="local")
    assert reconstruct_cmd._workers(auto, 1000) == 3
    assert reconstruct_cmd._workers(auto, 10) == 1  # a few photos: not worth starting models in other processes
    assert reconstruct_cmd._workers(Namespace(workers=2, engine="local"), 1) == 1


class _Doubler:
    """A processor for the engine tests: doubles numbers, dies (as from the OOM killer) on 13."""

    def __call__(self, item: int) -> int:
        if item == 13:
            os._exit(9)
        return 2 * item


class _DoublerFactory:
    def __call__(self) -> _Doubler:
        return _Doubler()

    def crashed(self, item: int) -> str:
        return f"crashed on {item}"


@pytest.mark.slow
def test_worker_processes_survive_a_worker_that_dies():
    from mfirrn.inference.engine import run_processes

    results: list = []
    run_processes([1, 2, 13, 4, 5, 6], _DoublerFactory(), results.append, workers=2)
    assert sorted(r for r in results if isinstance(r, int)) == [2, 4, 8, 10, 12]
    assert [r for r in results if isinstance(r, str)] == ["crashed on 13"]
