"""Multi-step spiking neuron modules: :class:`LIF`, :class:`IF` and :class:`RealSpikeLIF`.

Tensors are time-first: a call on ``[T, B, ...]`` integrates over ``T`` **from rest**, so whole
sequences need no ``reset_net`` bookkeeping. Two opt-in ways to carry state exist:

* ``neuron.step(x_t, v)`` -- single-step form with the state passed in and returned (online
  training such as SLTT, streaming inference);
* ``stateful=True`` -- the module keeps its final membrane between calls (streaming over chunks);
  call :meth:`reset_state` to start again. The carried state is detached between calls.

The neuron's attributes (``tau``, ``decay``, ``v_threshold``, ``surrogate``, ``backend``, ...) are
live: assigning one validates it and rebuilds :attr:`SpikingNeuron.dynamics`, so
``neuron.tau = 10`` takes effect on the next call; ``dynamics`` itself is read-only.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.modules import module as _module

from ..ops.logic import spike_or
from .backends import check_backend, multistep, multistep_fused_cpu, multistep_triton, resolve_backend
from .dynamics import NeuronDynamics, single_step
from .surrogate import Surrogate, get_surrogate

__all__ = ["SpikingNeuron", "LIF", "IF", "RealSpikeLIF"]

#: attributes that define :class:`NeuronDynamics`; assigning one rebuilds ``dynamics``.
_DYNAMICS_ATTRS = (
    "tau", "decay", "v_threshold", "v_reset", "reset", "decay_input", "detach_reset", "surrogate",
    "real_valued", "threshold_grad",
)


def _global_hooks() -> bool:
    """Whether global module forward hooks are registered (they must see every neuron's spikes)."""
    return bool(_module._global_forward_hooks or _module._global_forward_pre_hooks)


def _check_number(name: str, value: Any, *, positive: bool = False, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


# arguments of other libraries' neurons, and what they are called here
_FOREIGN_ARGS = {
    "beta": "xorsnn's decay form LIF(tau=None, decay=b) is snnTorch's Leaky(beta=b): U = b U + X "
            "(hard reset by default; reset='soft' subtracts V_th before the next decay, snnTorch after it)",
    "threshold": "the threshold is v_threshold=",
    "reset_mechanism": "the reset is reset='hard' or 'soft' (snnTorch's 'zero' / 'subtract')",
    "spike_grad": "the surrogate gradient is surrogate= (a name such as 'atan', or a dict)",
    "surrogate_function": "the surrogate gradient is surrogate= (a name such as 'atan', or a dict)",
    "step_mode": "xorsnn neurons are multi-step on [T, B, ...]; call neuron.step(x) for one step",
    "init_hidden": "state is kept between calls with stateful=True (reset with neuron.reset_state())",
}
_OWN_ARGS = (*_DYNAMICS_ATTRS, "stateful", "backend")


def _refuse_foreign_arguments(cls: str, unknown: dict[str, Any]) -> None:
    """``ValueError`` naming an unknown argument: what it is called here, or the closest valid name."""
    import difflib

    name = sorted(unknown)[0]
    if name in _FOREIGN_ARGS:
        hint = _FOREIGN_ARGS[name]
    else:
        close = difflib.get_close_matches(name, _OWN_ARGS, n=1)
        hint = f"did you mean {close[0]}?" if close else f"valid arguments are {', '.join(_OWN_ARGS)}"
    raise ValueError(f"{cls}: unknown argument {name}={unknown[name]!r}; {hint}")


class SpikingNeuron(nn.Module):
    """Multi-step spiking neuron on time-first tensors ``[T, B, ...]``.

    The leak is given either as ``tau`` (SpikingJelly form ``H = V + (X - (V - V_reset)) / tau``)
    or as a multiplicative ``decay`` (MS-ResNet / tdBN form ``U = decay * U * (1 - S) + X``), or as
    neither for the non-leaky IF neuron. See :mod:`xorsnn.neurons.dynamics` for the equations.

    Args:
        tau: membrane time constant (> 1 for a leak; ``tau = 1`` forgets everything each step).
        decay: multiplicative decay in ``[0, 1]``; mutually exclusive with ``tau``.
        v_threshold: firing threshold ``V_th``.
        v_reset: value a hard reset sets the membrane to.
        reset: ``"hard"`` (to ``v_reset``) or ``"soft"`` (subtract ``V_th``).
        decay_input: tau form only; ``True`` scales the input by ``1/tau`` (SpikingJelly default).
        detach_reset: detach the spike in the reset path (default, as in SpikingJelly/MS-ResNet).
        surrogate: a :class:`Surrogate`, a name (``"atan"``, ``"sigmoid"``, ``"triangle"``,
            ``"rectangle"``) or a dict ``{"name": ..., <param>: ...}``.
        real_valued: emit ``H`` where ``H >= V_th`` instead of 1 (ReverB-SNN real-valued spikes).
        threshold_grad: real-valued spikes only; keep the surrogate term at the threshold in the
            gradient (``∂O/∂H = 1[H >= V_th] + H σ'(H - V_th)``). ``False`` drops it.
        stateful: keep the final membrane between calls (detached); see :meth:`reset_state`.
        backend: ``"auto"`` (the fused CPU kernel for CPU float tensors when numba is installed,
            else torch), ``"torch"`` (torch ops + hand-written BPTT; ``"bptt"`` is an alias),
            ``"cpu"`` (force the fused numba kernel), ``"triton"`` (the fused Triton kernels: CUDA
            tensors, or CPU tensors under ``TRITON_INTERPRET=1``; opt-in until measured on a GPU) or
            ``"autograd"`` (the reference loop). See :mod:`xorsnn.neurons.backends`.

    Every argument except ``stateful`` and ``backend`` defines :attr:`dynamics`; assigning one of
    them later (``neuron.tau = 10``) is validated and takes effect on the next call.

    Shapes:
        ``forward``: ``[T, B, ...] -> [T, B, ...]`` (same dtype). ``step``: ``[B, ...] -> [B, ...]``.
    """

    def __init__(
        self,
        tau: float | None = 2.0,
        *,
        decay: float | None = None,
        v_threshold: float = 1.0,
        v_reset: float = 0.0,
        reset: Literal["hard", "soft"] = "hard",
        decay_input: bool = True,
        detach_reset: bool = True,
        surrogate: str | Surrogate | dict[str, Any] | None = "atan",
        real_valued: bool = False,
        threshold_grad: bool = True,
        stateful: bool = False,
        backend: str = "auto",
        **unknown: Any,
    ) -> None:
        if unknown:
            _refuse_foreign_arguments(type(self).__name__, unknown)
        super().__init__()
        config = self._validated(
            tau=tau, decay=decay, v_threshold=v_threshold, v_reset=v_reset, reset=reset,
            decay_input=decay_input, detach_reset=detach_reset, surrogate=surrogate,
            real_valued=real_valued, threshold_grad=threshold_grad,
        )
        self.__dict__.update(config)
        self.__dict__["dynamics"] = self._make_dynamics()
        self.stateful = bool(stateful)
        self.backend = check_backend(backend)
        self._state: torch.Tensor | None = None

    # -- configuration ---------------------------------------------------------------------
    def _validated(self, **cfg: Any) -> dict[str, Any]:
        """Check a full configuration (the ``_DYNAMICS_ATTRS``); returns it normalised (floats, objects)."""
        tau, decay = cfg["tau"], cfg["decay"]
        if tau is not None and decay is not None:
            raise ValueError("give the leak either as tau or as decay, not both (set tau=None to use decay)")
        _check_number("tau", tau, positive=True, allow_none=True)
        _check_number("decay", decay, allow_none=True)
        if tau is not None and tau < 1:
            raise ValueError(f"tau must be >= 1 (tau = 1 means no memory), got {tau!r}")
        if decay is not None and not 0 <= decay <= 1:
            raise ValueError(f"decay must be in [0, 1], got {decay!r}")
        _check_number("v_threshold", cfg["v_threshold"], positive=True)
        _check_number("v_reset", cfg["v_reset"])
        if cfg["reset"] not in ("hard", "soft"):
            raise ValueError(f"reset must be 'hard' or 'soft', got {cfg['reset']!r}")
        return {
            "tau": None if tau is None else float(tau),
            "decay": None if decay is None else float(decay),
            "v_threshold": float(cfg["v_threshold"]),
            "v_reset": float(cfg["v_reset"]),
            "reset": cfg["reset"],
            "decay_input": bool(cfg["decay_input"]),
            "detach_reset": bool(cfg["detach_reset"]),
            "surrogate": get_surrogate(cfg["surrogate"]),
            "real_valued": bool(cfg["real_valued"]),
            "threshold_grad": bool(cfg["threshold_grad"]),
        }

    def __setattr__(self, name: str, value: Any) -> None:
        """Assigning a dynamics attribute validates it and rebuilds ``dynamics``; ``dynamics`` is read-only."""
        if name == "dynamics":
            raise AttributeError(
                f"{type(self).__name__}.dynamics is derived from the neuron's attributes; "
                f"set tau/decay/v_threshold/... instead"
            )
        if name in _DYNAMICS_ATTRS and "dynamics" in self.__dict__:
            cfg = {a: self.__dict__[a] for a in _DYNAMICS_ATTRS}
            cfg[name] = value
            self._check_kind(cfg)
            self.__dict__.update(self._validated(**cfg))
            self.__dict__["dynamics"] = self._make_dynamics()
            return
        if name == "backend":
            value = check_backend(value)
        super().__setattr__(name, value)

    def _check_kind(self, cfg: dict[str, Any]) -> None:
        """Subclass hook: reject a configuration the neuron class cannot have (raises ``ValueError``)."""

    # -- constants -------------------------------------------------------------------------
    def _make_dynamics(self) -> NeuronDynamics:
        if self.tau is not None:
            k = 1.0 - 1.0 / self.tau
            c = 1.0 / self.tau if self.decay_input else 1.0
            b = self.v_reset / self.tau
        elif self.decay is not None:
            k, c, b = self.decay, 1.0, 0.0
        else:  # IF
            k, c, b = 1.0, 1.0, 0.0
        return NeuronDynamics(
            k=k,
            c=c,
            b=b,
            v_threshold=self.v_threshold,
            v_reset=self.v_reset,
            hard_reset=self.reset == "hard",
            detach_reset=self.detach_reset,
            surrogate=self.surrogate,
            real_valued=self.real_valued,
            threshold_grad=self.threshold_grad,
        )

    def firing_current(self, margin: float = 1e-3) -> float:
        """Constant input that makes this neuron fire at every step from rest (see ``NeuronDynamics``)."""
        return self.dynamics.firing_current(margin)

    # -- state -----------------------------------------------------------------------------
    def reset_state(self) -> None:
        """Forget the membrane carried by ``stateful=True`` (no-op otherwise)."""
        self._state = None

    def init_state(self, like: torch.Tensor) -> torch.Tensor:
        """Resting membrane ``[B, ...]`` shaped like one time step ``like``."""
        return torch.full_like(like, self.dynamics.v_init)

    # -- compute ---------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor, name: str, min_dim: int) -> None:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{type(self).__name__}: {name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(
                f"{type(self).__name__}: {name} must be a floating-point tensor, got dtype {x.dtype}"
            )
        if x.dim() < min_dim:
            expected = "[T, B, ...]" if min_dim == 2 else "[B, ...]"
            raise ValueError(
                f"{type(self).__name__}: {name} must have shape {expected}, got {tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Integrate ``x`` ``[T, B, ...]`` over time; returns spikes ``[T, B, ...]``."""
        self._check_input(x, "x", 2)
        v0 = self._state if self.stateful else None
        if v0 is not None and v0.shape != x.shape[1:]:
            raise ValueError(
                f"{type(self).__name__}: stateful neuron holds state of shape {tuple(v0.shape)} but x has "
                f"per-step shape {tuple(x.shape[1:])}; call reset_state() before changing the input shape"
            )
        out, v = multistep(x, self.dynamics, v0, self.backend)
        if self.stateful:
            self._state = v.detach()
        return out

    def fire_or(self, x: torch.Tensor, shortcut: torch.Tensor, form: str = "poly") -> torch.Tensor:
        """``spike_or(shortcut, self(x), form)``: the OR merge of a residual block after this neuron.

        Done inside the neuron's fused kernel calls where one runs (see :meth:`_merge_kernel`; the
        ``"poly"`` form only), bitwise equal to the two-step computation; otherwise it is exactly that.

        Args:
            x: input currents ``[T, B, ...]``.
            shortcut: the spikes merged with this neuron's ``[T, B, ...]``.
            form: OR form (:data:`xorsnn.ops.OR_FORMS`).
        """
        kernel = self._merge_kernel(x, shortcut) if form == "poly" else None
        if kernel is None:
            return spike_or(shortcut, self(x), form)
        return kernel(x, self.dynamics, None, shortcut, "or")[0]

    def fire_add(self, x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        """``self(x) + shortcut``: SEW's ADD merge after this neuron, inside its fused kernel where one runs
        (:meth:`_merge_kernel`), bitwise equal to the two-step computation. Shapes ``[T, B, ...]``."""
        kernel = self._merge_kernel(x, shortcut)
        if kernel is None:
            return self(x) + shortcut
        return kernel(x, self.dynamics, None, shortcut, "add")[0]

    def _merge_kernel(self, x: Any, shortcut: Any) -> Any:
        """The fused multi-step function a merge after this neuron runs in, or ``None``: the neuron's ``backend``
        resolves to ``"cpu"`` (fp32/fp64 inputs) or ``"triton"`` (fp32), it is not stateful, ``shortcut`` has
        ``x``'s shape, dtype and device, and nothing observes the spikes (no forward hooks on this neuron, none
        global: a hook must see the neuron's own output)."""
        if (
            self.stateful
            or self._forward_hooks or self._forward_pre_hooks or _global_hooks()
            or not (isinstance(x, torch.Tensor) and isinstance(shortcut, torch.Tensor))
            or (shortcut.shape, shortcut.dtype, shortcut.device) != (x.shape, x.dtype, x.device)
            or x.dim() < 2
        ):
            return None
        impl = resolve_backend(self.backend, x, self.dynamics)
        if impl == "cpu" and x.dtype in (torch.float32, torch.float64):
            return multistep_fused_cpu
        if impl == "triton" and x.dtype == torch.float32:
            return multistep_triton
        return None

    def step(self, x_t: torch.Tensor, v: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Single time step with explicit state.

        Args:
            x_t: input current ``[B, ...]``.
            v: post-reset membrane from the previous step ``[B, ...]``, or ``None`` for rest.

        Returns:
            ``(out_t, v_new)``. Gradients flow through ``v``; detach it yourself for online rules.
        """
        self._check_input(x_t, "x_t", 1)
        if v is not None and v.shape != x_t.shape:
            raise ValueError(
                f"{type(self).__name__}: state v must have the shape of x_t {tuple(x_t.shape)}, "
                f"got {tuple(v.shape)}"
            )
        return single_step(x_t, v, self.dynamics)

    def extra_repr(self) -> str:
        leak = f"tau={self.tau:g}" if self.tau is not None else (
            f"decay={self.decay:g}" if self.decay is not None else "no leak"
        )
        parts = [
            leak,
            f"v_threshold={self.v_threshold:g}",
            f"reset={self.reset}" + (f"(v_reset={self.v_reset:g})" if self.reset == "hard" else ""),
            f"surrogate={self.surrogate!r}",
        ]
        if self.tau is not None and not self.decay_input:
            parts.append("decay_input=False")
        if not self.detach_reset:
            parts.append("detach_reset=False")
        if self.real_valued:
            parts.append("real_valued=True")
        if self.stateful:
            parts.append("stateful=True")
        return ", ".join(parts)


class LIF(SpikingNeuron):
    """Leaky integrate-and-fire neuron; defaults ``tau=2, V_th=1``, hard reset to 0, atan surrogate.

    ``LIF(tau=None, decay=0.25, v_threshold=0.5, surrogate="rectangle")`` is the MS-ResNet neuron.
    """


class IF(SpikingNeuron):
    """Integrate-and-fire neuron: the no-leak case ``H = V + X``."""

    def __init__(self, *, v_threshold: float = 1.0, **kwargs: Any) -> None:
        for bad in ("tau", "decay", "decay_input"):
            if bad in kwargs:
                raise ValueError(f"IF has no leak: {bad!r} is not a valid argument")
        super().__init__(None, decay=None, v_threshold=v_threshold, **kwargs)

    def _check_kind(self, cfg: dict[str, Any]) -> None:
        for bad in ("tau", "decay"):
            if cfg[bad] is not None:
                raise ValueError(f"IF has no leak: {bad!r} cannot be set (use LIF)")


class RealSpikeLIF(SpikingNeuron):
    """ReverB-SNN neuron: outputs the membrane ``U`` where ``U >= V_th`` and 0 elsewhere.

    Defaults follow ReverB-SNN: decay form with ``decay = 0.25``, ``V_th = 0.25``, hard reset to 0.
    The gradient is ``∂O/∂U = 1[U >= V_th] + U σ'(U - V_th)`` (surrogate at the jump);
    ``threshold_grad=False`` keeps only the indicator (the paper's almost-everywhere derivative).
    """

    def __init__(
        self,
        tau: float | None = None,
        *,
        decay: float | None = None,
        v_threshold: float = 0.25,
        **kwargs: Any,
    ) -> None:
        if kwargs.pop("real_valued", True) is not True:
            raise ValueError("RealSpikeLIF always emits real-valued spikes; use LIF for binary spikes")
        if tau is None and decay is None:
            decay = 0.25  # ReverB-SNN's membrane decay
        super().__init__(tau, decay=decay, v_threshold=v_threshold, real_valued=True, **kwargs)

    def _check_kind(self, cfg: dict[str, Any]) -> None:
        if cfg["real_valued"] is not True:
            raise ValueError("RealSpikeLIF always emits real-valued spikes: real_valued cannot be changed")
