"""Trainer: configs, a smoke run, bitwise resume after a 'kill', checkpoint -> benchmark, CLI errors, DDP."""

import csv
import filecmp
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_ARCH

from mfirrn import models
from mfirrn.cli import main as cli_main
from mfirrn.data import make_synthetic_dataset
from mfirrn.train.config import ConfigError, TrainConfig, apply_overrides, package_configs
from mfirrn.train.trainer import TrainError, train

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("syn") / "cp", 30, seed=0)["root"]


def _cfg(data_root, out, **kw):
    d = {"model": {"arch": TINY_ARCH},
         "data": {"format": "crops-params", "root": data_root, "batch_size": 8, "workers": 0, "val_fraction": 0.2,
                  "augment": {"flip_prob": 0.5, "affine_prob": 0.5}},
         "optim": {"lr": 0.01, "warmup_epochs": 1, "clip_grad_norm": 10.0},
         "epochs": 2, "out_dir": str(out), "progress": False, "log_every_steps": 1}
    cfg = TrainConfig.from_dict(d)
    return apply_overrides(cfg, [f"{k}={v}" for k, v in kw.items()])


def test_shipped_configs_parse_and_match_data_configs():
    names = package_configs()
    assert {"mfirrn-r34-300wlp", "smoke"} <= set(names)
    for n in names:
        pkg = REPO / "mfirrn" / "train" / "configs" / f"{n}.yaml"
        TrainConfig.from_yaml(pkg).validate()
        assert filecmp.cmp(pkg, REPO / "data" / "configs" / f"{n}.yaml", shallow=False), n
    paper = TrainConfig.from_yaml(REPO / "mfirrn" / "train" / "configs" / "mfirrn-r34-300wlp.yaml")
    assert (paper.optim.name, paper.optim.nesterov, paper.optim.momentum, paper.optim.weight_decay) == ("sgd", True, 0.9, 5e-4)
    assert (paper.data.batch_size, paper.optim.lr, paper.optim.milestones, paper.epochs) == (128, 1e-3, [30, 40, 50], 40)


def _shipped(name: str) -> dict:
    return TrainConfig.from_yaml(REPO / "mfirrn" / "train" / "configs" / f"{name}.yaml").to_dict()


def _without(cfg: dict, *keys: str) -> dict:
    """``cfg`` with the dotted ``keys`` removed (``"model.arch"``, ``"out_dir"``)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in cfg.items()}
    for key in keys:
        head, _, leaf = key.partition(".")
        if leaf:
            out[head].pop(leaf)
        else:
            out.pop(head)
    return out


@pytest.mark.parametrize("suffix", ["", "-sgd", "-scratch", "-distill"])
def test_aflw_comparison_pairs_share_one_recipe(suffix):
    """The README compares aflw-mb05-baseline and aflw-mfirrn-mb05 as "the same recipe": only the model and
    the output folder may differ; the -sgd pair differs from the AdamW pair only in the optimiser, and the
    -scratch pair starts from random weights with trainable BatchNorm."""
    base, mfirrn = _shipped(f"aflw-mb05-baseline{suffix}"), _shipped(f"aflw-mfirrn-mb05{suffix}")
    assert (base["model"]["arch"], mfirrn["model"]["arch"]) == ("3ddfa-mb05", "mfirrn-mb05")
    assert base["out_dir"] != mfirrn["out_dir"]
    assert _without(base, "model.arch", "out_dir") == _without(mfirrn, "model.arch", "out_dir")
    if suffix == "-scratch":
        assert base["model"]["init"] is None and not base["model"]["freeze_bn"]
    if suffix == "-sgd":
        adamw = _shipped("aflw-mb05-baseline")
        assert _without(base, "optim", "out_dir") == _without(adamw, "optim", "out_dir")
        assert (base["optim"]["name"], base["optim"]["nesterov"], base["optim"]["lr"]) == ("sgd", True, 1e-3)
        assert (adamw["optim"]["name"], adamw["optim"]["lr"]) == ("adamw", 3e-5)


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown key data.rooot"):
        TrainConfig.from_dict({"data": {"rooot": "x"}})
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_yaml(tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match="precision"):
        apply_overrides(TrainConfig(), ["precision=fp8"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        TrainConfig.from_yaml(bad)


@pytest.mark.slow
def test_train_writes_loadable_checkpoints(tmp_path, data_root):
    res = train(_cfg(data_root, tmp_path / "run"))
    assert res.step == 6 and res.epoch == 2 and res.best is not None and len(res.history) == 2
    assert (tmp_path / "run" / "config.yaml").is_file()
    assert TrainConfig.from_yaml(tmp_path / "run" / "config.yaml").model.arch == TINY_ARCH
    lines = (tmp_path / "run" / "train_log.csv").read_text().splitlines()
    assert lines[0].startswith("step,epoch,lr,loss") and len(lines) == 7
    val = list(csv.DictReader(open(tmp_path / "run" / "val_log.csv")))
    assert len(val) == 2  # an MFIRRN's heads are scored alone too, in percent like the fused NME
    assert all(0 < float(r[f"nme_{h}"]) < 1000 for r in val for h in ("coarse", "medium", "fine"))
    ckpt = torch.load(res.last, weights_only=False)
    for key in ("arch", "state_dict", "stats", "convention", "optimizer", "scheduler", "rng", "sampler", "config",
                "code_version", "step", "epoch"):
        assert key in ckpt
    assert ckpt["code_version"].startswith("0.")
    net = models.load_checkpoint(res.best)
    assert net.card.convention == "v1" and not net.training
    from mfirrn.inference.predict import predict_params

    assert predict_params(net, torch.zeros(2, 3, 120, 120)).shape == (2, 62)


@pytest.mark.slow
def test_refuses_to_overwrite_and_resume_without_checkpoint(tmp_path, data_root):
    with pytest.raises(TrainError, match="nothing to resume"):
        train(_cfg(data_root, tmp_path / "r"), resume=True)
    train(_cfg(data_root, tmp_path / "r", max_steps=1))
    with pytest.raises(TrainError, match="--resume"):
        train(_cfg(data_root, tmp_path / "r", max_steps=1))


@pytest.mark.slow
@pytest.mark.parametrize("stop", [2, 4])
def test_killed_run_resumes_to_identical_weights(tmp_path, data_root, stop):
    """N=6 steps straight vs. stopped ("killed") after `stop` steps then resumed: bitwise equal weights."""
    a = train(_cfg(data_root, tmp_path / "a"))
    part = train(_cfg(data_root, tmp_path / "b", stop_after_steps=stop))
    assert part.stopped_early and part.step == stop
    b = train(_cfg(data_root, tmp_path / "b"), resume=True)
    assert b.step == a.step
    sa = torch.load(a.last, weights_only=False)
    sb = torch.load(b.last, weights_only=False)
    for k, v in sa["state_dict"].items():
        assert torch.equal(v, sb["state_dict"][k]), k
    assert sa["best_nme"] == sb["best_nme"]
    assert (tmp_path / "a" / "train_log.csv").read_text().count("\n") == (tmp_path / "b" / "train_log.csv").read_text().count("\n")



@pytest.mark.slow
def test_time_limit_stops_with_a_checkpoint_and_resumes_to_identical_weights(tmp_path, data_root):
    """stop_after_minutes: a run out of time writes its checkpoint and stops as a killed job would (a tiny
    limit: after its first step); --resume, with the limit lifted, ends where an uninterrupted run ends."""
    a = train(_cfg(data_root, tmp_path / "a"))
    part = train(_cfg(data_root, tmp_path / "b", stop_after_minutes=1e-9))
    assert part.stopped_early and part.step == 1
    assert torch.load(part.last, weights_only=False)["step"] == 1
    b = train(_cfg(data_root, tmp_path / "b", stop_after_minutes=0), resume=True)
    assert b.step == a.step and not b.stopped_early
    sa, sb = (torch.load(r.last, weights_only=False)["state_dict"] for r in (a, b))
    for k, v in sa.items():
        assert torch.equal(v, sb[k]), k
    assert "stop_after_minutes 1e-09 -> 0" in (tmp_path / "b" / "resume_log.txt").read_text()
    with pytest.raises(ConfigError, match="stop_after_minutes"):
        _cfg(data_root, tmp_path / "c", stop_after_minutes=-1).validate()

@pytest.mark.slow
def test_bf16_and_adamw_cosine(tmp_path, data_root):
    res = train(_cfg(data_root, tmp_path / "bf", precision="bf16", **{"optim.name": "adamw", "optim.schedule": "cosine",
                                                                       "optim.lr": 1e-3}, max_steps=2))
    assert res.step == 2 and res.best is not None


@pytest.mark.slow
def test_validation_on_aflw2000_dev(tmp_path, data_root, dev_root):
    root = dev_root
    res = train(_cfg(data_root, tmp_path / "v", max_steps=1, **{"val.aflw2000_root": str(root), "val.aflw2000_limit": 4}))
    assert "aflw2000_mean" in res.history[-1]
    from mfirrn.evaluation.benchmark import AFLW2000, evaluate

    result = evaluate(models.load_checkpoint(res.last), AFLW2000.load(root, limit=4))
    assert result.nme.shape == (4,)


def test_heads_in_place_recipe_changes_only_the_heads_input_and_schedule():
    """The mechanism test fine-tunes the finished aflwlp MFIRRN with one change of input (its heads see the crop
    in place) and a short schedule of its own; data, augmentation, loss and frozen BatchNorms are the recipe's."""
    run, inplace = _shipped("aflwlp-mfirrn-mb05"), _shipped("aflwlp-mfirrn-mb05-inplace")
    assert inplace["model"]["heads_in_place"] and not run["model"]["heads_in_place"]
    assert inplace["model"]["init"].endswith("aflwlp-mfirrn-mb05/last.pt")
    keys = ("model.init", "model.heads_in_place", "optim", "epochs", "max_steps", "out_dir")
    assert _without(inplace, *keys) == _without(run, *keys)
    changed = {k for k in run["optim"] if inplace["optim"][k] != run["optim"][k]}
    assert changed == {"lr", "warmup_epochs"} and inplace["optim"]["lr"] < run["optim"]["lr"]


def test_flat_heads_recipe_changes_only_the_model_and_its_data():
    """The position-keeping heads' run is the in-place recipe with another architecture, its starting point (the
    shipped MFIRRN, as 7.9 of the training experiments says), the 4 000-face build and a schedule of its own."""
    inplace, flat = _shipped("aflwlp-mfirrn-mb05-inplace"), _shipped("aflwlp-mfirrn-mb05-flat")
    assert flat["model"]["arch"] == "mfirrn-mb05-flat" and flat["model"]["init"] == "mfirrn-mb05-aflw21-distill"
    assert flat["data"]["root"] == inplace["data"]["root"] + "-4k"
    keys = ("model.arch", "model.init", "data.root", "data.val_fraction", "optim.warmup_epochs", "epochs",
            "max_steps", "out_dir")
    assert _without(flat, *keys) == _without(inplace, *keys)


def test_flat_heads_twin_differs_only_in_the_network():
    """The MobileNet twin of the position-keeping run trains on the same crops by the same recipe; only the
    network, where it starts (the shipped MobileNet) and what only an MFIRRN has differ."""
    flat, twin = _shipped("aflwlp-mfirrn-mb05-flat"), _shipped("aflwlp-mb05-baseline-4k")
    assert twin["model"]["arch"] == "3ddfa-mb05" and twin["model"]["init"] == "3ddfa-mb05-aflw21-distill"
    keys = ("model.arch", "model.init", "model.freeze_bn_except", "model.heads_in_place", "out_dir")
    assert _without(twin, *keys) == _without(flat, *keys)
    assert not twin["model"]["heads_in_place"] and not twin["model"]["freeze_bn_except"]


def test_twelve_view_pair_changes_only_the_data_the_start_and_the_rate():
    """7.11's pair continues 7.9's MFIRRN (shipped) and its twin on 12 views of every face: each recipe is its 7.9
    recipe with the new data, the new start and 3x instead of 30x for the MFIRRN's medium and fine parts; the two
    still differ only in the network."""
    keys = ("model.init", "data.root", "optim.new_lr_mult", "out_dir")
    for old, new in (("aflwlp-mfirrn-mb05-flat", "aflwlp-mfirrn-mb05-flat-v12"),
                     ("aflwlp-mb05-baseline-4k", "aflwlp-mb05-baseline-v12")):
        a, b = _shipped(old), _shipped(new)
        assert _without(a, *keys) == _without(b, *keys)
        assert b["data"]["root"] == "results/aflw21-samedef-lp12" and b["optim"]["new_lr_mult"] == 3.0
    flat, twin = _shipped("aflwlp-mfirrn-mb05-flat-v12"), _shipped("aflwlp-mb05-baseline-v12")
    assert flat["model"]["init"] == "mfirrn-mb05-flat-aflwlp-distill"
    assert twin["model"]["init"] == "runs/aflwlp-mb05-baseline-4k/last.pt"
    keys = ("model.arch", "model.init", "model.freeze_bn_except", "model.heads_in_place", "out_dir")
    assert _without(twin, *keys) == _without(flat, *keys)


def test_second_pass_pair_changes_only_the_start_and_the_order():
    """7.12's pair continues 7.11's runs with their recipes: a new start, a new seed (order, augmentations) and the
    same validation split (split_seed = 7.11's seed), nothing else."""
    keys = ("model.init", "seed", "data.split_seed", "out_dir")
    for old, new in (("aflwlp-mfirrn-mb05-flat-v12", "aflwlp-mfirrn-mb05-flat-v12b"),
                     ("aflwlp-mb05-baseline-v12", "aflwlp-mb05-baseline-v12b")):
        a, b = _shipped(old), _shipped(new)
        assert _without(a, *keys) == _without(b, *keys)
        assert b["model"]["init"] == f"runs/{old}/last.pt" and b["out_dir"] == f"runs/{new}"
        assert (a["seed"], a["data"]["split_seed"]) == (0, None) and (b["seed"], b["data"]["split_seed"]) == (1, 0)


def test_split_seed_keeps_the_validation_split_of_another_seed(tmp_path, data_root):
    from mfirrn.train.trainer import Trainer

    def val_indices(run: str, **kw):
        t = Trainer(_cfg(data_root, tmp_path / run, **kw))
        t._setup()
        return sorted(t.val_set.indices.tolist())

    first = val_indices("a", seed=0)
    assert len(first) == 6  # 20 % of 30
    assert val_indices("b", seed=1, **{"data.split_seed": 0}) == first
    assert val_indices("c", seed=1) != first  # without it, the seed moves the split
    with pytest.raises(ConfigError, match="data.split_seed"):
        _cfg(data_root, tmp_path / "bad", **{"data.split_seed": -1}).validate()


def test_heads_in_place_needs_an_mfirrn(tmp_path, data_root):
    with pytest.raises(ConfigError, match="heads_in_place.*MFIRRN"):
        train(_cfg(data_root, tmp_path / "o", **{"model.arch": "3ddfa-mb05", "model.heads_in_place": "true"}))


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli_main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.yaml" in err
    assert cli_main(["train", "--config", "smoke", "data.root=" + str(tmp_path / "nodata"), f"out_dir={tmp_path}/o"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nodata" in err
    assert cli_main(["train", "--config", "smoke", "optim.lrr=1"]) == 2
    assert "optim.lrr" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_train_runs(tmp_path, data_root):
    out = tmp_path / "cli"
    assert cli_main(["train", "--config", "smoke", f"data.root={data_root}", f"out_dir={out}", "max_steps=1",
                     "data.batch_size=4"]) == 0
    assert (out / "last.pt").is_file()


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path, data_root):
    """torchrun with 2 gloo processes; rank 0 writes the checkpoint, both ranks take every step."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "mfirrn.cli", "train", "--config", "smoke", f"data.root={data_root}", f"out_dir={out}",
           "data.batch_size=4", "epochs=1", "max_steps=2", "model.arch=mfirrn-r18-half"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = torch.load(out / "last.pt", weights_only=False)
    assert ckpt["world_size"] == 2 and ckpt["step"] == 2 and len(ckpt["rng"]) == 2
    assert models.load_checkpoint(out / "last.pt").card.convention == "v1"


def test_init_and_stats_override_flow_into_checkpoint(tmp_path, data_root, monkeypatch):
    """model.init / model.stats: weights start from 3ddfa-v2-mb05 (lr 0 keeps them), V2 stats reach the
    datasets, loss and checkpoint, the checkpoint loads with them; resuming does not re-run init."""
    import mfirrn.models.init as init_mod
    from mfirrn.geometry.params import ParamStats

    kw = {"model.arch": "3ddfa-mb05", "model.init": "3ddfa-v2-mb05", "model.stats": "stats-3ddfa-v2",
          "optim.lr": 0.0, "optim.weight_decay": 0.0, "data.augment.enabled": False, "epochs": 1}
    res = train(_cfg(data_root, tmp_path / "i", stop_after_steps=1, **kw))
    ckpt = torch.load(res.last, weights_only=False)
    v2 = ParamStats.from_asset("stats-3ddfa-v2")
    assert ckpt["config"]["model"]["init"] == "3ddfa-v2-mb05" and ckpt["init"]["copied"] > 100
    assert torch.allclose(torch.as_tensor(ckpt["stats"]["mean"]), torch.as_tensor(v2.mean))
    ref = models.create("3ddfa-v2-mb05")
    net = models.load_checkpoint(res.last)
    assert torch.equal(net.conv1.weight, ref.conv1.weight) and torch.allclose(torch.as_tensor(net.stats.std), torch.as_tensor(v2.std))
    from mfirrn.inference.predict import predict_params

    x = torch.randn(2, 3, 120, 120)
    with torch.no_grad():
        expect = v2.denormalize(net(x).double())
    assert torch.allclose(predict_params(net, x).double(), expect.to(torch.float64), rtol=1e-4, atol=1e-2)

    def no_init(*a, **k):
        raise AssertionError("init re-run on resume")

    monkeypatch.setattr(init_mod, "init_from_pretrained", no_init)
    res2 = train(_cfg(data_root, tmp_path / "i", max_steps=2, **kw), resume=True)
    assert res2.step == 2 and torch.load(res2.last, weights_only=False)["init"]["source"] == "3ddfa-v2-mb05"


@pytest.mark.slow
def test_new_lr_modules_get_their_own_learning_rate(tmp_path, data_root):
    """optim.new_lr_modules/new_lr_mult: the named heads train at lr x mult (and follow the same schedule);
    prefixes the model does not have change nothing, so a MobileNet and an MFIRRN can share the recipe."""
    from mfirrn.train.trainer import Trainer

    kw = {"optim.new_lr_modules": "[head_medium,head_fine]", "optim.new_lr_mult": 10, "optim.lr": 0.01}
    t = Trainer(_cfg(data_root, tmp_path / "n", **kw))
    t._setup()
    groups = t.optimizer.param_groups
    heads = {id(p) for n, p in t.net.named_parameters() if n.startswith(("head_medium.", "head_fine."))}
    assert len(groups) == 2 and heads and {id(p) for p in groups[1]["params"]} == heads
    assert groups[0]["lr"] * 10 == pytest.approx(groups[1]["lr"])  # warm-up scales both alike
    assert not heads & {id(p) for p in groups[0]["params"]}
    mb = Trainer(_cfg(data_root, tmp_path / "m", **{**kw, "model.arch": "3ddfa-mb05"}))
    mb._setup()
    assert len(mb.optimizer.param_groups) == 1  # no such modules: one group, as without the option
    with pytest.raises(ConfigError, match="new_lr_mult"):
        Trainer(_cfg(data_root, tmp_path / "z", **{**kw, "optim.new_lr_mult": 0}))._setup()


def test_augment_group_of_a_config_is_the_augmenters_config():
    """The YAML augment group gives the Augmenter its settings as they are (a YAML list becomes the scale tuple, the
    keys left out keep AugmentConfig's defaults), and survives the round trip through a saved config."""
    from mfirrn.data.augment import Augmenter
    from mfirrn.data.augment_config import AugmentConfig

    cfg = TrainConfig.from_dict({"data": {"root": "x", "augment": {"scale": [0.9, 1.1], "flip_prob": 0.0}}})
    aug = cfg.data.augment
    assert isinstance(aug, AugmentConfig) and aug.enabled
    assert aug.scale == (0.9, 1.1) and aug.flip_prob == 0.0
    assert aug.max_rotation_deg == AugmentConfig().max_rotation_deg
    assert TrainConfig.from_dict(cfg.to_dict()).data.augment == aug
    crop = np.full((120, 120, 3), 100, np.uint8)
    out, _ = Augmenter(aug, None)(crop, np.zeros(62, np.float32), np.random.default_rng(0))
    assert out.shape == crop.shape
    with pytest.raises(ConfigError, match="data.augment.scale"):
        TrainConfig.from_dict({"data": {"root": "x", "augment": {"scale": "wide"}}})


def test_loader_workers_get_one_opencv_thread_and_parent_setting_returns(tmp_path, data_root):
    """With loader workers the trainer runs OpenCV single-threaded (inherited by the forked workers) and
    restores the caller's setting. The caller has used OpenCV's pool first: the case in which calling
    cv2.setNumThreads inside a forked worker deadlocks. A hang here fails by the subprocess timeout."""
    script = f"""
import cv2, numpy as np, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import test_train as tt
from mfirrn.train.trainer import train
cv2.setNumThreads(2)
cv2.resize(np.zeros((1500, 1500, 3), np.uint8), (2500, 2500))
import mfirrn.data.datasets as d
orig = d.ParamsDataset.read_image
def spy(self, i):  # runs in the loader workers (and in the parent for validation)
    assert cv2.getNumThreads() == 1, f"OpenCV threads in the loader: {{cv2.getNumThreads()}}"
    return orig(self, i)
d.ParamsDataset.read_image = spy
cfg = tt._cfg({str(data_root)!r}, {str(tmp_path / 'run')!r}, **{{'data.workers': 2, 'epochs': 1}})
train(cfg)
assert cv2.getNumThreads() == 2, cv2.getNumThreads()
print('ok')
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-2000:]


def test_distillation_adds_the_teachers_prediction_as_a_weighted_target(tmp_path, data_root):
    """loss = (1 - β)·L(pred, label) + β·L(pred, teacher): a student that starts as its teacher (lr 0, frozen
    BN) has a zero teacher term, so β = 1 logs loss 0 and β = 0.5 logs half the label-only loss."""
    import csv

    arch = {"model.arch": "3ddfa-mb05"}  # one output (MFIRRN's four heads would each differ from the teacher's fused one)
    teacher = str(train(_cfg(data_root, tmp_path / "t", stop_after_steps=2, **arch)).last)  # the data's pixel convention
    kw = {**arch, "model.init": teacher, "model.freeze_bn": True, "optim.lr": 0.0, "optim.weight_decay": 0.0,
          "data.augment.enabled": False, "epochs": 1, "stop_after_steps": 2}

    def losses(name, **extra):
        res = train(_cfg(data_root, tmp_path / name, **kw, **extra))
        with open(Path(res.last).parent / "train_log.csv") as f:
            return [float(r["loss"]) for r in csv.DictReader(f)]

    alone = losses("labels")
    half = losses("half", **{"loss.distill_from": teacher, "loss.distill_weight": 0.5})
    only = losses("teacher", **{"loss.distill_from": teacher, "loss.distill_weight": 1.0})
    assert min(alone) > 1e-3
    assert half == pytest.approx([v / 2 for v in alone], rel=1e-4)
    assert max(only) < 1e-6
    # in the NHWC layout the teacher is converted too: still the student's own prediction
    assert max(losses("teacher-nhwc", channels_last="true", **{"loss.distill_from": teacher,
                                                               "loss.distill_weight": 1.0})) < 1e-6
    with pytest.raises(ConfigError, match="distill_from"):
        _cfg(data_root, tmp_path / "x", **{"loss.distill_weight": 0.5}).validate()
    with pytest.raises(ConfigError, match="distill_from"):
        train(_cfg(data_root, tmp_path / "y", **kw, **{"loss.distill_from": "no-such-model", "loss.distill_weight": 0.5}))
    with pytest.raises(ConfigError, match="convention"):  # the V2 teacher on v1-convention data
        train(_cfg(data_root, tmp_path / "z", **kw, **{"loss.distill_from": "3ddfa-v2-mb05", "loss.distill_weight": 0.5}))


@pytest.mark.slow
def test_channels_last_trains_the_same_network_and_writes_the_usual_layout(tmp_path, data_root):
    """`channels_last: true` changes the memory order only: the same steps give weights equal up to the rounding
    of other convolution kernels, the checkpoint holds contiguous tensors, and it loads for inference."""
    a = train(_cfg(data_root, tmp_path / "nchw", max_steps=2))
    b = train(_cfg(data_root, tmp_path / "nhwc", max_steps=2, channels_last="true"))
    sa = torch.load(a.last, weights_only=False)["state_dict"]
    sb = torch.load(b.last, weights_only=False)["state_dict"]
    moved = 0
    for k, v in sa.items():
        assert sb[k].is_contiguous(), k
        torch.testing.assert_close(sb[k], v, rtol=1e-4, atol=1e-5, msg=k)
        moved += int(v.dim() == 4)
    assert moved > 0  # the net has convolutions, so the layout was really changed
    init = torch.load(train(_cfg(data_root, tmp_path / "zero", max_steps=1, **{"optim.lr": 0.0})).last,
                      weights_only=False)["state_dict"]
    assert any(not torch.equal(init[k], v) for k, v in sb.items() if v.dim() == 4)  # and it did train
    net = models.load_checkpoint(b.last)
    from mfirrn.inference.predict import predict_params

    assert predict_params(net, torch.zeros(2, 3, 120, 120)).shape == (2, 62)


def test_freeze_bn_except_lets_the_named_modules_batchnorms_train(tmp_path, data_root):
    """With freeze_bn every BatchNorm keeps the running statistics it starts with (a fresh network's: mean 0,
    variance 1); freeze_bn_except=[head_fine] lets those under head_fine learn their inputs' statistics."""
    res = train(_cfg(data_root, tmp_path / "run", epochs=1, stop_after_steps=2, **{
        "model.freeze_bn": True, "model.freeze_bn_except": "[head_fine]"}))
    net = models.load(str(res.last))
    bns = {n: m for n, m in net.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    fresh = {n: bool((m.running_mean == 0).all() and (m.running_var == 1).all()) for n, m in bns.items()}
    under = [n for n in bns if n.startswith("head_fine.")]
    assert under and not any(fresh[n] for n in under), "head_fine's BatchNorms did not train"
    assert all(fresh[n] for n in bns if n not in under), "a frozen BatchNorm moved"
    with pytest.raises(ConfigError, match="set model.freeze_bn=true"):
        _cfg(data_root, tmp_path / "x", **{"model.freeze_bn_except": "[head_fine]"}).validate()
    with pytest.raises(ConfigError, match="no BatchNorm under 'head_nose'"):
        train(_cfg(data_root, tmp_path / "y", stop_after_steps=1, **{
            "model.freeze_bn": True, "model.freeze_bn_except": "[head_nose]"}))
