"""UV texture and textured meshes: layout, visibility, mirrored fill, no speckles, files trimesh opens textured."""

import cv2
import numpy as np
import pytest

from mfirrn.cli import main
from mfirrn.render.uvtex import load_uv, push_pull_fill, textured_obj, uv_texture


@pytest.fixture(scope="module")
def photo_face(sample_photo):
    from mfirrn.inference.pipeline import Reconstructor, read_image

    img = read_image(sample_photo)
    return img, Reconstructor("3ddfa-v2-mb05")(img)[0]


@pytest.fixture(scope="module")
def tex(photo_face):
    img, face = photo_face
    return uv_texture(img, face.vertices, face.triangles)


def test_uv_layout_for_both_meshes():
    full, noneck = load_uv(53215), load_uv(38365)
    assert full.shape == (53215, 2) and noneck.shape == (38365, 2)
    assert full.min() >= 0 and full.max() <= 1
    with pytest.raises(ValueError, match="no UV layout"):
        load_uv(100)


def test_push_pull_keeps_known_pixels_and_fills_holes_within_their_range():
    img = np.zeros((32, 32, 3))
    img[:, :16] = 50.0
    img[:, 16:] = 200.0
    w = np.ones((32, 32))
    w[8:24, 8:24] = 0
    out = push_pull_fill(img * w[..., None], w)
    np.testing.assert_allclose(out[w == 1], img[w == 1])
    hole = out[w == 0]
    assert hole.min() >= 50 - 1e-6 and hole.max() <= 200 + 1e-6
    assert out[16, 9, 0] < out[16, 22, 0]  # left of the hole stays closer to the left colour


def test_textured_mesh_rendered_back_matches_the_photo(photo_face, tex):
    """Round trip: the mesh textured with its own UV texture, rendered into the photo frame, gives back
    the photo where the face is seen (a flipped v, a wrong layout or a shifted sample would not)."""
    from mfirrn import render

    img, face = photo_face
    h, w = img.shape[:2]
    out = render.render_uv_texture(face.vertices, face.triangles, tex.uv, tex.texture.astype(np.float32), h, w)
    vis = render.visibility(face.vertices, face.triangles, h, w)
    lm = face.landmarks
    x0, y0, x1, y1 = lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()
    ids, _ = render.rasterize_ids(face.vertices, face.triangles, h, w)
    yy, xx = np.mgrid[0:h, 0:w]
    inner = (ids >= 0) & (xx > x0) & (xx < x1) & (yy > y0) & (yy < y1)  # the face inside its landmarks
    diff = np.abs(out[inner] - img[inner].astype(np.float32)).mean()
    assert vis.mean() > 0.4 and inner.sum() > 5000
    assert diff < 6.0


def test_texture_has_no_isolated_outlier_pixels(tex):
    """Speckles: texels that differ from the median of their 3x3 neighbourhood by more than 48 grey levels
    (any channel). A real photo's face texture keeps them below 0.01% of the texels."""
    t = tex.texture.astype(np.int16)
    med = cv2.medianBlur(tex.texture, 3).astype(np.int16)
    outliers = (np.abs(t - med).max(axis=-1) > 48) & tex.chart
    assert outliers.mean() < 1e-4, f"{int(outliers.sum())} isolated outlier texels"
    assert tex.seen.max() == pytest.approx(1.0) and (tex.seen[~tex.chart] == 0).all()


def test_hidden_side_is_filled_from_the_mirror():
    """A face turned away shows one side only: the hidden side's texels come from the mirrored side."""
    from mfirrn.inference.pipeline import Reconstructor, read_image
    from mfirrn.io.assets import fetch

    img = read_image(fetch("sample-trump-hillary"))
    face = max(Reconstructor("3ddfa-v2-mb05")(img), key=lambda f: abs(f.pose["yaw"]))
    assert abs(face.pose["yaw"]) > 10
    t = uv_texture(img, face.vertices, face.triangles)
    half = t.chart.shape[1] // 2
    left, right = t.mirrored[:, :half].sum(), t.mirrored[:, half:].sum()
    assert max(left, right) > 5 * min(left, right) and t.mirrored.sum() > 0.05 * t.chart.sum()
    no_mirror = uv_texture(img, face.vertices, face.triangles, mirror=False)
    assert no_mirror.mirrored.sum() == 0


def test_textured_obj_text_by_hand():
    obj, mtl = textured_obj(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0.5]]), np.array([[0, 1, 2]]),
                            np.array([[0, 0], [1, 0], [0, 1.0]]), "m.mtl", "m.png")
    text = obj.decode().splitlines()
    assert "mtllib m.mtl" in text and "usemtl face" in text and "f 1/1 2/2 3/3" in text
    assert "vt 1.000000 0.000000" in text and "map_Kd m.png" in mtl.decode()


@pytest.mark.slow
def test_cli_uv_tex_files_open_textured_in_trimesh(tmp_path, sample_photo):
    import trimesh

    out = tmp_path / "out"
    assert main(["reconstruct", str(sample_photo), "-o", str(out), "--outputs", "uv_tex,uv_glb,pose"]) == 0
    stem = sample_photo.name  # file names keep the image's extension
    mesh = trimesh.load(out / f"{stem}_face0_uv.obj", process=False)
    assert isinstance(mesh.visual, trimesh.visual.TextureVisuals)
    assert mesh.visual.uv.shape == (53215, 2) and mesh.vertices.shape == (53215, 3)
    assert mesh.visual.material.image is not None and mesh.visual.material.image.size == (512, 512)
    glb = trimesh.load(out / f"{stem}_face0_uv.glb")
    g = next(iter(glb.geometry.values())) if hasattr(glb, "geometry") else glb
    assert g.visual.uv.shape == (53215, 2)
    assert cv2.imread(str(out / f"{stem}_pose.png")).shape == cv2.imread(str(sample_photo)).shape
