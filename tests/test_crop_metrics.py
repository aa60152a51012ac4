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


def test_edge_padding_continues_the_border_and_leaves_the_inside_alone():
    """``pad="edge"``: a crop inside the image is the zero-padded one; outside, a vertical stripe pattern at the
    border is carried outward (each column keeps its colour, blurred); inside, away from the border by more than the
    resize's and the blur's reach, the pixels are those of the zero-padded crop."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)
    inside = np.array([10.0, 20.0, 250.0, 260.0])
    np.testing.assert_array_equal(crop_image(img, inside, pad="edge"), crop_image(img, inside))
    stripes = np.zeros((100, 100, 3), np.uint8)
    stripes[:, ::2] = 255  # columns alternate black and white: below the image they continue as the column's mean
    roi = np.array([0.0, 40.0, 100.0, 140.0])  # its bottom 40 % below the image
    edge, zero = crop_image(stripes, roi, size=100, pad="edge"), crop_image(stripes, roi, size=100)
    assert zero[70:].max() == 0 and abs(float(edge[70:].mean()) - 127.5) < 3
    np.testing.assert_array_equal(edge[:50], zero[:50])
    with pytest.raises(ValueError, match="pad must be one of zero, edge"):
        crop_image(img, inside, pad="mirror")


def test_a_face_cut_by_the_border_keeps_its_yaw_with_edge_padding():
    """A frontal face (yaw about -2) cut by the right border of the photo so that 60 % of its width is left: with
    black outside the crop it comes back turned by about 40 degrees, with the border carried outward within 20."""
    from mfirrn.inference.pipeline import Reconstructor, read_image
    from mfirrn.io.assets import fetch

    img = read_image(fetch("sample-jianzhuguo"))
    whole = Reconstructor(dense=False)(img)[0]
    x0, x1 = whole.landmarks[:, 0].min(), whole.landmarks[:, 0].max()
    cut = np.ascontiguousarray(img[:, : int(x0 + 0.6 * (x1 - x0))])
    yaw = {pad: Reconstructor(dense=False, crop_padding=pad)(cut)[0].pose["yaw"] for pad in ("zero", "edge")}
    assert abs(whole.pose["yaw"]) < 10
    assert abs(yaw["zero"] - whole.pose["yaw"]) > 30 and abs(yaw["edge"] - whole.pose["yaw"]) < 20, yaw


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


def test_cli_crop_padding_reaches_the_pipeline_and_the_run_record(tmp_path):
    """`mfirrn reconstruct --crop-padding edge` gives the cut face of the test above its yaw back, and is part of the
    run's record (the default is not written, so older records still resume)."""
    import json

    import cv2

    from mfirrn.cli import main
    from mfirrn.inference.pipeline import read_image
    from mfirrn.io.assets import fetch

    img = read_image(fetch("sample-jianzhuguo"))
    cv2.imwrite(str(tmp_path / "cut.png"), img[:, : img.shape[1] // 2 + 10])
    yaws = {}
    for name, extra in (("zero", []), ("edge", ["--crop-padding", "edge"])):
        assert main(["reconstruct", str(tmp_path / "cut.png"), "-o", str(tmp_path / name), "--outputs", "json",
                     *extra]) == 0
        yaws[name] = json.loads((tmp_path / name / "cut.png.json").read_text())["faces"][0]["pose"]["yaw"]
        settings = json.loads((tmp_path / name / "mfirrn-run.json").read_text())["settings"]
        assert settings.get("--crop-padding") == (None if name == "zero" else "edge")
    assert yaws["zero"] != yaws["edge"]
