"""Parameter counts and CPU inference speed of MFIRRN variants (prints a table).

    MFIRRN_ASSET_MIRROR=... python benchmarks/model_speed.py [--model mfirrn-r34] [--reps 5] [--no-compile]

The variants are timed round-robin (each round runs every variant once at batch 1 and once at
``--batch``), so a slow phase of a shared machine hits all of them alike; the table gives the median and
the best of the rounds, and speed-ups against the first row for both.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from mfirrn.models import get_card
from mfirrn.models.mfirrn_net import MFIRRN, released_parameter_count


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every Conv2d directly followed by its BatchNorm2d (eval mode) into the conv; BN -> Identity."""
    for mod in model.modules():
        names = list(mod._modules)
        for a, b in zip(names, names[1:]):
            ca, cb = mod._modules[a], mod._modules[b]
            if isinstance(ca, nn.Conv2d) and isinstance(cb, nn.BatchNorm2d):
                mod._modules[a] = fuse_conv_bn_eval(ca, cb)
                mod._modules[b] = nn.Identity()
    return model


def once(fn, x) -> float:
    with torch.no_grad():
        t = time.perf_counter()
        fn(x)
        return time.perf_counter() - t


def fused(model):
    return lambda x: (lambda y: y.fused if hasattr(y, "fused") else y)(model(x))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mfirrn-r34")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--no-bf16", action="store_true", help="skip bf16 autocast (very slow on CPUs without AMX/AVX512-BF16)")
    args = ap.parse_args()
    torch.manual_seed(0)
    card = get_card(args.model)
    live = card.builder().eval()
    rows = []
    if isinstance(live, MFIRRN):
        released_n, live_n = released_parameter_count(live.config)
        print(f"{args.model}: parameters as released {released_n / 1e6:.3f} M, live {live_n / 1e6:.3f} M "
              f"(dead {(released_n - live_n) / 1e6:.3f} M)")
        released = MFIRRN(live.config, released=True).eval()
        released.load_state_dict(live.state_dict(), strict=False)
        for k, v in live.state_dict().items():
            assert torch.equal(released.state_dict()[k], v)
    else:
        released = None
    x1 = torch.randn(1, 3, 120, 120)
    xb = torch.randn(args.batch, 3, 120, 120)
    with torch.no_grad():
        ref = fused(live)(xb)

    def bf16(m):
        def f(x):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return fused(m)(x).float()
        return f

    variants = []
    if released is not None:
        variants.append(("released eager fp32 (dead compute)", fused(released)))
    variants.append(("eager fp32 (dead compute skipped)", fused(live)))
    if not args.no_bf16:
        variants.append(("bf16 autocast", bf16(live)))
    cl = card.builder().eval()
    cl.load_state_dict(live.state_dict())
    cl = cl.to(memory_format=torch.channels_last)
    variants.append(("channels-last fp32", lambda x: fused(cl)(x.contiguous(memory_format=torch.channels_last))))
    fb = card.builder().eval()
    fb.load_state_dict(live.state_dict())
    fold_batchnorm(fb)
    variants.append(("BN folded fp32", fused(fb)))
    if not args.no_compile:
        try:
            comp = torch.compile(live)
            t = time.perf_counter()
            with torch.no_grad():
                fused(comp)(x1)
                fused(comp)(xb)
            print(f"torch.compile warm-up {time.perf_counter() - t:.1f} s")
            variants.append(("torch.compile fp32", fused(comp)))
        except Exception as exc:  # noqa: BLE001 - report and go on
            rows.append(("torch.compile fp32", float("nan"), float("nan"), float("nan"), f"failed: {type(exc).__name__}"))
    try:
        import onnxruntime as ort

        from mfirrn.inference.onnx import export_onnx

        live.stats = card.load_stats()
        path = os.path.join(tempfile.mkdtemp(), "m.onnx")
        export_onnx(live, path)
        so = ort.SessionOptions()
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        variants.append(("ONNX Runtime fp32", lambda x: torch.from_numpy(sess.run(None, {"crops": x.numpy()})[0])))
    except ImportError:
        rows.append(("ONNX Runtime fp32", float("nan"), float("nan"), float("nan"), "onnxruntime not installed"))
    print(f"\nCPU inference, {args.model}; {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{args.reps} rounds, variants interleaved; median / best of the rounds\n")
    lat = {name: [] for name, _ in variants}
    bat = {name: [] for name, _ in variants}
    for name, fn in variants:  # warm-up
        once(fn, x1), once(fn, xb)
    for _ in range(args.reps):
        for name, fn in variants:
            lat[name].append(once(fn, x1))
            bat[name].append(once(fn, xb))
    print(f"{'variant':<38} {'1 crop ms':>13} {'crops/s @' + str(args.batch):>13} {'speed-up 1 / ' + str(args.batch):>15}"
          f"  output check")
    for name, l_, c_, sp, note in rows:  # variants that could not run
        print(f"{name:<38} {l_:13.1f} {c_:13.1f} {sp:15.2f}  {note}", flush=True)
    base = None
    for name, fn in variants:
        lm, lb = statistics.median(lat[name]), min(lat[name])
        bm, bb = statistics.median(bat[name]), min(bat[name])
        with torch.no_grad():
            dev = float((fn(xb).float() - ref).abs().max())
        base = base or (lm, lb, bm, bb)
        cell_l = f"{lm * 1000:.0f} / {lb * 1000:.0f}"
        cell_b = f"{args.batch / bm:.1f} / {args.batch / bb:.1f}"
        cell_s = f"{base[0] / lm:.2f}x / {base[2] / bm:.2f}x"
        print(f"{name:<38} {cell_l:>13} {cell_b:>13} {cell_s:>15}  max |Δ| vs fp32 {dev:.2e} "
              f"(best-of: {base[1] / lb:.2f}x / {base[3] / bb:.2f}x)", flush=True)

if __name__ == "__main__":
    main()
