"""Hostile asset set-ups for ``mfirrn assets``: an unwritable cache, a truncated mirror file, the debris of a
killed fetch, a corrupted cached copy. Refusals are one line naming the variable or file and the fix;
nothing half-written stays in the cache."""

from __future__ import annotations

import shutil

import pytest
from _hostile import assert_refused, run_cli, temporaries, truncate

NAME = "stats-3ddfa-v1"  # a small asset


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A private mirror holding a good copy of :data:`NAME`, and an empty private cache."""
    from mfirrn.io import assets

    src = assets.fetch(NAME)
    rel = assets.get_asset(NAME).path
    (tmp_path / "mirror" / rel).parent.mkdir(parents=True)
    shutil.copyfile(src, tmp_path / "mirror" / rel)
    monkeypatch.setenv("MFIRRN_ASSET_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("MFIRRN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "mirror" / rel, tmp_path / "cache" / rel


@pytest.mark.parametrize("cache", ["/proc/x", "{file}", "{file}/sub"])
def test_unwritable_cache_is_refused(cache, mirror, tmp_path, capsys, monkeypatch):
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv("MFIRRN_CACHE", cache.format(file=tmp_path / "a_file"))
    rc, _, err = run_cli(["assets", "fetch", NAME], capsys)
    assert_refused(rc, err, "MFIRRN_CACHE")
    assert (tmp_path / "a_file").read_text() == "x"


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_damaged_mirror_file_is_refused_and_nothing_cached(damage, mirror, capsys):
    src, dest = mirror
    truncate(src) if damage == "truncated" else src.write_bytes(b"")
    rc, _, err = run_cli(["assets", "fetch", NAME], capsys)
    assert_refused(rc, err, NAME, "checksum mismatch", "mirror")
    assert not dest.exists() and not temporaries(dest.parent)


def test_killed_fetch_debris_is_removed_and_corrupt_copy_repaired(mirror, capsys):
    src, dest = mirror
    dest.parent.mkdir(parents=True)
    stale = dest.parent / f".{dest.name}.abc123.part"
    stale.write_bytes(b"half")
    dest.write_bytes(src.read_bytes()[:10])  # a corrupt cached copy
    rc, out, err = run_cli(["assets", "verify", NAME], capsys)
    assert rc == 1 and "corrupt" in out and f"mfirrn assets fetch {NAME}" in err
    rc, _, err = run_cli(["assets", "fetch", NAME], capsys)
    assert rc == 0, err
    assert dest.read_bytes() == src.read_bytes() and not stale.exists()
