"""AFLW2000-3D benchmark: the mb05 reference on the dev split (REFERENCE §3) and the CLI outputs."""

import csv
import json
import re

import numpy as np
import pytest

from mfirrn.cli import main
from mfirrn.evaluation.benchmark import AFLW2000, DatasetError, evaluate, resolve_aflw2000_root


@pytest.mark.parametrize("gt, bins, mean", [
    ("original", [2.918, 3.658, 4.998], 3.858),
    ("reannotated", [2.202, 2.827, 4.068], 3.032),
])
def test_mb05_reproduces_the_reference_on_the_dev_split(dev_root, mb05, bfm, gt, bins, mean):
    data = AFLW2000.load(dev_root, gt=gt)
    if len(data.names) != 500:
        from conftest import missing_data

        missing_data(f"the reference numbers are for the 500-image dev split; {dev_root} holds {len(data.names)} images")
    result = evaluate(mb05, data, bfm=bfm)
    assert result.summary.bins == pytest.approx(bins, abs=0.005)
    assert result.summary.mean == pytest.approx(mean, abs=0.005)
    assert sum(result.summary.counts) == 500


def test_wrong_convention_is_measurably_worse(dev_root, mb05, bfm):
    """The pixel convention belongs to the checkpoint: v1 on a V2 model costs ~0.1 NME (REFERENCE §1)."""
    import copy
    from dataclasses import replace

    data = AFLW2000.load(dev_root)
    wrong = copy.copy(mb05)
    wrong.card = replace(mb05.card, convention="v1")
    right_mean = evaluate(mb05, data, bfm=bfm).summary.mean
    assert evaluate(wrong, data, bfm=bfm).summary.mean > right_mean + 0.05


def test_cli_writes_summary_and_per_image(dev_root, tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["benchmark", "--model", "3ddfa-v2-mb05", "--data-root", str(dev_root), "--limit", "40",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[0,30]" in printed and "3ddfa-v2-mb05" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert {"bins", "mean", "std", "per_image_mean", "counts", "model", "gt"} <= set(summary)
    assert summary["gt"] == "original" and sum(summary["counts"]) == 40
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert len(rows) == 40 and set(rows[0]) == {"image", "yaw", "nme"}
    assert np.mean([float(r["nme"]) for r in rows]) == pytest.approx(summary["per_image_mean"], abs=1e-4)


def test_data_root_forms_and_errors(dev_root, tmp_path, capsys):
    assert resolve_aflw2000_root(dev_root) == resolve_aflw2000_root(dev_root / "test.data")
    with pytest.raises(DatasetError, match="pass --data-root"):
        resolve_aflw2000_root(tmp_path)
    assert main(["benchmark", "--model", "3ddfa-v2-mb05", "--data-root", str(tmp_path)]) == 2
    assert "no AFLW2000-3D benchmark data" in capsys.readouterr().err
    assert main(["benchmark", "--model", "nope", "--data-root", str(dev_root)]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main(["benchmark", "--model", "mfirrn-r34", "--data-root", str(dev_root)]) == 2
    err = capsys.readouterr().err
    assert "no pretrained weights" in err and "--checkpoint" in err and "pretrained=" not in err
    assert main(["benchmark", "--compare", "3ddfa-v2-mb05", "mfirrn-r34", "--data-root", str(dev_root)]) == 2
    assert "--checkpoint FILE" in capsys.readouterr().err


def test_defaults_model_and_data_like_reconstruct(dev_root, monkeypatch, capsys):
    """No --model: the model `reconstruct` uses; no --data-root: the documented lookup ($MFIRRN_DATASETS here).
    An empty yaw bin prints an em dash, never nan."""
    from mfirrn.models import DEFAULT_MODEL  # what `reconstruct` runs without --model

    monkeypatch.delenv("MFIRRN_AFLW2000", raising=False)
    monkeypatch.setenv("MFIRRN_DATASETS", str(dev_root.parent))
    monkeypatch.setattr("mfirrn.evaluation.benchmark.DEV_SPLIT", dev_root.name)
    assert main(["benchmark", "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert DEFAULT_MODEL in out and f"{dev_root} (from $MFIRRN_DATASETS/{dev_root.name})" in out
    assert "nan" not in out.lower() and "—" in out  # 3 images leave some yaw bins empty
    from mfirrn.cli import build_parser

    sub = next(a for a in build_parser(lazy=False)._actions if a.dest == "command").choices["benchmark"]
    help_text = sub.format_help()
    assert f"default {DEFAULT_MODEL}" in help_text and "(default None)" not in help_text


def test_predicted_yaw_matches_the_dataset_yaw_in_sign_and_degrees(dev_root, mb05):
    """pose_from_params follows the dataset's yaw convention and reports degrees, not radians."""
    from mfirrn.geometry.crop import crops_to_tensor
    from mfirrn.geometry.params import pose_from_params
    from mfirrn.inference.predict import predict_params

    data = AFLW2000.load(dev_root, limit=200)
    yaw = pose_from_params(predict_params(mb05, crops_to_tensor(data.crops))).yaw.numpy()
    assert np.corrcoef(yaw, data.yaw)[0, 1] > 0.95
    assert np.median(np.abs(yaw - data.yaw)) < 5.0


def test_cli_compare_two_models_writes_the_comparison_table(dev_root, tmp_path, capsys, mb05):
    """``--compare``: a registered model and a workbench checkpoint (arch/state_dict/stats/convention keys)."""
    import torch

    (tmp_path / "run").mkdir()
    ckpt = tmp_path / "run" / "copy.pt"
    torch.save({"arch": "3ddfa-v2-mb05", "state_dict": mb05.state_dict(),
                "stats": {"mean": mb05.stats.mean, "std": mb05.stats.std}, "convention": "v2",
                "trained_on": "aflw-21pt-train"}, ckpt)
    out = tmp_path / "cmp"
    assert main(["benchmark", "--compare", "3ddfa-v2-mb05", str(ckpt), "--data-root", str(dev_root),
                 "--limit", "40", "--bootstrap", "200", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "MFIRRN (paper)" in printed and "3ddfa-v2-mb05@run/copy.pt" in printed and "AFLW pool" in printed
    table = list(csv.DictReader(open(out / "comparison.csv")))
    measured = [r for r in table if r["kind"] == "measured"]
    assert [r["method"] for r in measured] == ["3ddfa-v2-mb05", "3ddfa-v2-mb05@run/copy.pt"]
    assert measured[0]["Mean"] == measured[1]["Mean"]  # same weights, same numbers
    assert "not scored: trained on the AFLW pool" in measured[1]["note"]
    assert {r["method"] for r in table} >= {"CDM", "RCPR", "ESR", "SDM", "DEFA", "Nonlinear 3DMM (CVPR18)"}
    numeric = [c for c in table[0] if c.startswith(("[", "(", "Mean", "Std", "AFLW-21", "yaw", "pitch", "roll", "pose"))]
    for r in table:
        if r["kind"] == "published":  # never an empty published row
            assert any(r[c] != "" for c in numeric), r["method"]
    assert "not in our reference file" not in printed and "nan" not in printed
    summary = json.loads((out / "comparison.json").read_text())
    ci = summary["models"][0]["bootstrap_ci"]["mean"]
    assert ci[0] < summary["models"][0]["summary"]["mean"] < ci[1]
    assert (out / "comparison.tex").is_file() and (out / "3ddfa-v2-mb05" / "summary.json").is_file()


def test_models_listing_speaks_cli(capsys):
    from mfirrn.models import DEFAULT_MODEL

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert f"{DEFAULT_MODEL} *" in out and "default of `mfirrn reconstruct` and `mfirrn benchmark`" in out
    assert re.search(r"3ddfa-mb05-aflw21:\s+aflw-21pt-train \(the AFLW 21-point pool", out) and "unknown" not in out
    assert "pretrained=" not in out and "mfirrn.models." not in out and "--checkpoint" in out
    assert main(["benchmark", "--compare", "3ddfa-v2-mb05", "--bootstrap", "0"]) == 2
    assert "--bootstrap must be" in capsys.readouterr().err
