"""Benchmark and training data in one command: AFLW2000-3D, AFLW (21 points), the AFLW training pool.

Source: all three come from their public GitHub copy, the 3DDFA-layout test sets in ``XgTu/2DASL`` at
commit :data:`SOURCE_COMMIT` (``test_codes/test.data`` and ``test_codes/test.configs``). The package ships
the list of every file there with its size and sha256 (``mfirrn/io/manifests/2dasl-test-manifest.tsv.gz``);
each file is checked against it before it is used.

How a file arrives (:func:`fetch_dataset`):

1. a file already at its place with the right size and sha256 is kept (a rerun resumes an interrupted
   fetch; a wrong or truncated file is deleted and fetched again);
2. otherwise, if ``$MFIRRN_ASSET_MIRROR`` holds it under ``github/XgTu/2DASL/<commit>/<path>`` (the layout
   of :mod:`mfirrn.io.assets`), it is copied from there;
3. otherwise it is downloaded from ``raw.githubusercontent.com`` (HTTP retries with back-off).

Every copy or download goes to a temporary ``.part`` file beside its target, is verified, then renamed
into place atomically, so a file at its final name is always complete and correct. Files are fetched by a
thread pool with a byte progress bar. A folder is marked complete (``.mfirrn-fetch.json``) only when
every file verified; :func:`fetched_root` returns only complete folders.

Layouts (what ``mfirrn benchmark --data-root`` and :class:`mfirrn.data.labels.pool.LandmarkPool` read):

* ``aflw2000-3d``: ``test.data/AFLW2000-3D_crop/`` (2000 crops 120x120), ``test.data/AFLW2000-3D_crop.list``,
  ``test.configs/AFLW2000-3D*.npy`` (68-point GT original and re-annotated, 21-point GT, yaw, roi boxes);
  with originals also ``test.data/AFLW2000-3D/`` (450x450 photos and their ``.mat`` 3DMM fits).
* ``aflw``: ``AFLW_GT_crop/`` (21080 crops), ``AFLW_GT_crop.list``, ``AFLW_GT_pts21.npy``,
  ``AFLW_GT_crop_roi_box.npy``, ``AFLW_GT_crop_yaws.npy``.
* ``aflw-train`` (the training pool, ``aflw-21pt-train``): the same layout without the 2000 crops of
  AFLW2000-3D faces (they are not downloaded at all: a crop is left out when AFLW2000-3D has a crop of that
  name), so 19080 crops; the list and the arrays keep the rows of those crops, in the source's order.
  The source's 21080-row list and arrays stay in ``upstream/`` (verified like every file, so a rerun
  resumes); the top-level ones are made from them (:func:`select_rows`) once every file verified.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import json
import os
import secrets
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Optional, Union

from mfirrn.io.assets import COMMIT_2DASL, MIRROR_ENV, REPO_2DASL, cache_dir, mirror_dir, sha256_of
from mfirrn.io.fileio import atomic_write

__all__ = [
    "SOURCE_REPO",
    "SOURCE_COMMIT",
    "ManifestEntry",
    "DatasetSpec",
    "DATASETS",
    "DataFetchError",
    "FetchReport",
    "load_manifest",
    "plan",
    "default_dest",
    "fetch_dataset",
    "fetched_root",
    "select_rows",
    "ensure_dataset",
    "COMPLETE_MARKER",
    "UPSTREAM",
]

SOURCE_REPO, SOURCE_COMMIT = REPO_2DASL, COMMIT_2DASL
_MIRROR_PREFIX = f"github/{SOURCE_REPO}/{SOURCE_COMMIT}"
_MANIFEST = "2dasl-test-manifest.tsv.gz"
COMPLETE_MARKER = ".mfirrn-fetch.json"
UPSTREAM = "upstream"  # aflw-train: the source's row-aligned list and arrays, before the rows are selected
_DATA = "test_codes/test.data/"
_CONFIGS = "test_codes/test.configs/"


class DataFetchError(RuntimeError):
    """A dataset could not be fetched completely; the message names what failed and the fix."""


@dataclass(frozen=True)
class ManifestEntry:
    """One file of the source repository: ``path`` inside it, ``size`` in bytes, hex ``sha256``."""

    path: str
    size: int
    sha256: str

    @property
    def url(self) -> str:
        return f"https://raw.githubusercontent.com/{SOURCE_REPO}/{SOURCE_COMMIT}/{self.path}"

    @property
    def mirror_path(self) -> str:
        """Relative location in a ``$MFIRRN_ASSET_MIRROR`` folder (the :mod:`mfirrn.io.assets` layout)."""
        return f"{_MIRROR_PREFIX}/{self.path}"


def load_manifest(path: Union[str, Path, None] = None) -> dict[str, ManifestEntry]:
    """``{source path: entry}`` from a manifest (tab-separated ``path size sha256`` with a header line,
    optionally gzipped); by default the one shipped in the package."""
    if path is None:
        raw = resources.files("mfirrn.io").joinpath("manifests", _MANIFEST).read_bytes()
    else:
        raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    entries = {}
    for line in raw.decode("utf-8").splitlines()[1:]:
        if line.strip():
            p, size, sha = line.split("\t")
            entries[p] = ManifestEntry(p, int(size), sha)
    return entries


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset assembled from manifest files: ``rules`` map a source folder (or file) to a local one,
    keeping files whose name ends with one of ``suffixes``; ``originals`` rules apply with originals only.

    ``without``: a source folder; a file is left out when that folder holds a file of the same name (the
    AFLW crops of AFLW2000-3D faces). The rows of the list and arrays that rules put in :data:`UPSTREAM`
    are then selected to match (:func:`select_rows`)."""

    name: str
    folder: str
    what: str
    licence: str
    rules: tuple[tuple[str, str, tuple[str, ...]], ...]
    originals: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    benchmark_hint: str = ""
    without: str = ""


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        DatasetSpec(
            name="aflw2000-3d",
            folder="aflw2000-3d",
            what="AFLW2000-3D: 2000 face crops with 68-point 3D-fitted landmarks, yaw and crop boxes (3DDFA layout)",
            licence="AFLW images: AFLW terms (non-commercial research); AFLW2000-3D fits: Zhu et al. (research use)",
            rules=(
                (_DATA + "AFLW2000-3D_crop.list", "test.data/AFLW2000-3D_crop.list", ()),
                (_DATA + "AFLW2000-3D_crop/", "test.data/AFLW2000-3D_crop/", (".jpg",)),
                (_CONFIGS + "AFLW2000-3D", "test.configs/AFLW2000-3D", (".npy",)),
            ),
            originals=((_DATA + "AFLW-2000-3D/image", "test.data/AFLW2000-3D/image", (".jpg", ".mat")),),
            benchmark_hint="mfirrn benchmark --data-root {dest}",
        ),
        DatasetSpec(
            name="aflw",
            folder="aflw",
            what="AFLW (21 points): 21080 face crops with 21-point GT, crop boxes and yaw (3DDFA layout)",
            licence="AFLW images and annotations: AFLW terms (non-commercial research)",
            rules=(
                (_DATA + "AFLW_GT_crop.list", "AFLW_GT_crop.list", ()),
                (_DATA + "AFLW_GT_crop/", "AFLW_GT_crop/", (".jpg",)),
                (_CONFIGS + "AFLW_GT_", "AFLW_GT_", (".npy",)),
            ),
            benchmark_hint="mfirrn benchmark --compare MODEL... --aflw-root {dest}",
        ),
        DatasetSpec(
            name="aflw-train",
            folder="aflw-21pt-train",
            what="AFLW training pool: the 19080 AFLW crops with 21-point GT, crop boxes and yaw that are not "
                 "AFLW2000-3D faces (the folder aflw-21pt-train)",
            licence="AFLW images and annotations: AFLW terms (non-commercial research)",
            rules=(
                (_DATA + "AFLW_GT_crop.list", f"{UPSTREAM}/AFLW_GT_crop.list", ()),
                (_DATA + "AFLW_GT_crop/", "AFLW_GT_crop/", (".jpg",)),
                (_CONFIGS + "AFLW_GT_", f"{UPSTREAM}/AFLW_GT_", (".npy",)),
            ),
            benchmark_hint="mfirrn data fit-landmarks --pool {dest} --out results/labels-aflw21",
            without=_DATA + "AFLW2000-3D_crop/",
        ),
    )
}


def _spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataFetchError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}") from None


def plan(name: str, manifest: Optional[dict[str, ManifestEntry]] = None,
         with_originals: bool = False) -> list[tuple[ManifestEntry, str]]:
    """The files of dataset ``name``: ``[(manifest entry, path relative to the dataset folder)]``, sorted.

    >>> len(plan("aflw2000-3d")), len(plan("aflw2000-3d", with_originals=True)), len(plan("aflw"))
    (2006, 6006, 21084)
    >>> len(plan("aflw-train"))  # 19080 crops, the source's list and its three arrays
    19084
    """
    spec = _spec(name)
    manifest = load_manifest() if manifest is None else manifest
    rules = spec.rules + (spec.originals if with_originals else ())
    left_out = _left_out(spec, manifest)
    out = []
    for path, entry in manifest.items():
        if path.rsplit("/", 1)[-1] in left_out and path.endswith(".jpg"):
            continue
        for src, dst, suffixes in rules:
            if suffixes:  # files directly under a prefix (not e.g. AFLW-2000-3D/Code/...), by suffix
                hit = path.startswith(src) and path.endswith(suffixes) and "/" not in path[len(src):]
            else:  # one file
                hit = path == src
            if hit:
                out.append((entry, dst + path[len(src):]))
                break
    return sorted(out, key=lambda e: e[1])


def _left_out(spec: DatasetSpec, manifest: dict[str, ManifestEntry]) -> frozenset[str]:
    """File names that ``spec.without`` leaves out (the names of the files directly in that source folder)."""
    if not spec.without:
        return frozenset()
    n = len(spec.without)
    return frozenset(p[n:] for p in manifest if p.startswith(spec.without) and "/" not in p[n:])


def select_rows(dest: Union[str, Path], left_out: frozenset[str]) -> int:
    """Write the row-aligned list and ``.npy`` arrays of ``dest/upstream/`` into ``dest`` without the rows
    whose list name is in ``left_out``, in the source's order; returns the rows kept.

    All files are written together or none (:class:`mfirrn.io.fileio.StagedOutputs`). Raises
    :class:`DataFetchError` when an array's length differs from the list's, or when the kept names are not
    exactly the crops in ``dest/AFLW_GT_crop/`` (the list and the crops would describe different faces).
    """
    import io

    import numpy as np

    from mfirrn.io.fileio import StagedOutputs

    dest = Path(dest)
    up = dest / UPSTREAM
    lists = sorted(up.glob("*.list"))
    if len(lists) != 1:
        raise DataFetchError(f"{up}: expected one .list file, found {len(lists)}; rerun the fetch")
    names = [s.strip() for s in lists[0].read_text().splitlines() if s.strip()]
    keep = np.array([n not in left_out for n in names], bool)
    kept = [n for n, k in zip(names, keep) if k]
    crop_dir = dest / lists[0].stem
    if crop_dir.is_dir() and set(kept) != {p.name for p in crop_dir.iterdir() if p.suffix == ".jpg"}:
        raise DataFetchError(f"{lists[0]} and the crops in {crop_dir} name different faces; delete {dest} and "
                             f"fetch again")
    with StagedOutputs() as out:
        out.add(dest / lists[0].name, "".join(n + "\n" for n in kept))
        for f in sorted(up.glob("*.npy")):
            a = np.load(f, allow_pickle=False)
            if len(a) != len(names):
                raise DataFetchError(f"{f} has {len(a)} rows, its list {lists[0].name} {len(names)}; delete {dest} "
                                     f"and fetch again")
            buf = io.BytesIO()
            np.save(buf, a[keep])
            out.add(dest / f.name, buf.getvalue())
    return len(kept)


def default_dest(name: str) -> Path:
    """Where ``mfirrn data fetch NAME`` puts a dataset by default: ``<user cache>/datasets/<folder>``
    (``$MFIRRN_CACHE`` or ``~/.cache/mfirrn``, as for assets)."""
    return cache_dir() / "datasets" / _spec(name).folder


def fetched_root(name: str, with_originals: bool = False) -> Optional[Path]:
    """The default fetched copy of dataset ``name`` if a fetch completed there (``with_originals``: one that
    included the original photos), else None."""
    dest = default_dest(name)
    marker = dest / COMPLETE_MARKER
    if not marker.is_file():
        return None
    if with_originals:
        try:
            if not json.loads(marker.read_text()).get("with_originals"):
                return None
        except (OSError, ValueError):
            return None
    return dest


@dataclass
class FetchReport:
    """What :func:`fetch_dataset` did: file counts by origin, bytes, and the files that failed."""

    dataset: str
    dest: Path
    files: int = 0
    bytes: int = 0
    present: int = 0
    copied: int = 0
    downloaded: int = 0
    replaced: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.dataset}: {self.files} files ({self.bytes / 1e6:.1f} MB) verified in {self.dest} "
                f"({self.present} already present, {self.copied} copied from the mirror, "
                f"{self.downloaded} downloaded; {self.replaced} corrupt or partial files replaced)")


class _FileError(Exception):
    pass


Downloader = Callable[[str, Path], None]
_local = threading.local()


def _session():
    """One ``requests`` session per thread (connection reuse), retrying transient HTTP errors."""
    s = getattr(_local, "session", None)
    if s is None:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        s = requests.Session()
        retry = Retry(total=3, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504))
        s.mount("https://", HTTPAdapter(max_retries=retry))
        _local.session = s
    return s


def http_download(url: str, out: Path) -> None:
    """Stream ``url`` into the file ``out`` (raises on HTTP errors and network failures)."""
    with _session().get(url, stream=True, timeout=(10, 60)) as r:
        r.raise_for_status()
        with open(out, "wb") as f:
            for chunk in r.iter_content(1 << 16):
                f.write(chunk)


def _matches(path: Path, entry: ManifestEntry) -> bool:
    return path.stat().st_size == entry.size and sha256_of(path) == entry.sha256


def _network_error(exc: BaseException) -> bool:
    """True for errors that mean the source cannot be reached at all (as opposed to one bad file)."""
    names = {c.__name__ for c in type(exc).__mro__}
    return isinstance(exc, (ConnectionError, TimeoutError)) or bool(names & {"ConnectionError", "Timeout"})


def _fetch_file(entry: ManifestEntry, target: Path, mirror: Optional[Path], download: Optional[Downloader],
                attempts: int, unreachable: threading.Event) -> str:
    """Make ``target`` a verified copy of ``entry``; returns "present", "mirror" or "download", plus
    "+replaced" when a wrong file was there. Raises :class:`_FileError` with a one-line reason. When a file
    cannot be downloaded because the source is unreachable, ``unreachable`` is set and later downloads
    are not attempted (an offline machine fails in seconds, not once per file)."""
    replaced = ""
    if target.is_file():
        if _matches(target, entry):
            return "present"
        target.unlink()  # wrong or truncated: never used
        replaced = "+replaced"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")  # plain file mode, unlike mkstemp
    try:
        src = mirror / entry.mirror_path if mirror is not None else None
        if src is not None and src.is_file():
            shutil.copyfile(src, tmp)
            if not _matches(tmp, entry):
                raise _FileError(f"the mirror copy {src} is corrupt or truncated (size {tmp.stat().st_size}, "
                                 f"expected {entry.size} with sha256 {entry.sha256[:12]}...); replace it or "
                                 f"unset {MIRROR_ENV}")
            origin = "mirror"
        elif download is None:
            raise _FileError(f"not in the mirror ({src}) and downloads are off")
        elif unreachable.is_set():
            raise _FileError("not attempted: the source is unreachable")
        else:
            reason, offline = "", False
            for _ in range(attempts):
                try:
                    download(entry.url, tmp)
                except Exception as exc:  # network errors come in many types (requests, urllib3, OSError)
                    offline = _network_error(exc)
                    reason = f"{type(exc).__name__}" if offline else f"download failed ({type(exc).__name__}: {exc})"
                    continue
                if _matches(tmp, entry):
                    break
                reason, offline = (f"downloaded file is corrupt or truncated ({tmp.stat().st_size} of "
                                   f"{entry.size} bytes)"), False
            else:
                if offline:
                    unreachable.set()
                raise _FileError(f"{reason} from {entry.url}")
            origin = "download"
        os.replace(tmp, target)
        return origin + replaced
    finally:
        tmp.unlink(missing_ok=True)


def _remove_stale_parts(dest: Path) -> None:
    for p in dest.rglob(".*.part"):
        p.unlink(missing_ok=True)


def _remove_empty_dirs(dest: Path, keep_root: bool) -> None:
    for d in sorted((p for p in dest.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
    if not keep_root and not any(dest.iterdir()):
        dest.rmdir()


def fetch_dataset(name: str, dest: Union[str, Path, None] = None, *, with_originals: bool = False, jobs: int = 8,
                  manifest: Optional[dict[str, ManifestEntry]] = None, mirror: Union[str, Path, None, bool] = True,
                  download: Optional[Downloader] = http_download, progress: bool = False) -> FetchReport:
    """Fetch dataset ``name`` (see :data:`DATASETS`) into ``dest`` (default :func:`default_dest`), verified.

    ``mirror``: ``True`` uses ``$MFIRRN_ASSET_MIRROR`` when set, a path uses that folder, ``False``/``None``
    none. ``download``: ``fn(url, out_path)``, or None to allow no downloads. ``jobs`` threads fetch in
    parallel. Files already in place and verified are kept, so a rerun resumes. Raises
    :class:`DataFetchError` after trying every file when some could not be fetched; the complete-marker
    (``.mfirrn-fetch.json``) is written only when all verified.
    """
    manifest = load_manifest() if manifest is None else manifest
    files = plan(name, manifest, with_originals)
    if not files:
        raise DataFetchError(f"dataset {name!r}: the manifest lists none of its files")
    dest = Path(dest).expanduser() if dest is not None else default_dest(name)
    mirror_root = mirror_dir() if mirror is True else (Path(mirror).expanduser() if mirror else None)
    report = FetchReport(name, dest, files=len(files), bytes=sum(e.size for e, _ in files))
    existed = dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    (dest / COMPLETE_MARKER).unlink(missing_ok=True)
    _remove_stale_parts(dest)
    from tqdm import tqdm

    bar = tqdm(total=report.bytes, unit="B", unit_scale=True, desc=name, disable=not progress)
    unreachable = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = {pool.submit(_fetch_file, e, dest / rel, mirror_root, download, 3, unreachable): (e, rel)
                   for e, rel in files}
        for fut in as_completed(futures):
            entry, rel = futures[fut]
            try:
                how = fut.result()
            except _FileError as exc:
                report.failed.append((rel, str(exc)))
            else:
                report.replaced += how.endswith("+replaced")
                how = how.split("+")[0]
                report.present += how == "present"
                report.copied += how == "mirror"
                report.downloaded += how == "download"
            bar.update(entry.size)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    rows = None
    if not report.failed and _spec(name).without:
        try:
            rows = select_rows(dest, _left_out(_spec(name), manifest))
        except ValueError as exc:  # an upstream array np.load refuses (verified files: not expected)
            raise DataFetchError(f"{name}: cannot select the rows of {dest / UPSTREAM} ({exc}); delete {dest} and "
                                 f"fetch again") from None
    if report.failed:
        _remove_empty_dirs(dest, keep_root=existed)
        command = f"`mfirrn data fetch {name}{'' if dest == default_dest(name) else f' --dest {dest}'}`"
        kept = report.files - len(report.failed)
        rerun = f"the {kept} verified files are kept: rerun {command} to resume" if kept else f"then rerun {command}"
        tried = sorted((why.startswith("not attempted"), rel, why) for rel, why in report.failed)
        _, rel, why = tried[0]
        if unreachable.is_set():
            raise DataFetchError(
                f"cannot reach raw.githubusercontent.com ({why.split(' from ')[0]}); {len(report.failed)} of "
                f"{report.files} files of {name} are missing: connect to the internet, or set {MIRROR_ENV} to a "
                f"folder holding {_MIRROR_PREFIX}/test_codes/; {rerun}")
        raise DataFetchError(f"{len(report.failed)} of {report.files} files of {name} could not be fetched "
                             f"(first: {rel}: {why}); {rerun}")
    meta = {"dataset": name, "source": f"https://github.com/{SOURCE_REPO}/tree/{SOURCE_COMMIT}/test_codes",
            "with_originals": with_originals, "files": report.files, "bytes": report.bytes,
            **({"rows": rows} if rows is not None else {}),
            "licence": _spec(name).licence, "fetched": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    atomic_write(dest / COMPLETE_MARKER, json.dumps(meta, indent=2) + "\n")
    return report


def ensure_dataset(name: str, *, with_originals: bool = False, progress: bool = True,
                   say: Callable[[str], None] = print) -> Path:
    """The default fetched copy of dataset ``name`` (:func:`default_dest`), fetched there first when it is
    missing or incomplete (``with_originals``: also when it lacks the original photos); what notebooks call
    for data a newcomer does not have yet.

    Before fetching, ``say`` gets one line naming the dataset, its file count and size, where it comes from
    and where it goes; after, :meth:`FetchReport.line`. Files already there are kept (an interrupted fetch
    resumes). Raises :class:`DataFetchError` as :func:`fetch_dataset` does.
    """
    found = fetched_root(name, with_originals)
    if found is not None:
        return found
    spec, dest = _spec(name), default_dest(name)
    files = plan(name, with_originals=with_originals)
    mirror = mirror_dir()
    source = f"github.com/{SOURCE_REPO} at {SOURCE_COMMIT[:12]}"
    origin = f"the mirror {mirror} (else {source})" if mirror else source
    extra = " with the original photos" if with_originals else ""
    say(f"fetching {name}{extra} ({spec.what}): {len(files)} files, {sum(e.size for e, _ in files) / 1e6:.1f} MB "
        f"from {origin} into {dest}, each checked against its sha256; `mfirrn data fetch {name}` does the same")
    report = fetch_dataset(name, dest, with_originals=with_originals, progress=progress)
    say(report.line())
    return dest
