"""Load a dataset by name from a directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import DataBundle, DatasetError

__all__ = ["DATASETS", "load_dataset", "canonical_dataset_name"]

DATASETS = {
    "digits": "scikit-learn's bundled 8x8 digits (no download; stratified 80/20 split)",
    "fashion_mnist": "Fashion-MNIST, IDX files in DATA_DIR/FashionMNIST/raw/ (.gz or not)",
    "cifar10": "CIFAR-10, DATA_DIR/cifar-10-batches-py/",
    "cifar100": "CIFAR-100, DATA_DIR/cifar-100-python/",
    "imagefolder": "ImageNet-style DATA_DIR/{train,val}/<class>/<image>",
    "cifar10_dvs": "CIFAR10-DVS via tonic, frames [T, 2, H, W], per-class 90/10 split",
}
_ALIASES = {"fmnist": "fashion_mnist", "fashionmnist": "fashion_mnist", "fashion-mnist": "fashion_mnist",
            "cifar-10": "cifar10", "cifar-100": "cifar100", "cifar10dvs": "cifar10_dvs", "cifar10-dvs": "cifar10_dvs",
            "imagenet": "imagefolder", "miniimagenet": "imagefolder"}


def canonical_dataset_name(name: str) -> str:
    """Normalise a dataset name (``ValueError`` listing the valid names if unknown)."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets are {sorted(DATASETS)}")
    return key


def load_dataset(name: str, root: str | Path | None = None, *, download: bool = False, T: int = 4,
                 image_size: int | None = None, **kwargs: Any) -> DataBundle:
    """Load ``name`` from ``root``.

    Args:
        name: one of :data:`DATASETS` (aliases such as ``fmnist`` or ``imagenet`` are accepted).
        root: directory holding the dataset in its official layout (not needed for ``digits``).
        download: fetch missing files (needs internet; md5-checked); never done implicitly.
        T: frames per sample for event datasets.
        image_size: crop size for class-folder datasets, resize size for event datasets.

    Raises:
        DatasetError: a file is missing or corrupt (the message names it and says how to get it).
    """
    key = canonical_dataset_name(name)
    if key == "digits":
        from .digits import load_digits

        return load_digits(**kwargs)
    if root is None:
        raise ValueError(f"dataset {key!r} needs a data directory (--data-dir)")
    root = Path(root).expanduser()
    if key in ("fashion_mnist", "cifar10", "cifar100"):
        from .download import download_dataset

        if download:
            download_dataset(key, root)
        if key == "fashion_mnist":
            from .fashion_mnist import load_fashion_mnist

            return load_fashion_mnist(root)
        from .cifar import load_cifar10, load_cifar100

        return load_cifar10(root) if key == "cifar10" else load_cifar100(root)
    if key == "imagefolder":
        if download:
            raise DatasetError("ImageNet-style folders cannot be downloaded automatically; place them under DATA_DIR")
        from .folders import load_image_folder

        return load_image_folder(root, image_size or 224, **kwargs)
    from .events import load_cifar10_dvs

    return load_cifar10_dvs(root, T=T, size=image_size, download=download, **kwargs)
