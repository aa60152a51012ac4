"""Training step time on the CPU with glibc's default allocator against freed memory kept in the heap
(:func:`mfirrn.io.heap.keep_freed_memory`, what ``mfirrn train`` does on the CPU).

The step is the 300W-LP-scale recipe's (``aflwlp-mfirrn-mb05``): the student in NHWC fp32, a frozen teacher
of the same pixel convention on the same crops (an untrained ``3ddfa-mb05``: the pretrained teacher's
network, so the same arithmetic, without its asset), the WPDC loss of every head against both targets with one
vertex sample, gradient clipping, AdamW. Random crops, no data loading. The allocator setting is process-wide,
so each variant runs in its own child process; the children alternate (default, kept, default, kept, ...)
so that both see the same machine. Each child prints its median step time and the page faults of its timed
steps.

    python benchmarks/train_heap.py [--model mfirrn-mb05] [--batch 128] [--steps 6] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def child(model: str, teacher_arch: str, batch: int, steps: int, keep: bool) -> None:
    import resource

    import torch
    from torch import nn

    from mfirrn.geometry.bfm import MorphableModel
    from mfirrn.io.heap import keep_freed_memory
    from mfirrn.models import get_card
    from mfirrn.train.losses import build_loss, multi_output_loss

    applied = keep_freed_memory() if keep else False
    fmt = torch.channels_last
    torch.manual_seed(0)
    card = get_card(model)
    net = card.builder().train().to(memory_format=fmt)
    teacher = get_card(teacher_arch).builder().eval().to(memory_format=fmt)
    for p in teacher.parameters():
        p.requires_grad_(False)
    crit = build_loss("wpdc", card.load_stats(), MorphableModel("full"), n_resample=132)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-5, weight_decay=1e-4)
    x = torch.randn(batch, 3, 120, 120).contiguous(memory_format=fmt)
    y = torch.randn(batch, 62) * 0.1
    times, faults = [], 0
    for i in range(steps + 3):
        f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        out = net(x)
        outs = [o.float() for o in out] if isinstance(out, tuple) else out.float()
        with torch.no_grad():
            t_out = teacher(x)
        rows = crit.sample_rows(None)
        loss = 0.5 * multi_output_loss(crit, outs, y, rows=rows) + 0.5 * multi_output_loss(crit, outs, t_out, rows=rows)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t0)
            faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    print(json.dumps({"keep": keep, "applied": applied, "median_s": statistics.median(times),
                      "faults_per_step": faults / steps}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mfirrn-mb05")
    ap.add_argument("--teacher", default="3ddfa-mb05", help="teacher architecture (default 3ddfa-mb05)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per child, after 3 warm-up steps")
    ap.add_argument("--rounds", type=int, default=2, help="children per variant, alternating")
    ap.add_argument("--child", choices=["default", "kept"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.model, args.teacher, args.batch, args.steps, args.child == "kept")
        return
    from mfirrn.io.heap import user_tuned
    from mfirrn.io.machine import machine_line

    env = {k: v for k, v in os.environ.items() if not user_tuned({k: v})}  # the children start from glibc's defaults
    print(machine_line())
    print(f"training step of {args.model} + teacher {args.teacher}, batch {args.batch}, NHWC fp32; {args.rounds} "
          f"children per variant, alternating, each the median of {args.steps} steps after 3 warm-up steps\n")
    results: dict[str, list[dict]] = {"default": [], "kept": []}
    for _ in range(args.rounds):
        for variant in ("default", "kept"):
            cmd = [sys.executable, __file__, "--child", variant, "--model", args.model, "--teacher", args.teacher,
                   "--batch", str(args.batch), "--steps", str(args.steps)]
            res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            results[variant].append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(f"{'allocator':<28} {'s per step (each child)':<26} {'crops/s':>8} {'page faults per step':>21}")
    for variant, label in (("default", "glibc defaults"), ("kept", "freed memory kept (trainer)")):
        rs = results[variant]
        med = statistics.median(r["median_s"] for r in rs)
        each = " / ".join(f"{r['median_s']:.3f}" for r in rs)
        faults = statistics.median(r["faults_per_step"] for r in rs)
        print(f"{label:<28} {each:<26} {args.batch / med:8.1f} {faults:21.0f}")
    d = statistics.median(r["median_s"] for r in results["default"])
    k = statistics.median(r["median_s"] for r in results["kept"])
    print(f"\nspeed-up of the kept heap: {d / k:.2f}x (median of the children's medians)")


if __name__ == "__main__":
    main()
