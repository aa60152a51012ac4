"""The machine a number comes from: CPU model, the instruction sets that matter for int8/bf16, cores, load.

Benchmarks print :func:`machine_line` first, so a timing always names its CPU, whether it has
AVX512-VNNI/BF16 or AMX (where int8 and bf16 inference pay), the cores the process may use and how busy
the machine was.

>>> info = CpuInfo("AMD EPYC 9R14", frozenset({"avx2", "avx512f", "avx512_bf16", "sse2"}))
>>> info.isa
('avx2', 'avx512f', 'avx512_bf16')
>>> info.has_bf16, info.has_amx
(True, False)
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Union

__all__ = ["CpuInfo", "ISA_FLAGS", "bf16_emulated_note", "cpu_info", "machine_line"]

#: ``/proc/cpuinfo`` flags reported, in this order: vector width, then the int8/bf16 instructions.
ISA_FLAGS: tuple[str, ...] = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


@dataclass(frozen=True)
class CpuInfo:
    """``model``: the CPU's marketing name; ``flags``: its instruction-set flags (empty where unknown)."""

    model: str
    flags: frozenset[str]

    @property
    def isa(self) -> tuple[str, ...]:
        """The flags of :data:`ISA_FLAGS` this CPU has, in that order."""
        return tuple(f for f in ISA_FLAGS if f in self.flags)

    @property
    def has_bf16(self) -> bool:
        """bf16 matrix instructions (AVX512-BF16 or AMX-BF16)."""
        return bool({"avx512_bf16", "amx_bf16"} & self.flags)

    @property
    def has_amx(self) -> bool:
        return "amx_tile" in self.flags


def cpu_info(cpuinfo: Union[str, Path] = "/proc/cpuinfo") -> CpuInfo:
    """The first processor of ``cpuinfo`` (Linux); elsewhere the platform's processor name and no flags.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix="cpuinfo") as f:
    ...     _ = f.write("processor\\t: 0\\nmodel name\\t: Test CPU\\nflags\\t\\t: fpu avx2 amx_tile\\n"); f.flush()
    ...     cpu_info(f.name).isa
    ('avx2', 'amx_tile')
    """
    model, flags = "", frozenset()
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = frozenset(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return CpuInfo(model or platform.processor() or platform.machine() or "unknown CPU", flags)


def machine_line() -> str:
    """One line: CPU model and instruction sets, the cores this process may use, cores online, load average."""
    from mfirrn.io.threads import available_cores

    info = cpu_info()
    try:
        load = f"load average {os.getloadavg()[0]:.2f}"
    except OSError:
        load = "load average unknown"
    return (f"{info.model} ({', '.join(info.isa) or 'no AVX2'}); {available_cores()} cores available to this "
            f"process, {os.cpu_count()} online; {load}")


def bf16_emulated_note(info: CpuInfo | None = None) -> str | None:
    """Why bf16 on this CPU is a bad idea, or ``None`` where it pays (or the flags are unknown, e.g. not Linux).

    Without AVX512-BF16 or AMX, PyTorch emulates bf16 arithmetic: ``mfirrn reconstruct --bf16`` ran about 8x slower
    than the default (fp32 in ONNX Runtime) on an AVX2-only AMD EPYC (docs/experiments/speed.md).

    >>> bf16_emulated_note(CpuInfo("AMD EPYC", frozenset({"avx2", "avx512_bf16"}))) is None
    True
    >>> bf16_emulated_note(CpuInfo("Apple M2", frozenset())) is None
    True
    >>> bf16_emulated_note(CpuInfo("AMD EPYC", frozenset({"avx2"})))
    'this CPU (AMD EPYC) has no AVX512-BF16 or AMX, so bf16 runs emulated and several times slower than fp32'
    """
    info = cpu_info() if info is None else info
    if not info.flags or info.has_bf16:
        return None
    return (f"this CPU ({info.model}) has no AVX512-BF16 or AMX, so bf16 runs emulated and several times slower "
            f"than fp32")
