"""Crops (REFERENCE §2) and metrics (REFERENCE §3) against hand-derived values."""

import numpy as np
import pytest
import torch

from mfirrn.evaluation.metrics import AFLW21_FROM_68, map_68_to_21, nme, summarize_by_yaw
from mfirrn.geometry.crop import crop_image, crops_to_tensor, roi_from_box, roi_from_landmarks


def test_roi_from_box_hand_case():
    # old = 100, centre (150, 150 + 14), side int(158)
    np.testing.assert_allclose(roi_from_box(np.array([100, 100, 200, 200])), [71, 85, 229, 243])
    # non-square box: old = (50 + 100)/2 = 75, side int(118.5) = 118, cy = 150 + 10.5
    np.testing.assert_allclose(roi_from_box(np.array([[0, 100, 50, 200]])), [[25 - 59, 160.5 - 59, 25 + 59, 160.5 + 59]])


def test_roi_from_landmarks_is_the_diagonal_square():
    pts = np.array([[10.0, 20.0], [30.0, 60.0]])  # box 20 x 40 -> square of side 40 centred (20, 40)
    side = 40 * np.sqrt(2)
    np.testing.assert_allclose(roi_from_landmarks(pts), [20 - side / 2, 40 - side / 2, 20 + side / 2, 40 + side / 2])


def test_crop_pads_with_zeros_outside_the_image():
    img = np.full((100, 100, 3), 200, np.uint8)
    crop = crop_image(img, np.array([-60.0, -60.0, 60.0, 60.0]))  # 120 px roi, top-left quarter outside
    assert crop.shape == (120, 120, 3)
    assert crop[:59, :59].max() == 0 and crop[61:, 61:].min() == 200


def test_crop_of_a_120px_roi_is_exact():
    img = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    np.testing.assert_array_equal(crop_image(img, np.array([10.0, 20.0, 130.0, 140.0])), img[20:140, 10:130])


def test_crops_to_tensor_normalisation_and_layout():
    crops = np.zeros((2, 120, 120, 3), np.uint8)
    crops[1, 0, 0] = [255, 0, 128]
    t = crops_to_tensor(crops)
    assert t.shape == (2, 3, 120, 120) and t.dtype == torch.float32
    assert t[0, 0, 0, 0].item() == pytest.approx(-127.5 / 128)
    assert t[1, :, 0, 0].tolist() == pytest.approx([127.5 / 128, -127.5 / 128, 0.5 / 128])


def test_nme_hand_case_and_normaliser():
    gt = np.array([[[0.0, 0.0], [40.0, 10.0]]])  # box 40 x 10 -> sqrt = 20
    pred = gt + np.array([[[3.0, 4.0], [0.0, 0.0]]])  # errors 5 and 0 -> mean 2.5
    assert nme(pred, gt)[0] == pytest.approx(2.5 / 20)


def test_nme_skips_invisible_points():
    gt = np.array([[[0.0, 0.0], [10.0, 10.0], [np.nan, np.nan]]])
    pred = np.array([[[1.0, 0.0], [10.0, 10.0], [500.0, 500.0]]])
    assert nme(pred, gt)[0] == pytest.approx(0.5 / 10)


def test_yaw_bins_mean_is_mean_of_bin_means():
    nmes = np.array([0.01, 0.03, 0.05, 0.05, 0.09])
    yaws = np.array([5.0, -30.0, 45.0, -60.0, 75.0])  # bins: 0, 0, 1, 1, 2 (edges inclusive)
    s = summarize_by_yaw(nmes, yaws)
    assert s.counts == [2, 2, 1]
    assert s.bins == pytest.approx([2.0, 5.0, 9.0])
    assert s.mean == pytest.approx(16 / 3)
    assert s.std == pytest.approx(np.std([2.0, 5.0, 9.0]))
    assert s.per_image_mean == pytest.approx(4.6)


def test_68_to_21_mapping_hand_case():
    pts = np.zeros((68, 2))
    pts[:, 0] = np.arange(1, 69)  # x = 1-based index
    out = map_68_to_21(pts)
    assert out.shape == (21, 2) and len(AFLW21_FROM_68) == 21
    assert out[0, 0] == 18 and out[7, 0] == pytest.approx(np.mean(range(37, 43))) and out[20, 0] == 9
    assert out[18, 0] == pytest.approx(np.mean(range(61, 69)))


def test_crops_to_tensor_equals_the_torch_formula_bit_for_bit():
    crops = np.random.default_rng(0).integers(0, 256, (3, 120, 120, 3), dtype=np.uint8)
    expected = (torch.from_numpy(crops).permute(0, 3, 1, 2).float() - 127.5) / 128.0
    assert torch.equal(crops_to_tensor(crops), expected) and torch.equal(crops_to_tensor(list(crops)), expected)
