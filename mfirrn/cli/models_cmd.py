"""``mfirrn models``: the registered models, what their outputs mean and what their weights were trained on."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered models (stats, pixel convention, pretrained weights)",
                       description="List the registered models. A model with weights runs by name (--model NAME); "
                                   "one without needs trained weights (--checkpoint FILE, e.g. from `mfirrn train`).")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mfirrn import models
    from mfirrn.evaluation.report import registered_trained_on

    print(f"{'name':<20} {'conv':<5} {'stats':<16} {'weights':<8} description")
    for name in models.available():
        c = models.get_card(name)
        stats = c.stats_asset or ("inline" if c.stats is not None else "-")
        mark = " *" if name == models.DEFAULT_MODEL else ""
        print(f"{name + mark:<20} {c.convention:<5} {stats:<16} {'yes' if c.has_pretrained else 'no':<8} {c.description}")
    print("\n* default of `mfirrn reconstruct` and `mfirrn benchmark` (without --model)")
    print("weights trained on:")
    for n in models.available(pretrained=True):
        print(f"  {n}: {registered_trained_on(n)}")
    print("conv: pixel convention of the training targets (v1 3DDFA, v2 3DDFA_V2); stats: param mean/std asset")
    print("no weights: train one (`mfirrn train --config CONFIG`, see `mfirrn train --help`), then pass "
          "--model NAME --checkpoint runs/RUN/best.pt")
    return 0
