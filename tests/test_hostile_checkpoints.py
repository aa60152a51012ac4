"""Hostile pickled files: a checkpoint or param pickle whose unpickling would run code (it creates a marker file)
given to every entry point that reads one. None may run it: each refuses with exit 2 and one line naming the
type the file wanted and the fix. The project's own checkpoints of every kind still load, and
``--trust-checkpoint`` / ``trust_checkpoint=True`` still reads an old full-pickle checkpoint."""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from _hostile import assert_refused, run_cli, tiny_aflw2000, tiny_train_config

from mfirrn import models
from mfirrn.io.safeload import UnsafeFileError, checkpoint_globals, load_checkpoint_file, load_pickle

pytestmark = pytest.mark.filterwarnings("ignore")

WANTS = "builtins.exec"  # what the hostile files below ask the unpickler for


class Touch:
    """Unpickling this creates ``marker``: the stand-in for whatever a hostile file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def hostile_checkpoint(path: Path, marker: Path, arch: str = "3ddfa-v2-mb05") -> Path:
    """A checkpoint that looks like a workbench one (real weights) but runs code when unpickled."""
    net = models.create(arch, pretrained=False)
    torch.save({"arch": arch, "state_dict": net.state_dict(), "convention": net.card.convention,
                "config": Touch(marker)}, path)
    return path


def hostile_pickle(path: Path, marker: Path) -> Path:
    with open(path, "wb") as f:
        pickle.dump({"mean": np.zeros(62, np.float32), "std": Touch(marker)}, f)
    return path


@pytest.fixture
def marker(tmp_path):
    m = tmp_path / "marker"
    yield m
    assert not m.exists(), "the hostile file's code ran"


@pytest.fixture(scope="module")
def aflw(tmp_path_factory):
    return tiny_aflw2000(tmp_path_factory.mktemp("aflw") / "aflw", n=3)


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "face.jpg"
    cv2.imwrite(str(path), np.full((200, 200, 3), 128, np.uint8))
    return path


# ------------------------------------------------------------------------------------------ the readers
def test_own_checkpoint_contents_load(tmp_path):
    """What the trainer writes besides tensors: numpy stats, RNG states (numpy, python, torch), numpy scalars,
    paths, plain values."""
    import random

    ckpt = {"stats": {"mean": np.arange(62, dtype=np.float32), "std": np.ones(62, np.float32)},
            "rng": [{"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}],
            "history": [{"nme": np.float64(3.5), "n": np.int64(2), "ok": np.bool_(True)}],
            "where": Path("runs/a"), "config": {"optim": {"betas": [0.9, 0.99]}}, "step": 3}
    torch.save(ckpt, tmp_path / "own.pt")
    back = load_checkpoint_file(tmp_path / "own.pt")
    assert np.array_equal(back["stats"]["mean"], ckpt["stats"]["mean"])
    assert back["rng"][0]["numpy"][0] == "MT19937" and np.array_equal(back["rng"][0]["numpy"][1], np.random.get_state()[1])
    assert back["rng"][0]["python"] == ckpt["rng"][0]["python"] and back["history"][0]["nme"] == 3.5
    assert back["where"] == Path("runs/a") and back["step"] == 3


def test_hostile_checkpoint_is_refused_naming_what_it_wants(tmp_path, marker):
    path = hostile_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(UnsafeFileError) as info:
        load_checkpoint_file(path)
    assert info.value.wants == WANTS and "\n" not in str(info.value)
    assert "--trust-checkpoint" in str(info.value) and "trust_checkpoint=True" in str(info.value)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_raw_pickles_of_any_protocol_are_refused(tmp_path, marker, protocol):
    """A plain pickle renamed .pt (torch reads it as a legacy checkpoint) and a param pickle alike."""
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"state_dict": {}, "x": Touch(marker)}, protocol=protocol))
    with pytest.raises(UnsafeFileError, match="exec"):
        load_checkpoint_file(path)
    with pytest.raises(UnsafeFileError, match="builtins.exec"):
        load_pickle(path)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_param_pickles_of_arrays_and_containers_load(tmp_path, protocol):
    obj = {"mean": np.arange(62, dtype=np.float32), "std": np.ones(62), "names": ["a", ("b", 1.5)],
           "rng": np.random.get_state(), "n": np.int64(4), "set": {1, 2}, "raw": b"\x00\xff"}
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    back = load_pickle(path)
    assert np.array_equal(back["mean"], obj["mean"]) and back["names"] == ["a", ("b", 1.5)]
    assert back["set"] == {1, 2} and back["raw"] == b"\x00\xff" and back["n"] == 4


def test_the_3ddfa_pickles_still_load():
    """The stats and triangle pickles of 3DDFA / 3DDFA_V2 (fetched assets) through the restricted reader."""
    from mfirrn.geometry.params import ParamStats
    from mfirrn.io.assets import fetch

    for name in ("stats-3ddfa-v1", "stats-3ddfa-v2"):
        stats = ParamStats.from_asset(name)
        with open(fetch(name), "rb") as f:
            ref = pickle.load(f)  # the assets are checksum-verified: comparing against the plain reader is safe
        mean = ref.get("mean", ref.get("param_mean"))
        assert np.array_equal(stats.mean, mean) and stats.mean.shape == (62,)
    tri = load_pickle(fetch("bfm-noneck-tri"))
    assert tri.shape == (3, 76073) and tri.dtype == np.int32


def test_shipped_and_fetched_weights_load_without_trust():
    from mfirrn.io.assets import fetch

    weights = [Path(models.get_card(n).weights_path) for n in models.available(pretrained=True)
               if models.get_card(n).weights_path]
    assert len(weights) >= 4
    for path in [*weights, fetch("weights-3ddfa-v2-mb05"), fetch("detector-faceboxes")]:
        ckpt = load_checkpoint_file(path)
        assert isinstance(ckpt, dict)


def test_checkpoint_allowlist_is_names_of_data_types_only():
    """Arrays, dtypes, scalars and paths; nothing that runs a command, imports or evaluates."""
    names = checkpoint_globals()
    assert all(n.split(".")[0] in ("numpy", "pathlib") for n in names), sorted(names)
    assert not any(word in n for n in names for word in ("system", "exec", "eval", "import", "popen", "load"))


# ------------------------------------------------------------------------------------------ Python API
def test_python_api_refuses_hostile_files(tmp_path, marker):
    from mfirrn.data.datasets import DatasetError, load_3ddfa
    from mfirrn.geometry.params import ParamStats
    from mfirrn.models.init import init_from_pretrained

    ckpt = hostile_checkpoint(tmp_path / "evil.pt", marker)
    for call in (lambda: models.load(ckpt), lambda: models.load_checkpoint(ckpt),
                 lambda: models.load_checkpoint(ckpt, model="3ddfa-v2-mb05"),
                 lambda: init_from_pretrained(models.create("3ddfa-mb05", pretrained=False), str(ckpt))):
        with pytest.raises(models.CheckpointError, match=f"evil.pt needs {WANTS}"):
            call()
    pkl = hostile_pickle(tmp_path / "param_all_norm.pkl", marker)
    with pytest.raises(UnsafeFileError, match="param_all_norm.pkl needs builtins.exec"):
        ParamStats.from_pickle(str(pkl))
    (tmp_path / "train.list").write_text("a.jpg\n")
    with pytest.raises(DatasetError, match="param_all_norm.pkl needs builtins.exec"):
        load_3ddfa(tmp_path, tmp_path / "train.list", pkl, ParamStats.from_asset("stats-3ddfa-v1"))


def test_faceboxes_refuses_hostile_weights(tmp_path, marker):
    from mfirrn.detect.faceboxes import FaceBoxes

    path = tmp_path / "FaceBoxesProd.pth"
    torch.save({"conv1.conv.weight": torch.zeros(1), "x": Touch(marker)}, path)
    with pytest.raises(ValueError, match=f"needs {WANTS}.*detector-faceboxes"):
        FaceBoxes(weights=path)


def test_trust_checkpoint_reads_an_old_full_pickle_checkpoint(tmp_path):
    """An old release pickles more than tensors (here its argparse options): refused by default, read with
    the opt-in."""
    net = models.create("3ddfa-v2-mb05")
    path = tmp_path / "released.pth.tar"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()},
                "args": argparse.Namespace(arch="mobilenet_1", lr=0.02)}, path)
    with pytest.raises(models.CheckpointError, match="needs argparse.Namespace"):
        models.load_checkpoint(path, model="3ddfa-v2-mb05")
    loaded = models.load_checkpoint(path, model="3ddfa-v2-mb05", trust_checkpoint=True)
    assert torch.equal(loaded.conv1.weight, net.conv1.weight)
    # the opt-in is the full unpickler: it does run a file's code
    marker = tmp_path / "ran"
    models.load_checkpoint(hostile_checkpoint(tmp_path / "evil.pt", marker), trust_checkpoint=True)
    assert marker.exists()


# ------------------------------------------------------------------------------------------ command line
@pytest.mark.parametrize("argv", [
    ["reconstruct", "{photo}", "--model", "3ddfa-v2-mb05", "--checkpoint", "{ckpt}", "-o", "{out}"],
    ["benchmark", "--checkpoint", "{ckpt}", "--data-root", "{aflw}", "--no-aflw21"],
    ["benchmark", "--compare", "3ddfa-v2-mb05", "{ckpt}", "--data-root", "{aflw}", "--no-aflw21", "--bootstrap", "2"],
    ["export-onnx", "--checkpoint", "{ckpt}", "-o", "{out}/m.onnx"],
], ids=["reconstruct", "benchmark", "compare", "export-onnx"])
def test_cli_refuses_hostile_checkpoint(argv, tmp_path, marker, photo, aflw, capsys):
    ckpt = hostile_checkpoint(tmp_path / "evil.pt", marker)
    values = {"photo": photo, "ckpt": ckpt, "out": tmp_path / "out", "aflw": aflw}
    rc, _, err = run_cli([a.format(**values) for a in argv], capsys)
    assert_refused(rc, err, "evil.pt", WANTS, "--trust-checkpoint")
    assert not (tmp_path / "out" / "m.onnx").exists()


@pytest.fixture(scope="module")
def syn3ddfa(tmp_path_factory):
    from mfirrn.data import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("syn3ddfa") / "d", 12, fmt="3ddfa")


@pytest.mark.slow
@pytest.mark.parametrize("where", ["data.param_file", "model.init", "loss.distill_from", "resume"])
def test_cli_train_refuses_hostile_files(where, syn3ddfa, tmp_path, marker, capsys):
    d = syn3ddfa
    options = {"data.format": "3ddfa", "data.list_file": d["list_file"], "data.param_file": d["param_file"]}
    extra: list[str] = []
    culprit = "evil.pt"
    if where == "data.param_file":
        options["data.param_file"] = str(hostile_pickle(tmp_path / "evil.pkl", marker))
        culprit = "evil.pkl"
    elif where == "model.init":
        options["model.init"] = str(hostile_checkpoint(tmp_path / "evil.pt", marker, arch="3ddfa-mb05"))
    elif where == "loss.distill_from":
        options.update({"loss.distill_weight": 0.5,
                        "loss.distill_from": str(hostile_checkpoint(tmp_path / "evil.pt", marker, arch="3ddfa-mb05"))})
    else:
        run = tmp_path / "run"
        run.mkdir()
        hostile_checkpoint(run / "last.pt", marker, arch="3ddfa-mb05")
        culprit, extra = "last.pt", ["--resume"]
    cfg = tiny_train_config(tmp_path / "t.yaml", d["root"], tmp_path / "run", **options)
    rc, _, err = run_cli(["train", "--config", cfg, *extra], capsys)
    assert_refused(rc, err, culprit, "builtins.exec")


# ------------------------------------------------------------------------------------------ our own checkpoints
@pytest.mark.slow
def test_own_checkpoints_of_every_kind_still_load(tmp_path, aflw, capsys):
    """Trained, resumed, used as init and as distillation teacher, benchmarked, compared and exported: all through
    the safe reader, without --trust-checkpoint."""
    from mfirrn.data import make_synthetic_dataset

    data = make_synthetic_dataset(tmp_path / "syn", 20, seed=0)["root"]
    run = tmp_path / "run"
    cfg = tiny_train_config(tmp_path / "a.yaml", data, run, checkpoint_every_steps=1)
    rc, _, err = run_cli(["train", "--config", cfg, "stop_after_steps=1"], capsys)
    assert rc == 0, err
    rc, out, err = run_cli(["train", "--config", cfg, "--resume", "max_steps=2"], capsys)  # resumed
    assert rc == 0 and "at step 2" in out, err
    last = run / "last.pt"
    assert models.load(last).card.name.endswith("run/last.pt")
    student = tmp_path / "student"
    cfg2 = tiny_train_config(tmp_path / "b.yaml", data, student, **{
        "model.init": str(last), "loss.distill_weight": 0.5, "loss.distill_from": str(last), "max_steps": 1})
    rc, _, err = run_cli(["train", "--config", cfg2], capsys)  # init from and distilled from our checkpoint
    assert rc == 0, err
    assert load_checkpoint_file(student / "last.pt")["init"]["source"] == str(last)
    rc, out, err = run_cli(["benchmark", "--checkpoint", student / "last.pt", "--data-root", aflw, "--no-aflw21"],
                           capsys)
    assert rc == 0, err
    rc, _, err = run_cli(["benchmark", "--compare", last, student / "last.pt", "--data-root", aflw, "--no-aflw21",
                          "--bootstrap", "2", "--no-published"], capsys)
    assert rc == 0, err
    pytest.importorskip("onnx")
    rc, _, err = run_cli(["export-onnx", "--checkpoint", last, "-o", tmp_path / "m.onnx"], capsys)
    assert rc == 0 and (tmp_path / "m.onnx").is_file(), err


@pytest.mark.slow
def test_cli_trust_checkpoint_reads_an_old_full_pickle_checkpoint(tmp_path, aflw, capsys):
    net = models.create("3ddfa-v2-mb05")
    path = tmp_path / "released.pth.tar"
    torch.save({"arch": "3ddfa-v2-mb05", "state_dict": net.state_dict(), "args": argparse.Namespace(lr=0.02)}, path)
    argv = ["benchmark", "--checkpoint", path, "--data-root", aflw, "--no-aflw21"]
    rc, _, err = run_cli(argv, capsys)
    assert_refused(rc, err, "released.pth.tar", "argparse.Namespace", "--trust-checkpoint")
    rc, out, err = run_cli([*argv, "--trust-checkpoint"], capsys)
    assert rc == 0, err
    compare = ["benchmark", "--compare", "3ddfa-v2-mb05", path, "--data-root", aflw, "--no-aflw21", "--bootstrap", "2",
               "--no-published"]
    rc, _, err = run_cli(compare, capsys)
    assert_refused(rc, err, "released.pth.tar", "argparse.Namespace")
    rc, _, err = run_cli([*compare, "--trust-checkpoint"], capsys)
    assert rc == 0, err
