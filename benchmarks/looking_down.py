"""Faces looking steeply down: what the looking-down rule asks of them, and what it keeps, on labelled hair photos.

    MFIRRN_ASSET_MIRROR=... python benchmarks/looking_down.py [--confidences 0,0.3,0.9]

The back of a head is read by the network as a face looking down, and the verifier can pass it; the pipeline asks a
face that looks down more than :data:`mfirrn.io.defaults.LOOKING_DOWN_DEGREES` for at least
:data:`~mfirrn.io.defaults.LOOKING_DOWN_CONFIDENCE` (:func:`mfirrn.inference.verify.confidence_needed`;
docs/experiments/wild.md, "Backs of heads").

Data: ``benchmarks/data/hair-photos.tsv``, photos of Figaro-1k (hairstyles: heads seen from behind, faces bowed to
show the hair) whose FaceBoxes proposals were labelled by eye as faces or non-faces; ``split`` train (the Training
folder) or val (the Testing folder). Each labelled box goes through the photo pipeline (``Reconstructor()``
defaults, networks in ONNX Runtime on one thread), which gives its confidence and pose.

Printed: per split, the faces and non-faces, how many look down more than the angle, and for each confidence asked
of them (0: no rule) how many faces and non-faces the pipeline keeps at its ``min_confidence``; then the confidence
the threshold rule gives on the train rows: the lowest confidence of their faces that look down more than the
angle, rounded down to a multiple of 0.05 (so that no such face is dropped), as the verifier's own threshold is
chosen.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from mfirrn.inference.pipeline import Reconstructor, read_image
from mfirrn.inference.verify import VERIFIERS, confidence_needed, looking_down
from mfirrn.io.assets import fetch_asset, read_asset_table
from mfirrn.io.defaults import LOOKING_DOWN_CONFIDENCE, LOOKING_DOWN_DEGREES

DATA = Path(__file__).resolve().parent / "data"


def labelled_boxes(rec: Reconstructor) -> dict[str, dict[str, np.ndarray]]:
    """Per split, the confidence, yaw and pitch (N,) of every labelled box (the pipeline run from the box) and
    whether it is a face."""
    out: dict[str, dict[str, list]] = {}
    for asset, row in read_asset_table(DATA / "hair-photos.tsv"):
        labels = json.loads(row["labels"])
        boxes = [(b, True) for b in labels.get("faces", [])] + [(b, False) for b in labels.get("non_faces", [])]
        faces = rec(read_image(fetch_asset(asset)), boxes=np.array([b for b, _ in boxes], np.float64))
        split = out.setdefault(row["split"], {"confidence": [], "yaw": [], "pitch": [], "face": []})
        for f, (_, is_face) in zip(faces, boxes):
            split["confidence"].append(f.confidence)
            split["yaw"].append(f.pose["yaw"])
            split["pitch"].append(f.pose["pitch"])
            split["face"].append(is_face)
    return {k: {c: np.array(v) for c, v in cols.items()} for k, cols in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--confidences", default=f"0,{LOOKING_DOWN_CONFIDENCE:g},0.9",
                    help="confidences asked of faces looking steeply down, compared (default %(default)s; 0: no rule)")
    ap.add_argument("--verifier", choices=tuple(VERIFIERS), default=tuple(VERIFIERS)[0],
                    help="the verifier head (default %(default)s)")
    args = ap.parse_args()
    asked = [float(v) for v in args.confidences.split(",")]
    t0 = time.time()
    rec = Reconstructor(dense=False, detector_backend="onnxruntime", detector_threads=1, threads=1,
                        verifier=args.verifier)
    sets = labelled_boxes(rec)
    base = rec.min_confidence
    print(f"machine {platform.processor() or platform.machine()}; verifier {args.verifier}, min_confidence {base}; "
          f"faces looking down more than {LOOKING_DOWN_DEGREES:g} degrees; {time.time() - t0:.0f} s\n")
    print("| split | faces | non-faces | faces looking down | non-faces looking down | confidence asked "
          "| faces kept | non-faces kept |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for split in ("train", "val"):
        s = sets[split]
        face, conf = s["face"].astype(bool), s["confidence"]
        down = s["down"] = looking_down(s["yaw"], s["pitch"])
        for c in asked:
            kept = conf >= confidence_needed(s["yaw"], s["pitch"], base, looking_down_confidence=c)
            print(f"| {split} | {face.sum()} | {(~face).sum()} | {(face & down).sum()} | {(~face & down).sum()} "
                  f"| {c:g} | {(kept & face).sum()} | {(kept & ~face).sum()} |")
        below = np.sort(conf[face & down])[:5]
        print(f"| | | | lowest confidences of the faces looking down: {', '.join(f'{v:.3f}' for v in below)} "
              f"| | | | |")
    s = sets["train"]
    lowest = s["confidence"][s["face"].astype(bool) & s["down"]].min()
    print(f"\nThe threshold rule on the train rows: the lowest confidence of their faces looking down more than "
          f"{LOOKING_DOWN_DEGREES:g} degrees, {lowest:.3f}, rounded down to a multiple of 0.05: "
          f"{np.floor(lowest * 20) / 20:.2f} (shipped: {LOOKING_DOWN_CONFIDENCE:g})")


if __name__ == "__main__":
    main()
