"""Losses on per-time-step logits ``[T, B, K]``.

=============  ==========================================================================
name           definition
=============  ==========================================================================
``ce``         ``CE(mean_t O_t, y)`` -- cross-entropy on the time-mean of the logits
``tet``        ``(1 - λ) mean_t CE(O_t, y) + λ mean_t MSE(O_t, φ)`` (Deng et al., ICLR 2022),
               ``φ`` a constant tensor (``tet_means``, 1.0); ``λ = 0`` is pure TET
``kd``         ``(1 - λ_kd) L_task + λ_kd τ² mean_t KL(softmax(z_T/τ) ‖ softmax(O_t/τ))``
               (:func:`distill_loss`; :func:`kd_loss` is the KL term)
=============  ==========================================================================
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "mean_ce_loss", "tet_loss", "kd_loss", "distill_loss", "check_logits"]

LOSSES = ("ce", "tet")


def check_logits(logits: torch.Tensor, target: torch.Tensor) -> None:
    """``logits`` must be ``[T, B, K]`` and ``target`` ``[B]`` (class indices)."""
    if logits.dim() != 3:
        raise ValueError(f"logits must have shape [T, B, K], got {tuple(logits.shape)}")
    if target.dim() != 1 or target.shape[0] != logits.shape[1]:
        raise ValueError(f"target must have shape [B={logits.shape[1]}], got {tuple(target.shape)}")


def mean_ce_loss(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of the time-averaged logits. ``logits`` ``[T, B, K]``, ``target`` ``[B]``."""
    check_logits(logits, target)
    return F.cross_entropy(logits.float().mean(0), target, label_smoothing=label_smoothing)


def tet_loss(logits: torch.Tensor, target: torch.Tensor, lam: float = 0.0, means: float = 1.0,
             label_smoothing: float = 0.0) -> torch.Tensor:
    """TET loss: per-step CE averaged over time, plus ``lam`` times an MSE pull towards ``means``.

    ``logits`` ``[T, B, K]``; ``target`` ``[B]``. Equals the official ``TET_loss`` with
    ``lamb=lam`` (its inputs are ``[B, T, K]``).
    """
    check_logits(logits, target)
    T = logits.shape[0]
    z = logits.float()
    ce = F.cross_entropy(z.flatten(0, 1), target.repeat(T), label_smoothing=label_smoothing)
    if lam == 0:
        return ce
    mse = F.mse_loss(z, torch.full_like(z, means))
    return (1 - lam) * ce + lam * mse


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Per-step distillation ``τ² mean_t KL(softmax(z_T/τ) ‖ softmax(O_t/τ))``.

    ``student`` ``[T, B, K]``; ``teacher`` ``[B, K]`` (an ANN) or ``[T, B, K]`` (an SNN teacher, compared
    per step). Batch-mean KL.
    """
    if student.dim() != 3:
        raise ValueError(f"student logits must be [T, B, K], got {tuple(student.shape)}")
    if teacher.dim() == 2:
        teacher = teacher.unsqueeze(0).expand_as(student)
    if teacher.shape != student.shape:
        raise ValueError(f"teacher logits must be [B, K] or [T, B, K] matching {tuple(student.shape)}, "
                         f"got {tuple(teacher.shape)}")
    log_p_s = F.log_softmax(student.float() / tau, dim=-1)
    p_t = F.softmax(teacher.float().detach() / tau, dim=-1)
    kl = (p_t * (torch.log(p_t.clamp_min(1e-12)) - log_p_s)).sum(-1)  # [T, B]
    return tau * tau * kl.mean()


def distill_loss(task: torch.Tensor, student: torch.Tensor, teacher: torch.Tensor, lam: float, tau: float = 1.0
                 ) -> torch.Tensor:
    """``(1 - lam) * task + lam * kd_loss(student, teacher, tau)`` (Hinton et al.'s mix; ``task`` is the CE or
    TET loss of ``student`` ``[T, B, K]``, ``teacher`` ``[B, K]`` or ``[T, B, K]``). ``lam = 0`` returns ``task``
    itself; ``lam = 1`` is pure distillation (the distributional form)."""
    if not 0 <= lam <= 1:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    if lam == 0:
        return task
    kd = kd_loss(student, teacher, tau)
    return kd * lam if lam == 1 else (1 - lam) * task + lam * kd
