"""``mfirrn reconstruct`` at dataset scale and against the robustness probe: every case ends in one clear line and a
non-zero exit, or in the right result; nothing stale or half-written is left; a run is resumable."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from mfirrn.cli import main
from mfirrn.inference.runrecord import JOURNAL, MANIFEST, RECORD_FILES


def outputs_of(out: Path) -> dict[str, bytes]:
    """Every output file below ``out`` (relative path -> bytes), the run record left out."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in RECORD_FILES}


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip() and "%|" not in line]


@pytest.fixture
def photos(tmp_path, sample_photo) -> Path:
    """A folder of three copies of the sample photo (one face each), two of them in subfolders."""
    root = tmp_path / "photos"
    for rel in ("p0.jpg", "a/p1.jpg", "b/p2.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_photo, root / rel)
    return root


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header says width x height (its pixel data is not there: nothing needs to decode it)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))


# ------------------------------------------------------------------------ refused before any work
def test_empty_or_binary_list_is_refused_and_never_falls_back_to_the_samples(tmp_path, capsys):
    out = tmp_path / "out"
    (tmp_path / "empty.txt").write_text("\n  \n")
    assert main(["reconstruct", "--list", str(tmp_path / "empty.txt"), "-o", str(out)]) == 2
    assert error_lines(capsys) == [f"mfirrn: error: --list {tmp_path / 'empty.txt'} names no image; give one image "
                                   f"path per line"]
    (tmp_path / "bin.txt").write_bytes(b"a.jpg\n\x00\x01\x02\xff")
    assert main(["reconstruct", "--list", str(tmp_path / "bin.txt"), "-o", str(out)]) == 2
    assert error_lines(capsys) == [f"mfirrn: error: --list {tmp_path / 'bin.txt'} is not a text file (a NUL byte on "
                                   f"line 2); give one image path per line"]
    assert not out.exists()


def test_empty_outputs_and_out_pointing_at_a_file_are_refused_before_the_model_loads(tmp_path, sample_photo, capsys,
                                                                                    monkeypatch):
    from mfirrn.cli import reconstruct_cmd

    def no_model(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(reconstruct_cmd, "reconstructor_from_args", no_model)
    assert main(["reconstruct", str(sample_photo), "--outputs", " , ", "-o", str(tmp_path / "o")]) == 2
    assert error_lines(capsys) == ["mfirrn: error: --outputs is empty; choose from "
                                   + ", ".join(reconstruct_cmd.all_outputs())]
    (tmp_path / "file").write_text("x")
    assert main(["reconstruct", str(sample_photo), "-o", str(tmp_path / "file")]) == 2
    assert error_lines(capsys) == [f"mfirrn: error: -o/--out {tmp_path / 'file'} is a file, not a folder; choose "
                                   f"another path"]


def test_one_box_with_a_folder_of_images_is_refused(photos, tmp_path, capsys):
    assert main(["reconstruct", str(photos), "--box", "10,10,100,100", "-o", str(tmp_path / "o")]) == 2
    err = error_lines(capsys)
    assert len(err) == 1 and "the inputs hold 3 images" in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("box, words", [("5000,5000,5100,5100", "lies outside the image"),
                                        ("0,0,1e9,1e9", "far larger than the image"),
                                        ("0,0,inf,10", "four finite numbers")])
def test_a_box_outside_or_far_larger_than_the_image_is_one_line(sample_photo, tmp_path, capsys, box, words):
    assert main(["reconstruct", str(sample_photo), "--box", box, "-o", str(tmp_path / "o")]) == 2
    err = error_lines(capsys)
    assert len(err) == 1 and err[0].startswith("mfirrn: error:") and words in err[0], err
    assert not (tmp_path / "o").exists()


def test_out_inside_an_input_folder_or_holding_an_input_is_refused(photos, capsys):
    before = sorted(p for p in photos.rglob("*"))
    assert main(["reconstruct", str(photos), "-o", str(photos / "results")]) == 2
    assert "lies inside the input folder" in error_lines(capsys)[0]
    assert main(["reconstruct", str(photos / "a" / "p1.jpg"), "-o", str(photos / "a")]) == 2
    assert "lies inside -o" in error_lines(capsys)[0]
    assert main(["reconstruct", str(photos / "**" / "*.jpg"), "-o", str(photos / "out")]) == 2
    assert "lies inside the input folder" in error_lines(capsys)[0]
    assert sorted(p for p in photos.rglob("*")) == before


def test_a_folder_of_other_files_is_not_mixed_with_a_run(photos, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "x_dense.jpg").write_bytes(b"a user's photo")
    assert main(["reconstruct", str(photos / "p0.jpg"), "-o", str(out)]) == 2
    assert "already holds files that no mfirrn run recorded (e.g. x_dense.jpg)" in error_lines(capsys)[0]
    assert sorted(p.name for p in out.iterdir()) == ["x_dense.jpg"]


# ------------------------------------------------------------------------ names that cannot collide
def test_outputs_mirror_the_input_tree_and_names_cannot_collide(tmp_path, sample_photo, capsys):
    img = cv2.imread(str(sample_photo))
    root = tmp_path / "in"
    for d in ("a", "b"):
        (root / d).mkdir(parents=True)
        shutil.copy(sample_photo, root / d / "x.jpg")  # duplicate basenames in different folders
    cv2.imwrite(str(root / "a" / "two.jpg"), np.concatenate([img, img[:, ::-1]], 1))  # two faces
    shutil.copy(sample_photo, root / "a" / "two.jpg_face0.png")  # would be two_face0.* in a stem scheme
    shutil.copy(sample_photo, root / "a" / "two_face0.png")
    out = tmp_path / "out"
    assert main(["reconstruct", str(root), "-o", str(out), "--outputs", "json,obj"]) == 0
    files = outputs_of(out)
    assert sorted(files) == ["a/two.jpg.json", "a/two.jpg_face0.obj", "a/two.jpg_face0.png.json",
                             "a/two.jpg_face0.png.obj", "a/two.jpg_face1.obj", "a/two_face0.png.json",
                             "a/two_face0.png.obj", "a/x.jpg.json", "a/x.jpg.obj", "b/x.jpg.json", "b/x.jpg.obj"]
    assert files["a/x.jpg.json"] != files["b/x.jpg.json"]  # each names its own image
    assert json.loads(files["b/x.jpg.json"])["image"] == str(root / "b" / "x.jpg")


def test_a_symlink_loop_under_a_glob_does_not_repeat_inputs(photos, tmp_path, capsys):
    os.symlink(photos, photos / "a" / "loop")
    assert main(["reconstruct", str(photos / "**" / "*.jpg"), "-o", str(tmp_path / "o"), "--outputs", "json"]) == 0
    assert sorted(outputs_of(tmp_path / "o")) == ["a/p1.jpg.json", "b/p2.jpg.json", "p0.jpg.json"]
    assert "named a file already given" in capsys.readouterr().err
    assert main(["reconstruct", str(photos), "-o", str(tmp_path / "o2"), "--outputs", "json"]) == 0  # a walk too
    assert sorted(outputs_of(tmp_path / "o2")) == ["a/p1.jpg.json", "b/p2.jpg.json", "p0.jpg.json"]


def test_list_in_latin1_names_the_files_on_disk(tmp_path, sample_photo, capsys):
    name = os.fsdecode(b"caf\xe9.jpg")  # a Latin-1 file name, as an old camera or archive writes it
    shutil.copy(sample_photo, tmp_path / name)
    (tmp_path / "list.txt").write_bytes(str(tmp_path).encode() + b"/caf\xe9.jpg\n")
    out = tmp_path / "out"
    assert main(["reconstruct", "--list", str(tmp_path / "list.txt"), "-o", str(out), "--outputs", "json"]) == 0
    assert (out / f"{name}.json").is_file()
    assert "caf\\xe9.jpg" in capsys.readouterr().out  # printed with an escape, never a UnicodeEncodeError


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp"])
def test_image_size_from_the_header_is_the_decoded_size(tmp_path, ext):
    from mfirrn.inference.sources import image_size

    img = np.random.default_rng(0).integers(0, 255, (37, 53, 3), np.uint8)
    path = tmp_path / f"a{ext}"
    assert cv2.imwrite(str(path), img)
    assert image_size(path) == (53, 37)
    path.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)  # a JPEG cut before its frame header: the decoder decides
    assert image_size(path) is None


# ------------------------------------------------------------------------ bad photos among good ones
def test_a_corrupt_and_a_huge_photo_are_named_and_the_others_done(photos, tmp_path, capsys):
    (photos / "a" / "corrupt.jpg").write_bytes((photos / "p0.jpg").read_bytes()[:300])
    (photos / "b" / "huge.png").write_bytes(_png_header(40000, 40000))
    out = tmp_path / "out"
    assert main(["reconstruct", str(photos), "-o", str(out), "--outputs", "json"]) == 1
    assert sorted(outputs_of(out)) == ["a/p1.jpg.json", "b/p2.jpg.json", "p0.jpg.json"]
    err = error_lines(capsys)
    assert err == [f"failed: {photos / 'a' / 'corrupt.jpg'}: the file ends early (truncated: an interrupted download "
                   f"or copy?); get the file again",
                   f"failed: {photos / 'b' / 'huge.png'}: 40000x40000 pixels is more than the 268 megapixels "
                   f"reconstruct decodes; downscale it"]
    states = {json.loads(s)["input"]: json.loads(s)["state"] for s in (out / JOURNAL).read_text().splitlines()}
    assert states == {"p0.jpg": "done", "a/p1.jpg": "done", "a/corrupt.jpg": "failed", "b/p2.jpg": "done",
                      "b/huge.png": "failed"}


# ------------------------------------------------------------------------ a run is a record
def test_rerun_with_other_options_or_model_is_refused(photos, tmp_path, capsys, monkeypatch):
    from mfirrn.cli import reconstruct_cmd

    out = tmp_path / "out"
    assert main(["reconstruct", str(photos), "-o", str(out), "--outputs", "json"]) == 0
    before = outputs_of(out)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["settings"]["--outputs"] == ["json"] and manifest["model"]["--model"] == "3ddfa-v2-mb05"
    assert manifest["inputs"]["count"] == 3 and manifest["root"] == str(photos)
    capsys.readouterr()
    real = reconstruct_cmd.reconstructor_from_args

    def no_model(*a, **k):
        raise AssertionError("the model was loaded for a run that is refused")

    monkeypatch.setattr(reconstruct_cmd, "reconstructor_from_args", no_model)
    for extra in (["--outputs", "json,obj"], ["--refine", "off"], ["--resume", "--outputs", "json,landmarks"]):
        assert main(["reconstruct", str(photos), "-o", str(out), *extra]) == 2
        err = error_lines(capsys)
        assert len(err) == 1 and f"-o {out} holds another run (" in err[0], err
    assert main(["reconstruct", str(photos / "a"), "-o", str(out), "--outputs", "json", "--resume"]) == 2
    assert "inputs under" in error_lines(capsys)[0]
    shutil.copy(photos / "p0.jpg", photos / "a" / "p3.jpg")  # a photo added to the folder since: named
    assert main(["reconstruct", str(photos), "-o", str(out), "--outputs", "json", "--resume"]) == 2
    assert "other inputs (3 -> 4: a/p3.jpg is new)" in error_lines(capsys)[0]
    (photos / "a" / "p3.jpg").unlink()
    assert main(["reconstruct", str(photos), "-o", str(out), "--outputs", "json", "--model", "3ddfa-mb05-aflw21"]) == 2
    assert "--model 3ddfa-v2-mb05 -> 3ddfa-mb05-aflw21" in error_lines(capsys)[0]
    assert outputs_of(out) == before
    monkeypatch.setattr(reconstruct_cmd, "reconstructor_from_args", real)
    # the same job again: redone in place (same names, same bytes), no stale file
    assert main(["reconstruct", str(photos), "-o", str(out), "--outputs", "json"]) == 0
    assert outputs_of(out) == before


def test_resume_redoes_only_what_is_unfinished_and_ends_with_the_same_bytes(photos, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["reconstruct", str(photos), "-o", str(out), "--outputs", "json,landmarks,table", "--workers", "1"]
    assert main(args) == 0
    whole = outputs_of(out)
    assert "faces.parquet" in whole
    # as a kill leaves it: the last input's line cut short, its files half published, debris, no table yet
    lines = (out / JOURNAL).read_bytes().splitlines(keepends=True)
    (out / JOURNAL).write_bytes(b"".join(lines[:-1]) + lines[-1][:10])
    last = json.loads(lines[-1])["input"]
    (out / f"{last}.json").unlink()
    (out / ".p0.jpg.json.x1y2.part").write_bytes(b"half")
    (out / "b" / ".p2.jpg_landmarks.jpg.k3.part").write_bytes(b"half")
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(out / "faces.parquet")
    (out / "faces.parquet.parts").mkdir()
    pq.write_table(table.filter(pc.field("image") != last), out / "faces.parquet.parts" / "part-000000.parquet")
    (out / "faces.parquet").unlink()
    capsys.readouterr()
    assert main([*args, "--resume"]) == 0
    captured = capsys.readouterr()
    assert "3 input(s): 3 done, 0 without a face, 0 failed (2 finished earlier)" in captured.out
    assert "removed 2 temporary file(s)" in captured.err
    assert outputs_of(out) == whole
    assert not list(out.rglob(".*"))  # no temporaries, and no lock once the run ended
    assert main([*args, "--resume"]) == 0  # a finished run resumed: nothing to do, the same bytes
    assert outputs_of(out) == whole


def test_a_second_run_into_the_same_folder_at_the_same_time_is_refused(photos, tmp_path):
    from mfirrn.inference.runrecord import RunRecord
    from mfirrn.io.resume import ResumeError

    kw = dict(root=photos, inputs=["p0.jpg"], settings={}, model={}, resume=False)
    with RunRecord.open(tmp_path / "o", **kw):
        with pytest.raises(ResumeError, match="another mfirrn run is writing into"):
            RunRecord.open(tmp_path / "o", **kw)
    RunRecord.open(tmp_path / "o", **kw).close()  # the lock goes with the run


def test_table_has_one_row_per_face_with_the_json_values(photos, tmp_path):
    import pandas as pd

    out = tmp_path / "out"
    assert main(["reconstruct", str(photos), "-o", str(out), "--outputs", "json,table"]) == 0
    df = pd.read_parquet(out / "faces.parquet")
    assert list(df["image"]) == ["a/p1.jpg", "b/p2.jpg", "p0.jpg"] and list(df["face"]) == [0, 0, 0]  # input order
    from mfirrn.inference.facetable import COLUMNS

    assert list(df.columns) == list(COLUMNS)
    doc = json.loads((out / "a" / "p1.jpg.json").read_text())["faces"][0]
    row = df.iloc[0]
    np.testing.assert_array_equal(np.stack(row["landmarks"]), doc["landmarks"])
    np.testing.assert_array_equal(row["params"], doc["params"])
    np.testing.assert_array_equal(row["box"], doc["box"])
    assert row["score"] == doc["score"] and row["yaw"] == doc["pose"]["yaw"] and row["refined"] == doc["refined"]
    assert pd.isna(row["confidence"]) or 0 <= row["confidence"] <= 1
    assert (row["image_width"], row["image_height"]) == cv2.imread(str(photos / "a" / "p1.jpg")).shape[1::-1]
    meta = json.loads(__import__("pyarrow.parquet").parquet.read_schema(out / "faces.parquet").metadata[b"mfirrn"])
    assert meta["run"]["settings"]["--outputs"] == ["json", "table"]


def test_table_reads_in_polars_and_duckdb(photos, tmp_path):
    out = tmp_path / "out"
    assert main(["reconstruct", str(photos), "-o", str(out), "--outputs", "table"]) == 0
    assert sorted(outputs_of(out)) == ["faces.parquet"]
    pl = pytest.importorskip("polars", reason="polars is in the test extra")
    df = pl.read_parquet(out / "faces.parquet")
    assert df.height == 3 and df["landmarks"].to_list()[0][30] == pytest.approx(df["landmarks"][0][30].to_list())
    duckdb = pytest.importorskip("duckdb", reason="duckdb is in the test extra")
    [(n, yaw)] = duckdb.sql(f"select count(*), avg(yaw) from '{out / 'faces.parquet'}'").fetchall()
    assert n == 3 and yaw == pytest.approx(df["yaw"].mean())


def test_a_parquet_column_is_a_list_of_inputs(photos, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"file": [str(photos / "p0.jpg"), str(photos / "b" / "p2.jpg")]}), tmp_path / "l.parquet")
    out = tmp_path / "out"
    assert main(["reconstruct", "--list", str(tmp_path / "l.parquet"), "--list-column", "file", "-o", str(out),
                 "--outputs", "json"]) == 0
    assert sorted(outputs_of(out)) == ["b/p2.jpg.json", "p0.jpg.json"]


# ------------------------------------------------------------------------ videos
def test_a_quoted_video_glob_expands_and_opencv_prints_no_warning(tmp_path):
    """Run as a user does (a subprocess: OpenCV logs to the process's stderr, beyond capsys)."""
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a real video" * 10)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    r = subprocess.run([sys.executable, "-m", "mfirrn.cli", "reconstruct", str(clips / "*.mp4"), "-o",
                        str(tmp_path / "o")], capture_output=True, text=True, env=env, timeout=300)
    lines = [s for s in r.stderr.splitlines() if s.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "bad.mp4" in lines[0] and "[ WARN" not in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()


def test_a_video_that_cannot_be_written_whole_fails_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    """A full disk under OpenCV's writer: it reports nothing, the file is unreadable; the run must say so."""
    from mfirrn.video import io as vio

    clip = tmp_path / "in" / "clip.mp4"
    clip.parent.mkdir()
    _write_clip(clip, cv2.resize(cv2.imread(str(_sample())), (320, 240)))
    real = vio.VideoWriter.close

    def full_disk(self):
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            with open(self._tmp, "r+b") as f:  # what ENOSPC leaves: the file cut short, no index
                f.truncate(100)
        self._writer = _Released()
        return real(self)

    monkeypatch.setattr(vio.VideoWriter, "close", full_disk)
    out = tmp_path / "out"
    (out / ".clip.mp4.k1ll3d.part").mkdir(parents=True)  # what a killed run of this clip left
    (out / ".clip.mp4.k1ll3d.part" / "clip.mp4.jsonl").write_text("{}\n")
    assert main(["reconstruct", str(clip), "-o", str(out), "--max-frames", "3"]) == 2
    err = error_lines(capsys)
    assert len(err) == 1 and "could not be written completely" in err[0], err
    assert not list(out.rglob("*"))  # no mp4, no temporaries, not even the killed run's


class _Released:
    def release(self) -> None:
        pass


def _sample() -> Path:
    from mfirrn.io import assets

    return assets.fetch(assets.SAMPLE_PHOTOS[0])


def _write_clip(path: Path, img: np.ndarray, n: int = 4) -> None:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (img.shape[1], img.shape[0]))
    for _ in range(n):
        w.write(img)
    w.release()


# ------------------------------------------------------------------------ like any Unix tool
def test_output_into_a_closed_pipe_is_silent():
    p = subprocess.Popen([sys.executable, "-m", "mfirrn.cli", "assets", "list"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()  # as `| head` does after its lines
    err = p.stderr.read()
    assert p.wait(timeout=300) == 141 and err == b""
