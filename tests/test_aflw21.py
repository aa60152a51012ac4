"""AFLW (21 points): fetched offline from a mirror of a few pool crops, scored with the approximate normaliser,
never for a model trained on the AFLW pool; the lookup and the comparison table's AFLW-21 columns."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import numpy as np
import pytest

from mfirrn.cli import main
from mfirrn.evaluation.benchmark import AFLW21, aflw21_normaliser, evaluate_aflw21, find_aflw21_root
from mfirrn.io import fetch as datafetch
from mfirrn.io.fetch import ManifestEntry, fetch_dataset

N = 8


@pytest.fixture()
def aflw_mirror(tmp_path):
    """The first N crops of the AFLW pool (the same files as the source's AFLW_GT_crop) and its arrays cut to
    them, in the mirror layout, with a manifest subset (crops: the packaged entries)."""
    from conftest import need_dataset

    pool = need_dataset("aflw-21pt-train")
    packaged = datafetch.load_manifest()
    names = (pool / "AFLW_GT_crop.list").read_text().split()[:N]
    root, manifest = tmp_path / "mirror", {}

    def put(rel, data, entry=None):
        path = root / datafetch._MIRROR_PREFIX / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        manifest[rel] = entry or ManifestEntry(rel, len(data), hashlib.sha256(data).hexdigest())

    for name in names:
        rel = f"test_codes/test.data/AFLW_GT_crop/{name}"
        data = (pool / "AFLW_GT_crop" / name).read_bytes()
        assert packaged[rel].sha256 == hashlib.sha256(data).hexdigest()
        put(rel, data, packaged[rel])
    put("test_codes/test.data/AFLW_GT_crop.list", ("\n".join(names) + "\n").encode())
    for f in ("AFLW_GT_pts21.npy", "AFLW_GT_crop_roi_box.npy", "AFLW_GT_crop_yaws.npy"):
        buf = io.BytesIO()
        np.save(buf, np.load(pool / f)[:N])
        put(f"test_codes/test.configs/{f}", buf.getvalue())
    return root, manifest


def test_aflw21_nme_hand_derived(aflw_mirror, tmp_path, mb05, bfm):
    """Ground truth = the model's own 21 points gives 0; shifting every visible GT point by d pixels gives
    d / (crop side / sqrt(2)) per image; invisible (-1) points are skipped."""
    root, manifest = aflw_mirror
    dest = tmp_path / "aflw"
    report = fetch_dataset("aflw", dest, manifest=manifest, mirror=root, download=None)
    assert report.files == N + 4 and report.copied == N + 4
    data = AFLW21.load(dest)
    assert data.gt.shape == (N, 21, 2) and np.isnan(data.gt).any()  # the pool marks invisible points -1
    r = evaluate_aflw21(mb05, data, bfm=bfm)
    assert r.landmarks.shape == (N, 21, 3) and np.all((r.nme > 0) & (r.nme < 0.15))
    own = r.landmarks[..., :2].copy()
    own[np.isnan(data.gt)] = np.nan
    data.gt = own
    assert np.allclose(evaluate_aflw21(mb05, data, bfm=bfm).nme, 0, atol=1e-6)
    data.gt = own + np.array([3.0, 4.0])  # 5 px at every visible point
    expected = 5.0 / aflw21_normaliser(data.roi)
    assert np.allclose(evaluate_aflw21(mb05, data, bfm=bfm).nme, expected, rtol=1e-5)
    assert aflw21_normaliser(data.roi) == pytest.approx((data.roi[:, 2] - data.roi[:, 0]) / np.sqrt(2))


def test_compare_scores_aflw21_only_for_models_not_trained_on_it(aflw_mirror, dev_root, tmp_path, monkeypatch, capsys):
    root, manifest = aflw_mirror
    monkeypatch.delenv("MFIRRN_AFLW21", raising=False)
    monkeypatch.setenv("MFIRRN_DATASETS", str(tmp_path / "none"))
    # the fetched copy (default destination in the user cache), found without options
    monkeypatch.setattr(datafetch, "default_dest", lambda name: tmp_path / "cache" / "datasets" / name)
    assert find_aflw21_root()[0] is None and "mfirrn data fetch aflw" in find_aflw21_root()[1]
    fetch_dataset("aflw", manifest=manifest, mirror=root, download=None)
    assert find_aflw21_root() == (tmp_path / "cache" / "datasets" / "aflw", "the fetched copy")
    out = tmp_path / "cmp"
    assert main(["benchmark", "--compare", "3ddfa-v2-mb05", "3ddfa-mb05-aflw21", "--data-root", str(dev_root),
                 "--limit", str(N), "--bootstrap", "20", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"AFLW 21 points: {N} images, approximate normaliser" in printed
    rows = {r["method"]: r for r in csv.DictReader(open(out / "comparison.csv"))}
    mb05, tuned = rows["3ddfa-v2-mb05"], rows["3ddfa-mb05-aflw21"]
    assert 0 < float(mb05["AFLW-21 mean"]) < 15 and "AFLW-21 approximate" in mb05["note"]
    assert tuned["AFLW-21 mean"] == "" and "not scored: trained on the AFLW pool" in tuned["note"]
    assert "trained on unknown" not in printed and "AFLW 21-point pool" in tuned["note"]
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["models"][0]["aflw21"]["gt"] == "aflw21-approx" and "not scored" in summary["models"][1]["aflw21"]
    assert (out / "3ddfa-v2-mb05" / "aflw21" / "per_image.csv").is_file()
    # single model: the same rule
    assert main(["benchmark", "--model", "3ddfa-mb05-aflw21", "--data-root", str(dev_root), "--limit", "4"]) == 0
    assert "AFLW 21-point: not scored: trained on the AFLW pool" in capsys.readouterr().out
    assert main(["benchmark", "--data-root", str(dev_root), "--limit", "4", "--aflw-root", str(tmp_path)]) == 2
    assert "mfirrn data fetch aflw --dest" in capsys.readouterr().err
