"""Initialise a model from pretrained weights (a registered pretrained model or a checkpoint file).

:func:`init_from_pretrained` copies what fits by name and, for an MFIRRN with MobileNet branches
(``mfirrn-mb05``), builds a starting point whose eval-mode fused prediction (un-shuffled crops) is the pretrained
MobileNetV1's, exactly when dw5_6 keeps stride 2 (``MB05``; with ``stage4_stride=1`` it is only close):

1. **Backbones**: every MobileNetV1 block that exists in a branch (coarse: all; medium: up to dw4_2;
   fine: up to dw3_2) gets the pretrained weights and BN statistics, by name.
2. **Fusion blocks start as the identity on their own branch** (the other granularity's input has zero
   weights, which still receive gradients): ``conv1`` 1x1 = [I | 0] on the first C of its ``mid``
   channels (the other ``mid - C`` keep their random init), ``conv2`` 3x3 = I at the centre tap from those
   channels and 0 from the others; the SE gate starts at the constant ``sigmoid(3)`` (fc2 weight 0, bias 3);
   each BN is set to undo its own normalisation — running mean/var = the estimated per-channel mean/var of
   the incoming post-ReLU features, weight = sqrt(var + eps), bias = mean (BN2 also divides by the SE gate).
   In eval this is exactly the identity; in training (batch statistics) approximately. The feature
   mean/var are the moments of ReLU(N(beta, gamma^2)), beta/gamma being the affine parameters of the BN
   that produced the features (in training that BN's output has exactly that mean and variance per batch).
3. **Coarse head = the pretrained ``fc_param``** on its pooled layer4 features: hidden unit j < 62 of fc1
   is ``fc_param`` row j plus an offset of 20 (so the ELU is linear), fc2 picks unit j and subtracts the
   offset. Exact while dropout is 0 (``MB05``) and |prediction| < 20 (normalised params).
4. **Medium and fine heads** predict the mean (their fc2 weight and bias are zeroed), so their losses
   start moderate instead of random.
5. **Decoder passes the coarse prediction through**: fc1 row j = e_j on the coarse slice, BN weight 1,
   bias 20 with running mean 0 / var 1 - eps (identity + offset in eval; in training the batch is
   normalised, close to identity for params normalised to mean 0 / std 1), fc2 row j = e_j with bias -20,
   the same BN, fc3 row j = e_j with bias -20. Columns from the other hidden units are 0, those units keep
   their random init.

For any other target, and for an MFIRRN whose source holds all of its tensors (a checkpoint of the same
architecture, e.g. to fine-tune a trained run with another recipe), every parameter/buffer whose name and shape
match the source is copied. An MFIRRN from a trained MFIRRN of another head shape (``mfirrn-mb05-flat`` from
``mfirrn-mb05``) gets every tensor that matches; a medium or fine head that could not be copied whole keeps its
random init and predicts the mean (rule 4), and the decoder, whose inputs then mean something new, starts as the
pass-through of the coarse prediction (rule 5).

>>> from mfirrn import models
>>> net = models.create("3ddfa-mb05", pretrained=False)
>>> init_from_pretrained(net, "3ddfa-v2-mb05")["copied"]   # doctest: +SKIP
136
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from mfirrn.models.mfirrn_net import MFIRRN, MOBILENET_STAGES, FusionBlock, Head
from mfirrn.models.mobilenet import MobileNetV1
from mfirrn.models.registry import CheckpointError, _read_checkpoint, _strip_prefix, available, create, get_card

__all__ = ["init_from_pretrained", "load_source_state_dict"]

OFFSET = 20.0  # keeps pass-through ELUs in their linear part (normalised params are |x| << 20)
SE_GATE_BIAS = 3.0  # initial SE gate sigmoid(3) = 0.953: compensated, and not saturated so it can learn


def load_source_state_dict(source: str, *, trust_checkpoint: bool = False) -> dict[str, torch.Tensor]:
    """Float32 state dict of a registered pretrained model (by name) or of a checkpoint file (any layout; read
    without running code from it unless ``trust_checkpoint``, see :func:`mfirrn.models.load_checkpoint`)."""
    if source in available():
        if not get_card(source).has_pretrained:
            raise CheckpointError(f"model {source} has no pretrained weights to initialise from; "
                                  f"use one of {', '.join(available(pretrained=True))} or a checkpoint path")
        return {k: v.float() for k, v in create(source, pretrained=True).state_dict().items()}
    if not Path(source).is_file():
        raise CheckpointError(f"init source {source!r} is neither a registered model ({', '.join(available(pretrained=True))}) "
                              f"nor a checkpoint file; fix model.init")
    ckpt = _read_checkpoint(source, trust_checkpoint)
    sd = ckpt
    if isinstance(ckpt, dict):
        for key in ("state_dict", "model"):
            if isinstance(ckpt.get(key), dict):
                sd = ckpt[key]
                break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"checkpoint {source} has no state_dict of tensors; is it a model checkpoint?")
    return MobileNetV1.remap_state_dict({k: v.float() for k, v in _strip_prefix(sd).items()})


@torch.no_grad()
def init_from_pretrained(model: nn.Module, source: str, *, trust_checkpoint: bool = False) -> dict:
    """Initialise ``model`` in place from ``source`` (a registered pretrained model name or a checkpoint path;
    ``trust_checkpoint`` as in :func:`mfirrn.models.load_checkpoint`).

    Returns ``{"source", "copied" (tensors copied), "initialised" (tensors set by a construction rule,
    MFIRRN-MobileNet only), "skipped" (target tensors left as they were), "unused" (source tensors not used)}``.
    See the module docstring for what an MFIRRN with MobileNet branches gets.
    """
    src = load_source_state_dict(source, trust_checkpoint=trust_checkpoint)
    if isinstance(model, MFIRRN) and model.config.backbone == "mobilenet" and not _same_tensors(model, src):
        summary = _init_mfirrn_from_mfirrn(model, src) if _is_mfirrn_state(src) else _init_mfirrn_mobilenet(model, src)
    else:
        summary = _copy_matching(model, src, "")
    summary["unused"] = sorted(set(src) - summary.pop("_used"))
    return {"source": source, **summary}


def _same_tensors(module: nn.Module, src: dict[str, torch.Tensor]) -> bool:
    """Whether ``src`` holds every tensor of ``module`` by name and shape (a checkpoint of the same architecture,
    copied as it is rather than built from a MobileNetV1)."""
    own = module.state_dict()
    return all(k in src and src[k].shape == t.shape for k, t in own.items())


def _is_mfirrn_state(src: dict[str, torch.Tensor]) -> bool:
    """Whether ``src`` is an MFIRRN's state dict (it has a coarse branch and a decoder), not a MobileNetV1's."""
    return any(k.startswith("encoder_coarse.") for k in src) and any(k.startswith("decoder.") for k in src)


def _init_mfirrn_from_mfirrn(model: MFIRRN, src: dict[str, torch.Tensor]) -> dict:
    """Copy what matches from another MFIRRN; heads that did not match predict the mean, the decoder passes coarse."""
    summary = _copy_matching(model, src, "")
    skipped = set(summary["skipped"])
    new_heads = [h for h in ("head_medium", "head_fine") if any(k.startswith(h + ".") for k in skipped)]
    initialised = _heads_predict_mean(model, new_heads)
    notes = []
    if new_heads:
        if _init_decoder_passthrough(model):
            initialised |= {"decoder." + k for k in model.decoder.state_dict()}
        else:
            notes.append("decoder: hidden width < 62, kept as copied")
        notes.append(f"{', '.join(new_heads)}: not in the source's shape, start at the mean")
    summary["copied"] -= len(initialised - skipped)
    summary["_used"] -= initialised
    summary["initialised"] = len(initialised)
    summary["skipped"] = [k for k in summary["skipped"] if k not in initialised]
    summary["notes"] = notes
    return summary


def _copy_matching(module: nn.Module, src: dict[str, torch.Tensor], prefix: str) -> dict:
    """Copy ``src[name]`` into ``module``'s tensor ``name`` where names and shapes agree; report under ``prefix``."""
    own = module.state_dict(keep_vars=True)
    copied, skipped, used = 0, [], set()
    for name, t in own.items():
        s = src.get(name)
        if s is not None and s.shape == t.shape:
            t.data.copy_(s.to(t.dtype))
            copied += 1
            used.add(name)
        else:
            skipped.append(prefix + name)
    return {"copied": copied, "initialised": 0, "skipped": skipped, "_used": used}


def _relu_gaussian_moments(beta: torch.Tensor, gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and variance of ReLU(z), z ~ N(beta, gamma^2)."""
    sd = gamma.abs().clamp_min(1e-6)
    a = beta / sd
    pdf = torch.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + torch.erf(a / math.sqrt(2)))
    mean = beta * cdf + sd * pdf
    second = (beta * beta + sd * sd) * cdf + beta * sd * pdf
    return mean, (second - mean * mean).clamp_min(1e-6)


def _set_bn_identity(bn: nn.BatchNorm2d, mean: torch.Tensor, var: torch.Tensor, scale: float = 1.0) -> None:
    """BN that maps x -> x / scale in eval (and about that in training) for inputs of this mean/var."""
    c = mean.numel()
    bn.running_mean[:c] = mean
    bn.running_var[:c] = var
    bn.weight[:c] = torch.sqrt(var + bn.eps) / scale
    bn.bias[:c] = mean / scale


def _init_fusion_identity(block: FusionBlock, mean: torch.Tensor, var: torch.Tensor) -> bool:
    conv1, bn1 = block.conv1[0], block.conv1[1]
    conv2, bn2 = block.conv2[0], block.conv2[1]
    c, mid = mean.numel(), conv1.out_channels
    if mid < c or conv2.out_channels != c:
        return False
    eye = torch.eye(c)
    conv1.weight[:c].zero_()
    conv1.weight[:c, :c, 0, 0] = eye
    _set_bn_identity(bn1, mean, var)
    k = conv2.kernel_size[0] // 2
    conv2.weight.zero_()
    conv2.weight[:, :c, k, k] = eye
    gate = 1.0 / (1.0 + math.exp(-SE_GATE_BIAS))
    _set_bn_identity(bn2, mean, var, scale=gate)
    block.se.fc2.weight.zero_()
    block.se.fc2.bias.fill_(SE_GATE_BIAS)
    return True


def _init_head_linear(head: Head, weight: torch.Tensor, bias: torch.Tensor) -> bool:
    """Make ``head`` compute ``weight @ pooled + bias`` exactly (no dropout): offset fc1 rows, pick them in fc2."""
    n = weight.shape[0]
    if head.conv is not None or head.fc1.in_features != weight.shape[1] or head.fc1.out_features < n:
        return False
    head.fc1.weight[:n] = weight
    head.fc1.bias[:n] = bias + OFFSET
    head.fc2.weight.zero_()
    head.fc2.weight[:, :n] = torch.eye(n)
    head.fc2.bias.fill_(-OFFSET)
    return True


def _heads_predict_mean(model: MFIRRN, heads: Iterable[str]) -> set[str]:
    """Rule 4: zero the last FC layer of each named head, so that it predicts the mean (normalised params 0);
    returns the names of the tensors set."""
    names: set[str] = set()
    for head in heads:
        fc2 = getattr(model, head).fc2
        fc2.weight.zero_()
        fc2.bias.zero_()
        names |= {f"{head}.fc2.weight", f"{head}.fc2.bias"}
    return names


def _init_decoder_passthrough(model: MFIRRN) -> bool:
    dec, n = model.decoder, model.config.num_params
    if dec.fc1.out_features < n:
        return False
    eye = torch.eye(n)
    for fc, bn in ((dec.fc1, dec.bn1), (dec.fc2, dec.bn2)):
        fc.weight[:n].zero_()
        fc.weight[:n, :n] = eye  # coarse slice of the input (fc1) / the pass-through units (fc2)
        fc.bias[:n] = 0.0 if fc is dec.fc1 else -OFFSET
        bn.running_mean[:n] = 0.0
        bn.running_var[:n] = 1.0 - bn.eps
        bn.weight[:n] = 1.0
        bn.bias[:n] = OFFSET
    dec.fc3.weight.zero_()
    dec.fc3.weight[:, :n] = eye
    dec.fc3.bias.fill_(-OFFSET)
    return True


def _init_mfirrn_mobilenet(model: MFIRRN, src: dict[str, torch.Tensor]) -> dict:
    copied, used, notes = 0, set(), []
    initialised: set[str] = set()
    for bname in ("encoder_coarse", "encoder_medium", "encoder_fine"):
        branch = getattr(model, bname)
        backbone = {k: v for k, v in src.items() if not k.startswith(("fc_param.", "fc_lm.", "fc."))}
        r = _copy_matching(branch, backbone, bname + ".")
        copied += r["copied"]
        used |= r["_used"]
        for fusion, stage in (("fusion2", 1), ("fusion3", 2)):
            block = getattr(branch, fusion, None)
            if block is None:
                continue
            bn = getattr(branch, MOBILENET_STAGES[stage][-1]).bn_sep  # produced the fused features
            if _init_fusion_identity(block, *_relu_gaussian_moments(bn.bias, bn.weight)):
                initialised |= {f"{bname}.{fusion}.{k}" for k in block.state_dict()}
            else:
                notes.append(f"{bname}.{fusion}: middle width < fused width, left at random init")
    if "fc_param.weight" in src and _init_head_linear(model.head_coarse, src["fc_param.weight"], src["fc_param.bias"]):
        used |= {"fc_param.weight", "fc_param.bias"}
        initialised |= {"head_coarse." + k for k in model.head_coarse.state_dict()}
    else:
        notes.append("head_coarse: cannot hold the source fc_param, left at random init")
    initialised |= _heads_predict_mean(model, ("head_medium", "head_fine"))
    if _init_decoder_passthrough(model):
        initialised |= {"decoder." + k for k in model.decoder.state_dict()}
    else:
        notes.append("decoder: hidden width < 62, left at random init")
    touched = {f"{b}.{k}" for b in ("encoder_coarse", "encoder_medium", "encoder_fine")
               for k in getattr(model, b).state_dict() if f"{b}.{k}" not in initialised and k in src}
    skipped = [k for k in model.state_dict() if k not in initialised and k not in touched]
    return {"copied": copied, "initialised": len(initialised), "skipped": skipped, "notes": notes, "_used": used}
