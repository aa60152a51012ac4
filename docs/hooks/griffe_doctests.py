"""Griffe extension: show bare doctest blocks of docstrings as Python console code on the API pages, and
Sphinx roles (``:class:`X` ``, ``:func:`~a.b` ``, ...) as inline code instead of raw text.

Docstrings here often end with ``>>>`` examples right after the prose, without an ``Examples:`` header.
Markdown would read them as part of the paragraph (and ``[0.0, 0.333]`` output as a link reference), so
each run of unindented doctest lines (prompt, continuation and output lines, up to a blank line) is
wrapped in a ``pycon`` code fence before the docstring is parsed. Doctest directives (``# doctest: +SKIP``,
``+ELLIPSIS``, ...) are for the test runner, not the reader: they are cut from the lines shown.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

# :role:`target` or :role:`~dotted.target` (Sphinx cross-reference roles, which Markdown would print raw)
_ROLE = re.compile(r":(?:class|func|meth|data|mod|attr|exc|obj|const):`(~?)([^`]+)`")
# an inline doctest directive with the spaces before it
_DIRECTIVE = re.compile(r"\s*#\s*doctest:\s*[+-]\w+(?:\s*,\s*[+-]\w+)*\s*$")


def strip_roles(text: str) -> str:
    """``text`` with Sphinx roles as inline code: ``:class:`a.B` `` -> `` `a.B` ``, ``:func:`~a.f` `` -> `` `f` ``.

    >>> strip_roles("see :class:`mfirrn.inference.pipeline.Face` and :func:`~mfirrn.geometry.crop.roi_from_box`.")
    'see `mfirrn.inference.pipeline.Face` and `roi_from_box`.'
    """
    return _ROLE.sub(lambda m: "`" + (m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2)) + "`", text)


def fence_doctests(text: str) -> str:
    """``text`` with every unindented ``>>>`` block fenced as ```` ```pycon ````, its doctest directives cut;
    fenced code is left alone.

    >>> fence_doctests("Use it:\\n>>> rec(img)        # doctest: +SKIP\\n[Face]").splitlines()
    ['Use it:', '', '```pycon', '>>> rec(img)', '[Face]', '```']
    """
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
        if in_doctest and line.startswith((">>>", "...")):
            line = _DIRECTIVE.sub("", line)
        out.append(line)
    if in_doctest:
        out.append("```")
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Fence bare doctest blocks and turn Sphinx roles into inline code in every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:  # noqa: D102
        if obj.docstring is None:
            return
        value = obj.docstring.value
        if ">>>" in value:
            value = fence_doctests(value)
        if ":`" in value:
            value = strip_roles(value)
        obj.docstring.value = value
