"""A ``mfirrn reconstruct`` run killed with SIGKILL at random points and resumed, against an uninterrupted run.

A folder of photos (:func:`scale.photo_folder`) is reconstructed once without interruption, then again into
another folder by a run that is killed ``--kills`` times at random moments (``kill -9``, nothing can be
flushed) and resumed with ``--resume`` each time, until it finishes. Reported: whether every output file ends
byte-identical to the uninterrupted run's, and per kill the inputs whose work is lost and redone: those whose
files were published but not yet recorded when the kill came (seen on disk), plus those the kill caught inside
the network (one per worker at most: the engine gives a worker one input at a time).

    python benchmarks/resume_kill.py [--photos 150] [--kills 3] [--workers 1] [--outputs json,landmarks,dense]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scale import photo_folder

from mfirrn.inference.runrecord import JOURNAL, RECORD_FILES
from mfirrn.io.machine import machine_line


def outputs_of(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in RECORD_FILES}


def recorded(out: Path) -> set[str]:
    try:
        lines = (out / JOURNAL).read_bytes().splitlines()
    except FileNotFoundError:
        return set()
    done = set()
    for line in lines:
        try:
            done.add(json.loads(line)["input"])
        except ValueError:
            pass
    return done


def published(out: Path, folder: Path) -> set[str]:
    """Inputs whose JSON is on disk (the first file of an input's group, in registry order)."""
    return {p.relative_to(out).as_posix()[:-len(".json")] for p in out.rglob("*.json")
            if p.name not in RECORD_FILES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=150)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--outputs", default="json,landmarks,dense")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--datasets", type=Path, default=Path(os.environ.get("MFIRRN_DATASETS", "data/datasets")))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    print(f"CPU: {machine_line()}; load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="mfirrn-kill-") as tmp:
        folder = photo_folder(args.photos, Path(tmp) / "photos", args.datasets)
        common = ["--outputs", args.outputs, "--workers", str(args.workers)]
        whole = Path(tmp) / "whole"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mfirrn.cli", "reconstruct", str(folder), "-o", str(whole), *common],
                       check=True, capture_output=True)
        t_whole = time.perf_counter() - t0
        out = Path(tmp) / "killed"
        cmd = [sys.executable, "-m", "mfirrn.cli", "reconstruct", str(folder), "-o", str(out), *common, "--resume"]
        kills = []
        for k in range(args.kills):
            before = len(recorded(out))
            # kill at a random moment once this run has recorded 1 to 40 inputs of its own
            target = before + rng.randint(1, max(1, min(40, (args.photos - before) // (args.kills - k + 1))))
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while p.poll() is None and len(recorded(out)) < target:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.3))  # anywhere inside the next inputs' work
            p.send_signal(signal.SIGKILL)
            p.wait()
            rec = recorded(out)
            lost = published(out, folder) - rec
            kills.append((len(rec) - before, len(lost)))
        t0 = time.perf_counter()
        final = subprocess.run(cmd, capture_output=True, text=True)
        t_last = time.perf_counter() - t0
        same = final.returncode == 0 and outputs_of(out) == outputs_of(whole)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    print(f"{args.photos} photos, --outputs {args.outputs}, --workers {args.workers}; uninterrupted run "
          f"{t_whole:.1f} s, last resumed run {t_last:.1f} s\n")
    print("| kill | inputs recorded by the killed run | published, not recorded (redone) | in the network "
          "(redone, at most) | redone, at most |")
    print("|---|---|---|---|---|")
    for i, (n_rec, n_lost) in enumerate(kills, 1):
        print(f"| {i} | {n_rec} | {n_lost} | {args.workers} | {n_lost + args.workers} |")
    print(f"\nevery output byte-identical to the uninterrupted run: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
