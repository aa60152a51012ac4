"""Training data: dataset formats, augmentation with param updates, samplers; labels in :mod:`mfirrn.data.labels`."""

from mfirrn.data.augment import FLIP_68, AugmentConfig, Augmenter, ParamMirror, affine_params, default_mirror
from mfirrn.data.datasets import (
    DATASET_FORMATS,
    DatasetError,
    ParamsDataset,
    load_3ddfa,
    load_crops_params,
    open_dataset,
    split_indices,
    write_crops_params,
)
from mfirrn.data.sampler import ResumableSampler, make_loader
from mfirrn.data.synthetic import make_synthetic_dataset, synthetic_samples

__all__ = [
    "FLIP_68", "AugmentConfig", "Augmenter", "ParamMirror", "affine_params", "default_mirror",
    "DATASET_FORMATS", "DatasetError", "ParamsDataset", "load_3ddfa", "load_crops_params", "open_dataset",
    "split_indices", "write_crops_params", "ResumableSampler", "make_loader",
    "make_synthetic_dataset", "synthetic_samples",
]
