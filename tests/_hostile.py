"""Helpers of the hostile-input suite (``tests/test_hostile_*.py``): run a command, judge its outcome, and
build tiny valid inputs that a test then breaks in one way.

What every refused input must give (the DEVGUIDE's rule for bad input): exit status 2, exactly one line
on stderr that names the culprit (the option, key or file, and the rows for bad values) and says what to
do, no Python traceback, and nothing half-written on disk.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Optional

import cv2
import numpy as np
import torch
from conftest import TINY_ARCH

from mfirrn.cli import main as cli_main

#: Words of a fix; a refusal must say what to do, not only what is wrong.
FIX_WORDS = ("use", "give", "pass", "choose", "restore", "regenerate", "run", "rerun", "delete", "fix", "drop",
             "set", "point", "check", "resume", "lower", "remove", "retrain", "re-download", "install", "pick",
             "build", "relabel", "start", "see", "must be", "replace", "unset")
TEMP_PATTERNS = ("*.part", "*.tmp", ".mfirrn-write-test-*")


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run ``mfirrn ARGV`` in this process; argparse usage errors (SystemExit) count as their exit status.
    An exception escaping the CLI fails the test by itself: that is a traceback."""
    capsys.readouterr()
    try:
        rc = cli_main([str(a) for a in argv])
    except SystemExit as exc:
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def assert_refused(rc: int, err: str, *culprits: str) -> str:
    """Exit 2, one stderr line, no traceback, every culprit named, a fix given. Returns the line."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, f"exit status {rc}, expected 2; stderr: {err!r}"
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {err!r}"
    line = lines[0]
    for c in culprits:
        assert c in line, f"{c!r} not named in: {line}"
    assert any(re.search(rf"\b{w}\b", line, re.IGNORECASE) for w in FIX_WORDS), f"no fix in: {line}"
    return line


def temporaries(root: Path) -> list[Path]:
    """Temp files anywhere under ``root`` (``*.part`` of atomic writes, ``*.tmp`` of checkpoints, probes)."""
    return [p for pat in TEMP_PATTERNS for p in Path(root).rglob(pat)]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime_ns) of every file and folder under ``root`` (to prove nothing changed)."""
    root = Path(root)
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): ((p.stat().st_size if p.is_file() else -1), p.stat().st_mtime_ns)
            for p in root.rglob("*")}


def strict_json_load(path: Path):
    """Parse JSON refusing NaN/Infinity, as strict parsers (browsers, jq, Go) do."""
    def bad(token):
        raise AssertionError(f"{path} holds {token}: not valid JSON")

    return json.loads(Path(path).read_text(), parse_constant=bad)


# ------------------------------------------------------------------------------------------------ fixtures
def truncate(path: Path, keep: float = 0.5) -> Path:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: max(1, int(len(data) * keep))])
    return Path(path)


def tiny_aflw2000(root: Path, n: int = 6, seed: int = 0) -> Path:
    """A valid AFLW2000-3D folder in the 3DDFA layout (random crops; GT from a centred face box)."""
    rng = np.random.default_rng(seed)
    data, configs = root / "test.data", root / "test.configs"
    (data / "AFLW2000-3D_crop").mkdir(parents=True)
    configs.mkdir(parents=True)
    names = [f"image{i:05d}.jpg" for i in range(n)]
    for name in names:
        cv2.imwrite(str(data / "AFLW2000-3D_crop" / name), rng.integers(0, 255, (120, 120, 3), dtype=np.uint8))
    (data / "AFLW2000-3D_crop.list").write_text("\n".join(names) + "\n")
    gt = np.zeros((n, 3, 68), np.float32)
    gt[:, 0] = rng.uniform(100, 300, (n, 68))
    gt[:, 1] = rng.uniform(100, 300, (n, 68))
    np.save(configs / "AFLW2000-3D.pts68.npy", gt)
    np.save(configs / "AFLW2000-3D-Reannotated.pts68.npy", gt[:, :2].copy())
    np.save(configs / "AFLW2000-3D.pts21.npy", gt[:, :2, :21].copy())
    np.save(configs / "AFLW2000-3D_crop.roi_box.npy", np.tile(np.float32([80, 80, 320, 320]), (n, 1)))
    np.save(configs / "AFLW2000-3D.pose.npy", np.linspace(-80, 80, n).astype(np.float32))
    return root


def tiny_pool(root: Path, n: int = 3, seed: int = 0) -> Path:
    """A valid AFLW 21-point pool folder (``mfirrn data fit-landmarks --pool``)."""
    rng = np.random.default_rng(seed)
    (root / "AFLW_GT_crop").mkdir(parents=True)
    names = [f"face{i}.jpg" for i in range(n)]
    for name in names:
        cv2.imwrite(str(root / "AFLW_GT_crop" / name), rng.integers(0, 255, (120, 120, 3), dtype=np.uint8))
    (root / "AFLW_GT_crop.list").write_text("\n".join(names) + "\n")
    np.save(root / "AFLW_GT_pts21.npy", rng.uniform(20, 100, (n, 2, 21)).astype(np.float32))
    np.save(root / "AFLW_GT_crop_roi_box.npy", np.tile(np.uint16([0, 0, 120, 120]), (n, 1)))
    np.save(root / "AFLW_GT_crop_yaws.npy", np.zeros(n, np.float32))
    return root


def tiny_labels(root: Path, n: int = 3, accepted: Optional[Iterable[bool]] = None, shade: int = 60) -> Path:
    """A valid labels folder (``mfirrn data build --labels``): ``n`` flat crops with the mean face's params."""
    from mfirrn.geometry.params import ParamStats

    crops = root / "crops"
    crops.mkdir(parents=True)
    params = ParamStats.from_asset("stats-3ddfa-v2").denormalize(torch.zeros(n, 62)).numpy().astype(np.float32)
    names = [f"f{i}.jpg" for i in range(n)]
    for i, name in enumerate(names):
        cv2.imwrite(str(crops / name), np.full((120, 120, 3), (shade * (i + 1)) % 256, np.uint8))
    acc = np.array(list(accepted) if accepted is not None else [True] * n)
    labels = root / "labels"
    labels.mkdir()
    np.savez(labels / "labels.npz", params=params, residual=np.zeros(n), accepted=acc, n_visible=np.full(n, 21),
             yaw=np.zeros(n), roi=np.zeros((n, 4)), names=np.array(names))
    (labels / "labels.json").write_text(json.dumps({"crop_dir": str(crops), "convention": "v2", "teacher": "test",
                                                    "count": n, "accepted": int(acc.sum())}))
    return labels


def tiny_train_config(path: Path, data_root: str, out_dir: Path, **extra) -> Path:
    """A YAML config for a few CPU steps of :data:`TINY_ARCH` on a synthetic set."""
    import yaml

    cfg = {"model": {"arch": TINY_ARCH},
           "data": {"format": "crops-params", "root": str(data_root), "batch_size": 8, "workers": 0,
                    "val_fraction": 0.2, "pin_memory": False},
           "optim": {"lr": 0.01, "warmup_epochs": 1, "clip_grad_norm": 10.0},
           "epochs": 2, "out_dir": str(out_dir), "progress": False, "log_every_steps": 1}
    for key, value in extra.items():
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    path.write_text(yaml.safe_dump(cfg))
    return path
