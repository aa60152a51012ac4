"""Photos stored turned without an EXIF orientation tag: which turn the no-face line names, and what it costs.

    MFIRRN_ASSET_MIRROR=... python benchmarks/turned_photos.py [--n 400] [--seed 0]

When ``mfirrn reconstruct`` finds no face in a photo it looks at the photo turned by 90 degrees either way and by
180 degrees (:data:`mfirrn.cli.photo_job.TURNS`) and names the turn that shows faces upright
(:func:`mfirrn.cli.photo_job.upright_turn`): "turned by 90 degrees clockwise it holds 1 face(s): turn the photo
upright". Tuning photos only (docs/experiments/wild.md, "Photos stored sideways"):

- **faces**: ``--n`` photos of people drawn from the ``faces`` rows of ``benchmarks/data/verifier-v2.tsv`` to
  ``verifier-v6.tsv``; each one in which the pipeline finds a face upright is stored turned by 90 degrees either way
  and by 180 degrees, and each stored copy in which no face is found is a case for the line: told the right turn,
  a wrong one, or nothing;
- **no face**: ``--n`` photos of animals (the ``animals`` rows of the same tables and of ``verifier.tsv``) and
  ``--n`` of hands and other things (its ``hands`` and ``no-face`` rows) in which no face is found upright: each
  told to be turned is told wrongly.

Every photo goes through ``Reconstructor()`` once per quarter turn, so the rules below are read off the same faces:
the shipped one, and the earlier one (the photo turned by 180 degrees only, every face at least 0.5 sure counted,
whatever its roll). Last, the time the line adds to a photo without a face (median, ms).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from mfirrn.cli.photo_job import TURNED_CONFIDENCE, TURNS, upright_turn
from mfirrn.inference.pipeline import Reconstructor, read_image
from mfirrn.io.assets import fetch_asset, read_asset_table

DATA = Path(__file__).resolve().parent / "data"
TABLES = ("verifier-v2.tsv", "verifier-v3.tsv", "verifier-v4.tsv", "verifier-v5.tsv", "verifier-v6.tsv")


def assets(roles: tuple[str, ...], tables: tuple[str, ...]) -> list:
    """The assets of the rows with one of ``roles`` in ``benchmarks/data/<table>`` (each photo once, sorted)."""
    found = {a.path: a for t in tables for a, row in read_asset_table(DATA / t) if row["role"] in roles}
    return [found[k] for k in sorted(found)]


def drawn(items: list, n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [items[i] for i in sorted(rng.permutation(len(items))[:n])]


def earlier_rule(faces_by_turn) -> tuple[int, int] | None:
    """The line before quarter turns: the photo turned by 180 degrees (index 1 of TURNS), every sure face."""
    n = sum(f.confidence >= TURNED_CONFIDENCE for f in faces_by_turn[1])
    return (1, n) if n else None


def quarter_turns(rec: Reconstructor, image: np.ndarray) -> list[list]:
    """The faces (confidence and roll) found in ``image`` turned counter-clockwise by 0, 1, 2, 3 quarter turns."""
    out = []
    for k in range(4):
        faces = rec(np.ascontiguousarray(np.rot90(image, k)))
        out.append([SimpleNamespace(confidence=f.confidence, pose={"roll": f.pose["roll"]}) for f in faces])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=400, help="photos drawn from each set")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sets = {"faces": drawn(assets(("faces",), TABLES), args.n, args.seed),
            "animals": drawn(assets(("animals",), TABLES + ("verifier.tsv",)), args.n, args.seed),
            "hands and things": drawn(assets(("hands", "no-face"), ("verifier.tsv",)), args.n, args.seed)}
    rec = Reconstructor()
    rules = {"quarter turns, upright faces (shipped)": upright_turn, "180 degrees only (earlier)": earlier_rule}
    told = {r: {"right": 0, "wrong": 0, "nothing": 0} for r in rules}
    wrongly = {r: {k: 0 for k in sets if k != "faces"} for r in rules}
    cases, no_face = 0, {k: 0 for k in sets if k != "faces"}
    upright, still = 0, [0, 0, 0, 0]  # photos of people with a face upright; of those, with one at each quarter turn
    for name, items in sets.items():
        for asset in items:
            image = read_image(fetch_asset(asset))
            if min(image.shape[:2]) < 20:
                continue
            found = quarter_turns(rec, image)  # found[k]: the photo turned counter-clockwise by k quarter turns
            if name != "faces":
                if not found[0]:
                    no_face[name] += 1
                    for r, rule in rules.items():  # the upright photo's copies, in the order of TURNS
                        wrongly[r][name] += rule([found[k % 4] for k, _ in TURNS]) is not None
                continue
            if not found[0]:
                continue
            upright += 1
            still = [n + bool(f) for n, f in zip(still, found)]
            for stored in (1, 2, 3):  # the photo stored turned counter-clockwise by this many quarter turns
                if found[stored]:
                    continue  # a face found: no line
                cases += 1
                for r, rule in rules.items():
                    got = rule([found[(stored + k) % 4] for k, _ in TURNS])
                    told[r]["nothing" if got is None else
                            "right" if (stored + TURNS[got[0]][0]) % 4 == 0 else "wrong"] += 1
    print(f"\n{sum(len(v) for v in sets.values())} photos drawn (seed {args.seed}); Reconstructor() defaults\n")
    print(f"| rule | stored turned, no face found ({cases}): right turn | wrong turn | nothing | "
          + " | ".join(f"{k} without a face ({no_face[k]}): told to turn" for k in no_face) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(no_face))
    for r in rules:
        print(f"| {r} | {told[r]['right']} | {told[r]['wrong']} | {told[r]['nothing']} | "
              + " | ".join(str(wrongly[r][k]) for k in no_face) + " |")
    print(f"\nOf {upright} photos of people with a face found upright, stored turned counter-clockwise by 1, 2, 3 "
          f"quarter turns, {still[1]}, {still[2]}, {still[3]} still give one")
    # the line's cost on photos without a face: the upright run alone against the run and the three turned runs
    photos = [read_image(fetch_asset(a)) for a in sets["animals"][:60]]
    alone, with_line = [], []
    for image in photos:
        t0 = time.perf_counter()
        if rec(image):
            continue
        t1 = time.perf_counter()
        for k, _ in TURNS:
            rec(np.ascontiguousarray(np.rot90(image, k)))
        t2 = time.perf_counter()
        alone.append(t1 - t0)
        with_line.append(t2 - t0)
    print(f"\nA photo without a face ({len(alone)} animal photos): {1e3 * np.median(alone):.1f} ms to find none, "
          f"{1e3 * np.median(with_line):.1f} ms with the three turned looks (median)")


if __name__ == "__main__":
    main()
