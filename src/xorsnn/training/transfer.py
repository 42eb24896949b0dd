"""Weights from other runs: knowledge-distillation teachers and initialisation from a checkpoint.

* :func:`load_teacher` -- a frozen teacher for ``--teacher``: an xorsnn checkpoint of any
  registered model (an SNN such as SEI-BWSNN's stage 1, or an ANN such as ``ann_reverb_resnet20`` trained
  with ``xorsnn train --model ann_reverb_resnet20``), or ``NAME:WEIGHTS`` -- a registered model name and a
  state-dict file (``.safetensors`` or a ``torch.save``'d dict) trained elsewhere.
* :func:`teacher_logits` -- the teacher's prediction ``[B, K]`` for a batch (time-mean of its logits).
* :func:`init_from_checkpoint` -- ``--init-from``: copy every weight of a checkpoint of the same
  architecture (SEI-BWSNN stage 2 from stage 1). A binary-weight layer (:mod:`xorsnn.layers.binary`) keeps its
  real-valued **latent** weight under the same name ``weight`` as the full-precision conv, so a
  full-precision checkpoint initialises the latent weights of its binary counterpart; parameters
  the source lacks (``log_alpha`` of ``binary_scale="alpha"``) keep their initial value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import (
    CheckpointError,
    CorruptCheckpointError,
    _read_tensors,
    _resolve_or_last,
    build_model_from_checkpoint,
    read_metadata,
    unwrap_model,
)
from .guards import first_non_finite

__all__ = ["load_teacher", "teacher_logits", "init_from_checkpoint", "InitReport", "read_state_dict"]

log = logging.getLogger("xorsnn.train")


def read_state_dict(path: str | Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a ``torch.save``'d state dict (also ``{"state_dict": ...}`` or
    ``{"model": ...}`` wrappers, as torchvision / timm / Lightning write them), checked to be finite."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"weights file {str(path)!r} does not exist")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(p), device=str(device))
        else:
            obj = torch.load(p, map_location=device, weights_only=True)
    except Exception as exc:  # SafetensorError, unpickling errors: a truncated or damaged file
        raise CorruptCheckpointError(f"weights file {p} is corrupt or truncated ({type(exc).__name__}: "
                                     f"{' '.join(str(exc).split())})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{p} does not hold a state dict (a mapping of names to tensors)")
    bad = first_non_finite((k, v) for k, v in obj.items() if v.is_floating_point())
    if bad is not None:
        raise CheckpointError(f"weights file {p} holds non-finite weights (first: {bad!r}); refusing to use it")
    return obj


def load_teacher(spec: str, model_args: dict[str, Any], device: torch.device | str = "cpu") -> nn.Module:
    """A frozen teacher (eval mode, no gradients) on ``device``.

    Args:
        spec: a checkpoint (run directory -- its ``BEST``, else ``LAST`` --, ``epoch_NNNN`` folder or
            ``model.safetensors``) of any registered model, or ``NAME:WEIGHTS`` (registered model name,
            weights file).
        model_args: constructor arguments of ``NAME`` (the trainer passes the data's ``num_classes``,
            ``in_channels`` and its ``T``); ``num_classes`` is also checked against a checkpoint teacher's.

    Raises:
        ValueError: the teacher cannot be found, has no weights, or predicts a different number of classes.
    """
    from ..models import create_model, list_models

    num_classes = model_args.get("num_classes")
    if Path(spec).expanduser().exists():
        model, meta = build_model_from_checkpoint(spec, device, which="BEST")
        k = meta.get("model_kwargs", {}).get("num_classes", getattr(model, "num_classes", None))
        source = f"{meta['model']} from {meta['checkpoint']}"
    else:
        name, sep, weights = spec.partition(":")
        if name not in list_models():
            raise ValueError(f"teacher {spec!r} is neither an existing checkpoint path nor NAME:WEIGHTS with a "
                             "registered model NAME (see `xorsnn list`)")
        if not sep:
            raise ValueError(f"teacher {spec!r} is a registered model name without weights (a randomly initialised "
                             "teacher teaches nothing): pass a checkpoint of a trained run, or NAME:WEIGHTS_FILE")
        model = create_model(name, **model_args)
        unwrap_model(model).load_state_dict(read_state_dict(weights), strict=True)
        model = model.to(device)
        k, source = num_classes, f"{name} from {weights}"
    if num_classes is not None and k is not None and int(k) != int(num_classes):
        raise ValueError(f"teacher {source} predicts {k} classes but the student has num_classes={num_classes}")
    model.eval().requires_grad_(False)
    log.info("KD teacher: %s", source)
    return model


@torch.no_grad()
def teacher_logits(teacher: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The teacher's logits ``[B, K]`` (float32) for the batch ``x``: the time-mean of an SNN teacher's
    ``[T, B, K]`` output (its prediction), an ANN's ``[1, B, K]`` or ``[B, K]`` as it is."""
    out = teacher(x)
    if out.dim() == 3:
        out = out.float().mean(0)
    if out.dim() != 2:
        raise ValueError(f"teacher output must be [T, B, K] or [B, K], got {tuple(out.shape)}")
    return out.float()


@dataclass
class InitReport:
    """What :func:`init_from_checkpoint` copied.

    Attributes:
        source: the checkpoint directory.
        loaded: names copied into the model.
        missing: the model's names the checkpoint lacks (kept as initialised).
        unexpected: checkpoint names the model lacks (an error).
        mismatched: names present in both with different shapes (an error).
    """

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(self.loaded)} tensors from {self.source}"]
        for name in ("missing", "unexpected", "mismatched"):
            items = getattr(self, name)
            if items:
                parts.append(f"{len(items)} {name} ({', '.join(items[:4])}{', ...' if len(items) > 4 else ''})")
        return "; ".join(parts)


@torch.no_grad()
def init_from_checkpoint(model: nn.Module, path: str | Path) -> InitReport:
    """Copy every tensor of the checkpoint at ``path`` into ``model`` (BN running statistics included).

    ``path``: a run directory (``BEST``, else ``LAST``), an ``epoch_NNNN`` folder or a
    ``model.safetensors`` file. Every checkpoint tensor must exist in ``model`` with the same shape
    (else ``ValueError``, naming them: a checkpoint of another architecture or class count); tensors
    of ``model`` that the checkpoint lacks (``log_alpha`` of a binary layer) keep their initial value.
    """
    ckpt = _resolve_or_last(path)
    model = unwrap_model(model)
    own = model.state_dict()
    tensors = _read_tensors(ckpt, read_metadata(ckpt))  # checksum and finite check, as for --resume
    report = InitReport(str(ckpt.directory))
    matched: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        if name not in own:
            report.unexpected.append(name)
        elif own[name].shape != value.shape:
            report.mismatched.append(name)
        else:
            matched[name] = value
            report.loaded.append(name)
    report.missing = [n for n in own if n not in tensors]
    if report.unexpected or report.mismatched or not matched:
        raise ValueError(f"init_from: {ckpt.weights} is not a checkpoint of this architecture (every tensor must "
                         f"exist in the model with the same shape): {report.summary()}")
    for name, value in matched.items():
        own[name].copy_(value)
    if report.missing:
        log.warning("init_from: %s (missing tensors keep their initial values)", report.summary())
    else:
        log.info("init_from: %s", report.summary())
    return report
