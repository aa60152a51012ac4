"""The engine on Ray Data: inputs as a dataset, an actor pool that holds one processor (one model) per actor.

Used by ``mfirrn reconstruct --engine ray`` (see :mod:`mfirrn.inference.engine` for what a processor is).
Each actor takes ``num_cpus`` CPUs (one by default) and ``num_gpus`` of a GPU; results stream back to the calling
process, which records them and writes the table, so a run on a cluster resumes like a local one. On a cluster every node must see
the inputs and the output folder at the same paths (a shared file system) and have mfirrn installed.
Needs ``pip install 'mfirrn[ray]'``.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable, Optional, Sequence

__all__ = ["run_ray", "need_ray", "RayStartError"]


class RayStartError(RuntimeError):
    """Ray could not be started or joined; the message says why and what to try."""


def need_ray() -> None:
    """Raise ``ImportError`` with the install line when Ray Data is missing."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError("--engine ray needs Ray Data: pip install 'mfirrn[ray]'") from None


class _Actor:
    """One Ray actor: builds its processor once, then maps batches of pickled items to pickled results."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory
        self.processor = factory()

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        out = []
        for blob in batch["item"]:
            item = pickle.loads(blob)
            try:
                result = self.processor(item)
            except Exception as e:  # a bug or a dying library: fail this input, keep the actor
                result = self.factory.crashed(item, f"{type(e).__name__}: {e}")
            out.append(pickle.dumps(result))
        return {"result": np.array(out, dtype=object)}


def _start(address: Optional[str], tries: int = 2, cpus_needed: float = 0.0) -> None:
    """``ray.init``; a local Ray whose node misses Ray's 30 s start-up deadline (a busy machine) is tried again.

    A local Ray offers at least ``cpus_needed`` CPUs (the actors' total), so an actor pool larger than the machine
    runs oversubscribed, as the user asked, instead of waiting for CPUs that never come."""
    import logging
    import os

    import ray

    local = address is None and not os.environ.get("RAY_ADDRESS")
    for attempt in range(tries if local else 1):
        try:
            cpus = {"num_cpus": max(cpus_needed, os.cpu_count() or 1)} if local and cpus_needed else {}
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                     configure_logging=False, **cpus)
            return
        except Exception as e:  # Ray raises bare Exceptions (a node that timed out, a cluster not found)
            ray.shutdown()
            if attempt + 1 < (tries if local else 1):
                continue
            where = "a local Ray" if local else f"the Ray cluster at {address or os.environ.get('RAY_ADDRESS')}"
            why = (str(e).splitlines() or [type(e).__name__])[0]
            raise RayStartError(f"{where} did not start: {why}; try again when the machine is less busy, or use "
                                f"--engine local") from None


def run_ray(items: Sequence[Any], factory: Callable[[], Any], handle: Callable[[Any], None], *, workers: int,
            num_cpus: float = 1.0, num_gpus: float = 0.0, address: Optional[str] = None, batch_size: int = 4) -> None:
    """Process ``items`` on ``workers`` Ray actors (each holding ``num_cpus`` CPUs, which its ``factory`` should
    give its threads, and ``num_gpus``); each result reaches
    ``handle`` here as its batch of ``batch_size`` items finishes. Connects to the cluster at ``address`` (or
    ``$RAY_ADDRESS``), else starts a local one for the run."""
    import logging

    import ray
    import ray.data

    if not items:
        return
    for name in ("ray", "ray.data"):  # Ray's INFO/WARNING lines: the run reports on its own lines
        logging.getLogger(name).setLevel(logging.ERROR)
    started = not ray.is_initialized()
    if started:
        _start(address, cpus_needed=workers * num_cpus)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        blobs = [pickle.dumps(it) for it in items]
        n_blocks = min(len(blobs), max(workers, -(-len(blobs) // batch_size)))  # every actor gets work
        ds = ray.data.from_items([{"item": b} for b in blobs], override_num_blocks=n_blocks)
        ds = ds.map_batches(_Actor, fn_constructor_args=(factory,), batch_size=batch_size,
                            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=num_cpus,
                            num_gpus=num_gpus or None, batch_format="numpy")
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for blob in batch["result"]:
                handle(pickle.loads(blob))
    finally:
        if started:
            ray.shutdown()
