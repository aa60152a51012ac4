"""Small mirrors of the canonical data source (``XgTu/2DASL`` in the ``$MFIRRN_ASSET_MIRROR`` layout) built from
real files of the shared datasets, with the matching subset of the packaged manifest: what ``mfirrn data fetch``
and the notebooks' data steps fetch in tests without the internet.

* :func:`aflw2000_mirror`: the first ``n`` dev-split crops (and their originals), the crop list and the
  ``test.configs`` arrays cut to them;
* :func:`aflw_train_mirror`: an AFLW source of ``n_pool`` crops of the training pool interleaved with
  ``n_faces`` crops of AFLW2000-3D faces (their manifest entries are listed, their files are *not* in the
  mirror: the fetch must leave them out), the source's list and arrays for those rows.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from mfirrn.io import fetch as datafetch
from mfirrn.io.fetch import ManifestEntry

D, C = "test_codes/test.data/", "test_codes/test.configs/"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def mirror_file(root: Path, rel: str) -> Path:
    return root / datafetch._MIRROR_PREFIX / rel


def _put(root: Path, manifest: dict, rel: str, data: bytes) -> None:
    manifest[rel] = ManifestEntry(rel, len(data), sha(data))
    mirror_file(root, rel).parent.mkdir(parents=True, exist_ok=True)
    mirror_file(root, rel).write_bytes(data)


def _put_source_file(root: Path, manifest: dict, packaged: dict, rel: str, src: Path) -> None:
    """A file of the source itself: its bytes must be the packaged manifest's."""
    data = src.read_bytes()
    assert packaged[rel] == ManifestEntry(rel, len(data), sha(data)), rel
    manifest[rel] = packaged[rel]
    mirror_file(root, rel).parent.mkdir(parents=True, exist_ok=True)
    mirror_file(root, rel).write_bytes(data)


def aflw2000_mirror(root: Path, dev_root: Path, packaged: dict, n: int = 6, originals: bool = True) -> dict:
    """Mirror ``n`` dev crops (plus photos and ``.mat`` fits), their list and arrays under ``root``; returns the
    manifest of those files."""
    from mfirrn.evaluation.benchmark import resolve_aflw2000_root

    data_dir, configs = resolve_aflw2000_root(dev_root)
    names = (data_dir / "AFLW2000-3D_crop.list").read_text().split()[:n]
    manifest: dict = {}
    for name in names:
        _put_source_file(root, manifest, packaged, f"{D}AFLW2000-3D_crop/{name}", data_dir / "AFLW2000-3D_crop" / name)
        if originals:
            stem = name.rsplit(".", 1)[0]
            for f in (f"{stem}.jpg", f"{stem}.mat"):
                _put_source_file(root, manifest, packaged, f"{D}AFLW-2000-3D/{f}", data_dir / "AFLW2000-3D" / f)
    _put(root, manifest, f"{D}AFLW2000-3D_crop.list", ("\n".join(names) + "\n").encode())
    for f in sorted(configs.glob("AFLW2000-3D*.npy")):
        _put(root, manifest, f"{C}{f.name}", npy_bytes(np.load(f)[:n]))
    return manifest


def aflw_train_mirror(root: Path, pool_root: Path, packaged: dict, n_pool: int = 14,
                      faces: tuple[str, ...] = ("image00002.jpg", "image00004.jpg", "image00006.jpg")) -> dict:
    """Mirror an AFLW source of ``n_pool`` pool crops with the AFLW2000-3D ``faces`` between them; returns its
    manifest (which lists the ``faces`` in both crop folders, as the real source does, with no file in the
    mirror: combined with :func:`aflw2000_mirror`, name faces that one mirrors). The pool rows keep the shared
    pool's points, boxes and yaws; the face rows get other values."""
    pool_names = (pool_root / "AFLW_GT_crop.list").read_text().split()[:n_pool]
    arrays = {f: np.load(pool_root / f)[:n_pool] for f in ("AFLW_GT_pts21.npy", "AFLW_GT_crop_roi_box.npy",
                                                          "AFLW_GT_crop_yaws.npy")}
    order = list(pool_names)
    for k, face in enumerate(faces):  # spread the faces through the list
        order.insert(min(len(order), 1 + k * (n_pool // max(1, len(faces)))), face)
    rows = {name: i for i, name in enumerate(pool_names)}
    manifest: dict = {}
    for name in pool_names:
        _put_source_file(root, manifest, packaged, f"{D}AFLW_GT_crop/{name}", pool_root / "AFLW_GT_crop" / name)
    for face in faces:
        for folder in ("AFLW_GT_crop", "AFLW2000-3D_crop"):
            rel = f"{D}{folder}/{face}"
            manifest[rel] = packaged[rel]  # listed by the source, never fetched by aflw-train
    _put(root, manifest, f"{D}AFLW_GT_crop.list", "".join(n + "\n" for n in order).encode())
    for f, a in arrays.items():
        full = np.stack([a[rows[n]] if n in rows else np.full_like(a[0], 7) for n in order])
        _put(root, manifest, f"{C}{f}", npy_bytes(full.astype(a.dtype)))
    return manifest


def with_assets(root: Path, assets_mirror: Path) -> None:
    """Make the data mirror under ``root`` also serve the assets of ``assets_mirror`` (symbolic links), as one
    ``$MFIRRN_ASSET_MIRROR`` must serve both."""
    for dirpath, dirnames, filenames in os.walk(assets_mirror):
        rel = Path(dirpath).relative_to(assets_mirror)
        if rel.parts[:5] == ("github", "XgTu", "2DASL", datafetch.SOURCE_COMMIT, "test_codes"):
            dirnames[:] = []
            continue
        for f in filenames:
            link = root / rel / f
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(Path(dirpath) / f)
