"""Time series of the renderer beside the naive baseline and three reference loads, to tell slow windows of
the machine from slow modes of the renderer.

Every ``--interval`` seconds for ``--seconds`` seconds it prints the best of 5 round-robin calls (ms) of:
the BFM render on one thread, the naive z-buffer (``_raster.rasterize_naive``) and three reference loads
that share nothing with the renderer: a float32 matrix product (vector arithmetic from cache), a
pure-Python loop (interpreter: branches, loads) and a cumulative sum (a chain of dependent additions).
When the renderer slows together with the naive z-buffer and the Python loop while the chain holds, the
machine is slow (on a shared VM: another workload on the same physical core); when the renderer alone
slows, the cause is in its own process.

    MFIRRN_ASSET_MIRROR=... python benchmarks/render_monitor.py [--seconds 20] [--size 120]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from render import fit, timings_ms  # benchmarks/render.py, beside this file

from mfirrn import render
from mfirrn.geometry.bfm import load_bfm_arrays
from mfirrn.render import _raster


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--interval", type=float, default=0.3)
    ap.add_argument("--size", type=int, default=120)
    args = ap.parse_args()
    arrays = load_bfm_arrays("full")
    tri = np.ascontiguousarray(arrays["triangles"], np.int32)
    v = fit(arrays["u"].reshape(-1, 3), args.size)
    colors = np.random.default_rng(0).uniform(0, 1, (len(v), 3)).astype(np.float32)
    depth = np.empty((args.size, args.size), np.float32)
    image = np.zeros((args.size, args.size, 3), np.float32)
    a = np.random.default_rng(1).standard_normal((192, 192)).astype(np.float32)
    chain = np.full(50_000, 1e-6)
    fns = {
        "render 1 thr": lambda: render.rasterize(v, tri, colors, args.size, args.size, num_threads=1),
        "naive": lambda: _raster.rasterize_naive(v, tri, args.size, args.size, depth, colors, image),
        "matmul": lambda: a @ a,
        "python loop": lambda: sum(i & 7 for i in range(20_000)),
        "cumsum chain": lambda: np.cumsum(chain),
    }
    print(f"{args.size}x{args.size}; best of 5 calls each, ms")
    print("  t (s) | " + " | ".join(f"{k:>12}" for k in fns))
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        row = [best for _, best in timings_ms(list(fns.values()), runs=5)]
        print(f"{time.perf_counter() - start:7.1f} | " + " | ".join(f"{x:12.3f}" for x in row), flush=True)
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
