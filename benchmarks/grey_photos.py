"""Grey photos: FaceBoxes on black-and-white photos, as they are and tinted to a skin tone (the tuning table).

    MFIRRN_ASSET_MIRROR=... MFIRRN_DATASETS=... python benchmarks/grey_photos.py [--sheets DIR] [--held-out]

FaceBoxes was trained on colour photos. On grey copies of AFLW faces it finds far fewer faces than in colour
(docs/experiments/wild.md). :func:`mfirrn.detect.faceboxes.tint_grey` shows a grey photo to it in a skin tone
of the same luminance: each grey level times the gains :data:`mfirrn.detect.faceboxes.GREY_TINT`, the median
colour (B, G, R over the grey level) of the central 60x60 pixels of the 600 AFLW tuning faces, which this
script recomputes and prints. Only the detector sees the tint; the networks and the verifier see the photo.

Tuning data (as benchmarks/proposals.py, never the held-out photos nor the dev split): the 600 AFLW crops
(padded by 60 pixels), the ``no-face`` and ``hands`` rows of ``benchmarks/data/verifier.tsv`` with split
``train``, each turned grey (OpenCV's luminance, copied to three channels). Each goes through the verified
photo pipeline as ``mfirrn reconstruct`` runs it on a CPU (ONNX Runtime, one thread, FaceBoxes at 0.5, the
verifier at its threshold) with FaceBoxes as it is and with the tint, side by side. Counted: AFLW faces found
(a kept face whose landmarks' centre lies in the crop's 120x120 face), faces kept on the face-free photos, and
the faces the tint adds on the hand photos (a kept face with no kept face of the untinted run under its
centre), drawn on contact sheets with ``--sheets DIR`` and labelled by eye in
``benchmarks/data/grey-labels.tsv`` (``face`` or ``false``).

**The rule** (written down before any pipeline result was seen): the tint becomes FaceBoxes' default for grey
photos when, on the grey tuning photos,

1. it finds more AFLW faces than FaceBoxes as it is,
2. it keeps no face on the face-free photos, and
3. of the faces it adds on the hand photos, at most one in ten is not a face (by eye);

and the grey test costs at most 1 % of the time of a photo (colour photos are detected as before, bit for bit).
``--held-out`` then measures the held-out photos of ``benchmarks/data/wild.tsv`` and ``faces-68`` once, with
and without the tint (false and missed faces, as benchmarks/wild.py counts them).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from mfirrn.detect.faceboxes import GREY_TINT, FaceBoxes, is_grey
from mfirrn.inference.pipeline import Reconstructor, read_image
from mfirrn.inference.verify import FaceVerifier, landmark_boxes
from mfirrn.io.machine import machine_line

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proposals import tuning_photos  # noqa: E402
from wild import cli_model, load_photos, score_photo  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
LABELS = DATA / "grey-labels.tsv"


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def skin_gains(photos) -> np.ndarray:
    """Median (B, G, R) / luminance of the central 60x60 pixels of the AFLW tuning faces."""
    gains = []
    for _, kind, img, box in photos:
        if kind == "aflw colour":
            cx, cy = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
            c = img[cy - 30:cy + 30, cx - 30:cx + 30].reshape(-1, 3).astype(np.float64).mean(0)
            gains.append(c / (0.114 * c[0] + 0.587 * c[1] + 0.299 * c[2]))
    return np.median(gains, axis=0)


def pipelines(model_name: str) -> dict[str, Reconstructor]:
    model = cli_model(model_name)
    verifier = FaceVerifier(backend="onnxruntime", threads=1)
    out = {}
    for name, tint in (("as it is", False), ("tinted", True)):
        rec = Reconstructor(model, FaceBoxes(backend="onnxruntime", threads=1, tint_grey=tint), dense=False)
        rec._verifier = verifier  # one verifier (O-Net built once)
        out[name] = rec
    return out


def kept(rec: Reconstructor, image: np.ndarray) -> np.ndarray:
    """Landmark boxes (K, 4) of the faces the verified pipeline keeps."""
    faces = rec(image)
    return landmark_boxes(np.array([f.landmarks for f in faces])) if faces else np.zeros((0, 4))


def centre_in(boxes: np.ndarray, x: float, y: float) -> bool:
    return bool(((boxes[:, 0] <= x) & (x <= boxes[:, 2]) & (boxes[:, 1] <= y) & (y <= boxes[:, 3])).any())


def read_labels() -> dict[str, str]:
    if not LABELS.is_file():
        return {}
    out = {}
    for line in LABELS.read_text().splitlines():
        if line and not line.startswith("#") and not line.startswith("key\t"):
            key, label = line.split("\t")[:2]
            out[key] = label
    return out


def tuning(args, recs: dict[str, Reconstructor]) -> None:
    photos = list(tuning_photos(Path(args.datasets), args.n_aflw))
    gains = skin_gains(photos)
    print(f"skin tint of the {args.n_aflw} AFLW tuning faces (B, G, R): {np.round(gains, 3).tolist()}; "
          f"GREY_TINT {list(GREY_TINT)}")
    found = {k: 0 for k in recs}
    free = {k: 0 for k in recs}
    added: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    n = {"aflw": 0, "face-free": 0, "hands": 0}
    times = {k: [] for k in recs}
    check_ms = []
    for i, (key, kind, img, box) in enumerate(photos):
        if kind == "aflw grey":
            continue
        g = grey(img)
        det = recs["tinted"].detector
        scale = det.scale_for(*g.shape[:2])  # the test reads the detector's input, downscaled as FaceBoxes does
        small = g if scale == 1.0 else cv2.resize(g, (int(g.shape[1] * scale), int(g.shape[0] * scale)))
        t0 = time.perf_counter()
        is_grey(small)
        check_ms.append(1e3 * (time.perf_counter() - t0))
        res = {}
        for name in (list(recs) if i % 2 else list(recs)[::-1]):
            t0 = time.perf_counter()
            res[name] = kept(recs[name], g)
            times[name].append(1e3 * (time.perf_counter() - t0))
        if kind == "aflw colour":
            n["aflw"] += 1
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            for name, b in res.items():
                found[name] += centre_in(b, cx, cy)
        elif kind == "face-free":
            n["face-free"] += 1
            for name, b in res.items():
                free[name] += len(b)
        else:
            n["hands"] += 1
            base, tinted = res["as it is"], res["tinted"]
            for j, b in enumerate(tinted):
                if not centre_in(base, (b[0] + b[2]) / 2, (b[1] + b[3]) / 2):
                    added.append((f"{key}#{j}", g, b, base))
    labels = read_labels()
    false = sum(labels.get(k) == "false" for k, *_ in added)
    unlabelled = [k for k, *_ in added if k not in labels]
    print(f"\ngrey copies of the tuning photos ({n['aflw']} AFLW faces, {n['face-free']} face-free photos, {n['hands']} "
          f"hand photos), verified pipeline, FaceBoxes at 0.5:")
    print("| FaceBoxes | AFLW faces found | faces on face-free photos | ms per photo (median) |")
    print("|---|---:|---:|---:|")
    for name in recs:
        print(f"| {name} | {found[name]}/{n['aflw']} | {free[name]} | {np.median(times[name]):.1f} |")
    print(f"faces the tint adds on the hand photos: {len(added)}, labelled false by eye: {false}"
          + (f", not labelled yet: {len(unlabelled)}" if unlabelled else ""))
    print(f"the grey test: {np.median(check_ms):.3f} ms per photo (median), "
          f"{100 * np.median(check_ms) / np.median(times['as it is']):.2f} % of a photo")
    ok = (found["tinted"] > found["as it is"] and free["tinted"] == 0 and not unlabelled
          and false * 10 <= len(added) and np.median(check_ms) <= 0.01 * np.median(times["as it is"]))
    print(f"the rule: {'met: the tint is the default for grey photos' if ok else 'not met'}")
    if args.sheets:
        sheets(Path(args.sheets), added)


def sheets(out: Path, added) -> None:
    """Contact sheets of the faces the tint adds (green), the faces kept without it in blue; and the keys to label."""
    out.mkdir(parents=True, exist_ok=True)
    tiles = []
    for key, img, box, base in added:
        im = img.copy()
        for b in base:
            cv2.rectangle(im, tuple(int(v) for v in b[:2]), tuple(int(v) for v in b[2:4]), (255, 0, 0), 2)
        cv2.rectangle(im, tuple(int(v) for v in box[:2]), tuple(int(v) for v in box[2:4]), (0, 255, 0), 2)
        s = 300 / max(im.shape[:2])
        t = np.full((318, 300, 3), 255, np.uint8)
        im = cv2.resize(im, (int(im.shape[1] * s), int(im.shape[0] * s)))
        t[:im.shape[0], :im.shape[1]] = im
        cv2.putText(t, str(len(tiles)), (4, 312), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        tiles.append(t)
    for k in range(0, len(tiles), 20):
        part = tiles[k:k + 20] + [np.full_like(tiles[0], 255)] * (-len(tiles[k:k + 20]) % 5)
        cv2.imwrite(str(out / f"added_{k // 20}.png"), np.vstack([np.hstack(part[i:i + 5]) for i in range(0, len(part), 5)]))
    (out / "labels-todo.tsv").write_text("key\tlabel\n" + "".join(f"{key}\t\n" for key, *_ in added))
    print(f"contact sheets and labels-todo.tsv in {out} (tile number = row of labels-todo.tsv)")


def held_out(args, recs: dict[str, Reconstructor]) -> None:
    photos = load_photos(Path(args.datasets))
    print(f"\nheld-out photos ({len(photos)}), as they come (colour or grey):")
    print("| FaceBoxes | grey photos | faces found | false faces | missed faces |")
    print("|---|---:|---:|---:|---:|")
    n_grey = 0
    totals = {k: np.zeros(3, int) for k in recs}
    for name, path, labels in photos:
        img = read_image(path)
        n_grey += is_grey(img)
        for k, rec in recs.items():
            totals[k] += score_photo(kept(rec, img), labels)
    for k, (t, f, m) in totals.items():
        print(f"| {k} | {n_grey} | {t} | {f} | {m} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=os.environ.get("MFIRRN_DATASETS", "../shared/datasets"))
    ap.add_argument("--model", default="3ddfa-v2-mb05")
    ap.add_argument("--n-aflw", type=int, default=600)
    ap.add_argument("--sheets", default=None, metavar="DIR", help="contact sheets of the faces the tint adds")
    ap.add_argument("--held-out", action="store_true", help="then measure the held-out photos once")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"CPU: {machine_line()}")
    recs = pipelines(args.model)
    tuning(args, recs)
    if args.held_out:
        held_out(args, recs)


if __name__ == "__main__":
    main()
