"""Hostile command lines: every sub-command, every kind of bad argument (missing, empty, wrong-type, out of
range, unwritable, wrong kind of path). Each must be refused with exit 2 and one line naming the option
and the fix, before any work, leaving nothing on disk (see ``_hostile.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _hostile import TINY_ARCH, assert_refused, run_cli, snapshot, temporaries, tiny_aflw2000, tiny_train_config

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from mfirrn.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("inputs")
    syn = make_synthetic_dataset(root / "syn", 20, seed=0)["root"]
    broken = root / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    return {"aflw": str(tiny_aflw2000(root / "aflw")), "syn": syn, "cfg": str(tiny_train_config(root / "t.yaml", syn, root / "unused")),
            "badyaml": str(broken)}


def _expand(items, tmp: Path, inputs: dict) -> list[str]:
    subs = {"tmp": str(tmp), "file": str(tmp / "a_file.txt"), "dir": str(tmp / "a_dir"), "empty": str(tmp / "empty.pt"),
            **inputs}
    return [str(s).format(**subs) for s in items]


B = ["benchmark", "--model", "3ddfa-v2-mb05", "--data-root", "{aflw}"]
FIT = ["data", "fit-landmarks", "--pool", "{tmp}/nopool"]
BUILD = ["data", "build", "--labels", "{tmp}/nolabels"]
T = ["train", "--config", "{cfg}"]

# (case id, argv, culprits the message must name)
CASES = [
    # ---- benchmark
    ("benchmark-limit-0", [*B, "--limit", "0"], ["--limit", "0"]),
    ("benchmark-limit-negative", [*B, "--limit", "-5"], ["--limit", "-5"]),
    ("benchmark-limit-not-a-number", [*B, "--limit", "ten"], ["--limit", "ten"]),
    ("benchmark-batch-size-0", [*B, "--batch-size", "0"], ["--batch-size"]),
    ("benchmark-batch-size-negative", [*B, "--batch-size", "-2"], ["--batch-size"]),
    ("benchmark-batch-size-float", [*B, "--batch-size", "2.5"], ["--batch-size"]),
    ("benchmark-device-unknown", [*B, "--device", "gpu0"], ["--device", "gpu0"]),
    ("benchmark-device-empty", [*B, "--device", ""], ["--device"]),
    ("benchmark-device-cuda-index", [*B, "--device", "cuda:17"], ["--device", "cuda:17"]),
    ("benchmark-out-proc", [*B, "--out", "/proc/x"], ["--out", "/proc/x"]),
    ("benchmark-out-is-file", [*B, "--out", "{file}"], ["--out", "a_file.txt"]),
    ("benchmark-out-under-file", [*B, "--out", "{file}/sub"], ["--out", "a_file.txt"]),
    ("benchmark-out-empty", [*B, "--out", ""], ["--out"]),
    ("benchmark-gt-unknown", [*B, "--gt", "bogus"], ["--gt", "bogus"]),
    ("benchmark-output-unknown", [*B, "--output", "middle"], ["--output", "middle"]),
    ("benchmark-bootstrap-0", ["benchmark", "--compare", "3ddfa-v2-mb05", "--data-root", "{aflw}", "--bootstrap", "0"],
     ["--bootstrap"]),
    ("benchmark-compare-missing-checkpoint", ["benchmark", "--compare", "3ddfa-v2-mb05", "{tmp}/runs/best.pt",
                                              "--data-root", "{aflw}"], ["--compare", "runs/best.pt", "does not exist"]),
    ("benchmark-compare-folder", ["benchmark", "--compare", "{dir}", "--data-root", "{aflw}"], ["--compare", "a_dir"]),
    ("benchmark-compare-unknown-name", ["benchmark", "--compare", "no-such-model", "--data-root", "{aflw}"],
     ["--compare", "no-such-model"]),
    ("benchmark-model-and-compare", [*B, "--compare", "3ddfa-v2-mb05"], ["--compare", "--model"]),
    ("benchmark-unknown-model", ["benchmark", "--model", "no-such-model", "--data-root", "{aflw}"], ["no-such-model"]),
    ("benchmark-checkpoint-missing", ["benchmark", "--checkpoint", "{tmp}/nope.pt", "--data-root", "{aflw}"], ["nope.pt"]),
    ("benchmark-checkpoint-empty", ["benchmark", "--checkpoint", "{empty}", "--data-root", "{aflw}"], ["empty.pt"]),
    ("benchmark-checkpoint-not-torch", ["benchmark", "--checkpoint", "{file}", "--data-root", "{aflw}"], ["a_file.txt"]),
    ("benchmark-data-root-missing", ["benchmark", "--model", "3ddfa-v2-mb05", "--data-root", "{tmp}/nodata"],
     ["nodata", "--data-root"]),
    ("benchmark-data-root-is-file", ["benchmark", "--model", "3ddfa-v2-mb05", "--data-root", "{file}"], ["a_file.txt"]),
    ("benchmark-onnx-on-gpu", [*B, "--backend", "onnxruntime", "--bf16"], ["--backend onnxruntime"]),
    # ---- data fit-landmarks
    ("fit-out-proc", [*FIT, "--out", "/proc/x"], ["--out", "/proc/x"]),
    ("fit-out-is-file", [*FIT, "--out", "{file}"], ["--out", "a_file.txt"]),
    ("fit-limit-0", [*FIT, "--out", "{tmp}/o", "--limit", "0"], ["--limit"]),
    ("fit-batch-size-0", [*FIT, "--out", "{tmp}/o", "--batch-size", "0"], ["--batch-size"]),
    ("fit-max-iter-negative", [*FIT, "--out", "{tmp}/o", "--max-iter", "-3"], ["--max-iter"]),
    ("fit-prior-weight-negative", [*FIT, "--out", "{tmp}/o", "--prior-weight", "-1"], ["--prior-weight"]),
    ("fit-prior-weight-nan", [*FIT, "--out", "{tmp}/o", "--prior-weight", "nan"], ["--prior-weight"]),
    ("fit-max-residual-0", [*FIT, "--out", "{tmp}/o", "--max-residual", "0"], ["--max-residual"]),
    ("fit-device-unknown", [*FIT, "--out", "{tmp}/o", "--device", "tpu"], ["--device", "tpu"]),
    ("fit-no-out", [*FIT], ["--out"]),
    ("fit-pool-missing", [*FIT, "--out", "{tmp}/o"], ["nopool", "--pool"]),
    ("fit-teacher-unknown", [*FIT, "--out", "{tmp}/o", "--teacher", "no-such-model"], ["no-such-model"]),
    ("fit-points-unknown", [*FIT, "--out", "{tmp}/o", "--points", "brows"], ["--points", "brows"]),
    ("fit-points-and-without-ears", [*FIT, "--out", "{tmp}/o", "--points", "same-definition", "--without-ears"],
     ["--without-ears", "--points same-definition"]),
    # ---- data build
    ("build-out-proc", [*BUILD, "--out", "/proc/x"], ["--out", "/proc/x"]),
    ("build-out-is-file", [*BUILD, "--out", "{file}"], ["--out", "a_file.txt"]),
    ("build-profiles-negative", [*BUILD, "--out", "{tmp}/o", "--profiles", "-1"], ["--profiles"]),
    ("build-profiles-not-a-number", [*BUILD, "--out", "{tmp}/o", "--profiles", "two"], ["--profiles", "two"]),
    ("build-workers-negative", [*BUILD, "--out", "{tmp}/o", "--workers", "-4"], ["--workers"]),
    ("build-limit-0", [*BUILD, "--out", "{tmp}/o", "--limit", "0"], ["--limit"]),
    ("build-labels-missing", [*BUILD, "--out", "{tmp}/o"], ["nolabels", "fit-landmarks"]),
    ("build-labels-is-file", ["data", "build", "--labels", "{file}", "--out", "{tmp}/o"], ["a_file.txt"]),
    ("build-no-labels", ["data", "build", "--out", "{tmp}/o"], ["--labels"]),
    # ---- export-onnx
    ("export-out-proc", ["export-onnx", "--model", TINY_ARCH, "--untrained", "-o", "/proc/x/m.onnx"], ["/proc/x"]),
    ("export-out-is-folder", ["export-onnx", "--model", TINY_ARCH, "--untrained", "-o", "{dir}"], ["a_dir", "file path"]),
    ("export-out-under-file", ["export-onnx", "--model", TINY_ARCH, "--untrained", "-o", "{file}/m.onnx"], ["a_file.txt"]),
    ("export-opset-0", ["export-onnx", "--model", TINY_ARCH, "--untrained", "-o", "{tmp}/m.onnx", "--opset", "0"], ["--opset"]),
    ("export-opset-too-old", ["export-onnx", "--model", TINY_ARCH, "--untrained", "-o", "{tmp}/m.onnx", "--opset", "9"],
     ["opset 9"]),
    ("export-opset-too-new", ["export-onnx", "--model", TINY_ARCH, "--untrained", "-o", "{tmp}/m.onnx", "--opset", "99"],
     ["opset 99"]),
    ("export-unknown-model", ["export-onnx", "--model", "no-such-model", "-o", "{tmp}/m.onnx"], ["no-such-model"]),
    ("export-checkpoint-missing", ["export-onnx", "--checkpoint", "{tmp}/nope.pt", "-o", "{tmp}/m.onnx"], ["nope.pt"]),
    ("export-checkpoint-empty", ["export-onnx", "--checkpoint", "{empty}", "-o", "{tmp}/m.onnx"], ["empty.pt"]),
    ("export-no-source", ["export-onnx", "-o", "{tmp}/m.onnx"], ["--model", "--checkpoint"]),
    ("export-no-output", ["export-onnx", "--model", TINY_ARCH], ["--output"]),
    # ---- assets
    ("assets-fetch-unknown", ["assets", "fetch", "no-such-asset"], ["no-such-asset"]),
    ("assets-verify-unknown", ["assets", "verify", "no-such-asset"], ["no-such-asset"]),
    ("assets-fetch-nothing", ["assets", "fetch"], ["--all"]),
    ("assets-no-action", ["assets"], ["ACTION"]),
    ("assets-unknown-action", ["assets", "download"], ["download"]),
    # ---- train
    ("train-config-missing", ["train", "--config", "{tmp}/none.yaml"], ["none.yaml"]),
    ("train-config-broken-yaml", ["train", "--config", "{badyaml}"], ["broken.yaml", "YAML"]),
    ("train-config-is-folder", ["train", "--config", "{dir}"], ["a_dir"]),
    ("train-out-dir-proc", [*T, "out_dir=/proc/x"], ["out_dir", "/proc/x"]),
    ("train-out-dir-is-file", [*T, "out_dir={file}"], ["out_dir", "a_file.txt"]),
    ("train-out-dir-under-file", [*T, "out_dir={file}/run"], ["out_dir", "a_file.txt"]),
    ("train-val-fraction-1.5", [*T, "data.val_fraction=1.5", "out_dir={tmp}/run"], ["data.val_fraction", "1.5"]),
    ("train-val-fraction-negative", [*T, "data.val_fraction=-0.1", "out_dir={tmp}/run"], ["data.val_fraction"]),
    ("train-lr-negative", [*T, "optim.lr=-0.01", "out_dir={tmp}/run"], ["optim.lr"]),
    ("train-lr-nan", [*T, "optim.lr=.nan", "out_dir={tmp}/run"], ["optim.lr"]),
    ("train-lr-text", [*T, "optim.lr=fast", "out_dir={tmp}/run"], ["optim.lr", "fast"]),
    ("train-epochs-0", [*T, "epochs=0", "out_dir={tmp}/run"], ["epochs"]),
    ("train-batch-size-0", [*T, "data.batch_size=0", "out_dir={tmp}/run"], ["data.batch_size"]),
    ("train-batch-size-float", [*T, "data.batch_size=2.5", "out_dir={tmp}/run"], ["data.batch_size"]),
    ("train-batch-size-too-big", [*T, "data.batch_size=1000", "out_dir={tmp}/run"], ["data.batch_size"]),
    ("train-workers-negative", [*T, "data.workers=-1", "out_dir={tmp}/run"], ["data.workers"]),
    ("train-max-steps-negative", [*T, "max_steps=-1", "out_dir={tmp}/run"], ["max_steps"]),
    ("train-momentum-1", [*T, "optim.momentum=1", "out_dir={tmp}/run"], ["optim.momentum"]),
    ("train-betas-one", [*T, "optim.betas=[0.9]", "out_dir={tmp}/run"], ["optim.betas"]),
    ("train-device-unknown", [*T, "device=gpu0", "out_dir={tmp}/run"], ["device", "gpu0"]),
    ("train-device-absent-cuda", [*T, "device=cuda:17", "out_dir={tmp}/run"], ["device", "cuda:17"]),
    ("train-precision-unknown", [*T, "precision=fp8", "out_dir={tmp}/run"], ["precision", "fp8"]),
    ("train-unknown-key", [*T, "optim.lrr=1", "out_dir={tmp}/run"], ["optim.lrr"]),
    ("train-override-no-equals", [*T, "optim.lr"], ["optim.lr", "key=value"]),
    ("train-override-not-a-group", [*T, "epochs.x=1"], ["epochs"]),
    ("train-unknown-arch", [*T, "model.arch=no-such-arch", "out_dir={tmp}/run"], ["model.arch", "no-such-arch"]),
    ("train-data-root-missing", [*T, "data.root={tmp}/nodata", "out_dir={tmp}/run"], ["nodata"]),
    ("train-data-root-empty", [*T, "data.root=", "out_dir={tmp}/run"], ["data.root"]),
    ("train-data-format-unknown", [*T, "data.format=hdf5", "out_dir={tmp}/run"], ["hdf5"]),
    ("train-resume-nothing", [*T, "--resume", "out_dir={tmp}/run"], ["--resume", "last.pt"]),
    ("train-resume-missing-file", [*T, "--resume", "{tmp}/gone.pt", "out_dir={tmp}/run"], ["gone.pt"]),
    ("train-resume-not-a-checkpoint", [*T, "--resume", "{file}", "out_dir={tmp}/run"], ["a_file.txt"]),
    ("train-init-missing", [*T, "model.init={tmp}/init.pt", "out_dir={tmp}/run"], ["init.pt"]),
]


@pytest.mark.parametrize("argv,culprits", [pytest.param(a, c, id=i) for i, a, c in CASES])
def test_bad_argument_is_refused_in_one_line_and_writes_nothing(argv, culprits, tmp_path, inputs, capsys, monkeypatch):
    (tmp_path / "a_file.txt").write_text("not a checkpoint\n")
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "empty.pt").write_bytes(b"")
    monkeypatch.setenv("MFIRRN_PROGRESS", "0")
    before = snapshot(tmp_path)
    rc, _, err = run_cli(_expand(argv, tmp_path, inputs), capsys)
    assert_refused(rc, err, *_expand(culprits, tmp_path, inputs))
    assert snapshot(tmp_path) == before, "a refused command changed files"
    assert not temporaries(tmp_path)


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
