"""Batch augmentation as tensor ops, so it runs wherever the batch is (GPU when training on one).

Random crop with padding and horizontal flip are applied to a whole float batch
``[B, C, H, W]`` with per-sample random offsets/flags drawn from an explicit generator, then the
batch is normalised. No Python loop over samples, no worker processes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["random_crop", "random_hflip", "normalize", "BatchAugment"]


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None,
                mode: str = "constant") -> torch.Tensor:
    """Pad ``x`` ``[B, C, H, W]`` by ``padding`` and crop a random ``H x W`` window per sample."""
    if padding <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4, mode=mode)
    dev = x.device
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=generator.device if generator else dev)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=generator.device if generator else dev)
    oy, ox = oy.to(dev), ox.to(dev)
    rows = (oy[:, None] + torch.arange(h, device=dev))[:, :, None]  # [B, H, 1]
    cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, :]  # [B, 1, W]
    batch = torch.arange(b, device=dev)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows, cols]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous(memory_format=torch.contiguous_format)


def random_hflip(x: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> torch.Tensor:
    """Flip each sample of ``x`` ``[B, C, H, W]`` left-right with probability ``p``."""
    flags = torch.rand(x.shape[0], generator=generator, device=generator.device if generator else x.device) < p
    flags = flags.to(x.device)[:, None, None, None]
    return torch.where(flags, x.flip(-1), x)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel; ``x`` is ``[B, C, H, W]`` on the [0, 1] scale."""
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


class BatchAugment:
    """uint8 batch ``[B, C, H, W]`` -> augmented, normalised float batch, on the batch's device.

    Args:
        mean, std: normalisation constants.
        crop_padding: random-crop padding (0: no crop).
        hflip: random horizontal flips.
        pad_mode: ``"constant"`` (zeros, torchvision's default) or ``"reflect"``.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], crop_padding: int = 0, hflip: bool = False,
                 pad_mode: str = "constant") -> None:
        if pad_mode not in ("constant", "reflect"):
            raise ValueError(f"pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
        self.mean, self.std = tuple(mean), tuple(std)
        self.crop_padding, self.hflip, self.pad_mode = int(crop_padding), bool(hflip), pad_mode
        self._consts: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def _mean_std(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mean``/``std`` as ``[1, C, 1, 1]`` tensors on ``x``'s device, built once per device and dtype
        (not per batch: on a GPU each build is a host-to-device copy)."""
        key = (x.device, x.dtype)
        if key not in self._consts:
            self._consts[key] = (torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1),
                                 torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1))
        return self._consts[key]

    def __call__(self, images: torch.Tensor, train: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
        if train:
            if self.crop_padding:
                x = random_crop(x, self.crop_padding, generator, self.pad_mode)
            if self.hflip:
                x = random_hflip(x, generator)
        mean, std = self._mean_std(x)
        return (x - mean) / std

    def __repr__(self) -> str:
        return (f"BatchAugment(crop_padding={self.crop_padding}, hflip={self.hflip}, pad_mode={self.pad_mode!r}, "
                f"mean={self.mean}, std={self.std})")
