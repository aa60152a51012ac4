"""Faces turned in the image plane: the no-face line's turn, and ``turned_faces`` (``--turned-faces``).

    MFIRRN_ASSET_MIRROR=... python benchmarks/turned_photos.py [--sections line,option] [--n 400] [--seed 0]

Section ``line``:

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

Section ``option``: the same photos through ``Reconstructor()`` and ``Reconstructor(turned_faces=True)``. Each
photo of people with a face found upright is stored turned by 1, 2, 3 quarter turns counter-clockwise; a face
returned in a stored copy is one of the upright photo's faces when its landmark box and that face's, turned the
same way, hold each other's centre (:func:`mfirrn.geometry.crop.centres_inside`). Printed per turn: the upright
faces found, the other faces returned (real faces the upright photo missed, or false ones: not told apart), and
the found faces' landmark distance to the upright fit (mean over the 68 points, % of the upright landmark box's
diagonal; median). On the photos without a face: the faces each setting returns (false faces). Last, the time
per photo (median ms) of both settings on the upright photos of people.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from mfirrn.cli.photo_job import TURNS, upright_turn
from mfirrn.geometry.crop import centres_inside
from mfirrn.geometry.turns import points_back, turn_back
from mfirrn.inference.pipeline import Reconstructor, read_image
from mfirrn.io.assets import fetch_asset, read_asset_table
from mfirrn.io.defaults import TURNED_CONFIDENCE

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


def box(landmarks: np.ndarray) -> np.ndarray:
    return np.concatenate([landmarks[:, :2].min(0), landmarks[:, :2].max(0)])


def option(sets: dict, look: Path | None) -> None:
    """Section ``option`` (module docstring); ``look``: a folder for a crop of each face ``turned_faces`` adds to an
    upright photo (looked at by eye: a real face the upright search missed, or a false one)."""
    plain, turned = Reconstructor(), Reconstructor(turned_faces=True)
    recs = {"default": plain, "turned_faces": turned}
    found = {(r, s): 0 for r in recs for s in (1, 2, 3)}
    other, errors = dict(found), {key: [] for key in found}
    total, false = {s: 0 for s in (1, 2, 3)}, {(r, k): 0 for r in recs for k in sets if k != "faces"}
    n_no_face, times, added = {k: 0 for k in sets if k != "faces"}, {r: [] for r in recs}, 0
    for name, items in sets.items():
        for asset in items:
            image = read_image(fetch_asset(asset))
            if min(image.shape[:2]) < 20:
                continue
            upright = plain(image)
            if name != "faces":
                if not upright:
                    n_no_face[name] += 1
                    false[("turned_faces", name)] += len(turned(image))
                continue
            if not upright:
                continue
            for r, rec in recs.items():
                t0 = time.perf_counter()
                got = rec(image)
                times[r].append(time.perf_counter() - t0)
            new = [f for f in got if not any(np.array_equal(f.landmarks, g.landmarks) for g in upright)]
            added += len(new)
            for i, f in enumerate(new if look else []):
                x0, y0, x1, y1 = box(f.landmarks).astype(int)
                m = max(x1 - x0, y1 - y0)
                crop = image[max(y0 - m, 0):y1 + m, max(x0 - m, 0):x1 + m].copy()
                for x, y in f.landmarks[:, :2] - [max(x0 - m, 0), max(y0 - m, 0)]:
                    cv2.circle(crop, (int(x), int(y)), 1, (0, 0, 255), -1)
                cv2.imwrite(str(look / f"{Path(asset.path).stem}_{i}_c{f.confidence:.2f}_r{f.pose['roll']:.0f}.png"),
                            crop)
            for s in (1, 2, 3):
                stored = np.ascontiguousarray(np.rot90(image, s))
                to_stored = turn_back(-s, stored.shape[1], stored.shape[0])  # the upright photo's pixels -> stored
                ref = [points_back(f.landmarks[:, :2], to_stored) for f in upright]
                total[s] += len(ref)
                for r, rec in recs.items():
                    got = rec(stored)
                    if not got:
                        continue
                    match = centres_inside(np.stack([box(f.landmarks) for f in got]), np.stack([box(p) for p in ref]))
                    other[(r, s)] += int((~match.any(axis=1)).sum())
                    for j, p in enumerate(ref):
                        hits = np.flatnonzero(match[:, j])
                        if len(hits):
                            found[(r, s)] += 1
                            d = np.linalg.norm(got[hits[0]].landmarks[:, :2] - p, axis=1).mean()
                            errors[(r, s)].append(100 * d / np.linalg.norm(np.ptp(p, axis=0)))
    print("\n| setting | stored turned by | upright faces | found | other faces returned | landmark distance to the "
          "upright fit (% of its box diagonal, median) |\n|---|---|---:|---:|---:|---:|")
    for r in recs:
        for s, words in ((1, "90 degrees counter-clockwise"), (2, "180 degrees"), (3, "90 degrees clockwise")):
            e = f"{np.median(errors[(r, s)]):.2f}" if errors[(r, s)] else "-"
            print(f"| {r} | {words} | {total[s]} | {found[(r, s)]} | {other[(r, s)]} | {e} |")
    print(f"\nUpright photos of people ({len(times['default'])}): turned_faces adds {added} faces to the default's "
          f"{sum(total.values()) // 3}")
    print("Photos without a face upright: faces returned with turned_faces: "
          + ", ".join(f"{k} ({n_no_face[k]} photos) {false[('turned_faces', k)]}" for k in n_no_face))
    print(f"Time per upright photo of people ({len(times['default'])}): "
          + ", ".join(f"{r} {1e3 * np.median(t):.1f} ms" for r, t in times.items()) + " (median)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sections", default="line,option", help="comma-separated: line, option")
    ap.add_argument("--n", type=int, default=400, help="photos drawn from each set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--look", type=Path, help="section option: write a crop of each face turned_faces adds here")
    args = ap.parse_args()
    sets = {"faces": drawn(assets(("faces",), TABLES), args.n, args.seed),
            "animals": drawn(assets(("animals",), TABLES + ("verifier.tsv",)), args.n, args.seed),
            "hands and things": drawn(assets(("hands", "no-face"), ("verifier.tsv",)), args.n, args.seed)}
    sections = args.sections.split(",")
    if "option" in sections:
        if args.look:
            args.look.mkdir(parents=True, exist_ok=True)
        option(sets, args.look)
    if "line" not in sections:
        return
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
