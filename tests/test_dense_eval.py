"""Dense 3D evaluation: the Zhu pose convention against pt3d_68, alignment maths, the dense NME."""

import numpy as np
import pytest

from mfirrn.evaluation import dense as de
from mfirrn.evaluation.benchmark import AFLW2000


@pytest.fixture(scope="module")
def noneck():
    from mfirrn.geometry.bfm import MorphableModel

    return MorphableModel("noneck")


@pytest.fixture(scope="module")
def fits(dev_root, noneck):
    data = AFLW2000.load(dev_root, limit=1)
    names = [s.strip() for s in (data.root / "AFLW2000-3D_crop.list").read_text().split()][:40]
    return [de.load_fit(de.fit_path(data.root, n)) for n in names]


def test_gt_keypoints_land_on_pt3d_68(fits, noneck):
    """Rx·Ry·Rz, s·R·S + t, y = H + 1 - y with the first 40/10 coefficients: within a few pixels of pt3d_68."""
    d = de.keypoint_agreement(fits, noneck)
    assert d.mean() < 2.0 and d.max() < 5.0
    # the coefficients matter (units of w_shp/w_exp = units of Shape_Para/Exp_Para): the mean shape is far worse
    assert de.keypoint_agreement(fits, noneck, n_shape=0, n_exp=0).mean() > 2 * d.mean()
    # and the +1 of the y flip is right: H - y leaves a one-pixel bias
    res = np.concatenate([de.gt_vertices(f, noneck, dense=False)[:, 1] - f.pt3d_68[:, 1] for f in fits])
    assert abs(res.mean()) < 0.5


def test_pt3d_68_is_the_benchmark_gt(dev_root, fits):
    pts = np.load(dev_root / "test.configs" / "AFLW2000-3D.pts68.npy")
    assert np.allclose(pts[0][:2].T, fits[0].pt3d_68[:, :2], atol=1e-3)


@pytest.mark.parametrize("mode", ["rigid", "similarity"])
def test_alignment_recovers_a_transform(mode):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(100, 3))
    s = 1.0 if mode == "rigid" else 1.7
    b = s * a @ de.zhu_rotation(0.4, -0.7, 0.2).T + [3.0, -2.0, 10.0]
    assert np.allclose(de.align_points(a, b, mode), b, atol=1e-9)
    assert de.dense_errors(a, b, mode).max() < 1e-9


def test_rigid_keeps_scale_error_and_none_ignores_only_depth_offset():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(200, 3)) * 10
    big = gt * 1.1
    assert de.dense_errors(big, gt, "rigid").mean() > 0.5
    assert de.dense_errors(big, gt, "similarity").mean() < 1e-9
    shifted = gt + [0.0, 0.0, 50.0]
    assert de.dense_errors(shifted, gt, "none").max() < 1e-9
    assert de.dense_errors(gt + [1.0, 0, 0], gt, "none").mean() == pytest.approx(1.0)


def test_mb05_dense_nme_is_sane_and_heatmap_renders(dev_root, mb05, noneck):
    data = AFLW2000.load(dev_root, limit=12)
    r = de.evaluate_dense(mb05, data, bfm=noneck)
    assert r.per_vertex.shape == (38365,)
    assert 0.5 < r.summary.per_image_mean < 6.0
    assert r.gt_agreement.max() < 5.0
    assert "truncated" in r.protocol
    img, vmax = de.error_heatmap(r.per_vertex, noneck, size=96)
    assert img.shape == (96, 96, 3) and vmax > 0 and (img < 0.99).any()
