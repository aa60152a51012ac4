"""Training data: dataset formats, augmentation with param updates, samplers; labels in :mod:`mfirrn.data.labels`."""

from importlib import import_module
from typing import Any

_MODULES = {
    "mfirrn.data.augment_config": ("AugmentConfig",),
    "mfirrn.data.augment": ("FLIP_68", "Augmenter", "ParamMirror", "affine_params", "default_mirror"),
    "mfirrn.data.datasets": ("DATASET_FORMATS", "DatasetError", "ParamsDataset", "load_3ddfa", "load_crops_params",
                             "open_dataset", "split_indices", "write_crops_params"),
    "mfirrn.data.sampler": ("ResumableSampler", "make_loader"),
    "mfirrn.data.synthetic": ("make_synthetic_dataset", "synthetic_samples"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [name for names in _MODULES.values() for name in names]


def __getattr__(name: str) -> Any:
    # loaded on first use, so the light modules under mfirrn.data (the fit's settings the command line shows)
    # import without PyTorch
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'mfirrn.data' has no attribute {name!r}")
