"""Hostile resumes: continuing a job with other inputs or settings, after deleting or damaging part of its
output, after a kill at a chosen point. A resume that cannot be the same job is refused (exit 2, one
line naming what differs and the fix, nothing changed); a resume that is allowed gives exactly the result
of the uninterrupted job and removes what the killed job left behind."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _hostile import assert_refused, run_cli, snapshot, temporaries, tiny_labels, tiny_train_config, truncate

pytestmark = pytest.mark.filterwarnings("ignore")
TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def _same_tree(a: Path, b: Path, skip: tuple[str, ...] = ("manifest.json", "build.json")) -> None:
    """Every file of build ``a`` equals the one in ``b`` byte for byte (provenance files aside)."""
    fa = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file() and p.name not in skip)
    fb = sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file() and p.name not in skip)
    assert fa == fb
    for rel in fa:
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel


def _listed_files_exist(ds: Path) -> None:
    names = (ds / "crops.list").read_text().split()
    assert names and all((ds / "crops" / n).is_file() for n in names)
    assert np.load(ds / "params.npy").shape == (len(names), 62)


# ============================================================================================== data build
BUILD = ["--workers", "1", "--profiles", "1"]


@pytest.fixture(scope="module")
def build_inputs(tmp_path_factory):
    """Two labels folders (different faces) and a finished reference build of the first."""
    root = tmp_path_factory.mktemp("build")
    a = tiny_labels(root / "a", n=3)
    b = tiny_labels(root / "b", n=2, shade=90)
    ref = root / "ref"
    from mfirrn.data.labels.build import BuildConfig, build_dataset

    build_dataset(a, ref, BuildConfig(profiles_per_face=1, workers=1, chunk=1), progress=False)
    return {"a": a, "b": b, "ref": ref}


def _build(labels, out, capsys, *extra):
    return run_cli(["data", "build", "--labels", labels, "--out", out, *BUILD, *extra], capsys)


@pytest.fixture
def small_chunks(monkeypatch):
    """One face per chunk (as the reference build), so a test can damage a single chunk."""
    from mfirrn.data.labels import build as databuild

    orig = databuild.BuildConfig

    def one_face_chunks(*args, **kw):
        kw.setdefault("chunk", 1)
        return orig(*args, **kw)

    monkeypatch.setattr(databuild, "BuildConfig", one_face_chunks)


def test_build_resume_with_other_labels_is_refused(build_inputs, tmp_path, capsys, small_chunks):
    out = tmp_path / "B"
    rc, _, err = _build(build_inputs["a"], out, capsys)
    assert rc == 0, err
    before = snapshot(out)
    rc, _, err = _build(build_inputs["b"], out, capsys)
    assert_refused(rc, err, "labels.npz differs", "--out")
    assert snapshot(out) == before


@pytest.mark.parametrize("first,second,culprit", [
    pytest.param(["--profiles", "1"], ["--profiles", "2"], "--profiles 1 -> 2", id="profiles"),
    pytest.param([], ["--seed", "3"], "--seed 0 -> 3", id="seed"),
    pytest.param([], ["--limit", "2"], "--limit None -> 2", id="limit"),
])
def test_build_resume_with_other_options_is_refused(first, second, culprit, build_inputs, tmp_path, capsys, small_chunks):
    out = tmp_path / "B"
    rc, _, err = _build(build_inputs["a"], out, capsys, *first)
    assert rc == 0, err
    before = snapshot(out)
    rc, _, err = _build(build_inputs["a"], out, capsys, *second)
    assert_refused(rc, err, culprit)
    assert snapshot(out) == before


def test_build_resume_with_edited_labels_in_place_is_refused(build_inputs, tmp_path, capsys, small_chunks):
    """Same folder, new content (relabelled with other settings): the checksum, not the path, decides."""
    labels = tmp_path / "src" / "labels"
    shutil.copytree(build_inputs["a"].parent, tmp_path / "src")
    meta = json.loads((labels / "labels.json").read_text())
    (labels / "labels.json").write_text(json.dumps({**meta, "crop_dir": str(tmp_path / "src" / "crops")}))
    rc, _, err = _build(labels, tmp_path / "B", capsys)
    assert rc == 0, err
    with np.load(labels / "labels.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["accepted"][1] = False
    np.savez(labels / "labels.npz", **arrays)
    rc, _, err = _build(labels, tmp_path / "B", capsys)
    assert_refused(rc, err, "labels.npz differs")


@pytest.mark.parametrize("content", ["stray.txt", "old-build"])
def test_build_into_a_folder_that_is_not_this_build_is_refused(content, build_inputs, tmp_path, capsys, small_chunks):
    out = tmp_path / "B"
    if content == "stray.txt":
        out.mkdir()
        (out / "stray.txt").write_text("mine\n")
    else:  # a build by an older version: parts but no record of its inputs
        shutil.copytree(build_inputs["ref"], out)
        (out / "parts" / "build.json").unlink()
    before = snapshot(out)
    rc, _, err = _build(build_inputs["a"], out, capsys)
    assert_refused(rc, err, "--out", "no record of a data build")
    assert snapshot(out) == before


def test_build_with_a_damaged_build_record_is_refused(build_inputs, tmp_path, capsys):
    out = tmp_path / "B"
    shutil.copytree(build_inputs["ref"], out)
    (out / "parts" / "build.json").write_text('{"labels": ')
    rc, _, err = _build(build_inputs["a"], out, capsys)
    assert_refused(rc, err, "build.json", "delete")


DAMAGE = {
    "crops-deleted": lambda out: [(out / "crops" / n).unlink() for n in ("000001_0.jpg", "000002_1.jpg")],
    "part-truncated": lambda out: truncate(out / "parts" / "part_00001.npz"),
    "part-empty": lambda out: (out / "parts" / "part_00002.npz").write_bytes(b""),
    "part-deleted": lambda out: (out / "parts" / "part_00000.npz").unlink(),
    "part-not-npz": lambda out: (out / "parts" / "part_00000.npz").write_text("PK but not a zip"),
    "crop-list-deleted": lambda out: (out / "crops.list").unlink(),
    "stale-temporaries": lambda out: [(out / "crops" / ".000001_0.jpg.k3j2.part").write_bytes(b"\xff" * 100),
                                      (out / "parts" / ".part_00001.npz.x9.part").write_bytes(b"PK"),
                                      (out / ".params.npy.a1.part").write_bytes(b"\x93NUMPY")],
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_build_rerun_after_damage_gives_the_uninterrupted_result(damage, build_inputs, tmp_path, capsys, small_chunks):
    out = tmp_path / "B"
    shutil.copytree(build_inputs["ref"], out)
    DAMAGE[damage](out)
    rc, _, err = _build(build_inputs["a"], out, capsys)
    assert rc == 0, err
    assert "Traceback" not in err
    _same_tree(build_inputs["ref"], out)
    _listed_files_exist(out)
    assert not temporaries(out)


@pytest.mark.slow
def test_build_killed_mid_chunk_resumes_to_the_uninterrupted_result(build_inputs, tmp_path, capsys, small_chunks):
    """SIGKILL while the 4th crop's temp file is half-written; the rerun cleans up and completes identically."""
    out = tmp_path / "B"
    script = textwrap.dedent(f"""
        import os, signal
        from mfirrn.data.labels import build as databuild
        from mfirrn.io import fileio
        from mfirrn.data.labels.build import BuildConfig, build_dataset
        real, calls = fileio.atomic_write, [0]
        def dying_write(path, data):
            calls[0] += 1
            if calls[0] == 4:
                with open(os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".kill.part"), "wb") as f:
                    f.write(bytes(data)[: len(data) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            return real(path, data)
        databuild.atomic_write = dying_write
        build_dataset({str(build_inputs['a'])!r}, {str(out)!r}, BuildConfig(profiles_per_face=1, workers=1, chunk=1),
                      progress=False)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert temporaries(out), "the kill should have left a half-written temp file"
    rc, _, err = _build(build_inputs["a"], out, capsys)
    assert rc == 0, err
    _same_tree(build_inputs["ref"], out)
    _listed_files_exist(out)
    assert not temporaries(out)


def _state(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:"):
                return line.split()[1]
    except OSError:
        return "gone"
    return "?"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_build_workers_die_with_their_parent(build_inputs, tmp_path):
    """Kill the build process while its two workers are busy: the workers must not stay behind."""
    pids = tmp_path / "pids"
    pids.mkdir()
    script = textwrap.dedent(f"""
        import os, time
        from mfirrn.data.labels import build as databuild
        from mfirrn.data.labels.build import BuildConfig, build_dataset
        def busy_chunk(job):
            open(os.path.join({str(pids)!r}, str(os.getpid())), "w").close()
            time.sleep(120)
        databuild._process_chunk = busy_chunk
        build_dataset({str(build_inputs['a'])!r}, {str(tmp_path / 'B')!r}, BuildConfig(profiles_per_face=1, workers=2, chunk=1),
                      progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        workers = [int(p.name) for p in pids.iterdir()]
        assert len(workers) == 2, proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "workers did not start"
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_state(p) not in ("gone", "Z") for p in workers):
        time.sleep(0.1)
    left = {p: _state(p) for p in workers if _state(p) not in ("gone", "Z")}
    for p in left:  # do not leave them behind even when the test fails
        os.kill(p, signal.SIGKILL)
    assert not left, f"workers still running after their parent was killed: {left}"


# ============================================================================================== train
@pytest.fixture(scope="module")
def train_inputs(tmp_path_factory):
    """A synthetic set, the uninterrupted 4-step run, and a run stopped after 2 steps (to resume)."""
    from mfirrn.data import make_synthetic_dataset
    from mfirrn.train.config import TrainConfig
    from mfirrn.train.trainer import train

    root = tmp_path_factory.mktemp("train")
    data = make_synthetic_dataset(root / "syn", 20, seed=0)["root"]
    full = train(TrainConfig.from_yaml(tiny_train_config(root / "full.yaml", data, root / "full", checkpoint_every_steps=1)))
    stopped = train(TrainConfig.from_yaml(tiny_train_config(root / "stop.yaml", data, root / "stopped",
                                                            checkpoint_every_steps=1, stop_after_steps=2)))
    assert full.step == 4 and stopped.stopped_early and stopped.step == 2
    return {"root": root, "data": data, "full": root / "full", "stopped": root / "stopped"}


def _resume_config(train_inputs, tmp_path) -> tuple[Path, Path]:
    run = tmp_path / "run"
    shutil.copytree(train_inputs["stopped"], run)
    cfg = tiny_train_config(tmp_path / "resume.yaml", train_inputs["data"], run, checkpoint_every_steps=1)
    return cfg, run


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.mark.slow
@pytest.mark.parametrize("override,culprit", [
    ("optim.lr=0.5", "optim.lr 0.01 -> 0.5"),
    ("seed=3", "seed 0 -> 3"),
    ("data.batch_size=4", "data.batch_size 8 -> 4"),
    ("data.val_fraction=0.3", "data.val_fraction 0.2 -> 0.3"),
    ("loss.name=vdc", "loss.name 'wpdc' -> 'vdc'"),
    ("optim.name=adamw", "optim.name 'sgd' -> 'adamw'"),
    ("data.augment.flip_prob=0", "data.augment.flip_prob 0.5 -> 0"),
    ("model.freeze_bn=true", "model.freeze_bn False -> True"),
    ("precision=bf16", "precision 'fp32' -> 'bf16'"),
    ("data.root={other}", "data.root"),
])
def test_train_resume_with_a_changed_setting_is_refused(override, culprit, train_inputs, tmp_path, capsys):
    """The checkpoint's optimizer, split and model would not follow the new value: refuse, and record nothing."""
    cfg, run = _resume_config(train_inputs, tmp_path)
    other = tmp_path / "other"
    shutil.copytree(train_inputs["data"], other)
    before = snapshot(run)
    rc, _, err = run_cli(["train", "--config", cfg, "--resume", override.format(other=other)], capsys)
    line = assert_refused(rc, err, culprit, "out_dir=NEW_DIR")
    assert "resume with" in line
    assert snapshot(run) == before, "a refused resume changed the run folder (config.yaml, checkpoints, logs)"


@pytest.mark.slow
@pytest.mark.parametrize("override,key,value,logged", [
    ("log_every_steps=2", "log_every_steps", 2, "log_every_steps 1 -> 2"),
    ("device=cpu", "device", "cpu", "device 'auto' -> 'cpu'"),
    ("checkpoint_every_steps=0", "checkpoint_every_steps", 0, "checkpoint_every_steps 1 -> 0"),
])
def test_train_resume_applies_and_logs_allowed_changes(override, key, value, logged, train_inputs, tmp_path, capsys):
    """Logging, device and checkpointing may change on resume: applied, written to config.yaml and the checkpoint,
    logged (stderr and resume_log.txt); the weights are the uninterrupted run's."""
    cfg, run = _resume_config(train_inputs, tmp_path)
    rc, _, err = run_cli(["train", "--config", cfg, "--resume", override], capsys)
    assert rc == 0, err
    assert logged in err and "stop_after_steps 2 -> 0" in err
    assert logged in (run / "resume_log.txt").read_text()
    import yaml

    assert yaml.safe_load((run / "config.yaml").read_text())[key] == value
    assert torch.load(run / "last.pt", weights_only=False)["config"][key] == value
    _assert_same_weights(train_inputs["full"] / "last.pt", run / "last.pt")


@pytest.mark.slow
def test_train_resume_can_extend_the_run(train_inputs, tmp_path, capsys):
    """max_steps may change on resume (train longer): applied and logged."""
    cfg, run = _resume_config(train_inputs, tmp_path)
    rc, out, err = run_cli(["train", "--config", cfg, "--resume", "max_steps=3"], capsys)
    assert rc == 0, err
    assert "max_steps 0 -> 3" in err and "at step 3" in out
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "empty", "not-a-checkpoint"])
def test_train_resume_from_a_damaged_checkpoint_is_refused(damage, train_inputs, tmp_path, capsys):
    cfg, run = _resume_config(train_inputs, tmp_path)
    last = run / "last.pt"
    if damage == "truncated":
        truncate(last)
    elif damage == "empty":
        last.write_bytes(b"")
    else:
        torch.save({"weights": torch.zeros(3)}, last)
    before = snapshot(run)
    rc, _, err = run_cli(["train", "--config", cfg, "--resume"], capsys)
    assert_refused(rc, err, "last.pt")
    assert snapshot(run) == before


@pytest.mark.slow
def test_train_resume_removes_stale_checkpoint_temporaries(train_inputs, tmp_path, capsys):
    cfg, run = _resume_config(train_inputs, tmp_path)
    stale = [run / ".last.pt.abc123.tmp", run / ".best.pt.q9.tmp"]
    for p in stale:
        p.write_bytes(os.urandom(1 << 20))
    rc, _, err = run_cli(["train", "--config", cfg, "--resume"], capsys)
    assert rc == 0, err
    assert not any(p.exists() for p in stale) and not temporaries(run)
    _assert_same_weights(train_inputs["full"] / "last.pt", run / "last.pt")


@pytest.mark.slow
@pytest.mark.parametrize("kill_at_save", [2, 3])
def test_train_killed_during_a_checkpoint_write_resumes_to_identical_weights(kill_at_save, train_inputs, tmp_path, capsys):
    """SIGKILL halfway through writing the n-th checkpoint: last.pt stays the previous one, the temp file is
    removed by the resume, and the resumed run ends with the uninterrupted run's weights, bit for bit."""
    run = tmp_path / "run"
    cfg = tiny_train_config(tmp_path / "kill.yaml", train_inputs["data"], run, checkpoint_every_steps=1)
    script = textwrap.dedent(f"""
        import io, os, signal, sys
        sys.path.insert(0, {str(TESTS)!r})
        import _hostile, torch
        torch.set_num_threads({torch.get_num_threads()})  # same arithmetic as the runs it is compared with
        real, calls = torch.save, [0]
        def dying_save(obj, f, *a, **kw):
            calls[0] += 1
            if calls[0] == {kill_at_save}:
                buf = io.BytesIO()
                real(obj, buf, *a, **kw)
                f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return real(obj, f, *a, **kw)
        torch.save = dying_save
        from mfirrn.cli import main
        main(["train", "--config", {str(cfg)!r}])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert list(run.glob(".*.pt.*.tmp")), "the kill should have left the checkpoint's temp file"
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 1  # save 1: step 1; saves 2, 3: best, last of step 2
    rc, _, err = run_cli(["train", "--config", cfg, "--resume"], capsys)
    assert rc == 0, err
    assert not temporaries(run)
    _assert_same_weights(train_inputs["full"] / "last.pt", run / "last.pt")
    _assert_same_weights(train_inputs["full"] / "best.pt", run / "best.pt")
    assert (run / "train_log.csv").read_text() .count("\n") == (train_inputs["full"] / "train_log.csv").read_text().count("\n")


# ============================================================================================== export, benchmark
def test_failed_export_leaves_no_file(tmp_path, capsys, monkeypatch):
    import onnx
    from _hostile import TINY_ARCH

    def broken_check(proto):
        raise onnx.checker.ValidationError("injected failure")

    monkeypatch.setattr(onnx.checker, "check_model", broken_check)
    with pytest.raises(onnx.checker.ValidationError):
        run_cli(["export-onnx", "--model", TINY_ARCH, "--untrained", "-o", tmp_path / "m.onnx"], capsys)
    assert list(tmp_path.iterdir()) == []
