"""Batch iteration over in-memory arrays, with deterministic shuffling and distributed sharding.

:class:`ArrayLoader` keeps the whole uint8 dataset on the training device (a few hundred MB at
most for CIFAR) and yields augmented float batches without worker processes -- small-image SNN
training is then limited by the network, not by Python data loading.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from .augment import BatchAugment
from .base import ImageArrays

__all__ = ["ArrayLoader"]


class ArrayLoader:
    """Yield ``(x [B, C, H, W] float, y [B] int64)`` batches from :class:`ImageArrays`.

    Args:
        data: the split.
        batch_size: samples per batch (per process under DDP).
        augment: converts uint8 to a normalised float batch (and augments if ``train``).
        train: shuffle, augment and drop the last incomplete batch.
        device: where the data lives and batches are produced.
        seed: base seed; epoch ``e`` on rank ``r`` uses order seed ``seed + e`` (the same permutation
            on every rank, like ``DistributedSampler``) and augmentation seed ``(seed, e, r)``.
        rank, world_size: shard for distributed training: rank ``r`` takes every ``world_size``-th index
            of the (padded) permutation, so all ranks see the same number of batches.
    """

    def __init__(self, data: ImageArrays, batch_size: int, augment: BatchAugment, *, train: bool,
                 device: torch.device | str = "cpu", seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
        self.device = torch.device(device)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.batch_size, self.augment, self.train = batch_size, augment, train
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        n = len(data)
        self.num_samples = math.ceil(n / world_size) if (world_size > 1 or not train) else n
        self.total = self.num_samples * world_size

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation and augmentation stream of ``epoch`` (call before iterating)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.train:
            return max(1, self.num_samples // self.batch_size)
        shard = range(self.rank, self.labels.shape[0], self.world_size)  # evaluation: this rank's samples
        return math.ceil(len(shard) / self.batch_size)

    def _indices(self) -> torch.Tensor:
        n = self.labels.shape[0]
        if self.train:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=g)
            if self.total > n:  # pad so that every rank gets the same count
                order = torch.cat([order, order[: self.total - n]])
            return order[self.rank: self.total: self.world_size]
        return torch.arange(self.rank, n, self.world_size)  # evaluation: every sample exactly once

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        idx = self._indices().to(self.device)
        gen = None
        if self.train:
            gen = torch.Generator(device=self.device)
            gen.manual_seed((self.seed * 1_000_003 + self.epoch * 1_009 + self.rank) % (2**63))
        n_batches = len(self)
        for i in range(n_batches):
            sel = idx[i * self.batch_size: (i + 1) * self.batch_size]
            if sel.numel() == 0:
                break
            yield self.augment(self.images[sel], self.train, gen), self.labels[sel]
