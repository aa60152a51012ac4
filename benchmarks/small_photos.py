"""Small photos and tight face crops: FaceBoxes on an image upscaled to a smallest input size.

    MFIRRN_ASSET_MIRROR=... MFIRRN_DATASETS=... python benchmarks/small_photos.py --split tune [--sizes 0,240,320,450]
    MFIRRN_ASSET_MIRROR=... MFIRRN_DATASETS=... python benchmarks/small_photos.py --split held-out

FaceBoxes' first anchors sit on a 32-pixel grid, and in a small image (a tight face crop, a 100-pixel thumbnail)
it scores the face low or not at all. ``mfirrn.detect.faceboxes.FaceBoxes(min_size=S)`` upscales an image whose
longer side is below S pixels to S before detection (default 0: never, as 3DDFA_V2; the CLI's --detector-min-size).

``--split tune`` prints, for each S of ``--sizes``, the photos that return a face (faces in brackets) of the verified
pipeline on the tuning rows of ``benchmarks/data/small-photos.tsv`` (masked and unmasked faces of
``chandrikadeb7/Face-Mask-Detection``), on 300 AFLW training crops (``aflw-21pt-train``) and on the face-free photos
of ``benchmarks/data/verifier.tsv`` (photos without a face, cat and dog photos) at their size and shrunk to a
longer side of 160 and 320 pixels: the table S was chosen on (docs/experiments/wild.md, "Small photos").

``--split held-out`` compares S = 0 with S = 240 (chosen on the tuning rows) on what the choice never saw: the
held-out rows of ``small-photos.tsv``, the held-out photos of ``benchmarks/wild.py`` at their size and shrunk to a
longer side of 200 pixels (counted faces, false faces, missed faces, scored as there), and the AFLW2000-3D dev-split
originals.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from mfirrn import models
from mfirrn.inference.pipeline import Reconstructor, read_image
from mfirrn.io.assets import fetch_asset, read_asset_table
from mfirrn.io.machine import machine_line

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wild import dev_nme, dev_split, face_boxes, load_photos, score_photo  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
SIZE = 240  # S chosen on the tuning rows by the rule of docs/experiments/wild.md ("Small photos")


def shrink(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """The image with its longer side brought down to ``side`` pixels (never up), and the factor used."""
    s = min(1.0, side / max(image.shape[:2]))
    if s == 1.0:
        return image, 1.0
    size = (max(1, round(image.shape[1] * s)), max(1, round(image.shape[0] * s)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), s


def pipeline(min_size: int) -> Reconstructor:
    """The verified pipeline with the CLI's networks, FaceBoxes upscaling images below ``min_size`` pixels."""
    return Reconstructor(models.create(models.DEFAULT_MODEL), dense=False, detector_backend="onnxruntime",
                         detector_threads=1, detector_min_size=min_size)


def count_faces(rec: Reconstructor, images: list[np.ndarray], times: list[float]) -> str:
    """``"photos with a face (faces)"`` of ``rec`` on ``images``; each photo's seconds are appended to ``times``."""
    found = faces = 0
    for im in images:
        t0 = time.perf_counter()
        n = len(rec(im))
        times.append(time.perf_counter() - t0)
        found, faces = found + (n > 0), faces + n
    return f"{found} ({faces})"


def small_photo_rows(split: str) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {"masked": [], "unmasked": []}
    for asset, row in read_asset_table(DATA / "small-photos.tsv"):
        if row["split"] == split:
            out[row["kind"]].append(read_image(fetch_asset(asset)))
    return out


def tune(sizes: list[int], datasets: Path) -> None:
    sets = small_photo_rows("tune")
    crops = sorted((datasets / "aflw-21pt-train" / "AFLW_GT_crop").glob("*.jpg"))
    random.Random(0).shuffle(crops)
    sets["AFLW crops"] = [read_image(p) for p in crops[:300]]
    free: dict[str, list[np.ndarray]] = {"no face": [], "animals": []}
    for asset, row in read_asset_table(DATA / "verifier.tsv"):
        if row["role"] in ("no-face", "animals"):
            free["no face" if row["role"] == "no-face" else "animals"].append(read_image(fetch_asset(asset)))
    for kind, images in free.items():
        sets[f"{kind}, native"] = images
        for side in (160, 320):
            sets[f"{kind}, {side} px"] = [shrink(im, side)[0] for im in images]
    print(f"\nTuning: photos with a face (faces), verified pipeline; images whose longer side is below S are upscaled "
          f"to S ({', '.join(f'{k}: {len(v)}' for k, v in sets.items())})")
    print("| S | " + " | ".join(sets) + " | ms per image (median) |")
    print("|---:|" + "---:|" * (len(sets) + 1))
    for size in sizes:
        rec, times = pipeline(size), []
        cells = [count_faces(rec, images, times) for images in sets.values()]
        print(f"| {size} | " + " | ".join(cells) + f" | {1000 * np.median(times):.1f} |", flush=True)


def held_out(datasets: Path) -> None:
    recs = {"S = 0": pipeline(0), f"S = {SIZE}": pipeline(SIZE)}
    sets = small_photo_rows("held-out")
    print("\nHeld-out rows of small-photos.tsv: photos with a face (faces)")
    print("| pipeline | " + " | ".join(f"{k} ({len(v)})" for k, v in sets.items()) + " | ms per image (median) |")
    print("|---|" + "---:|" * (len(sets) + 1))
    for name, rec in recs.items():
        times: list[float] = []
        cells = [count_faces(rec, images, times) for images in sets.values()]
        print(f"| {name} | " + " | ".join(cells) + f" | {1000 * np.median(times):.1f} |", flush=True)

    photos = load_photos(datasets)
    print(f"\nHeld-out photos of benchmarks/wild.py ({len(photos)}): counted faces found, false faces, missed faces")
    print("| pipeline | size | found | false | missed | photos upscaled |")
    print("|---|---|---:|---:|---:|---:|")
    for side in (0, 200):
        rows: dict[str, list] = {name: [] for name in recs}
        where: dict[str, list] = {name: [] for name in recs}
        upscaled = 0
        for photo, path, labels in photos:
            img = read_image(path)
            if side:
                img, s = shrink(img, side)
                labels = {k: (np.array(v, np.float64).reshape(-1, 4) * s).tolist() for k, v in labels.items()}
            upscaled += max(img.shape[:2]) < SIZE
            for name, rec in recs.items():
                r = score_photo(face_boxes(rec(img)), labels)
                rows[name].append(r)
                if r[1] or r[2]:
                    where[name].append(f"{photo} (false {r[1]}, missed {r[2]})")
        for name, r in rows.items():
            t, f, m = np.sum(r, axis=0)
            print(f"| {name} | {'native' if not side else f'{side} px'} | {t} | {f} | {m} | {upscaled} |")
        for name in recs:
            print(f"  {name}, {'native' if not side else f'{side} px'}: {'; '.join(where[name]) or 'none'}")

    dev = dev_split(datasets)
    print(f"\nAFLW2000-3D dev-split originals ({len(dev)}): photos whose face is kept (the pipeline's face nearest the "
          f"annotated face, inside its landmarks' box) and its 68-point NME")
    print("| pipeline | kept | NME mean on kept |")
    print("|---|---:|---:|")
    for name, rec in recs.items():
        errors = dev_nme(rec, dev)
        print(f"| {name} | {len(errors)}/{len(dev)} | {np.mean(errors):.3f} % |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=os.environ.get("MFIRRN_DATASETS", "../shared/datasets"))
    ap.add_argument("--split", choices=("tune", "held-out"), default="tune")
    ap.add_argument("--sizes", default="0,240,320,450", help="values of S for --split tune (default %(default)s)")
    args = ap.parse_args()
    print(machine_line())
    if args.split == "tune":
        tune([int(v) for v in args.sizes.split(",")], Path(args.datasets))
    else:
        held_out(Path(args.datasets))


if __name__ == "__main__":
    main()
