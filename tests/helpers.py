"""Shared test helpers."""

import torch


def binary(*shape, p=0.5, dtype=torch.float32):
    """Random {0,1} tensor."""
    return (torch.rand(*shape) < p).to(dtype)


def synthetic_digits(n_train, n_test, seed=0):
    """Synthetic 8x8 'digits' with a learnable structure (class = bright row): a DataBundle for fast trainer tests."""
    from xorsnn.data import DataBundle, ImageArrays
    from xorsnn.data.digits import DIGITS_INFO

    g = torch.Generator().manual_seed(seed)

    def make(n):
        y = torch.randint(0, 8, (n,), generator=g)
        x = torch.randint(0, 60, (n, 1, 8, 8), generator=g)
        x[torch.arange(n), 0, y] += 180
        return ImageArrays(x.to(torch.uint8), y)

    return DataBundle(DIGITS_INFO, make(n_train), make(n_test))
