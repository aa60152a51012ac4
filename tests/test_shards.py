"""Tar shards: the sweep of views, the resumable shard build, and the stream the trainer reads."""

import hashlib
import json

import cv2
import numpy as np
import pytest
import torch

from mfirrn.data.labels.profiling import ProfileConfig, prepare_profile, profile_face, render_profiles, sweep_rotations
from mfirrn.data.shards import ShardSamples, ShardSet, ShardStream, read_shard, round_robin, worker_plan, write_shard
from mfirrn.geometry.params import ParamStats


def test_sweep_covers_the_rest_of_the_yaw_range_in_the_turning_direction():
    cfg = ProfileConfig()
    for yaw in (20.0, -35.0):
        a = sweep_rotations(yaw, 14, np.random.default_rng(0), cfg)
        assert a.shape == (14, 3) and (np.sign(a[:, 0]) == np.sign(yaw)).all()
        target = abs(yaw) + np.abs(a[:, 0])
        room = cfg.max_yaw - abs(yaw)
        # view k lies in the k-th of 14 equal slices of [|yaw|, 90]: one per slice
        slices = np.floor((target - abs(yaw)) / room * 14).astype(int)
        np.testing.assert_array_equal(slices, np.arange(14))
        assert (np.abs(a[:, 1]) <= cfg.pitch_jitter).all() and (np.abs(a[:, 2]) <= cfg.roll_jitter).all()
    # power 3: view k's turn is room * f**3 with f in the k-th slice
    a = sweep_rotations(30.0, 10, np.random.default_rng(0), cfg, power=3.0)
    np.testing.assert_array_equal(np.floor((a[:, 0] / 60) ** (1 / 3) * 10 + 1e-9).astype(int), np.arange(10))
    frontal = sweep_rotations(0.0, 200, np.random.default_rng(1), cfg)
    assert 50 < (frontal[:, 0] > 0).sum() < 150  # near-frontal faces turn either way
    np.testing.assert_array_equal(sweep_rotations(90.0, 5, np.random.default_rng(0), cfg)[:, 0], 0.0)
    assert sweep_rotations(10.0, 0, np.random.default_rng(0), cfg).shape == (0, 3)


def test_batched_views_equal_one_view_at_a_time(bfm):
    stats = ParamStats.from_asset("stats-3ddfa-v2")
    p = stats.denormalize(torch.zeros(1, 62))[0].numpy()
    p[:12] = np.array([[5e-4, 0, 0, 60], [0, 5e-4, 0, 66], [0, 0, 5e-4, 0]], np.float32).reshape(-1)
    crop = np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8)
    angles = np.array([[30.0, 2.0, -3.0], [-15.0, 0.0, 5.0]])
    images, params = render_profiles(prepare_profile(crop, p, bfm, "v2"), angles, bfm)
    for k in range(2):
        img, pk = profile_face(crop, p, bfm, "v2", tuple(angles[k]))
        np.testing.assert_allclose(params[k], pk, rtol=1e-6, atol=1e-6)
        assert np.abs(images[k].astype(int) - img).max() <= 1


def test_shard_bytes_round_trip_and_do_not_depend_on_the_machine():
    rng = np.random.default_rng(0)
    samples = [(f"{i:06d}_00", cv2.imencode(".jpg", rng.integers(0, 255, (120, 120, 3), dtype=np.uint8))[1].tobytes(),
                rng.normal(size=62).astype(np.float32)) for i in range(3)]
    data = write_shard(samples)
    assert write_shard(samples) == data
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = tf.getmembers()
    assert [m.name for m in members][:2] == ["000000_00.jpg", "000000_00.params.npy"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.mode) for m in members} == {(0, 0, 0, "", 0o644)}
    with pytest.raises(ValueError, match="must not contain"):
        write_shard([("a.b", b"", np.zeros(62))])


@pytest.fixture(scope="module")
def tiny_labels(tmp_path_factory):
    """A labels folder of 5 AFLW faces labelled by the teacher (4 accepted)."""
    from conftest import need_dataset

    from mfirrn import models
    from mfirrn.geometry.crop import crops_to_tensor
    from mfirrn.inference.predict import predict_params

    pool = need_dataset("aflw-21pt-train")
    names = (pool / "AFLW_GT_crop.list").read_text().split()[:5]
    crops = np.stack([cv2.imread(str(pool / "AFLW_GT_crop" / n)) for n in names])
    params = predict_params(models.create("3ddfa-v2-mb05"), crops_to_tensor(crops)).numpy()
    labels = tmp_path_factory.mktemp("labels")
    np.savez(labels / "labels.npz", params=params, residual=np.zeros(5), accepted=np.array([1, 1, 0, 1, 1], bool),
             n_visible=np.full(5, 21), yaw=np.zeros(5), roi=np.zeros((5, 4)), names=np.array(names))
    (labels / "labels.json").write_text(json.dumps({"crop_dir": str(pool / "AFLW_GT_crop"), "convention": "v2"}))
    return labels


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("shard-*.tar"))}


def test_shard_build_round_trips_and_resumes_to_identical_shards(tmp_path, tiny_labels):
    from mfirrn.data.labels.shard_build import ShardBuildConfig, build_shards

    cfg = ShardBuildConfig(views_per_face=3, faces_per_shard=2, workers=1)
    out = tmp_path / "lp"
    index = build_shards(tiny_labels, out, cfg, progress=False)
    assert (index["count"], index["faces"], index["profiled"], len(index["shards"])) == (12, 4, 8, 2)
    first = _digest(out)
    part = np.load(out / "parts" / "shard-00001.npz")
    samples = read_shard(out / "shard-00001.tar")
    assert [s[0] for s in samples] == list(part["keys"])
    np.testing.assert_array_equal(np.stack([s[2] for s in samples]), part["params"])
    assert {k[-2:] for k in part["keys"]} == {"00", "01", "02"}
    assert set(part["source"]) | set(np.load(out / "parts" / "shard-00000.npz")["source"]) == {0, 1, 3, 4}
    photo = [s for s in samples if s[0].endswith("_00")][0]
    src = int(photo[0][:6])
    orig = cv2.imread(str(json.loads((tiny_labels / "labels.json").read_text())["crop_dir"] + "/" +
                          str(np.load(tiny_labels / "labels.npz")["names"][src])))
    decoded = cv2.imdecode(np.frombuffer(photo[1], np.uint8), cv2.IMREAD_COLOR)
    assert np.abs(decoded.astype(int) - orig).mean() < 3  # view 00 is the photo (JPEG q90)
    np.testing.assert_array_equal(photo[2], np.load(tiny_labels / "labels.npz")["params"][src].astype(np.float32))
    # interrupted: one shard lost with its record, the other's tar damaged -> both redone, same bytes
    (out / "parts" / "shard-00000.npz").unlink()
    (out / "shard-00000.tar").unlink()
    (out / "shard-00001.tar").write_bytes(b"half a shard")
    (out / "index.json").unlink()
    again = build_shards(tiny_labels, out, cfg, progress=False)
    assert _digest(out) == first and again["shards"] == index["shards"]
    # another machine (two worker processes) builds the same shards from the same labels
    two = build_shards(tiny_labels, tmp_path / "lp2", ShardBuildConfig(views_per_face=3, faces_per_shard=2, workers=2),
                       progress=False)
    assert two["shards"] == index["shards"]
    # a different build into the same folder is refused
    from mfirrn.io.resume import ResumeError

    with pytest.raises(ResumeError, match="other inputs"):
        build_shards(tiny_labels, out, ShardBuildConfig(views_per_face=4, faces_per_shard=2, workers=1), progress=False)


def test_round_robin_and_resume_plans():
    assert round_robin([1, 3]) == [0, 1, 1, 1]
    order = round_robin([3, 1, 2])
    for start in range(len(order) + 1):
        plan = worker_plan([3, 1, 2], len(order), start)
        # the loader's round robin over the resumed workers continues the uninterrupted order
        resumed = [plan[w][0] for w in round_robin([t for _, _, t in plan])]
        assert resumed == order[start:]
        assert all(skip == order[:start].count(role) for role, skip, _ in plan)
    assert [t for _, _, t in worker_plan([3, 1, 2], 4, 0)] == [2, 1, 1]  # capped at 4 batches


def _fake_set(root, counts):
    """Shards of random 8x8-noise crops with params whose first entry is the global index."""
    stats = ParamStats.from_asset("stats-3ddfa-v2")
    entries, i = [], 0
    rng = np.random.default_rng(0)
    for k, n in enumerate(counts):
        samples = []
        for _ in range(n):
            p = stats.denormalize(torch.zeros(1, 62))[0].numpy().astype(np.float32)
            img = cv2.resize(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), (120, 120))
            samples.append((f"{i:06d}_00", cv2.imencode(".png", img)[1].tobytes(), p))
            i += 1
        data = write_shard(samples)
        (root / f"shard-{k:05d}.tar").write_bytes(data)
        entries.append({"name": f"shard-{k:05d}.tar", "count": n, "bytes": len(data), "sha256": ""})
    (root / "index.json").write_text(json.dumps({"format": "mfirrn-shards", "convention": "v2", "shards": entries}))
    return ShardSet(root), stats


def _epoch(stream, epoch, start=0, loader=False):
    stream.set_epoch(epoch, start)
    batches = stream.loader() if loader else stream
    return [b[2].tolist() for b in batches]


def test_stream_yields_every_sample_once_per_epoch_across_workers_and_ranks(tmp_path):
    shards, stats = _fake_set(tmp_path, [7, 5, 6, 4, 3])
    for workers in (0, 1, 2, 3):
        s = ShardStream(shards, range(5), stats, batch_size=2, n_workers=workers, shuffle_shards=2, drop_last=False,
                        seed=3)
        seen = sum(_epoch(s, 0, loader=workers > 0), [])
        assert sorted(seen) == list(range(25)), workers
    # two ranks: disjoint, and together everything (no drop: batch size 1)
    ranks = [ShardStream(shards, range(5), stats, batch_size=1, n_workers=2, rank=r, world_size=2, drop_last=False)
             for r in range(2)]
    got = [sum(_epoch(s, 0), []) for s in ranks]
    assert not set(got[0]) & set(got[1])
    assert len(got[0]) == len(got[1]) == ranks[0].batches_per_epoch  # the same number of steps on each rank
    # deterministic per seed and epoch; another epoch, another order
    a = ShardStream(shards, range(5), stats, batch_size=4, n_workers=2, seed=1)
    assert _epoch(a, 0) == _epoch(a, 0) != _epoch(a, 1)
    assert _epoch(a, 1, loader=True) == _epoch(a, 1)  # the in-process order is the loader's
    # worker 0 reads shards 0, 2, 4 (16 samples), worker 1 shards 1, 3 (9)
    assert a.batches_per_epoch == 16 // 4 + 9 // 4 and len(a) == 4 * a.batches_per_epoch


def test_stream_resumed_mid_epoch_gives_the_remaining_batches(tmp_path):
    shards, stats = _fake_set(tmp_path, [7, 5, 6, 4, 3])
    s = ShardStream(shards, range(5), stats, batch_size=2, n_workers=2, seed=5, shuffle_shards=2)
    full = _epoch(s, 2, loader=True)
    for start in (1, 3, 6, len(full)):
        assert _epoch(s, 2, start=2 * start, loader=True) == full[start:]
    with pytest.raises(ValueError, match="multiple of the batch size"):
        s.set_epoch(0, 3)


def test_validation_samples_and_split(tmp_path):
    shards, stats = _fake_set(tmp_path, [7, 5, 6, 4, 3])
    train, val = shards.split(0.2, seed=0)
    assert len(val) == 1 and sorted(train + val) == list(range(5))
    v = ShardSamples(shards, val, stats)
    x, y, i = v[0]
    assert x.shape == (3, 120, 120) and y.shape == (62,) and i == shards.first[val[0]]
    (tmp_path / shards.names[0]).write_bytes(b"x")
    from mfirrn.data.shards import ShardError

    with pytest.raises(ShardError, match="wrong size"):
        ShardSet(tmp_path)


@pytest.fixture(scope="module")
def synthetic_shards(tmp_path_factory):
    """The synthetic crops-params set of the trainer tests (30 crops), re-packed as 5 shards of 6."""
    from mfirrn.data import make_synthetic_dataset
    from mfirrn.data.datasets import load_crops_params

    src = make_synthetic_dataset(tmp_path_factory.mktemp("syn") / "cp", 30, seed=0)["root"]
    ds = load_crops_params(src, ParamStats.from_asset("stats-3ddfa-v1"))
    root = tmp_path_factory.mktemp("shards")
    entries = []
    for k in range(5):
        data = write_shard([(f"{i:06d}_00", (ds.paths[i]).read_bytes(), ds.params[i]) for i in range(6 * k, 6 * k + 6)])
        (root / f"shard-{k:05d}.tar").write_bytes(data)
        entries.append({"name": f"shard-{k:05d}.tar", "count": 6, "bytes": len(data), "sha256": ""})
    (root / "index.json").write_text(json.dumps({"format": "mfirrn-shards", "convention": ds.convention,
                                                 "shards": entries}))
    return root


def _train_cfg(root, out, **kw):
    from conftest import TINY_ARCH

    from mfirrn.train.config import TrainConfig, apply_overrides

    d = {"model": {"arch": TINY_ARCH},
         "data": {"format": "shards", "root": str(root), "batch_size": 4, "workers": 2, "val_fraction": 0.2,
                  "shuffle_shards": 2, "augment": {"flip_prob": 0.5, "affine_prob": 0.5}},
         "optim": {"lr": 0.01, "clip_grad_norm": 10.0}, "epochs": 2, "out_dir": str(out), "progress": False,
         "log_every_steps": 1}
    return apply_overrides(TrainConfig.from_dict(d), [f"{k}={v}" for k, v in kw.items()])


def test_trainer_streams_shards_and_a_killed_run_resumes_to_identical_weights(tmp_path, synthetic_shards):
    """4 training shards (24 crops) on 2 loader workers, batch 4: 6 steps per epoch; killed mid-epoch 2."""
    from mfirrn.train.trainer import train

    a = train(_train_cfg(synthetic_shards, tmp_path / "a"))
    assert (a.step, a.epoch, len(a.history)) == (12, 2, 2) and a.history[0]["n_val"] == 6
    part = train(_train_cfg(synthetic_shards, tmp_path / "b", stop_after_steps=8))
    assert part.stopped_early and part.step == 8
    b = train(_train_cfg(synthetic_shards, tmp_path / "b"), resume=True)
    sa, sb = (torch.load(r.last, weights_only=False) for r in (a, b))
    assert all(torch.equal(v, sb["state_dict"][k]) for k, v in sa["state_dict"].items())
    assert sa["best_nme"] == sb["best_nme"]


def test_the_300wlp_scale_pair_shares_one_recipe():
    """aflwlp-mfirrn-mb05 and aflwlp-mb05-baseline: only the architecture, the output folder and the BatchNorms
    that only the MFIRRN has (its new heads', which train) differ."""
    from pathlib import Path

    from mfirrn.train.config import TrainConfig

    here = Path(__file__).resolve().parent.parent / "mfirrn" / "train" / "configs"
    a, b = (TrainConfig.from_yaml(here / f"aflwlp-{n}.yaml").to_dict() for n in ("mfirrn-mb05", "mb05-baseline"))
    assert (a["model"].pop("arch"), b["model"].pop("arch")) == ("mfirrn-mb05", "3ddfa-mb05")
    assert (a["model"].pop("freeze_bn_except"), b["model"].pop("freeze_bn_except")) == (["head_medium", "head_fine"], [])
    assert a.pop("out_dir") != b.pop("out_dir") and a == b
    recipe = (a["data"]["format"], a["precision"], a["channels_last"], a["loss"]["distill_weight"])
    assert recipe == ("shards", "fp32", True, 0.5)


@pytest.mark.parametrize("argv, message", [
    (["--shards", "--profiles", "3"], "--profiles applies to the crops-params layout"),
    (["--views", "10"], "add --shards"),
    (["--shards", "--views", "0"], "--views must be at least 1"),
])
def test_cli_build_options_are_checked_in_one_line(tmp_path, capsys, argv, message):
    from mfirrn.cli import main

    rc = main(["data", "build", "--labels", str(tmp_path), "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "o").exists()
