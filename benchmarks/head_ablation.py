"""The MFIRRN head ablation of one model (a registered name or a checkpoint) on the AFLW2000-3D dev split.

    MFIRRN_ASSET_MIRROR=... MFIRRN_DATASETS=... python benchmarks/head_ablation.py \
        --model mfirrn-mb05-aflw21-distill [--reference 3ddfa-mb05-aflw21-distill] [--blocks] [--shifts] \
        [--json results/ablation.json] [--shards FOLDER --shard-ids 40-44]

For each ground truth (original 3DMM fits, hand re-annotated) it prints every output's NME by yaw bin
(coarse, medium and fine heads alone, the fused output; the reference model's fused output if given) and
the paired differences fused - coarse, medium - coarse, fine - coarse (and each output - reference): the
mean difference of the headline number (mean of the three yaw-bin means) and of the per-image mean, each
with its 95 % paired-bootstrap interval (10 000 replicates; ``*`` where it excludes 0). ``--blocks`` adds what each
output reads: its NME with every crop cut into 2x2 blocks (all 23 other arrangements) and 3x3 blocks (23 random
ones) rearranged before the model sees it. ``--shifts`` adds whether each output knows where the face is: the part
of an 8-pixel shift of the crops' content (right, left, down, up) that its landmarks follow (1: all, 0: none; the
reference's too). ``--shards`` adds every output on the crops of shards of a training set (``mfirrn data build
--shards``) against their labels: give shards whose faces the model never trained on (build the set again with a
larger ``--limit``: the shards past the training set's hold new faces), photos and re-rendered views apart, with
intervals that resample faces. Evaluation only: nothing may be tuned on the dev split.
``mfirrn.evaluation.ablation`` computes it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from mfirrn import models
from mfirrn.data.shards import read_shard_crops
from mfirrn.evaluation.ablation import (
    block_probe,
    format_ablation,
    format_block_probe,
    format_shard_ablation,
    format_shift_probe,
    head_ablation,
    shard_head_ablation,
    shift_probe,
)
from mfirrn.evaluation.benchmark import AFLW2000
from mfirrn.geometry.bfm import MorphableModel


def _label(model: str) -> str:
    """A model's name in the tables: a registered name as it is, a checkpoint as ``run-folder/file.pt``."""
    path = Path(model)
    return f"{path.parent.name}/{path.name}" if path.suffix else model


def _shard_ids(ap: argparse.ArgumentParser, spec: str) -> list[int]:
    """``"40-44"`` -> [40, 41, 42, 43, 44]; ``"3,17,88"`` -> [3, 17, 88]; ``"7"`` -> [7]; ranges and lists mix."""
    ids: list[int] = []
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        try:
            a, b = int(first), int(last or first)
        except ValueError:
            ap.error(f"--shard-ids takes shard numbers and first-last ranges, e.g. 40-44 or 3,17,88; got {spec!r}")
        if b < a:
            ap.error(f"--shard-ids {spec}: in {part.strip()} the last shard comes before the first")
        ids += range(a, b + 1)
    return ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="an MFIRRN: registered name or checkpoint path")
    ap.add_argument("--reference", default=None, help="a model every output is compared with (name or checkpoint)")
    ap.add_argument("--root", default=None, help="AFLW2000-3D folder (default $MFIRRN_DATASETS/aflw2000-3d-dev)")
    ap.add_argument("--gt", nargs="+", default=["original", "reannotated"], choices=("original", "reannotated"))
    ap.add_argument("--replicates", type=int, default=10000, help="bootstrap replicates (default 10000)")
    ap.add_argument("--blocks", action="store_true",
                    help="also score every output with the crops cut into 2x2 and 3x3 blocks and rearranged")
    ap.add_argument("--shifts", action="store_true",
                    help="also measure how much of a shift of the crops' content each output's landmarks follow")
    ap.add_argument("--shards", default=None, metavar="FOLDER",
                    help="also score every output on shards of this training set against their labels")
    ap.add_argument("--shard-ids", default=None, metavar="IDS",
                    help="with --shards: the shards, numbers and first-last ranges (e.g. 40-44, or a run's held-out "
                         "shards 3,17,88: faces the model never trained on)")
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()
    if (args.shards is None) != (args.shard_ids is None):
        ap.error("--shards and --shard-ids go together")
    shard_ids = _shard_ids(ap, args.shard_ids) if args.shard_ids else []
    root = args.root or str(Path(os.environ.get("MFIRRN_DATASETS", "../shared/datasets")) / "aflw2000-3d-dev")
    model = models.load(args.model)
    reference = models.load(args.reference) if args.reference else None
    bfm = MorphableModel("full")
    results = []
    for gt in args.gt:
        data = AFLW2000.load(root, gt=gt)
        ab = head_ablation(model, data, name=_label(args.model), reference=reference,
                           reference_name=_label(args.reference) if args.reference else None, bfm=bfm,
                           n=args.replicates)
        print(format_ablation(ab), end="\n\n", flush=True)
        results.append(ab.to_dict())
        if args.blocks:
            probe = block_probe(model, data, name=_label(args.model), bfm=bfm)
            print(format_block_probe(probe), end="\n\n", flush=True)
            results[-1]["blocks"] = probe.to_dict()
    if args.shifts:  # the crops are the same whatever the GT: those already loaded
        for m, label in ((model, args.model), (reference, args.reference)):
            if m is not None:
                probe = shift_probe(m, data.crops, name=_label(label), bfm=bfm)
                print(format_shift_probe(probe), end="\n\n", flush=True)
                results.append({"shifts": probe.to_dict()})
    if args.shards:
        sab = shard_head_ablation(model, read_shard_crops(args.shards, shard_ids), name=_label(args.model),
                                  reference=reference, bfm=bfm, n=args.replicates,
                                  reference_name=_label(args.reference) if args.reference else None)
        print(format_shard_ablation(sab), end="\n\n", flush=True)
        results.append({"shards": sab.to_dict()})
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
