"""Fashion-MNIST from the official IDX files (``.gz`` or uncompressed).

Looked for in ``ROOT/FashionMNIST/raw/`` (torchvision's layout) and then ``ROOT/`` itself.
Validated by structure: 60,000 / 10,000 images of 28x28, every label in [0, 10).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .base import DataBundle, DatasetError, DatasetInfo, ImageArrays
from .idx import read_idx

__all__ = ["FASHION_MNIST_INFO", "load_fashion_mnist"]

FASHION_MNIST_INFO = DatasetInfo(
    name="fashion_mnist",
    num_classes=10,
    in_channels=1,
    image_size=(28, 28),
    mean=(0.2860,),
    std=(0.3530,),
    crop_padding=2,
    hflip=True,
)

HOW_TO_GET = (
    "Get Fashion-MNIST with `xorsnn train ... --download` (or download the four *-ubyte.gz files from "
    "https://github.com/zalandoresearch/fashion-mnist) into DATA_DIR/FashionMNIST/raw/."
)

_SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
           "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000)}


def _find(root: Path, stem: str) -> Path:
    for folder in (root / "FashionMNIST" / "raw", root / "fashion_mnist", root):
        for name in (stem + ".gz", stem):
            if (folder / name).exists():
                return folder / name
    raise DatasetError(f"missing file {root / 'FashionMNIST' / 'raw' / (stem + '.gz')}. {HOW_TO_GET}")


def _load_split(root: Path, split: str) -> ImageArrays:
    img_stem, lbl_stem, count = _SPLITS[split]
    img_path, lbl_path = _find(root, img_stem), _find(root, lbl_stem)
    images = read_idx(img_path, HOW_TO_GET)
    labels = read_idx(lbl_path, HOW_TO_GET)
    if images.shape != (count, 28, 28):
        raise DatasetError(f"{img_path} holds images of shape {images.shape}, expected ({count}, 28, 28). {HOW_TO_GET}")
    if labels.shape != (count,):
        raise DatasetError(f"{lbl_path} holds {labels.shape} labels, expected ({count},). {HOW_TO_GET}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"{lbl_path} has labels in [{labels.min()}, {labels.max()}], expected 0..9 "
                           f"(num_classes=10). {HOW_TO_GET}")
    return ImageArrays(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype("int64")))


def load_fashion_mnist(root: str | Path) -> DataBundle:
    """Both splits of Fashion-MNIST as uint8 ``[N, 1, 28, 28]`` tensors."""
    root = Path(root)
    return DataBundle(FASHION_MNIST_INFO, _load_split(root, "train"), _load_split(root, "test"))
