"""Tears in UV textures of turned faces, and the time a texture takes, on the synthetic head (mfirrn.render.synthetic).

The BFM mean face with a smooth, symmetric albedo, lit from one side, on magenta, turned by each yaw; its
UV texture is made from the photo with the true mesh and with a misfitted one (3% larger, 5 pixels off,
as real fits are). Per texture: the share of chart texels that are tears (:func:`mfirrn.render.synthetic.tear_texels`:
an edge neither the face nor its mirror image has), the share that shows the background (every channel
within 60 grey levels of the magenta), and the median time of ``--runs`` calls (single process, the
compiled rasterizer on every core). Columns: this version's defaults; the same code with a hard switch
between the photo's side and the mirror (``margin = blend = 0``); and, with ``--compare FILE``, another
implementation of ``uv_texture`` (e.g. an earlier release: ``git show REV:mfirrn/render/uvtex.py > old.py``).

    MFIRRN_ASSET_MIRROR=... python benchmarks/uv_tears.py [--compare old.py] [--runs 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np

from mfirrn.io.machine import machine_line
from mfirrn.render.synthetic import BACKGROUND, synthetic_head, tear_texels
from mfirrn.render.uvtex import uv_texture


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", help="a Python file defining uv_texture(image, vertices, triangles) to compare")
    ap.add_argument("--yaws", type=float, nargs="+", default=[0.0, 30.0, 60.0, -60.0])
    ap.add_argument("--runs", type=int, default=3, help="timed calls per texture (median)")
    args = ap.parse_args()
    methods = {"default": lambda img, v, t: uv_texture(img, v, t),
               "hard switch": lambda img, v, t: uv_texture(img, v, t, margin=0.0, blend=0.0)}
    if args.compare:
        spec = importlib.util.spec_from_file_location("compared_uvtex", args.compare)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)  # type: ignore[union-attr]
        methods[f"compared ({args.compare})"] = mod.uv_texture
    print(f"CPU: {machine_line()}; texture 512x512, photo 400x400, face 300 px wide; "
          "tears % / background % of the chart texels / median seconds")
    print("| yaw | mesh | " + " | ".join(methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    totals = {k: [] for k in methods}
    for yaw in args.yaws:
        head = synthetic_head(yaw)
        for fit_name, v in (("true", head.vertices), ("misfit", head.misfit())):
            cells = []
            for name, fn in methods.items():
                times = []
                for _ in range(max(1, args.runs)):
                    t0 = time.perf_counter()
                    tex = fn(head.photo, v, head.triangles)
                    times.append(time.perf_counter() - t0)
                tears = tear_texels(tex.texture, head)[head.chart].mean() * 100
                bg = (np.abs(tex.texture.astype(np.float64) - BACKGROUND).max(axis=-1) < 60)[head.chart].mean() * 100
                totals[name].append(np.median(times))
                cells.append(f"{tears:.3f} / {bg:.3f} / {np.median(times):.2f}")
            print(f"| {yaw:+.0f} | {fit_name} | " + " | ".join(cells) + " |")
    print("median seconds over all rows: " + ", ".join(f"{k} {np.median(t):.2f}" for k, t in totals.items()))


if __name__ == "__main__":
    main()
