"""Argument groups shared by the ``xorsnn`` sub-commands (torch-free, so ``--help`` stays fast)."""

from __future__ import annotations

import argparse

__all__ = ["add_checkpoint_arguments", "check_positive"]


def add_checkpoint_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of a command that reads a trained run: ``checkpoint``, ``--which``, ``--dataset``, ``--data-dir``."""
    p.add_argument("checkpoint", help="run directory, epoch_NNNN folder or model.safetensors")
    p.add_argument("--which", choices=("BEST", "LAST"), default="BEST",
                   help="checkpoint of a run directory to use (default: BEST)")
    p.add_argument("--dataset", help="dataset (default: the one the checkpoint was trained on)")
    p.add_argument("--data-dir", help="dataset directory (default: the training run's, then $XORSNN_DATA)")


def check_positive(*flags: tuple[str, int | None]) -> None:
    """``ValueError`` naming the first ``(flag, value)`` whose value is below 1 (``None``: not given)."""
    for flag, value in flags:
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be a positive integer, got {value}")
