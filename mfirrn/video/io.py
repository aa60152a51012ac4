"""Video in and out with OpenCV's video I/O (its wheels bundle FFmpeg): files and cameras.

:class:`VideoReader` yields ``(index, time_s, frame)`` with BGR uint8 frames; :class:`VideoWriter`
writes an MPEG-4 (``mp4v``) ``.mp4`` that is published only when complete (written to a temp file
beside it and renamed on :meth:`VideoWriter.close`). Bad inputs raise :class:`VideoError` with one
line naming the file and the fix.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

import cv2
import numpy as np

from mfirrn.io.media import VIDEO_SUFFIXES, is_video  # re-exported: what a clip is

__all__ = ["VIDEO_SUFFIXES", "VideoError", "VideoInfo", "VideoReader", "VideoWriter", "is_video"]



@contextlib.contextmanager
def _quiet():
    """Silence OpenCV's and FFmpeg's own log lines while a video is opened (we raise one clear error
    instead). FFmpeg's level is read from ``OPENCV_FFMPEG_LOGLEVEL`` when its backend starts; a value the
    user set is kept."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    from cv2.utils import logging as cv_logging

    level = cv_logging.getLogLevel()
    cv_logging.setLogLevel(cv_logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv_logging.setLogLevel(level)


class VideoError(ValueError):
    """A video (or camera) cannot be opened or decoded; the message names it and the fix."""


@dataclass(frozen=True)
class VideoInfo:
    """``width``, ``height`` (pixels), ``fps`` (frames per second; 30 when the container gives none) and
    ``n_frames`` (the container's count, 0 when unknown, e.g. a camera)."""

    width: int
    height: int
    fps: float
    n_frames: int


class VideoReader:
    """Frames of a video file, or of a camera given as an ``int`` index.

    Iterating yields ``(index, time, frame)``: frame index from 0, presentation time in seconds (the
    decoder's timestamp, or ``index / fps`` where the stream has none) and the BGR uint8 (H, W, 3) frame.
    Opening a missing, empty, corrupt or undecodable file raises :class:`VideoError`.
    """

    def __init__(self, source: Union[str, Path, int], max_frames: Optional[int] = None) -> None:
        self.source, self.max_frames = source, max_frames
        self.name = f"camera {source}" if isinstance(source, int) else str(source)
        if isinstance(source, int):
            with _quiet():
                cap = cv2.VideoCapture(source)
            if not cap.isOpened():
                raise VideoError(f"camera {source} cannot be opened; check that it exists (e.g. /dev/video{source}) "
                                 f"and is not in use")
        else:
            path = Path(source)
            if not path.is_file():
                raise VideoError(f"{path}: no such file")
            if path.stat().st_size == 0:
                raise VideoError(f"{path}: the file is empty; re-encode or re-download the video")
            with _quiet():
                cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
            if not cap.isOpened():
                raise VideoError(f"{path}: not a readable video (corrupt, or a codec FFmpeg in OpenCV cannot decode); "
                                 f"re-encode it, e.g. `ffmpeg -i {path.name} -c:v libx264 out.mp4`")
        self._cap = cap
        with _quiet():
            ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise VideoError(f"{self.name}: no frame could be decoded (empty or corrupt video); re-encode or "
                             f"re-download it")
        self._first = first
        self._first_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
        fps = cap.get(cv2.CAP_PROP_FPS)
        n = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0) if not isinstance(source, int) else 0
        self.total_frames = n  # the container's count, whatever max_frames reads (0 when unknown)
        self.info = VideoInfo(first.shape[1], first.shape[0], float(fps) if fps and 0 < fps < 1000 else 30.0,
                              n if max_frames is None else min(n, max_frames) or max_frames)

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        if self._cap is None:
            raise VideoError(f"{self.name}: the reader is closed")
        frame, ms0, i, last_t = self._first, self._first_ms, 0, -1.0
        self._first = None
        while frame is not None:
            if self.max_frames is not None and i >= self.max_frames:
                break
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            ms = ms0 if i == 0 else self._cap.get(cv2.CAP_PROP_POS_MSEC)
            t = ms / 1000.0 if ms and ms > 0 else i / self.info.fps
            if t <= last_t:  # missing or repeated timestamps: fall back to the frame rate
                t = last_t + 1.0 / self.info.fps
            yield i, t, frame
            last_t, i = t, i + 1
            ok, frame = self._cap.read()
            if not ok:
                frame = None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _complete(path: str, n_frames: int) -> bool:
    """Whether the video file at ``path`` opens and holds ``n_frames`` frames."""
    cap = cv2.VideoCapture(path)
    try:
        return cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) >= n_frames
    finally:
        cap.release()


class VideoWriter:
    """Write BGR uint8 frames of one size to ``path`` (``.mp4``, MPEG-4 part 2) at ``fps``.

    The file appears only when :meth:`close` succeeds (as a ``with`` block ends without an exception);
    an exception inside the block leaves nothing behind.
    """

    def __init__(self, path: Union[str, Path], fps: float, fourcc: str = "mp4v") -> None:
        self.path, self.fps, self.fourcc = Path(path), float(fps), fourcc
        self._writer: Optional[cv2.VideoWriter] = None
        self._tmp: Optional[str] = None
        self._size: Optional[tuple[int, int]] = None
        self.n_frames = 0

    def write(self, frame: np.ndarray) -> None:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"VideoWriter: expected BGR uint8 (H, W, 3) frames, got {frame.dtype} {frame.shape}")
        size = (frame.shape[1], frame.shape[0])
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=self.path.suffix, dir=self.path.parent)
            os.close(fd)
            self._writer = cv2.VideoWriter(self._tmp, cv2.VideoWriter_fourcc(*self.fourcc), self.fps, size)
            if not self._writer.isOpened():
                self.abort()
                raise VideoError(f"{self.path}: OpenCV cannot write {self.fourcc} video here; write .mp4 or .avi")
            self._size = size
        elif size != self._size:
            raise ValueError(f"VideoWriter: frame size {size} differs from the first frame's {self._size}")
        self._writer.write(np.ascontiguousarray(frame))
        self.n_frames += 1

    def close(self) -> Optional[Path]:
        """Finish the file and move it into place; returns its path (``None`` if no frame was written)."""
        if self._writer is None or self._tmp is None:
            return None
        self._writer.release()
        self._writer = None
        if not _complete(self._tmp, self.n_frames):  # OpenCV does not report failed writes (a full disk)
            self.abort()
            raise VideoError(f"{self.path.name}: the video could not be written completely (is the disk full?); "
                             f"nothing was kept")
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.path)
        self._tmp = None
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._tmp is not None and os.path.exists(self._tmp):
            os.unlink(self._tmp)
        self._tmp = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
