"""Reconstruction formulas against hand-derived cases (REFERENCE §1)."""

import math

import numpy as np
import pytest
import torch

from mfirrn.geometry.bfm import MorphableModel
from mfirrn.geometry.frames import crop_to_image, image_to_crop, posed_to_crop
from mfirrn.geometry.params import ParamStats, pose_from_params, rotation_to_euler, split_params


def tiny_model() -> MorphableModel:
    """3 vertices; shape basis column k moves vertex k % 3 along x by 1; expression moves vertex 0 along y."""
    u = np.array([0, 0, 0, 1, 0, 0, 0, 1, 0], np.float32)
    w_shp = np.zeros((9, 40), np.float32)
    for k in range(40):
        w_shp[3 * (k % 3), k] = 1.0
    w_exp = np.zeros((9, 10), np.float32)
    w_exp[1, :] = 1.0
    keypoints = np.arange(6)  # vertices 0 and 1 are the "landmarks"
    return MorphableModel.from_arrays(u, w_shp, w_exp, keypoints, np.array([[0, 1, 2]]))


def params_with(P, shp=None, exp=None) -> torch.Tensor:
    p = torch.zeros(62)
    p[:12] = torch.as_tensor(P, dtype=torch.float32).reshape(-1)
    if shp is not None:
        p[12:52] = torch.as_tensor(shp)
    if exp is not None:
        p[52:62] = torch.as_tensor(exp)
    return p


IDENTITY = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]


def test_identity_pose_gives_mean_shape_flipped_v1():
    m = tiny_model()
    v = m.vertices(params_with(IDENTITY)[None], convention="v1")[0]
    # posed = u; v1 flip: y -> 121 - y
    expected = torch.tensor([[0, 121, 0], [1, 121, 0], [0, 120, 0]], dtype=torch.float32)
    torch.testing.assert_close(v, expected)


def test_identity_pose_v2_shifts_one_pixel():
    m = tiny_model()
    v = m.vertices(params_with(IDENTITY)[None], convention="v2")[0]
    expected = torch.tensor([[-1, 120, -1], [0, 120, -1], [-1, 119, -1]], dtype=torch.float32)
    torch.testing.assert_close(v, expected)
    v1 = m.vertices(params_with(IDENTITY)[None], convention="v1")[0]
    torch.testing.assert_close(v1 - v, torch.tensor([[1.0, 1.0, 1.0]]).expand(3, 3))


def test_pure_translation_and_scale():
    m = tiny_model()
    P = [[2, 0, 0, 10], [0, 2, 0, 20], [0, 0, 2, 30]]
    v = m.vertices(params_with(P)[None], convention="v1")[0]
    # posed: 2*u + t ; vertex 1 = (2+10, 0+20, 0+30); flipped y = 121 - 20
    torch.testing.assert_close(v[1], torch.tensor([12.0, 101.0, 30.0]))
    torch.testing.assert_close(v[2], torch.tensor([10.0, 121.0 - 22.0, 30.0]))


def test_shape_and_expression_coefficients_move_the_right_vertices():
    m = tiny_model()
    shp = torch.zeros(40)
    shp[1] = 0.5  # column 1 moves vertex 1 along x
    exp = torch.zeros(10)
    exp[3] = 2.0  # every exp column moves vertex 0 along y
    v = m.posed_vertices(params_with(IDENTITY, shp, exp)[None])[0]
    torch.testing.assert_close(v, torch.tensor([[0, 2, 0], [1.5, 0, 0], [0, 1, 0]], dtype=torch.float32))


def test_landmarks_are_the_keypoint_rows_of_the_dense_mesh(bfm):
    p = params_with([[0.001, 0, 0, 60], [0, 0.001, 0, 60], [0, 0, 0.001, 0]], torch.randn(40) * 1e5, torch.randn(10))
    dense = bfm.vertices(p[None], convention="v2")[0]
    lm = bfm.landmarks(p[None], convention="v2")[0]
    from mfirrn.io.assets import fetch

    kp = np.load(fetch("bfm-keypoints"))
    torch.testing.assert_close(lm, dense[torch.as_tensor(kp[::3] // 3)], rtol=1e-5, atol=1e-3)


def test_noneck_mesh_is_a_vertex_subset():
    full, noneck = MorphableModel("full"), MorphableModel("noneck")
    assert (noneck.n_vertices, len(noneck.triangles)) == (38365, 76073)
    assert (full.n_vertices, len(full.triangles)) == (53215, 105840)
    from mfirrn.io.assets import fetch

    idx = torch.as_tensor(np.load(fetch("bfm-noneck-indices")).astype(np.int64))
    p = params_with([[0.001, 0, 0, 60], [0, 0.001, 0, 60], [0, 0, 0.001, 0]])[None]
    torch.testing.assert_close(noneck.vertices(p, convention="v1"), full.vertices(p, convention="v1")[:, idx])
    assert noneck.triangles.max() == 38364 and full.triangles.min() == 0


def test_numpy_and_torch_paths_agree(bfm):
    p = torch.randn(3, 62) * torch.tensor([1e-4] * 12 + [1e5] * 40 + [1.0] * 10)
    roi = torch.tensor([[0.0, 0, 240, 240], [10, 20, 130, 140], [5, 5, 65, 65]])
    t = bfm.landmarks(p, convention="v2", roi=roi)
    n = bfm.landmarks(p.numpy(), convention="v2", roi=roi.numpy())
    assert isinstance(n, np.ndarray) and n.shape == (3, 68, 3)
    np.testing.assert_allclose(n, t.detach().numpy(), rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("dense", [False, True])
def test_a_face_is_the_same_bits_whatever_its_batch_and_the_threads(bfm, dense):
    # a batched matrix product picks its reduction order by batch size and thread count (up to 1e-5 apart):
    # results must not depend on how many faces a photo has, nor on --threads / --workers
    p = torch.randn(7, 62) * torch.tensor([1e-4] * 12 + [1e5] * 40 + [1.0] * 10)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = [bfm.vertices(p[i:i + 1], convention="v2", dense=dense) for i in range(7)]
        torch.set_num_threads(2)
        batch = bfm.vertices(p, convention="v2", dense=dense)
    finally:
        torch.set_num_threads(before)
    for i in range(7):
        assert torch.equal(alone[i][0], batch[i])


def test_reconstruction_is_differentiable_and_batched(device):
    m = tiny_model().to(device)
    p = torch.randn(4, 62, device=device, dtype=torch.float32, requires_grad=True)
    m.vertices(p, convention="v1").sum().backward()
    assert p.grad is not None and p.grad.shape == (4, 62) and p.grad.device.type == device.type


def test_bad_param_shape_is_rejected():
    with pytest.raises(ValueError, match=r"expected shape \(\*, 62\), got \(2, 61\)"):
        tiny_model().vertices(torch.zeros(2, 61), convention="v1")
    with pytest.raises(ValueError, match="unknown pixel convention"):
        tiny_model().vertices(torch.zeros(1, 62), convention="v3")


def test_crop_to_image_round_trip_and_hand_case():
    v = torch.tensor([[[0.0, 0.0, 1.0], [120.0, 60.0, 2.0]]])
    roi = torch.tensor([[50.0, 100.0, 290.0, 220.0]])  # scale x 2, y 1
    out = crop_to_image(v, roi)
    torch.testing.assert_close(out, torch.tensor([[[50.0, 100.0, 1.5], [290.0, 160.0, 3.0]]]))
    torch.testing.assert_close(image_to_crop(out, roi), v)


def test_posed_to_crop_conventions():
    v = torch.tensor([[5.0, 7.0, 9.0]])
    assert posed_to_crop(v, "v1").tolist() == [[5.0, 114.0, 9.0]]
    assert posed_to_crop(v, "v2").tolist() == [[4.0, 113.0, 8.0]]


def rot_y(deg):
    a = math.radians(deg)
    return torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def test_pose_from_params_recovers_scale_rotation_translation():
    R = rot_y(-30.0)
    P = torch.cat([0.002 * R, torch.tensor([[60.0], [50.0], [10.0]])], dim=1)
    pose = pose_from_params(params_with(P)[None])
    torch.testing.assert_close(pose.scale, torch.tensor([0.002]))
    torch.testing.assert_close(pose.R[0], R, atol=1e-6, rtol=0)
    torch.testing.assert_close(pose.t[0], torch.tensor([60.0, 50.0, 10.0]))
    # yaw = asin(-R[0,2]) = asin(sin 30deg) = 30 degrees (AFLW2000-3D convention, reported in degrees)
    assert pose.yaw.item() == pytest.approx(30.0, abs=1e-4)
    assert pose.pitch.item() == pytest.approx(0.0, abs=1e-4) and pose.roll.item() == pytest.approx(0.0, abs=1e-4)


def test_euler_roll_and_pitch_hand_cases():
    a = math.radians(20)
    Rz = torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    Rx = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    y, p, r = rotation_to_euler(torch.stack([Rz, Rx]))
    # the dataset's Rz(a) = [[cos a, sin a, 0], [-sin a, cos a, 0], ...], so this Rz is roll = -20 (R[0,1] = -sin a);
    # likewise its Rx(a) has R[1,2] = +sin a, so this Rx is pitch = -20
    assert r.tolist() == pytest.approx([-20.0, 0.0], abs=1e-4)
    assert p.tolist() == pytest.approx([0.0, -20.0], abs=1e-4)
    gy, _, gr = rotation_to_euler(rot_y(-90.0)[None])  # gimbal lock: roll set to 0
    assert gy.item() == pytest.approx(90.0) and gr.item() == 0.0


def test_param_stats_round_trip_and_split():
    stats = ParamStats(np.arange(62.0), np.full(62, 2.0))
    p = torch.randn(5, 62)
    torch.testing.assert_close(stats.denormalize(stats.normalize(p)), p)
    s = split_params(p)
    assert s.P.shape == (5, 3, 4) and s.alpha_shp.shape == (5, 40) and s.alpha_exp.shape == (5, 10)
    assert s.P[0, 1, 0] == p[0, 4]  # row-major 3x4
    with pytest.raises(ValueError, match="ParamStats.mean"):
        ParamStats(np.zeros(61), np.ones(62))


def test_both_stats_assets_load_and_differ():
    v1, v2 = ParamStats.from_asset("stats-3ddfa-v1"), ParamStats.from_asset("stats-3ddfa-v2")
    assert v1.mean.shape == v2.mean.shape == (62,)
    assert not np.allclose(v1.mean, v2.mean)
