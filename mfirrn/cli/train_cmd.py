"""``mfirrn train --config CONFIG.yaml [--resume [PATH]] [key=value ...]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers) -> None:
    from mfirrn.cli.args import add_trust_checkpoint_arg
    from mfirrn.train.config import package_configs

    p = subparsers.add_parser(
        "train",  # its one-line help: mfirrn.cli.COMMANDS
        description="Train from a YAML config (a path, or a shipped config: "
                    + ", ".join(f"`{c}`" for c in package_configs()) + "). "
                    "Overrides like optim.lr=0.01 data.root=/data/300W-LP follow the options. "
                    "Multi-process: torchrun --nproc_per_node N -m mfirrn.cli train --config ...")
    p.add_argument("--config", required=True, help="YAML config file or shipped config name")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                   help="continue the run in out_dir (its last.pt) or from CHECKPOINT")
    add_trust_checkpoint_arg(p, reads="--resume, model.init or loss.distill_from checkpoint")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. epochs=2 data.batch_size=32")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mfirrn.data.datasets import DatasetError
    from mfirrn.io.assets import AssetError
    from mfirrn.models.registry import CheckpointError
    from mfirrn.train.config import ConfigError, TrainConfig, find_config
    from mfirrn.train.trainer import TrainError, train

    resume, overrides = args.resume, list(args.overrides)
    if isinstance(resume, str) and "=" in resume and not Path(resume).exists():
        # `--resume key=value`: argparse took the first override for the optional CHECKPOINT
        resume, overrides = True, [resume, *overrides]
    try:
        cfg = TrainConfig.from_yaml(find_config(args.config), overrides)
        result = train(cfg, resume=resume, trust_checkpoint=args.trust_checkpoint)
    except (ConfigError, DatasetError, TrainError, CheckpointError, AssetError) as exc:
        # an error raised in a data-loader worker arrives with the worker's traceback in its text: keep the message
        lines = [s for s in str(exc).strip().splitlines() if s.strip()]
        message = lines[-1].split(": ", 1)[-1] if "Traceback" in str(exc) and lines else " ".join(lines)
        print(f"mfirrn train: {message}", file=sys.stderr)
        return 2
    state = "stopped" if result.stopped_early else "finished"
    print(f"{state} at step {result.step} (epoch {result.epoch}); last checkpoint {result.last}"
          + (f", best {result.best} (val NME {result.best_nme:.3f} %)" if result.best else ""))
    return 0
