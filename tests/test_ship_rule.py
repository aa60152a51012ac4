"""The ship rule (fixed before scoring) and the head ablation's paired comparisons."""

import numpy as np
import pytest

from mfirrn.evaluation.report import paired_bin_mean_difference
from mfirrn.evaluation.ship_rule import SHIP_RULE, apply_ship_rule


def _sets(shift: dict, n: int = 300):
    rng = np.random.default_rng(0)
    yaw = np.linspace(-89, 89, n)
    out = {}
    for name in SHIP_RULE:
        ref = 3 + rng.random(n)
        cand = ref + shift.get(name, -0.5)
        out[name] = (ref, cand, yaw if name.startswith("dev-") and "photos" not in name else None)
    return out


def test_a_candidate_better_everywhere_ships():
    d = apply_ship_rule(_sets({}), candidate="c", reference="r", n=200)
    assert d.ship and all(c.passed for c in d.checks)
    assert [c.set for c in d.checks] == list(SHIP_RULE)
    assert all(c.difference.mean == pytest.approx(-0.5) for c in d.checks)
    assert "SHIP" in d.table() and d.table().count("| yes |") == 5


@pytest.mark.parametrize("name, shift, noise", [
    ("dev-original", -0.01, 1.0),          # better on average, but +-1 per image: the split cannot resolve it
    ("dev-reannotated", +0.2, 0.0),        # worse
    ("dev-photos-original", 0.0, 0.0),     # a tie is not better
    ("faces-68", +0.1, 0.0),               # a resolved loss on faces-68
])
def test_one_failed_criterion_blocks_shipping(name, shift, noise):
    sets = _sets({})
    ref, _, yaw = sets[name]
    cand = ref + shift + noise * np.resize([1.0, -1.0], len(ref))
    sets[name] = (ref, cand, yaw)
    d = apply_ship_rule(sets, n=500)
    assert not d.ship and [c.set for c in d.checks if not c.passed] == [name]


def test_faces68_only_needs_no_resolved_loss():
    sets = _sets({})
    ref, _, _ = sets["faces-68"]
    sets["faces-68"] = (ref, ref + 0.02 + np.random.default_rng(2).standard_normal(len(ref)), None)
    assert apply_ship_rule(sets, n=500).ship


def test_the_rule_needs_all_five_sets_and_the_dev_yaw():
    sets = _sets({})
    del sets["faces-68"]
    with pytest.raises(ValueError, match="missing: faces-68"):
        apply_ship_rule(sets)
    sets = _sets({})
    sets["dev-original"] = sets["dev-original"][:2] + (None,)
    with pytest.raises(ValueError, match="yaw"):
        apply_ship_rule(sets)


def test_bin_mean_difference_weights_bins_equally():
    # bin 0 has 3 images improved by 1, bin 2 one image worse by 2: per-image mean -0.25, bin mean (-1 + 2) / 2
    a = np.array([2.0, 2.0, 2.0, 2.0])
    b = np.array([1.0, 1.0, 1.0, 4.0])
    d = paired_bin_mean_difference(a, b, np.array([0.0, 5.0, -10.0, 75.0]), n=100)
    assert d.mean == pytest.approx(0.5) and d.ci == pytest.approx((0.5, 0.5))
    assert (d.lower, d.higher) == (3, 1)
    with pytest.raises(ValueError, match="same non-zero"):
        paired_bin_mean_difference(a, b[:3], np.zeros(4))
