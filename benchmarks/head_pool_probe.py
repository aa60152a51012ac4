"""Does an MFIRRN head's global average pool erase where the face is? Two new heads on the same frozen features.

The fine head of ``mfirrn-mb05`` averages a 15x15 map whose cells each see 43 pixels of the crop
(:func:`mfirrn.evaluation.ablation.head_receptive_field`). This probe freezes a trained MFIRRN's branch up to
that map, computes it once for the crops of the first ``--shards`` training shards of a shard set (no
augmentation), and trains two heads on it the same way (WPDC on the crops' params, AdamW, one-cycle rate, same
seed): the architecture's own head (1x1 and 3x3 conv, global average pool, FC) from a fresh initialisation,
and the same head with the pool replaced by flattening the map, so the FC layer sees where each cell is. Both
are scored, with the model's own trained head, on the set's held-out shards (the trainer's split and
validation: 68-point NME % in the crop, by yaw bin). Training data only; the dev split is not used.

    MFIRRN_ASSET_MIRROR=... python benchmarks/head_pool_probe.py --model runs/aflwlp-mfirrn-mb05-inplace/last.pt \\
        --shards-root results/aflw21-samedef-lp36 [--head fine] [--shards 12] [--epochs 6]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import nn

from mfirrn import models
from mfirrn.data.shards import ShardSamples, ShardSet
from mfirrn.geometry.bfm import MorphableModel
from mfirrn.io.machine import machine_line
from mfirrn.train.losses import build_loss, multi_output_loss
from mfirrn.train.trainer import validate_params


class BranchHead(nn.Module):
    """``head`` on ``trunk``'s map, with the model's ``card``/``stats`` (what :func:`validate_params` reads)."""

    def __init__(self, trunk: nn.Module, head: nn.Module, model: nn.Module) -> None:
        super().__init__()
        self.trunk, self.head = trunk, head
        self.card, self.stats = model.card, model.stats  # type: ignore[union-attr]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


class Trunk(nn.Module):
    """An MFIRRN up to the map its ``head`` (fine or medium) averages (:meth:`~mfirrn.models.mfirrn_net.MFIRRN.fine_map`,
    :meth:`~mfirrn.models.mfirrn_net.MFIRRN.medium_map`), the crop in place."""

    def __init__(self, model: nn.Module, head: str) -> None:
        super().__init__()
        self.model, self.head = model, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fine2 = self.model.fine_map(x)  # type: ignore[operator]
        return fine2 if self.head == "fine" else self.model.medium_map(x, fine2)  # type: ignore[operator]


def fresh_head(head: nn.Module, pool: str, map_side: int) -> nn.Module:
    """A copy of ``head`` re-initialised; ``pool="flatten"`` replaces its average pool by flattening the map."""
    h = copy.deepcopy(head)
    for m in h.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()  # type: ignore[operator]
    if pool == "flatten":
        h.pool = nn.Identity()
        h.fc1 = nn.Linear(h.fc1.in_features * map_side * map_side, h.fc1.out_features)
    return h


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a trained MFIRRN: registered name or checkpoint path")
    ap.add_argument("--shards-root", required=True, help="a shard set (mfirrn data build --shards)")
    ap.add_argument("--head", default="fine", choices=("fine", "medium"))
    ap.add_argument("--shards", type=int, default=12, help="training shards whose crops train the heads (default 12)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--val-fraction", type=float, default=0.01, help="the training run's data.val_fraction")
    args = ap.parse_args()
    torch.manual_seed(0)
    print(machine_line())
    net = models.load(args.model).eval()
    trunk = Trunk(net, args.head).eval()
    own_head = getattr(net, f"head_{args.head}")
    full = ShardSet(args.shards_root)
    train_ids, val_ids = full.split(args.val_fraction, 0)
    t = time.time()
    train_set = ShardSamples(full, train_ids[:args.shards], net.stats)
    val_set = ShardSamples(full, val_ids, net.stats)
    feats, targets = [], []
    with torch.no_grad():
        for i in range(0, len(train_set), args.batch):
            items = [train_set[j] for j in range(i, min(len(train_set), i + args.batch))]
            feats.append(trunk(torch.stack([it[0] for it in items])))
            targets.append(torch.stack([it[1] for it in items]))
    x, y = torch.cat(feats), torch.cat(targets)
    print(f"{args.head} maps of {len(x)} training crops ({args.shards} shards): {tuple(x.shape[1:])}, "
          f"{time.time() - t:.0f} s; scored on {len(val_set)} held-out crops", flush=True)
    bfm = MorphableModel("full")
    criterion = build_loss("wpdc", net.stats, bfm)
    cpu = torch.device("cpu")

    def score(head: nn.Module) -> dict:
        return validate_params(BranchHead(trunk, head, net), val_set, bfm, criterion, device=cpu)

    rows = [("the model's own head (trained with the model)", score(own_head), "")]
    for pool in ("average", "flatten"):
        torch.manual_seed(0)
        head = fresh_head(own_head, pool, x.shape[-1])
        opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=1e-4)
        steps_per_epoch = len(x) // args.batch
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
        g = torch.Generator().manual_seed(0)
        t = time.time()
        for _ in range(args.epochs):
            head.train()
            perm = torch.randperm(len(x), generator=g)
            for k in range(steps_per_epoch):
                idx = perm[k * args.batch:(k + 1) * args.batch]
                loss = multi_output_loss(criterion, head(x[idx]), y[idx], generator=g)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        label = "new head, global average pool" if pool == "average" else "new head, map flattened (position kept)"
        rows.append((label, score(head), f"final training loss {float(loss.detach()):.4f}, {time.time() - t:.0f} s"))
    print(f"\n| {args.head} head on frozen maps | held-out NME % | [0,30] | (30,60] | (60,90] | |")
    print("|---|---:|---:|---:|---:|---|")
    for label, r, note in rows:
        print(f"| {label} | {r['nme']:.3f} | {r['nme_0_30']:.3f} | {r['nme_30_60']:.3f} | {r['nme_60_90']:.3f} | {note} |")


if __name__ == "__main__":
    main()
