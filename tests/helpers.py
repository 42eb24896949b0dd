"""Shared test helpers."""

import torch


def binary(*shape, p=0.5, dtype=torch.float32):
    """Random {0,1} tensor."""
    return (torch.rand(*shape) < p).to(dtype)
