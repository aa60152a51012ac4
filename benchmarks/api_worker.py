"""Timing worker for benchmarks/speed.py ``--baseline DIR``: the Python API defaults of another source tree.

Started as ``python api_worker.py LIST`` with ``PYTHONPATH=DIR`` (a checkout or ``git archive`` of another version,
its compiled renderer in place): it decodes the images listed in LIST into memory, builds
``mfirrn.Reconstructor("3ddfa-v2-mb05")`` with that version's defaults, answers ``ready VERSION``, then for each
line ``K`` on stdin times one call on image K and prints ``MILLISECONDS FACES``; ``quit`` ends it (the protocol
of ``mediapipe_worker.py``).
"""

from __future__ import annotations

import sys
import time


def main() -> None:
    import cv2

    import mfirrn

    paths = [line.strip() for line in open(sys.argv[1]) if line.strip()]
    images = [cv2.imread(p, cv2.IMREAD_COLOR) for p in paths]
    rec = mfirrn.Reconstructor("3ddfa-v2-mb05")
    rec(images[0])  # warm-up
    print(f"ready {mfirrn.__file__}", flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        t0 = time.perf_counter()
        faces = rec(images[int(line)])
        print(f"{(time.perf_counter() - t0) * 1000:.4f} {len(faces)}", flush=True)


if __name__ == "__main__":
    main()
