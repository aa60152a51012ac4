"""Regenerate the figures of docs/uv_texture.md (no photo pixels in them: texture weights, and the textures of
a synthetic head rendered from the BFM mean face).

    python docs/figures_uv.py      # writes docs/images/uv_weights.png and uv_tears.png
"""

from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mfirrn.inference.pipeline import Reconstructor, read_image  # noqa: E402
from mfirrn.io.assets import fetch  # noqa: E402
from mfirrn.render.synthetic import synthetic_head, tear_texels  # noqa: E402
from mfirrn.render.uvtex import uv_texture  # noqa: E402

IMAGES = Path(__file__).parent / "images"


def weights_figure() -> None:
    image = read_image(fetch("sample-trump-hillary"))
    face = max(Reconstructor("3ddfa-v2-mb05")(image), key=lambda f: abs(f.pose["yaw"]))
    tex = uv_texture(image, face.vertices, face.triangles)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    for ax, (title, img) in zip(axes, (("UV charts", tex.chart), ("from the photo (weight)", tex.seen),
                                       ("from the mirrored side", tex.mirrored))):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title)
        ax.axis("off")
    fig.suptitle(f"texture weights of a face turned by yaw {face.pose['yaw']:.0f} degrees")
    fig.tight_layout()
    fig.savefig(IMAGES / "uv_weights.png", dpi=100)
    plt.close(fig)


def tears_figure() -> None:
    rows = []
    for yaw in (30.0, -60.0):
        head = synthetic_head(yaw)
        v = head.misfit()
        row = [("photo (synthetic head)", head.photo, None)]
        for name, kw in (("hard switch (margin = blend = 0)", dict(margin=0.0, blend=0.0)), ("default", {})):
            tex = uv_texture(head.photo, v, head.triangles, **kw)
            tears = tear_texels(tex.texture, head)
            row.append((name, tex.texture, tears[head.chart].mean() * 100))
        rows.append((yaw, row))
    fig, axes = plt.subplots(len(rows), 3, figsize=(11, 3.9 * len(rows)))
    for (yaw, row), ax_row in zip(rows, axes):
        for ax, (name, img, tears) in zip(ax_row, row):
            ax.imshow(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            ax.set_title(f"yaw {yaw:+.0f}: {name}" if tears is None else f"{name}\ntears {tears:.2f} % of the texels",
                         fontsize=9)
            ax.axis("off")
    fig.suptitle("UV textures from a mesh 3% too large and 5 px off (as fits are)", fontsize=11)
    fig.tight_layout()
    fig.savefig(IMAGES / "uv_tears.png", dpi=90)
    plt.close(fig)


def main() -> None:
    torch.set_num_threads(1)
    IMAGES.mkdir(exist_ok=True)
    weights_figure()
    tears_figure()
    print(f"wrote {IMAGES / 'uv_weights.png'} and {IMAGES / 'uv_tears.png'}")


if __name__ == "__main__":
    main()
