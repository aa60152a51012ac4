"""A second look: detecting again at a larger FaceBoxes input when a downscaled photo gives no face.

    MFIRRN_ASSET_MIRROR=... python benchmarks/second_look.py [--sizes 1080x1620,full] [--sheet added.png]

FaceBoxes detects a photo larger than 720 x 1080 downscaled (3DDFA_V2's rule, ``--detector-size``). A
*second look* would detect such a photo again at a larger size when the verified pipeline keeps no face
from the first. This measures what that policy would add, on ``benchmarks/data/large-photos.tsv``
(every image larger than 720 x 1080 in six public repositories: photos, screenshots, charts, banners;
none of the held-out photos of ``benchmarks/wild.py``). Each image goes through the verified pipeline
(``mfirrn reconstruct``'s defaults: ONNX Runtime, one thread, robust refinement) at the default size and
at each of ``--sizes``, in that order. Printed: the photos the second look would run on, the faces it
would add (kept by the verifier at its default threshold; their confidence and FaceBoxes score) and its
time against the first look's over the whole set. ``--sheet`` writes the added faces as a contact sheet,
to be labelled by eye (a face or not).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from mfirrn.inference.pipeline import Reconstructor, read_image
from mfirrn.io.assets import fetch_asset, read_asset_table
from mfirrn.io.machine import machine_line
from mfirrn.io.options import detector_size

DATA = Path(__file__).resolve().parent / "data"


def run(rec: Reconstructor, img: np.ndarray) -> tuple[list, float]:
    t0 = time.perf_counter()
    faces = rec(img)
    return faces, 1e3 * (time.perf_counter() - t0)


def write_sheet(path: Path, added: list[tuple[str, str, np.ndarray, object]], side: int = 200, cols: int = 6) -> None:
    """Each added face: its landmarks' square with half a side of margin, labelled with size, confidence and photo."""
    from PIL import Image, ImageDraw

    rows = max(1, (len(added) + cols - 1) // cols)
    sheet = Image.new("RGB", (cols * side, rows * side))
    for i, (name, size, img, face) in enumerate(added):
        x0, y0 = face.landmarks[:, :2].min(0)
        x1, y1 = face.landmarks[:, :2].max(0)
        half = max(x1 - x0, y1 - y0)
        cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
        tile = Image.fromarray(img[..., ::-1]).crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half)))
        tile = tile.resize((side, side))
        draw = ImageDraw.Draw(tile)
        draw.rectangle([side // 4, side // 4, 3 * side // 4, 3 * side // 4], outline="red")
        draw.text((3, 3), f"{size} c{face.confidence:.2f} s{face.score:.2f}", fill="yellow")
        draw.text((3, side - 14), name[-32:], fill="yellow")
        sheet.paste(tile, ((i % cols) * side, (i // cols) * side))
    sheet.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1080x1620,full", help="second-look sizes, comma list of HxW or full")
    ap.add_argument("--sheet", type=Path, default=None, help="write the added faces to this PNG contact sheet")
    args = ap.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",")]
    first = Reconstructor(threads=1, dense=False)
    second = {s: Reconstructor(threads=1, dense=False, detector_size=detector_size(s, "--sizes")) for s in sizes}
    photos = [(a.path.split("/", 4)[-1], fetch_asset(a)) for a, _ in read_asset_table(DATA / "large-photos.tsv")]
    print(machine_line())
    print(f"{len(photos)} images larger than 720x1080; verified pipeline, confidence >= {first.min_confidence:g}\n")
    first_ms: list[float] = []
    looked: list[tuple[str, np.ndarray]] = []
    for name, path in photos:
        img = read_image(path)
        faces, ms = run(first, img)
        first_ms.append(ms)
        if not faces:
            looked.append((name, img))
    print(f"no face at the default size: {len(looked)} of {len(photos)}; first look "
          f"{sum(first_ms) / 1e3:.2f} s in all, median {statistics.median(first_ms):.1f} ms per image\n")
    print("| second look at | images with a face added | faces added: image (confidence, FaceBoxes score) | "
          "second-look time: median / max ms | all images' time vs the first look alone |")
    print("|---|---:|---|---|---:|")
    added: list[tuple[str, str, np.ndarray, object]] = []
    for size, rec in second.items():
        times, notes = [], []
        for name, img in looked:
            faces, ms = run(rec, img)
            times.append(ms)
            if faces:
                notes.append(f"{name} ({', '.join(f'{f.confidence:.2f}, {f.score:.2f}' for f in faces)})")
                added += [(name, size, img, f) for f in faces]
        ratio = (sum(first_ms) + sum(times)) / sum(first_ms)
        print(f"| {size} | {len(notes)} | {'; '.join(notes) or '-'} | "
              f"{statistics.median(times) if times else 0:.1f} / {max(times, default=0):.1f} | x{ratio:.2f} |")
    if args.sheet is not None:
        write_sheet(args.sheet, added)
        print(f"\n{len(added)} added faces drawn in {args.sheet}")


if __name__ == "__main__":
    main()
