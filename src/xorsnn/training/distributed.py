"""Process-group setup for ``torchrun`` (multi-GPU / multi-node) and CPU (gloo) runs.

The trainer is the same script on one process or many: when ``torchrun`` sets ``WORLD_SIZE > 1``
in the environment, :func:`setup_distributed` joins the process group (NCCL on GPUs, gloo on CPU),
and every rank trains on its shard of each epoch; only rank 0 logs and writes checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistContext", "setup_distributed", "resolve_device"]


@dataclass
class DistContext:
    """Where this process runs and which part of the job it does."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over ranks (in place) and return it."""
        if self.enabled:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def all_reduce_max(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t

    def close(self) -> None:
        if self.initialized_here and dist.is_initialized():
            dist.destroy_process_group()
            self.initialized_here = False


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` when CUDA is available, else CPU; otherwise ``torch.device(spec)``."""
    if spec == "auto":
        return torch.device(f"cuda:{cuda_index(local_rank)}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} was requested but CUDA is not available")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{cuda_index(local_rank)}")
    return dev


def cuda_index(local_rank: int, visible: int | None = None) -> int:
    """The GPU of the process with ``local_rank``: ``cuda:<local_rank>`` when it sees every GPU of the node,
    ``cuda:0`` when it sees exactly one (schedulers that set ``CUDA_VISIBLE_DEVICES`` per process)."""
    n = torch.cuda.device_count() if visible is None else visible
    if n == 1:
        return 0
    if 0 <= local_rank < n:
        return local_rank
    raise ValueError(f"LOCAL_RANK={local_rank} but this process sees {n} GPUs: give each process one GPU "
                     "(CUDA_VISIBLE_DEVICES) or run at most one process per visible GPU")


def setup_distributed(device: str = "auto") -> DistContext:
    """Join the ``torchrun`` process group if the environment describes one (``WORLD_SIZE > 1``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = resolve_device(device, local)
    ctx = DistContext(rank, world, local, dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend, init_method="env://")
        ctx.initialized_here = True
    return ctx
