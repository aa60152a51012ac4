"""Head pose: the AFLW2000-3D angle convention, its link to 3DDFA params, and the MAE metric."""

import numpy as np
import pytest
import scipy.io
import torch

from mfirrn.evaluation import pose as pose_eval
from mfirrn.geometry import pose


def test_rotation_matches_the_dataset_formula_by_hand():
    # Rx(a) Ry(b) Rz(c) with the dataset's (transposed, "passive") elementary matrices
    R = pose.rotation_from_angles(yaw=90.0, pitch=0.0, roll=0.0)
    np.testing.assert_allclose(R, [[0, 0, -1], [0, 1, 0], [1, 0, 0]], atol=1e-12)
    R = pose.rotation_from_angles(yaw=0.0, pitch=90.0, roll=0.0)
    np.testing.assert_allclose(R, [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-12)
    R = pose.rotation_from_angles(yaw=0.0, pitch=0.0, roll=90.0)
    np.testing.assert_allclose(R, [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-12)


def test_angles_round_trip_and_batch():
    rng = np.random.default_rng(0)
    ang = np.stack([rng.uniform(-89, 89, 200), rng.uniform(-179, 179, 200), rng.uniform(-179, 179, 200)], 1)
    R = pose.rotation_from_angles(ang[:, 0], ang[:, 1], ang[:, 2])
    assert R.shape == (200, 3, 3)
    np.testing.assert_allclose(np.einsum("nij,nkj->nik", R, R), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(pose.angles_from_rotation(R), ang, atol=1e-8)


def test_gimbal_lock_keeps_the_rotation():
    R = pose.rotation_from_angles(90.0, 20.0, 0.0)
    a = pose.angles_from_rotation(R)
    assert a[0] == pytest.approx(90.0) and a[2] == 0.0
    np.testing.assert_allclose(pose.rotation_from_angles(*a), R, atol=1e-9)


def test_near_a_profile_pitch_and_roll_trade_against_each_other():
    """docs/pose.md, "Profiles": at yaw -82 (+82) degrees, 10 degrees more pitch and 10 less (more) roll turn the head
    by 1.4 degrees, where at yaw 0 they turn it by 14; a profile read as pitch -89, roll 93 is a nearly level head."""
    def turn(a, b):  # the angle (degrees) of the rotation between two rotations
        return np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1, 1)))

    at = pose.rotation_from_angles
    assert turn(at(-82.0, 0.0, 0.0), at(-82.0, 10.0, -10.0)) == pytest.approx(1.4, abs=0.05)
    assert turn(at(82.0, 0.0, 0.0), at(82.0, 10.0, 10.0)) == pytest.approx(1.4, abs=0.05)
    assert turn(at(0.0, 0.0, 0.0), at(0.0, 10.0, -10.0)) == pytest.approx(14.1, abs=0.05)
    assert turn(at(-82.0, -89.0, 93.0), at(-88.0, -16.0, 20.0)) < 8


def test_params_rotation_is_scale_free_and_pose_from_params_agrees():
    R = pose.rotation_from_angles(25.0, -12.0, 7.0)
    p = np.zeros(62)
    p[:12] = np.concatenate([3e-4 * R, [[10.0], [20.0], [30.0]]], axis=1).reshape(-1)
    np.testing.assert_allclose(pose.rotation_from_params(p), R, atol=1e-12)
    np.testing.assert_allclose(pose.angles_from_params(torch.as_tensor(p[None])), [[25.0, -12.0, 7.0]], atol=1e-8)


def test_angle_error_wraps_and_mae_follows_the_99_degree_protocol():
    assert pose_eval.angle_error(np.array(350.0), np.array(-5.0)) == pytest.approx(5.0)
    pred = np.array([[10.0, 0, 0], [0, 0, 0], [0, 0, 0]])
    gt = np.array([[0.0, 4, 0], [0, 0, 2], [0, 100, 0]])  # the third image is outside ±99 and is dropped
    s = pose_eval.pose_mae(pred, gt)
    assert (s.yaw, s.pitch, s.roll, s.n_used, s.n_images) == (5.0, 2.0, 1.0, 2, 3)
    assert s.mean == pytest.approx(8 / 3)
    with pytest.raises(ValueError, match="pred"):
        pose_eval.pose_mae(np.zeros((2, 2)), np.zeros((2, 3)))


def _fits(dev_root, k=25):
    d = dev_root / "test.data" / "AFLW2000-3D"
    paths = sorted(d.glob("*.mat"))[:k]
    assert paths, f"no .mat fits in {d}"
    return paths


def test_a_fits_own_params_reproduce_its_landmarks_and_pose(dev_root, bfm):
    """Ground truth of the convention: params built from a fit (P = f·R | t) give the fit's own 68
    landmarks through the workbench's BFM, and their angles give back the fit's Pose_Para (~0 error)."""
    errors, angles, gts = [], [], []
    for path in _fits(dev_root):
        fit = scipy.io.loadmat(str(path))
        p = pose.params_from_fit(fit)
        v = bfm.posed_vertices(torch.as_tensor(p[None], dtype=torch.float64).float(), dense=False)[0].double().numpy()
        height = 450  # the originals are 450x450
        lm = np.stack([v[:, 0], height + 1 - v[:, 1]], axis=1)
        errors.append(np.linalg.norm(lm - fit["pt3d_68"][:2].T, axis=1).mean())
        angles.append(pose.angles_from_params(p))
        gts.append(pose_eval.read_fit_pose(path))
    # 1-3 px from truncating the fit to 40 shape + 10 expression coefficients; a transposed or
    # mis-ordered rotation would put the landmarks tens of pixels off
    assert np.median(errors) < 2.5 and max(errors) < 5.0
    s = pose_eval.pose_mae(np.array(angles), np.array(gts))
    assert s.mean < 1e-3 and s.n_used == len(gts) - (np.abs(np.array(gts)) > 99).any(1).sum()


def test_gt_poses_load_for_the_dev_split_and_match_its_yaw_file(dev_root):
    from mfirrn.evaluation.benchmark import AFLW2000

    data = AFLW2000.load(dev_root, limit=20)
    gt = pose_eval.load_gt_poses(data.root, data.names)
    assert gt.shape == (20, 3)
    np.testing.assert_allclose(gt[:, 0], data.yaw, atol=1e-4)  # AFLW2000-3D.pose.npy is the fits' yaw
    assert pose_eval.load_gt_poses(data.root, ["not-there.jpg"]) is None


def test_published_pose_rows_are_reference_values():
    rows = {r.method: r for r in pose_eval.PUBLISHED_POSE}
    assert set(rows) == {"3DDFA-TPAMI", "FSA-Net", "2DASL", "3DDFA_V2", "SynergyNet"}
    assert (rows["3DDFA_V2"].yaw, rows["3DDFA_V2"].mean) == (4.06, 4.27)
    for r in rows.values():
        assert r.mean == pytest.approx((r.yaw + r.pitch + r.roll) / 3, abs=0.01)


def test_comparison_table_carries_pose_columns_and_published_pose_rows():
    from mfirrn.evaluation.benchmark import BenchmarkResult
    from mfirrn.evaluation.metrics import summarize_by_yaw
    from mfirrn.evaluation.report import POSE_COLUMNS, comparison_table

    nme_values, yaw = np.array([0.03, 0.04]), np.array([10.0, 45.0])
    r = BenchmarkResult("m", "original", ["a.jpg", "b.jpg"], yaw, nme_values, np.zeros((2, 68, 2)),
                        summarize_by_yaw(nme_values, yaw),
                        pose=pose_eval.pose_mae(np.zeros((1, 3)), np.array([[1.0, 2, 3]])))
    df = comparison_table([r]).set_index("method")
    assert list(df.loc["m", list(POSE_COLUMNS)]) == [1.0, 2.0, 3.0, 2.0]
    assert df.loc["3DDFA_V2 (ECCV20)", "pose MAE"] == 4.27 and df.loc["3DDFA_V2 (ECCV20)", "Mean"] == 3.51
    assert df.loc["FSA-Net", "kind"] == "published" and np.isnan(df.loc["FSA-Net", "Mean"])  # pose-only row
    assert df.loc["FSA-Net", "yaw MAE"] == 4.50
    assert df.loc["3DDFA-PAMI", "pose MAE"] == 4.87 and df.loc["3DDFA-PAMI", "Mean"] == 3.79  # TPAMI = PAMI
    no_pose = BenchmarkResult("n", "original", r.names, yaw, nme_values, r.landmarks, r.summary)
    assert np.isnan(comparison_table([no_pose], published=False).loc[0, "pose MAE"])


def test_benchmark_scores_pose_beside_nme(dev_root, mb05, bfm):
    from mfirrn.evaluation.benchmark import AFLW2000, evaluate, format_table

    data = AFLW2000.load(dev_root, limit=40)
    r = evaluate(mb05, data, bfm=bfm)
    assert r.params.shape == (40, 62) and r.pose is not None and r.pose.n_images == 40
    assert 0 < r.pose.mean < 15  # degrees; the whole dev split gives about 4 for this model
    assert "head pose MAE" in format_table(r) and r.summary_dict()["pose_mae_deg"]["mean"] == r.pose.mean
