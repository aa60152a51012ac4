"""What kind of medium a file is, by name and, for a GIF, by its frame count: a clip or a photo.

Shared by the folder walks of :mod:`mfirrn.inference.sources` and the video reader of :mod:`mfirrn.video.io`,
so that a file is a clip for one exactly when it is for the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import cv2

__all__ = ["VIDEO_SUFFIXES", "is_video"]

#: Suffixes of video files (any case).
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm"})


def is_video(path: Union[str, Path]) -> bool:
    """Whether ``path`` is a clip: a video suffix (mp4, m4v, avi, mov, mkv, webm), or a GIF file of more than
    one frame (an animated GIF; a one-frame GIF is a photo).

    >>> is_video("a.MOV"), is_video("b.webm"), is_video("c.jpg"), is_video("missing.gif")
    (True, True, False, False)
    """
    p = Path(str(path))
    suffix = p.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return True
    if suffix != ".gif" or not p.is_file():
        return False
    try:
        return cv2.imcount(str(p)) > 1
    except cv2.error:  # not a GIF inside: the photo reader reports it
        return False
