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
