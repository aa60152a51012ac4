"""What the Python API takes as an image, boxes and landmarks (:mod:`mfirrn.inference.inputs`): paths, PIL images
and arrays in their documented channel order, and one clear sentence for everything it cannot take."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from mfirrn.inference.inputs import FaceInputError, ImageError, ImageWarning, as_bgr, check_boxes, read_image, to_bgr
from mfirrn.inference.pipeline import Reconstructor


@pytest.fixture(scope="module")
def rec():
    return Reconstructor("3ddfa-v2-mb05", dense=False)


@pytest.fixture(scope="module")
def photo(sample_photo):
    return read_image(sample_photo)


def _one_line(exc: pytest.ExceptionInfo, *words: str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and isinstance(exc.value, ValueError), msg
    for w in words:
        assert w in msg, msg
    return msg


def test_path_pil_and_bgr_array_give_the_same_faces(rec, photo, sample_photo):
    from PIL import Image

    want = rec(photo)[0].landmarks
    for image in (str(sample_photo), Path(sample_photo), Image.open(sample_photo)):
        np.testing.assert_array_equal(rec(image)[0].landmarks, want)
    pil = Image.fromarray(photo[..., ::-1].copy())  # an RGB picture: converted, not taken as BGR
    np.testing.assert_array_equal(rec(pil)[0].landmarks, want)
    swapped = rec(photo[..., ::-1])[0].landmarks  # an RGB array is taken as BGR, as documented: not the same
    assert np.abs(swapped - want).max() > 0.1
    for mode in ("RGBA", "L"):  # other PIL modes are converted too
        assert len(rec(pil.convert(mode))) == 1


def test_pixel_types(photo):
    assert to_bgr(photo.astype(np.float32)).dtype == np.uint8
    np.testing.assert_array_equal(to_bgr(photo.astype(np.float64)), photo)  # 0..255 floats: taken, rounded
    np.testing.assert_array_equal(to_bgr(photo.astype(np.int64)), photo)
    with pytest.raises(ImageError) as e:
        to_bgr(photo / 255.0)
    _one_line(e, "within 0..1", "(img * 255).round().astype(np.uint8)")
    with pytest.raises(ImageError) as e:
        to_bgr(photo.astype(np.float32) * 4)
    _one_line(e, "outside 0..255")
    with pytest.raises(ImageError) as e:
        to_bgr(np.full((4, 4, 3), np.nan))
    _one_line(e, "NaN")
    with pytest.raises(ImageError) as e:
        to_bgr(photo.astype(bool))
    _one_line(e, "bool", "uint8")
    assert as_bgr(photo[..., :1]).shape == photo.shape and as_bgr(np.dstack([photo, photo[..., :1]])).shape == photo.shape


def test_bad_images_get_one_sentence(rec, photo, tmp_path):
    cases = [
        ("https://example.com/face.jpg", ("a URL", "download it first")),
        (Path("https://example.com/face.jpg"), ("a URL", "download it first")),  # as Path() leaves it
        (tmp_path / "missing.jpg", ("no such file",)),
        (np.zeros((0, 0, 3), np.uint8), ("empty", "0x0")),
        (np.zeros((3, 200, 300), np.uint8), ("channels-first", "transpose(1, 2, 0)")),
        (np.zeros((5, 5, 2), np.uint8), ("(H, W, 3)",)),
        ([[1, 2], [3, 4]], ("file path, a PIL image or a (H, W, 3) BGR uint8 array", "list")),
    ]
    for image, words in cases:
        with pytest.raises(ImageError) as e:
            rec(image)
        _one_line(e, *words)
    import mfirrn

    with pytest.raises(ImageError) as e:
        mfirrn.reconstruct("http://example.com/x.png")  # before any model is loaded
    _one_line(e, "download it first")


def test_bad_boxes_and_landmarks_get_one_sentence(rec, photo):
    cases = [
        ([[np.nan, 10, 100, 100]], ("row 0", "NaN or infinite", "finite pixel coordinates")),
        ([[10, 10, 100, 100], [50, 50, 40, 90]], ("row 1 is empty", "x1 > x0")),
        ([[1, 2, 3]], ("(F, 4) or (F, 5)",)),
        ([["a", "b", "c", "d"]], ("expected numbers",)),
    ]
    for boxes, words in cases:
        with pytest.raises(FaceInputError) as e:
            rec(photo, boxes=boxes)
        _one_line(e, "boxes:", *words)
    assert check_boxes([1, 2, 30, 40]).shape == (1, 4)
    lms = rec(photo)[0].landmarks[:, :2].copy()
    lms[5] = np.nan
    with pytest.raises(FaceInputError) as e:
        rec(photo, landmarks=lms)
    _one_line(e, "landmarks:", "face 0", "NaN")


def test_face_repr_is_one_short_line(rec, photo):
    face = Reconstructor("3ddfa-v2-mb05")(photo)[0]
    text = repr(face)
    assert "\n" not in text and len(text) < 160 and "array(" not in text, text
    assert text.startswith("Face(box=[") and "yaw=" in text and "vertices (53215, 3)" in text


def test_a_photo_stored_turned_with_an_exif_tag_is_read_upright(rec, photo, tmp_path):
    """Phone cameras store a portrait photo turned, with an EXIF orientation tag: it is read as shown (upright),
    and its faces are the upright photo's, in the upright photo's pixels."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to show"
    stored = np.ascontiguousarray(np.rot90(photo[..., ::-1], k=1))  # the upright photo turned 90 degrees anticlockwise
    path = tmp_path / "turned.jpg"
    Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=98)
    img = read_image(path)
    assert img.shape == photo.shape and np.abs(img.astype(int) - photo).mean() < 3  # JPEG's loss only
    want, got = rec(photo), rec(path)
    assert len(got) == len(want)
    for a, b in zip(sorted(want, key=lambda f: f.roi[0]), sorted(got, key=lambda f: f.roi[0])):
        assert np.abs(a.landmarks[:, :2] - b.landmarks[:, :2]).mean() < 2.0


def test_a_phones_heic_photo_is_read_upright(rec, photo, tmp_path, monkeypatch):
    """A HEIC photo (libheif, the pillow-heif wheel) is read as the photo it holds, HEVC's loss aside, whatever its
    name; one stored turned (its rotation property, as phones write it: here from an EXIF orientation of 6) is
    read upright, with the upright photo's faces; a truncated one, or one larger than reconstruct decodes, is
    refused in one sentence."""
    import pillow_heif
    from PIL import Image

    stored = np.ascontiguousarray(np.rot90(photo[..., ::-1], k=1))  # the upright photo turned 90 degrees anticlockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to show"
    heif = pillow_heif.from_pillow(Image.fromarray(stored))
    heif.save(tmp_path / "turned.heic", exif=exif.tobytes(), quality=95)
    pillow_heif.from_pillow(Image.fromarray(photo[..., ::-1].copy())).save(tmp_path / "named.jpg", format="HEIF",
                                                                          quality=95)
    for name in ("turned.heic", "named.jpg"):
        img = read_image(tmp_path / name)
        assert img.shape == photo.shape and np.abs(img.astype(int) - photo).mean() < 3, name  # HEVC's loss only
    want, got = rec(photo), rec(tmp_path / "turned.heic")
    assert len(got) == len(want)
    for a, b in zip(sorted(want, key=lambda f: f.roi[0]), sorted(got, key=lambda f: f.roi[0])):
        assert np.abs(a.landmarks[:, :2] - b.landmarks[:, :2]).mean() < 2.0
    (tmp_path / "cut.heic").write_bytes((tmp_path / "turned.heic").read_bytes()[:3000])
    with pytest.raises(ImageError) as e:
        read_image(tmp_path / "cut.heic")
    _one_line(e, "cut.heic", "libheif cannot decode this HEIC/HEIF photo", "get the file again")
    from mfirrn.inference import inputs

    monkeypatch.setattr(inputs, "MAX_PIXELS", 1000)  # the size its header gives is checked before decoding
    with pytest.raises(ImageError) as e:
        read_image(tmp_path / "turned.heic")
    _one_line(e, "turned.heic", f"{photo.shape[1]}x{photo.shape[0]} pixels is more than", "downscale it")


def test_a_photo_cut_short_is_named_as_such(photo, tmp_path):
    """A JPEG or PNG missing its end (an interrupted download or copy) is told apart from a file that is not an
    image: the line says the file ends early and to get it again."""
    import cv2

    for suffix in (".jpg", ".png"):
        whole = tmp_path / f"whole{suffix}"
        cv2.imwrite(str(whole), photo)
        data = whole.read_bytes()
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(data[: len(data) // 3])
        with pytest.raises(ImageError) as exc:
            read_image(cut)
        _one_line(exc, f"cut{suffix}", "ends early", "get the file again")
        assert read_image(whole).shape == photo.shape
    noise = tmp_path / "noise.jpg"
    noise.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(ImageError) as exc:
        read_image(noise)
    _one_line(exc, "not a readable image")
    empty = tmp_path / "empty.jpg"
    empty.touch()
    with pytest.raises(ImageError) as exc:
        read_image(empty)
    _one_line(exc, "empty.jpg", "the file is empty", "get the file again")


def test_a_damaged_file_that_decodes_is_read_with_one_warning_naming_it(sample_photo, tmp_path, capfd):
    """A JPEG with stray bytes before its end marker decodes whole; libjpeg's own line ("Corrupt JPEG data: 11
    extraneous bytes before marker 0xd9", printed on standard error without the file's name) becomes an
    ImageWarning naming the file, and the CLI prints it as one ``warning:`` line. So does libpng's for a PNG with a
    malformed colour profile."""
    import struct
    import zlib

    import cv2

    from mfirrn.cli import main

    data = Path(sample_photo).read_bytes()
    assert data[-2:] == b"\xff\xd9"
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(data[:-2] + bytes(12) + data[-2:])
    capfd.readouterr()
    with pytest.warns(ImageWarning) as caught:
        img = read_image(damaged)
    assert np.array_equal(img, read_image(sample_photo))
    assert len(caught) == 1
    msg = str(caught[0].message)
    assert "damaged.jpg" in msg and "extraneous bytes before marker 0xd9" in msg and "\n" not in msg, msg
    assert capfd.readouterr().err == ""  # libjpeg's line is not left on the process's standard error
    assert main(["reconstruct", str(damaged), "-o", str(tmp_path / "out"), "--outputs", "json", "--workers", "1"]) == 0
    err = capfd.readouterr().err.splitlines()
    said = [line for line in err if "Corrupt JPEG" in line]
    assert len(said) == 1 and said[0].startswith(f"warning: {damaged}: damaged JPEG data, read as far as it decodes "
                                                 "(libjpeg: Corrupt JPEG data: "), err
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImageWarning)
        read_image(sample_photo)  # an intact JPEG: no warning
    png = cv2.imencode(".png", read_image(sample_photo)[:64, :64])[1].tobytes()
    body = b"ICC Profile\x00\x00" + zlib.compress(bytes(128) + b"acsp" + bytes(124))  # a profile cut short
    iccp = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    profiled = tmp_path / "profiled.png"
    profiled.write_bytes(png[:33] + iccp + png[33:])  # after the IHDR chunk
    capfd.readouterr()
    with pytest.warns(ImageWarning, match=r"profiled.png: read, with its decoder's warning \(libpng warning: iCCP"):
        assert read_image(profiled).shape == (64, 64, 3)
    assert capfd.readouterr().err == ""


def test_float_and_16_bit_images_are_read_as_8_bit(photo, tmp_path):
    """A TIFF of 32-bit float samples within 0..1 (which OpenCV's 8-bit reading refuses) and a 16-bit PNG read
    as the 8-bit photo they were made from; floats beyond 0..1 (radiance) get one line naming the fix."""
    import cv2

    cv2.imwrite(str(tmp_path / "float.tif"), photo.astype(np.float32) / 255)
    cv2.imwrite(str(tmp_path / "deep.png"), photo.astype(np.uint16) * 257)
    for name in ("float.tif", "deep.png"):
        assert np.array_equal(read_image(tmp_path / name), photo), name
    cv2.imwrite(str(tmp_path / "radiance.tif"), photo.astype(np.float32) * 4)
    with pytest.raises(ImageError) as exc:
        read_image(tmp_path / "radiance.tif")
    _one_line(exc, "radiance.tif", "float32 pixels spanning", "8-bit JPEG or PNG")


def test_transparent_images_are_laid_over_white(rec, photo, tmp_path):
    """A PNG, a lossless WebP and a 16-bit PNG with an alpha channel, a BGRA array and an RGBA PIL image read as
    the photo laid over white, as viewers show them: what a file keeps under fully transparent pixels (here red
    streaks) never reaches the pipeline, half-transparent pixels are blended, opaque ones stay exact."""
    import cv2
    from PIL import Image

    bgra = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    bgra[:, :40, :3], bgra[:, :40, 3] = (0, 0, 255), 0
    bgra[:, 40:60, 3] = 128
    expected = photo.copy()
    expected[:, :40] = 255
    expected[:, 40:60] = np.rint(photo[:, 40:60] * (128 / 255) + 127)  # c * a + 255 * (1 - a), a = 128 / 255
    cv2.imwrite(str(tmp_path / "cut.png"), bgra)
    cv2.imwrite(str(tmp_path / "cut.webp"), bgra, [cv2.IMWRITE_WEBP_QUALITY, 101])  # above 100: lossless
    for image in (tmp_path / "cut.png", tmp_path / "cut.webp", bgra, Image.fromarray(bgra[..., [2, 1, 0, 3]])):
        np.testing.assert_array_equal(to_bgr(image), expected)
    cv2.imwrite(str(tmp_path / "deep.png"), bgra.astype(np.uint16) * 257)
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png"), expected)
    bgra[..., 3] = 255  # an alpha channel that hides nothing: the photo, bit for bit
    cv2.imwrite(str(tmp_path / "opaque.png"), bgra)
    np.testing.assert_array_equal(read_image(tmp_path / "opaque.png"), bgra[..., :3])
    assert len(rec(tmp_path / "cut.png")) == len(rec(photo))
