"""The head ablation of an MFIRRN: each head alone, the fused output against the coarse head, paired intervals.

The MFIRRN's claim is that the medium and fine granularities add to the coarse one: each head is trained
with its own loss and the decoder fuses the three. On one AFLW2000-3D split and ground truth,
:func:`head_ablation` scores every output of a model on the same images (:func:`mfirrn.evaluation.benchmark.evaluate`
with ``output=``) and compares them image by image: fused − coarse, medium − coarse and fine − coarse, and
optionally every output against a reference model (e.g. the MobileNet trained with the same recipe), each as
a paired bootstrap interval of the headline number (mean of the yaw-bin means,
:func:`mfirrn.evaluation.report.paired_bin_mean_difference`) and of the per-image mean
(:func:`mfirrn.evaluation.report.paired_difference`). ``python benchmarks/head_ablation.py`` prints it.

:func:`block_probe` asks what each head reads: the crop is cut into ``n x n`` blocks and rearranged before the
model sees it (:class:`Rearranged`), and every output is scored again. A head that locates the face from where
things are in the crop fails when the blocks move; a head whose error stays the same under every arrangement
reads only what the blocks hold (``--blocks`` in ``benchmarks/head_ablation.py``).

:func:`shift_probe` asks whether each head knows where the face is: the crop's content is moved by a few pixels
(:func:`shift_crops`) and the landmarks each output predicts should move with it. :func:`follow_ratio` is the part
of the shift they follow: 1 for a head that locates the face, 0 for one whose prediction ignores where the face is
(``--shifts``). :func:`head_receptive_field` gives the part of the crop one cell of a head's last feature map
sees before the head averages the map.

:func:`shard_head_ablation` asks the fusion question on the training distribution: every output scored on the crops
of training-set shards whose faces the model never trained on, against their labels, the faces' own photos and
their re-rendered views apart, with intervals that resample faces (``--shards`` in ``benchmarks/head_ablation.py``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn

from mfirrn.evaluation.benchmark import AFLW2000, evaluate, score_params
from mfirrn.evaluation.metrics import YawBinSummary, nme
from mfirrn.evaluation.report import (
    PairedDifference,
    paired_bin_mean_difference,
    paired_cluster_difference,
    paired_difference,
)
from mfirrn.geometry.crop import crops_to_tensor
from mfirrn.inference.predict import predict_outputs
from mfirrn.models.mfirrn_net import jigsaw

__all__ = ["HEAD_OUTPUTS", "HeadAblation", "head_ablation", "format_ablation", "Rearranged", "BlockProbe",
           "arrangements", "block_probe", "format_block_probe", "shift_crops", "follow_ratio", "ShiftProbe",
           "shift_probe", "format_shift_probe", "head_receptive_field", "ShardAblation", "shard_head_ablation",
           "format_shard_ablation"]

#: The outputs of an MFIRRN, coarse first (the baseline every other output is compared with).
HEAD_OUTPUTS = ("coarse", "medium", "fine", "fused")


@dataclass
class HeadAblation:
    """Scores of every output of one model on one split and GT (NME in %).

    ``summaries[output]``: yaw-bin summary; ``per_image[output]`` (N,) NME in %; ``paired[label]``:
    ``(bin-mean difference, per-image difference)`` for labels ``"fused - coarse"``, ``"medium - coarse"``,
    ``"fine - coarse"`` and, with a reference, ``"<output> - <reference>"`` (negative: the first is better).
    """

    model: str
    gt: str
    n_images: int
    summaries: dict[str, YawBinSummary]
    per_image: dict[str, np.ndarray]
    paired: dict[str, tuple[PairedDifference, PairedDifference]] = field(default_factory=dict)
    reference: Optional[str] = None

    def to_dict(self) -> dict:
        def pd(d: PairedDifference) -> dict:
            return {"mean": d.mean, "ci": list(d.ci), "lower": d.lower, "higher": d.higher, "resolved": d.resolved()}

        return {"model": self.model, "gt": self.gt, "n_images": self.n_images, "reference": self.reference,
                "outputs": {k: s.to_dict() for k, s in self.summaries.items()},
                "paired": {k: {"bin_mean": pd(a), "per_image": pd(b)} for k, (a, b) in self.paired.items()}}


def _pair(a: np.ndarray, b: np.ndarray, yaw: np.ndarray, n: int, seed: int) -> tuple[PairedDifference, ...]:
    return paired_bin_mean_difference(a, b, yaw, n=n, seed=seed), paired_difference(a, b, n=n, seed=seed)


def head_ablation(model: Any, data: AFLW2000, *, name: Optional[str] = None, reference: Any = None,
                  reference_name: Optional[str] = None, bfm: Any = None, n: int = 10000, seed: int = 0,
                  batch_size: int = 128) -> HeadAblation:
    """Score each output of an MFIRRN ``model`` (carrying ``card``/``stats``) on ``data`` and compare them.

    ``reference``: an optional second model (any architecture; its fused output) compared with every output.
    ``n`` bootstrap replicates from ``seed``.
    """
    from mfirrn.geometry.bfm import MorphableModel

    bfm = bfm if bfm is not None else MorphableModel("full")
    name = name or model.card.name
    per_image, summaries = {}, {}
    params = predict_outputs(model, crops_to_tensor(data.crops), batch_size=batch_size, outputs=HEAD_OUTPUTS)
    for out in HEAD_OUTPUTS:
        res = score_params(params[out], data, convention=model.card.convention, bfm=bfm, name=name, pose=False)
        per_image[out], summaries[out] = res.nme * 100, res.summary
    yaw = np.asarray(data.yaw, np.float64)
    ab = HeadAblation(name, data.gt_kind, len(data.names), summaries, per_image)
    for out in ("fused", "medium", "fine"):
        ab.paired[f"{out} - coarse"] = _pair(per_image["coarse"], per_image[out], yaw, n, seed)
    if reference is not None:
        ref_name = reference_name or reference.card.name
        res = evaluate(reference, data, bfm=bfm, batch_size=batch_size, name=ref_name)
        ab.reference = ref_name
        ab.summaries[ref_name], ab.per_image[ref_name] = res.summary, res.nme * 100
        for out in HEAD_OUTPUTS:
            ab.paired[f"{out} - {ref_name}"] = _pair(res.nme * 100, per_image[out], yaw, n, seed)
    return ab


def _fmt_pair(d: PairedDifference) -> str:
    return f"{d.mean:+.3f} [{d.ci[0]:+.3f}, {d.ci[1]:+.3f}]{' *' if d.resolved() else ''}"


def format_ablation(ab: HeadAblation) -> str:
    """Two Markdown tables: every output's NME by yaw bin, then the paired differences (95 % intervals;
    ``*`` marks an interval that excludes 0)."""
    lines = [f"{ab.model}, AFLW2000-3D ({ab.n_images} images), {ab.gt} GT, NME %", "",
             "| output | [0,30] | (30,60] | (60,90] | Mean | per-image mean |", "|---|---|---|---|---|---|"]
    for out, s in ab.summaries.items():
        bins = " | ".join(f"{b:.3f}" for b in s.bins)
        lines.append(f"| {out} | {bins} | {s.mean:.3f} | {s.per_image_mean:.3f} |")
    lines += ["", "| paired difference | Mean (of bin means), 95 % interval | per-image mean, 95 % interval | "
              "images better / worse |", "|---|---|---|---|"]
    for label, (bm, pi) in ab.paired.items():
        lines.append(f"| {label} | {_fmt_pair(bm)} | {_fmt_pair(pi)} | {pi.lower} / {pi.higher} |")
    return "\n".join(lines)


@dataclass
class ShardAblation:
    """Every output of an MFIRRN scored on the crops of training-set shards against their labels (NME in %,
    :func:`mfirrn.evaluation.metrics.nme` in crop pixels, as the trainer's validation).

    ``face`` (N,): each crop's source face; ``kind`` (N,): ``"photo"`` (the face's own photo) or ``"profiled"``
    (a re-rendered view); ``per_crop[output]`` (N,); ``paired[subset][label]``: ``b - a`` with faces resampled
    (:func:`mfirrn.evaluation.report.paired_cluster_difference`) for subsets ``"all"``, ``"photo"``, ``"profiled"``
    and labels ``"fused - coarse"``, ``"medium - coarse"``, ``"fine - coarse"`` and, with a reference model,
    ``"fused - <reference>"`` and ``"coarse - <reference>"`` (its output is then in ``per_crop`` too).
    """

    model: str
    root: str
    shards: list[str]
    face: np.ndarray
    kind: np.ndarray
    per_crop: dict[str, np.ndarray]
    paired: dict[str, dict[str, PairedDifference]] = field(default_factory=dict)
    reference: Optional[str] = None

    def subsets(self) -> dict[str, np.ndarray]:
        """Boolean masks of the crops of each subset."""
        return {"all": np.ones(self.kind.shape, bool), "photo": self.kind == "photo",
                "profiled": self.kind == "profiled"}

    def to_dict(self) -> dict:
        masks = self.subsets()
        return {"model": self.model, "root": self.root, "shards": self.shards, "reference": self.reference,
                "subsets": {k: {"crops": int(m.sum()), "faces": int(np.unique(self.face[m]).size),
                                "nme": {o: float(v[m].mean()) for o, v in self.per_crop.items()},
                                "paired": {label: {"mean": d.mean, "ci": list(d.ci), "resolved": d.resolved()}
                                           for label, d in self.paired.get(k, {}).items()}}
                            for k, m in masks.items() if m.any()}}


def shard_head_ablation(model: Any, data: Any, *, name: Optional[str] = None, reference: Any = None,
                        reference_name: Optional[str] = None, bfm: Any = None, n: int = 10000, seed: int = 0,
                        batch_size: int = 128) -> ShardAblation:
    """Score each output of an MFIRRN ``model`` on training-set crops ``data`` against their labels, and compare
    the outputs face by face.

    ``data``: a :class:`mfirrn.data.shards.ShardCrops` (:func:`mfirrn.data.shards.read_shard_crops`), meant to hold
    faces the model never trained on (e.g. the shards a longer ``--limit`` adds to the training set's faces): the
    test of the fusion on the training distribution, beside the benchmark's test on AFLW2000-3D. ``reference``: an
    optional second model (any architecture, trained on the same convention; its fused output) compared with the
    fused and coarse outputs.
    """
    from mfirrn.geometry.bfm import MorphableModel

    for m in (model, reference):
        if m is not None and data.convention != m.card.convention:
            raise ValueError(f"the shards of {data.root} hold params in the {data.convention!r} convention but "
                             f"{m.card.name} predicts {m.card.convention!r}; score a model trained on this "
                             "convention")
    bfm = (bfm if bfm is not None else MorphableModel("full")).to("cpu")
    crops = crops_to_tensor(data.images)
    params = predict_outputs(model, crops, batch_size=batch_size, outputs=HEAD_OUTPUTS)
    pairs = [(f"{o} - coarse", "coarse", o) for o in ("fused", "medium", "fine")]
    ref_name = None
    if reference is not None:
        ref_name = reference_name or reference.card.name
        params[ref_name] = predict_outputs(reference, crops, batch_size=batch_size)["fused"]
        pairs += [(f"{o} - {ref_name}", ref_name, o) for o in ("fused", "coarse")]
    with torch.no_grad():
        gt = bfm.landmarks(torch.as_tensor(data.params, dtype=torch.float32), convention=data.convention).numpy()
        per_crop = {o: nme(bfm.landmarks(p.float(), convention=data.convention).numpy(), gt) * 100
                    for o, p in params.items()}  # every model's convention is the shards' (checked above)
    ab = ShardAblation(name or model.card.name, str(data.root), list(data.shards), np.asarray(data.face),
                       np.asarray(data.kind), per_crop, reference=ref_name)
    for subset, mask in ab.subsets().items():
        if mask.any():
            ab.paired[subset] = {label: paired_cluster_difference(per_crop[a][mask], per_crop[b][mask],
                                                                  ab.face[mask], n=n, seed=seed)
                                 for label, a, b in pairs}
    return ab


def format_shard_ablation(ab: ShardAblation) -> str:
    """A Markdown table: every output's NME on each subset of the crops, then the paired differences (faces
    resampled, 95 % intervals; ``*`` marks an interval that excludes 0)."""
    masks = {k: m for k, m in ab.subsets().items() if m.any()}
    head = " | ".join(f"{k} ({int(m.sum())} crops, {np.unique(ab.face[m]).size} faces)" for k, m in masks.items())
    lines = [f"{ab.model}, shards {ab.shards[0]}..{ab.shards[-1]} of {ab.root}, NME % against the labels", "",
             f"| output | {head} |", "|---|" + "---|" * len(masks)]
    for out, v in ab.per_crop.items():
        lines.append(f"| {out} | " + " | ".join(f"{v[m].mean():.3f}" for m in masks.values()) + " |")
    for label in next(iter(ab.paired.values())):
        lines.append(f"| {label} | " + " | ".join(_fmt_pair(ab.paired[k][label]) for k in masks) + " |")
    return "\n".join(lines)


class Rearranged(nn.Module):
    """``model`` (carrying ``card``/``stats``) fed each crop cut into ``n x n`` blocks with block ``perm[k]`` put
    at position ``k`` (:func:`mfirrn.models.mfirrn_net.jigsaw`); every branch sees the rearranged crop."""

    def __init__(self, model: nn.Module, n: int, perm: Sequence[int]) -> None:
        super().__init__()
        if sorted(perm) != list(range(n * n)):
            raise ValueError(f"perm must order the {n * n} blocks 0..{n * n - 1}, got {list(perm)}")
        self.model, self.n = model, n
        self.perm = torch.as_tensor(list(perm), dtype=torch.int64)
        self.card, self.stats = model.card, model.stats  # type: ignore[union-attr]

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(jigsaw(x, self.n, self.perm))


def arrangements(n: int, count: int, seed: int = 0) -> list[tuple[int, ...]]:
    """``count`` distinct arrangements of ``n x n`` blocks other than the identity: all of them, in order, when
    there are no more than ``count`` (23 for 2x2), else drawn at random from ``seed``.

    >>> len(arrangements(2, 100)), arrangements(2, 100)[0]
    (23, (0, 1, 3, 2))
    >>> len(set(arrangements(3, 5))), tuple(range(9)) in arrangements(3, 5)
    (5, False)
    """
    identity = tuple(range(n * n))
    if count >= math.factorial(n * n) - 1:
        return [p for p in itertools.permutations(identity) if p != identity]
    g, out = torch.Generator().manual_seed(seed), []
    while len(out) < count:
        p = tuple(torch.randperm(n * n, generator=g).tolist())
        if p != identity and p not in out:
            out.append(p)
    return out


@dataclass
class BlockProbe:
    """Each output's per-image mean NME (%) on one split and GT with the crops as they are (``in_place``) and
    rearranged (``rearranged[n][output]``: (K,) one value per arrangement in ``perms[n]``)."""

    model: str
    gt: str
    n_images: int
    in_place: dict[str, float]
    rearranged: dict[int, dict[str, np.ndarray]]
    perms: dict[int, list[tuple[int, ...]]]

    def to_dict(self) -> dict:
        return {"model": self.model, "gt": self.gt, "n_images": self.n_images, "in_place": self.in_place,
                "rearranged": {str(n): {"perms": [list(p) for p in self.perms[n]],
                                        **{o: v.tolist() for o, v in r.items()}} for n, r in self.rearranged.items()}}


def block_probe(model: Any, data: AFLW2000, *, name: Optional[str] = None, grids: Sequence[int] = (2, 3),
                count: int = 23, seed: int = 0, bfm: Any = None, batch_size: int = 128) -> BlockProbe:
    """Score every output of an MFIRRN ``model`` on ``data`` with each crop as it is and cut into ``n x n``
    blocks (each ``n`` of ``grids``) rearranged by :func:`arrangements` (``count`` of them, ``seed``)."""
    from mfirrn.geometry.bfm import MorphableModel

    bfm = bfm if bfm is not None else MorphableModel("full")
    name = name or model.card.name
    x = crops_to_tensor(data.crops)

    def score(net: Any) -> dict[str, float]:
        params = predict_outputs(net, x, batch_size=batch_size, outputs=HEAD_OUTPUTS)
        return {o: float(np.mean(score_params(params[o], data, convention=model.card.convention, bfm=bfm,
                                              name=name, pose=False).nme) * 100) for o in HEAD_OUTPUTS}

    probe = BlockProbe(name, data.gt_kind, len(data.names), score(model), {}, {})
    for n in grids:
        probe.perms[n] = arrangements(n, count, seed)
        rows = [score(Rearranged(model, n, p)) for p in probe.perms[n]]
        probe.rearranged[n] = {o: np.array([r[o] for r in rows]) for o in HEAD_OUTPUTS}
    return probe


def format_block_probe(probe: BlockProbe) -> str:
    """A Markdown table: each output's NME with the crops as they are, and its range (and median) over the
    arrangements of each grid, with how many arrangements score below the crops as they are."""
    lines = [f"{probe.model}, AFLW2000-3D ({probe.n_images} images), {probe.gt} GT: per-image mean NME % with the "
             "crop cut into blocks and rearranged before the model sees it", "",
             "| output | as it is | " + " | ".join(f"{n}x{n} blocks, {len(probe.perms[n])} arrangements: min-max "
                                                   "(median), better than as it is" for n in probe.rearranged) + " |",
             "|---|---:|" + "---|" * len(probe.rearranged)]
    for o in HEAD_OUTPUTS:
        cells = [f"{v.min():.3f}-{v.max():.3f} ({np.median(v):.3f}), {int((v < probe.in_place[o]).sum())}"
                 for v in (probe.rearranged[n][o] for n in probe.rearranged)]
        lines.append(f"| {o} | {probe.in_place[o]:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def shift_crops(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """(B, C, H, W) normalised crops with their content moved ``dx`` pixels right and ``dy`` down; the uncovered
    border is 0 (mid-grey in the ``(x - 127.5) / 128`` normalisation).

    >>> x = torch.arange(16.).reshape(1, 1, 4, 4)
    >>> shift_crops(x, 1, 0)[0, 0, 0].tolist(), shift_crops(x, 0, -1)[0, 0, :, 0].tolist()
    ([0.0, 0.0, 1.0, 2.0], [4.0, 8.0, 12.0, 0.0])
    """
    h, w = x.shape[-2:]
    if abs(dx) >= w or abs(dy) >= h:
        raise ValueError(f"shift ({dx}, {dy}) moves the whole {w}x{h} crop out of view")
    out = torch.zeros_like(x)
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def follow_ratio(before: np.ndarray, after: np.ndarray, shift: Sequence[float]) -> np.ndarray:
    """Per image, the part of a shift that predicted landmarks follow: the mean displacement ``after - before``
    of the (B, K, >=2) landmarks (x, y first, pixels) projected on ``shift`` = (dx, dy), divided by its length
    squared. 1: they moved with the crop's content; 0: they stayed where they were.

    >>> before = np.zeros((1, 2, 2)); follow_ratio(before, before + [4.0, 0.0], (4, 0)).tolist()
    [1.0]
    >>> follow_ratio(before, before + [1.0, 3.0], (4, 0)).tolist(), follow_ratio(before, before, (0, -4)).tolist()
    ([0.25], [0.0])
    """
    s = np.asarray(shift, np.float64)
    if not s.any():
        raise ValueError("follow_ratio needs a non-zero shift")
    d = (np.asarray(after, np.float64)[..., :2] - np.asarray(before, np.float64)[..., :2]).mean(axis=1)
    return d @ s / float(s @ s)


@dataclass
class ShiftProbe:
    """Each output's follow ratio (:func:`follow_ratio`, mean over images) for each of ``shifts`` (dx, dy) in
    pixels: ``follow[output]`` (K,)."""

    model: str
    n_images: int
    shifts: list[tuple[int, int]]
    follow: dict[str, np.ndarray]

    def to_dict(self) -> dict:
        return {"model": self.model, "n_images": self.n_images, "shifts": [list(s) for s in self.shifts],
                "follow": {o: v.tolist() for o, v in self.follow.items()}}


def shift_probe(model: Any, crops: np.ndarray, *, name: Optional[str] = None,
                shifts: Sequence[tuple[int, int]] = ((8, 0), (-8, 0), (0, 8), (0, -8)), bfm: Any = None,
                batch_size: int = 128) -> ShiftProbe:
    """The follow ratio of every output of an MFIRRN ``model`` (or the one output, ``fused``, of a single-output
    model) on (N, 120, 120, 3) uint8 BGR ``crops`` moved by each of ``shifts`` (:func:`shift_crops`); landmarks in
    the crop frame, in the model's pixel convention."""
    from mfirrn.geometry.bfm import MorphableModel

    bfm = (bfm if bfm is not None else MorphableModel("full")).to("cpu")
    conv = model.card.convention
    x = crops_to_tensor(crops)
    with torch.no_grad():
        outputs = HEAD_OUTPUTS if hasattr(model.eval()(x[:1]), "fused") else ("fused",)

    def landmarks(inputs: torch.Tensor) -> dict[str, np.ndarray]:
        params = predict_outputs(model, inputs, batch_size=batch_size, outputs=outputs)
        with torch.no_grad():
            return {o: bfm.landmarks(p, convention=conv).numpy() for o, p in params.items()}

    base = landmarks(x)
    per_shift = [landmarks(shift_crops(x, dx, dy)) for dx, dy in shifts]
    follow = {o: np.array([float(follow_ratio(base[o], lm[o], s).mean()) for lm, s in zip(per_shift, shifts)])
              for o in outputs}
    return ShiftProbe(name or model.card.name, len(x), [tuple(s) for s in shifts], follow)


def format_shift_probe(probe: ShiftProbe) -> str:
    """A Markdown table: each output's follow ratio for every shift and their mean."""
    heads = " | ".join(f"({dx:+d}, {dy:+d}) px" for dx, dy in probe.shifts)
    lines = [f"{probe.model} ({probe.n_images} crops): the part of a shift of the crop's content that each output's "
             "landmarks follow (1: all of it, 0: none)", "",
             f"| output | {heads} | mean |", "|---|" + "---:|" * (len(probe.shifts) + 1)]
    for o in probe.follow:
        v = probe.follow[o]
        lines.append(f"| {o} | " + " | ".join(f"{f:.2f}" for f in v) + f" | {v.mean():.2f} |")
    return "\n".join(lines)


def head_receptive_field(config: Any, output: str) -> tuple[int, int]:
    """Width and height (pixels of the 120x120 crop) that the centre cell of ``output``'s last feature map (the
    map its head averages) depends on, in an MFIRRN built from ``config``: the support of that cell's gradient
    with respect to the crop, with every convolution weight positive and every BatchNorm passing its input on
    (so no ReLU hides a path) and the SE gates held constant (their global channel weights carry no position).
    Depends on the architecture only.

    >>> from mfirrn.models.mfirrn_net import MB05
    >>> head_receptive_field(MB05, "fine"), head_receptive_field(MB05, "medium")
    ((43, 43), (107, 107))
    """
    from mfirrn.models.mfirrn_net import MFIRRN, SqueezeExcite

    if output not in ("coarse", "medium", "fine"):
        raise ValueError(f"output must be coarse, medium or fine, got {output!r}")
    net = MFIRRN(config).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.uniform_(0.5, 1.0, generator=torch.Generator().manual_seed(0))
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.fill_(1.0), m.bias.fill_(1.0), m.running_mean.zero_(), m.running_var.fill_(1.0)
            elif isinstance(m, SqueezeExcite):
                m.fc2.weight.zero_()
    seen: list[torch.Tensor] = []
    hook = getattr(net, f"head_{output}").pool.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    try:
        x = torch.rand(1, 3, 120, 120, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
        net(x)
    finally:
        hook.remove()
    fmap = seen[0]
    h, w = fmap.shape[-2:]
    fmap[0, :, h // 2, w // 2].sum().backward()
    rows, cols = torch.nonzero(x.grad[0].abs().sum(0), as_tuple=True)  # type: ignore[union-attr]
    return int(cols.max() - cols.min() + 1), int(rows.max() - rows.min() + 1)
