"""Shape checks at the points where data enters the library."""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch

__all__ = ["check_shape"]

Dim = Union[int, str, None]


def check_shape(x: Union[np.ndarray, torch.Tensor], shape: Sequence[Dim], name: str = "input") -> None:
    """Raise ``ValueError`` unless ``x.shape`` matches ``shape``.

    ``shape`` entries: an int (exact size), ``None`` or a letter (any size), and at most one leading
    ``"*"`` (any number of leading dimensions, including none).

    >>> check_shape(np.zeros((2, 62)), ("*", 62))
    >>> check_shape(np.zeros((2, 61)), ("*", 62), "params")
    Traceback (most recent call last):
    ...
    ValueError: params: expected shape (*, 62), got (2, 61)
    """
    actual = tuple(x.shape)
    spec = list(shape)
    star = bool(spec) and spec[0] == "*"
    fixed = spec[1:] if star else spec
    ok = len(actual) >= len(fixed) if star else len(actual) == len(fixed)
    if ok:
        tail = actual[len(actual) - len(fixed):] if fixed else ()
        ok = all(not isinstance(d, int) or d == a for d, a in zip(fixed, tail))
    if not ok:
        want = ", ".join(str(d) if d is not None else "?" for d in spec)
        raise ValueError(f"{name}: expected shape ({want}), got {actual}")
