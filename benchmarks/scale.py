"""Folder-scale speed of ``mfirrn reconstruct``: one process, ``--workers N`` processes, and Ray actors.

A folder of photos is made from the faces-68 photos (each photo, mirrored or not, at a few scales: every
file different), in subfolders of 25. Each engine reconstructs, as a user runs it (a subprocess of the
``mfirrn`` command, ``--outputs json,table`` unless told, into a fresh folder), the first half of the folder
and the whole folder, in rounds of alternating order. The difference of the two wall times is the time of
the second half alone, so start-up (Python, the models, the worker processes, the Ray cluster) cancels out:

- images/s = (n - n/2) / (wall(n) - wall(n/2)), the rate once running;
- start-up = wall(n/2) - (n/2) / (images/s), the fixed cost of a run;
- the same for the CPU time of all the command's processes: CPU-ms per photo and start-up CPU-s, which a busy
  machine changes far less than wall times.

Reported: medians over the rounds, the speed-up of each row over the first, and Ray's overhead (its start-up
beyond that of one local process). Every run's table must equal the first run's table of the same photos
(checked). The CPU, the CPUs this process may use and the load average before and after are printed: on a
shared, busy machine the ratios fall far short of what a quiet one gives.

    python benchmarks/scale.py [--photos 100] [--engines local:1 local:2 ray:1 ray:2] [--rounds 2] [--outputs O]
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from mfirrn.io.machine import machine_line

SCALES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)


def photo_folder(n: int, dst: Path, datasets: Path) -> Path:
    """``n`` different photos in ``dst/<k // 25>/`` (a tree, as datasets come): faces-68 photos, mirrored or not,
    at a few scales, then (for more than those give) the AFLW2000-3D dev-split originals the same way (timing
    only: nothing is scored or chosen on them)."""
    src = sorted(p for p in (datasets / "faces-68").rglob("*") if p.suffix.lower() in (".jpg", ".png", ".ppm"))
    if not src:
        sys.exit(f"no faces-68 photos under {datasets}; pass --datasets or set MFIRRN_DATASETS")
    variants = [(p, flip, s) for s in SCALES for flip in (False, True) for p in src]
    dev = sorted((datasets / "aflw2000-3d-dev" / "test.data" / "AFLW2000-3D").glob("*.jpg"))
    variants += [(p, flip, s) for s in SCALES for flip in (False, True) for p in dev]
    if n > len(variants):
        sys.exit(f"at most {len(variants)} different photos can be made from faces-68 and the dev split")
    for k, (p, flip, s) in enumerate(variants[:n]):
        img = cv2.imread(str(p))
        img = cv2.resize(img[:, ::-1] if flip else img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        out = dst / f"{k // 25:02d}" / f"photo{k:04d}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return dst


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_engine(folder: Path, out: Path, engine: str, workers: int, outputs: str = "json,table") -> tuple[float, float]:
    """(wall, CPU) seconds of ``mfirrn reconstruct FOLDER`` with this engine; the CPU time is that of every process
    of the command (its workers, Ray's processes) that it waited for. NaN when the command failed (on a busy
    machine a local Ray may miss its own start-up deadline)."""
    cmd = [sys.executable, "-m", "mfirrn.cli", "reconstruct", str(folder), "-o", str(out), "--outputs", outputs,
           "--workers", str(workers), "--engine", engine]
    t0, c0 = time.perf_counter(), _children_cpu()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if r.returncode != 0:
        print(f"  {engine}:{workers} on {folder.name} failed ({r.returncode}): {r.stderr.strip().splitlines()[-1]}",
              file=sys.stderr)
        return float("nan"), float("nan")
    return wall, cpu


def same_table(a: Path, b: Path) -> bool:
    import pyarrow.parquet as pq

    return pq.read_table(a).replace_schema_metadata(None).equals(pq.read_table(b).replace_schema_metadata(None))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=100)
    ap.add_argument("--engines", nargs="+", default=["local:1", "local:2", "ray:1", "ray:2"],
                    help="ENGINE:WORKERS (local or ray)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds, in alternating order; medians are reported")
    ap.add_argument("--outputs", default="json,table", help="--outputs of the runs (default json,table)")
    ap.add_argument("--datasets", type=Path, default=Path(os.environ.get("MFIRRN_DATASETS", "data/datasets")))
    args = ap.parse_args()
    print(f"CPU: {machine_line()} (1, 5, 15 min: {' '.join(f'{v:.2f}' for v in os.getloadavg())})")
    half = args.photos // 2
    walls: dict[tuple[str, int], list[float]] = {}
    cpus_used: dict[tuple[str, int], list[float]] = {}
    same = True
    with tempfile.TemporaryDirectory(prefix="mfirrn-scale-") as tmp:
        whole = photo_folder(args.photos, Path(tmp) / "whole", args.datasets)
        part = photo_folder(half, Path(tmp) / "half", args.datasets)
        first: dict[int, Path] = {}
        runs = [(spec, n) for spec in args.engines for n in (half, args.photos)]
        for r in range(args.rounds):
            for spec, n in (runs if r % 2 == 0 else list(reversed(runs))):
                engine, workers = spec.split(":")
                out = Path(tmp) / f"out-{engine}-{workers}-{n}-{r}"
                wall, cpu = run_engine(whole if n == args.photos else part, out, engine, int(workers), args.outputs)
                walls.setdefault((spec, n), []).append(wall)
                cpus_used.setdefault((spec, n), []).append(cpu)
                if math.isnan(wall):
                    continue
                first.setdefault(n, out)
                if (out / "faces.parquet").is_file():
                    same &= same_table(out / "faces.parquet", first[n] / "faces.parquet")
                print(f"  round {r}, {spec}, {n} photos: {wall:.1f} s, {cpu:.1f} CPU-s", file=sys.stderr)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    print(f"{half} and {args.photos} photos, outputs {args.outputs}; medians of {args.rounds} round(s) in alternating "
          f"order\n")
    print(f"| engine | workers | wall s, {half} photos | wall s, {args.photos} photos | images/s once running "
          f"| start-up s | speed-up | CPU-s, {args.photos} photos | CPU-ms per photo once running | start-up CPU-s |")
    print("|---|---|---|---|---|---|---|---|---|---|")

    def median(spec: str, n: int, table: dict = walls) -> float:
        ok = [w for w in table[(spec, n)] if not math.isnan(w)]
        return statistics.median(ok) if ok else float("nan")

    stats = {}
    for spec in args.engines:
        w_half, w_all = median(spec, half), median(spec, args.photos)
        rate = (args.photos - half) / (w_all - w_half) if w_all > w_half else float("nan")
        stats[spec] = (rate, w_half - half / rate)
    for spec in args.engines:
        engine, workers = spec.split(":")
        rate, start = stats[spec]
        w_half, w_all = median(spec, half), median(spec, args.photos)
        c_half, c_all = median(spec, half, cpus_used), median(spec, args.photos, cpus_used)
        per_photo = (c_all - c_half) / (args.photos - half)
        print(f"| {engine} | {workers} | {w_half:.1f} | {w_all:.1f} | {rate:.2f} | {start:.1f} | "
              f"{rate / stats[args.engines[0]][0]:.2f}x | {c_all:.1f} | {1000 * per_photo:.0f} | "
              f"{c_half - half * per_photo:.1f} |")
    failed = sum(math.isnan(w) for ws in walls.values() for w in ws)
    print(f"\nevery table equal to the first run's of the same photos: {'yes' if same else 'NO'}; runs that failed "
          f"(left out of the medians): {failed}")
    if "local:1" in stats and "ray:1" in stats:
        print(f"Ray's overhead (start-up of ray:1 beyond local:1): {stats['ray:1'][1] - stats['local:1'][1]:.1f} s")


if __name__ == "__main__":
    main()
