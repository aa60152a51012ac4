"""Mesh writers: the vectorised OBJ text is byte-identical to Python formatting (its slow twin)."""

import numpy as np
import pytest

from mfirrn.render import meshio


def test_format_table_matches_python_on_edge_cases():
    vals = np.array([[0.0, -0.0, 1e-5, -1e-5, 0.00005, 0.00015, -0.00025, 9999.99995],
                     [123456.78905, -2.5, 0.1 + 0.2, 1 / 3, -1234567.0, 42.0, 0.99999, -0.99995]])
    want = "".join("v " + " ".join(f"{x:.4f}" for x in row) + "\n" for row in vals).encode()
    assert meshio.format_table("v", vals, 4) == want
    ints = np.array([[0, 9, 10], [99999, 100000, -7]])
    assert meshio.format_table("f", ints, 0) == b"f 0 9 10\nf 99999 100000 -7\n"
    assert meshio.format_table("v", np.zeros((0, 3)), 4) == b""
    assert meshio.format_table("v", np.array([[np.nan, np.inf, 1e9]]), 2) == b"v nan inf 1000000000.00\n"


@pytest.mark.parametrize("seed", [0, 1])
def test_obj_bytes_identical_to_the_reference_twin(seed):
    rng = np.random.default_rng(seed)
    v = (rng.normal(size=(3000, 3)) * 300).astype(np.float32).astype(np.float64)
    c = rng.uniform(size=(3000, 3))
    c[:10] = np.round(c[:10] * 2e4) / 2e4  # exact half-way cases at 4 decimals
    t = rng.integers(0, 3000, size=(5000, 3))
    assert meshio.obj_bytes(v, t, c) == meshio.obj_bytes_reference(v, t, c)
    assert meshio.obj_bytes(v, t) == meshio.obj_bytes_reference(v, t)


def test_obj_bytes_of_a_reconstructed_face(bfm, mb05, sample_photo):
    from mfirrn.inference.pipeline import Reconstructor, read_image

    img = read_image(sample_photo)
    face = Reconstructor(mb05, bfm=bfm)(img)[0]
    colors = meshio.sample_colors(img, face.vertices)
    v, t = meshio.to_viewer_frame(face.vertices, face.triangles, img.shape[0])
    assert meshio.obj_bytes(v, t, colors) == meshio.obj_bytes_reference(v, t, colors)


def test_photo_colors_of_a_face_cut_by_the_border_come_from_its_other_side(bfm):
    """The BFM mean face, 200 pixels wide, its right half and a little more beyond the image's right border: its
    vertices inside keep the photo's colours; those outside take their mirror vertex's colour where that one is
    inside (not the border column smeared outward), grey where it is outside too (the middle of the face)."""
    from mfirrn.render.uvtex import load_mirror

    u = bfm.u.reshape(-1, 3).numpy().astype(np.float64)
    v = (u - u.mean(0)) * (200 / np.ptp(u[:, 0])) * [1, -1, 1] + [100, 150, 0]  # x in [0, 200], y down
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (300, 91, 3), dtype=np.uint8)  # the border at x = 90, left of the nose
    got = meshio.photo_colors(photo, v)
    plain = meshio.sample_colors(photo, v)
    out = v[:, 0] > 90
    mirror = load_mirror(len(v))
    assert out.any() and (~out[mirror] & out).any() and (out[mirror] & out).any()
    np.testing.assert_array_equal(got[~out], plain[~out])
    side = out & ~out[mirror]
    np.testing.assert_array_equal(got[side], plain[mirror[side]])
    assert (got[out & out[mirror]] == 0.5).all()
    assert not np.array_equal(got[side], plain[side])  # the smeared border column is gone


def test_photo_colors_refuses_a_mirror_map_that_is_not_one_index_per_vertex():
    img, v = np.zeros((4, 4, 3), np.uint8), np.array([[0.0, 1, 0], [9.0, 1, 0]])
    with pytest.raises(ValueError, match=r"mirror_map: expected shape \(2\)"):
        meshio.photo_colors(img, v, mirror_map=np.array([1, 0, 0]))
    with pytest.raises(ValueError, match=r"mirror_map: indices must lie in \[0, 2\)"):
        meshio.photo_colors(img, v, mirror_map=[1, 2])
