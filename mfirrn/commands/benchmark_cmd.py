"""``mfirrn benchmark``: AFLW2000-3D 68-point NME by yaw bin (REFERENCE §3)."""

from __future__ import annotations

import argparse
import os

from mfirrn.commands.common import add_model_args, fail, model_from_args

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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mfirrn import assets
    from mfirrn.benchmark import AFLW2000, DatasetError, evaluate, format_table, write_result
    from mfirrn.models import CheckpointError

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
    result = evaluate(model, data, batch_size=args.batch_size, bf16=args.bf16)
    print(format_table(result))
    if args.out:
        paths = write_result(result, args.out)
        print(f"wrote {paths['summary']} and {paths['per_image']}")
    return 0
