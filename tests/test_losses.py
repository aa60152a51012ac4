"""3DDFA losses: hand-derived values, zero at equality, detached WPDC weights, gradcheck, loop twins."""

import numpy as np
import pytest
import torch

from mfirrn.geometry.bfm import MorphableModel
from mfirrn.geometry.params import ParamStats
from mfirrn.train.losses import (
    PDCLoss,
    VDCLoss,
    WPDCLoss,
    build_loss,
    multi_output_loss,
    posed_vertices_at,
    sample_vertex_rows,
    vdc_loss_reference,
    wpdc_weights,
    wpdc_weights_reference,
)


def tiny_bfm(n=90, seed=0) -> MorphableModel:
    rng = np.random.default_rng(seed)
    u = rng.normal(0, 50, 3 * n)
    w_shp = rng.normal(0, 5, (3 * n, 40))
    w_exp = rng.normal(0, 5, (3 * n, 10))
    kp = (3 * np.arange(68)[:, None] + np.arange(3)).reshape(-1)
    return MorphableModel.from_arrays(u, w_shp, w_exp, kp, np.array([[0, 1, 2]]))


def tiny_stats(seed=1) -> ParamStats:
    rng = np.random.default_rng(seed)
    mean = rng.normal(0, 1, 62)
    mean[:12] = [0.5, 0, 0, 60, 0, 0.5, 0, 60, 0, 0, 0.5, -70]
    std = rng.uniform(0.5, 1.5, 62)
    std[:12] = [0.05, 0.05, 0.05, 10, 0.05, 0.05, 0.05, 10, 0.05, 0.05, 0.05, 10]
    return ParamStats(mean, std)


@pytest.fixture
def setup():
    torch.manual_seed(0)
    return tiny_bfm(), tiny_stats()


def test_pdc_hand_value(setup):
    bfm, stats = setup
    assert PDCLoss(stats)(torch.zeros(2, 62), torch.full((2, 62), 2.0)).item() == pytest.approx(4.0)


def test_zero_at_equality(setup):
    bfm, stats = setup
    g = torch.randn(4, 62)
    for cls in (PDCLoss, VDCLoss, WPDCLoss):
        assert cls(stats, bfm)(g.clone(), g).item() == pytest.approx(0.0, abs=1e-10)


def test_vdc_translation_hand_value(setup):
    bfm, stats = setup
    g = torch.randn(3, 62, dtype=torch.float64)
    bfm = bfm.double()
    p = g.clone()
    delta = 2.5  # de-normalised x-translation error in crop pixels
    p[:, 3] += delta / stats.std[3]
    loss = VDCLoss(stats, bfm).double()(p, g)
    assert loss.item() == pytest.approx(delta ** 2 / 3, rel=1e-9)  # only x moves: mean over x, y, z


def test_vdc_ignores_z_offset(setup):
    bfm, stats = setup
    g = torch.randn(3, 62)
    p = g.clone()
    p[:, 11] += 5.0
    assert VDCLoss(stats, bfm)(p, g).item() == pytest.approx(0.0, abs=1e-8)


def test_posed_vertices_at_matches_bfm(setup):
    bfm, stats = setup
    params = stats.denormalize(torch.randn(2, 62))
    rows = sample_vertex_rows(bfm, 10)
    v = posed_vertices_at(bfm, params, rows)
    dense = bfm.posed_vertices(params)
    kp = bfm.posed_vertices(params, dense=False)
    idx = rows.reshape(-1, 3)[:, 0] // 3
    assert torch.allclose(v[:, :68], kp, atol=1e-3) and torch.allclose(v[:, 68:], dense[:, idx], atol=1e-3)


def test_resample_draws_fresh_vertices(setup):
    bfm, _ = setup
    a, b = sample_vertex_rows(bfm, 12), sample_vertex_rows(bfm, 12)
    assert a.shape == (36,) and not torch.equal(a, b)


def test_wpdc_weights_properties_and_detached(setup):
    bfm, stats = setup
    pred = torch.randn(5, 62, requires_grad=True)
    target = torch.randn(5, 62)
    w = wpdc_weights(bfm, stats.denormalize(pred), stats.denormalize(target))
    assert not w.requires_grad and w.grad_fn is None
    assert torch.all(w[:, 11] == 0) and torch.all(w >= 0) and torch.all(w.max(1).values <= 1 + 1e-6)
    # normalised by the per-sample max *before* z is zeroed (as 3DDFA): a row whose largest raw weight
    # was z-translation has max < 1
    assert torch.sum(torch.isclose(w.max(1).values, torch.ones(5))) >= 1
    # gradient of the loss = 2 w (p - g) / numel: no contribution through the weights
    crit = WPDCLoss(stats, bfm)
    rows = sample_vertex_rows(bfm, 7)
    loss = crit(pred, target, rows)
    loss.backward()
    w = wpdc_weights(bfm, stats.denormalize(pred), stats.denormalize(target), rows)
    assert torch.allclose(pred.grad, 2 * w * (pred - target).detach() / pred.numel(), atol=1e-7)


def test_wpdc_weights_match_loop_reference(setup):
    bfm, stats = setup
    pred = stats.denormalize(torch.randn(3, 62, dtype=torch.float64))
    target = stats.denormalize(torch.randn(3, 62, dtype=torch.float64))
    rows = sample_vertex_rows(bfm, 9)
    fast = wpdc_weights(bfm.double(), pred, target, rows).numpy()
    slow = wpdc_weights_reference(bfm, pred.numpy(), target.numpy(), rows.numpy())
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)


def test_vdc_matches_loop_reference(setup):
    bfm, stats = setup
    bfm = bfm.double()
    pn, gn = torch.randn(3, 62, dtype=torch.float64), torch.randn(3, 62, dtype=torch.float64)
    rows = sample_vertex_rows(bfm, 9)
    fast = VDCLoss(stats, bfm).double()(pn, gn, rows).item()
    slow = vdc_loss_reference(bfm, stats.denormalize(pn).numpy(), stats.denormalize(gn).numpy(), rows.numpy())
    assert fast == pytest.approx(slow, rel=1e-10)


@pytest.mark.parametrize("name", ["pdc", "vdc", "wpdc"])
def test_gradcheck_float64(setup, name):
    bfm, stats = setup
    bfm = bfm.double()
    crit = build_loss(name, stats, bfm).double()
    rows = sample_vertex_rows(bfm, 5)
    target = torch.randn(2, 62, dtype=torch.float64)
    pred = (target + 0.3 * torch.randn(2, 62, dtype=torch.float64)).requires_grad_()
    if name == "wpdc":  # weights are constants of the step: check the gradient with them frozen
        wfix = wpdc_weights(bfm, crit.denormalize(pred), crit.denormalize(target), rows)
        fn = lambda p: torch.mean(wfix * (p - target) ** 2)  # noqa: E731
        assert torch.allclose(torch.autograd.grad(crit(pred, target, rows), pred)[0],
                              torch.autograd.grad(fn(pred), pred)[0])
    else:
        fn = lambda p: crit(p, target, rows)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (pred,), eps=1e-6, atol=1e-5)


def test_multi_output_sums_heads(setup):
    bfm, stats = setup
    crit = WPDCLoss(stats, bfm)
    p, g = torch.randn(2, 62), torch.randn(2, 62)
    torch.manual_seed(3)
    single = multi_output_loss(crit, p, g)
    torch.manual_seed(3)
    four = multi_output_loss(crit, (p, p, p, p), g)
    assert four.item() == pytest.approx(4 * single.item(), rel=1e-6)


def test_build_loss_errors(setup):
    _, stats = setup
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("l1", stats)
    with pytest.raises(ValueError, match="MorphableModel"):
        build_loss("wpdc", stats)
    with pytest.raises(ValueError, match="pred"):
        PDCLoss(stats)(torch.zeros(2, 61), torch.zeros(2, 61))
