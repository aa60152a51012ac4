"""Freed memory kept in the heap while training on the CPU (mfirrn.io.heap): fewer page faults, then undone."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
from test_train import _cfg

from mfirrn.data import make_synthetic_dataset
from mfirrn.io import heap
from mfirrn.train import trainer

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")

# Allocates and frees 64 MB buffers (above glibc's largest mmap threshold, 32 MB), and counts the page faults
# of the repeats: before, while and after the setting. Run in a child process, so that the test process keeps
# its allocator as it was.
_SCRIPT = """
import resource, sys
import numpy as np
from mfirrn.io.heap import keep_freed_memory, restore_heap_defaults

def faults_of_repeats():
    a = np.ones(64 << 20, np.uint8); del a  # the first touch of a block is always paid
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        a = np.ones(64 << 20, np.uint8); del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0

before = faults_of_repeats()
applied = keep_freed_memory()
kept = faults_of_repeats()
restored = restore_heap_defaults()
after = faults_of_repeats()
print(applied, restored, before, kept, after)
"""


def _run(env: dict) -> list[str]:
    res = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout.split()


@glibc
def test_kept_memory_is_reused_without_page_faults_and_restore_gives_it_back():
    env = {k: v for k, v in os.environ.items() if not heap.user_tuned({k: v})}
    applied, restored, before, kept, after = _run(env)
    assert (applied, restored) == ("True", "True")
    before, kept, after = int(before), int(kept), int(after)
    assert before >= 4 * 16, before  # each repeat maps fresh pages (>= 16 faults per 64 MB, even with 2 MB pages)
    assert kept <= before // 10, (before, kept)
    assert after >= before // 2, (before, after)  # freed blocks go back to the system again


@glibc
def test_users_allocator_settings_are_left_alone():
    env = dict(os.environ, MALLOC_MMAP_MAX_="65536")
    applied, restored, *_ = _run(env)
    assert (applied, restored) == ("False", "False")
    for setting in ({"MALLOC_TRIM_THRESHOLD_": "1"}, {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"},
                    {"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}):
        assert heap.user_tuned(setting) and not heap.keep_freed_memory(environ=setting)
    assert not heap.user_tuned({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2", "LD_PRELOAD": ""})


def test_trainer_keeps_freed_memory_on_the_cpu_and_restores_it(tmp_path, monkeypatch):
    """The trainer applies the setting for the run on the CPU and undoes it when it returns."""
    calls = []
    monkeypatch.setattr(trainer, "keep_freed_memory", lambda: calls.append("keep") or True)
    monkeypatch.setattr(trainer, "restore_heap_defaults", lambda: calls.append("restore") or True)
    root = make_synthetic_dataset(tmp_path / "cp", 12, seed=0)["root"]
    trainer.train(_cfg(root, tmp_path / "run", epochs=1))
    assert calls == ["keep", "restore"]
