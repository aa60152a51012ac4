"""``mfirrn benchmark``: AFLW2000-3D 68-point NME by yaw bin (3DDFA's protocol), and AFLW 21-point NME.

The data is found without options (:func:`mfirrn.evaluation.benchmark.find_aflw2000_root`): ``--data-root``,
``$MFIRRN_AFLW2000``, ``$MFIRRN_DATASETS/aflw2000-3d-dev``, the copy from ``mfirrn data fetch aflw2000-3d``.
When the AFLW 21-point test set is found too (:func:`mfirrn.evaluation.benchmark.find_aflw21_root`), models that may
be scored on it (never one trained on the AFLW pool) get an AFLW-21 row, labelled approximate.

``--compare MODEL_OR_CHECKPOINT...`` evaluates several models and writes the paper-style comparison
table (published rows + measured rows, :func:`mfirrn.evaluation.report.comparison_table`) as CSV and LaTeX, with
bootstrap 95% intervals, instead of the single-model outputs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mfirrn.cli.common import add_model_args, fail, model_from_args, warn_bf16


def register(sub: argparse._SubParsersAction) -> None:
    from mfirrn.io.defaults import DEFAULT_MODEL
    from mfirrn.io.defaults import HEAD_OUTPUTS as OUTPUTS

    p = sub.add_parser("benchmark",  # its one-line help: mfirrn.cli.COMMANDS
                       description="Evaluate a model on AFLW2000-3D in the 3DDFA layout (test.data + test.configs). "
                                   "Data is found in this order: --data-root, $MFIRRN_AFLW2000, "
                                   "$MFIRRN_DATASETS/aflw2000-3d-dev, the copy from `mfirrn data fetch aflw2000-3d`.")
    add_model_args(p, default_model=DEFAULT_MODEL, default_backend="auto",
                   backend_note="; --output HEAD and --compare run in PyTorch")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="folder holding test.data and test.configs, or test.data itself (default: $MFIRRN_AFLW2000, "
                        "else $MFIRRN_DATASETS/aflw2000-3d-dev, else the copy from `mfirrn data fetch aflw2000-3d`)")
    p.add_argument("--aflw-root", default=None, metavar="DIR",
                   help="AFLW 21-point test set (default: $MFIRRN_AFLW21, else $MFIRRN_DATASETS/aflw-21pt-test, "
                        "else the copy from `mfirrn data fetch aflw`; scored when found)")
    p.add_argument("--no-aflw21", action="store_true", help="skip the AFLW 21-point evaluation even when its data is found")
    p.add_argument("--gt", default="original", choices=("original", "reannotated"), help="ground truth (default original)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for summary.json and per_image.csv (default: print only)")
    p.add_argument("--batch-size", type=int, default=128, help="crops per forward pass (default 128)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="only the first N images of each set (smoke tests; default all)")
    p.add_argument("--output", default="fused", choices=OUTPUTS,
                   help="MFIRRN models: score this head instead of the fused output (ablation; default fused)")
    p.add_argument("--compare", nargs="+", default=None, metavar="MODEL_OR_CHECKPOINT",
                   help="compare registered models and/or checkpoint files; writes comparison.csv/.tex/.json "
                        "(and one folder per model) into --out (--trust-checkpoint applies to its files too)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates for --compare (default 1000)")
    p.add_argument("--no-published", action="store_true", help="--compare: leave the published rows out")
    p.set_defaults(func=run)


def _no_weights(spec: str) -> str | None:
    """The error line for a registered model without pretrained weights (benchmarking it needs --checkpoint)."""
    from mfirrn import models

    if Path(spec).is_file() or spec not in models.available():
        return None
    if models.get_card(spec).has_pretrained:
        return None
    return (f"model {spec!r} has no pretrained weights; benchmark a trained copy with --checkpoint FILE "
            f"(e.g. runs/NAME/best.pt from `mfirrn train`), or pick a model with weights from `mfirrn models`")


def _find_data(args: argparse.Namespace):
    """``(AFLW2000 data, where it was found, AFLW21 data or None, why AFLW-21 is absent)``; raises DatasetError."""
    from mfirrn.evaluation.benchmark import AFLW21, AFLW2000, find_aflw21_root, find_aflw2000_root

    root, how = find_aflw2000_root(args.data_root)
    data = AFLW2000.load(root, gt=args.gt, limit=args.limit)
    print(f"AFLW2000-3D data: {data.root.parent} (from {how})")
    aflw, why = None, "skipped (--no-aflw21)"
    if not args.no_aflw21:
        aflw_root, why = find_aflw21_root(args.aflw_root)
        if aflw_root is not None:
            aflw = AFLW21.load(aflw_root, limit=args.limit)
            print(f"AFLW 21-point data: {aflw_root} (from {why})")
    return data, aflw, why


def run(args: argparse.Namespace) -> int:
    from mfirrn.evaluation import report
    from mfirrn.evaluation.benchmark import DatasetError, evaluate, evaluate_aflw21, format_table, write_result
    from mfirrn.io import assets
    from mfirrn.models import DEFAULT_MODEL, MFIRRN, CheckpointError

    if args.compare:
        return run_compare(args)
    if args.output != "fused":  # one head of an MFIRRN: only the PyTorch model has the others
        if args.backend == "onnxruntime":
            return fail(f"--output {args.output} scores one head in PyTorch (an ONNX export has the fused output "
                        f"only); drop --backend onnxruntime")
        args.backend = "torch"
    try:
        model = model_from_args(args, default_model=DEFAULT_MODEL)
        data, aflw, aflw_why = _find_data(args)
    except CheckpointError as e:
        return fail((not args.checkpoint and _no_weights(args.model or DEFAULT_MODEL)) or str(e))
    except (DatasetError, assets.AssetError, ValueError) as e:
        return fail(str(e))
    except KeyError as e:
        return fail(str(e).strip("'\""))
    if args.output != "fused" and not isinstance(model, MFIRRN):
        return fail(f"--output {args.output} scores one head of an MFIRRN model; {model.card.name} has a single "
                    f"output: drop --output, or benchmark an MFIRRN checkpoint (--model mfirrn-... --checkpoint FILE)")
    warn_bf16(args)
    name = None if args.output == "fused" else f"{model.card.name}[{args.output}]"
    try:
        result = evaluate(model, data, batch_size=args.batch_size, bf16=args.bf16, output=args.output, name=name)
    except ValueError as e:
        return fail(str(e))
    print(format_table(result))
    aflw_result = None
    if aflw is not None:
        trained_on = (report.checkpoint_trained_on(args.checkpoint, trust_checkpoint=args.trust_checkpoint)
                      if args.checkpoint
                      else report.registered_trained_on(model.card.name))
        exclusion = report.aflw21_exclusion(trained_on)
        if exclusion:
            print(f"AFLW 21-point: {exclusion}")
        elif args.output != "fused":
            print("AFLW 21-point: scored for the fused output only")
        else:
            aflw_result = evaluate_aflw21(model, aflw, batch_size=args.batch_size, bf16=args.bf16)
            print(format_table(aflw_result))
    elif not args.no_aflw21:
        print(f"AFLW 21-point: no test set found ({aflw_why})")
    if args.out:
        paths = write_result(result, args.out)
        print(f"wrote {paths['summary']} and {paths['per_image']}")
        if aflw_result is not None:
            paths = write_result(aflw_result, Path(args.out) / "aflw21")
            print(f"wrote {paths['summary']} and {paths['per_image']}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """``--compare``: evaluate each model on the same data and print/write the comparison table."""
    import re

    from mfirrn.cli.common import resolve_device
    from mfirrn.evaluation import report
    from mfirrn.evaluation.benchmark import DatasetError, evaluate, evaluate_aflw21, write_result
    from mfirrn.geometry.bfm import MorphableModel
    from mfirrn.io import assets
    from mfirrn.io.fileio import atomic_write, strict_json
    from mfirrn.models import CheckpointError

    if args.model or args.checkpoint:
        return fail("--compare takes the models itself; drop --model/--checkpoint")
    if args.backend == "onnxruntime":
        return fail("--compare runs every model in PyTorch; drop --backend onnxruntime")
    if args.output != "fused":
        return fail("--output applies to a single model; drop it with --compare")
    if args.bootstrap < 1:
        return fail(f"--bootstrap must be at least 1, got {args.bootstrap}")
    for spec in args.compare:
        if msg := _no_weights(spec):
            return fail(msg)
    try:
        device = resolve_device(args.device)
        data, aflw, aflw_why = _find_data(args)
        entries = [report.load_model_entry(spec, device=device, trust_checkpoint=args.trust_checkpoint)
                   for spec in args.compare]
    except (DatasetError, CheckpointError, assets.AssetError, ValueError) as e:
        return fail(str(e))
    except KeyError as e:
        return fail(str(e).strip("'\""))
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        return fail(f"--compare names must be unique, got {names}")
    warn_bf16(args)
    bfm = MorphableModel("full")
    results, cis = [], {}
    aflw_absent = "skipped (--no-aflw21)" if args.no_aflw21 else report.AFLW21_ABSENT
    aflw21: dict = {}
    notes = {e.name: f"trained on {e.trained_on}" for e in entries}
    for e in entries:
        try:
            r = evaluate(e.model, data, bfm=bfm, batch_size=args.batch_size, bf16=args.bf16, name=e.name)
        except ValueError as exc:
            return fail(str(exc))
        results.append(r)
        cis[e.name] = report.bootstrap_ci(r, n=args.bootstrap, seed=0)
        if e.aflw21_exclusion:
            aflw21[e.name] = e.aflw21_exclusion
        elif aflw is None:
            aflw21[e.name] = aflw_absent
        else:
            aflw21[e.name] = evaluate_aflw21(e.model, aflw, bfm=bfm, batch_size=args.batch_size, bf16=args.bf16,
                                             name=e.name)
    split = f"{data.root.parent.name}/{data.gt_kind}"
    df = report.comparison_table(results, published=not args.no_published, split=split, aflw21=aflw21, notes=notes)
    aflw_n = f"; AFLW 21 points: {len(aflw.names)} images, approximate normaliser" if aflw is not None else ""
    print(f"AFLW2000-3D 68-point NME (%), {len(data.names)} images ({args.gt} GT){aflw_n}; head-pose MAE in "
          f"degrees (dataset convention, images with |angles| <= 99, where the .mat fits are present); published "
          f"rows are copied from the papers (2000 / 21080 images; – = not published), measured rows are this run")
    print(report.format_comparison(df, ["method", "kind", *report.BIN_COLUMNS, "Mean", "Std", "per-image mean",
                                        "AFLW-21 mean", *report.POSE_COLUMNS]))
    for _, row in df[df["note"] != ""].iterrows():
        print(f"note: {row['method']}: {row['note']}")
    for name, ci in cis.items():
        print(f"{name}: mean of bin means 95% bootstrap CI [{ci.mean[0]:.3f}, {ci.mean[1]:.3f}] ({ci.n} replicates)")
    if args.out:
        out = Path(args.out)
        paths = report.export_table(df, out)
        for e, r in zip(entries, results):
            folder = out / re.sub(r"[^A-Za-z0-9._-]+", "_", e.name)
            write_result(r, folder)
            if not isinstance(aflw21[e.name], str):
                write_result(aflw21[e.name], folder / "aflw21")
        summary = {"split": split, "n_images": len(data.names), "gt": args.gt,
                   "models": [{"name": e.name, "source": e.source, "trained_on": e.trained_on,
                               "summary": r.summary_dict(), "bootstrap_ci": cis[e.name].to_dict(),
                               "aflw21": (aflw21[e.name] if isinstance(aflw21[e.name], str)
                                          else aflw21[e.name].summary_dict())}
                              for e, r in zip(entries, results)]}
        atomic_write(out / "comparison.json", strict_json(summary, indent=2) + "\n")
        print(f"wrote {paths['csv']}, {paths['tex']} and {out / 'comparison.json'}")
    return 0
