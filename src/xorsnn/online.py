"""Online training and inference one time step at a time: SLTT and SLTT-K at the model level.

SLTT (Meng et al., ICCV 2023, arXiv 2302.14311): *the only change from BPTT is detaching the carried
membrane state*. The gradient then keeps only the spatial path of each step,
``dL/dW = sum_t dL_t/ds_t * ds_t/du_t * du_t/dW``, so the loss of step ``t`` can be
back-propagated as soon as step ``t`` has run and its graph freed: activation memory is O(1) in
``T`` instead of O(T).

xorsnn gets this for free from two facts: every neuron module supports ``stateful=True`` (the
membrane is kept between calls and **detached**), and every model takes time-first input. Running a
model on ``[1, B, ...]`` chunks with ``T = 1`` and stateful neurons *is* SLTT's forward pass::

    from xorsnn.online import sltt_step_losses

    for images, labels in loader:
        optimizer.zero_grad()
        out = sltt_step_losses(model, images, labels, torch.nn.functional.cross_entropy)
        optimizer.step()                      # once per batch, after the T backward() calls
        correct += (out.prediction.argmax(1) == labels).sum()

``loss_fn(out_t, target)`` gets the step's logits ``[B, K]``; it may be any per-step loss (CE =
per-step TET, SLTT's CE+MSE mix, per-step KD against teacher logits computed once per batch in a
closure). Each step's loss is divided by ``T`` before ``backward()``.

**BatchNorm.** Step by step, a train-mode BN normalises each step with that step's batch
statistics (over ``B, H, W``) and updates its running statistics ``T`` times per batch; run on the
whole sequence it uses statistics over ``T*B``. This is the per-time-step BN SLTT needs; eval-mode BN
is identical in both modes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["stepwise", "run_stepwise", "sltt_step_losses", "OnlineStepResult", "ActivationMemoryProbe"]


@contextlib.contextmanager
def stepwise(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` one time step per call, carrying (detached) membrane state between calls.

    Inside the context every neuron is ``stateful`` (state reset on entry and on exit) and
    ``model.T`` is 1, so ``model(x_t)`` with a static ``[B, ...]`` input or a one-step sequence
    ``[1, B, ...]`` returns ``[1, B, K]`` and continues from the previous call's membranes.
    The previous settings are restored on exit.
    """
    neurons = [m for m in model.modules() if hasattr(m, "stateful") and callable(getattr(m, "reset_state", None))]
    if not neurons:
        raise ValueError(f"stepwise: {type(model).__name__} has no neuron with a 'stateful' mode")
    flags = [m.stateful for m in neurons]
    old_T = getattr(model, "T", None)
    try:
        for m in neurons:
            m.stateful = True
            m.reset_state()
        if old_T is not None:
            model.T = 1
        yield model
    finally:
        for m, f in zip(neurons, flags, strict=True):
            m.stateful = f
            m.reset_state()
        if old_T is not None:
            model.T = old_T


def _steps(x: torch.Tensor, T: int, sequence: bool | None) -> Callable[[int], torch.Tensor]:
    if sequence is None:
        sequence = x.dim() in (3, 5)  # [T, B, F] / [T, B, C, H, W]; static inputs are [B, F] / [B, C, H, W]
    if sequence:
        if x.shape[0] != T:
            raise ValueError(f"x is a sequence with {x.shape[0]} time steps, expected T={T} ([T, B, ...])")
        return lambda t: x[t : t + 1]
    return lambda t: x


def _resolve_T(model: nn.Module, T: int | None) -> int:
    T = getattr(model, "T", None) if T is None else T
    if not isinstance(T, int) or isinstance(T, bool) or T < 1:
        raise ValueError(f"T must be a positive int (or the model must have an int attribute T), got {T!r}")
    return T


def run_stepwise(
    model: nn.Module, x: torch.Tensor, T: int | None = None, *, sequence: bool | None = None
) -> torch.Tensor:
    """Forward pass one step at a time (no gradient): ``[T, B, K]``.

    Args:
        model: a time-first xorsnn model.
        x: a static input ``[B, ...]`` (repeated every step) or a sequence ``[T, B, ...]``.
        T: time steps (default ``model.T``).
        sequence: whether ``x`` is a sequence; by default odd-rank inputs (``[T, B, F]``,
            ``[T, B, C, H, W]``) are sequences and even-rank ones static.

    In eval mode this equals ``model(x)`` (the carried state is the same; only BN in train mode differs).
    """
    T = _resolve_T(model, T)
    step = _steps(x, T, sequence)
    with torch.no_grad(), stepwise(model):
        return torch.cat([model(step(t)) for t in range(T)])


@dataclass
class OnlineStepResult:
    """Result of :func:`sltt_step_losses`.

    Attributes:
        prediction: ``sum_t out_t`` ``[B, K]`` (detached) -- argmax it for the batch accuracy.
        loss: ``sum_t loss_fn(out_t, target) / T`` (detached scalar; every step, also no-grad ones).
        grad_steps: the time steps whose loss was back-propagated.
    """

    prediction: torch.Tensor
    loss: torch.Tensor
    grad_steps: list[int]


def sltt_step_losses(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    T: int | None = None,
    k: int | None = None,
    generator: torch.Generator | None = None,
    sequence: bool | None = None,
) -> OnlineStepResult:
    """One SLTT (or SLTT-K) forward/backward over a batch; accumulates gradients in ``.grad``.

    For ``t = 0 .. T-1``: ``out_t = model(x_t)`` (membranes carried, detached), ``loss_t =
    loss_fn(out_t, target) / T``, ``loss_t.backward()`` (the step's graph is freed). Call
    ``optimizer.zero_grad()`` before and ``optimizer.step()`` after.

    Args:
        model: a time-first xorsnn model (its ``T`` is used unless ``T`` is given).
        x: static input ``[B, ...]`` or sequence ``[T, B, ...]`` (see :func:`run_stepwise`).
        target: passed to ``loss_fn`` unchanged (labels ``[B]``, soft targets, ...).
        loss_fn: ``(out_t [B, K], target) -> scalar``.
        k: SLTT-K -- back-propagate only ``k`` time steps drawn at random (without replacement)
            each call; the other steps run under ``no_grad`` but still advance the state and count
            in the prediction. ``None`` (default) back-propagates every step.
        generator: random source for SLTT-K's choice of steps.

    Returns:
        :class:`OnlineStepResult` with the summed prediction, the loss value and the grad steps.
    """
    T = _resolve_T(model, T)
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= T):
        raise ValueError(f"k must be an int in [1, T={T}] or None, got {k!r}")
    grad_steps = list(range(T)) if k is None else sorted(torch.randperm(T, generator=generator)[:k].tolist())
    step = _steps(x, T, sequence)
    prediction: torch.Tensor | None = None
    total: torch.Tensor | None = None  # summed on the loss's device: no host sync per time step
    with stepwise(model):
        for t in range(T):
            with torch.set_grad_enabled(t in grad_steps and torch.is_grad_enabled()):
                out = model(step(t))
                out_t = out[0] if out.dim() >= 3 and out.shape[0] == 1 else out
                loss = loss_fn(out_t, target) / T
                if loss.requires_grad:
                    loss.backward()
            prediction = out_t.detach() if prediction is None else prediction + out_t.detach()
            total = loss.detach() if total is None else total + loss.detach()
    assert prediction is not None and total is not None
    return OnlineStepResult(prediction, total.cpu(), grad_steps)


class _Saved:
    """What a probed saved tensor is replaced by in the graph; releases its bytes when freed."""

    __slots__ = ("tensor", "key", "probe", "__weakref__")

    def __init__(self, tensor: torch.Tensor, key: int, probe: ActivationMemoryProbe) -> None:
        self.tensor, self.key, self.probe = tensor, key, probe

    def __del__(self) -> None:
        self.probe._release(self.key)


class ActivationMemoryProbe:
    """Measure the bytes autograd keeps for backward (live and peak), on any device.

    Uses ``torch.autograd.graph.saved_tensors_hooks``: every tensor saved for backward inside the
    context is counted once per storage while any graph still holds it; parameters (leaf tensors
    that require grad) are not activation memory and are skipped.

    >>> with ActivationMemoryProbe() as probe:
    ...     loss = model(x).sum(); loss.backward()
    >>> probe.peak_bytes
    """

    def __init__(self) -> None:
        self.live_bytes = 0
        self.peak_bytes = 0
        self._storages: dict[int, list[int]] = {}  # storage ptr -> [bytes, refcount]
        self._ctx: contextlib.AbstractContextManager | None = None

    def _pack(self, t: torch.Tensor) -> object:
        if t.is_leaf and t.requires_grad:
            return t
        storage = t.untyped_storage()
        key = storage.data_ptr()
        entry = self._storages.get(key)
        if entry is None:
            self._storages[key] = [storage.nbytes(), 1]
            self.live_bytes += storage.nbytes()
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        else:
            entry[1] += 1
        return _Saved(t, key, self)

    @staticmethod
    def _unpack(p: object) -> torch.Tensor:
        return p.tensor if isinstance(p, _Saved) else p  # type: ignore[return-value]

    def _release(self, key: int) -> None:
        entry = self._storages.get(key)
        if entry is None:  # pragma: no cover
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.live_bytes -= entry[0]
            del self._storages[key]

    def __enter__(self) -> ActivationMemoryProbe:
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._ctx is not None
        self._ctx.__exit__(*exc)
        self._ctx = None
