"""The inputs of a folder-scale job: paths from folders, globs and lists, their common root, and cheap checks.

Nothing here decodes an image: :func:`image_size` reads the size from the file header, so a 40000x40000
PNG is refused in microseconds instead of allocating gigabytes (:func:`check_pixel_count`).
"""

from __future__ import annotations

import glob
import os
import struct
from collections import Counter
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from mfirrn.io.media import VIDEO_SUFFIXES, is_video

__all__ = ["IMAGE_SUFFIXES", "HEIF_SUFFIXES", "UNREAD_SUFFIXES", "MAX_PIXELS", "InputListError", "expand_inputs",
           "read_path_list", "unread_note", "common_root", "relative_name", "image_size", "too_many_pixels",
           "check_pixel_count", "check_boxes_in_image",
           "glob_base", "show_path", "takes"]

PathLike = Union[str, Path]

#: HEIF photos (phones' HEIC): decoded by libheif (the ``pillow-heif`` wheel), not by OpenCV.
HEIF_SUFFIXES = frozenset({".heic", ".heif", ".hif"})
#: The suffixes a folder is searched for: the formats OpenCV decodes (a GIF of one frame; an animated GIF is a clip,
#: :func:`takes`) and HEIF.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".avif",
                            ".jp2", ".gif", ".ppm", ".pgm", ".pbm", ".pnm"}) | HEIF_SUFFIXES
#: Photo formats that are not decoded (JPEG XL, cameras' raw files): counted in folders, so the summary can say
#: they were left out.
UNREAD_SUFFIXES = frozenset({".jxl", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2"})
#: Largest image decoded (pixels): 2^28 = 268 megapixels, 800 MB as BGR. Above it one line names the image.
MAX_PIXELS = 1 << 28


class InputListError(ValueError):
    """A ``--list`` file cannot be read as paths; the message names the file and the fix."""


def show_path(path: PathLike) -> str:
    """A path as it can be printed: undecodable bytes of a file name (``\\udce9``) shown as ``\\xe9``.

    >>> show_path("caf\\udce9.jpg")
    'caf\\\\xe9.jpg'
    """
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def takes(path: Path, suffixes: frozenset[str]) -> bool:
    """Whether a folder walk for ``suffixes`` (images, or :data:`mfirrn.io.media.VIDEO_SUFFIXES`) takes the file
    ``path``: by its suffix, except a GIF, which is a clip when animated (:func:`mfirrn.io.media.is_video`, as for a
    GIF given as a file) and a photo otherwise."""
    suffix = path.suffix.lower()
    if suffix != ".gif":
        return suffix in suffixes
    return bool(suffixes & VIDEO_SUFFIXES) if is_video(path) else ".gif" in suffixes


def _other_medium(path: Path, suffixes: frozenset[str]) -> bool:
    """Whether ``path`` is a clip in a walk for images, or a photo in a walk for clips (:func:`takes`); files of
    neither kind are not (a glob keeps them, to be reported)."""
    clip = is_video(path)
    return clip != bool(suffixes & VIDEO_SUFFIXES) and (clip or path.suffix.lower() in IMAGE_SUFFIXES)


def _walk_images(folder: Path, others: Optional[Counter] = None,
                 suffixes: frozenset[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Files under ``folder`` that a walk for ``suffixes`` (default: images) :func:`takes`, recursively, sorted;
    hidden entries and symlinked folders are not entered (a symlink loop cannot repeat inputs). The other
    (non-hidden) files are counted by lower-case suffix in ``others`` (an animated GIF of a walk for images as
    ``.gif``)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
        for f in filenames:
            if _is_hidden(f):
                continue
            p = Path(dirpath) / f
            if takes(p, suffixes) and p.is_file():  # by name first: no stat for the other files
                found.append(p)
            elif others is not None:
                others[os.path.splitext(f)[1].lower()] += 1
    return sorted(found)


def holds_file(folder: Path, suffixes: frozenset[str]) -> bool:
    """Whether ``folder`` holds, at any depth, a file that a walk for ``suffixes`` :func:`takes` (the entries
    :func:`expand_inputs` walks; stops at the first)."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not _is_hidden(d)]
        for f in filenames:
            if not _is_hidden(f) and takes(Path(dirpath) / f, suffixes):
                return True
    return False


def unread_note(others: Counter) -> str:
    """How many photos of formats OpenCV does not read (:data:`UNREAD_SUFFIXES`) are among ``others`` (file counts
    by suffix, from :func:`expand_inputs`), and the fix; "" when none.

    >>> for part in unread_note(Counter({".jxl": 2, ".txt": 5, ".dng": 1, ".heic": 4})).split("; "):
    ...     print(part)
    3 photo(s) in formats OpenCV cannot decode were left out (2 .jxl, 1 .dng)
    convert them to JPEG or PNG to include them
    """
    unread = Counter({s: n for s, n in others.items() if s in UNREAD_SUFFIXES})
    if not unread:
        return ""
    kinds = ", ".join(f"{n} {s}" for s, n in unread.most_common())
    return (f"{sum(unread.values())} photo(s) in formats OpenCV cannot decode were left out ({kinds}); convert them to "
            f"JPEG or PNG to include them")


def is_glob(item: str) -> bool:
    return any(c in item for c in "*?[")


def glob_base(pattern: str) -> Path:
    """The folder a glob pattern starts from: its leading components without wildcards.

    >>> glob_base("photos/*/x.jpg"), glob_base("*.png")
    (PosixPath('photos'), PosixPath('.'))
    """
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if is_glob(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def expand_inputs(items: Sequence[str], suffixes: Iterable[str] = IMAGE_SUFFIXES,
                  others: Optional[Counter] = None) -> tuple[list[Path], int]:
    """Paths of ``items``: files as given, folders -> their images at any depth (sorted), glob patterns -> their
    matches (sorted; ``**`` recurses; a clip matched in a walk for images, or a photo in a walk for clips, is left to
    the other kind of run). Returns ``(paths, n_duplicates)``: a file reached twice (the same file through a symlink
    loop, or named by two arguments) is kept once, at its first place. ``others`` counts, by lower-case suffix, the
    other files found in folders and the files a glob left to the other kind of run (see :func:`unread_note`).

    A pattern that matches nothing is kept as a path, so it is reported as a missing file.
    """
    suffixes = frozenset(suffixes)
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += _walk_images(p, others, suffixes)
        elif not p.exists() and is_glob(item):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files and not matches:
                out.append(p)
            for m in files:  # a clip matched in a walk for images, a photo in a walk for clips: the other run's
                if not _other_medium(m, suffixes):
                    out.append(m)
                elif others is not None:
                    others[m.suffix.lower()] += 1
        else:
            out.append(p)
    seen: set[str] = set()
    unique: list[Path] = []
    for p in out:
        key = os.path.realpath(p) if p.exists() else os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique, len(out) - len(unique)


def read_path_list(path: PathLike, column: Optional[str] = None) -> list[str]:
    """The paths of a ``--list`` file: one per line of a text file, or a column of a Parquet table (``.parquet``;
    ``column`` names it, default ``path``). Blank lines are skipped; lines are file-system bytes, so a list
    in Latin-1 names the same files as ``ls`` shows. Raises :class:`InputListError` for a file that is missing,
    binary, or names no path."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return _parquet_column(path, column or "path")
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise InputListError(f"--list {path} is a folder; give a text file with one image path per line "
                             f"(or pass the folder as IMAGE)") from None
    except OSError as e:
        raise InputListError(f"cannot read --list {path}: {e.strerror}") from None
    if b"\0" in data:
        line = data[:data.index(b"\0")].count(b"\n") + 1
        raise InputListError(f"--list {path} is not a text file (a NUL byte on line {line}); give one image path per "
                             f"line")
    items = [os.fsdecode(s.strip()) for s in data.splitlines() if s.strip()]
    if not items:
        raise InputListError(f"--list {path} names no image; give one image path per line")
    return items


def _parquet_column(path: Path, column: str) -> list[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputListError("a --list .parquet file needs pyarrow: pip install 'mfirrn[table]'") from None
    try:
        schema = pq.read_schema(path)
        if column not in schema.names:
            raise InputListError(f"--list {path} has no column {column!r} (columns: {', '.join(schema.names)}); "
                                 f"name it with --list-column")
        values = pq.read_table(path, columns=[column]).column(column).to_pylist()
    except InputListError:
        raise
    except Exception as e:  # pyarrow's errors: not a Parquet file, damaged
        why = (str(e).splitlines() or [type(e).__name__])[0]
        raise InputListError(f"cannot read --list {path} as Parquet ({why})") from None
    items = [str(v) for v in values if v is not None and str(v).strip()]
    if not items:
        raise InputListError(f"--list {path}: column {column!r} names no image")
    return items


def common_root(paths: Sequence[PathLike]) -> Path:
    """The deepest folder holding every path (absolute, symlinks kept as written); outputs mirror the tree
    below it.

    >>> str(common_root(["/d/a/x.jpg", "/d/b/y.jpg"])), str(common_root(["/d/a/x.jpg"]))
    ('/d', '/d/a')
    """
    if not paths:
        raise ValueError("common_root of no paths")
    return Path(os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths]))


def relative_name(path: PathLike, root: PathLike) -> str:
    """``path`` relative to ``root``, with ``/`` separators (the key of an input in the run record and the table)."""
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root))).as_posix()


def _png_size(head: bytes) -> Optional[tuple[int, int]]:
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        return w, h
    return None


def _webp_size(head: bytes) -> Optional[tuple[int, int]]:
    if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return None
    kind = head[12:16]
    if kind == b"VP8X":
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    if kind == b"VP8L":
        b = int.from_bytes(head[21:25], "little")
        return 1 + (b & 0x3FFF), 1 + ((b >> 14) & 0x3FFF)
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _jpeg_size(f) -> Optional[tuple[int, int]]:
    f.seek(2)
    while True:
        b = f.read(1)
        while b and b != b"\xff":
            b = f.read(1)
        while b == b"\xff":
            b = f.read(1)
        if not b:
            return None
        marker = b[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            continue
        seg = f.read(2)
        if len(seg) < 2:
            return None
        length = struct.unpack(">H", seg)[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            data = f.read(5)
            if len(data) < 5:
                return None
            h, w = struct.unpack(">HH", data[1:5])
            return w, h
        if length < 2:
            return None
        f.seek(length - 2, os.SEEK_CUR)


def image_size(path: PathLike) -> Optional[tuple[int, int]]:
    """``(width, height)`` from the header of a PNG, JPEG, BMP, GIF or WebP file without decoding it, else ``None``
    (another format, or a header too damaged to say: the decoder then decides)."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            if len(head) < 26:
                return None
            size = _png_size(head) or _webp_size(head)
            if size is None and head[:6] in (b"GIF87a", b"GIF89a"):
                size = struct.unpack("<HH", head[6:10])
            if size is None and head[:2] == b"BM":
                w, h = struct.unpack("<ii", head[18:26])
                size = abs(w), abs(h)
            if size is None and head[:2] == b"\xff\xd8":
                size = _jpeg_size(f)
            return size
    except (OSError, struct.error):
        return None


def too_many_pixels(name: str, width: int, height: int, max_pixels: int = MAX_PIXELS) -> str:
    """The line that refuses an image ``name`` of ``width`` x ``height`` pixels when that is more than ``max_pixels``,
    else "".

    >>> too_many_pixels("huge.png", 40000, 40000), too_many_pixels("a.png", 10, 10)
    ('huge.png: 40000x40000 pixels is more than the 268 megapixels reconstruct decodes; downscale it', '')
    """
    if width * height <= max_pixels:
        return ""
    return (f"{name}: {width}x{height} pixels is more than the {max_pixels / 1e6:.0f} megapixels reconstruct "
            f"decodes; downscale it")


def check_pixel_count(path: PathLike, max_pixels: int = MAX_PIXELS) -> None:
    """Raise ``ValueError`` naming the image when its header says it has more than ``max_pixels`` pixels."""
    size = image_size(path)
    if size is not None and (line := too_many_pixels(show_path(path), size[0], size[1], max_pixels)):
        raise ValueError(line)


def check_boxes_in_image(boxes: np.ndarray, width: int, height: int, max_scale: float = 4.0) -> None:
    """Raise ``ValueError`` for a face box (F, 4) that misses the image or is far larger than it (``max_scale``
    times its longer side): its crop would show only padding, or not fit in memory.

    >>> check_boxes_in_image(np.array([[10.0, 10, 60, 60]]), 100, 100)
    >>> check_boxes_in_image(np.array([[200.0, 10, 260, 60]]), 100, 100)
    Traceback (most recent call last):
    ...
    ValueError: --box 200,10,260,60 lies outside the image (100x100 pixels); give a box around a face
    """
    for b in np.asarray(boxes, np.float64)[:, :4]:
        text = ",".join(f"{v:g}" for v in b)
        if not np.isfinite(b).all():
            raise ValueError(f"--box {text} is not a finite box")
        if b[2] <= 0 or b[3] <= 0 or b[0] >= width or b[1] >= height:
            raise ValueError(f"--box {text} lies outside the image ({width}x{height} pixels); give a box around a face")
        if max(b[2] - b[0], b[3] - b[1]) > max_scale * max(width, height):
            raise ValueError(f"--box {text} is far larger than the image ({width}x{height} pixels); give a box "
                             f"around a face")
