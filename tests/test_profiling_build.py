"""Face profiling (exact param rotation, re-rendering) and the resumable dataset build."""

import json

import numpy as np
import pytest
import torch

from mfirrn.data.labels.profiling import ProfileConfig, profile_face, rotate_params, rotation_matrix, sample_rotation
from mfirrn.geometry.bfm import mirror_vertex_map
from mfirrn.geometry.params import ParamStats, pose_from_params


@pytest.fixture(scope="module")
def frontal_params():
    stats = ParamStats.from_asset("stats-3ddfa-v2")
    p = stats.denormalize(torch.zeros(1, 62))
    P = torch.tensor([[1.0, 0, 0, 60], [0, 1, 0, 60], [0, 0, 1, 0]]) * torch.tensor([[1e-3] * 3 + [1]] * 3)
    p[0, :12] = P.reshape(-1)
    return p


def test_rotation_changes_yaw_pitch_roll_by_the_requested_angles(frontal_params):
    for angles, field in (((25, 0, 0), "yaw"), ((0, 15, 0), "pitch"), ((0, 0, -10), "roll")):
        R = torch.as_tensor(rotation_matrix(*angles), dtype=torch.float32)[None]
        pose = pose_from_params(rotate_params(frontal_params, R, torch.zeros(1, 3)))
        assert getattr(pose, field).item() == pytest.approx(sum(angles), abs=1e-3)


def test_rotated_params_give_exactly_the_rotated_mesh(bfm, frontal_params):
    R = torch.as_tensor(rotation_matrix(30, 5, -5), dtype=torch.float32)[None]
    centre = bfm.posed_vertices(frontal_params)[0].mean(0, keepdim=True)
    posed = bfm.posed_vertices(frontal_params)[0]
    rotated = bfm.posed_vertices(rotate_params(frontal_params, R, centre))[0]
    torch.testing.assert_close(rotated, (posed - centre) @ R[0].T + centre, atol=1e-3, rtol=1e-4)
    assert pose_from_params(rotate_params(frontal_params, R, centre)).scale.item() == pytest.approx(1e-3, rel=1e-5)


def test_sample_rotation_turns_further_and_respects_the_cap():
    cfg = ProfileConfig()
    rng = np.random.default_rng(0)
    for yaw in (20.0, -35.0, 70.0):
        d = sample_rotation(yaw, rng, cfg)
        assert np.sign(d[0]) == np.sign(yaw) and abs(yaw + d[0]) <= cfg.max_yaw + 1e-9
        assert abs(d[1]) <= cfg.pitch_jitter and abs(d[2]) <= cfg.roll_jitter
    assert sample_rotation(89.0, rng, cfg) is None


def test_mirror_map_is_an_involution_on_most_vertices(bfm):
    m = mirror_vertex_map(bfm)
    assert m.shape == (53215,)
    assert (m[m] == np.arange(len(m))).mean() > 0.9
    u = bfm.u.reshape(-1, 3).numpy()
    assert np.abs(u[m, 1] - u[:, 1]).mean() < 1e3 and np.abs(u[m, 0] + u[:, 0] - 2 * u[:, 0].mean()).mean() < 1e3


def test_profile_face_renders_the_rotated_face_on_the_photo(bfm, frontal_params):
    crop = np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8)
    p = frontal_params.clone()
    p[0, :12] = torch.tensor([[5e-4, 0, 0, 60], [0, 5e-4, 0, 66], [0, 0, 5e-4, 0]]).reshape(-1)
    img, p_new = profile_face(crop, p[0].numpy(), bfm, "v2", (30.0, 0.0, 0.0))
    assert img.shape == (120, 120, 3) and img.dtype == np.uint8 and p_new.shape == (62,)
    assert pose_from_params(torch.as_tensor(p_new)[None]).yaw.item() == pytest.approx(30.0, abs=0.5)
    assert np.abs(img.astype(int) - crop).mean() > 5  # the face was re-rendered
    np.testing.assert_array_equal(img[:3, :3], crop[:3, :3])  # far corner: untouched background


def test_build_is_resumable_and_writes_the_generic_layout(tmp_path, bfm, faces68_root):
    """A tiny labels folder (3 fake faces) -> build -> remove a part -> rebuild: identical outputs."""
    import cv2

    from mfirrn.data.datasets import load_crops_params
    from mfirrn.data.labels.build import BuildConfig, build_dataset

    crops_dir = tmp_path / "crops"
    crops_dir.mkdir()
    stats = ParamStats.from_asset("stats-3ddfa-v2")
    params = stats.denormalize(torch.zeros(3, 62)).numpy()
    for i in range(3):
        cv2.imwrite(str(crops_dir / f"f{i}.jpg"), np.full((120, 120, 3), 60 * i, np.uint8))
    labels = tmp_path / "labels"
    labels.mkdir()
    np.savez(labels / "labels.npz", params=params, residual=np.zeros(3), accepted=np.array([True, False, True]),
             n_visible=np.full(3, 21), yaw=np.zeros(3), roi=np.zeros((3, 4)), names=np.array(["f0.jpg", "f1.jpg", "f2.jpg"]))
    (labels / "labels.json").write_text(json.dumps({"crop_dir": str(crops_dir), "convention": "v2", "teacher": "x"}))
    cfg = BuildConfig(profiles_per_face=1, chunk=1, workers=1)
    out = tmp_path / "ds"
    m1 = build_dataset(labels, out, cfg, progress=False)
    assert (m1["faces"], m1["profiled"], m1["count"]) == (2, 2, 4)
    first = np.load(out / "params.npy")
    (out / "parts" / "part_00001.npz").unlink()
    m2 = build_dataset(labels, out, cfg, progress=False)
    np.testing.assert_array_equal(np.load(out / "params.npy"), first)
    assert m2["count"] == 4 and (out / "crops.list").read_text().split() == ["000000_0.jpg", "000000_1.jpg", "000002_0.jpg", "000002_1.jpg"]
    ds = load_crops_params(out, stats)
    assert len(ds) == 4
