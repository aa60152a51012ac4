"""Folder-scale speed of ``mfirrn reconstruct``: one process, ``--workers N`` processes, and Ray actors.

A folder of photos is made from the faces-68 photos (each photo, mirrored or not, at a few scales: every
file different). Each engine reconstructs it into a fresh folder, in rounds of alternating order, as a user
runs it (a subprocess of the ``mfirrn`` command, outputs ``json,table``). Reported per row: the wall time of
the whole command (start-up included: Python, the models, the worker processes or the Ray cluster), the
images/s the command reports once running (from its first finished photo to its last: start-up left out), and
the speed-up over one process. Every row's table
must equal the one-process table (checked).

The CPU, the CPUs this process may use and the load average before and after are printed: on a shared,
busy machine the ratios fall far short of what a quiet one gives.

    python benchmarks/scale.py [--photos 100] [--engines local:1 local:2 ray:1 ray:2] [--rounds 2] [--datasets DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

SCALES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def photo_folder(n: int, dst: Path, datasets: Path) -> Path:
    """``n`` different photos in ``dst/<k // 25>/`` (a tree, as datasets come): faces-68 photos, mirrored or not,
    at a few scales."""
    src = sorted(p for p in (datasets / "faces-68").rglob("*") if p.suffix.lower() in (".jpg", ".png", ".ppm"))
    if not src:
        sys.exit(f"no faces-68 photos under {datasets}; pass --datasets or set MFIRRN_DATASETS")
    variants = [(p, flip, s) for s in SCALES for flip in (False, True) for p in src]
    if n > len(variants):
        sys.exit(f"at most {len(variants)} different photos can be made from faces-68")
    for k, (p, flip, s) in enumerate(variants[:n]):
        img = cv2.imread(str(p))
        img = cv2.resize(img[:, ::-1] if flip else img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        out = dst / f"{k // 25:02d}" / f"photo{k:04d}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return dst


def run_engine(folder: Path, out: Path, engine: str, workers: int, outputs: str = "json,table") -> dict:
    cmd = [sys.executable, "-m", "mfirrn.cli", "reconstruct", str(folder), "-o", str(out), "--outputs", outputs,
           "--workers", str(workers), "--engine", engine]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    rate = re.search(r"([\d.]+) images/s", r.stdout)
    return {"wall": wall, "rate": float(rate.group(1)) if rate else float("nan")}


def same_table(a: Path, b: Path) -> bool:
    import pyarrow.parquet as pq

    return pq.read_table(a).replace_schema_metadata(None).equals(pq.read_table(b).replace_schema_metadata(None))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=100)
    ap.add_argument("--engines", nargs="+", default=["local:1", "local:2", "ray:1", "ray:2"],
                    help="ENGINE:WORKERS (local or ray)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds, in alternating order; medians are reported")
    ap.add_argument("--datasets", type=Path, default=Path(os.environ.get("MFIRRN_DATASETS", "data/datasets")))
    args = ap.parse_args()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"CPU: {cpu_name()}; {cpus} CPU(s) usable by this process; load average before: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    results: dict[str, list[dict]] = {spec: [] for spec in args.engines}
    with tempfile.TemporaryDirectory(prefix="mfirrn-scale-") as tmp:
        folder = photo_folder(args.photos, Path(tmp) / "photos", args.datasets)
        first = None
        for r in range(args.rounds):
            for spec in (args.engines if r % 2 == 0 else list(reversed(args.engines))):
                engine, workers = spec.split(":")
                out = Path(tmp) / f"out-{engine}-{workers}-{r}"
                res = run_engine(folder, out, engine, int(workers))
                first = first or out
                res["same"] = same_table(out / "faces.parquet", first / "faces.parquet")
                results[spec].append(res)
                print(f"  round {r}, {spec}: {res['wall']:.1f} s, {res['rate']:.2f} images/s", file=sys.stderr)
    med = {spec: {k: statistics.median(x[k] for x in rs) for k in ("wall", "rate")} for spec, rs in results.items()}
    base = med[args.engines[0]]
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    print(f"{args.photos} photos, outputs json,table; medians of {args.rounds} round(s) in alternating order\n")
    print("| engine | workers | wall s (with start-up) | images/s (reported) | speed-up (images/s) | speed-up (wall) "
          "| table = first run's |")
    print("|---|---|---|---|---|---|---|")
    for spec in args.engines:
        engine, workers = spec.split(":")
        m = med[spec]
        same = all(x["same"] for x in results[spec])
        print(f"| {engine} | {workers} | {m['wall']:.1f} | {m['rate']:.2f} | {m['rate'] / base['rate']:.2f}x | "
              f"{base['wall'] / m['wall']:.2f}x | {'yes' if same else 'NO'} |")
    if "local:1" in med and "ray:1" in med:
        print(f"\nRay's overhead for this folder (wall time, ray:1 - local:1): "
              f"{med['ray:1']['wall'] - med['local:1']['wall']:.1f} s")


if __name__ == "__main__":
    main()
