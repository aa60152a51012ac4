"""Worker processes that never outlive the process that started them.

A pool worker blocked on its task queue does not notice when its parent is killed (``SIGKILL``, OOM
killer): it would stay behind, idle, holding memory. :func:`die_with_parent`, called first thing in a
worker (a pool ``initializer``), makes the kernel send the worker ``SIGKILL`` when its parent dies
(Linux ``prctl(PR_SET_PDEATHSIG)``), or elsewhere starts a thread that polls the parent.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Optional

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: Optional[int] = None, poll_s: float = 1.0) -> None:
    """Make this process exit when ``parent_pid`` (default: the current parent) exits."""
    parent = os.getppid() if parent_pid is None else parent_pid
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(poll_s)
            os._exit(1)

        threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
