"""MediaPipe Face Mesh timing worker for benchmarks/speed.py; runs in MediaPipe's own virtual environment.

Started by ``speed.py`` as ``<venv>/bin/python mediapipe_worker.py LIST MAX_FACES``: it decodes the images
listed in the text file LIST (one path a line) into memory, builds one ``FaceMesh(static_image_mode=True,
max_num_faces=MAX_FACES)`` (the legacy solution API of mediapipe 0.10.21, the last release that ships its
models in the wheel), answers ``ready``, then for each line ``K`` on stdin times ``process()`` on image K,
BGR-to-RGB conversion included (the caller's part of using it), and prints ``MILLISECONDS FACES``.
``quit`` ends it. It imports nothing of mfirrn.
"""

from __future__ import annotations

import sys
import time


def main() -> None:
    import cv2
    import mediapipe as mp

    paths = [line.strip() for line in open(sys.argv[1]) if line.strip()]
    max_faces = int(sys.argv[2])
    images = [cv2.imread(p, cv2.IMREAD_COLOR) for p in paths]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=max_faces) as mesh:
        mesh.process(cv2.cvtColor(images[0], cv2.COLOR_BGR2RGB))  # warm-up: graph start, model load
        print(f"ready {mp.__version__}", flush=True)
        for line in sys.stdin:
            if line.strip() == "quit":
                break
            img = images[int(line)]
            t0 = time.perf_counter()
            result = mesh.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            ms = (time.perf_counter() - t0) * 1000
            print(f"{ms:.4f} {len(result.multi_face_landmarks or [])}", flush=True)


if __name__ == "__main__":
    main()
