"""Checkpoints: weights in ``safetensors``, training state in a small ``state.pt``, written atomically.

Layout of a run directory::

    RUN/checkpoints/epoch_0003/model.safetensors   # weights + metadata (model name and arguments)
    RUN/checkpoints/epoch_0003/state.pt            # optimizer, scheduler, epoch, RNG states, config
    RUN/checkpoints/LAST                           # name of the newest complete checkpoint
    RUN/checkpoints/BEST                           # name of the checkpoint with the best test accuracy

A checkpoint directory is first written under a temporary name (files flushed and fsynced) and
then renamed into place -- an atomic operation -- and only then do ``LAST``/``BEST`` (each
replaced atomically) point to it. A run killed at any moment leaves either the previous or the
new checkpoint, never a half-written one. The weights file is self-describing: its metadata holds
the registry name and constructor arguments, so ``xorsnn eval`` can rebuild the model.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["save_checkpoint", "resolve_checkpoint", "load_state", "load_weights", "read_metadata",
           "build_model_from_checkpoint", "unwrap_model", "CheckpointError", "Checkpoint"]

WEIGHTS, STATE = "model.safetensors", "state.pt"


class CheckpointError(ValueError):
    """A checkpoint path is missing, incomplete or inconsistent."""


@dataclass
class Checkpoint:
    """Paths of one checkpoint."""

    directory: Path

    @property
    def weights(self) -> Path:
        return self.directory / WEIGHTS

    @property
    def state(self) -> Path:
        return self.directory / STATE


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DDP / ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):  # DDP
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod  # type: ignore[assignment]
        else:
            return model


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_pointer(path: Path, value: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as f:
        f.write(value + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(run_dir: str | Path, model: nn.Module, state: dict[str, Any], metadata: dict[str, Any],
                    epoch: int, *, is_best: bool = False, keep_last: int = 2) -> Checkpoint:
    """Atomically write the checkpoint of ``epoch`` and update ``LAST`` (and ``BEST`` if ``is_best``).

    Args:
        run_dir: the run directory (``checkpoints/`` is created inside it).
        model: the model (DDP / compiled wrappers are unwrapped).
        state: picklable training state (optimizer, scheduler, RNG states, ...).
        metadata: JSON-serialisable description of the model (``model``, ``model_kwargs``, ...).
        epoch: completed epochs.
        is_best: also point ``BEST`` at this checkpoint.
        keep_last: number of most recent epoch checkpoints to keep (``BEST`` is always kept).
    """
    from safetensors.torch import save_file

    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"epoch_{epoch:04d}"
    ckpt_id = uuid.uuid4().hex
    tmp = root / f".tmp_{name}_{ckpt_id}"
    tmp.mkdir()
    tensors = {k: v.detach().cpu().contiguous() for k, v in unwrap_model(model).state_dict().items()}
    meta = {k: json.dumps(v) for k, v in {**metadata, "epoch": epoch, "ckpt_id": ckpt_id}.items()}
    save_file(tensors, str(tmp / WEIGHTS), metadata=meta)
    with open(tmp / STATE, "wb") as f:
        torch.save({**state, "epoch": epoch, "ckpt_id": ckpt_id}, f)
        f.flush()
        os.fsync(f.fileno())
    with open(tmp / WEIGHTS, "rb") as f:
        os.fsync(f.fileno())
    final = root / name
    if final.exists():  # re-saving an epoch (e.g. after a resume): move the old one out of the way
        old = root / f".old_{name}_{ckpt_id}"
        os.rename(final, old)
        shutil.rmtree(old, ignore_errors=True)
    os.rename(tmp, final)
    _fsync_dir(root)
    _write_pointer(root / "LAST", name)
    if is_best:
        _write_pointer(root / "BEST", name)
    _prune(root, keep_last)
    return Checkpoint(final)


def _prune(root: Path, keep_last: int) -> None:
    protected = set()
    for pointer in ("LAST", "BEST"):
        if (root / pointer).exists():
            protected.add((root / pointer).read_text().strip())
    epochs = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("epoch_"))
    for name in epochs[: max(0, len(epochs) - keep_last)]:
        if name not in protected:
            shutil.rmtree(root / name, ignore_errors=True)
    for p in root.iterdir():  # leftovers of an interrupted save
        if p.name.startswith((".tmp_", ".old_")) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def resolve_checkpoint(path: str | Path, which: str = "LAST") -> Checkpoint:
    """Find a checkpoint from a run directory, its ``checkpoints/`` folder, an epoch folder or a
    ``model.safetensors`` file. ``which`` is ``"LAST"`` or ``"BEST"`` for directory inputs."""
    p = Path(path).expanduser()
    if p.is_file() and p.suffix == ".safetensors":
        return Checkpoint(p.parent)
    if (p / WEIGHTS).exists():
        return Checkpoint(p)
    for root in (p / "checkpoints", p):
        pointer = root / which
        if pointer.exists():
            ckpt = Checkpoint(root / pointer.read_text().strip())
            if not ckpt.weights.exists():
                raise CheckpointError(f"{pointer} points to {ckpt.directory}, which has no {WEIGHTS}")
            return ckpt
    raise CheckpointError(f"no checkpoint found at {p} (expected a run directory with checkpoints/{which}, an "
                          f"epoch_NNNN folder, or a {WEIGHTS} file)")


def read_metadata(ckpt: Checkpoint) -> dict[str, Any]:
    """The JSON metadata stored in the weights file."""
    from safetensors import safe_open

    with safe_open(str(ckpt.weights), framework="pt") as f:
        raw = f.metadata() or {}
    return {k: json.loads(v) for k, v in raw.items()}


def load_weights(ckpt: Checkpoint, model: nn.Module, device: torch.device | str = "cpu") -> None:
    """Load the weights of ``ckpt`` into ``model`` (strict)."""
    from safetensors.torch import load_file

    tensors = load_file(str(ckpt.weights), device=str(device))
    unwrap_model(model).load_state_dict(tensors, strict=True)


def load_state(ckpt: Checkpoint) -> dict[str, Any]:
    """The training state of ``ckpt``, checked to belong to the same save as its weights."""
    if not ckpt.state.exists():
        raise CheckpointError(f"{ckpt.directory} has no {STATE}; it cannot be resumed")
    state = torch.load(ckpt.state, map_location="cpu", weights_only=False)
    meta = read_metadata(ckpt)
    if state.get("ckpt_id") != meta.get("ckpt_id"):
        raise CheckpointError(f"{ckpt.directory}: {STATE} and {WEIGHTS} come from different saves")
    return state


def build_model_from_checkpoint(path: str | Path, device: torch.device | str = "cpu",
                                which: str = "BEST") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a registered model from a checkpoint's metadata and load its weights.

    ``which`` selects ``BEST`` (default) or ``LAST`` when ``path`` is a run directory; falls back to
    ``LAST`` if the run has no ``BEST``.
    """
    from ..models import create_model

    try:
        ckpt = resolve_checkpoint(path, which)
    except CheckpointError:
        if which == "LAST":
            raise
        ckpt = resolve_checkpoint(path, "LAST")
    meta = read_metadata(ckpt)
    if "model" not in meta:
        raise CheckpointError(f"{ckpt.weights} has no 'model' metadata; it was not written by xorsnn")
    model = create_model(meta["model"], **meta.get("model_kwargs", {}))
    load_weights(ckpt, model, device)
    return model.to(device), {**meta, "checkpoint": str(ckpt.directory)}
