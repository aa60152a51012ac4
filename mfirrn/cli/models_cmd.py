"""``mfirrn models``: the registered models, what their outputs mean and what their weights were trained on."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models",  # its one-line help: mfirrn.cli.COMMANDS
                       description="List the registered models. A model with weights runs by name (--model NAME); "
                                   "one without needs trained weights (--checkpoint FILE, e.g. from `mfirrn train`).")
    p.set_defaults(func=run)


def table(rows: list[tuple[str, ...]], width: int) -> list[str]:
    """Rows of text cells as aligned columns, each as wide as its longest cell; the last column wraps at
    ``width`` characters, its continuation lines indented to where it starts.

    >>> print("\\n".join(table([("name", "description"), ("a-long-name", "one two three four")], 24)))
    name         description
    a-long-name  one two
                 three four
    """
    import textwrap

    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    indent = sum(widths) + 2 * len(widths)
    lines = []
    for r in rows:
        head = "".join(f"{c:<{w}}  " for c, w in zip(r, widths))
        lines += textwrap.wrap(r[-1], max(indent + 10, width), initial_indent=head, subsequent_indent=" " * indent,
                               break_on_hyphens=False) or [head.rstrip()]
    return lines


def run(args: argparse.Namespace) -> int:
    import shutil

    from mfirrn import models
    from mfirrn.evaluation.report import registered_trained_on

    rows = [("name", "conv", "stats", "weights", "description")]
    for name in models.available():
        c = models.get_card(name)
        stats = c.stats_asset or ("inline" if c.stats is not None else "-")
        mark = " *" if name == models.DEFAULT_MODEL else ""
        rows.append((name + mark, c.convention, stats, "yes" if c.has_pretrained else "no", c.description))
    width = max(100, shutil.get_terminal_size((120, 24)).columns)
    print("\n".join(table(rows, width)))
    print("\n* default of `mfirrn reconstruct` and `mfirrn benchmark` (without --model)")
    print("weights trained on:")
    print("\n".join(table([(f"  {n}:", registered_trained_on(n)) for n in models.available(pretrained=True)], width)))
    print("conv: pixel convention of the training targets (v1 3DDFA, v2 3DDFA_V2); stats: param mean/std asset")
    print("no weights: train one (`mfirrn train --config CONFIG`, see `mfirrn train --help`), then pass "
          "--model NAME --checkpoint runs/RUN/best.pt")
    return 0
