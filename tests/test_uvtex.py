"""UV texture and textured meshes: layout, visibility weights, mirrored fill without tears, no speckles, files
trimesh opens textured."""

import cv2
import numpy as np
import pytest

from mfirrn.cli import main
from mfirrn.render import uvtex
from mfirrn.render.uvtex import load_mirror, load_uv, push_pull_fill, textured_obj, uv_texture, visibility_weight


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


def _grid(n: int, z: float, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """A flat n x n pixel square of (n + 1)^2 vertices at depth ``z``, facing the camera."""
    y, x = np.mgrid[0:n + 1, 0:n + 1].reshape(2, -1)
    v = np.stack([x + offset, y + offset, np.full(x.shape, z)], 1).astype(np.float32)
    q = (y * (n + 1) + x)[(x < n) & (y < n)]
    return v, np.concatenate([np.stack([q, q + 1, q + n + 1], 1), np.stack([q + 1, q + n + 2, q + n + 1], 1)])


def test_visibility_weight_ramps_along_the_surface_from_what_is_hidden():
    """A 100-pixel square with a 20-pixel square 10 pixels in front of its centre: the back vertices under
    the front square are hidden (weight 0); along the row through the centre the weight grows with the
    distance d to the hidden ones as smoothstep((d / size - margin) / blend), size = sqrt(10400), and
    falls to 0 within the margin of where the square ends."""
    back, tb = _grid(100, 0.0, 10.0)
    front, tf = _grid(20, 10.0, 50.0)
    v, t = np.concatenate([back, front]), np.concatenate([tb, tf + len(back)])
    m, b = 0.02, 0.15
    w = visibility_weight(v, t, 120, 120, margin=m, blend=b)[:len(back)]
    size = np.sqrt(100 * 100 + 20 * 20)
    row = 50 * 101 + np.arange(101)  # y = 60 in the photo; the front square covers x in [50, 70]
    assert (w[row[42:59]] == 0).all()  # under the front square (x 52..68)

    def smoothstep(r):
        r = np.clip(r, 0, 1)
        return r * r * (3 - 2 * r)

    for x in (30, 34, 38):  # left of it, d = 40 - x (+-1: where exactly the hidden vertices start)
        lo, hi = (smoothstep(((40 - x + e) / size - m) / b) for e in (-1, 1))
        assert lo - 1e-6 <= w[row[x]] <= hi + 1e-6
    assert np.all(np.diff(w[row[20:40]]) <= 1e-6)  # falls towards the occluder
    assert w[row[0]] == 0 and np.all(np.diff(w[row[0:16]]) >= -1e-6) and w[row[2]] < w[row[12]]  # and the end


@pytest.fixture(scope="module")
def turned_head():
    from mfirrn.render.synthetic import synthetic_head

    return synthetic_head(60.0)


def test_turned_face_texture_has_no_tears(turned_head):
    """A synthetic head turned by 60 degrees, lit from one side, on magenta, textured from its photo with
    the true mesh and with a slightly misfitted one (3% larger, 5 pixels off, as real fits are): no texel
    shows the background and almost none is a tear (an edge that neither the face nor its mirror image
    has: a seam where the photo's side meets the mirrored one, or the background sampled at the outline).
    A hard switch between the two sides (margin = blend = 0, as textures were made before) tears."""
    from mfirrn.render.synthetic import BACKGROUND, tear_texels

    h = turned_head
    for v in (h.vertices, h.misfit()):
        t = uv_texture(h.photo, v, h.triangles)
        shows_background = (np.abs(t.texture.astype(np.float64) - BACKGROUND).max(axis=-1) < 60) & t.chart
        assert shows_background.sum() == 0
        assert tear_texels(t.texture, h)[h.chart].mean() < 0.002
        assert t.mirrored.sum() > 0.2 * t.chart.sum()  # the hidden half is filled from the visible one
    hard = uv_texture(h.photo, h.misfit(), h.triangles, margin=0, blend=0)
    assert tear_texels(hard.texture, h)[h.chart].mean() > 0.005


def test_mirror_map_and_its_errors():
    m = load_mirror(38365)
    assert m.shape == (38365,) and (m[m] == np.arange(len(m))).mean() > 0.9
    v, t = _grid(4, 0.0, 1.0)
    uv = v[:, :2] / 10
    with pytest.raises(ValueError, match="no mirror map"):
        uv_texture(np.zeros((8, 8, 3), np.uint8), v, t, uv, size=16)
    with pytest.raises(ValueError, match="mirror_map: indices"):
        uv_texture(np.zeros((8, 8, 3), np.uint8), v, t, uv, size=16, mirror_map=np.full(len(v), 99))
    flat = uv_texture(np.full((8, 8, 3), 7, np.uint8), v, t, uv, size=16, mirror=False)
    assert flat.mirrored.sum() == 0 and (flat.texture == 7).all()


def test_textured_obj_text_by_hand():
    obj, mtl = textured_obj(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0.5]]), np.array([[0, 1, 2]]),
                            np.array([[0, 0], [1, 0], [0, 1.0]]), "m.mtl", "m.png")
    text = obj.decode().splitlines()
    assert "mtllib m.mtl" in text and "usemtl face" in text and "f 1/1 2/2 3/3" in text
    assert "vt 1.000000 0.000000" in text and "map_Kd m.png" in mtl.decode()


def test_textured_obj_is_pythons_formatting_byte_for_byte():
    """The vectorised OBJ text equals, byte for byte, each line formatted by Python (a mesh of 2 000 random vertices
    in image pixels, negative ones included, and random UVs)."""
    rng = np.random.default_rng(0)
    v, uv = rng.uniform(-400, 400, (2000, 3)), rng.uniform(0, 1, (2000, 2))
    t = rng.integers(0, 2000, (3000, 3))
    obj, _ = textured_obj(v, t, uv, "m.mtl", "m.png")
    want = ("# mfirrn reconstruction, textured (x right, y up, z toward the camera)\nmtllib m.mtl\n"
            + "".join(f"v {a:.4f} {b:.4f} {c:.4f}\n" for a, b, c in v)
            + "".join(f"vt {a:.6f} {b:.6f}\n" for a, b in uv) + "usemtl face\n"
            + "".join(f"f {a}/{a} {b}/{b} {c}/{c}\n" for a, b, c in t + 1))
    assert obj == want.encode()


def test_life_size_scales_the_eyes_3d_distance_to_63_mm():
    """Eye centres 126 pixels apart, the head turned by 60 degrees (63 pixels apart in the image): 0.5 mm a pixel
    whatever the turn, the box's middle at the origin."""
    lm = np.zeros((68, 3))
    a = np.radians(60)
    lm[42:48] = [126 * np.cos(a), 0, 126 * np.sin(a)]
    v = np.array([[10.0, 20, 30], [210, 120, 70]])
    got = uvtex.life_size(v, lm)
    np.testing.assert_allclose(got, [[-0.05, -0.025, -0.01], [0.05, 0.025, 0.01]])


def test_textured_glb_refuses_a_mesh_in_pixels():
    v, t, uv = np.array([[0, 0, 0], [300.0, 0, 0], [0, 300, 0]]), np.array([[0, 1, 2]]), np.zeros((3, 2))
    with pytest.raises(ValueError, match="300 units wide.*metre.*life_size"):
        uvtex.textured_glb(v, t, uv, np.zeros((4, 4, 3), np.uint8))


@pytest.mark.slow
def test_cli_uv_tex_files_open_textured_in_trimesh(tmp_path, sample_photo):
    import shutil

    import trimesh

    out, photo = tmp_path / "out", tmp_path / "my photo #1.jpg"  # a space and a '#': OBJ readers end names there
    shutil.copy(sample_photo, photo)
    assert main(["reconstruct", str(photo), "-o", str(out), "--outputs", "uv_tex,uv_glb,pose"]) == 0
    stem = photo.name  # file names keep the image's extension
    obj_text = (out / f"{stem}_face0_uv.obj").read_text()
    mtl_name = obj_text.splitlines()[1].split(maxsplit=1)[1]
    assert mtl_name == "my_photo__1.jpg_face0_uv.mtl" and (out / mtl_name).is_file()
    png_name = (out / mtl_name).read_text().splitlines()[-1].split(maxsplit=1)[1]
    assert png_name == "my_photo__1.jpg_face0_uv.png" and (out / png_name).is_file()
    mesh = trimesh.load(out / f"{stem}_face0_uv.obj", process=False)
    assert isinstance(mesh.visual, trimesh.visual.TextureVisuals)
    assert mesh.visual.uv.shape == (53215, 2) and mesh.vertices.shape == (53215, 3)
    assert mesh.visual.material.image is not None and mesh.visual.material.image.size == (512, 512)
    glb = trimesh.load(out / f"{stem}_face0_uv.glb")
    g = next(iter(glb.geometry.values())) if hasattr(glb, "geometry") else glb
    assert g.visual.uv.shape == (53215, 2)
    # the photo at full strength on a matte material, as the MTL says (Kd 1): not darkened, not a metal
    m = g.visual.material
    assert np.array_equal(m.baseColorFactor, [255, 255, 255, 255]) and m.metallicFactor == 0.0
    assert m.baseColorTexture is not None and m.baseColorTexture.size == (512, 512)
    import json
    import struct

    blob = (out / f"{stem}_face0_uv.glb").read_bytes()
    gltf = json.loads(blob[20:20 + struct.unpack("<I", blob[12:16])[0]])
    assert "NORMAL" in gltf["meshes"][0]["primitives"][0]["attributes"]
    # at a person's size in metres (glTF's unit), centred: a head 12-40 cm wide, its box's middle at the origin
    lo, hi = g.bounds
    assert 0.12 < (hi - lo)[0] < 0.4 and np.abs((lo + hi) / 2).max() < 1e-6
    assert cv2.imread(str(out / f"{stem}_pose.jpg")).shape == cv2.imread(str(sample_photo)).shape
