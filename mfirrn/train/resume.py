"""Resume compatibility of ``mfirrn train --resume``: the checkpoint holds the config it was trained with.

Settings that only steer the rest of the run (:data:`TRAIN_RESUME_MAY_CHANGE`: length, logging, device, ...)
may change and are applied and reported; any other change is refused (:func:`check_train_resume`), because
the restored optimizer, data split and model would not follow it while the run's ``config.yaml`` said they did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from mfirrn.io.resume import ResumeError, flatten, same_setting

__all__ = ["TRAIN_RESUME_MAY_CHANGE", "check_train_resume"]

PathLike = Union[str, Path]

#: Train settings a resumed run may change: they steer the rest of the run, not what was already done.
TRAIN_RESUME_MAY_CHANGE = frozenset({
    "out_dir", "device", "progress", "log_every_steps", "tensorboard", "checkpoint_every_steps", "stop_after_steps",
    "stop_after_minutes", "channels_last",
    "max_steps", "epochs", "data.workers", "data.pin_memory", "val.every_epochs", "val.batch_size",
    "val.aflw2000_root", "val.aflw2000_limit",
})


def check_train_resume(checkpoint_config: Optional[dict], config: dict, defaults: dict, source: PathLike) -> list[str]:
    """Compare the checkpoint's config with the resumed run's (both ``TrainConfig.to_dict()`` form).

    Returns the changes that are applied (``"max_steps 6 -> 10"``); raises :class:`ResumeError` naming
    every other change. Keys the checkpoint does not have (older versions) compare against ``defaults``.
    """
    if checkpoint_config is None:
        return []
    old, new, base = flatten(checkpoint_config), flatten(config), flatten(defaults)
    applied, refused = [], []
    for key in new:
        was = old.get(key, base.get(key))
        if same_setting(was, new[key]):
            continue
        text = f"{key} {was!r} -> {new[key]!r}" if isinstance(was, str) or isinstance(new[key], str) else \
            f"{key} {was} -> {new[key]}"
        (applied if key in TRAIN_RESUME_MAY_CHANGE else refused).append((key, text))
    if refused:
        keys = ", ".join(f"{k}={_yaml(old.get(k, base.get(k)))}" for k, _ in refused)
        raise ResumeError(f"{source} was trained with other settings ({'; '.join(t for _, t in refused)}); a resumed "
                          f"run keeps the checkpoint's, so resume with {keys}, or start a new run with "
                          f"out_dir=NEW_DIR (a resume may change only the run's length, logging, device and validation settings)")
    return [t for _, t in applied]


def _yaml(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
