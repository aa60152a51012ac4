"""init_from_pretrained: MobileNetV1 and MFIRRN-MobileNet targets start from 3DDFA_V2's mb05."""

import pytest
import torch

from mfirrn import models
from mfirrn.models.init import init_from_pretrained


@pytest.fixture(scope="module")
def mb05():
    return models.create("3ddfa-v2-mb05")


@pytest.fixture(scope="module")
def mfirrn_mb05():
    net = models.create("mfirrn-mb05", pretrained=False)
    return net, init_from_pretrained(net, "3ddfa-v2-mb05")


def test_mobilenet_target_reproduces_mb05_exactly(mb05):
    net = models.create("3ddfa-mb05", pretrained=False)
    s = init_from_pretrained(net, "3ddfa-v2-mb05")
    assert s["copied"] == len(net.state_dict()) and not s["skipped"]
    assert s["unused"] == ["fc_lm.bias", "fc_lm.weight"]
    x = torch.randn(3, 3, 120, 120)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), mb05(x))


def test_checkpoint_path_source(tmp_path, mb05):
    path = tmp_path / "mb05.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in mb05.state_dict().items()}}, path)
    net = models.create("3ddfa-mb05", pretrained=False)
    assert init_from_pretrained(net, str(path))["copied"] == len(net.state_dict())
    with pytest.raises(ValueError, match="neither a registered model"):
        init_from_pretrained(net, str(tmp_path / "none.pth"))


def test_same_architecture_checkpoint_is_copied_as_it_is(tmp_path, mfirrn_mb05):
    """An MFIRRN-MobileNet checkpoint of a trained run starts a new one unchanged (no MobileNetV1 construction)."""
    net, _ = mfirrn_mb05
    trained = {k: v + 0.01 if v.is_floating_point() else v for k, v in net.state_dict().items()}
    path = tmp_path / "run.pt"
    torch.save({"state_dict": trained}, path)
    target = models.create("mfirrn-mb05", pretrained=False)
    s = init_from_pretrained(target, str(path))
    assert s["copied"] == len(trained) and not s["skipped"] and not s["unused"] and s["initialised"] == 0
    assert all(torch.equal(v, trained[k]) for k, v in target.state_dict().items())


def test_flat_heads_start_from_a_trained_mfirrn(tmp_path, mfirrn_mb05):
    """mfirrn-mb05-flat from a trained mfirrn-mb05: everything that fits is copied; the heads whose fc1 changed
    shape predict the mean (0) and the decoder passes the coarse prediction through, so in eval the fused output
    is the source's coarse output exactly."""
    net, _ = mfirrn_mb05
    trained = {k: v + 0.01 if v.is_floating_point() else v for k, v in net.state_dict().items()}
    path = tmp_path / "run.pt"
    torch.save({"state_dict": trained}, path)
    source = models.create("mfirrn-mb05", pretrained=False)
    source.load_state_dict(trained)
    target = models.create("mfirrn-mb05-flat", pretrained=False)
    s = init_from_pretrained(target, str(path))
    assert sorted(s["skipped"]) == ["head_fine.fc1.weight", "head_medium.fc1.weight"]
    assert target.head_fine.fc1.in_features == 64 * 15 * 15 and target.head_medium.fc1.in_features == 64 * 8 * 8
    assert torch.equal(target.head_fine.conv[0][0].weight, trained["head_fine.conv.0.0.weight"])
    assert s["unused"] == sorted(k for k in trained if k.startswith("decoder.")) + [
        "head_fine.fc1.weight", "head_fine.fc2.bias", "head_fine.fc2.weight",
        "head_medium.fc1.weight", "head_medium.fc2.bias", "head_medium.fc2.weight"]
    x = torch.randn(3, 3, 120, 120)
    with torch.no_grad():
        out, ref = target.eval()(x), source.eval()(x)
    assert torch.equal(out.coarse, ref.coarse) and torch.equal(out.medium, torch.zeros_like(out.medium))
    assert torch.allclose(out.fused, ref.coarse, atol=1e-5) and not torch.allclose(ref.fused, ref.coarse, atol=1e-3)


def test_mfirrn_mb05_branches_get_backbone(mfirrn_mb05, mb05):
    net, s = mfirrn_mb05
    assert s["unused"] == ["fc_lm.bias", "fc_lm.weight"] and not s["notes"]
    for b in ("encoder_coarse", "encoder_medium", "encoder_fine"):
        assert torch.equal(getattr(net, b).dw3_2.conv_sep.weight, mb05.dw3_2.conv_sep.weight)
    assert torch.equal(net.encoder_coarse.dw6.bn_sep.running_var, mb05.dw6.bn_sep.running_var)
    assert not hasattr(net.encoder_fine, "dw4_1") and not hasattr(net.encoder_medium, "dw5_1")
    # left random: the fine/medium heads' conv and fc1, the extra fusion-middle channels (none in MB05), SE fc1
    assert all(k.startswith(("head_fine.", "head_medium.")) or ".se.fc1." in k for k in s["skipped"])


def test_mfirrn_mb05_fused_equals_mb05_after_init(mfirrn_mb05, mb05):
    net, _ = mfirrn_mb05
    x = torch.randn(4, 3, 120, 120)
    with torch.no_grad():
        out = net.eval()(x)
        ref = mb05(x)
    assert torch.allclose(out.coarse, ref, atol=1e-4) and torch.allclose(out.fused, ref, atol=1e-4)
    assert torch.equal(out.medium, torch.zeros_like(out.medium))  # medium/fine heads start at the mean params
    # fusion blocks are the identity on their own branch in eval
    c, f = net.encoder_coarse, net.encoder_fine
    with torch.no_grad():
        a2 = c.layer2(c.layer1(c.stem(x)))
        assert torch.allclose(c.fusion2(a2, f.layer2(f.layer1(f.stem(x)))), a2, atol=1e-5)


def test_mfirrn_mb05_train_mode_coarse_close_to_mb05(mfirrn_mb05, mb05, dev_root):
    """In training mode (batch-statistics BN) the coarse head still follows mb05 (measured mean |diff| 0.014,
    vs 0.12 between mb05's own train and eval modes): the fusion BNs undo their batch normalisation
    (ReLU-Gaussian moments) and MB05 has no dropout. The fused output does NOT: the decoder's BN1d
    normalises the 62 coarse predictions by their batch std (measured mean |diff| 0.51)."""
    net, _ = mfirrn_mb05
    from mfirrn.evaluation.benchmark import AFLW2000, crops_to_tensor

    x = crops_to_tensor(AFLW2000.load(dev_root, limit=32).crops)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    ref_state = {k: v.clone() for k, v in mb05.state_dict().items()}
    with torch.no_grad():
        tr = net.train()(x).coarse
        ref = mb05.train()(x)
    net.load_state_dict(state)  # undo the BN running-stat updates
    mb05.load_state_dict(ref_state)
    net.eval(), mb05.eval()
    assert (tr - ref).abs().mean() < 0.05


def test_mfirrn_mb05_nme_after_init_matches_mb05(mfirrn_mb05, mb05, dev_root):
    """64 AFLW2000-3D dev crops, un-shuffled eval: mb05 3.3011 % per-image NME, mfirrn-mb05 after init 3.3011 %
    (yaw-bin mean 4.0183 both; with stage4_stride=1 the same init would give 7.80 %)."""
    from mfirrn.evaluation.benchmark import AFLW2000, evaluate

    data = AFLW2000.load(dev_root, limit=64)
    a = evaluate(mb05, data).summary.per_image_mean
    b = evaluate(mfirrn_mb05[0], data).summary.per_image_mean
    assert abs(a - b) < 0.01, (a, b)


def test_benchmark_scores_each_head(mfirrn_mb05, mb05, dev_root, capsys):
    """``output=`` scores one head of an MFIRRN model: after init the coarse head is mb05 exactly, and the
    medium and fine heads (output layers started at zero) predict the mean face, far worse."""
    import numpy as np

    from mfirrn.cli import main
    from mfirrn.evaluation.benchmark import AFLW2000, evaluate

    data = AFLW2000.load(dev_root, limit=32)
    ref = evaluate(mb05, data).nme
    np.testing.assert_allclose(evaluate(mfirrn_mb05[0], data, output="coarse").nme, ref, atol=1e-4)
    for head in ("medium", "fine"):
        assert evaluate(mfirrn_mb05[0], data, output=head).nme.mean() > 2 * ref.mean()
    with pytest.raises(ValueError, match="single output"):
        evaluate(mb05, data, output="coarse")
    with pytest.raises(ValueError, match="output must be one of"):
        evaluate(mb05, data, output="middle")
    assert main(["benchmark", "--model", "3ddfa-v2-mb05", "--data-root", str(dev_root), "--limit", "8",
                 "--output", "fine"]) == 2
    assert "single output" in capsys.readouterr().err
