"""Running one job over many inputs: in this process (streamed), on several local processes, or on Ray.

A job is a *processor factory*: a picklable callable that builds, once per worker, an object with
``read(item)``, ``infer(loaded)``, ``write(inferred)`` (the stages of one input) and ``__call__(item)`` (the
three in turn), each ending in an :class:`~mfirrn.inference.runrecord.InputResult` for the input, never
raising for a bad input. The engines only move items and results:

- :func:`run_in_process`: one model; the next item is read and the previous one written in background
  threads while the model runs on the current one;
- :func:`run_processes`: ``workers`` processes (standard-library :mod:`concurrent.futures`), each with its own
  model and its share of the CPU threads (:func:`mfirrn.io.threads.worker_threads`), at most ``workers`` items in flight, so a kill loses at
  most that many;
- :func:`run_ray` (:mod:`mfirrn.inference.rayjob`): a pool of Ray actors, on one machine or a cluster.

Every engine hands each result to ``handle`` in the calling process, which records it.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

__all__ = ["silence_opencv", "run_in_process", "run_processes",
           "InputFailure"]

ProcessorFactory = Callable[[], Any]
Handler = Callable[[Any], None]


class InputFailure(Exception):
    """Raised by a processor stage to end an input with a result (carried in ``result``) instead of the next
    stage."""

    def __init__(self, result: Any) -> None:
        super().__init__(getattr(result, "reason", ""))
        self.result = result


def silence_opencv() -> None:
    """Stop OpenCV's own log lines (``[ WARN:0@1.2] ...``), and FFmpeg's through it (``moov atom not found``;
    effective before the first video is opened), in this process: a job reports each input's outcome on one
    line of its own."""
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def plain_image_warnings() -> None:
    """Print each :class:`~mfirrn.inference.inputs.ImageWarning` (a damaged file that was read) in this process as
    one line of the job's, ``warning: <file>: ...``, not in Python's warning format; other warnings as before."""
    import sys
    import warnings

    from mfirrn.inference.inputs import ImageWarning
    from mfirrn.inference.sources import show_path

    python_format = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, ImageWarning):
            print(f"warning: {show_path(str(message))}", file=file or sys.stderr, flush=True)
        else:
            python_format(message, category, filename, lineno, file, line)

    warnings.showwarning = show


_processor: Any = None  # the processor of this worker process (set by _init_worker)


def _init_worker(factory: ProcessorFactory, parent: int) -> None:
    global _processor
    from mfirrn.io.workers import die_with_parent

    die_with_parent(parent)
    _processor = factory()


def _work(item: Any) -> Any:
    return _processor(item)


def run_in_process(items: Iterable[Any], factory: ProcessorFactory, handle: Handler) -> None:
    """Process ``items`` with one processor in this process, reading ahead and writing behind in two threads
    (at most one input waits to be written, so a kill loses at most two)."""
    proc = factory()
    items = list(items)
    if not items:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="mfirrn-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="mfirrn-write") as writer:
        pending: deque[Future] = deque()
        next_read: Optional[Future] = reader.submit(proc.read, items[0])
        for i in range(len(items)):
            reading = next_read
            assert reading is not None
            next_read = reader.submit(proc.read, items[i + 1]) if i + 1 < len(items) else None
            try:
                inferred = proc.infer(reading.result())
            except InputFailure as stop:
                handle(stop.result)
                continue
            while pending:  # one input at a time waits to be written
                handle(pending.popleft().result())
            pending.append(writer.submit(proc.write, inferred))
        while pending:
            handle(pending.popleft().result())


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore Ctrl-C while worker processes start (they inherit it, and Python then installs no handler of its
    own): an interrupt reaches this process alone, which ends the run, instead of a traceback per worker."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def run_processes(items: Sequence[Any], factory: ProcessorFactory, handle: Handler, workers: int) -> None:
    """Process ``items`` on ``workers`` processes (each builds its processor from ``factory``); results reach
    ``handle`` as they finish. When a worker dies (out of memory, a crash in a library), the inputs in flight
    are tried again one at a time in a new process: the one that kills it alone fails with
    ``factory.crashed(item)``, the others go on."""
    import multiprocessing as mp
    from concurrent.futures.process import BrokenProcessPool

    # spawn: a fresh interpreter per worker (no threads or locks copied from this process), whose parent is
    # this process, so it dies with it (a fork server would keep its workers alive after a kill)
    ctx = mp.get_context("spawn")
    todo, suspects = deque(items), deque()
    while todo or suspects:
        alone = bool(suspects)
        queue, limit = (suspects, 1) if alone else (todo, workers)
        broken: list[Any] = []
        with ProcessPoolExecutor(limit, mp_context=ctx, initializer=_init_worker,
                                 initargs=(factory, os.getpid())) as pool:
            running: dict[Future, Any] = {}
            first = True
            while (queue or running) and not broken:
                with _sigint_ignored() if first else nullcontext():  # the workers start at the first submit
                    while queue and len(running) < limit:
                        item = queue.popleft()
                        running[pool.submit(_work, item)] = item
                first = False
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    item = running.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        broken.append(item)
                        continue
                    handle(result)
            broken += running.values()
        if alone:
            for item in broken:  # it was alone in its process
                handle(factory.crashed(item))  # type: ignore[attr-defined]
        else:
            suspects.extend(broken)
