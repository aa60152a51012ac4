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

:func:`average_weights` ships the average of several checkpoints of one model instead (weight averaging along
a run, as stochastic weight averaging does), in the same format.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence, Union

import torch

from mfirrn.io.fileio import atomic_write
from mfirrn.models.registry import CheckpointError, _read_checkpoint

__all__ = ["SHIPPED_KEYS", "release_weights", "average_weights"]

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
    ckpt = _read_run_checkpoint(checkpoint, trust_checkpoint)
    extra = {"best_val_nme": float(ckpt["best_nme"])} if ckpt.get("best_nme") is not None else {}
    return _write_shipped(ckpt, ckpt["state_dict"], out, trained_on, extra)


def average_weights(checkpoints: Sequence[PathLike], out: PathLike, *, trained_on: str,
                    trust_checkpoint: bool = False) -> Path:
    """Write the equal-weight average of ``checkpoints`` (two or more run checkpoints of one model) to ``out``.

    Every floating-point tensor of the state dicts (weights and BatchNorm running statistics) is averaged in
    float64 and stored in its own dtype; other tensors (BatchNorm's batch counters) and every other entry come
    from the last checkpoint, and ``averaged_from`` lists each source (its folder and file name) and its step.
    The checkpoints must share the architecture, the tensor names and shapes, the parameter statistics and the
    pixel convention (``ValueError`` otherwise): only points of one model's training, e.g. a run and its
    continuation, make a meaningful average. ``trained_on``, ``trust_checkpoint`` and the written file are as in
    :func:`release_weights`.
    """
    if len(checkpoints) < 2:
        raise ValueError("averaging needs two or more checkpoints")
    ckpts = [_read_run_checkpoint(c, trust_checkpoint) for c in checkpoints]
    first = ckpts[0]
    for path, ckpt in zip(checkpoints[1:], ckpts[1:]):
        shapes = {k: tuple(v.shape) for k, v in ckpt["state_dict"].items()}
        if ckpt["arch"] != first["arch"] or shapes != {k: tuple(v.shape) for k, v in first["state_dict"].items()}:
            raise ValueError(f"{path} holds another model ({ckpt['arch']}) than {checkpoints[0]} ({first['arch']}) "
                             "or other tensors: only checkpoints of one model can be averaged")
        same_stats = all(torch.equal(torch.as_tensor(ckpt["stats"][k]), torch.as_tensor(first["stats"][k]))
                         for k in ("mean", "std"))
        if not same_stats or ckpt["convention"] != first["convention"]:
            raise ValueError(f"{path} normalises its params otherwise than {checkpoints[0]} (stats or convention)")
    last = ckpts[-1]
    averaged = {}
    for name, tensor in last["state_dict"].items():
        if tensor.is_floating_point():
            total = sum(c["state_dict"][name].detach().cpu().double() for c in ckpts)
            averaged[name] = (total / len(ckpts)).to(tensor.dtype)
        else:
            averaged[name] = tensor
    sources = [{"file": f"{Path(p).parent.name}/{Path(p).name}", "step": c.get("step")}
               for p, c in zip(checkpoints, ckpts)]
    return _write_shipped(last, averaged, out, trained_on, {"averaged_from": sources})


def _read_run_checkpoint(checkpoint: PathLike, trust_checkpoint: bool) -> dict:
    ckpt = _read_checkpoint(checkpoint, trust_checkpoint)
    missing = [k for k in SHIPPED_KEYS[:4] if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise CheckpointError(f"{checkpoint} is not a workbench training checkpoint (no {', '.join(missing)}); "
                              "pass a run's last.pt or best.pt")
    return ckpt


def _write_shipped(ckpt: dict, state_dict: dict, out: PathLike, trained_on: str, extra: dict) -> Path:
    """``ckpt``'s :data:`SHIPPED_KEYS` with ``state_dict`` in place of its own, ``trained_on`` and ``extra``."""
    if not trained_on.strip():
        raise ValueError("trained_on must say what the model was trained on")
    shipped = {k: ckpt[k] for k in SHIPPED_KEYS if k in ckpt}
    shipped["state_dict"] = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    shipped["trained_on"] = trained_on.strip()
    shipped.update(extra)
    buffer = io.BytesIO()
    torch.save(shipped, buffer)
    return atomic_write(out, buffer.getvalue())
