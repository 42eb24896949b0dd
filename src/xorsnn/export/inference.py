"""Modules of a re-parameterised (inference-form) binary-weight SNN.

:func:`xorsnn.export.reparameterize` rewrites a trained model into these:

* :class:`FoldedNeuron` -- a spiking neuron whose input BN and input scale have been folded into a
  per-channel threshold ``theta``, a constant bias current ``beta`` and an output gain ``omega``;
* :class:`ChannelAffine` -- an explicit per-channel ``scale * x + shift`` where a gain cannot be
  folded away (its cost depends on what it multiplies, see ``input_kind``);
* ordinary ``TimeConv2d`` / ``TimeLinear`` layers whose weights are exactly ``±1``.

All take time-first tensors ``[T, B, C, ...]`` with the channel at dim 2.
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_choice
from ..neurons.dynamics import NeuronDynamics, charge

__all__ = ["FoldedNeuron", "ChannelAffine", "INPUT_KINDS"]

INPUT_KINDS = ("events", "sparse", "dense")


def _channel_view(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``v`` ``[C]`` shaped to broadcast over one time step ``[B, C, *spatial]`` of ``x`` ``[T, B, C, ...]``."""
    return v.view((-1,) + (1,) * (x.dim() - 3))


class FoldedNeuron(nn.Module):
    """Inference neuron with per-channel threshold, bias current and output gain.

    With ``X'`` the (rescaled) input current and ``V'`` the post-reset membrane::

        H'[t] = k V'[t-1] + c (X'[t] + beta)
        S[t]  = 1[H'[t] >= theta]
        O[t]  = omega * S[t]            (binary spikes)   or   omega * H'[t] * S[t]   (real-valued)
        V'[t] = H'[t] (1 - S[t])        (hard reset to 0) or   H'[t] - theta S[t]     (soft reset)

    If the trained neuron saw ``X = u (X' + beta)`` with ``u > 0`` per channel, then ``H = u H'``, and
    with ``theta = V_th / u`` it fires at exactly the same steps (positive homogeneity); real-valued
    spikes come out divided by ``u``, which the gain bookkeeping of the export carries forward.

    Args:
        dynamics: the trained neuron's constants (``k``, ``c``, reset, real-valued output).
        threshold: ``theta`` ``[C]`` (> 0).
        bias: ``beta`` ``[C]`` or ``None``.
        gain: ``omega`` ``[C]`` or ``None`` (1).
        stateful: keep the final membrane between calls (detached), as :class:`~xorsnn.neurons.SpikingNeuron`.

    Shapes: ``[T, B, C, ...] -> [T, B, C, ...]``.
    """

    def __init__(
        self,
        dynamics: NeuronDynamics,
        threshold: torch.Tensor,
        bias: torch.Tensor | None = None,
        gain: torch.Tensor | None = None,
        *,
        stateful: bool = False,
    ) -> None:
        super().__init__()
        if dynamics.b != 0.0 or (dynamics.hard_reset and dynamics.v_reset != 0.0):
            raise ValueError("FoldedNeuron needs a positively homogeneous neuron (v_reset = 0, no constant current)")
        if threshold.dim() != 1 or not bool((threshold > 0).all()):
            raise ValueError("FoldedNeuron: threshold must be a 1-D tensor [C] with every entry > 0")
        self.dynamics = dynamics
        self.k = float(dynamics.k)
        self.c = float(dynamics.c)
        self.hard_reset = bool(dynamics.hard_reset)
        self.real_valued = bool(dynamics.real_valued)
        self.register_buffer("threshold", threshold.clone())
        self.register_buffer("bias", None if bias is None else bias.clone())
        self.register_buffer("gain", None if gain is None else gain.clone())
        self.stateful = bool(stateful)
        self._state: torch.Tensor | None = None

    @property
    def channels(self) -> int:
        return int(self.threshold.numel())

    def reset_state(self) -> None:
        """Forget the membrane carried by ``stateful=True``."""
        self._state = None

    def scale_output(self, factor: torch.Tensor) -> None:
        """Multiply the output gain ``omega`` by ``factor`` ``[C]`` (Eq. 18 of ReverB-SNN)."""
        factor = factor.to(self.threshold)
        self.gain = factor.clone() if self.gain is None else self.gain * factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3 or x.shape[2] != self.channels:
            raise ValueError(
                f"FoldedNeuron: expected [T, B, C={self.channels}, ...], got {tuple(x.shape)}"
            )
        theta = _channel_view(self.threshold, x)
        beta = None if self.bias is None else _channel_view(self.bias, x)
        omega = None if self.gain is None else _channel_view(self.gain, x)
        v = self._state if self.stateful and self._state is not None else torch.zeros_like(x[0])
        outs = []
        for t in range(x.shape[0]):
            h = charge(v, x[t] if beta is None else x[t] + beta, self.dynamics)  # the trained neuron's step
            s = (h >= theta).to(h.dtype)
            o = h * s if self.real_valued else s
            outs.append(o if omega is None else o * omega)
            v = h * (1 - s) if self.hard_reset else h - theta * s
        if self.stateful:
            self._state = v.detach()
        return torch.stack(outs)

    def extra_repr(self) -> str:
        parts = [f"channels={self.channels}", f"k={self.k:g}", f"c={self.c:g}",
                 "hard reset" if self.hard_reset else "soft reset"]
        flags = {"real_valued=True": self.real_valued, "bias": self.bias is not None, "gain": self.gain is not None}
        return ", ".join(parts + [part for part, on in flags.items() if on])


class ChannelAffine(nn.Module):
    """``y = scale[c] * x + shift[c]`` on ``[T, B, C, ...]`` (either part may be ``None``).

    ``input_kind`` records what the scale multiplies, for the op report:

    * ``"events"`` -- spikes whose non-zero value is a per-channel constant: the product is a
      constant per channel, no arithmetic per event;
    * ``"sparse"`` -- graded spikes (real-valued spikes, SEW-ADD integers, pooled spikes): one
      multiplication per non-zero element;
    * ``"dense"`` -- currents / membrane streams: one multiplication per element.

    The shift is one addition per element.
    """

    def __init__(self, scale: torch.Tensor | None, shift: torch.Tensor | None, input_kind: str) -> None:
        super().__init__()
        check_choice("input_kind", input_kind, INPUT_KINDS)
        if scale is None and shift is None:
            raise ValueError("ChannelAffine needs a scale, a shift or both")
        self.register_buffer("scale", None if scale is None else scale.clone())
        self.register_buffer("shift", None if shift is None else shift.clone())
        self.input_kind = input_kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3:
            raise ValueError(f"ChannelAffine: expected a time-first tensor [T, B, C, ...], got {tuple(x.shape)}")
        if self.scale is not None:
            x = x * _channel_view(self.scale, x)
        if self.shift is not None:
            x = x + _channel_view(self.shift, x)
        return x

    def extra_repr(self) -> str:
        what = [n for n in ("scale", "shift") if getattr(self, n) is not None]
        return f"{'+'.join(what)}, input_kind={self.input_kind!r}"
