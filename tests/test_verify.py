"""The face verifier: its head, its features on faces and non-faces, and how the pipeline uses it."""

import json

import cv2
import numpy as np
import pytest
from conftest import NO_TFLITE

from mfirrn.inference.verify import (
    COEFFICIENTS,
    CUES,
    EMBEDDING,
    FEATURES,
    FaceVerifier,
    SecondOpinion,
    VerifierHead,
    landmark_boxes,
    pass_agreement,
)


@pytest.fixture(scope="module")
def rec():
    from mfirrn.inference.pipeline import Reconstructor

    return Reconstructor("3ddfa-v2-mb05", dense=False)


def test_head_is_a_logistic_model_on_standardised_features():
    head = VerifierHead(CUES, (1.0, 0, 0), (2.0, 1, 1), (3.0, 0, 0), -1.0, 0.5)
    x = np.array([[1.0, 5, 5], [3.0, 0, 0]])
    # z = 3 * (x0 - 1) / 2 - 1: -1 and 2
    np.testing.assert_allclose(head(x), 1 / (1 + np.exp([1.0, -2.0])))


def test_shipped_head_loads_and_round_trips(tmp_path):
    head = VerifierHead.load()
    assert set(head.names) <= set(FEATURES) and head.names[:3] == CUES and 0 < head.threshold < 1
    path = tmp_path / "head.json"
    path.write_text(head.to_json())
    assert VerifierHead.load(path) == head
    d = json.loads(path.read_text())
    for names in (["onet"], [*head.names[:-1], "nose_length"], [head.names[0]] * len(head.names)):
        d["names"] = names  # a weight without a name, an unknown feature, a feature twice
        path.write_text(json.dumps(d))
        with pytest.raises(ValueError, match="expected distinct names among the verifier's features.*refit"):
            VerifierHead.load(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="unreadable.*refit"):
        VerifierHead.load(path)


def test_a_head_reads_its_own_columns_of_the_feature_matrix():
    """FaceVerifier.score gives a head the columns it names, whatever their place among the 309 features."""
    names = ("agree", "expression_9", "onet")
    head = VerifierHead(names, (0.0, 1.0, 0.0), (1.0, 2.0, 1.0), (1.0, 1.0, 0.0), 0.0, 0.5)
    assert FEATURES[head.columns()[1]] == "expression_9" and len(FEATURES) == 3 + 256 + 50
    x = np.zeros((2, len(FEATURES)))
    x[:, FEATURES.index("agree")] = [0.5, -1.0]
    x[:, FEATURES.index("expression_9")] = [3.0, 1.0]
    x[:, FEATURES.index("onet")] = 100.0  # weight 0
    # z = agree + (expression_9 - 1) / 2: 1.5 and -1
    np.testing.assert_allclose(FaceVerifier(head=head).score(x), 1 / (1 + np.exp([-1.5, 1.0])))


def test_pass_agreement_of_identical_passes_is_perfect():
    lm = np.random.default_rng(0).uniform(0, 100, (3, 68, 3))
    roi = np.array([[0.0, 0, 120, 120], [10, 10, 50, 50], [5, 5, 95, 95]])
    lmdiff, agree = pass_agreement(lm, lm, roi, roi)
    np.testing.assert_allclose(lmdiff, 0)
    np.testing.assert_allclose(agree, 1)
    shifted, _ = pass_agreement(lm, lm + [3.0, 4.0, 0.0], roi, roi)  # every point moves 5 px
    np.testing.assert_allclose(shifted, 5 / (roi[:, 2] - roi[:, 0]))


def test_landmark_boxes_bound_the_points():
    lm = np.random.default_rng(1).normal(size=(4, 68, 2))
    b = landmark_boxes(lm)
    assert (b[:, :2] <= lm.min(1)).all() and (b[:, 2:] >= lm.max(1)).all()


def test_faces_are_confident_and_their_faces_are_kept(rec, two_faces):
    faces = rec(two_faces)
    assert len(faces) == 2
    for f in faces:
        assert rec.min_confidence <= f.confidence <= 1
        assert f.to_dict()["confidence"] == pytest.approx(f.confidence, abs=1e-4)


def test_a_box_on_a_non_face_gets_a_low_confidence(rec, two_faces):
    """A face-sized box on the suit and on a flat wall: the pipeline still returns a full face there (a box is
    never dropped) and the verifier scores it below the threshold."""
    h, w = two_faces.shape[:2]
    flat = np.full_like(two_faces, 140)
    cv2.circle(flat, (w // 2, h // 2), 40, (90, 100, 120), -1)
    faces = rec(flat, boxes=np.array([[w / 2 - 60, h / 2 - 60, w / 2 + 60, h / 2 + 60]]))
    assert len(faces) == 1 and faces[0].confidence < rec.min_confidence


def test_thresholds_drop_detections_only(two_faces):
    from mfirrn.inference.pipeline import Reconstructor

    strict = Reconstructor("3ddfa-v2-mb05", dense=False, min_confidence=1.0)
    assert strict(two_faces) == []  # no confidence reaches 1.0 exactly
    boxes = strict.detector(two_faces)
    kept = strict(two_faces, boxes=boxes)  # given boxes are never dropped
    assert len(kept) == len(boxes) and all(f.confidence < 1.0 for f in kept)
    assert len(Reconstructor("3ddfa-v2-mb05", dense=False, min_confidence=0.0)(two_faces)) == 2
    assert Reconstructor("3ddfa-v2-mb05", dense=False, min_face_size=10_000)(two_faces) == []
    off = Reconstructor("3ddfa-v2-mb05", dense=False, verify=False)(two_faces)
    assert len(off) == 2 and all(np.isnan(f.confidence) for f in off)
    assert off[0].to_dict()["confidence"] is None
    with pytest.raises(ValueError, match="min_confidence"):
        Reconstructor("3ddfa-v2-mb05", dense=False, min_confidence=1.5)


def test_one_face_found_twice_is_returned_once(two_faces):
    """A detector that gives each face a second box, shifted by a sixth of its side (as FaceBoxes' NMS can leave,
    IoU under 0.3 after scaling): every box is reconstructed, the two fits of one face meet, and the surer one
    is returned, with or without the verifier; boxes given by the caller are all kept."""
    from mfirrn.inference.pipeline import Reconstructor

    found = Reconstructor("3ddfa-v2-mb05", dense=False).detector(two_faces)
    side = (found[:, 2:4] - found[:, :2]).mean(axis=1, keepdims=True)
    shifted = found.copy()
    shifted[:, :4] += np.hstack([side, side, side, side]) / 6
    shifted[:, 4] -= 0.01

    class Twice:
        name = "twice"

        def __call__(self, image):
            return np.vstack([found, shifted])

    sure = Reconstructor("3ddfa-v2-mb05", detector=Twice(), dense=False)
    all_fits = sure(two_faces, boxes=np.vstack([found, shifted]))
    faces = sure(two_faces)
    assert len(all_fits) == 4 and len(faces) == 2
    for f in faces:  # the surer of the two fits of each face
        pair = [g.confidence for g in all_fits if np.abs(g.landmarks - f.landmarks).mean() < 0.1 * side.max()]
        assert len(pair) == 2 and f.confidence == pytest.approx(max(pair))
    faces = Reconstructor("3ddfa-v2-mb05", detector=Twice(), dense=False, verify=False)(two_faces)
    assert sorted(f.score for f in faces) == sorted(found[:, 4])  # without confidences, the better box's fit


def test_the_verifier_runs_without_refinement(two_faces):
    """refine="off" gives the verifier the second pass it needs; the faces are the single pass's."""
    from mfirrn.inference.pipeline import Reconstructor

    single = Reconstructor("3ddfa-v2-mb05", dense=False, refine="off")
    faces = single(two_faces)
    assert len(faces) == 2 and all(not f.refined and f.confidence >= single.min_confidence for f in faces)


def test_verifier_features_see_a_face_where_there_is_one(rec, two_faces):
    """O-Net sees a face on the photo and none on a flat image at the same place; the other features are the
    passes' agreement as given; the confidence falls with the agreement."""
    face = rec(two_faces)[0]
    verifier = FaceVerifier()
    agreeing = (np.array([0.01]), np.array([0.95]))
    x = verifier.features(two_faces, face.landmarks[None], *agreeing, params=face.params[None])
    assert x.shape == (1, len(FEATURES)) == (1, 3 + len(EMBEDDING) + len(COEFFICIENTS)) and x[0, 0] > 0.9
    assert x[0, 1:3].tolist() == [0.01, 0.95]
    np.testing.assert_array_equal(x[0, -50:], face.params[12:])  # the 40 shape and 10 expression coefficients
    flat = verifier.features(np.full_like(two_faces, 128), face.landmarks[None], *agreeing, params=face.params[None])
    emb = slice(3, 3 + len(EMBEDDING))
    assert flat[0, 0] < 0.5 and not np.allclose(flat[0, emb], x[0, emb])  # O-Net's features see the difference
    wandering = verifier(two_faces, face.landmarks[None], np.array([0.3]), np.array([0.5]), face.params[None])
    assert wandering[0] < verifier(two_faces, face.landmarks[None], *agreeing, face.params[None])[0]


def test_onet_probability_is_read_from_its_features(two_faces):
    """The verifier's O-Net embedding is the layer O-Net's own face probability comes from, in both backends."""
    import torch

    from mfirrn.detect.mtcnn import ONetScorer

    boxes = np.array([[100.0, 80, 220, 200], [10, 10, 60, 60]])
    prob, features = ONetScorer().score(two_faces, boxes)
    onet = ONetScorer().net.onet
    with torch.no_grad():
        again = onet.face_prob(torch.tensor(features, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(prob, again, atol=1e-6)
    ort_prob, ort_features = ONetScorer(backend="onnxruntime", threads=1).score(two_faces, boxes)
    np.testing.assert_allclose(ort_prob, prob, atol=1e-4)
    np.testing.assert_allclose(ort_features, features, atol=1e-3)


def test_a_head_that_names_its_own_onet_weights_reads_o_nets_features_from_them(two_faces, tmp_path):
    """A head whose JSON names an O-Net weights file beside it (a fine-tuned O-Net) scores with that O-Net, in both
    backends; a missing or unreadable file is refused in one line naming it."""
    import torch

    from mfirrn.detect.mtcnn import ONetScorer

    state = ONetScorer().net.onet.state_dict()
    state = {k: v * 0.5 if k.startswith("dense5") else v for k, v in state.items()}  # another O-Net
    torch.save(state, tmp_path / "my-onet.pt")
    d = json.loads(VerifierHead.load().to_json())
    (tmp_path / "head.json").write_text(json.dumps({**d, "onet": "my-onet.pt"}))
    head = VerifierHead.load(tmp_path / "head.json")
    assert head.onet == str(tmp_path / "my-onet.pt") and json.loads(head.to_json())["onet"] == "my-onet.pt"
    boxes = np.array([[100.0, 80, 220, 200], [10, 10, 60, 60]])
    shipped = ONetScorer().score(two_faces, boxes)[1]
    for backend in ("torch", "onnxruntime"):
        mine = FaceVerifier(head=head, backend=backend, threads=1).onet.score(two_faces, boxes)[1]
        expected = ONetScorer(weights=tmp_path / "my-onet.pt").score(two_faces, boxes)[1]
        np.testing.assert_allclose(mine, expected, atol=1e-3)
        assert np.abs(mine - shipped).max() > 0.1
    (tmp_path / "head.json").write_text(json.dumps({**d, "onet": "gone.pt"}))
    with pytest.raises(ValueError, match="gone.pt are missing; restore"):
        VerifierHead.load(tmp_path / "head.json")
    (tmp_path / "junk.pt").write_bytes(b"not a state dict")
    with pytest.raises(ValueError, match="junk.pt: cannot be read as weights of MTCNN's onet"):
        ONetScorer(weights=tmp_path / "junk.pt")


@pytest.mark.parametrize("option, value", [("--min-confidence", "1.5"), ("--min-confidence", "x"),
                                           ("--min-face-size", "-3")])
def test_cli_rejects_bad_thresholds_in_one_line(tmp_path, capsys, option, value):
    from mfirrn.cli import main

    try:
        code = main(["reconstruct", "photo.jpg", "-o", str(tmp_path / "out"), option, value])
    except SystemExit as exc:  # argparse's own type check
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and option in err[0]
    assert not (tmp_path / "out").exists()


def test_cli_writes_the_confidence_and_keeps_everything_at_zero(tmp_path):
    from mfirrn.cli import main
    from mfirrn.io.assets import fetch

    photo = str(fetch("sample-trump-hillary"))
    assert main(["reconstruct", photo, "-o", str(tmp_path / "a"), "--outputs", "json"]) == 0
    faces = json.loads(next((tmp_path / "a").glob("*.json")).read_text())
    faces = faces["faces"] if isinstance(faces, dict) else faces
    assert len(faces) == 2 and all(VerifierHead.load().threshold <= f["confidence"] <= 1 for f in faces)
    assert main(["reconstruct", photo, "-o", str(tmp_path / "b"), "--outputs", "json", "--min-face-size", "5000"]) != 0


def test_facing_down_by_hand():
    """The forward direction's downward component: pitch -30 (chin down) with no yaw is sin 30; roll never
    changes it; yaw shortens it by cos(yaw); a profile fitted with pitch -60 at yaw 80 points almost sideways."""
    from mfirrn.geometry.pose import facing_down, rotation_from_angles

    assert facing_down(0.0, -30.0) == pytest.approx(0.5)
    assert facing_down(0.0, -90.0) == pytest.approx(1.0) and facing_down(0.0, 30.0) == pytest.approx(-0.5)
    assert facing_down(60.0, -30.0) == pytest.approx(0.25) and facing_down(-60.0, -30.0) == pytest.approx(0.25)
    assert facing_down(80.0, -60.0) == pytest.approx(np.sin(np.radians(60)) * np.cos(np.radians(80)))
    rng = np.random.default_rng(3)
    yaw, pitch, roll = rng.uniform(-89, 89, 50), rng.uniform(-89, 89, 50), rng.uniform(-180, 180, 50)
    forward = rotation_from_angles(yaw, pitch, roll) @ np.array([0.0, 0.0, 1.0])  # model +z through the nose
    np.testing.assert_allclose(facing_down(yaw, pitch), -forward[:, 1], atol=1e-12)


def test_confidence_needed_raises_the_bar_only_for_faces_looking_steeply_down():
    from mfirrn.inference.verify import confidence_needed
    from mfirrn.io.defaults import LOOKING_DOWN_CONFIDENCE

    yaw = np.array([0.0, 0.0, 0.0, 70.0])
    pitch = np.array([-29.0, -31.0, 40.0, -60.0])  # 29 and 31 degrees down, looking up, a turned face 17 down
    np.testing.assert_allclose(confidence_needed(yaw, pitch, 0.05, looking_down_confidence=0.9),
                               [0.05, 0.9, 0.05, 0.05])
    np.testing.assert_allclose(confidence_needed(yaw, pitch, 0.05), [0.05, LOOKING_DOWN_CONFIDENCE, 0.05, 0.05])
    np.testing.assert_allclose(confidence_needed(yaw, pitch, 0.95), [0.95, 0.95, 0.95, 0.95])  # never lowers it
    np.testing.assert_allclose(confidence_needed(yaw, pitch, 0.0), 0.0)  # 0 keeps every face
    np.testing.assert_allclose(confidence_needed(yaw, pitch, 0.05, looking_down_confidence=0.0), 0.05)


def test_the_pipeline_asks_each_detected_face_for_the_confidence_its_own_pose_needs(rec, two_faces, monkeypatch):
    """The two frontal faces keep the plain threshold (even with looking_down_confidence 1.0); the pipeline
    hands the rule each face's own yaw and pitch, and drops what it asks more than the face has."""
    from mfirrn.inference import pipeline
    from mfirrn.inference.pipeline import Reconstructor

    faces = rec(two_faces)
    yaw, pitch = np.array([[f.pose["yaw"], f.pose["pitch"]] for f in faces]).T
    np.testing.assert_allclose(rec.confidence_needed(yaw, pitch), rec.min_confidence)
    assert len(Reconstructor("3ddfa-v2-mb05", dense=False, looking_down_confidence=1.0)(two_faces)) == 2
    seen = []

    def needed(yaw, pitch, min_confidence, looking_down_confidence):
        seen.append((np.asarray(yaw).copy(), np.asarray(pitch).copy()))
        return np.where(np.asarray(yaw) == max(yaw), 1.01, min_confidence)  # asks too much of one face

    monkeypatch.setattr(pipeline, "confidence_needed", needed)
    kept = rec(two_faces)
    np.testing.assert_allclose(np.sort(seen[-1][0]), np.sort(yaw), atol=1e-4)
    np.testing.assert_allclose(np.sort(seen[-1][1]), np.sort(pitch), atol=1e-4)
    assert len(kept) == 1 and kept[0].pose["yaw"] == pytest.approx(min(yaw), abs=1e-4)
    assert len(rec(two_faces, boxes=rec.detector(two_faces))) == 2  # given boxes are never dropped
    with pytest.raises(ValueError, match="looking_down_confidence"):
        Reconstructor("3ddfa-v2-mb05", dense=False, looking_down_confidence=-0.1)


def test_the_verifier_benchmark_records_the_features_the_pipeline_computes(rec, two_faces):
    """benchmarks/verifiers.py reads each face's 259 features by wrapping the verifier: the pipeline must go
    through the wrapped method (an empty record gave empty sets, and fits on nothing)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "verifiers.py"
    spec = importlib.util.spec_from_file_location("verifiers_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from mfirrn.inference.pipeline import Reconstructor

    recording = Reconstructor("3ddfa-v2-mb05", dense=False)
    recording._verifier = bench.RecordingVerifier(head=rec.verifier.head)
    boxes = rec.detector(two_faces)[:, :4]
    mean = np.asarray(recording.model.stats.mean, np.float64).ravel()
    std = np.asarray(recording.model.stats.std, np.float64).ravel()
    rows = bench.candidate(recording, two_faces, boxes, mean, std)
    assert len(rows) == len(boxes) == 2
    faces = rec(two_faces, boxes=boxes)
    for row, face in zip(rows, faces):
        x = np.array([row[name] for name in FEATURES])
        assert np.isfinite(x).all()
        assert rec.verifier.score(x[None])[0] == pytest.approx(face.confidence, abs=1e-6)


def test_the_strict_verifier_reads_the_coefficients_and_keeps_real_faces(two_faces):
    """Reconstructor(verifier="strict") loads the shipped strict head (the cues and the 50 coefficients, its own
    threshold): both faces of the sample photo stay, a patch of noise given as a box scores below its threshold, and
    an unknown name is refused."""
    from mfirrn.inference.pipeline import Reconstructor
    from mfirrn.inference.verify import STRICT_HEAD_PATH, VERIFIERS

    strict = Reconstructor("3ddfa-v2-mb05", dense=False, verifier="strict")
    assert VERIFIERS["strict"] == STRICT_HEAD_PATH and strict.verifier.head == VerifierHead.load(STRICT_HEAD_PATH)
    assert set(COEFFICIENTS) <= set(strict.verifier.head.names) and strict.min_confidence == strict.verifier.threshold
    faces = strict(two_faces)
    assert len(faces) == 2 and all(f.confidence >= strict.min_confidence for f in faces)
    noise = np.random.default_rng(0).integers(0, 256, (240, 240, 3), dtype=np.uint8)
    patch = strict(noise, boxes=np.array([[60.0, 60, 180, 180]]))
    assert len(patch) == 1 and patch[0].confidence < strict.min_confidence
    with pytest.raises(ValueError, match="verifier must be one of standard, strict"):
        Reconstructor("3ddfa-v2-mb05", dense=False, verifier="lenient")


def _verifier_asking(rule):
    return FaceVerifier(head=VerifierHead(("agree",), (0.0,), (1.0,), (0.0,), 0.0, 0.5), second_opinion=rule)


class _Detector:
    """A stand-in for BlazeFace: the boxes (K, 5) of each call in turn, in the 192x192 crop; records the crops."""

    def __init__(self, answers):
        self.answers, self.crops = list(answers), []

    def __call__(self, crop):
        self.crops.append(crop)
        return np.asarray(self.answers.pop(0), np.float64).reshape(-1, 5)


def test_the_second_opinion_zeroes_frontal_unsure_faces_it_finds_no_face_on():
    """Faces turned less than max_yaw, less sure than max_confidence and asked about get BlazeFace's answer on the
    square 1.6x their crop: crop [0, 0, 100, 100] -> square [-30, -30, 130, 130] seen at 192 px, so the landmark
    centre (50, 50) is at (96, 96) there. A box holding it scoring >= 0.05 keeps the confidence; none, or one
    elsewhere, makes it 0. A profile, a face the verifier is sure of and a face not asked about are left alone,
    unseen."""
    verifier = _verifier_asking(SecondOpinion(45.0, 0.05, 1.6, 0.99))
    verifier._blazeface = stub = _Detector([
        [[90, 90, 100, 100, 0.9]],  # face 0: a face around the centre
        [[90, 90, 100, 100, 0.04]],  # face 1: too faint
        [[0, 0, 20, 20, 0.99]],  # face 2: a face elsewhere in the crop
    ])
    rois = np.tile([0.0, 0, 100, 100], (6, 1))
    landmarks = np.tile(np.array([[40.0, 40], [60, 60]]), (6, 1, 1))  # the landmark box's centre: (50, 50)
    yaw = np.array([10.0, -44.0, 0.0, 60.0, 0.0, 0.0])
    confidence = np.array([0.8, 0.8, 0.8, 0.8, 0.995, 0.8])
    ask = np.array([True, True, True, True, True, False])
    image = np.full((100, 100, 3), 128, np.uint8)
    out = verifier.second_opinion(image, rois, landmarks, yaw, confidence, ask)
    np.testing.assert_array_equal(out, [0.8, 0.0, 0.0, 0.8, 0.995, 0.8])
    assert ask.tolist() == [True, True, True, True, True, False]  # the caller's mask is left as it was
    assert len(stub.crops) == 3 and all(c.shape == (192, 192, 3) for c in stub.crops)
    assert stub.crops[0][96, 96, 0] == 128 and stub.crops[0][5, 5].sum() == 0  # the image inside, black outside
    plain = _verifier_asking(None)
    plain._blazeface = _Detector([])
    np.testing.assert_array_equal(plain.second_opinion(image, rois, landmarks, yaw, confidence), confidence)


def test_the_blazeface_verifier_asks_blazeface_where_the_standard_head_is_unsure(two_faces, monkeypatch):
    """Reconstructor(verifier="blazeface"): the standard head with BlazeFace's second opinion (docs/experiments/wild.md,
    "The second opinion for the default verifier"): the sample photo's faces are kept; faces given as boxes that the
    head is unsure of are asked when frontal (the stand-in finds nothing: confidence 0); the strict verifier never
    asks."""
    from mfirrn.inference.pipeline import Reconstructor
    from mfirrn.inference.verify import BLAZEFACE_OPINION, DEFAULT_HEAD_PATH, VERIFIERS

    rec = Reconstructor("3ddfa-v2-mb05", dense=False, verifier="blazeface")
    assert VERIFIERS["blazeface"] == DEFAULT_HEAD_PATH and rec.verifier.opinion == BLAZEFACE_OPINION
    assert Reconstructor("3ddfa-v2-mb05", dense=False, verifier="strict").verifier.opinion is None
    faces = rec(two_faces)
    assert len(faces) == 2 and all(f.confidence >= rec.min_confidence for f in faces)
    boxes = rec.detector(two_faces)[:, :4]
    sure = rec(two_faces, boxes=boxes)
    rec.verifier._blazeface = _Detector([np.zeros((0, 5))] * len(boxes))
    monkeypatch.setattr(rec.verifier, "score", lambda x: np.full(len(x), 0.5))  # every face unsure
    unsure = rec(two_faces, boxes=boxes)
    assert [f.confidence for f in unsure] == [0.0 if abs(f.pose["yaw"]) < 45 else 0.5 for f in sure]
    assert len(rec.verifier._blazeface.crops) == sum(abs(f.pose["yaw"]) < 45 for f in sure) > 0


def test_blazeface_missing_is_named_when_the_verifier_is_prepared(monkeypatch):
    """Without a TensorFlow Lite runtime the blazeface verifier fails when it is prepared (the CLI does so before any
    input), naming the package; the other verifiers do not need one."""
    import sys

    from mfirrn.inference.pipeline import Reconstructor

    for name in NO_TFLITE:
        monkeypatch.setitem(sys.modules, name, None)
    Reconstructor("3ddfa-v2-mb05", dense=False).verifier.prepare()
    rec = Reconstructor("3ddfa-v2-mb05", dense=False, verifier="blazeface")
    with pytest.raises(ImportError, match=r"blazeface verifier's second opinion needs a TensorFlow Lite runtime: "
                                          r"pip install 'mfirrn\[detectors\]'"):
        rec.verifier.prepare()


class _ONet:
    """A stand-in for O-Net's scorer: face probabilities ``prob`` (one per face asked, in order) and features of
    zeros; records the boxes it is given."""

    def __init__(self, prob):
        self.prob, self.boxes = np.asarray(prob, np.float64), []

    def score(self, image, boxes, crops=None):
        self.boxes.append(np.asarray(boxes))
        return self.prob[:len(boxes)], np.zeros((len(boxes), len(EMBEDDING)))


def test_a_second_heads_opinion_vetoes_only_the_unsure_faces_it_is_sure_are_none(tmp_path):
    """HeadOpinion: faces asked and less sure than max_confidence (0.999) are read by the second head, with its own
    O-Net's probability and the faces' own lmdiff; where it says below min_confidence (0.02) the confidence becomes
    its answer. Second head: sigmoid(10 onet - 10 lmdiff - 5): own O-Net 0.1 -> sigmoid(-4) = 0.018 (vetoed); 0.9 ->
    sigmoid(4) = 0.982 (kept); 0.9 with lmdiff 1 -> sigmoid(-6) = 0.0025 (vetoed). The first O-Net's 0.99 is not
    read."""
    from mfirrn.inference.verify import HeadOpinion

    head_file = tmp_path / "second.json"
    head_file.write_text(VerifierHead(("onet", "lmdiff"), (0.0, 0.0), (1.0, 1.0), (10.0, -10.0), -5.0, 0.5).to_json())
    verifier = _verifier_asking(HeadOpinion(head_file, min_confidence=0.02, max_confidence=0.999))
    verifier._second = (VerifierHead.load(head_file), stub := _ONet([0.1, 0.9, 0.9]))
    features = np.zeros((5, len(FEATURES)))
    features[:, 0], features[:, 1] = 0.99, [0.0, 0.0, 1.0, 0.0, 0.0]
    confidence = np.array([0.8, 0.8, 0.8, 0.9995, 0.8])
    ask = np.array([True, True, True, True, False])
    landmarks = np.stack([np.array([[0.0, 0], [10, 20]]) + 100 * k for k in range(5)])
    out = verifier.second_opinion(np.zeros((500, 500, 3), np.uint8), np.zeros((5, 4)), landmarks, np.zeros(5),
                                  confidence, ask, features)
    expected = [1 / (1 + np.exp(4)), 0.8, 1 / (1 + np.exp(6)), 0.9995, 0.8]
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert (features[:, 0] == 0.99).all() and (confidence == [0.8, 0.8, 0.8, 0.9995, 0.8]).all()  # inputs as given
    (boxes,) = stub.boxes  # one O-Net run, on the landmark boxes of the three faces asked
    np.testing.assert_array_equal(boxes, [[0, 0, 10, 20], [100, 100, 110, 120], [200, 200, 210, 220]])
    with pytest.raises(ValueError, match="pass features="):
        verifier.second_opinion(np.zeros((500, 500, 3), np.uint8), np.zeros((5, 4)), landmarks, np.zeros(5),
                                confidence, ask)


def test_the_standard_verifier_asks_its_animal_head_about_detected_faces_it_is_unsure_of(two_faces, monkeypatch):
    """Reconstructor(): the standard head with C7's opinion (data/weights/face-verifier-animals.json and the O-Net
    weights it names): the sample photo's two faces are kept with the standard head's confidences, and the second
    head's own O-Net sees faces in them; when the standard head is unsure of every face, the second head is asked
    about the detected faces only (not about given boxes, as a video's tracking frames give them)."""
    from mfirrn.inference.pipeline import Reconstructor
    from mfirrn.inference.verify import ANIMALS_HEAD_PATH, ANIMALS_OPINION, DEFAULT_HEAD_PATH, VERIFIERS

    rec = Reconstructor("3ddfa-v2-mb05", dense=False)
    assert VERIFIERS["standard"] == DEFAULT_HEAD_PATH and rec.verifier.opinion == ANIMALS_OPINION
    assert ANIMALS_OPINION.head == ANIMALS_HEAD_PATH and not ANIMALS_OPINION.given_boxes
    rec.verifier.prepare()
    head, onet = rec.verifier.second_head
    assert head.onet == str(ANIMALS_HEAD_PATH.parent / "face-verifier-animals-onet.pt")
    faces = rec(two_faces)
    plain = Reconstructor("3ddfa-v2-mb05", dense=False, verifier=str(DEFAULT_HEAD_PATH))  # the head alone
    assert plain.verifier.opinion is None
    assert len(faces) == 2 and [f.confidence for f in faces] == [f.confidence for f in plain(two_faces)]
    prob, _ = onet.score(two_faces, landmark_boxes(np.array([f.landmarks for f in faces])))
    assert (prob > 0.5).all()  # its own O-Net sees the two faces too
    asked = []
    monkeypatch.setattr(rec.verifier, "score", lambda x: np.full(len(x), 0.5))  # every face unsure
    monkeypatch.setattr(type(rec.verifier), "second_opinion",
                        lambda self, image, rois, *a, **k: asked.append(len(rois)) or np.full(len(rois), 0.5))
    assert len(rec(two_faces)) == 2 and asked == [2]
    rec(two_faces, boxes=rec.detector(two_faces)[:, :4])
    assert asked == [2]  # given boxes: not asked


def test_a_head_of_ones_own_is_read_once_and_asks_no_second_opinion(tmp_path, monkeypatch):
    """Reconstructor(verifier="HEAD.json") reads the file when it is built (a bad file fails there) and its verifier
    uses that reading: the file is read once, and a head of one's own asks no second opinion."""
    from mfirrn.inference.pipeline import Reconstructor

    path = tmp_path / "mine.json"
    path.write_text(VerifierHead(("agree",), (0.0,), (1.0,), (2.0,), 0.0, 0.4).to_json())
    reads = []
    load = VerifierHead.load.__func__
    monkeypatch.setattr(VerifierHead, "load", classmethod(lambda cls, p=None: reads.append(p) or load(cls, p)))
    rec = Reconstructor("3ddfa-v2-mb05", dense=False, verifier=str(path))
    assert rec.verifier.head.weights == (2.0,) and rec.min_confidence == 0.4 and rec.verifier.opinion is None
    assert reads == [path]
