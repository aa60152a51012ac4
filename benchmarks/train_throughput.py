"""Training throughput (crops/s, one optimizer step incl. the 4-head WPDC loss) at batch 32: fp32 vs bf16 autocast,
each in the default (NCHW) and the channels_last (NHWC) memory layout.

    MFIRRN_ASSET_MIRROR=... python benchmarks/train_throughput.py [--models mfirrn-r18-half 3ddfa-mb1 ...] [--steps 3]
    python benchmarks/train_throughput.py --device cuda --steps 30     # on a GPU (timed with synchronisation)

Network + loss + optimizer only: no data loading. Medians over a few steps; on a shared 2-core machine noisy.
"""

from __future__ import annotations

import argparse
import copy
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


VARIANTS = (("fp32", False), ("bf16", False), ("fp32", True), ("bf16", True))  # (precision, channels_last)


def step_rates(name: str, bfm: MorphableModel, device: torch.device, batch: int, steps: int) -> list[float]:
    """Median crops/s of ``steps`` SGD steps (after 3 warm-up steps) of model ``name`` on random input, for
    each of ``VARIANTS``: one copy of the network per variant, their steps interleaved (one step of each per
    round), so that every variant sees the same machine."""
    card = get_card(name)
    crit = build_loss("wpdc", card.load_stats(), bfm).to(device)
    torch.manual_seed(0)
    base = card.builder().train().to(device)
    x = torch.randn(batch, 3, 120, 120, device=device)
    y = torch.randn(batch, 62, device=device) * 0.1
    runs = []
    for precision, channels_last in VARIANTS:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        net = copy.deepcopy(base).to(memory_format=fmt)
        opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, nesterov=True, weight_decay=5e-4)
        runs.append((precision, net, opt, x.contiguous(memory_format=fmt), []))
    for i in range(steps + 3):
        for precision, net, opt, xv, ts in runs:
            _sync(device)
            t = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext():
                out = net(xv)
            outs = [o.float() for o in out] if isinstance(out, tuple) else out.float()
            loss = multi_output_loss(crit, outs, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            _sync(device)
            if i >= 3:
                ts.append(time.perf_counter() - t)
    return [batch / statistics.median(ts) for *_, ts in runs]


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
    print(f"medians of {args.steps} steps after 3 warm-up steps, the four variants interleaved; no data loading")
    print("crops/s; NHWC = channels_last (the trainer's `channels_last: true`); speed-ups against fp32\n")
    print(f"{'model':<18} {'fp32':>8} {'bf16':>8} {'fp32 NHWC':>10} {'bf16 NHWC':>10}   speed-ups")
    for name in args.models:
        r = step_rates(name, bfm, device, args.batch, args.steps)
        ups = " / ".join(f"{v / r[0]:.2f}x" for v in r[1:])
        print(f"{name:<18} {r[0]:8.1f} {r[1]:8.1f} {r[2]:10.1f} {r[3]:10.1f}   {ups}")


if __name__ == "__main__":
    main()
