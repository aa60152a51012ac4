"""A finished run's checkpoint as the weights the project ships (``data/weights/<name>.pt``).

A run's ``last.pt`` holds what resuming needs besides the model: the optimizer's moments (twice the model's
size for AdamW), the scheduler, the data stream's position and every RNG. The shipped file keeps only what
using and describing the model needs: the architecture, the weights, the parameter statistics and pixel
convention, how it was initialised, the config it was trained with, the code version and step, the best
validation NME of the run, and ``trained_on`` (read by :func:`mfirrn.evaluation.report.checkpoint_trained_on`
and shown in benchmark reports).

    >>> from mfirrn.train.release import release_weights
    >>> release_weights("runs/aflwlp-mfirrn-mb05/last.pt", "data/weights/mfirrn-mb05-aflwlp-distill.pt",
    ...                 trained_on="...")   # doctest: +SKIP
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Union

import torch

from mfirrn.io.fileio import atomic_write
from mfirrn.models.registry import CheckpointError, _read_checkpoint

__all__ = ["SHIPPED_KEYS", "release_weights"]

PathLike = Union[str, Path]

#: Entries of a training checkpoint that the shipped file keeps (those present; the first four are required).
SHIPPED_KEYS = ("arch", "state_dict", "stats", "convention", "init", "config", "code_version", "step")


def release_weights(checkpoint: PathLike, out: PathLike, *, trained_on: str, trust_checkpoint: bool = False) -> Path:
    """Write ``checkpoint``'s model, without its training state, to ``out`` and return ``out``.

    ``trained_on``: one line saying what the model was trained on (data, labels, initialisation, teacher).
    The checkpoint is read without running code from it unless ``trust_checkpoint``; tensors are written
    contiguous on the CPU. ``out`` is replaced only once the new file is complete (no half-written file).
    Raises :class:`~mfirrn.models.registry.CheckpointError` when the checkpoint lacks a required entry.
    """
    ckpt = _read_checkpoint(checkpoint, trust_checkpoint)
    missing = [k for k in SHIPPED_KEYS[:4] if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise CheckpointError(f"{checkpoint} is not a workbench training checkpoint (no {', '.join(missing)}); "
                              "pass a run's last.pt or best.pt")
    if not trained_on.strip():
        raise ValueError("trained_on must say what the model was trained on")
    shipped = {k: ckpt[k] for k in SHIPPED_KEYS if k in ckpt}
    shipped["state_dict"] = {k: v.detach().cpu().contiguous() for k, v in ckpt["state_dict"].items()}
    shipped["trained_on"] = trained_on.strip()
    if ckpt.get("best_nme") is not None:
        shipped["best_val_nme"] = float(ckpt["best_nme"])
    buffer = io.BytesIO()
    torch.save(shipped, buffer)
    return atomic_write(out, buffer.getvalue())
