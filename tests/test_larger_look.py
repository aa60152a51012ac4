"""The larger look: a photo whose faces are small at the detector's input is looked at again whole, larger
(``FaceBoxes.larger_look``, ``Reconstructor(larger_look=True)``; docs/experiments/wild.md, "Small faces found")."""

import numpy as np
import pytest

from mfirrn.detect.faceboxes import CROWD_LARGE_SIDE, CROWD_SIDE, RECHECK_UPSCALE, FaceBoxes


@pytest.fixture(scope="module")
def faceboxes():
    return FaceBoxes(recheck=True)


@pytest.mark.parametrize("h, w, seen, scale", [
    (700, 1000, 1.0, RECHECK_UPSCALE),  # seen at its own size: twice as large, 2 000 pixels
    (480, 640, 1.0, CROWD_SIDE / 640),  # a small photo: at 2 000 pixels, more than twice
    (800, 1200, 0.6, CROWD_SIDE / 1200),  # downscaled, under 2 000 pixels: at 2 000 pixels (the note's option)
    (3000, 5000, 0.216, CROWD_LARGE_SIDE / 5000),  # a large photo: at 4 000 pixels, within its own size
    (1800, 3000, 0.6, RECHECK_UPSCALE * 0.6),  # seen at 1 800 pixels (a larger --detector-size): twice that
])
def test_the_larger_look_shows_the_photo_larger(faceboxes, monkeypatch, h, w, seen, scale):
    seen_at = []
    monkeypatch.setattr(faceboxes, "_detect", lambda image, s, threshold: seen_at.append(s) or np.zeros((0, 5)))
    faceboxes.seen_scale = seen
    assert faceboxes.larger_look(np.zeros((h, w, 3), np.uint8)).shape == (0, 5)
    assert seen_at == [pytest.approx(scale)] and faceboxes.seen_scale == pytest.approx(scale)


def test_no_larger_look_without_rechecks_or_once_seen_at_2000_pixels(faceboxes, monkeypatch):
    monkeypatch.setattr(faceboxes, "_detect", lambda *a: pytest.fail("detected again"))
    faceboxes.seen_scale = CROWD_SIDE / 1000  # a crowd's look, or --detector-min-size 2000
    assert len(faceboxes.larger_look(np.zeros((700, 1000, 3), np.uint8))) == 0
    assert faceboxes.seen_scale == CROWD_SIDE / 1000
    plain = FaceBoxes(recheck=False)
    plain.seen_scale = 1.0
    assert len(plain.larger_look(np.zeros((700, 1000, 3), np.uint8))) == 0 and plain.seen_scale == 1.0


class _Detector:
    """FaceBoxes as the pipeline reads it: the first look finds ``first`` and says it saw the photo at ``seen``; the
    larger look finds ``larger``."""

    def __init__(self, first: np.ndarray, larger: np.ndarray, seen: float) -> None:
        self.first, self.larger, self.seen, self.looks = first, larger, seen, 0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        self.seen_scale = self.seen
        return self.first.copy()

    def larger_look(self, image: np.ndarray) -> np.ndarray:
        self.looks += 1
        self.seen_scale *= 2
        return self.larger.copy()


def test_faces_of_the_larger_look_join_those_apart_from_the_faces_found(faceboxes, two_faces):
    """The two-face photo: the first look finds one face, said to be small at the detector's input (seen at 0.05);
    the larger look finds both, the first one a little shifted: the other face joins, the first is not doubled.
    Not asked when the face found is large at the input, nor with ``larger_look=False`` (the default)."""
    from mfirrn.inference.pipeline import Reconstructor

    boxes = faceboxes(two_faces)
    assert len(boxes) == 2
    shifted = boxes[:1].copy()
    shifted[:, :4] += 0.05 * (boxes[0, 2] - boxes[0, 0])
    both = Reconstructor(dense=False)(two_faces)
    for seen, larger_look, faces, looks in ((0.05, True, 2, 1), (1.0, True, 1, 0), (0.05, False, 1, 0)):
        det = _Detector(boxes[:1], np.concatenate([shifted, boxes[1:]]), seen)
        got = Reconstructor(detector=det, dense=False, larger_look=larger_look)(two_faces)
        assert (len(got), det.looks) == (faces, looks)
    det = _Detector(boxes[:1], np.concatenate([shifted, boxes[1:]]), 0.05)
    got = Reconstructor(detector=det, dense=False, larger_look=True)(two_faces)
    assert len(got) == 2
    want = sorted(both, key=lambda f: f.roi[0])
    got = sorted(got, key=lambda f: f.roi[0])
    for g, w in zip(got, want):  # the same two fits as the photo's own detection gives
        np.testing.assert_allclose(g.landmarks, w.landmarks, atol=1.0)


def test_cli_looks_larger_at_a_group_photo_only_when_asked(tmp_path, two_faces, capsys):
    """A 1000 x 700 photo of the two-face photo shrunk to faces of 23 pixels (found: small at FaceBoxes' input) and
    four more copies with faces of 11-16 pixels (not found at the photo's own size): the defaults find the two large
    ones and the note names the option; with it, the copies' faces are found too, and no note. The option needs
    FaceBoxes' second looks."""
    import json

    import cv2

    from mfirrn.cli import main

    group = np.full((700, 1000, 3), 127, np.uint8)
    copies = [(0.1, 50, 50)] + [(f, 300 + 90 * (k // 2), 100 + 400 * (k % 2))
                                for k, f in enumerate((0.05, 0.055, 0.06, 0.065))]
    for f, y, x in copies:
        small = cv2.resize(two_faces, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        group[y:y + small.shape[0], x:x + small.shape[1]] = small
    cv2.imwrite(str(tmp_path / "group.png"), group)
    counts = {}
    for name, flags in (("defaults", []), ("larger", ["--detector-larger-look"])):
        assert main(["reconstruct", str(tmp_path / "group.png"), "-o", str(tmp_path / name), "--outputs", "json",
                     *flags]) == 0
        notes = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("note:")]
        assert (len(notes), "--detector-larger-look may find more faces" in " ".join(notes)) == (
            (1, True) if name == "defaults" else (0, False)), notes
        faces = json.loads((tmp_path / name / "group.png.json").read_text())["faces"]
        centres = np.array([np.mean(np.array(f["landmarks"])[:, :2], axis=0) for f in faces])
        assert all(any(x <= cx <= x + 1536 * f and y <= cy <= y + 689 * f for f, y, x in copies)
                   for cx, cy in centres)  # every face on a copy of the photo
        counts[name] = len(faces)
    assert counts["defaults"] == 2 and counts["larger"] >= 8, counts
    assert main(["reconstruct", str(tmp_path / "group.png"), "-o", str(tmp_path / "no"), "--detector-larger-look",
                 "--no-detector-recheck"]) == 2
    assert "--detector-larger-look is one of FaceBoxes' second looks" in capsys.readouterr().err
