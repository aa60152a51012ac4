"""The results table of a folder-scale run: one Parquet row per face (``OUT/faces.parquet``).

While a run goes, rows are committed in batches as part files (``OUT/faces.parquet.parts/part-*.parquet``,
each written whole and renamed into place); when the run ends the parts become one file sorted by image and
face, so a resumed run ends with the same bytes as an uninterrupted one. The columns are :data:`COLUMNS`
(documented in docs/dataset.md); pandas, polars and DuckDB read both the file and the parts folder.
Needs pyarrow (``pip install 'mfirrn[table]'``).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

__all__ = ["TABLE", "PARTS", "COLUMNS", "face_rows", "empty_rows", "schema", "TableWriter", "read_table",
           "finish_table", "start_table", "need_pyarrow"]

PathLike = Union[str, Path]

TABLE = "faces.parquet"
PARTS = "faces.parquet.parts"

#: Column -> meaning (units); the order of the table.
COLUMNS = {
    "image": "path of the image relative to the inputs' root (``/`` separators)",
    "face": "index of the face in the image (order of the detector's boxes)",
    "image_width": "image width, pixels",
    "image_height": "image height, pixels",
    "box": "detector box x0, y0, x1, y1 in pixels (null when the face came from --landmarks)",
    "score": "detector score (null when the box was given)",
    "confidence": "the face verifier's confidence in [0, 1] that it is a human face, null where it did not run",
    "roi": "crop box x0, y0, x1, y1 in pixels that the network saw",
    "refined": "whether the face got the refinement passes",
    "params": "the 62 de-normalised 3DMM parameters (12 pose, 40 shape, 10 expression)",
    "yaw": "head yaw, degrees", "pitch": "head pitch, degrees", "roll": "head roll, degrees",
    "landmarks": "68 landmarks, (x, y, z) image pixels each",
}


def need_pyarrow() -> None:
    """Raise ``ImportError`` with the install line when pyarrow is missing."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ImportError("--outputs table needs pyarrow: pip install 'mfirrn[table]'") from None


def schema():
    """The pyarrow schema of the table."""
    import pyarrow as pa

    f64 = pa.float64()
    return pa.schema([
        ("image", pa.string()), ("face", pa.int32()), ("image_width", pa.int32()), ("image_height", pa.int32()),
        ("box", pa.list_(f64, 4)), ("score", f64), ("confidence", f64), ("roi", pa.list_(f64, 4)),
        ("refined", pa.bool_()), ("params", pa.list_(f64, 62)),
        ("yaw", f64), ("pitch", f64), ("roll", f64), ("landmarks", pa.list_(pa.list_(f64, 3), 68)),
    ])


def empty_rows() -> dict[str, list]:
    return {c: [] for c in COLUMNS}


def _finite(v: Any) -> Optional[float]:
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) else None


def face_rows(image: str, faces: Sequence, width: int, height: int) -> dict[str, list]:
    """Rows (column -> list, plain Python values) of the faces (:class:`mfirrn.inference.pipeline.Face`) of one
    image named ``image``. ``confidence`` is read from ``face.confidence`` when faces carry it."""
    from mfirrn.inference.sources import show_path

    rows = empty_rows()
    image = show_path(image)  # a file name that is not UTF-8 (Latin-1 bytes) is stored with \xNN escapes
    for k, f in enumerate(faces):
        rows["image"].append(image)
        rows["face"].append(k)
        rows["image_width"].append(int(width))
        rows["image_height"].append(int(height))
        rows["box"].append(None if f.box is None else [float(v) for v in f.box[:4]])
        rows["score"].append(_finite(f.score))
        rows["confidence"].append(_finite(getattr(f, "confidence", None)))
        rows["roi"].append([float(v) for v in f.roi])
        rows["refined"].append(bool(f.refined))
        rows["params"].append([float(v) for v in f.params])
        for a in ("yaw", "pitch", "roll"):
            rows[a].append(float(f.pose[a]))
        rows["landmarks"].append([[float(c) for c in p] for p in np.asarray(f.landmarks)[:, :3]])
    return rows


def _to_parquet(table, path: Path, metadata: Optional[dict]) -> None:
    import pyarrow.parquet as pq

    from mfirrn.io.fileio import atomic_write

    if metadata is not None:
        table = table.replace_schema_metadata({"mfirrn": json.dumps(metadata, sort_keys=True)})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    atomic_write(path, buf.getvalue())


class TableWriter:
    """Collect rows and commit them as part files of ``OUT/faces.parquet.parts`` every ``batch`` rows or
    ``seconds`` (and at :meth:`commit`). A part is written whole and renamed into place: readers never see half
    a part, and a kill loses at most the rows of the last few seconds."""

    def __init__(self, out_dir: PathLike, batch: int = 256, seconds: float = 5.0) -> None:
        need_pyarrow()
        self.parts = Path(out_dir) / PARTS
        self.batch, self.seconds = batch, seconds
        self._last = time.monotonic()
        self._rows = empty_rows()
        self._n = len(list(self.parts.glob("part-*.parquet"))) if self.parts.is_dir() else 0

    @property
    def pending(self) -> int:
        return len(self._rows["image"])

    def add(self, rows: dict[str, list]) -> bool:
        """Add rows; returns whether a part was committed (then every row added so far is on disk)."""
        for c in COLUMNS:
            self._rows[c] += rows[c]
        if self.pending >= self.batch or time.monotonic() - self._last >= self.seconds:
            self.commit()
            return True
        return False

    def commit(self) -> None:
        self._last = time.monotonic()
        if not self.pending:
            return
        import pyarrow as pa

        table = pa.Table.from_pydict(self._rows, schema=schema())
        while (self.parts / f"part-{self._n:06d}.parquet").exists():
            self._n += 1
        _to_parquet(table, self.parts / f"part-{self._n:06d}.parquet", None)
        self._n += 1
        self._rows = empty_rows()


def read_table(path: PathLike):
    """The table (a ``pyarrow.Table``) of ``OUT/faces.parquet`` or of a parts folder (a run in progress)."""
    import pyarrow.parquet as pq

    return pq.read_table(path, schema=schema()) if Path(path).is_dir() else pq.read_table(path)


def finish_table(out_dir: PathLike, keep: Sequence[str], metadata: dict) -> Optional[Path]:
    """Merge the parts (and the table of an earlier end of this run) into ``OUT/faces.parquet``: rows of the
    images in ``keep`` (their order), each (image, face) once, sorted by image then face. Returns its path."""
    import pyarrow as pa

    out_dir = Path(out_dir)
    parts_dir, final = out_dir / PARTS, out_dir / TABLE
    tables = []
    if final.is_file():
        tables.append(read_table(final).replace_schema_metadata(None))
    if parts_dir.is_dir():
        for p in sorted(parts_dir.glob("part-*.parquet")):
            tables.append(read_table(p).replace_schema_metadata(None))
    table = pa.concat_tables(tables) if tables else schema().empty_table()
    from mfirrn.inference.sources import show_path

    order = {show_path(name): i for i, name in enumerate(keep)}
    images = table.column("image").to_pylist()
    faces = table.column("face").to_pylist()
    first: dict[tuple[str, int], int] = {}
    for i, key in enumerate(zip(images, faces)):
        if key[0] in order:
            first.setdefault(key, i)
    rows = sorted(first, key=lambda k: (order[k[0]], k[1]))
    table = table.take(pa.array([first[k] for k in rows], pa.int64())) if rows else schema().empty_table()
    _to_parquet(table, final, metadata)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return final


def start_table(out_dir: PathLike, resume: bool) -> None:
    """Before a run: a fresh run drops an earlier table and its parts; a resumed run keeps them (the finished
    table is merged again at the end)."""
    out_dir = Path(out_dir)
    if not resume:
        shutil.rmtree(out_dir / PARTS, ignore_errors=True)
        if (out_dir / TABLE).is_file():
            os.unlink(out_dir / TABLE)
