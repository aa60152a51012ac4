"""``mfirrn data fetch`` offline: a temporary mirror built from a few dev-split files (one corrupt), a manifest
subset, interrupted downloads, partial and corrupt files in the destination; then the benchmark's data lookup."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from _mirrors import C, D, npy_bytes, sha  # the synthetic mirror's helpers

from mfirrn.cli import main
from mfirrn.evaluation.benchmark import AFLW2000, DatasetError, find_aflw2000_root
from mfirrn.io import fetch as datafetch
from mfirrn.io.fetch import COMPLETE_MARKER, DataFetchError, ManifestEntry, fetch_dataset

N = 6


@dataclass
class Mirror:
    root: Path
    manifest: dict
    corrupt: str  # source path of the crop that is corrupt in the mirror
    right: bytes  # its right bytes

    def file(self, rel: str) -> Path:
        return self.root / datafetch._MIRROR_PREFIX / rel


@pytest.fixture(scope="module")
def packaged():
    return datafetch.load_manifest()


@pytest.fixture()
def mirror(tmp_path, dev_root, packaged) -> Mirror:
    """The first N dev crops (real files, checked against the packaged manifest), a list of them and the
    test.configs arrays cut to them, in the mirror layout; crop 2 is corrupt in the mirror."""
    from mfirrn.evaluation.benchmark import resolve_aflw2000_root

    data_dir, configs = resolve_aflw2000_root(dev_root)
    names = (data_dir / "AFLW2000-3D_crop.list").read_text().split()[:N]
    m = Mirror(tmp_path / "mirror", {}, f"{D}AFLW2000-3D_crop/{names[2]}", b"")
    for i, name in enumerate(names):
        rel, data = f"{D}AFLW2000-3D_crop/{name}", (data_dir / "AFLW2000-3D_crop" / name).read_bytes()
        assert packaged[rel] == ManifestEntry(rel, len(data), sha(data))  # the dev crops are the source's files
        m.manifest[rel] = packaged[rel]
        if rel == m.corrupt:
            m.right, data = data, data[:100] + bytes(50)
        m.file(rel).parent.mkdir(parents=True, exist_ok=True)
        m.file(rel).write_bytes(data)
    own = [(f"{D}AFLW2000-3D_crop.list", ("\n".join(names) + "\n").encode())]
    own += [(f"{C}{f.name}", npy_bytes(np.load(f)[:N])) for f in sorted(configs.glob("AFLW2000-3D*.npy"))]
    own += [(f"{D}AFLW-2000-3D/Code/readme.txt", b"not part of the dataset\n"), (f"{C}obtain_yaws.py", b"# no\n")]
    for rel, data in own:
        m.manifest[rel] = ManifestEntry(rel, len(data), sha(data))
        m.file(rel).parent.mkdir(parents=True, exist_ok=True)
        m.file(rel).write_bytes(data)
    return m


def _no_download(url, out):
    raise AssertionError(f"must not download {url}")


def _verified(dest: Path, manifest: dict) -> None:
    for entry, rel in datafetch.plan("aflw2000-3d", manifest):
        assert sha((dest / rel).read_bytes()) == entry.sha256, rel
    assert (dest / COMPLETE_MARKER).is_file() and not list(dest.rglob("*.part"))


def test_packaged_manifest_and_plans(packaged):
    assert len(packaged) == 27114
    files = {rel for _, rel in datafetch.plan("aflw2000-3d")}
    assert {"test.data/AFLW2000-3D_crop.list", "test.configs/AFLW2000-3D.pts68.npy",
            "test.configs/AFLW2000-3D-Reannotated.pts68.npy", "test.data/AFLW2000-3D_crop/image00002.jpg"} <= files
    assert not any(r.endswith((".txt", ".mat", ".py")) for r in files)
    orig = [rel for _, rel in datafetch.plan("aflw2000-3d", with_originals=True) if rel.startswith("test.data/AFLW2000-3D/")]
    assert len(orig) == 4000 and not any("Code" in r for r in orig)  # photos + .mat fits, in the workbench layout
    aflw = {rel for _, rel in datafetch.plan("aflw")}
    assert {"AFLW_GT_crop.list", "AFLW_GT_pts21.npy", "AFLW_GT_crop_roi_box.npy", "AFLW_GT_crop_yaws.npy"} <= aflw
    assert packaged[f"{C}AFLW2000-3D.pts68.npy"].url == (
        "https://raw.githubusercontent.com/XgTu/2DASL/95052f203e6d945bb6563f916cc539bba0815972/"
        "test_codes/test.configs/AFLW2000-3D.pts68.npy")
    with pytest.raises(DataFetchError, match="unknown dataset 'aflw2000'"):
        datafetch.plan("aflw2000")


def test_corrupt_mirror_file_is_never_used_and_a_rerun_resumes(mirror, tmp_path):
    dest = tmp_path / "aflw2000-3d"
    with pytest.raises(DataFetchError) as err:
        fetch_dataset("aflw2000-3d", dest, manifest=mirror.manifest, mirror=mirror.root, download=_no_download, jobs=3)
    msg = str(err.value)
    assert "1 of 12 files" in msg and "corrupt or truncated" in msg and "rerun `mfirrn data fetch aflw2000-3d" in msg
    crop_dir = dest / "test.data" / "AFLW2000-3D_crop"
    crops = sorted(crop_dir.iterdir())
    assert len(crops) == N - 1 and not (crop_dir / Path(mirror.corrupt).name).exists()  # never used
    assert not (dest / COMPLETE_MARKER).exists() and not list(dest.rglob("*.part"))
    assert not (dest / "test.data" / "AFLW-2000-3D").exists() and not (dest / "test.configs" / "obtain_yaws.py").exists()
    with pytest.raises(DatasetError, match="cannot read crop"):  # an incomplete copy is refused by the benchmark
        AFLW2000.load(dest)

    # repair the mirror; break the destination the ways an interrupted run or a bad disk would
    mirror.file(mirror.corrupt).write_bytes(mirror.right)
    truncated, garbled = crops[0], crops[-1]
    original = truncated.read_bytes()
    truncated.write_bytes(original[: len(original) // 2])
    garbled.write_bytes(bytes(garbled.stat().st_size))  # right size, wrong bytes
    (crop_dir / f".{truncated.name}.deadbeef.part").write_bytes(b"partial")  # a killed run's temp file
    report = fetch_dataset("aflw2000-3d", dest, manifest=mirror.manifest, mirror=mirror.root, download=_no_download)
    assert (report.files, report.copied, report.replaced, report.present) == (12, 3, 2, 9)
    assert truncated.read_bytes() == original
    _verified(dest, mirror.manifest)
    data = AFLW2000.load(dest)
    assert len(data.names) == N and data.crops.shape == (N, 120, 120, 3)


def test_interrupted_downloads_are_retried_and_verified(mirror, tmp_path):
    calls: dict[str, int] = {}

    def flaky(url, out: Path):
        assert url.startswith("https://raw.githubusercontent.com/XgTu/2DASL/" + datafetch.SOURCE_COMMIT + "/test_codes/")
        rel = url.split(datafetch.SOURCE_COMMIT + "/", 1)[1]
        calls[rel] = calls.get(rel, 0) + 1
        data = mirror.file(rel).read_bytes()
        if rel.endswith(".jpg") and calls[rel] == 1:  # the connection drops half-way
            out.write_bytes(data[: len(data) // 2])
            raise ConnectionError("connection reset by peer")
        out.write_bytes(data)

    dest = tmp_path / "dl"
    with pytest.raises(DataFetchError, match="downloaded file is corrupt or truncated"):
        fetch_dataset("aflw2000-3d", dest, manifest=mirror.manifest, mirror=None, download=flaky)
    assert calls[mirror.corrupt] == 3  # three attempts, none accepted
    assert all(n == 2 for r, n in calls.items() if r.endswith(".jpg") and r != mirror.corrupt)
    assert not (dest / "test.data" / mirror.corrupt[len(D):]).exists()
    mirror.file(mirror.corrupt).write_bytes(mirror.right)
    calls.clear()
    report = fetch_dataset("aflw2000-3d", dest, manifest=mirror.manifest, mirror=False, download=flaky)
    assert (report.downloaded, report.present) == (1, 11) and list(calls) == [mirror.corrupt]
    _verified(dest, mirror.manifest)


def test_cli_fetch_then_benchmark_without_options(mirror, tmp_path, monkeypatch, capsys):
    """`mfirrn data fetch aflw2000-3d` into the user cache through $MFIRRN_ASSET_MIRROR, then `mfirrn benchmark`
    finds it with no option; the lookup order and its one-line message."""
    import shutil

    from mfirrn.io import assets

    monkeypatch.setattr(datafetch, "load_manifest", lambda path=None: mirror.manifest)
    # the model's assets, copied into the temporary cache (so the cache is otherwise empty)
    cache = tmp_path / "cache"
    for name in ("bfm-u-shp", "bfm-u-exp", "bfm-w-shp", "bfm-w-exp", "bfm-keypoints", "bfm-tri",
                 "stats-3ddfa-v2", "weights-3ddfa-v2-mb05"):
        src = assets.fetch(name)
        (cache / assets.get_asset(name).path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, cache / assets.get_asset(name).path)
    monkeypatch.setenv("MFIRRN_CACHE", str(cache))
    monkeypatch.setenv("MFIRRN_ASSET_MIRROR", str(mirror.root))
    monkeypatch.delenv("MFIRRN_AFLW2000", raising=False)
    monkeypatch.delenv("MFIRRN_AFLW21", raising=False)
    monkeypatch.setenv("MFIRRN_DATASETS", str(tmp_path / "no-datasets"))

    with pytest.raises(DatasetError) as err:
        find_aflw2000_root()
    line = str(err.value)
    assert "\n" not in line and "$MFIRRN_AFLW2000 (unset)" in line and "no-datasets/aflw2000-3d-dev (missing)" in line
    assert "(not fetched)" in line and "run `mfirrn data fetch aflw2000-3d`" in line
    assert main(["benchmark"]) == 2
    assert "mfirrn data fetch aflw2000-3d" in capsys.readouterr().err

    assert main(["data", "fetch", "aflw", "--with-originals"]) == 2
    assert "--with-originals applies to aflw2000-3d only" in capsys.readouterr().err
    assert main(["data", "fetch", "aflw2000-3d", "--jobs", "2"]) == 2  # the corrupt mirror crop
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "1 of 12 files" in err
    with pytest.raises(DatasetError, match=r"\(incomplete\)"):
        find_aflw2000_root()
    mirror.file(mirror.corrupt).write_bytes(mirror.right)
    assert main(["data", "fetch", "aflw2000-3d"]) == 0
    out = capsys.readouterr().out
    assert "12 files" in out and "11 already present, 1 copied from the mirror" in out
    fetched = cache / "datasets" / "aflw2000-3d"
    assert find_aflw2000_root() == (fetched, "the fetched copy")

    assert main(["benchmark", "--limit", str(N)]) == 0  # default model, data found without options
    out = capsys.readouterr().out
    assert f"AFLW2000-3D data: {fetched} (from the fetched copy)" in out and "3ddfa-v2-mb05" in out
    assert "AFLW 21-point: no test set found" in out and "mfirrn data fetch aflw" in out

    # earlier entries of the documented order win
    dev = tmp_path / "datasets" / "aflw2000-3d-dev"
    dev.parent.mkdir()
    dev.symlink_to(fetched, target_is_directory=True)
    monkeypatch.setenv("MFIRRN_DATASETS", str(dev.parent))
    assert find_aflw2000_root() == (dev, "$MFIRRN_DATASETS/aflw2000-3d-dev")
    monkeypatch.setenv("MFIRRN_AFLW2000", str(fetched / "test.data"))
    assert find_aflw2000_root()[1] == "$MFIRRN_AFLW2000"
    assert find_aflw2000_root(fetched)[1] == "--data-root"
    monkeypatch.setenv("MFIRRN_AFLW2000", str(tmp_path))
    with pytest.raises(DatasetError, match=r"\$MFIRRN_AFLW2000=.* holds no AFLW2000-3D"):
        find_aflw2000_root()


def test_offline_fails_fast_with_one_line_and_leaves_nothing(mirror, tmp_path):
    calls = []

    def offline(url, out):
        calls.append(url)
        raise ConnectionError("Temporary failure in name resolution")

    dest = tmp_path / "new"
    with pytest.raises(DataFetchError) as err:
        fetch_dataset("aflw2000-3d", dest, manifest=mirror.manifest, mirror=None, download=offline, jobs=1)
    msg = str(err.value)
    assert "cannot reach raw.githubusercontent.com (ConnectionError)" in msg and "MFIRRN_ASSET_MIRROR" in msg
    assert "\n" not in msg and "12 of 12 files" in msg
    assert len(calls) == 3  # one file's three attempts, then no more tries
    assert not dest.exists()  # nothing half-written


def test_real_http_downloads_from_a_local_server(mirror, tmp_path):
    """The HTTP downloader (requests, streamed, one session per thread) against a local server laid out like
    raw.githubusercontent.com; a 404 is one failed file, not an unreachable source."""
    import functools
    import http.server
    import threading

    from mfirrn.io.fetch import http_download

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror.root / "github"))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    local = f"http://127.0.0.1:{server.server_address[1]}"

    def via_local(url, out):
        http_download(url.replace("https://raw.githubusercontent.com", local), out)

    try:
        mirror.file(mirror.corrupt).unlink()  # 404 for that file
        dest = tmp_path / "http"
        with pytest.raises(DataFetchError, match="1 of 12 files.*HTTPError"):
            fetch_dataset("aflw2000-3d", dest, manifest=mirror.manifest, mirror=False, download=via_local, jobs=4)
        mirror.file(mirror.corrupt).write_bytes(mirror.right)
        report = fetch_dataset("aflw2000-3d", dest, manifest=mirror.manifest, mirror=False, download=via_local)
        assert (report.downloaded, report.present) == (1, 11)
        _verified(dest, mirror.manifest)
    finally:
        server.shutdown()


# --- the AFLW training pool (aflw-train) ---------------------------------------------------------------------------


def test_aflw_train_plan_leaves_out_every_aflw2000_face(packaged):
    files = datafetch.plan("aflw-train")
    faces = {p.rsplit("/", 1)[1] for p in packaged if p.startswith(f"{D}AFLW2000-3D_crop/") and p.endswith(".jpg")}
    crops = [rel for _, rel in files if rel.startswith("AFLW_GT_crop/")]
    assert len(faces) == 2000 and len(crops) == 19080 and not faces & {r.split("/")[1] for r in crops}
    assert sorted(rel for _, rel in files if not rel.startswith("AFLW_GT_crop/")) == [
        "upstream/AFLW_GT_crop.list", "upstream/AFLW_GT_crop_roi_box.npy", "upstream/AFLW_GT_crop_yaws.npy",
        "upstream/AFLW_GT_pts21.npy"]
    assert datafetch.default_dest("aflw-train").name == "aflw-21pt-train"


@pytest.fixture()
def train_mirror(tmp_path, packaged):
    from _mirrors import aflw_train_mirror
    from conftest import need_dataset

    root = tmp_path / "mirror"
    return root, aflw_train_mirror(root, need_dataset("aflw-21pt-train"), packaged)


def test_aflw_train_selects_the_pool_rows_and_resumes(train_mirror, tmp_path):
    """A small source (14 pool crops with 3 AFLW2000-3D faces between them): the faces are neither fetched nor
    listed, the arrays keep the pool's rows in order, and a rerun repairs a damaged source array."""
    from conftest import need_dataset

    from mfirrn.data.labels.pool import LandmarkPool

    root, manifest = train_mirror
    pool = need_dataset("aflw-21pt-train")
    dest = tmp_path / "aflw-21pt-train"
    report = fetch_dataset("aflw-train", dest, manifest=manifest, mirror=root, download=_no_download)
    assert (report.files, report.copied) == (14 + 4, 14 + 4)
    names = (pool / "AFLW_GT_crop.list").read_text().split()[:14]
    assert (dest / "AFLW_GT_crop.list").read_text() == "".join(n + "\n" for n in names)
    assert sorted(p.name for p in (dest / "AFLW_GT_crop").iterdir()) == sorted(names)
    for f in ("AFLW_GT_pts21.npy", "AFLW_GT_crop_roi_box.npy", "AFLW_GT_crop_yaws.npy"):
        got, want = np.load(dest / f), np.load(pool / f)[:14]
        assert got.dtype == want.dtype and np.array_equal(got, want), f
        assert len(np.load(dest / "upstream" / f)) == 17
    assert LandmarkPool.aflw21(dest).names == names
    assert json.loads((dest / COMPLETE_MARKER).read_text())["rows"] == 14

    (dest / "upstream" / "AFLW_GT_pts21.npy").write_bytes(b"damaged")
    (dest / "AFLW_GT_pts21.npy").unlink()
    report = fetch_dataset("aflw-train", dest, manifest=manifest, mirror=root, download=_no_download)
    assert (report.present, report.copied, report.replaced) == (17, 1, 1)
    assert np.array_equal(np.load(dest / "AFLW_GT_pts21.npy"), np.load(pool / "AFLW_GT_pts21.npy")[:14])


def test_aflw_train_refuses_a_list_that_disagrees_with_its_crops(train_mirror, tmp_path):
    root, manifest = train_mirror
    dest = tmp_path / "pool"
    fetch_dataset("aflw-train", dest, manifest=manifest, mirror=root, download=_no_download)
    listed = (dest / "upstream" / "AFLW_GT_crop.list").read_text().split()
    (dest / "upstream" / "AFLW_GT_crop.list").write_text("\n".join(listed[:-1]) + "\n")  # one row short
    with pytest.raises(DataFetchError, match="name different faces"):
        datafetch.select_rows(dest, frozenset())
    (dest / "upstream" / "AFLW_GT_crop.list").write_text("\n".join(listed) + "\n")
    np.save(dest / "upstream" / "AFLW_GT_crop_yaws.npy", np.zeros(3, np.float32))
    before = (dest / "AFLW_GT_crop.list").read_bytes()
    with pytest.raises(DataFetchError, match="has 3 rows"):
        datafetch.select_rows(dest, frozenset({"image00002.jpg", "image00004.jpg", "image00006.jpg"}))
    assert (dest / "AFLW_GT_crop.list").read_bytes() == before  # all files or none


def test_cli_fetch_aflw_train_then_the_pool_is_found(train_mirror, tmp_path, monkeypatch, capsys):
    """`mfirrn data fetch aflw-train` into the user cache; with $MFIRRN_DATASETS unset the pool lookup finds it,
    and before the fetch it says in one line what was tried and how to get it."""
    from _mirrors import with_assets

    from mfirrn.data.labels.pool import POOL_NAME, PoolError, find_pool_root
    from mfirrn.io.assets import mirror_dir

    root, manifest = train_mirror
    if mirror_dir() is not None:  # the teacher's assets through the same mirror, as for a user with one
        with_assets(root, mirror_dir())
    monkeypatch.setattr(datafetch, "load_manifest", lambda path=None: manifest)
    monkeypatch.setenv("MFIRRN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MFIRRN_ASSET_MIRROR", str(root))
    monkeypatch.delenv("MFIRRN_DATASETS", raising=False)
    with pytest.raises(PoolError) as err:
        find_pool_root()
    msg = str(err.value)
    assert "\n" not in msg and "$MFIRRN_DATASETS unset" in msg and "run `mfirrn data fetch aflw-train`" in msg
    assert main(["data", "fit-landmarks", "--out", str(tmp_path / "labels")]) == 2
    assert "mfirrn data fetch aflw-train" in capsys.readouterr().err
    assert main(["data", "fetch", "aflw-train"]) == 0
    out = capsys.readouterr().out
    assert "18 files" in out and "fit-landmarks` and notebook 01 find it without options" in out
    fetched = tmp_path / "cache" / "datasets" / POOL_NAME
    assert find_pool_root() == (fetched, "the fetched copy")
    monkeypatch.setenv("MFIRRN_DATASETS", str(tmp_path))
    assert find_pool_root()[1] == "the fetched copy"  # $MFIRRN_DATASETS without the pool: the cache
    (tmp_path / POOL_NAME).mkdir()
    assert find_pool_root() == (tmp_path / POOL_NAME, f"$MFIRRN_DATASETS/{POOL_NAME}")


@pytest.mark.slow
def test_aflw_train_from_the_full_mirror_is_the_pool(tmp_path, monkeypatch):
    """The real fetch, end to end from the asset mirror (all 19080 crops, no download): exactly the shared pool,
    file for file; a rerun verifies and keeps everything."""
    from conftest import missing_data, need_dataset

    from mfirrn.io.assets import mirror_dir

    pool = need_dataset("aflw-21pt-train")
    mirror = mirror_dir()
    if mirror is None or not (mirror / datafetch._MIRROR_PREFIX / f"{D}AFLW_GT_crop.list").is_file():
        missing_data("the AFLW training files are not in $MFIRRN_ASSET_MIRROR")
    dest = tmp_path / "aflw-21pt-train"
    report = fetch_dataset("aflw-train", dest, download=_no_download, jobs=4)
    assert (report.files, report.copied) == (19084, 19084)
    for f in ("AFLW_GT_crop.list", "AFLW_GT_pts21.npy", "AFLW_GT_crop_roi_box.npy", "AFLW_GT_crop_yaws.npy"):
        assert (dest / f).read_bytes() == (pool / f).read_bytes(), f
    names = (pool / "AFLW_GT_crop.list").read_text().split()
    assert sorted(p.name for p in (dest / "AFLW_GT_crop").iterdir()) == sorted(names)
    for n in names:
        assert (dest / "AFLW_GT_crop" / n).read_bytes() == (pool / "AFLW_GT_crop" / n).read_bytes(), n
    again = fetch_dataset("aflw-train", dest, download=_no_download, jobs=4)
    assert again.present == 19084
