"""Shared fixtures. Assets come from ``$MFIRRN_ASSET_MIRROR`` (CI points it at ../shared/assets) or the
internet; datasets from ``$MFIRRN_DATASETS`` (default: ``shared/datasets`` beside the repository).
Tests needing a dataset skip when it is absent, unless ``MFIRRN_REQUIRE_DATA=1`` (CI) makes that a failure."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def datasets_root() -> Path:
    return Path(os.environ.get("MFIRRN_DATASETS", REPO.parent / "shared" / "datasets"))


def need_dataset(name: str) -> Path:
    path = datasets_root() / name
    if not path.exists():
        if os.environ.get("MFIRRN_REQUIRE_DATA") == "1":
            pytest.fail(f"dataset {path} is required (MFIRRN_REQUIRE_DATA=1) but missing; set MFIRRN_DATASETS")
        pytest.skip(f"dataset {path} not present (set MFIRRN_DATASETS)")
    return path


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def bfm():
    from mfirrn.bfm import MorphableModel

    return MorphableModel("full")


@pytest.fixture(scope="session")
def mb05():
    from mfirrn import models

    return models.create("3ddfa-v2-mb05")


@pytest.fixture(scope="session")
def dev_root() -> Path:
    return need_dataset("aflw2000-3d-dev")


@pytest.fixture(scope="session")
def faces68_root() -> Path:
    return need_dataset("faces-68")


@pytest.fixture(scope="session")
def sample_photo() -> Path:
    from mfirrn.assets import fetch

    return fetch("sample-jianzhuguo")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))])
def device(request):
    return torch.device(request.param)
