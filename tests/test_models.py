"""Model registry, pretrained loading and checkpoint errors."""

from pathlib import Path

import numpy as np
import pytest
import torch

from mfirrn import models
from mfirrn.models import CheckpointError


def test_registry_lists_the_pretrained_baseline():
    assert "3ddfa-v2-mb05" in models.available(pretrained=True)
    assert {"3ddfa-mb1", "3ddfa-mb05"} <= set(models.available())
    with pytest.raises(KeyError, match="unknown model 'nope'; use one of "):
        models.create("nope")


@pytest.mark.parametrize("name", ["3ddfa-mb05", "3ddfa-mb1", "3ddfa-v2-mb05"])
def test_every_mobilenet_maps_crops_to_62_params(name):
    m = models.create(name, pretrained=name == "3ddfa-v2-mb05")
    out = m(torch.zeros(2, 3, 120, 120))
    assert out.shape == (2, 62) and m.card.convention in ("v1", "v2") and m.stats.mean.shape == (62,)


def test_mb05_pretrained_is_v2_and_deterministic(mb05):
    assert mb05.card.convention == "v2" and mb05.stats.name == "stats-3ddfa-v2"
    x = torch.randn(3, 3, 120, 120)
    torch.testing.assert_close(mb05(x), mb05(x))


def test_load_checkpoint_round_trip_and_errors(tmp_path, mb05):
    good = tmp_path / "good.pth"
    torch.save({"arch": "3ddfa-v2-mb05", "state_dict": mb05.state_dict(), "convention": "v2",
                "stats": {"mean": mb05.stats.mean, "std": mb05.stats.std}}, good)
    m = models.load_checkpoint(good)
    x = torch.randn(2, 3, 120, 120)
    torch.testing.assert_close(m(x), mb05(x))
    # two runs' best.pt get different names (tables, --compare and reports key on them)
    for run in ("run-a", "run-b"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "best.pt").write_bytes(good.read_bytes())
    names = {models.load_checkpoint(tmp_path / r / "best.pt").card.name for r in ("run-a", "run-b")}
    assert names == {"3ddfa-v2-mb05@run-a/best.pt", "3ddfa-v2-mb05@run-b/best.pt"}
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in mb05.state_dict().items()}}, foreign)
    with pytest.raises(CheckpointError, match="does not name its architecture; pass --model"):
        models.load_checkpoint(foreign)
    assert models.load_checkpoint(foreign, model="3ddfa-v2-mb05").card.convention == "v2"
    with pytest.raises(CheckpointError, match="does not fit model 3ddfa-mb1"):
        models.load_checkpoint(foreign, model="3ddfa-mb1")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch file"):
        models.load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="does not exist"):
        models.load_checkpoint(tmp_path / "missing.pth")


def test_v1_fc_head_names_are_accepted():
    m = models.create("3ddfa-mb05", pretrained=False)
    sd = {("fc" + k[len("fc_param"):] if k.startswith("fc_param") else k): v for k, v in m.state_dict().items()}
    from mfirrn.models.registry import _load_into

    _load_into(m, sd, "v1-style", "3ddfa-mb05")


def test_shipped_project_model_loads_with_its_stats_and_convention():
    m = models.create("3ddfa-mb05-aflw21")
    assert m.card.convention == "v2" and m.stats.name == "stats-3ddfa-v2"
    assert "3ddfa-mb05-aflw21" in models.available(pretrained=True)
    assert m(torch.zeros(1, 3, 120, 120)).shape == (1, 62)


def test_shipped_mfirrn_loads_by_name_and_its_architecture_points_to_it():
    m = models.create("mfirrn-mb05-aflw21")
    assert m.card.convention == "v2" and m.stats.name == "stats-3ddfa-v2"
    ckpt = torch.load(m.card.weights_path, map_location="cpu", weights_only=False)
    np.testing.assert_allclose(ckpt["stats"]["mean"], m.stats.mean, rtol=1e-6)  # trained with the card's stats
    assert "aflw-21pt-train" in ckpt["trained_on"] and ckpt["arch"] == "mfirrn-mb05"
    assert m(torch.zeros(1, 3, 120, 120)).fused.shape == (1, 62)
    with pytest.raises(models.CheckpointError, match="ship as mfirrn-mb05-aflw21"):
        models.create("mfirrn-mb05")


@pytest.mark.parametrize("name", ["3ddfa-mb05-aflw21", "3ddfa-mb05-aflw21-distill", "mfirrn-mb05-aflw21",
                                  "mfirrn-mb05-aflw21-distill", "mfirrn-mb05-flat-aflwlp-distill",
                                  "mfirrn-mb05-flat-aflwlp12-distill"])
def test_shipped_aflw_models_are_marked_in_reports(name):
    """Every table built by mfirrn.evaluation.report names the AFLW pool for these models and refuses AFLW-21."""
    from mfirrn.evaluation.report import load_model_entry

    entry = load_model_entry(name)
    assert "aflw-21pt-train" in entry.trained_on and entry.aflw21_exclusion is not None


def test_shipped_mfirrn_dev_split_numbers(dev_root, bfm):
    """docs/models.md's numbers for the shipped MFIRRN (original GT; fp32 weights: fp16 moves the mean by 0.016)."""
    from mfirrn.evaluation.benchmark import AFLW2000, evaluate

    s = evaluate(models.create("mfirrn-mb05-aflw21"), AFLW2000.load(dev_root), bfm=bfm).summary
    assert s.bins == pytest.approx([2.792, 3.470, 4.461], abs=0.005)
    assert s.mean == pytest.approx(3.574, abs=0.005)


def test_shipped_project_model_dev_split_numbers(dev_root, bfm):
    """The README's table for the shipped fine-tuned model (original GT)."""
    from mfirrn.evaluation.benchmark import AFLW2000, evaluate

    s = evaluate(models.create("3ddfa-mb05-aflw21"), AFLW2000.load(dev_root), bfm=bfm).summary
    assert s.bins == pytest.approx([2.700, 3.432, 4.472], abs=0.005)
    assert s.mean == pytest.approx(3.535, abs=0.005)


@pytest.mark.parametrize("name, arch, labels, bins, mean, reannotated_mean", [
    ("3ddfa-mb05-aflw21-distill", "3ddfa-mb05", "aflw-21pt-train", [2.812, 3.515, 4.794], 3.707, 3.010),
    ("mfirrn-mb05-aflw21-distill", "mfirrn-mb05", "same-definition", [2.782, 3.565, 4.952], 3.766, 3.012),
    ("mfirrn-mb05-flat-aflwlp-distill", "mfirrn-mb05-flat", "same-definition", [2.763, 3.508, 4.883], 3.718, 2.934),
    ("mfirrn-mb05-flat-aflwlp12-distill", "mfirrn-mb05-flat", "same-definition", [2.741, 3.513, 4.800], 3.685, 2.913),
])
def test_shipped_distilled_models_score_as_documented(dev_root, bfm, name, arch, labels, bins, mean,
                                                      reannotated_mean):
    """docs/models.md's numbers for the distilled models (MFIRRN: its fused output) on both dev-split GTs, and
    their recipe: the AFLW pool's labels (the MFIRRN's from the same-definition points), teacher weight 0.5."""
    from mfirrn.evaluation.benchmark import AFLW2000, evaluate

    m = models.create(name)
    assert m.card.convention == "v2" and m.stats.name == "stats-3ddfa-v2"
    ckpt = torch.load(m.card.weights_path, map_location="cpu", weights_only=False)
    np.testing.assert_allclose(ckpt["stats"]["mean"], m.stats.mean, rtol=1e-6)
    assert ckpt["arch"] == arch and type(m) is type(models.create(arch, pretrained=False))
    assert labels in ckpt["trained_on"] and ckpt["config"]["loss"]["distill_weight"] == 0.5
    original = evaluate(m, AFLW2000.load(dev_root), bfm=bfm).summary
    assert original.bins == pytest.approx(bins, abs=0.005)
    assert original.mean == pytest.approx(mean, abs=0.005)
    reannotated = evaluate(m, AFLW2000.load(dev_root, gt="reannotated"), bfm=bfm).summary
    assert reannotated.mean == pytest.approx(reannotated_mean, abs=0.005)


def test_shipped_weights_are_found_in_the_checkout():
    from mfirrn.inference.verify import DEFAULT_HEAD_PATH
    from mfirrn.io.assets import project_weights_dir

    weights = project_weights_dir()
    assert weights == Path(models.__file__).resolve().parents[2] / "data" / "weights"  # the tests run in a checkout
    shipped = [Path(models.get_card(n).weights_path) for n in models.available() if models.get_card(n).weights_path]
    assert shipped and all(p.is_file() and p.parent == weights for p in [*shipped, DEFAULT_HEAD_PATH])


@pytest.mark.slow
def test_a_wheel_carries_the_shipped_weights(tmp_path):
    # a wheel (pip install on the nodes of a Ray cluster) has no checkout: the build copies data/weights in
    import subprocess
    import sys
    import zipfile

    root = Path(models.__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(root), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("mfirrn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"mfirrn/models/weights/{p.name}" for p in (root / "data" / "weights").iterdir()}
    assert expected and expected <= names
