"""Text labels on photos that stay readable: next to their face, never overlapping, inside the image, else numbered.

:func:`layout_labels` places one label per face (its text in a rectangle) greedily, faces from the top of
the image down: each takes the first of a few positions around its face box (above, below, beside; moved
inside the image) that overlaps no label placed before it, preferring one that covers no face. When some
label finds no such place, or only one that covers more than :data:`COVER_AT_MOST` of another face's box (a
crowd), every face gets its number instead (its index in ``faces``, as in the
JSON and the ``face<i>`` files), and the texts go into a legend in the image corner that covers the least
of the faces. The font scale follows the image size (:meth:`TextStyle.for_image`). :func:`draw_labels`
draws a layout: white text on a dark box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import cv2
import numpy as np

__all__ = ["TextStyle", "Label", "LabelLayout", "layout_labels", "draw_labels"]

FONT = cv2.FONT_HERSHEY_SIMPLEX
Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels; x1, y1 exclusive
#: A full label may cover at most this fraction of another face's box; where one can only be placed over more (a
#: crowded row of faces), every face is numbered and the texts go into the legend.
COVER_AT_MOST = 0.2


@dataclass(frozen=True)
class TextStyle:
    """Font ``scale`` (OpenCV Hershey simplex), stroke ``thickness`` and ``pad`` (pixels of box around the
    text and between a label and its face)."""

    scale: float = 0.45
    thickness: int = 1
    pad: int = 3

    @classmethod
    def for_image(cls, shape: Sequence[int]) -> "TextStyle":
        """A style for an image of ``shape`` (H, W, ...): text about 1.5 % of the longer side high (never
        below 0.35, about 8 pixels)."""
        side = max(int(shape[0]), int(shape[1]))
        scale = max(0.35, side / 1400)
        return cls(scale, max(1, round(scale * 1.6)), max(2, round(scale * 5)))

    def size(self, text: str) -> tuple[int, int]:
        """(width, height) in pixels of the box around one line of ``text``."""
        (w, h), base = cv2.getTextSize(text, FONT, self.scale, self.thickness)
        return w + 2 * self.pad, h + base + 2 * self.pad


@dataclass
class Label:
    """``lines`` of text drawn in ``rect`` (x0, y0, x1, y1, pixels, x1/y1 exclusive) in ``style``;
    ``face``: the index of the face it names, or -1 for the legend."""

    lines: list[str]
    rect: Rect
    face: int
    style: TextStyle = field(default_factory=TextStyle)


@dataclass
class LabelLayout:
    """The labels to draw: ``labels``, one per face (a full label or its number) plus the legend if
    ``numbered``."""

    labels: list[Label] = field(default_factory=list)
    numbered: bool = False


def _overlap(a: Rect, b: Rect) -> int:
    """Area (pixels) of the intersection of two rectangles."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0)


def _candidates(box: Rect, w: int, h: int, gap: int, width: int, height: int) -> list[Rect]:
    """Positions of a ``w`` x ``h`` label around ``box``, in order of preference, moved inside the image."""
    x0, y0, x1, y1 = box
    cx = (x0 + x1) // 2 - w // 2
    spots = [(x0, y0 - gap - h), (x1 - w, y0 - gap - h), (cx, y0 - gap - h), (x0, y1 + gap), (x1 - w, y1 + gap),
             (x1 + gap, y0), (x0 - gap - w, y0), (x1 + gap, y1 - h), (x0 - gap - w, y1 - h), (x0, y0)]
    out: list[Rect] = []
    for x, y in spots:
        x = min(max(x, 0), width - w)
        y = min(max(y, 0), height - h)
        r = (x, y, x + w, y + h)
        if r not in out:
            out.append(r)
    return out


def _place(box: Rect, w: int, h: int, gap: int, width: int, height: int, taken: list[Rect],
           faces: list[Rect], search: bool) -> Optional[Rect]:
    """The first candidate around ``box`` that overlaps nothing in ``taken``, preferring those covering the
    least of ``faces``; with ``search``, else the free spot nearest the box on a grid over the image, no
    farther from its centre than the box's size (or four label heights)."""
    if w > width or h > height:
        return None
    free = [r for r in _candidates(box, w, h, gap, width, height) if not any(_overlap(r, t) for t in taken)]
    if free:
        return min(free, key=lambda r: sum(_overlap(r, f) for f in faces))  # min keeps the first of ties
    if not search:
        return None
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    reach = max(box[2] - box[0], box[3] - box[1], 4 * h)  # no farther from the face than its size
    xs, ys = np.arange(0, width - w + 1, max(1, h // 2)), np.arange(0, height - h + 1, max(1, h // 2))
    gx, gy = np.meshgrid(xs, ys)
    d2 = ((gx + w / 2 - cx) ** 2 + (gy + h / 2 - cy) ** 2).ravel()
    order = np.argsort(d2, kind="stable")
    for k in order[d2[order] <= reach ** 2]:
        x, y = int(gx.ravel()[k]), int(gy.ravel()[k])
        r = (x, y, x + w, y + h)
        if not any(_overlap(r, t) for t in taken):
            return r
    return None


def _least_covering(w: int, h: int, width: int, height: int, step: int, faces: list[Rect]) -> tuple[Rect, int]:
    """The ``w`` x ``h`` rectangle on a grid of ``step`` pixels inside a ``width`` x ``height`` image that covers the
    least area of ``faces`` (the first in reading order on a tie), and that area. The areas of all places at once: a
    face's overlap is its overlap in x times its overlap in y, so the grid's areas are a product of two matrices.

    >>> _least_covering(10, 10, 40, 20, 5, [(0, 0, 20, 20)])
    ((20, 0, 30, 10), 0)
    """
    xs, ys = np.arange(0, width - w + 1, step), np.arange(0, height - h + 1, step)
    f = np.asarray(faces, np.int64).reshape(-1, 4)
    ox = np.clip(np.minimum(xs[None] + w, f[:, 2:3]) - np.maximum(xs[None], f[:, 0:1]), 0, None)  # (F, X)
    oy = np.clip(np.minimum(ys[None] + h, f[:, 3:4]) - np.maximum(ys[None], f[:, 1:2]), 0, None)  # (F, Y)
    cover = oy.T @ ox  # (Y, X): the area of the faces under each place
    k = int(np.argmin(cover))
    x, y = int(xs[k % len(xs)]), int(ys[k // len(xs)])
    return (x, y, x + w, y + h), int(cover.flat[k])


def _legend(lines: list[str], style: TextStyle, width: int, height: int, faces: list[Rect],
            max_area: float = 0.25) -> Optional[Label]:
    """The legend block of ``lines`` in an image corner, in the number of columns that covers the least of
    ``faces`` (their area in pixels); where every corner covers a face, the place on a grid of the line height over
    the whole image that covers the least (a gap in a crowd); its font shrunk (down to 0.35) while it still covers a
    face or more than ``max_area`` of the image; lines that still do not fit are summed up in a last line
    ("+N more")."""
    floor = min(style.scale, 0.35)
    while True:
        line_w = max(style.size(t)[0] for t in lines)
        line_h = max(style.size(t)[1] for t in lines)
        if line_w <= width and line_h <= height:
            capacity = min((width // line_w) * (height // line_h),
                           max(1, int(max_area * width * height) // (line_w * line_h)))
            shown = lines if len(lines) <= capacity else lines[:capacity - 1] + [f"+{len(lines) - capacity + 1} more"]
            best, best_cover = None, None
            shapes = [(cols * line_w, math.ceil(len(shown) / cols) * line_h)
                      for cols in range(math.ceil(len(shown) / (height // line_h)), width // line_w + 1)]
            for w, h in shapes:  # the corners first: a legend reads best there
                for x, y in ((width - w, 0), (0, 0), (width - w, height - h), (0, height - h)):
                    r = (x, y, x + w, y + h)
                    cover = sum(_overlap(r, f) for f in faces)
                    if best_cover is None or cover < best_cover:
                        best, best_cover = r, cover
            if best_cover:  # every corner covers a face: anywhere else on a grid of the line height
                for w, h in shapes:
                    r, cover = _least_covering(w, h, width, height, line_h, faces)
                    if cover < best_cover:
                        best, best_cover = r, cover
            if best is not None and (style.scale <= floor or (len(shown) == len(lines) and best_cover == 0)):
                return Label(shown, best, -1, style)
        if style.scale <= floor:
            return None
        style = TextStyle(max(floor, style.scale * 0.85), style.thickness, max(2, style.pad - 1))


def layout_labels(texts: Sequence[str], boxes: Sequence[Sequence[float]], shape: Sequence[int],
                  style: Optional[TextStyle] = None, numbered: Optional[bool] = None,
                  names: Optional[Sequence[str]] = None) -> LabelLayout:
    """Place one label per face (see the module docstring).

    ``texts``: one line per face; ``boxes`` (K, 4): each face's box (x0, y0, x1, y1, pixels) that the label
    sits next to; ``shape``: the image's (H, W, ...). ``numbered``: force numbers and a legend (True) or
    full labels (False, faces that find no free place get none); default: numbers only when needed.
    ``names``: what each face is called when numbered (default its index; a video passes its track ids);
    the legend then lists only the texts that say more than the name.
    Every returned rectangle lies inside the image and no two overlap.

    >>> lay = layout_labels(["yaw 10", "yaw -5"], [(10, 30, 60, 80), (200, 40, 260, 100)], (120, 300))
    >>> [(l.face, l.lines, l.rect) for l in lay.labels]   # each above its face, 2 px off (the pad)
    [(0, ['yaw 10'], (10, 13, 47, 28)), (1, ['yaw -5'], (200, 23, 236, 38))]
    """
    height, width = int(shape[0]), int(shape[1])
    style = TextStyle.for_image(shape) if style is None else style
    faces: list[Rect] = [tuple(int(round(c)) for c in b) for b in boxes]  # type: ignore[misc]
    if len(faces) != len(texts):
        raise ValueError(f"{len(texts)} texts for {len(faces)} boxes: give one text per face box")
    tags = [str(i) for i in range(len(texts))] if names is None else [str(n) for n in names]
    if len(tags) != len(texts):
        raise ValueError(f"{len(names or [])} names for {len(texts)} texts: give one name per face")
    if not faces:
        return LabelLayout([], bool(numbered))
    order = sorted(range(len(faces)), key=lambda i: (faces[i][1], faces[i][0]))
    if not numbered:
        taken: list[Rect] = []
        labels = []
        for i in order:
            w, h = style.size(texts[i])
            r = _place(faces[i], w, h, style.pad, width, height, taken, faces, search=False)
            hides = numbered is None and r is not None and any(_overlap(r, f) > COVER_AT_MOST * _overlap(f, f)
                                                               for k, f in enumerate(faces) if k != i)
            if r is None or hides:
                if numbered is None:
                    break  # crowded: number every face instead
                continue
            taken.append(r)
            labels.append(Label([texts[i]], r, i, style))
        else:
            return LabelLayout(labels, False)
    lines = [f"{tags[i]}: {texts[i]}" for i in range(len(texts)) if texts[i] != tags[i]]
    legend = _legend(lines, style, width, height, faces) if lines else None
    taken = [legend.rect] if legend else []
    labels = [legend] if legend else []
    for i in order:
        w, h = style.size(tags[i])
        r = _place(faces[i], w, h, 1, width, height, taken, faces, search=True)
        if r is not None:
            taken.append(r)
            labels.append(Label([tags[i]], r, i, style))
    return LabelLayout(labels, True)


def draw_labels(image: np.ndarray, layout: LabelLayout, color=(255, 255, 255), background=(0, 0, 0),
                alpha: float = 0.65) -> np.ndarray:
    """Draw ``layout`` on BGR uint8 ``image`` in place (each label's box blended with ``background`` at
    ``alpha``, its lines in ``color``) and return it."""
    for lab in layout.labels:
        st = lab.style
        x0, y0, x1, y1 = lab.rect
        roi = image[y0:y1, x0:x1]
        roi[:] = (roi * (1 - alpha) + np.asarray(background, np.float64) * alpha).astype(image.dtype)
        line_w = max(st.size(t)[0] for t in lab.lines)
        line_h = max(st.size(t)[1] for t in lab.lines)
        rows = max(1, (y1 - y0) // line_h)
        for k, text in enumerate(lab.lines):
            (_, th), base = cv2.getTextSize(text, FONT, st.scale, st.thickness)
            x = x0 + (k // rows) * line_w + st.pad
            y = y0 + (k % rows) * line_h + st.pad + th
            cv2.putText(image, text, (x, y), FONT, st.scale, color, st.thickness, cv2.LINE_AA)
    return image
