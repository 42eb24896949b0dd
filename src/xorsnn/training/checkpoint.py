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

Integrity: the weights file's metadata holds a SHA-256 of the tensors (names, dtypes, shapes,
bytes) and of ``state.pt``; both are verified on load, so a truncated or bit-flipped checkpoint is
refused by name (:class:`CorruptCheckpointError`), and :func:`resolve_resumable` falls back to the
newest intact checkpoint. Non-finite weights are never written and never loaded. A failed save
(disk full) removes its temporary folder and raises :class:`CheckpointSaveError`; temporary folders
are named after their writer's PID and only removed by that process or once it is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .guards import first_non_finite

__all__ = ["save_checkpoint", "resolve_checkpoint", "load_reparam_source",
           "resolve_resumable", "verify_checkpoint", "load_state",
           "load_weights", "read_metadata", "build_model_from_checkpoint", "unwrap_model", "tensor_digest",
           "CheckpointError", "CorruptCheckpointError", "CheckpointSaveError", "Checkpoint"]

WEIGHTS, STATE = "model.safetensors", "state.pt"
TENSORS_SHA, STATE_SHA = "tensors_sha256", "state_sha256"

log = logging.getLogger("xorsnn.train")


class CheckpointError(ValueError):
    """A checkpoint path is missing, incomplete or inconsistent."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file is truncated, unreadable or fails its checksum; the message names it."""


class CheckpointSaveError(CheckpointError):
    """Writing a checkpoint failed (e.g. disk full); nothing of the failed save is left behind."""


def _corrupt(path: Path, exc: Exception) -> CorruptCheckpointError:
    return CorruptCheckpointError(f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {exc})")


@dataclass
class Checkpoint:
    """Paths of one checkpoint."""

    directory: Path
    weights_name: str = WEIGHTS

    @property
    def weights(self) -> Path:
        return self.directory / self.weights_name

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
    with contextlib.suppress(OSError):  # best effort: not every file system can sync a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_pointer(path: Path, value: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    _write_synced(tmp, f"{value}\n".encode())
    os.replace(tmp, path)


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of ``tensors`` (CPU), in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        pass
    return True


def _removable_leftover(p: Path) -> bool:
    """A temporary folder of an interrupted save (``.tmp_<name>_pid<PID>_<id>``, ``.old_...``) that this
    process owns, whose owner is gone, or that names no owner."""
    if not (p.name.startswith((".tmp_", ".old_")) and p.is_dir()):
        return False
    owner = re.search(r"_pid(\d+)_[^_]*$", p.name)
    return owner is None or int(owner[1]) == os.getpid() or not _process_alive(int(owner[1]))


def _write_files(tmp: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str], state_bytes: bytes) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(tmp / WEIGHTS), metadata=meta)
    _write_synced(tmp / STATE, state_bytes)
    with open(tmp / WEIGHTS, "rb") as f:
        os.fsync(f.fileno())


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
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"epoch_{epoch:04d}"
    tensors = {k: v.detach().cpu().contiguous() for k, v in unwrap_model(model).state_dict().items()}
    bad = first_non_finite((k, v) for k, v in tensors.items() if v.is_floating_point())
    if bad is not None:
        raise CheckpointError(f"refusing to write checkpoint {name} in {root}: tensor {bad!r} holds NaN/inf "
                              "(the previous checkpoint stays LAST)")
    ckpt_id = uuid.uuid4().hex
    buf = io.BytesIO()
    torch.save({**state, "epoch": epoch, "ckpt_id": ckpt_id}, buf)
    state_bytes = buf.getvalue()
    digests = {TENSORS_SHA: tensor_digest(tensors), STATE_SHA: hashlib.sha256(state_bytes).hexdigest()}
    meta = {k: json.dumps(v) for k, v in {**metadata, "epoch": epoch, "ckpt_id": ckpt_id, **digests}.items()}
    tmp = root / f".tmp_{name}_pid{os.getpid()}_{ckpt_id}"
    try:
        tmp.mkdir()
        _write_files(tmp, tensors, meta, state_bytes)
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointSaveError(
            f"could not write checkpoint {name} to {root} ({type(exc).__name__}: {exc}); is the disk full? "
            "Nothing of this save was kept; LAST still points at the previous checkpoint"
        ) from exc
    final = root / name
    if final.exists():  # re-saving an epoch (e.g. after a resume): move the old one out of the way
        old = root / f".old_{name}_pid{os.getpid()}_{ckpt_id}"
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
    protected = {(root / pointer).read_text().strip() for pointer in ("LAST", "BEST") if (root / pointer).exists()}
    epochs = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("epoch_"))
    for name in epochs[: max(0, len(epochs) - keep_last)]:
        if name not in protected:
            shutil.rmtree(root / name, ignore_errors=True)
    for p in root.iterdir():  # leftovers of an interrupted save: ours, or of a process that is gone
        if _removable_leftover(p):
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


def _resolve_or_last(path: str | Path, which: str = "BEST") -> Checkpoint:
    """:func:`resolve_checkpoint` of ``which``, falling back to ``LAST`` when the run has no ``which``."""
    try:
        return resolve_checkpoint(path, which)
    except CheckpointError:
        if which == "LAST":
            raise
        return resolve_checkpoint(path, "LAST")


def read_metadata(ckpt: Checkpoint) -> dict[str, Any]:
    """The JSON metadata stored in the weights file (:class:`CorruptCheckpointError` if unreadable)."""
    from safetensors import safe_open

    try:
        with safe_open(str(ckpt.weights), framework="pt") as f:
            raw = f.metadata() or {}
        return {k: json.loads(v) for k, v in raw.items()}
    except FileNotFoundError:
        raise CheckpointError(f"{ckpt.directory} has no {WEIGHTS}") from None
    except Exception as exc:  # SafetensorError, JSON errors: a truncated or damaged header
        raise _corrupt(ckpt.weights, exc) from None


def _read_tensors(ckpt: Checkpoint, meta: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of ``ckpt`` on the CPU, checked against the stored checksum (when it has one) and for
    non-finite values."""
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(ckpt.weights), device="cpu")
    except Exception as exc:
        raise _corrupt(ckpt.weights, exc) from None
    expected = meta.get(TENSORS_SHA)
    if expected is not None and tensor_digest(tensors) != expected:
        raise CorruptCheckpointError(f"checkpoint {ckpt.weights} fails its checksum: the stored tensors were "
                                     "modified or damaged after the save")
    bad = first_non_finite((k, v) for k, v in tensors.items() if v.is_floating_point())
    if bad is not None:
        raise CheckpointError(f"checkpoint {ckpt.weights} holds non-finite weights (first: {bad!r}); refusing "
                              "to use it")
    return tensors


def load_weights(ckpt: Checkpoint, model: nn.Module, device: torch.device | str = "cpu") -> None:
    """Load the weights of ``ckpt`` into ``model`` (strict), verified against the stored checksum and
    checked to be finite (``model`` stays on its device; ``device`` is kept for compatibility)."""
    tensors = _read_tensors(ckpt, read_metadata(ckpt))
    unwrap_model(model).load_state_dict(tensors, strict=True)


def load_state(ckpt: Checkpoint) -> dict[str, Any]:
    """The training state of ``ckpt``, checked against its checksum and to belong to the same save as
    its weights."""
    if not ckpt.state.exists():
        raise CheckpointError(f"{ckpt.directory} has no {STATE}; it cannot be resumed")
    meta = read_metadata(ckpt)
    raw = ckpt.state.read_bytes()
    expected = meta.get(STATE_SHA)
    intact = expected is None or hashlib.sha256(raw).hexdigest() == expected
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=False)
    except Exception as exc:  # EOFError, UnpicklingError, RuntimeError of a truncated zip
        raise _corrupt(ckpt.state, exc) from None
    if not isinstance(state, dict):
        raise CorruptCheckpointError(f"checkpoint {ckpt.state} does not hold a training state")
    if state.get("ckpt_id") != meta.get("ckpt_id"):
        raise CheckpointError(f"{ckpt.directory}: {STATE} and {WEIGHTS} come from different saves")
    if not intact:
        raise CorruptCheckpointError(f"checkpoint {ckpt.state} fails its checksum: it was modified or damaged "
                                     "after the save")
    return state


def verify_checkpoint(ckpt: Checkpoint, *, with_state: bool = True) -> None:
    """Raise :class:`CheckpointError` unless ``ckpt``'s weights (and state) are complete, match their
    checksums and are finite."""
    _read_tensors(ckpt, read_metadata(ckpt))
    if with_state:
        load_state(ckpt)


def resolve_resumable(run_dir: str | Path) -> Checkpoint:
    """The checkpoint ``--resume`` continues from: ``LAST`` if intact, else the newest intact
    ``epoch_NNNN`` (with a warning naming the damaged one); :class:`CheckpointError` if none is."""
    root = Path(run_dir) / "checkpoints"
    problems: list[str] = []
    tried: set[Path] = set()
    candidates: list[Checkpoint] = []
    try:
        candidates.append(resolve_checkpoint(run_dir, "LAST"))
    except CheckpointError as exc:
        problems.append(str(exc))
    if root.is_dir():
        epochs = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("epoch_")), reverse=True)
        candidates += [Checkpoint(p) for p in epochs]
    for ckpt in candidates:
        if ckpt.directory.resolve() in tried:
            continue
        tried.add(ckpt.directory.resolve())
        try:
            verify_checkpoint(ckpt)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        if problems:
            log.warning("warning: %s; resuming from %s, the newest intact checkpoint", "; ".join(problems),
                        ckpt.directory)
        return ckpt
    detail = "; ".join(problems) if problems else f"no checkpoint under {root}"
    raise CheckpointError(f"cannot resume {run_dir}: no intact checkpoint ({detail})")


def load_reparam_source(path: str | Path) -> nn.Module:
    """The training-form model of an ``xorsnn export --reparam`` folder (the same function as the export:
    its ``reparameterize`` is checked equal to the exported tensors when the export is loaded)."""
    from ..models import create_model

    ckpt = resolve_checkpoint(path)
    meta = read_metadata(ckpt)
    if not meta.get("reparameterized"):
        raise CheckpointError(f"{ckpt.weights} is not a re-parameterised export")
    model = create_model(meta["model"], **meta.get("model_kwargs", {}))
    _load_reparameterized(ckpt, model, meta)  # verifies the export against its source
    return model.eval()


def _load_reparameterized(ckpt: Checkpoint, model: nn.Module, meta: dict[str, Any]) -> nn.Module:
    """The inference model of an ``xorsnn export --reparam`` folder: ``reparameterize`` of the training-form
    weights stored beside it (``source.safetensors``), checked equal to the exported tensors."""
    from ..export.reparam import reparameterize

    source = Checkpoint(ckpt.directory, weights_name="source.safetensors")
    if not source.weights.exists():
        raise CheckpointError(f"{ckpt.directory} is a re-parameterised export without source.safetensors (written "
                              "by an older xorsnn): export it again with `xorsnn export --reparam`")
    source_tensors = _read_tensors(source, read_metadata(source))
    unwrap_model(model).load_state_dict(source_tensors, strict=True)
    inference = reparameterize(model)
    exported = _read_tensors(ckpt, meta)
    mine = inference.state_dict()
    if set(mine) != set(exported) or any(not torch.equal(mine[k], exported[k]) for k in mine):
        raise CorruptCheckpointError(f"{ckpt.weights} does not equal the re-parameterisation of its "
                                     "source.safetensors: the export was modified or written by another version")
    return inference


def build_model_from_checkpoint(path: str | Path, device: torch.device | str = "cpu",
                                which: str = "BEST") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a registered model from a checkpoint's metadata and load its weights.

    ``which`` selects ``BEST`` (default) or ``LAST`` when ``path`` is a run directory; falls back to
    ``LAST`` if the run has no ``BEST``.
    """
    from ..models import create_model

    ckpt = _resolve_or_last(path, which)
    meta = read_metadata(ckpt)
    if "model" not in meta:
        raise CheckpointError(f"{ckpt.weights} has no 'model' metadata; it was not written by xorsnn")
    model = create_model(meta["model"], **meta.get("model_kwargs", {}))
    if meta.get("reparameterized"):  # an `xorsnn export --reparam` output
        model = _load_reparameterized(ckpt, model, meta)
    else:
        load_weights(ckpt, model, device)
    return model.to(device), {**meta, "checkpoint": str(ckpt.directory)}
