"""Training throughput (crops/s, one optimizer step incl. the 4-head WPDC loss) at batch 32, fp32 vs bf16 autocast.

    MFIRRN_ASSET_MIRROR=... python benchmarks/train_throughput.py [--models mfirrn-r18-half 3ddfa-mb1 ...] [--steps 3]

Medians over a few steps on a shared 2-core machine: noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch

from mfirrn.bfm import MorphableModel
from mfirrn.losses import build_loss, multi_output_loss
from mfirrn.models import get_card


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["3ddfa-mb05", "3ddfa-mb1", "mfirrn-r18-half", "mfirrn-r34"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    bfm = MorphableModel("full")
    print(f"training step throughput, batch {args.batch}, CPU {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("medians of a few steps on a shared 2-core machine: noisy\n")
    print(f"{'model':<18} {'fp32 crops/s':>13} {'bf16 crops/s':>13} {'bf16 speed-up':>14}")
    for name in args.models:
        card = get_card(name)
        stats = card.load_stats()
        crit = build_loss("wpdc", stats, bfm)
        res = []
        for prec in ("fp32", "bf16"):
            torch.manual_seed(0)
            net = card.builder().train()
            opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, nesterov=True, weight_decay=5e-4)
            x = torch.randn(args.batch, 3, 120, 120)
            y = torch.randn(args.batch, 62) * 0.1
            ts = []
            for i in range(args.steps + 1):
                t = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16) if prec == "bf16" else nullcontext():
                    out = net(x)
                outs = [o.float() for o in out] if isinstance(out, tuple) else out.float()
                loss = multi_output_loss(crit, outs, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if i:
                    ts.append(time.perf_counter() - t)
            res.append(args.batch / statistics.median(ts))
        print(f"{name:<18} {res[0]:13.1f} {res[1]:13.1f} {res[1] / res[0]:13.2f}x")


if __name__ == "__main__":
    main()
