"""MFIRRN architecture: parameter counts, released-checkpoint compatibility, jigsaw, outputs, init."""

import dataclasses
import math

import pytest
import torch

from mfirrn.models.mfirrn_net import (
    MB05,
    MB05_FLAT,
    MFIRRN,
    R18_HALF,
    R34,
    MFIRRNConfig,
    MFIRRNOutput,
    jigsaw,
    released_parameter_count,
)

TINY = MFIRRNConfig(blocks=(1, 1, 1, 1), widths=(8, 16, 32, 64), head_mid=32, head_out=16, fc_hidden=16,
                    decoder_hidden=32)


def test_parameter_counts_r34():
    released, live = released_parameter_count(R34)
    assert released == 77_585_082  # the paper code's 77.58 M
    assert live == 54_020_370  # ~23.56 M never affect an output
    assert abs((released - live) / 1e6 - 23.56) < 0.01


def test_r18_half_is_smaller():
    n = sum(p.numel() for p in MFIRRN(R18_HALF).parameters())
    assert 5e6 < n < 20e6


def test_outputs_named_tuple_and_shapes():
    m = MFIRRN(TINY).eval()
    out = m(torch.randn(3, 3, 120, 120))
    assert isinstance(out, MFIRRNOutput) and out._fields == ("coarse", "medium", "fine", "fused")
    assert all(o.shape == (3, 62) for o in out)


def test_input_shape_checked():
    with pytest.raises(ValueError, match="crops"):
        MFIRRN(TINY)(torch.randn(1, 3, 112, 112))


def test_released_checkpoint_loads_and_outputs_identical():
    torch.manual_seed(0)
    released = MFIRRN(TINY, released=True).eval()
    sd = {"module." + k: v for k, v in released.state_dict().items()}  # DataParallel-style names
    live = MFIRRN(TINY).eval()
    remapped = live.remap_state_dict(sd)
    dead = set(k[len("module."):] for k in sd) - set(remapped)
    assert dead and all(k.startswith(("encoder_fine.layer3", "encoder_fine.fusion", "encoder_medium.layer4",
                                      "encoder_medium.fusion3")) for k in dead)
    live.load_state_dict(remapped, strict=True)
    x = torch.randn(2, 3, 120, 120)
    with torch.no_grad():
        a, b = released(x), live(x)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


def test_registry_loader_uses_remap(tmp_path):
    from mfirrn.models.registry import _load_into

    released = MFIRRN(TINY, released=True)
    live = MFIRRN(TINY)
    _load_into(live, {"module." + k: v for k, v in released.state_dict().items()}, "released.pth", "tiny")
    assert torch.equal(live.head_fine.fc2.weight, released.head_fine.fc2.weight)


def test_jigsaw_permutes_blocks():
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    perm = torch.tensor([8, 7, 6, 5, 4, 3, 2, 1, 0])
    y = jigsaw(x, 3, perm)
    # block k of y is block perm[k] of x (blocks 2x2, row-major)
    blocks = lambda t: t.reshape(3, 2, 3, 2).permute(0, 2, 1, 3).reshape(9, 2, 2)  # noqa: E731
    assert torch.equal(blocks(y[0, 0]), blocks(x[0, 0])[perm])
    inv = torch.argsort(perm)
    assert torch.equal(jigsaw(y, 3, inv), x)
    assert jigsaw(x, 2, torch.arange(4)) is x
    with pytest.raises(ValueError, match="divisible"):
        jigsaw(torch.zeros(1, 1, 7, 7), 2, torch.arange(4))


def test_eval_is_deterministic_training_is_seeded():
    m = MFIRRN(TINY).eval()
    x = torch.randn(2, 3, 120, 120)
    with torch.no_grad():
        assert torch.equal(m(x).fused, m(x).fused)
        m.train()
        torch.manual_seed(5)
        a = m(x).fused
        torch.manual_seed(5)
        b = m(x).fused
        torch.manual_seed(6)
        c = m(x).fused
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_eval_jigsaw_modes():
    x = torch.randn(2, 3, 120, 120)
    base = MFIRRN(TINY).eval()
    fixed = MFIRRN(TINY, jigsaw_eval="fixed", jigsaw_seed=3).eval()
    rand = MFIRRN(TINY, jigsaw_eval="random", generator=torch.Generator().manual_seed(0)).eval()
    for m in (fixed, rand):
        m.load_state_dict(base.state_dict())
    with torch.no_grad():
        f0 = base(x).fused
        assert torch.equal(fixed(x).fused, fixed(x).fused)
        assert not torch.equal(fixed(x).fused, f0)
        assert not torch.equal(rand(x).fused, rand(x).fused)
    with pytest.raises(ValueError):
        MFIRRN(TINY, jigsaw_eval="shuffle")


def _bn_eval(m: MFIRRN) -> MFIRRN:
    """Training mode with every BatchNorm in eval mode: the forward differs from eval only by the jigsaw."""
    m.train()
    for mod in m.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.eval()
    return m


def test_heads_in_place_see_the_crop_as_it_is():
    """With ``heads_in_place`` the medium and fine heads of a training forward are exactly the eval ones (the
    crop in place) while the coarse output still gets the jigsawed features; without it they are not."""
    cfg = dataclasses.replace(TINY, dropout=0.0)
    x = torch.randn(2, 3, 120, 120)
    inplace = MFIRRN(cfg, heads_in_place=True)
    jig = MFIRRN(cfg)
    jig.load_state_dict(inplace.state_dict())
    with torch.no_grad():
        ref = inplace.eval()(x)
        assert all(torch.equal(a, b) for a, b in zip(ref, jig.eval()(x)))  # one model in evaluation
        torch.manual_seed(1)
        a = _bn_eval(inplace)(x)
        torch.manual_seed(1)
        b = _bn_eval(jig)(x)
    assert torch.equal(a.medium, ref.medium) and torch.equal(a.fine, ref.fine)
    assert not torch.equal(b.medium, ref.medium) and not torch.equal(b.fine, ref.fine)
    assert torch.equal(a.coarse, b.coarse) and not torch.equal(a.coarse, ref.coarse)  # same jigsaw features
    assert not torch.equal(a.fused, b.fused)  # the decoder fuses the in-place heads


def test_init_follows_reference():
    m = MFIRRN(TINY)
    conv = m.head_fine.conv[0][0]
    n = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels
    assert abs(conv.weight.std().item() - math.sqrt(2 / n)) < 0.1 * math.sqrt(2 / n)
    bn = m.encoder_coarse.bn1
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    assert m.encoder_coarse.fusion2.conv1[1].momentum == 0.01


@pytest.mark.parametrize("name", ["mfirrn-r18-half", "3ddfa-mb05"])
def test_trainable_models_forward_backward(name):
    from mfirrn.models import get_card

    card = get_card(name)
    assert card.convention == "v1" and card.stats_asset == "stats-3ddfa-v1"
    net = card.builder().train()
    out = net(torch.randn(2, 3, 120, 120))
    loss = sum(o.pow(2).mean() for o in out) if isinstance(out, tuple) else out.pow(2).mean()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad and p.dim() > 1
               and "fc_lm" not in str(p.shape))


def test_registered_r34_card():
    from mfirrn.models import get_card

    card = get_card("mfirrn-r34")
    assert card.convention == "v1" and card.stats_asset == "stats-3ddfa-v1" and not card.has_pretrained


def test_predict_params_uses_fused():
    import numpy as np

    from mfirrn.geometry.params import ParamStats
    from mfirrn.inference.predict import predict_params

    m = MFIRRN(TINY).eval()
    m.stats = ParamStats(np.zeros(62), np.ones(62))
    x = torch.randn(2, 3, 120, 120)
    with torch.no_grad():
        assert torch.allclose(predict_params(m, x), m(x).fused)


def test_mobilenet_branches_keep_3ddfa_names_and_stage_sizes():
    from mfirrn.models.mfirrn_net import MB05, mobilenet_stage_widths
    from mfirrn.models.mobilenet import MobileNetV1

    assert mobilenet_stage_widths(0.5) == MB05.widths == (64, 128, 256, 512)
    m = MFIRRN(MB05).eval()
    ref = MobileNetV1(widen_factor=0.5).state_dict()
    coarse = {k: v.shape for k, v in m.encoder_coarse.state_dict().items() if not k.startswith("fusion")}
    assert coarse == {k: v.shape for k, v in ref.items() if not k.startswith("fc_")}
    assert set(k.split(".")[0] for k in m.encoder_fine.state_dict()) == {"conv1", "bn1", "dw2_1", "dw2_2", "dw3_1", "dw3_2"}
    c = m.encoder_coarse
    x = torch.randn(1, 3, 120, 120)
    with torch.no_grad():
        s = [c.stem(x)]
        for i in range(4):
            s.append(getattr(c, f"layer{i + 1}")(s[-1]))
    assert [tuple(t.shape[1:]) for t in s] == [(32, 60, 60), (64, 30, 30), (128, 15, 15), (256, 8, 8), (512, 4, 4)]
    s1 = MFIRRNConfig(backbone="mobilenet", widen_factor=0.5, widths=(64, 128, 256, 512), stage4_stride=1)
    assert MFIRRN(s1).encoder_coarse.dw5_6.conv_dw.stride == (1, 1)


def test_mobilenet_config_checked():
    with pytest.raises(ValueError, match="stage widths"):
        MFIRRNConfig(backbone="mobilenet", widen_factor=1.0, widths=(64, 128, 256, 512))
    with pytest.raises(ValueError, match="backbone"):
        MFIRRNConfig(backbone="vgg")
    with pytest.raises(ValueError, match="stage4_stride"):
        MFIRRNConfig(stage4_stride=2)


def test_mfirrn_mb05_card_forward_backward():
    from mfirrn.models import get_card

    card = get_card("mfirrn-mb05")
    assert card.convention == "v2" and card.stats_asset == "stats-3ddfa-v2" and not card.has_pretrained
    net = card.builder().train()
    assert 1e6 < sum(p.numel() for p in net.parameters()) < 4e6
    out = net(torch.randn(2, 3, 120, 120))
    assert all(o.shape == (2, 62) for o in out)
    sum(o.pow(2).mean() for o in out).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_the_light_list_of_outputs_is_the_models():
    # `mfirrn benchmark --help` shows mfirrn.io.defaults.HEAD_OUTPUTS without importing the model (PyTorch)
    from mfirrn.io.defaults import HEAD_OUTPUTS
    from mfirrn.models.mfirrn_net import MFIRRNOutput

    assert HEAD_OUTPUTS[0] == "fused" and sorted(HEAD_OUTPUTS) == sorted(MFIRRNOutput._fields)


def test_flat_heads_know_where_each_cell_is():
    """Moving a feature to another cell of a head's map (away from the border, where the 3x3 conv pads) leaves an
    average-pooled head's output unchanged and changes a flattened one's; the flattened heads read C x side x side features, and nothing else differs."""
    avg, flat = MFIRRN(MB05).eval(), MFIRRN(MB05_FLAT).eval()
    assert flat.head_fine.fc1.in_features == MB05.head_out * 15 * 15
    assert flat.head_medium.fc1.in_features == MB05.head_out * 8 * 8
    assert flat.head_coarse.fc1.in_features == avg.head_coarse.fc1.in_features
    diff = {k for k, v in flat.state_dict().items() if v.shape != avg.state_dict()[k].shape}
    assert diff == {"head_fine.fc1.weight", "head_medium.fc1.weight"}
    with torch.no_grad():
        for head, side in ((avg.head_fine, 15), (flat.head_fine, 15), (avg.head_medium, 8), (flat.head_medium, 8)):
            x = torch.zeros(2, head.conv[0][0].in_channels, side, side)
            moved = x.clone()
            x[..., 2, 2] = moved[..., side - 3, side - 3] = torch.randn(2, x.shape[1])  # one feature, two places
            same = torch.allclose(head(x), head(moved), atol=1e-5)
            assert same == (head.fc1.in_features == MB05.head_out), head
    with pytest.raises(ValueError, match="head_pool"):
        dataclasses.replace(MB05, head_pool="max")
