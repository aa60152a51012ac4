"""Hostile dataset files: the benchmark's GT arrays, a labels folder for ``data build``, a landmark pool for
``data fit-landmarks``, a training set for ``train`` — each broken one way (missing, empty, truncated,
wrong shape, NaN, wrong type, inconsistent). Each must be refused with exit 2 and one line naming the file
(and the rows, for bad values) and the fix; nothing is written."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from _hostile import (
    assert_refused,
    run_cli,
    snapshot,
    strict_json_load,
    temporaries,
    tiny_aflw2000,
    tiny_labels,
    tiny_pool,
    tiny_train_config,
    truncate,
)

pytestmark = pytest.mark.filterwarnings("ignore")

GT = "test.configs/AFLW2000-3D.pts68.npy"
RE = "test.configs/AFLW2000-3D-Reannotated.pts68.npy"
ROI = "test.configs/AFLW2000-3D_crop.roi_box.npy"
POSE = "test.configs/AFLW2000-3D.pose.npy"
P21 = "test.configs/AFLW2000-3D.pts21.npy"
LIST = "test.data/AFLW2000-3D_crop.list"


def _np_edit(rel: str, fn):
    def edit(root: Path) -> None:
        path = root / rel
        np.save(path, fn(np.load(path)))
    return edit


def _nan_row(row: int, value=np.nan):
    def fn(a):
        a = a.astype(np.float32)
        a[row] = value
        return a
    return fn


def _unlink(rel):
    return lambda root: (root / rel).unlink()


def _empty(rel):
    return lambda root: (root / rel).write_bytes(b"")


def _truncate(rel):
    return lambda root: truncate(root / rel)


def _text(rel, text):
    return lambda root: (root / rel).write_text(text)


def _pickled_object_array(rel):
    def edit(root):
        np.save(root / rel, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return edit


def _string_array(rel):
    return lambda root: np.save(root / rel, np.array(["x"] * 6))


def _garbage_crop(name):
    return lambda root: (root / "test.data/AFLW2000-3D_crop" / name).write_bytes(b"not a jpeg")


# ------------------------------------------------------------------------------------ benchmark ground truth
BENCH_CASES = [
    ("gt-missing", _unlink(GT), ["AFLW2000-3D.pts68.npy", "--data-root"]),
    ("gt-empty", _empty(GT), ["AFLW2000-3D.pts68.npy", "empty"]),
    ("gt-truncated", _truncate(GT), ["AFLW2000-3D.pts68.npy", "truncated"]),
    ("gt-not-npy", _text(GT, "x,y\n1,2\n"), ["AFLW2000-3D.pts68.npy"]),
    ("gt-object-array", _pickled_object_array(GT), ["AFLW2000-3D.pts68.npy"]),
    ("gt-strings", _string_array(GT), ["AFLW2000-3D.pts68.npy", "numbers"]),
    ("gt-67-points", _np_edit(GT, lambda a: a[..., :67]), ["AFLW2000-3D.pts68.npy", "(6, 3, 67)", "68"]),
    ("gt-transposed", _np_edit(GT, lambda a: a.transpose(0, 2, 1)), ["AFLW2000-3D.pts68.npy", "(6, 68, 3)"]),
    ("gt-flat", _np_edit(GT, lambda a: a.reshape(6, -1)), ["AFLW2000-3D.pts68.npy", "(6, 204)"]),
    ("gt-nan-row", _np_edit(GT, _nan_row(2)), ["AFLW2000-3D.pts68.npy", "row 2", "image00002.jpg", "NaN"]),
    ("gt-inf-rows", _np_edit(GT, lambda a: _nan_row(4, np.inf)(_nan_row(1, np.inf)(a))),
     ["AFLW2000-3D.pts68.npy", "rows 1, 4"]),
    ("gt-one-nan-point", _np_edit(GT, lambda a: (a.__setitem__((3, 0, 17), np.nan), a)[1]),
     ["AFLW2000-3D.pts68.npy", "row 3"]),
    ("gt-fewer-rows", _np_edit(GT, lambda a: a[:5]), ["AFLW2000-3D.pts68.npy", "5 rows", "6 images"]),
    ("roi-nan", _np_edit(ROI, _nan_row(0)), ["roi_box.npy", "row 0"]),
    ("roi-wrong-shape", _np_edit(ROI, lambda a: a[:, :3]), ["roi_box.npy", "(6, 3)"]),
    ("roi-missing", _unlink(ROI), ["roi_box.npy", "missing"]),
    ("pose-truncated", _truncate(POSE), ["AFLW2000-3D.pose.npy"]),
    ("pose-2d", _np_edit(POSE, lambda a: np.stack([a, a, a], 1)), ["AFLW2000-3D.pose.npy", "(6, 3)"]),
    ("pose-nan", _np_edit(POSE, _nan_row(5)), ["AFLW2000-3D.pose.npy", "row 5"]),
    ("list-empty", _text(LIST, ""), ["AFLW2000-3D"]),
    ("crop-missing", lambda r: (r / "test.data/AFLW2000-3D_crop/image00001.jpg").unlink(), ["image00001.jpg"]),
    ("crop-corrupt", _garbage_crop("image00003.jpg"), ["image00003.jpg"]),
]


@pytest.fixture(scope="module")
def aflw_clean(tmp_path_factory):
    return tiny_aflw2000(tmp_path_factory.mktemp("aflw") / "aflw")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("edit,culprits", [pytest.param(e, c, id=i) for i, e, c in BENCH_CASES])
def test_benchmark_refuses_bad_ground_truth(edit, culprits, aflw_clean, tmp_path, capsys):
    root = _copy(aflw_clean, tmp_path / "aflw")
    edit(root)
    before = snapshot(tmp_path)
    rc, _, err = run_cli(["benchmark", "--model", "3ddfa-v2-mb05", "--data-root", root, "--out", tmp_path / "out"], capsys)
    assert_refused(rc, err, *culprits)
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


def test_benchmark_reannotated_gt_nan_is_refused(aflw_clean, tmp_path, capsys):
    root = _copy(aflw_clean, tmp_path / "aflw")
    _np_edit(RE, _nan_row(1))(root)
    rc, _, err = run_cli(["benchmark", "--model", "3ddfa-v2-mb05", "--data-root", root, "--gt", "reannotated"], capsys)
    assert_refused(rc, err, "AFLW2000-3D-Reannotated.pts68.npy", "row 1")
    # the original GT of the same folder is fine
    rc, out, err = run_cli(["benchmark", "--model", "3ddfa-v2-mb05", "--data-root", root, "--limit", "2"], capsys)
    assert rc == 0, err


def test_benchmark_summary_is_strict_json_with_empty_bins(aflw_clean, tmp_path, capsys):
    """One image, in (60,90]: the empty bins' means are null (not NaN) in valid JSON."""
    rc, out, err = run_cli(["benchmark", "--model", "3ddfa-v2-mb05", "--data-root", aflw_clean, "--limit", "1",
                            "--out", tmp_path / "o"], capsys)
    assert rc == 0, err
    s = strict_json_load(tmp_path / "o" / "summary.json")
    assert s["counts"] == [0, 0, 1] and s["bins"][:2] == [None, None] and s["bins"][2] > 0 and s["mean"] is None
    assert not temporaries(tmp_path)


@pytest.mark.slow
def test_benchmark_refuses_a_checkpoint_that_predicts_nan(aflw_clean, tmp_path, capsys):
    import torch

    from mfirrn import models

    net = models.create("3ddfa-v2-mb05")
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    key = next(k for k, v in sd.items() if v.dtype.is_floating_point and v.ndim > 1)
    sd[key].fill_(float("nan"))
    ckpt = tmp_path / "nan.pt"
    torch.save({"arch": "3ddfa-v2-mb05", "state_dict": sd, "stats": {"mean": net.stats.mean, "std": net.stats.std},
                "convention": net.card.convention}, ckpt)
    rc, _, err = run_cli(["benchmark", "--checkpoint", ckpt, "--data-root", aflw_clean, "--out", tmp_path / "o"], capsys)
    assert_refused(rc, err, "non-finite", "image00000.jpg")
    assert not (tmp_path / "o").exists()
    rc, _, err = run_cli(["benchmark", "--compare", "3ddfa-v2-mb05", ckpt, "--data-root", aflw_clean,
                          "--bootstrap", "5", "--out", tmp_path / "c"], capsys)
    assert_refused(rc, err, "non-finite")
    assert not (tmp_path / "c").exists()


# ------------------------------------------------------------------------------------ labelling validation
def test_fit_landmarks_validate_refuses_19_points(aflw_clean, tmp_path, capsys):
    root = _copy(aflw_clean, tmp_path / "aflw")
    _np_edit(P21, lambda a: a[..., :19])(root)
    rc, _, err = run_cli(["data", "fit-landmarks", "--validate", root], capsys)
    assert_refused(rc, err, "AFLW2000-3D.pts21.npy", "(6, 2, 19)", "21")


# ------------------------------------------------------------------------------------ landmark pool
POOL_CASES = [
    ("pts21-19-points", lambda r: np.save(r / "AFLW_GT_pts21.npy", np.load(r / "AFLW_GT_pts21.npy")[..., :19]),
     ["AFLW_GT_pts21.npy", "(3, 2, 19)"]),
    ("pts21-truncated", lambda r: truncate(r / "AFLW_GT_pts21.npy"), ["AFLW_GT_pts21.npy"]),
    ("pts21-empty", lambda r: (r / "AFLW_GT_pts21.npy").write_bytes(b""), ["AFLW_GT_pts21.npy", "empty"]),
    ("pts21-missing", lambda r: (r / "AFLW_GT_pts21.npy").unlink(), ["AFLW_GT_pts21.npy", "--pool"]),
    ("roi-wrong-shape", lambda r: np.save(r / "AFLW_GT_crop_roi_box.npy", np.zeros((3, 2))), ["AFLW_GT_crop_roi_box.npy"]),
    ("roi-nan", lambda r: np.save(r / "AFLW_GT_crop_roi_box.npy", np.array([[0, 0, 120, 120], [np.nan] * 4, [0, 0, 120, 120]])),
     ["AFLW_GT_crop_roi_box.npy", "row 1"]),
    ("yaws-2d", lambda r: np.save(r / "AFLW_GT_crop_yaws.npy", np.zeros((3, 3))), ["AFLW_GT_crop_yaws.npy"]),
    ("list-longer", lambda r: (r / "AFLW_GT_crop.list").write_text("face0.jpg\nface1.jpg\nface2.jpg\nface3.jpg\n"),
     ["lengths differ"]),
    ("crop-unreadable", lambda r: (r / "AFLW_GT_crop" / "face1.jpg").write_bytes(b"GIF89a"), ["face1.jpg"]),
]


@pytest.fixture(scope="module")
def pool_clean(tmp_path_factory):
    return tiny_pool(tmp_path_factory.mktemp("pool") / "pool")


@pytest.mark.parametrize("edit,culprits", [pytest.param(e, c, id=i) for i, e, c in POOL_CASES])
def test_fit_landmarks_refuses_bad_pool(edit, culprits, pool_clean, tmp_path, capsys):
    root = _copy(pool_clean, tmp_path / "pool")
    edit(root)
    rc, _, err = run_cli(["data", "fit-landmarks", "--pool", root, "--out", tmp_path / "labels"], capsys)
    assert_refused(rc, err, *culprits)
    assert not (tmp_path / "labels").exists() and not temporaries(tmp_path)


# ------------------------------------------------------------------------------------ labels for data build
def _npz_edit(**changes):
    def edit(labels: Path) -> None:
        with np.load(labels / "labels.npz") as z:
            arrays = {k: z[k] for k in z.files}
        for k, v in changes.items():
            if v is None:
                arrays.pop(k)
            else:
                arrays[k] = v(arrays[k]) if callable(v) else v
        np.savez(labels / "labels.npz", **arrays)
    return edit


def _json_edit(fn):
    def edit(labels: Path) -> None:
        meta = json.loads((labels / "labels.json").read_text())
        (labels / "labels.json").write_text(json.dumps(fn(meta)))
    return edit


def _nan_param_row(a):
    a = a.copy()
    a[1, 20] = np.nan
    return a


LABEL_CASES = [
    ("npz-truncated", lambda lb: truncate(lb / "labels.npz"), ["labels.npz", "truncated"]),
    ("npz-empty", lambda lb: (lb / "labels.npz").write_bytes(b""), ["labels.npz", "empty"]),
    ("npz-missing", lambda lb: (lb / "labels.npz").unlink(), ["labels.npz", "fit-landmarks"]),
    ("npz-is-text", lambda lb: (lb / "labels.npz").write_text("params\n"), ["labels.npz"]),
    ("params-61-columns", _npz_edit(params=lambda a: a[:, :61]), ["labels.npz", "params", "(3, 61)", "62"]),
    ("params-nan-row", _npz_edit(params=_nan_param_row), ["labels.npz", "params", "row 1", "f1.jpg"]),
    ("params-missing", _npz_edit(params=None), ["labels.npz", "params"]),
    ("accepted-short", _npz_edit(accepted=np.array([True, True])), ["labels.npz", "accepted"]),
    ("names-2d", _npz_edit(names=np.array([["f0.jpg"], ["f1.jpg"], ["f2.jpg"]])), ["labels.npz", "names"]),
    ("json-broken", lambda lb: (lb / "labels.json").write_text('{\n  "crop_dir": \n'), ["labels.json", "line 3"]),
    ("json-empty", lambda lb: (lb / "labels.json").write_text(""), ["labels.json", "empty"]),
    ("json-missing", lambda lb: (lb / "labels.json").unlink(), ["labels.json"]),
    ("json-a-list", lambda lb: (lb / "labels.json").write_text("[1, 2]"), ["labels.json", "object"]),
    ("json-nan", lambda lb: (lb / "labels.json").write_text('{"crop_dir": "x", "convention": "v2", "r": NaN}'),
     ["labels.json", "NaN"]),
    ("json-no-crop-dir", _json_edit(lambda m: {k: v for k, v in m.items() if k != "crop_dir"}), ["labels.json", "crop_dir"]),
    ("json-bad-convention", _json_edit(lambda m: {**m, "convention": "v9"}), ["labels.json", "v9"]),
    ("crop-dir-gone", lambda lb: shutil.rmtree(lb.parent / "crops"), ["crops", "labels.json"]),
    ("crop-file-gone", lambda lb: (lb.parent / "crops" / "f2.jpg").unlink(), ["f2.jpg"]),
]


def test_data_build_stops_cleanly_at_an_unreadable_crop_and_resumes(labels_clean, tmp_path, capsys):
    """A crop that exists but does not decode is found mid-build: one line, no temporaries; once restored, the
    rerun resumes the same build."""
    src = _copy(labels_clean.parent, tmp_path / "src")
    meta = json.loads((src / "labels" / "labels.json").read_text())
    (src / "labels" / "labels.json").write_text(json.dumps({**meta, "crop_dir": str(src / "crops")}))
    good = (src / "crops" / "f1.jpg").read_bytes()
    (src / "crops" / "f1.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    argv = ["data", "build", "--labels", src / "labels", "--out", tmp_path / "ds", "--workers", "1", "--profiles", "1"]
    rc, _, err = run_cli(argv, capsys)
    assert_refused(rc, err, "f1.jpg", "rerun")
    assert not temporaries(tmp_path)
    (src / "crops" / "f1.jpg").write_bytes(good)
    rc, _, err = run_cli(argv, capsys)
    assert rc == 0, err
    assert len((tmp_path / "ds" / "crops.list").read_text().split()) == 6


@pytest.fixture(scope="module")
def labels_clean(tmp_path_factory):
    return tiny_labels(tmp_path_factory.mktemp("labels") / "src")


@pytest.mark.parametrize("edit,culprits", [pytest.param(e, c, id=i) for i, e, c in LABEL_CASES])
def test_data_build_refuses_bad_labels(edit, culprits, labels_clean, tmp_path, capsys):
    src = _copy(labels_clean.parent, tmp_path / "src")
    meta = json.loads((src / "labels" / "labels.json").read_text())
    (src / "labels" / "labels.json").write_text(json.dumps({**meta, "crop_dir": str(src / "crops")}))
    edit(src / "labels")
    rc, _, err = run_cli(["data", "build", "--labels", src / "labels", "--out", tmp_path / "ds", "--workers", "1"], capsys)
    assert_refused(rc, err, *culprits)
    assert not (tmp_path / "ds").exists() and not temporaries(tmp_path)


# ------------------------------------------------------------------------------------ training data
def _params_edit(fn):
    def edit(root: Path) -> None:
        np.save(root / "params.npy", fn(np.load(root / "params.npy")))
    return edit


TRAIN_CASES = [
    ("params-truncated", lambda r: truncate(r / "params.npy"), ["params.npy", "truncated"]),
    ("params-empty", lambda r: (r / "params.npy").write_bytes(b""), ["params.npy", "empty"]),
    ("params-missing", lambda r: (r / "params.npy").unlink(), ["params.npy"]),
    ("params-61-columns", _params_edit(lambda a: a[:, :61]), ["params.npy", "61"]),
    ("params-too-few-rows", _params_edit(lambda a: a[:-1]), ["params.npy", "(19, 62)"]),
    ("params-nan-row", _params_edit(lambda a: (a.__setitem__((7, 3), np.nan), a)[1]), ["params.npy", "row 7", "000007.png"]),
    ("params-object", lambda r: np.save(r / "params.npy", np.array([None, 1], dtype=object), allow_pickle=True),
     ["params.npy"]),
    ("crop-missing", lambda r: (r / "crops" / "000004.png").unlink(), ["000004.png", "missing"]),
    ("list-empty", lambda r: (r / "crops.list").write_text(""), ["lists no crops"]),
    ("manifest-broken", lambda r: (r / "manifest.json").write_text("{'format': 1}"), ["manifest.json", "JSON"]),
]


@pytest.fixture(scope="module")
def train_clean(tmp_path_factory):
    from mfirrn.data import make_synthetic_dataset

    return Path(make_synthetic_dataset(tmp_path_factory.mktemp("syn") / "syn", 20, seed=0)["root"])


@pytest.mark.parametrize("edit,culprits", [pytest.param(e, c, id=i) for i, e, c in TRAIN_CASES])
def test_train_refuses_bad_training_data(edit, culprits, train_clean, tmp_path, capsys):
    root = _copy(train_clean, tmp_path / "syn")
    edit(root)
    cfg = tiny_train_config(tmp_path / "t.yaml", root, tmp_path / "run")
    rc, _, err = run_cli(["train", "--config", cfg], capsys)
    assert_refused(rc, err, *culprits)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_reports_a_crop_that_fails_in_a_loader_worker_in_one_line(train_clean, tmp_path, capsys):
    """A crop that exists but does not decode is met by a data-loader worker process: the worker's traceback
    must not reach the user, only the message naming the file."""
    root = _copy(train_clean, tmp_path / "syn")
    (root / "crops" / "000003.png").write_bytes(b"\x89PNG but cut")
    cfg = tiny_train_config(tmp_path / "t.yaml", root, tmp_path / "run", **{"data.workers": 2, "data.val_fraction": 0.0})
    rc, _, err = run_cli(["train", "--config", cfg], capsys)
    assert_refused(rc, err, "000003.png")


@pytest.mark.slow
def test_train_refuses_a_truncated_3ddfa_param_pickle(tmp_path, capsys):
    from mfirrn.data import make_synthetic_dataset

    d = make_synthetic_dataset(tmp_path / "d", 12, fmt="3ddfa")
    truncate(Path(d["param_file"]))
    cfg = tiny_train_config(tmp_path / "t.yaml", d["root"], tmp_path / "run", **{
        "data.format": "3ddfa", "data.list_file": d["list_file"], "data.param_file": d["param_file"]})
    rc, _, err = run_cli(["train", "--config", cfg], capsys)
    assert_refused(rc, err, "param_all_norm.pkl")
    with open(d["param_file"], "wb") as f:
        pickle.dump(np.full((12, 62), np.nan, np.float32), f)
    rc, _, err = run_cli(["train", "--config", cfg], capsys)
    assert_refused(rc, err, "param_all_norm.pkl", "rows 0, 1")
    assert not (tmp_path / "run").exists()
