"""Training throughput (crops/s, one optimizer step incl. the 4-head WPDC loss) at batch 32, fp32 vs bf16 autocast.

    MFIRRN_ASSET_MIRROR=... python benchmarks/train_throughput.py [--models mfirrn-r18-half 3ddfa-mb1 ...] [--steps 3]
    python benchmarks/train_throughput.py --device cuda --steps 30     # on a GPU (timed with synchronisation)

Network + loss + optimizer only: no data loading. Medians over a few steps; on a shared 2-core machine noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch

from mfirrn.geometry.bfm import MorphableModel
from mfirrn.models import get_card
from mfirrn.train.losses import build_loss, multi_output_loss


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_rate(name: str, bfm: MorphableModel, device: torch.device, precision: str, batch: int, steps: int) -> float:
    """Median crops/s of ``steps`` SGD steps (after 3 warm-up steps) of model ``name`` on random input."""
    card = get_card(name)
    crit = build_loss("wpdc", card.load_stats(), bfm).to(device)
    torch.manual_seed(0)
    net = card.builder().train().to(device)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(batch, 3, 120, 120, device=device)
    y = torch.randn(batch, 62, device=device) * 0.1
    ts = []
    for i in range(steps + 3):
        _sync(device)
        t = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext():
            out = net(x)
        outs = [o.float() for o in out] if isinstance(out, tuple) else out.float()
        loss = multi_output_loss(crit, outs, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        _sync(device)
        if i >= 3:
            ts.append(time.perf_counter() - t)
    return batch / statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["3ddfa-mb05", "3ddfa-mb1", "mfirrn-r18-half", "mfirrn-r34"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        where = torch.cuda.get_device_name(device)
    else:
        where = f"CPU {torch.get_num_threads()} threads"
    bfm = MorphableModel("full").to(device)
    print(f"training step throughput, batch {args.batch}, {where}, torch {torch.__version__}")
    print(f"medians of {args.steps} steps after 3 warm-up steps; no data loading\n")
    print(f"{'model':<18} {'fp32 crops/s':>13} {'bf16 crops/s':>13} {'bf16 speed-up':>14}")
    for name in args.models:
        fp32, bf16 = (step_rate(name, bfm, device, p, args.batch, args.steps) for p in ("fp32", "bf16"))
        print(f"{name:<18} {fp32:13.1f} {bf16:13.1f} {bf16 / fp32:13.2f}x")


if __name__ == "__main__":
    main()
