"""Regenerate the README figure of renderer outputs (no photo pixels in it: depth, PNCC, shaded mesh).

    python docs/figures.py            # writes docs/images/reconstruct_outputs.png
"""

from pathlib import Path

import cv2
import numpy as np

from mfirrn import render, vis
from mfirrn.inference.pipeline import Reconstructor, read_image
from mfirrn.io.assets import fetch


def main() -> None:
    image = read_image(fetch("sample-trump-hillary"))
    faces = Reconstructor("3ddfa-v2-mb05")(image)
    v, t = vis.merge_face_meshes(faces)
    shaded = render.shade(v, t, image.shape[0], image.shape[1])
    panels = [cv2.cvtColor(vis.render_depth(image, faces), cv2.COLOR_GRAY2BGR), vis.render_pncc(image, faces),
              np.clip(np.round(shaded * 255), 0, 255).astype(np.uint8)]
    rows = []
    for f in faces:  # one row per face: depth | PNCC | shaded, cut to the face's crop box
        sx, sy, ex, ey = (int(round(c)) for c in f.roi)
        cut = [p[max(0, sy):ey, max(0, sx):ex] for p in panels]
        rows.append(np.hstack([cv2.resize(c, (240, 240), interpolation=cv2.INTER_AREA) for c in cut]))
    out = np.vstack(rows)
    path = Path(__file__).parent / "images" / "reconstruct_outputs.png"
    path.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(path), out)
    print(path)


if __name__ == "__main__":
    main()
