"""``mfirrn models``: the registered models and what their outputs mean."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered models (stats, pixel convention, pretrained weights)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mfirrn import models

    print(f"{'name':<20} {'conv':<5} {'stats':<16} {'pretrained':<11} description")
    for name in models.available():
        c = models.get_card(name)
        stats = c.stats_asset or ("inline" if c.stats is not None else "-")
        print(f"{name:<20} {c.convention:<5} {stats:<16} {'yes' if c.has_pretrained else 'no':<11} {c.description}")
    return 0
