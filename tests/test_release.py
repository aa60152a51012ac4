"""A run's checkpoint as shipped weights: the model without its training state, loadable and identical."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mfirrn import models
from mfirrn.models.registry import CheckpointError, _read_checkpoint
from mfirrn.train.release import release_weights


@pytest.fixture
def run_checkpoint(tmp_path):
    """A checkpoint shaped like the trainer's last.pt: the model after one AdamW step and the training state."""
    torch.manual_seed(0)
    net = models.create("3ddfa-mb05", pretrained=False)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net(torch.randn(2, 3, 120, 120)).square().mean().backward()
    opt.step()
    stats = {"mean": np.linspace(-1, 1, 62).astype(np.float32), "std": np.linspace(1, 2, 62).astype(np.float32)}
    ckpt = {"arch": "3ddfa-mb05", "state_dict": net.state_dict(), "stats": stats, "convention": "v2",
            "init": {"source": "3ddfa-v2-mb05", "copied": 164}, "config": {"epochs": 4}, "code_version": "0.1.0",
            "step": 15696, "epoch": 3, "best_nme": 1.5, "history": [{"epoch": 0, "nme": 1.6}],
            "optimizer": opt.state_dict(), "scheduler": {"last_epoch": 15696}, "sampler": {"position": 7},
            "rng": [{"numpy": np.random.get_state()}], "scaler": None, "world_size": 1, "steps_per_epoch": 3924}
    path = tmp_path / "run" / "last.pt"
    path.parent.mkdir()
    torch.save(ckpt, path)
    return path, net.eval()


def test_release_keeps_the_model_and_drops_the_training_state(run_checkpoint, tmp_path):
    path, net = run_checkpoint
    out = release_weights(path, tmp_path / "weights" / "3ddfa-mb05-test.pt", trained_on="  a test pool  ")
    shipped = _read_checkpoint(out)
    assert sorted(shipped) == sorted(["arch", "state_dict", "stats", "convention", "init", "config", "code_version",
                                      "step", "trained_on", "best_val_nme"])
    assert shipped["trained_on"] == "a test pool" and shipped["best_val_nme"] == 1.5 and shipped["step"] == 15696
    assert out.stat().st_size < path.stat().st_size / 2          # AdamW's two moments stayed behind
    loaded = models.load(out)
    x = torch.randn(3, 3, 120, 120)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    np.testing.assert_array_equal(loaded.stats.mean, np.linspace(-1, 1, 62).astype(np.float32))
    assert [p.name for p in out.parent.iterdir()] == [out.name]   # no temporary file left behind


def test_release_refuses_what_is_not_a_run_checkpoint(tmp_path):
    bare = tmp_path / "bare.pt"
    torch.save({"weights": torch.zeros(3)}, bare)
    out = tmp_path / "out" / "x.pt"
    with pytest.raises(CheckpointError, match="not a workbench training checkpoint .*arch, state_dict, stats"):
        release_weights(bare, out, trained_on="x")
    assert not out.exists()


def _copy_with(path, tmp_path, name, change):
    """A second checkpoint of the same run: ``change(state_dict)`` applied to a copy of ``path``'s."""
    ckpt = _read_checkpoint(path)
    change(ckpt["state_dict"])
    ckpt["step"] += 100
    out = tmp_path / name
    torch.save(ckpt, out)
    return out


def test_average_of_two_checkpoints_is_their_midpoint(run_checkpoint, tmp_path):
    from mfirrn.train.release import average_weights

    path, net = run_checkpoint
    key = "fc.weight" if "fc.weight" in net.state_dict() else next(k for k, v in net.state_dict().items()
                                                                    if v.is_floating_point() and v.dim() == 2)

    def shift(sd):   # +1 on one weight matrix, x3 on a BatchNorm variance, +5 on a batch counter
        sd[key] += 1.0
        bn = next(k for k in sd if k.endswith("running_var"))
        sd[bn] *= 3.0
        sd[bn.replace("running_var", "num_batches_tracked")] += 5

    second = _copy_with(path, tmp_path, "later.pt", shift)
    out = average_weights([path, second], tmp_path / "avg.pt", trained_on="a test pool")
    a, b, avg = _read_checkpoint(path)["state_dict"], _read_checkpoint(second)["state_dict"], _read_checkpoint(out)
    bn = next(k for k in a if k.endswith("running_var"))
    torch.testing.assert_close(avg["state_dict"][key], a[key] + 0.5)            # (w + (w + 1)) / 2
    torch.testing.assert_close(avg["state_dict"][bn], a[bn] * 2.0)              # (v + 3v) / 2
    counter = bn.replace("running_var", "num_batches_tracked")
    assert avg["state_dict"][counter] == b[counter]                             # integers: the last one's
    assert all(torch.equal(avg["state_dict"][k], a[k]) for k in a if k not in (key, bn, counter))
    assert avg["averaged_from"] == [{"file": "run/last.pt", "step": 15696},
                                    {"file": f"{tmp_path.name}/later.pt", "step": 15796}]
    assert avg["step"] == 15796 and "best_val_nme" not in avg and "optimizer" not in avg
    net.load_state_dict(avg["state_dict"])
    x = torch.randn(2, 3, 120, 120)
    with torch.no_grad():
        assert torch.equal(models.load(out)(x), net(x))                        # loads as the averaged model


def test_average_refuses_checkpoints_of_different_models(run_checkpoint, tmp_path):
    from mfirrn.train.release import average_weights

    path, _ = run_checkpoint
    other = _read_checkpoint(path)
    other["stats"] = {"mean": other["stats"]["mean"] + 1, "std": other["stats"]["std"]}
    torch.save(other, tmp_path / "other-stats.pt")
    grown = _read_checkpoint(path)
    grown["state_dict"]["extra.weight"] = torch.zeros(2)
    torch.save(grown, tmp_path / "other-tensors.pt")
    out = tmp_path / "avg.pt"
    with pytest.raises(ValueError, match="normalises its params otherwise"):
        average_weights([path, tmp_path / "other-stats.pt"], out, trained_on="x")
    with pytest.raises(ValueError, match="another model .* or other tensors"):
        average_weights([path, tmp_path / "other-tensors.pt"], out, trained_on="x")
    with pytest.raises(ValueError, match="two or more"):
        average_weights([path], out, trained_on="x")
    assert not out.exists()
