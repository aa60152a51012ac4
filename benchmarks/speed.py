"""Per-photo time of the Python API defaults and of ``mfirrn reconstruct``, quiet and beside busy processes, side by
side with MediaPipe Face Mesh, as ratios from one run.

    MFIRRN_ASSET_MIRROR=... MFIRRN_DATASETS=... python benchmarks/speed.py [--n 100] [--busy 0,2] [--rounds 2]

Photos: the first ``--n`` AFLW2000-3D originals of the dev split (450x450, one face each), decoded into memory
once (timing only: nothing here is tuned on them).

- **Python API defaults**: ``Reconstructor("3ddfa-v2-mb05")`` as notebook 00 builds it (every default: backend,
  threads, detector, refinement, mesh), one ``rec(image)`` call per photo.
- **MediaPipe Face Mesh 0.10.21** (``static_image_mode=True``, ``max_num_faces=1``, its defaults otherwise) in its
  own virtual environment, a benchmark dependency only (never one of the package):
  ``python benchmarks/speed.py --setup-mediapipe`` creates it at ``~/.cache/mfirrn-bench/mediapipe``
  (``python3 -m venv DIR && DIR/bin/pip install mediapipe==0.10.21``; ``--mediapipe-venv DIR`` picks another).
  ``benchmarks/mediapipe_worker.py`` runs there in a subprocess and times ``process()`` on the same photos.
  The two alternate photo by photo (the order flips every photo), so a slow phase of the machine hits both.
- **CLI**: ``mfirrn reconstruct FOLDER`` (default outputs, written) in a subprocess, per busy level; ms per photo
  from the images/s it prints (its loop, start-up not counted). The folder scaling: the same run pinned to one
  core (CPU affinity, so the threading policy gives it one thread) against all cores (the default), and with
  ``--workers 2`` (if the installed CLI has that option): images/s and their ratio to one core.
- **Busy**: for each level N of ``--busy`` the whole block runs beside N CPU-bound processes (``while True:
  pass``), started before and killed after it. ``slowdown`` = busy median / quiet median of the same run.

Optionally ``--tddfa-v2 DIR`` adds 3DDFA_V2's own pipeline (``benchmarks/tddfa_v2.py``, PyTorch) to the
interleaving, and ``--baseline DIR`` the Python API defaults of another version of this package (before/after).
The first lines name the CPU, its AVX-512 VNNI/BF16 and AMX flags, the cores this process may use and the load
average: numbers from a machine where other jobs run are not quiet numbers.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
START_ENV = dict(os.environ)  # before `import mfirrn` sets its OpenMP wait policy: the workers get this one
DEFAULT_VENV = Path.home() / ".cache" / "mfirrn-bench" / "mediapipe"
MEDIAPIPE_VERSION = "0.10.21"


def setup_mediapipe(venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", f"mediapipe=={MEDIAPIPE_VERSION}"], check=True)


class Worker:
    """A timing worker in another process (``mediapipe_worker.py``, ``api_worker.py``): ``time(k)`` -> (ms, faces)
    for photo k, timed inside the worker."""

    def __init__(self, cmd: list[str], paths: list[Path], tmp: Path, env: dict | None = None) -> None:
        listing = tmp / f"photos-{len(list(tmp.glob('photos-*')))}.txt"
        listing.write_text("".join(f"{p}\n" for p in paths))
        self.proc = subprocess.Popen([*cmd[:2], str(listing), *cmd[2:]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1, env=env or START_ENV)
        line = self.proc.stdout.readline().split()  # type: ignore[union-attr]
        if not line or line[0] != "ready":
            raise SystemExit(f"the timing worker {' '.join(cmd[:2])} did not start")
        self.version = line[1]

    def time(self, k: int) -> tuple[float, int]:
        self.proc.stdin.write(f"{k}\n")  # type: ignore[union-attr]
        ms, faces = self.proc.stdout.readline().split()  # type: ignore[union-attr]
        return float(ms), int(faces)

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")  # type: ignore[union-attr]
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


@contextmanager
def busy(n: int) -> Iterator[None]:
    """``n`` CPU-bound background processes for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(1.0 if n else 0.0)  # let the scheduler spread them
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def cli_rate(folder: Path, out: Path, extra: list[str], cpus: set[int] | None = None) -> float:
    """images/s printed by ``mfirrn reconstruct FOLDER -o OUT`` (its loop, start-up not counted); ``cpus``: the CPU
    affinity of the run (default: this process's)."""
    cmd = [sys.executable, "-m", "mfirrn.cli", "reconstruct", str(folder), "-o", str(out), *extra]
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    res = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=pin)
    m = re.search(r"([\d.]+) images/s", res.stdout)
    if res.returncode != 0 or not m:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()[-400:]}")
    return float(m.group(1))


def cli_has_workers() -> bool:
    res = subprocess.run([sys.executable, "-m", "mfirrn.cli", "reconstruct", "--help"], capture_output=True, text=True)
    return "--workers" in res.stdout


def med(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=os.environ.get("MFIRRN_DATASETS", "../shared/datasets"))
    ap.add_argument("--n", type=int, default=100, help="dev-split originals to time (default 100)")
    ap.add_argument("--busy", default="0,2", help="comma list of background CPU burner counts (default 0,2)")
    ap.add_argument("--rounds", type=int, default=2, help="passes over the busy levels (default 2)")
    ap.add_argument("--mediapipe-venv", type=Path, default=DEFAULT_VENV)
    ap.add_argument("--setup-mediapipe", action="store_true", help=f"create --mediapipe-venv with mediapipe=="
                                                                    f"{MEDIAPIPE_VERSION}, then run")
    ap.add_argument("--no-mediapipe", action="store_true", help="time this project only")
    ap.add_argument("--max-faces", type=int, default=1, help="MediaPipe max_num_faces (default 1, its default)")
    ap.add_argument("--no-cli", action="store_true", help="skip the mfirrn reconstruct runs")
    ap.add_argument("--tddfa-v2", metavar="DIR", default=None, help="also time 3DDFA_V2's pipeline (PyTorch) from "
                                                                    "a checkout (see benchmarks/tddfa_v2.py)")
    ap.add_argument("--baseline", metavar="DIR", default=None,
                    help="also time the API defaults of another source tree (e.g. `git archive` of an older commit "
                         "with its compiled renderer), in a subprocess")
    args = ap.parse_args()
    levels = [int(b) for b in args.busy.split(",")]

    import mfirrn
    from mfirrn.io.machine import cpu_info, machine_line

    print(f"CPU: {machine_line()}")
    paths = sorted((Path(args.datasets) / "aflw2000-3d-dev" / "test.data" / "AFLW2000-3D").glob("*.jpg"))[:args.n]
    if not paths:
        raise SystemExit(f"no AFLW2000-3D originals under {args.datasets}/aflw2000-3d-dev (set --datasets)")
    images = [cv2.imdecode(np.fromfile(str(p), np.uint8), cv2.IMREAD_COLOR) for p in paths]
    if args.setup_mediapipe and not (args.mediapipe_venv / "bin" / "python").is_file():
        setup_mediapipe(args.mediapipe_venv)

    with tempfile.TemporaryDirectory(prefix="mfirrn-speed-") as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "photos"
        folder.mkdir()
        for p in paths:
            (folder / p.name).symlink_to(p.resolve())
        rec = mfirrn.Reconstructor("3ddfa-v2-mb05")
        print(f"mfirrn {mfirrn.__version__}: Python API defaults = backend {rec.backend}, detector backend "
              f"{rec.detector_backend}, {rec.threads} threads, refine {rec.refine}, dense {rec.dense}")
        rec(images[0])  # warm-up: export/load of the ONNX files, first-call allocations
        timers: dict[str, Callable[[int], tuple[float, int]]] = {}

        def ours(k: int) -> tuple[float, int]:
            t0 = time.perf_counter()
            faces = rec(images[k])
            return (time.perf_counter() - t0) * 1000, len(faces)

        timers["mfirrn API defaults"] = ours
        mp = None
        if not args.no_mediapipe:
            python = args.mediapipe_venv / "bin" / "python"
            if not python.is_file():
                raise SystemExit(f"no MediaPipe environment at {args.mediapipe_venv}; create it with: python "
                                 f"{sys.argv[0]} --setup-mediapipe (or pass --mediapipe-venv DIR, or --no-mediapipe)")
            mp = Worker([str(python), str(HERE / "mediapipe_worker.py"), str(args.max_faces)], paths, tmp)
            timers[f"MediaPipe Face Mesh {mp.version}"] = mp.time
        base = None
        if args.baseline:
            env = dict(START_ENV, PYTHONPATH=str(Path(args.baseline).resolve()))
            base = Worker([sys.executable, str(HERE / "api_worker.py")], paths, tmp, env=env)
            timers[f"mfirrn API defaults, {args.baseline}"] = base.time
        if args.tddfa_v2:
            sys.path.insert(0, str(HERE))
            import tddfa_v2

            v2 = tddfa_v2.load(args.tddfa_v2, onnx=False)
            v2(images[0])

            def v2_time(k: int) -> tuple[float, int]:
                t0 = time.perf_counter()
                n, _ = v2(images[k])
                return (time.perf_counter() - t0) * 1000, n

            timers["3DDFA_V2 PyTorch"] = v2_time
        one_cpu = {min(os.sched_getaffinity(0))} if hasattr(os, "sched_getaffinity") else None
        scaling: dict[str, tuple[list[str], set[int] | None]] = {}
        if not args.no_cli and one_cpu and len(os.sched_getaffinity(0)) > 1:
            scaling["1 core"] = ([], one_cpu)
            if cli_has_workers():
                scaling["all cores, --workers 2"] = (["--workers", "2"], None)

        ms = {b: {name: [] for name in timers} for b in levels}
        cpu_ms: dict[int, list[float]] = {b: [] for b in levels}
        faces = {b: {name: 0 for name in timers} for b in levels}
        cli_ms: dict[int, list[float]] = {b: [] for b in levels}
        rates: dict[tuple[int, str], list[float]] = {}
        names = list(timers)
        for r in range(args.rounds):
            for b in levels:
                with busy(b):
                    load = os.getloadavg()[0]
                    for k in range(len(images)):
                        for name in (names if (k + r) % 2 == 0 else names[::-1]):
                            c0 = time.process_time()
                            t, n = timers[name](k)
                            if name == names[0]:
                                cpu_ms[b].append((time.process_time() - c0) * 1000)
                            ms[b][name].append(t)
                            faces[b][name] += n > 0
                    if not args.no_cli:
                        cli_ms[b].append(1000 / cli_rate(folder, tmp / "out", []))
                        rates.setdefault((b, "all cores"), []).append(1000 / cli_ms[b][-1])
                    for k, (label, (extra, cpus)) in enumerate(scaling.items()):
                        rates.setdefault((b, label), []).append(cli_rate(folder, tmp / f"out-{k}", extra, cpus))
                print(f"round {r + 1}, busy {b}: done (load average {load:.2f} at its start)", flush=True)
        for worker in (mp, base):
            if worker is not None:
                worker.close()

    quiet = levels[0]
    print(f"\n## Median ms per photo ({len(images)} AFLW2000-3D dev originals, {args.rounds} rounds; "
          f"busy N = N CPU-bound processes beside it)")
    head = "| pipeline | " + " | ".join(f"busy {b}" for b in levels) + " | " + \
        " | ".join(f"slowdown busy {b}" for b in levels if b != quiet) + " | photos with a face |"
    print(head)
    print("|---|" + "---:|" * (2 * len(levels) - 1) + "---:|")
    for name in names:
        cells = [f"{med(ms[b][name]):.1f}" for b in levels]
        cells += [f"{med(ms[b][name]) / med(ms[quiet][name]):.2f}x" for b in levels if b != quiet]
        print(f"| {name} | " + " | ".join(cells) + f" | {faces[quiet][name] // args.rounds}/{len(images)} |")
    if not args.no_cli:
        cells = [f"{med(cli_ms[b]):.1f}" for b in levels]
        cells += [f"{med(cli_ms[b]) / med(cli_ms[quiet]):.2f}x" for b in levels if b != quiet]
        print("| mfirrn reconstruct FOLDER (default outputs written; from the printed images/s) | " + " | ".join(cells)
              + " | |")
    print("| (mfirrn API: CPU time of this process per photo) | " + " | ".join(f"{med(cpu_ms[b]):.1f}" for b in levels)
          + " |" * len(levels))
    if mp is not None:
        mp_name = names[1]
        print("\n## Ratios (mfirrn API defaults / MediaPipe; <= 1.0: as fast or faster)")
        for b in levels:
            print(f"- busy {b}: {med(ms[b][names[0]]) / med(ms[b][mp_name]):.2f}")
        for name in names[2:]:
            print(f"- {name} / MediaPipe: " + ", ".join(f"busy {b} {med(ms[b][name]) / med(ms[b][mp_name]):.2f}"
                                                        for b in levels))
    if scaling:
        print("\n## mfirrn reconstruct FOLDER on one core and on all cores (images/s as printed, median of rounds)")
        for b in levels:
            one = med(rates[(b, "1 core")])
            cells = [f"1 core {one:.1f}"]
            for label in ("all cores", *list(scaling)[1:]):
                rate = med(rates[(b, label)])
                cells.append(f"{label} {rate:.1f} ({rate / one:.2f}x)")
            print(f"- busy {b}: " + ", ".join(cells))
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}; CPU: {cpu_info().model}")


if __name__ == "__main__":
    main()
