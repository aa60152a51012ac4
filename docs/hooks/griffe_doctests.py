"""Griffe extension: show bare doctest blocks of docstrings as Python console code on the API pages.

Docstrings here often end with ``>>>`` examples right after the prose, without an ``Examples:`` header.
Markdown would read them as part of the paragraph (and ``[0.0, 0.333]`` output as a link reference), so
each run of unindented doctest lines (prompt, continuation and output lines, up to a blank line) is
wrapped in a ``pycon`` code fence before the docstring is parsed.
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """``text`` with every unindented ``>>>`` block fenced as ```` ```pycon ````; fenced code is left alone."""
    out: list[str] = []
    in_fence = in_doctest = False
    for line in text.splitlines():
        if in_doctest and not line.strip():
            out += ["```", line]
            in_doctest = False
            continue
        if line.startswith("```") and not in_doctest:
            in_fence = not in_fence
        elif not in_fence and not in_doctest and line.startswith(">>>"):
            if out and out[-1].strip():
                out.append("")
            out.append("```pycon")
            in_doctest = True
        out.append(line)
    if in_doctest:
        out.append("```")
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Fence bare doctest blocks in every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:  # noqa: D102
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
