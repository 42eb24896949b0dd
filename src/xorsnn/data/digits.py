"""scikit-learn's bundled 8x8 handwritten digits: real data that needs no download.

1,797 grey-level images (values 0..16, rescaled here to 0..255) of the digits 0-9. The library
splits them deterministically and stratified: for every class, a fixed permutation (seed 0)
puts 80 % of its samples in train and 20 % in test (1,438 / 359 images).
"""

from __future__ import annotations

import numpy as np
import torch

from .base import DataBundle, DatasetError, DatasetInfo, ImageArrays

__all__ = ["DIGITS_INFO", "load_digits"]

DIGITS_INFO = DatasetInfo(
    name="digits",
    num_classes=10,
    in_channels=1,
    image_size=(8, 8),
    mean=(0.3058,),
    std=(0.3764,),
    crop_padding=1,
    hflip=False,
    notes="sklearn.datasets.load_digits; stratified 80/20 split, seed 0",
)


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> DataBundle:
    """The digits dataset as uint8 ``[N, 1, 8, 8]`` tensors with a stratified split."""
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError:
        raise DatasetError(
            "the 'digits' dataset comes with scikit-learn, which is not installed: pip install scikit-learn "
            "(or pip install 'xorsnn[demo]')"
        ) from None
    d = _sk_load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = d.target.astype(np.int64)
    rng = np.random.RandomState(seed)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(len(idx) * test_fraction))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    tr, te = np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))
    return DataBundle(
        DIGITS_INFO,
        ImageArrays(torch.from_numpy(images[tr]), torch.from_numpy(labels[tr])),
        ImageArrays(torch.from_numpy(images[te]), torch.from_numpy(labels[te])),
    )
