"""FaceBoxes at several input sizes (``--detector-size``) on given photos: the boxes it keeps and its time.

For each photo and size: the scale the photo is detected at, the scores of the boxes above ``--threshold``
(FaceBoxes' own scores, before the face verifier), and the median / best wall time of the detector alone
(ONNX Runtime, the threading policy's threads; resizing included) over ``--runs`` calls, the sizes taking
turns call by call.

    MFIRRN_ASSET_MIRROR=... python benchmarks/detector_size.py PHOTO... [--sizes 720x1080,1080x1620,full]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from mfirrn.detect.faceboxes import FaceBoxes
from mfirrn.inference.pipeline import read_image
from mfirrn.io.machine import machine_line
from mfirrn.io.options import detector_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", nargs="+")
    ap.add_argument("--sizes", default="720x1080,1080x1620,full", help="comma list of HxW or full")
    ap.add_argument("--threshold", type=float, default=0.3, help="list boxes scoring above this (default 0.3)")
    ap.add_argument("--runs", type=int, default=10, help="timed calls per size and photo (default 10)")
    args = ap.parse_args()
    names = [s.strip() for s in args.sizes.split(",")]
    detectors = [FaceBoxes(max_size=detector_size(s, "--sizes"), score_threshold=args.threshold,
                           backend="onnxruntime") for s in names]
    print(machine_line())
    print(f"FaceBoxes in ONNX Runtime; boxes scoring above {args.threshold:g}; median / best ms of {args.runs} "
          f"calls, sizes alternating\n")
    print("| photo | pixels (h x w) | size | scale | boxes: scores | ms median / best |")
    print("|---|---|---|---:|---|---|")
    for path in args.photos:
        img = read_image(path)
        h, w = img.shape[:2]
        for det in detectors:
            det(img)  # warm-up: priors, session
        times: list[list[float]] = [[] for _ in detectors]
        for _ in range(args.runs):
            for k, det in enumerate(detectors):
                t0 = time.perf_counter()
                det(img)
                times[k].append(1e3 * (time.perf_counter() - t0))
        for name, det, ts in zip(names, detectors, times):
            scores = ", ".join(f"{s:.2f}" for s in det(img)[:, 4])
            print(f"| {Path(path).name} | {h} x {w} | {name} | {det.scale_for(h, w):.3f} | {scores or '-'} | "
                  f"{statistics.median(ts):.1f} / {min(ts):.1f} |")


if __name__ == "__main__":
    main()
