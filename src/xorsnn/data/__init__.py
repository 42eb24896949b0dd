"""Datasets read from a directory in their official formats, and batch augmentation."""

from .augment import BatchAugment, normalize, random_crop, random_hflip
from .base import DataBundle, DatasetError, DatasetInfo, ImageArrays
from .events import events_to_frames, split_per_class
from .idx import read_idx
from .loader import ArrayLoader
from .registry import DATASETS, canonical_dataset_name, load_dataset

__all__ = [
    "DATASETS",
    "load_dataset",
    "canonical_dataset_name",
    "DataBundle",
    "DatasetInfo",
    "ImageArrays",
    "DatasetError",
    "ArrayLoader",
    "BatchAugment",
    "random_crop",
    "random_hflip",
    "normalize",
    "events_to_frames",
    "split_per_class",
    "read_idx",
]
