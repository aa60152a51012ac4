"""mfirrn.evaluation.report: the comparison table, bootstrap intervals, CED curves and exports (hand-derived cases)."""

import math

import numpy as np
import pandas as pd
import pytest

from mfirrn.evaluation import report
from mfirrn.evaluation.benchmark import BenchmarkResult
from mfirrn.evaluation.metrics import summarize_by_yaw


def _result(nme_pct, yaw, name="m"):
    nme = np.asarray(nme_pct, float) / 100
    return BenchmarkResult(name, "original", [f"i{k}" for k in range(len(nme))], np.asarray(yaw, float), nme,
                           np.zeros((len(nme), 68, 3)), summarize_by_yaw(nme, yaw))


def test_mean_of_bin_means_not_per_image_mean():
    r = _result([1, 1, 1, 1, 4, 7], [0, 10, 20, 29, 45, 80])
    df = report.comparison_table([r], published=False, date="2026-01-01")
    row = df.iloc[0]
    assert [row[c] for c in report.BIN_COLUMNS] == pytest.approx([1.0, 4.0, 7.0])
    assert row["Mean"] == pytest.approx(4.0)
    assert row["Std"] == pytest.approx(np.std([1, 4, 7]))
    assert row["per-image mean"] == pytest.approx(15 / 6)
    assert row["kind"] == "measured" and row["date"] == "2026-01-01" and "6 images" in row["split"]


def test_published_rows_are_all_there_complete_and_never_invented():
    df = report.comparison_table([], published=True).set_index("method")
    assert list(df.index) == ["CDM", "RCPR", "ESR", "SDM", "DEFA", "3DDFA (CVPR16)", "Nonlinear 3DMM (CVPR18)",
                              "DAMDNet (ICCVW19)", "MFIRRN (paper)", "3D-FAN", "3DDFA-PAMI", "PRNet (ECCV18)",
                              "2DASL", "3DDFA_V2 (ECCV20)", "SynergyNet (3DV21)", "FSA-Net"]  # FSA-Net: head pose only
    assert (df["kind"] == "published").all()
    numbers = df[[*report.BIN_COLUMNS, "Mean", "Std", *report.AFLW21_COLUMNS, *report.POSE_COLUMNS]]
    assert numbers.notna().any(axis=1).all()  # no empty published row
    a2000 = [*report.BIN_COLUMNS, "Mean", "Std"]
    # the MFIRRN table, both datasets (REFERENCE §6)
    assert df.loc["MFIRRN (paper)", a2000].tolist() == [2.841, 3.572, 4.561, 3.658, 0.705]
    assert df.loc["MFIRRN (paper)", list(report.AFLW21_COLUMNS)].tolist() == [4.321, 5.051, 5.958, 5.110, 0.670]
    assert df.loc["RCPR", list(report.AFLW21_COLUMNS)].tolist() == [5.430, 6.580, 11.530, 7.850, 3.240]
    assert df.loc["3DDFA (CVPR16)", "AFLW-21 Std"] == 0.990 and df.loc["DEFA", "Std"] == 1.169
    # "–" in the paper stays NaN, and the note says so
    assert df.loc["CDM", a2000].isna().all() and df.loc["CDM", "AFLW-21 mean"] == 12.440
    assert "no AFLW2000-3D figure" in df.loc["CDM", "note"]
    assert df.loc["Nonlinear 3DMM (CVPR18)", "Mean"] == 4.700
    assert df.loc["Nonlinear 3DMM (CVPR18)", [*report.BIN_COLUMNS, "Std", *report.AFLW21_COLUMNS]].isna().all()
    assert df.loc["DEFA", list(report.AFLW21_COLUMNS)].isna().all() and "no AFLW figure" in df.loc["DEFA", "note"]
    assert df.loc["3D-FAN", a2000[:4]].tolist() == [3.16, 3.53, 4.60, 3.76]
    assert df.loc["SynergyNet (3DV21)", "AFLW-21 mean"] == 4.06
    text = report.format_comparison(df.reset_index())
    assert "nan" not in text.lower() and "–" in text


def test_aflw21_reason_is_in_every_measured_row():
    r = _result([1, 2, 3], [0, 40, 70], name="aflw-trained")
    reason = report.aflw21_exclusion("3ddfa:/x/aflw-21pt-train/AFLW_GT_crop")
    assert reason and "AFLW pool" in reason
    df = report.comparison_table([r, _result([1, 2, 3], [0, 40, 70], name="other")], aflw21={"aflw-trained": reason})
    measured = df[df["kind"] == "measured"].set_index("method")
    assert math.isnan(measured.loc["aflw-trained", "AFLW-21 mean"]) and "AFLW pool" in measured.loc["aflw-trained", "note"]
    assert report.AFLW21_ABSENT in measured.loc["other", "note"]
    scored = report.comparison_table([r], published=False, aflw21={"aflw-trained": _result([4, 5, 6], [0, 40, 70])})
    assert scored[list(report.AFLW21_COLUMNS)].iloc[0].tolist() == pytest.approx([4, 5, 6, 5, np.std([4, 5, 6])])
    assert "AFLW-21 approximate" in scored["note"].iloc[0]
    assert not report.trained_on_aflw("300W-LP") and not report.trained_on_aflw("AFLW2000-3D")
    tex = report.to_latex(df)
    assert "AFLW pool" in tex and "\\toprule" in tex and "--" in tex


def test_bootstrap_constant_sample_has_zero_width():
    r = _result([2.0] * 5 + [3.0] * 5 + [5.0] * 5, [0] * 5 + [45] * 5 + [75] * 5)
    ci = report.bootstrap_ci(r, n=200, seed=0)
    assert ci.mean == pytest.approx((10 / 3, 10 / 3))
    assert ci.bins[2] == pytest.approx((5.0, 5.0))


def test_bootstrap_known_two_point_sample():
    """One bin with values {0, 2} (n=2): the bootstrap mean is 0, 1 or 2 with probabilities 1/4, 1/2, 1/4;
    the other bins are constant, so the mean of bin means is (m + 3 + 6) / 3 and its 95% interval is [3, 11/3]."""
    r = _result([0.0, 2.0, 3.0, 6.0], [0, 10, 45, 75])
    ci = report.bootstrap_ci(r, n=4000, seed=1)
    assert ci.bins[0] == pytest.approx((0.0, 2.0))
    assert ci.mean == pytest.approx((3.0, 11 / 3))
    again = report.bootstrap_ci(r, n=4000, seed=1)
    assert again == ci
    # the point estimate lies inside its interval on a random sample
    rng = np.random.default_rng(0)
    r2 = _result(rng.gamma(4, 1, 300), rng.uniform(-90, 90, 300))
    ci2 = report.bootstrap_ci(r2, n=500)
    assert ci2.mean[0] < r2.summary.mean < ci2.mean[1]


def test_paired_difference_by_hand():
    """Differences {-1, +1} (two items): the replicate mean is -1, 0 or +1 with probabilities 1/4, 1/2, 1/4,
    so the 95% interval is [-1, 1] and the sample does not tell the two apart; a shared offset per item
    (a hard face is hard for both) cancels in the pairs."""
    a = np.array([10.0, 2.0])
    d = report.paired_difference(a, a + np.array([-1.0, 1.0]), n=4000, seed=3)
    assert d.mean == 0.0 and d.ci == pytest.approx((-1.0, 1.0)) and (d.lower, d.higher, d.n_items) == (1, 1, 2)
    assert not d.resolved()
    rng = np.random.default_rng(0)
    hard = rng.gamma(2, 3, 200)  # per-item difficulty, much larger than the effect
    better = report.paired_difference(hard, hard - 0.1 + rng.normal(0, 0.05, 200))
    assert better.resolved() and better.ci[1] < 0 and better.lower > 190
    with pytest.raises(ValueError, match="same non-zero number"):
        report.paired_difference(np.ones(3), np.ones(2))


def test_paired_cluster_difference_resamples_whole_clusters():
    """Two faces of 50 views each, every view of the first 1 better, of the second no different: a replicate
    draws the first face twice, once or not at all (mean 1, 1/2, 0 with probabilities 1/4, 1/2, 1/4), so the 95%
    interval is [0, 1] and two faces resolve nothing; counted as 100 independent views the same differences give
    a narrow interval around 0.5. With one item per cluster it is paired_difference, draw for draw."""
    a = np.zeros(100)
    b = np.r_[np.ones(50), np.zeros(50)]
    faces = np.repeat([3, 8], 50)
    d = report.paired_cluster_difference(a, b, faces, n=4000, seed=1)
    assert d.mean == 0.5 and d.ci == pytest.approx((0.0, 1.0)) and not d.resolved()
    assert (d.lower, d.higher, d.n_items) == (0, 50, 100)
    views = report.paired_difference(a, b, n=4000, seed=1)
    assert views.resolved() and views.ci[1] - views.ci[0] < 0.4
    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, 30), rng.normal(0.2, 1, 30)
    single = report.paired_cluster_difference(x, y, np.arange(30), n=500, seed=4)
    assert single.ci == pytest.approx(report.paired_difference(x, y, n=500, seed=4).ci)
    with pytest.raises(ValueError, match="same non-zero number"):
        report.paired_cluster_difference(np.ones(3), np.ones(3), np.ones(2))


def test_ced_is_monotone_and_ends_at_one():
    v = np.random.default_rng(0).gamma(3, 1.2, 200)
    t, f = report.ced_curve(v)
    assert np.all(np.diff(f) >= 0) and f[-1] == 1.0 and f[0] == 0.0 and t[-1] >= v.max()
    t, f = report.ced_curve([1.0, 2.0, 3.0, 4.0], thresholds=np.array([0.5, 1.0, 2.5, 4.0]))
    assert f.tolist() == [0.0, 0.25, 0.5, 1.0]


def test_per_landmark_error_mean_equals_per_image_nme():
    from mfirrn.evaluation.metrics import nme

    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, (5, 68, 2))
    pred = gt + rng.normal(0, 2, gt.shape)
    e = report.per_landmark_error(pred, gt)
    assert e.shape == (68,)
    assert e.mean() == pytest.approx(nme(pred, gt).mean() * 100)


def test_exports(tmp_path):
    df = report.comparison_table([_result([1, 2, 3], [0, 40, 70])])
    paths = report.export_table(df, tmp_path)
    back = pd.read_csv(paths["csv"])
    assert list(back["method"]) == list(df["method"])
    assert paths["tex"].read_text().count("\\\\") == len(df) + 1


def test_shipped_aflw_model_says_what_it_was_trained_on():
    t = report.registered_trained_on("3ddfa-mb05-aflw21")
    assert t != "unknown" and "AFLW 21-point pool" in t and report.aflw21_exclusion(t)
    assert report.aflw21_exclusion(report.registered_trained_on("3ddfa-v2-mb05")) is None
