"""Batched network inference: crops -> de-normalised 62-d params (one path for pipeline and benchmark)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Optional, Sequence, Union

import torch
from torch import nn

from mfirrn.geometry.frames import CROP_SIZE
from mfirrn.io.checks import check_shape
from mfirrn.io.defaults import HEAD_OUTPUTS

__all__ = ["predict_params", "predict_outputs", "model_device", "OUTPUTS"]

# Outputs of a multi-head model, "fused" (the model's prediction) first, then the heads of MFIRRNOutput.
OUTPUTS = HEAD_OUTPUTS


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter (CPU for a parameterless module)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def predict_params(model: nn.Module, crops: torch.Tensor, *, batch_size: int = 128,
                   bf16: bool = False, device: Optional[Union[str, torch.device]] = None,
                   output: str = "fused") -> torch.Tensor:
    """Run ``model`` over normalised crops (B, 3, 120, 120) and return de-normalised params (B, 62) float32 on CPU.

    ``model`` must carry ``model.stats`` (set by :func:`mfirrn.models.create`); the network's output
    is de-normalised with them. ``bf16`` runs under ``torch.autocast`` in bfloat16 (fast on CPUs with
    AVX512-BF16 or AMX and on GPUs); outputs are cast back to float32 before de-normalisation.
    ``output`` picks which head of a multi-head (MFIRRN) model to return, one of :data:`OUTPUTS` (for
    ablations: each head is trained with its own loss); single-output models only have ``"fused"``.
    """
    return predict_outputs(model, crops, batch_size=batch_size, bf16=bf16, device=device, outputs=(output,))[output]


@torch.no_grad()
def predict_outputs(model: nn.Module, crops: torch.Tensor, *, batch_size: int = 128, bf16: bool = False,
                    device: Optional[Union[str, torch.device]] = None,
                    outputs: Sequence[str] = ("fused",)) -> dict[str, torch.Tensor]:
    """:func:`predict_params` for several ``outputs`` of one forward pass: ``{output: (B, 62) params}``."""
    check_shape(crops, (None, 3, CROP_SIZE, CROP_SIZE), "crops")
    for output in outputs:
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    dev = torch.device(device) if device is not None else model_device(model)
    model.eval()
    outs: dict[str, list[torch.Tensor]] = {o: [] for o in outputs}
    ctx = torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    for i in range(0, crops.shape[0], batch_size):
        x = crops[i:i + batch_size].to(dev, non_blocking=True)
        with ctx:
            y = model(x)
        for output in outputs:
            if hasattr(y, "fused"):
                out = getattr(y, output)
            elif output != "fused":
                raise ValueError(f"{type(model).__name__} has a single output; output={output!r} needs an MFIRRN model")
            else:
                out = y
            outs[output].append(out.float().cpu())
    return {o: model.stats.denormalize(torch.cat(v)) if v else torch.zeros(0, 62)  # type: ignore[union-attr]
            for o, v in outs.items()}
