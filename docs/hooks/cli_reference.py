"""MkDocs hook: write the CLI reference from ``mfirrn.cli.build_parser()`` at build time.

``docs/cli.md`` holds the marker ``<!-- cli-reference -->``; this hook replaces it with one section per
sub-command (nested ones included): its description, usage line and a table of its arguments with their
defaults, all read from the argparse parsers, so the page cannot drift from the code.
"""

from __future__ import annotations

import argparse
import re
import textwrap
from typing import Iterator

MARKER = "<!-- cli-reference -->"


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, one-line help) of each direct sub-command, in registration order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, sub, helps.get(name, "")


# an option named in prose (--config, -m), not a hyphen inside a word (re-annotated) or a path
_OPTION = re.compile(r"(?<![\w`.-])(--?[A-Za-z][\w-]*)")


def _prose(text: str) -> str:
    """Help or description text as Markdown: whitespace collapsed; outside code spans, options set as code (a
    browser breaks a bare ``--config`` after its first hyphen; code is kept whole by the site's stylesheet)
    and angle brackets kept from becoming HTML.

    >>> _prose("use `a|b` with --config <FILE>, not re-annotated")
    'use `a|b` with `--config` &lt;FILE>, not re-annotated'
    """
    parts = " ".join(str(text).split()).split("`")
    return "`".join(p if i % 2 else _OPTION.sub(r"`\1`", p).replace("<", "&lt;") for i, p in enumerate(parts))


def _cell(text: str) -> str:
    """One table cell: :func:`_prose`, with pipes escaped outside code spans (inside one, the table reader
    leaves them alone and a backslash would show).

    >>> _cell("`a|b` or c|d <e>")
    '`a|b` or c\\\\|d &lt;e>'
    """
    parts = _prose(text).split("`")
    return "`".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            metavar = formatter._format_args(action, action.dest.upper()) if action.nargs != 0 else ""
            name = ", ".join(f"`{o}{' ' + metavar if metavar else ''}`" for o in action.option_strings)
        else:
            name = f"`{formatter._metavar_formatter(action, action.dest)(1)[0]}`"
        help_text = formatter._expand_help(action) if action.help else ""
        default = action.default
        show_default = (action.option_strings and action.nargs != 0 and default not in (None, argparse.SUPPRESS)
                        and "default" not in help_text.lower())
        if show_default:
            help_text += f" (default: `{default}`)"
        if action.choices and not isinstance(action.choices, dict):
            help_text += " Choices: " + ", ".join(f"`{c}`" for c in action.choices) + "."
        rows.append(f"| {_cell(name)} | {_cell(help_text)} |")
    return rows


def render(parser: argparse.ArgumentParser, prog: str, level: int = 2) -> list[str]:
    """Markdown sections for every sub-command below ``parser``."""
    lines: list[str] = []
    for name, sub, summary in _subcommands(parser):
        full = f"{prog} {name}"
        lines += [f"{'#' * level} `{full}`", ""]
        text = sub.description or summary
        if text:
            lines += [_prose(text), ""]
        usage = sub.format_usage().replace("usage: ", "", 1).rstrip()  # argparse's own wrapping
        lines += ["```text", textwrap.dedent("       " + usage) if "\n" in usage else usage, "```", ""]
        rows = _argument_rows(sub)
        if rows:
            lines += ["| argument | meaning |", "|---|---|", *rows, ""]
        if sub.epilog:
            lines += ["```text", sub.epilog.strip(), "```", ""]
        lines += render(sub, full, min(level + 1, 4))
    return lines


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001 (MkDocs hook signature)
    if MARKER not in markdown:
        return markdown
    from mfirrn.cli import build_parser

    reference = "\n".join(render(build_parser(lazy=False), "mfirrn"))
    return markdown.replace(MARKER, f'<div class="cli-reference" markdown>\n\n{reference}\n\n</div>')
