"""Shared fixtures. Assets come from ``$MFIRRN_ASSET_MIRROR`` (CI points it at ../shared/assets) or the
internet. Datasets are found the way the package finds them: AFLW2000-3D through
:func:`mfirrn.evaluation.benchmark.find_aflw2000_root` (``$MFIRRN_AFLW2000``, ``$MFIRRN_DATASETS/aflw2000-3d-dev``, the
fetched copy), the other sets under ``$MFIRRN_DATASETS``. Tests needing a dataset skip when it is absent,
unless ``MFIRRN_REQUIRE_DATA=1`` (CI) makes that a failure: use :func:`missing_data` for every data skip."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TINY_ARCH = "test-mfirrn-tiny"  # a few-thousand-parameter MFIRRN for training tests (registered below)
# what a test sets to None in sys.modules to run as if no TensorFlow Lite runtime were installed; the submodules too,
# since one imported by an earlier test would be found in sys.modules without its package
NO_TFLITE = ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter",
             "tensorflow")


def _register_tiny_arch() -> None:
    from mfirrn import models
    from mfirrn.models.mfirrn_net import MFIRRN, MFIRRNConfig

    if TINY_ARCH not in models.available():
        tiny = MFIRRNConfig(blocks=(1, 1, 1, 1), widths=(8, 16, 32, 64), head_mid=32, head_out=16, fc_hidden=16,
                            decoder_hidden=32)
        models.register_model(models.ModelCard(name=TINY_ARCH, builder=lambda: MFIRRN(tiny), convention="v1",
                                               stats_asset="stats-3ddfa-v1", description="tiny MFIRRN for tests"))


_register_tiny_arch()


def missing_data(reason: str) -> NoReturn:
    """Skip a test whose data is absent, or fail it under ``MFIRRN_REQUIRE_DATA=1``."""
    if os.environ.get("MFIRRN_REQUIRE_DATA") == "1":
        pytest.fail(f"{reason} (required: MFIRRN_REQUIRE_DATA=1)")
    pytest.skip(reason)


def need_dataset(name: str) -> Path:
    """``$MFIRRN_DATASETS/<name>`` (faces-68, aflw-21pt-train, ...)."""
    from mfirrn.evaluation.benchmark import DATASETS_ENV

    root = os.environ.get(DATASETS_ENV)
    if not root:
        missing_data(f"dataset {name} not found: ${DATASETS_ENV} is unset")
    path = Path(root) / name
    if not path.exists():
        missing_data(f"dataset {path} not present (check ${DATASETS_ENV})")
    return path


def need_aflw2000() -> Path:
    """AFLW2000-3D through the package's lookup (what ``mfirrn benchmark`` uses without options)."""
    from mfirrn.evaluation.benchmark import DatasetError, find_aflw2000_root

    try:
        return find_aflw2000_root()[0]
    except DatasetError as e:
        missing_data(str(e))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def bfm():
    from mfirrn.geometry.bfm import MorphableModel

    return MorphableModel("full")


@pytest.fixture(scope="session")
def mb05():
    from mfirrn import models

    return models.create("3ddfa-v2-mb05")


@pytest.fixture(scope="session")
def dev_root() -> Path:
    return need_aflw2000()


@pytest.fixture(scope="session")
def faces68_root() -> Path:
    return need_dataset("faces-68")


@pytest.fixture(scope="session")
def sample_photo() -> Path:
    from mfirrn.io.assets import fetch

    return fetch("sample-jianzhuguo")


@pytest.fixture(scope="session")
def two_faces():
    """The two-face sample photo (``trump_hillary.jpg``) as a BGR uint8 array."""
    from mfirrn.inference.pipeline import read_image
    from mfirrn.io.assets import fetch

    return read_image(fetch("sample-trump-hillary"))


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))])
def device(request):
    return torch.device(request.param)
