"""``mfirrn benchmark``: AFLW2000-3D 68-point NME by yaw bin (REFERENCE §3).

``--compare MODEL_OR_CHECKPOINT...`` evaluates several models and writes the paper-style comparison
table (published rows + measured rows, :func:`mfirrn.report.comparison_table`) as CSV and LaTeX, with
bootstrap 95% intervals, instead of the single-model outputs.
"""

from __future__ import annotations

import argparse
import os

from mfirrn.commands.common import add_model_args, fail, model_from_args
from mfirrn.inference import OUTPUTS

DATA_ENV = "MFIRRN_AFLW2000"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("benchmark", help="AFLW2000-3D NME by yaw bin; writes summary.json and per_image.csv",
                       description="Evaluate a model on AFLW2000-3D in the 3DDFA layout (test.data + test.configs).")
    add_model_args(p, default_model=None)
    p.add_argument("--data-root", default=os.environ.get(DATA_ENV),
                   help=f"folder holding test.data and test.configs, or test.data itself (default ${DATA_ENV})")
    p.add_argument("--gt", default="original", choices=("original", "reannotated"), help="ground truth (default original)")
    p.add_argument("--out", default=None, help="folder for summary.json and per_image.csv")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--limit", type=int, default=None, help="only the first N images (smoke tests)")
    p.add_argument("--output", default="fused", choices=OUTPUTS,
                   help="MFIRRN models: score this head instead of the fused output (ablation)")
    p.add_argument("--compare", nargs="+", default=None, metavar="MODEL_OR_CHECKPOINT",
                   help="compare registered models and/or checkpoint files; writes comparison.csv/.tex/.json "
                        "(and one folder per model) into --out")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates for --compare (default 1000)")
    p.add_argument("--no-published", action="store_true", help="--compare: leave the published rows out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mfirrn import assets
    from mfirrn.benchmark import AFLW2000, DatasetError, evaluate, format_table, write_result
    from mfirrn.models import CheckpointError

    if args.compare:
        return run_compare(args)
    if not args.model and not args.checkpoint:
        return fail("give --model NAME or --checkpoint PATH (see `mfirrn models`)")
    if not args.data_root:
        return fail(f"give --data-root DIR (3DDFA test.data/test.configs) or set ${DATA_ENV}")
    try:
        model = model_from_args(args, default_model=None)
        data = AFLW2000.load(args.data_root, gt=args.gt, limit=args.limit)
    except (DatasetError, CheckpointError, assets.AssetError, ValueError) as e:
        return fail(str(e))
    except KeyError as e:
        return fail(str(e).strip("'\""))
    try:
        result = evaluate(model, data, batch_size=args.batch_size, bf16=args.bf16, output=args.output,
                          name=None if args.output == "fused" else f"{model.card.name}[{args.output}]")
    except ValueError as e:
        return fail(str(e))
    print(format_table(result))
    if args.out:
        paths = write_result(result, args.out)
        print(f"wrote {paths['summary']} and {paths['per_image']}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """``--compare``: evaluate each model on the same data and print/write the comparison table."""
    import re

    from mfirrn import assets
    from mfirrn.benchmark import AFLW2000, DatasetError, evaluate, write_result
    from mfirrn.bfm import MorphableModel
    from mfirrn.commands.common import resolve_device
    from mfirrn.fileio import atomic_write, strict_json
    from mfirrn.models import CheckpointError
    from mfirrn import report

    if args.model or args.checkpoint:
        return fail("--compare takes the models itself; drop --model/--checkpoint")
    if args.output != "fused":
        return fail("--output applies to a single model; drop it with --compare")
    if not args.data_root:
        return fail(f"give --data-root DIR (3DDFA test.data/test.configs) or set ${DATA_ENV}")
    try:
        device = resolve_device(args.device)
        data = AFLW2000.load(args.data_root, gt=args.gt, limit=args.limit)
        entries = [report.load_model_entry(spec, device=device) for spec in args.compare]
    except (DatasetError, CheckpointError, assets.AssetError, ValueError) as e:
        return fail(str(e))
    except KeyError as e:
        return fail(str(e).strip("'\""))
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        return fail(f"--compare names must be unique, got {names}")
    bfm = MorphableModel("full")
    results, cis = [], {}
    aflw21 = {e.name: e.aflw21_exclusion or report.AFLW21_ABSENT for e in entries}
    notes = {e.name: f"trained on {e.trained_on}" for e in entries}
    for e in entries:
        try:
            r = evaluate(e.model, data, bfm=bfm, batch_size=args.batch_size, bf16=args.bf16, name=e.name)
        except ValueError as exc:
            return fail(str(exc))
        results.append(r)
        cis[e.name] = report.bootstrap_ci(r, n=args.bootstrap, seed=0)
    split = f"{data.root.parent.name}/{data.gt_kind}"
    df = report.comparison_table(results, published=not args.no_published, split=split, aflw21=aflw21, notes=notes)
    cols = ["method", "kind", *report.BIN_COLUMNS, "Mean", "Std", "per-image mean", "AFLW-21 mean"]
    print(f"AFLW2000-3D 68-point NME (%), {len(data.names)} images ({args.gt} GT); published rows are copied "
          f"from the papers (2000 images), measured rows are this run")
    print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="--"))
    for _, row in df[df["note"] != ""].iterrows():
        print(f"note: {row['method']}: {row['note']}")
    for name, ci in cis.items():
        print(f"{name}: mean of bin means 95% bootstrap CI [{ci.mean[0]:.3f}, {ci.mean[1]:.3f}] ({ci.n} replicates)")
    if args.out:
        from pathlib import Path

        out = Path(args.out)
        paths = report.export_table(df, out)
        for e, r in zip(entries, results):
            write_result(r, out / re.sub(r"[^A-Za-z0-9._-]+", "_", e.name))
        summary = {"split": split, "n_images": len(data.names), "gt": args.gt,
                   "models": [{"name": e.name, "source": e.source, "trained_on": e.trained_on,
                               "summary": r.summary_dict(), "bootstrap_ci": cis[e.name].to_dict()}
                              for e, r in zip(entries, results)]}
        atomic_write(out / "comparison.json", strict_json(summary, indent=2) + "\n")
        print(f"wrote {paths['csv']}, {paths['tex']} and {out / 'comparison.json'}")
    return 0
