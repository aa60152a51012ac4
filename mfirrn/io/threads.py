"""One CPU threading policy for PyTorch, ONNX Runtime, OpenCV and the OpenMP renderer.

Every compute library in a process keeps its own thread pool. Left to themselves, each sizes its pool to
every core of the machine and keeps its threads spinning between calls, so on a shared machine (or
beside another pool in the same process) they fight: on 2 cores, ONNX Runtime's and PyTorch's spinning
pools made a photo 12x slower. The policy here is one thread budget for the process and no spinning:

- **How many threads** (:func:`resolve_threads`): an explicit count (``--threads N``,
  ``Reconstructor(threads=N)``), else ``OMP_NUM_THREADS``, else the cores this process may use: its CPU
  affinity (``os.sched_getaffinity``, set by ``taskset``, ``docker --cpuset-cpus``, Slurm) capped by its
  cgroup CPU quota (``cpu.max`` of cgroup v2, ``cpu.cfs_quota_us`` of v1: ``docker --cpus``, Kubernetes
  limits), rounded up (:func:`available_cores`).
- **Where it goes** (:func:`apply_threads`): PyTorch's intra-op pool (``torch.set_num_threads``; the
  inter-op pool is set to one thread once), OpenCV (``cv2.setNumThreads``), the renderer's default
  (:func:`current_threads`), and the ONNX Runtime sessions the package opens afterwards
  (:func:`ort_session_options`: that many intra-op threads, one inter-op thread, sequential execution and
  ``session.intra_op.allow_spinning = 0``).
- **No spinning pools**: :func:`passive_openmp` shortens OpenMP's spin-wait (``GOMP_SPINCOUNT=1000``
  for GNU OpenMP, which PyTorch's wheels and the renderer share; ``KMP_BLOCKTIME=0`` for Intel's) unless
  the user set a wait policy, so OpenMP threads go to sleep about 0.1 ms after a parallel region instead
  of spinning through the next ~7 ms (GNU's default of 300,000 spins) on cores that the other pools and
  processes need; the short spin still catches the barriers inside one call. OpenMP reads these once,
  when it is loaded, so ``import mfirrn`` sets them before it imports PyTorch; where PyTorch was imported
  first, set them (or ``OMP_WAIT_POLICY=PASSIVE``) before starting Python.

The renderer also looks at the machine's load at each call (:func:`idle_cores`): a parallel region on a
machine where other processes hold the cores waits for its descheduled threads, so it takes only the
cores that are free right now (one when the machine is busy).

>>> resolve_threads(3)
3
>>> resolve_threads(None, environ={"OMP_NUM_THREADS": "2"})
2
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Mapping, MutableMapping, Optional, Union

__all__ = ["resolve_threads", "available_cores", "cgroup_cpu_limit", "apply_threads", "current_threads",
           "worker_threads", "ort_session_options", "passive_openmp", "idle_cores", "OPENMP_ENV"]

#: Environment set by :func:`passive_openmp` where the user set no wait policy: OpenMP threads spin briefly, then sleep.
OPENMP_ENV: dict[str, str] = {"GOMP_SPINCOUNT": "1000", "KMP_BLOCKTIME": "0"}
_WAIT_POLICY_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")

_applied: Optional[int] = None  # the budget of the last apply_threads call in this process
_interop_set = False


def passive_openmp(environ: Optional[MutableMapping[str, str]] = None) -> None:
    """Set :data:`OPENMP_ENV` in ``environ`` (default ``os.environ``) unless it sets ``OMP_WAIT_POLICY``,
    ``GOMP_SPINCOUNT`` or ``KMP_BLOCKTIME`` already (the user's choice stands).

    Takes effect for an OpenMP runtime loaded afterwards (``import torch``, the renderer).

    >>> env = {}; passive_openmp(env); env["GOMP_SPINCOUNT"]
    '1000'
    >>> env = {"OMP_WAIT_POLICY": "ACTIVE"}; passive_openmp(env); sorted(env)
    ['OMP_WAIT_POLICY']
    """
    env = os.environ if environ is None else environ
    if not any(key in env for key in _WAIT_POLICY_VARS):
        env.update(OPENMP_ENV)


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text()
    except OSError:
        return None


def cgroup_cpu_limit(root: Union[str, Path] = "/sys/fs/cgroup",
                     proc_cgroup: Union[str, Path] = "/proc/self/cgroup") -> Optional[float]:
    """The CPU quota of this process's cgroup in cores (``1.5`` = 150 ms of CPU per 100 ms), ``None`` if unlimited.

    cgroup v2: ``<root>/<group>/cpu.max`` (``"max 100000"`` or ``"QUOTA PERIOD"``); cgroup v1:
    ``<root>/cpu[,cpuacct]/<group>/cpu.cfs_quota_us`` over ``cpu.cfs_period_us`` (quota ``-1``: none).
    ``<group>`` is read from ``proc_cgroup``; the root of the hierarchy is tried too (inside a container
    the process's own group is mounted there). The smallest quota found wins.
    """
    root = Path(root)
    v2_group, v1_groups = "", {}
    for line in (_read(Path(proc_cgroup)) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2_group = parts[2].strip("/")
        for controller in parts[1].split(","):
            v1_groups[controller] = parts[2].strip("/")
    limits = []
    for folder in {root / v2_group, root}:
        text = _read(folder / "cpu.max")
        if text and len(text.split()) == 2 and text.split()[0] != "max":
            quota, period = text.split()
            try:
                limits.append(float(quota) / float(period))
            except (ValueError, ZeroDivisionError):
                pass
    for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        for folder in {root / name / v1_groups.get("cpu", ""), root / name}:
            quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
            try:
                q, p = float(quota or "-1"), float(period or "0")
            except ValueError:
                continue
            if q > 0 and p > 0:
                limits.append(q / p)
    return min(limits) if limits else None


@lru_cache(maxsize=1)
def _cgroup_limit_cached() -> Optional[float]:
    return cgroup_cpu_limit()


def available_cores(affinity: Optional[int] = None, quota: Optional[float] = -1.0) -> int:
    """The cores this process may use: its CPU affinity capped by its cgroup quota (rounded up), at least 1.

    ``affinity`` (a CPU count) and ``quota`` (cores, ``None`` = unlimited) default to this process's
    (``os.sched_getaffinity``, else ``os.cpu_count``; :func:`cgroup_cpu_limit`, read once).

    >>> available_cores(affinity=8, quota=2.5), available_cores(affinity=2, quota=None)
    (3, 2)
    """
    if affinity is None:
        try:
            affinity = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            affinity = os.cpu_count() or 1
    if quota == -1.0:
        quota = _cgroup_limit_cached()
    cores = affinity if quota is None else min(affinity, math.ceil(quota - 1e-9))
    return max(1, int(cores))


def resolve_threads(threads: Optional[int] = None, *, environ: Optional[Mapping[str, str]] = None) -> int:
    """The thread count: ``threads`` if >= 1, else ``OMP_NUM_THREADS`` (its first value) if a number >= 1,
    else :func:`available_cores`. ``None`` and ``0`` both mean "decide"; negative counts are an error."""
    if threads is not None:
        if isinstance(threads, bool) or int(threads) != threads or threads < 0:
            raise ValueError(f"threads must be a whole number >= 0 (0: decide from the machine), got {threads!r}")
        if threads >= 1:
            return int(threads)
    env = os.environ if environ is None else environ
    value = env.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) >= 1:
        return int(value)
    return available_cores()


def apply_threads(threads: Optional[int] = None) -> int:
    """Resolve the thread budget (:func:`resolve_threads`) and give it to PyTorch, OpenCV, the renderer and the ONNX
    Runtime sessions opened afterwards; returns it. Process-wide, like ``torch.set_num_threads``.

    ``None`` keeps the budget an earlier call applied in this process (and changes nothing), so building
    another :class:`~mfirrn.inference.pipeline.Reconstructor` does not undo an explicit choice; ``0`` decides
    from the machine again. PyTorch's inter-op pool gets one thread, once per process (PyTorch allows no
    later change; the package runs no inter-op parallel work).
    """
    global _applied, _interop_set
    if threads is None and _applied is not None:
        return _applied
    n = resolve_threads(threads)
    import cv2
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if not _interop_set:
        _interop_set = True
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # inter-op work already ran in this process: its pool stays as it is
            pass
    cv2.setNumThreads(n)
    _applied = n
    return n


def worker_threads(workers: int, threads: Optional[int] = None) -> int:
    """Each worker's share (at least 1) when ``workers`` processes split the budget ``resolve_threads(threads)``.

    A process pool calls :func:`apply_threads` with it in each worker, so the pools of all workers together
    fit the cores instead of each sizing itself to the whole machine.

    >>> worker_threads(2, 4), worker_threads(4, 2)
    (2, 1)
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return max(1, resolve_threads(threads) // workers)


def current_threads() -> int:
    """The budget of the last :func:`apply_threads` call in this process, else :func:`resolve_threads` ``(None)``."""
    return _applied if _applied is not None else resolve_threads(None)


def ort_session_options(threads: Optional[int] = None):
    """ONNX Runtime ``SessionOptions`` under the policy: ``threads`` (default :func:`current_threads`) intra-op
    threads that sleep rather than spin while they wait, one inter-op thread, sequential execution."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = resolve_threads(threads) if threads else current_threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


def idle_cores(cores: int, loadavg: Union[str, Path] = "/proc/loadavg", online: Optional[int] = None) -> int:
    """How many of ``cores`` are free right now, at least 1 (``cores`` where unknown).

    The runnable tasks of the machine other than the caller (the fourth field of ``/proc/loadavg``,
    ``running/total``) are taken to be spread evenly over its ``online`` CPUs (default ``os.cpu_count()``),
    so a process that may use ``cores`` of them expects ``others * cores / online`` of those tasks on its
    cores (all of them on a machine it has to itself; in a container on a large host, its share).

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix="loadavg") as f:
    ...     _ = f.write("2.10 1.50 1.00 3/250 4242\\n"); f.flush()
    ...     idle_cores(2, f.name, online=2), idle_cores(8, f.name, online=8), idle_cores(4, f.name, online=64)
    (1, 6, 4)
    """
    try:  # os.read: a few microseconds, as the renderer asks at every call
        fd = os.open(loadavg, os.O_RDONLY)
        try:
            running = int(os.read(fd, 256).split()[3].split(b"/")[0])
        finally:
            os.close(fd)
    except (OSError, IndexError, ValueError):
        running = 0
    if running < 1:
        return cores
    online = max(cores, online or os.cpu_count() or cores)
    return max(1, min(cores, cores - int((running - 1) * cores / online + 0.5)))
