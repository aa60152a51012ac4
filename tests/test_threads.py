"""The threading policy (mfirrn.io.threads): where the thread count comes from, and what the pools do with it."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from mfirrn.io import threads as T


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A fake process: CPU affinity, OMP_NUM_THREADS and cgroup files under ``tmp_path`` that a test sets."""
    state = {"affinity": set(range(8))}
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: state["affinity"], raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    T._cgroup_limit_cached.cache_clear()
    root, proc = tmp_path / "cgroup", tmp_path / "proc-self-cgroup"
    root.mkdir()
    proc.write_text("0::/\n")
    monkeypatch.setattr(T, "_cgroup_limit_cached", lambda: T.cgroup_cpu_limit(root, proc))
    state.update(root=root, proc=proc)
    return state


def test_explicit_count_beats_the_environment_and_the_machine(machine, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert T.resolve_threads(5) == 5
    assert T.resolve_threads(None) == 3 and T.resolve_threads(0) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2,1")  # nested levels: the outer one counts
    assert T.resolve_threads() == 2
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="whole number >= 0"):
            T.resolve_threads(bad)


def test_without_a_count_the_affinity_decides(machine, monkeypatch):
    assert T.resolve_threads() == 8
    machine["affinity"] = {2, 5}  # taskset -c 2,5
    assert T.resolve_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")  # not a count: ignored
    assert T.resolve_threads() == 2


def test_cgroup_v2_quota_caps_the_affinity_rounded_up(machine):
    (machine["root"] / "cpu.max").write_text("150000 100000\n")  # docker --cpus 1.5
    assert T.cgroup_cpu_limit(machine["root"], machine["proc"]) == 1.5
    assert T.resolve_threads() == 2
    (machine["root"] / "cpu.max").write_text("max 100000\n")
    assert T.cgroup_cpu_limit(machine["root"], machine["proc"]) is None
    assert T.resolve_threads() == 8


def test_cgroup_v2_quota_of_the_process_own_group(machine):
    group = machine["root"] / "user.slice" / "job"
    group.mkdir(parents=True)
    (group / "cpu.max").write_text("300000 100000\n")
    machine["proc"].write_text("0::/user.slice/job\n")
    assert T.resolve_threads() == 3


def test_cgroup_v1_quota(machine):
    cpu = machine["root"] / "cpu,cpuacct"
    cpu.mkdir()
    (cpu / "cpu.cfs_quota_us").write_text("50000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    assert T.cgroup_cpu_limit(machine["root"], machine["proc"]) == 0.5
    assert T.resolve_threads() == 1  # half a core still runs one thread
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")  # no quota
    assert T.resolve_threads() == 8


def test_unreadable_cgroup_files_mean_no_quota(machine):
    (machine["root"] / "cpu.max").write_text("garbage\n")
    assert T.cgroup_cpu_limit(machine["root"], machine["proc"]) is None
    assert T.cgroup_cpu_limit(machine["root"] / "absent", machine["proc"].with_name("absent")) is None


def test_workers_split_the_budget(machine):
    assert T.worker_threads(2) == 4 and T.worker_threads(3) == 2 and T.worker_threads(16) == 1
    assert T.worker_threads(2, threads=2) == 1
    with pytest.raises(ValueError):
        T.worker_threads(0)


def test_idle_cores_counts_other_runnable_tasks(tmp_path):
    f = tmp_path / "loadavg"
    f.write_text("0.50 0.40 0.30 1/300 99\n")  # only the caller runs
    assert T.idle_cores(2, f, online=2) == 2
    f.write_text("2.00 2.00 2.00 3/300 99\n")  # two burners beside the caller on two cores
    assert T.idle_cores(2, f, online=2) == 1 and T.idle_cores(4, f, online=4) == 2
    f.write_text("40.0 40.0 40.0 41/900 99\n")  # a container with 4 of a busy host's 64 CPUs: its share of 40
    assert T.idle_cores(4, f, online=64) == 1 and T.idle_cores(16, f, online=64) == 6
    assert T.idle_cores(3, tmp_path / "absent") == 3


def test_the_openmp_wait_policy_is_set_only_where_the_user_set_none():
    env: dict[str, str] = {}
    T.passive_openmp(env)
    assert env == T.OPENMP_ENV
    for user in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "5"}, {"KMP_BLOCKTIME": "200"}):
        env = dict(user)
        T.passive_openmp(env)
        assert env == user


def test_apply_threads_sets_torch_opencv_and_the_package_default(machine):
    import cv2

    before = torch.get_num_threads(), cv2.getNumThreads(), T._applied
    try:
        assert T.apply_threads(1) == 1
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1 and T.current_threads() == 1
        machine["affinity"] = {0, 1, 2}
        assert T.apply_threads() == 1  # None keeps the budget applied before
        assert T.apply_threads(0) == 3 and torch.get_num_threads() == 3  # 0 decides from the machine again
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])
        T._applied = before[2]


class _Tiny(nn.Module):
    """(B, 3, 120, 120) -> (B, 62), exportable."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 62)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


def _options(session):
    opts = session.get_session_options()
    return (opts.intra_op_num_threads, opts.inter_op_num_threads,
            opts.get_session_config_entry("session.intra_op.allow_spinning"))


def test_onnx_runtime_sessions_of_the_package_do_not_spin(monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from mfirrn.inference.onnx import OnnxRuntimeModel

    monkeypatch.setattr(T, "_applied", 2)  # the process budget, as apply_threads(2) leaves it
    model = _Tiny().eval()
    rt = OnnxRuntimeModel.from_model(model, cache=False)
    assert _options(rt.session) == (2, 1, "0")
    rt = OnnxRuntimeModel.from_model(model, num_threads=1, cache=False)
    assert _options(rt.session) == (1, 1, "0")
    x = torch.rand(2, 3, 120, 120)
    with torch.no_grad():
        assert torch.allclose(rt(x), model(x), atol=1e-5)


def test_reconstructor_runs_onnx_runtime_by_default_on_a_cpu(mb05):
    pytest.importorskip("onnxruntime")
    from mfirrn.inference.pipeline import Reconstructor

    before = torch.get_num_threads(), T._applied
    try:
        rec = Reconstructor(mb05, threads=1)
        assert rec.backend == "onnxruntime" and rec.detector_backend == "onnxruntime" and rec.threads == 1
        assert _options(rec.model.session) == (1, 1, "0")
        assert _options(rec.detector._session) == (1, 1, "0")
        assert Reconstructor(mb05, backend="torch", threads=1).backend == "torch"
    finally:
        torch.set_num_threads(before[0])
        T._applied = before[1]


@pytest.mark.parametrize("flags, warned", [({"avx2"}, True), ({"avx2", "avx512f", "avx512_bf16"}, False),
                                           ({"avx2", "amx_tile", "amx_bf16"}, False), (set(), False)])
def test_bf16_on_a_cpu_without_bf16_instructions_is_a_warning_line(flags, warned, monkeypatch, tmp_path, capsys):
    """``--bf16`` where the CPU would emulate it (about 8x slower than the default on an AVX2-only EPYC) is run,
    with one line that says so and names the fix; with AVX512-BF16 or AMX, or flags unknown, nothing is said."""
    from mfirrn.cli import main
    from mfirrn.io import machine

    monkeypatch.setattr(machine, "cpu_info", lambda *a: machine.CpuInfo("Test CPU", frozenset(flags)))
    missing = tmp_path / "missing.jpg"
    assert main(["reconstruct", str(missing), "--bf16", "-o", str(tmp_path / "out")]) == 2  # fails after the checks
    err = capsys.readouterr().err.splitlines()
    lines = [e for e in err if e.startswith("warning: --bf16")]
    assert lines == (["warning: --bf16: this CPU (Test CPU) has no AVX512-BF16 or AMX, so bf16 runs emulated and "
                      "several times slower than fp32; drop --bf16 (the default is faster here)"] if warned else [])
    assert main(["reconstruct", str(missing), "--bf16", "--device", "cuda", "-o", str(tmp_path / "o2")]) != 0
    assert not [e for e in capsys.readouterr().err.splitlines() if e.startswith("warning: --bf16")]
