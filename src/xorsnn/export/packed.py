"""Bit-packed CPU inference for binary-weight SNNs (SEI-BWSNN-style and ReverB-style).

:func:`pack_model` returns a copy of an eval-mode model in which every convolution / linear layer
whose (effective) weights are **exactly ±1** and that has no bias is replaced by a
:class:`PackedConv2d` / :class:`PackedLinear`. At run time each packed layer looks at its input:

* **binary spikes** (every value 0 or 1): spikes are packed 64 channels per ``uint64`` word and the
  layer computes ``sum_i s_i w_i = 2 * popcount(s AND w+) - popcount(s)`` over the receptive field
  (AND + popcount, vectorised to AVX-512 ``vpopcntq`` where the CPU has it). The result is an
  integer, so it equals the float model's convolution **exactly** (a float32 conv of {0,1} inputs
  with ±1 weights is exact too: every partial sum is an integer below ``2**24``);
* **real-valued spikes** (ReverB-SNN): the addition-only path -- every non-zero input adds ``+x`` or
  ``-x`` (a sign-table lookup) to the outputs it reaches, accumulated in float64. Floating-point
  additions in another order than PyTorch's: equal to the float model up to rounding (below
  ``1e-9`` relative in float64), not bit for bit.

Everything else (BN, neurons, pooling, residual merges, the full-precision first conv and
classifier) runs as the model's own PyTorch modules on the same values, so with binary spikes the
packed model's logits are **bitwise equal** to the float model's (``torch.equal``; tested on real
Fashion-MNIST and CIFAR-10 images). By default, Spiking / OA / XOR basic blocks go further and run
as fused blocks on packed spikes (:mod:`xorsnn.export.packed_fused`), with the same exactness.

Which layers are ±1: binary layers with ``binary_scale="none"``, and every block conv of a
re-parameterised model (:func:`xorsnn.export.reparameterize`), which is how ``alpha`` and
``magnitude`` scales are handled: ``pack_model(reparameterize(model))``.

The kernels are numba functions (optional dependency, extra ``deploy``); they are compiled on first
use and cached on disk.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..neurons import SpikingNeuron
from .packed_core import (
    PackedSpikes,
    effective_weight,
    is_pm1,
    kernels,
    neuron_kernel_params,
    numba_available,
    pack_weight,
    packed_form,
    replace_module,
)
from .packed_fused import fuse_blocks as _fuse_blocks
from .reparam import reparameterize

__all__ = ["packable_form", "PackedConv2d", "PackedLinear", "FusedNeuron", "pack_model", "packed_layers", "is_pm1",
           "numba_available", "neuron_kernel_params"]


class PackedConv2d(nn.Module):
    """A ±1-weight ``Conv2d`` computed with bit-packed popcounts (binary input) or signed additions
    (real-valued input). Shapes: ``[T, B, C, H, W]`` or ``[N, C, H, W]`` -> same layout as the conv.

    Built from a conv / binary conv whose effective weight is exactly ±1 (see :func:`is_pm1`).
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if not is_pm1(conv):
            raise ValueError("PackedConv2d: conv must have exactly ±1 weights, no bias, groups=1, dilation=1")
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("PackedConv2d: only numeric zero padding is supported")
        if conv.stride[0] != conv.stride[1] or conv.padding[0] != conv.padding[1]:
            raise ValueError("PackedConv2d: stride and padding must be the same along H and W")
        w = effective_weight(conv)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size = tuple(conv.kernel_size)
        self.stride = int(conv.stride[0])
        self.padding = int(conv.padding[0])
        self.wpos = pack_weight(w)
        self.sign = np.ascontiguousarray(w.permute(2, 3, 1, 0).to(torch.float64).cpu().numpy())
        self.last_path = ""  # "popcount" or "signed-add": the path the last call took

    def forward_4d(self, x: torch.Tensor, reuse: np.ndarray | None = None) -> torch.Tensor:
        """``[N, C, H, W] -> [N, O, OH, OW]`` (same dtype as ``x``); ``reuse``: ``x``'s packed words
        ``[N, H+2, W+2, Cw]`` if its producer has them (:class:`~xorsnn.export.packed_core.PackedSpikes`)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"PackedConv2d: expected [N, C={self.in_channels}, H, W], got {tuple(x.shape)}")
        if x.device.type != "cpu":
            raise ValueError("PackedConv2d runs on the CPU; move the input with x.cpu()")
        k = kernels()
        xn = x.detach().contiguous().numpy()
        kh, kw = self.kernel_size
        oh = (x.shape[2] + 2 * self.padding - kh) // self.stride + 1
        ow = (x.shape[3] + 2 * self.padding - kw) // self.stride + 1
        out = torch.empty(x.shape[0], self.out_channels, oh, ow, dtype=x.dtype)
        if reuse is not None and self.padding <= 1:  # spikes packed by their producer (padding 1)
            packed, binary, off = reuse, True, 1 - self.padding
        else:
            packed, binary = k.pack_spikes(xn, self.padding)
            off = 0
        if binary:
            k.popcount_conv(packed, self.wpos, self.stride, off, out.numpy())
            self.last_path = "popcount"
        else:
            k.signed_add_conv(xn, self.sign, self.stride, self.padding, out.numpy())
            self.last_path = "signed-add"
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reuse = packed_form(x)
        if x.dim() == 5:
            return self.forward_4d(x.flatten(0, 1), reuse).unflatten(0, x.shape[:2])
        return self.forward_4d(x, reuse)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}")


class PackedLinear(PackedConv2d):
    """A ±1-weight ``Linear`` (no bias) as a packed 1x1 convolution: ``[..., F_in] -> [..., F_out]``."""

    def __init__(self, linear: nn.Linear) -> None:
        if not is_pm1(linear):
            raise ValueError("PackedLinear: linear must have exactly ±1 weights and no bias")
        conv = nn.Conv2d(linear.in_features, linear.out_features, 1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(effective_weight(linear).view(linear.out_features, linear.in_features, 1, 1))
        super().__init__(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"PackedLinear: expected [..., F={self.in_channels}], got {tuple(x.shape)}")
        flat = x.reshape(-1, self.in_channels, 1, 1)
        return self.forward_4d(flat).view(*x.shape[:-1], self.out_channels)

    def extra_repr(self) -> str:
        return f"in_features={self.in_channels}, out_features={self.out_channels}"


class FusedNeuron(nn.Module):
    """Inference form of a :class:`~xorsnn.neurons.SpikingNeuron`: one fused pass over ``[T, B, ...]``.

    Binary spikes of feature maps (``[T, B, C, H, W]``, float32/float64 on the CPU) take one numba
    kernel that keeps the membrane in a register across the ``T`` steps, performs the same float
    operations in the same order as the neuron (constants cast to the input dtype, as PyTorch does),
    so its spikes are bitwise equal, and packs them for the next packed layer (:class:`PackedSpikes`).
    Every other input runs the neuron's own forward without autograd (itself the fused CPU kernel where
    :mod:`xorsnn.neurons.backends` chooses it). Starts from rest (the neuron must not be ``stateful``).
    """

    def __init__(self, neuron: SpikingNeuron) -> None:
        super().__init__()
        if neuron.stateful:
            raise ValueError("FusedNeuron: a stateful neuron cannot be fused (it integrates from rest)")
        self.neuron = neuron
        self._consts32, self._flags = neuron_kernel_params(neuron, np.float32)
        self._consts64, _ = neuron_kernel_params(neuron, np.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype not in (torch.float32, torch.float64) or x.device.type != "cpu" or x.dim() != 5 or self._flags[5]:
            with torch.no_grad():  # other shapes, dtypes, devices, real-valued spikes: the neuron's own pass
                return self.neuron(x)
        # binary spikes of feature maps: one pass that also packs them (padding 1)
        xs = x.detach()
        out = torch.empty(xs.shape, dtype=xs.dtype)
        consts = self._consts32 if x.dtype == torch.float32 else self._consts64
        if x.shape[0] > 1 and x.stride(0) == 0:
            xs = xs[:1]  # a T-expanded input (static image): the kernel reads its single step T times
        t_n, b_n, c_n, h_n, w_n = out.shape
        packed = np.zeros((t_n * b_n, h_n + 2, w_n + 2, (c_n + 63) // 64), np.uint64)
        kernels().neuron_pack(xs.contiguous().numpy(), consts, self._flags, out.numpy(), packed)
        return PackedSpikes.wrap(out, packed)

    def extra_repr(self) -> str:
        return "fused numba kernel"


def packable_form(model: nn.Module) -> tuple[nn.Module, bool]:
    """``(form, reparameterized)``: the form of a trained model the packed engine takes -- the model
    itself (±1 weights, or an already re-parameterised export) or its re-parameterisation (scaled
    binary weights). A float-weight model is refused with a one-line ``ValueError``."""
    if getattr(model, "reparameterized", False):
        return model, False
    weights = getattr(model, "weights", "float")
    if weights != "binary":
        raise ValueError(f"the packed engine needs a binary-weight model (weights='binary'); this one has "
                         f"weights={weights!r}")
    reparam = getattr(model, "binary_scale", "none") != "none"
    return (reparameterize(model) if reparam else model), reparam


def pack_model(model: nn.Module, *, fuse_neurons: bool = True, fuse_blocks: bool = True) -> nn.Module:
    """A copy of ``model`` (eval mode) with every ±1 conv / linear replaced by its packed form and,
    with ``fuse_neurons``, every (non-stateful) spiking neuron by a :class:`FusedNeuron`.

    With ``fuse_blocks`` (and ``fuse_neurons``), Spiking ResNet basic blocks that qualify
    (:func:`xorsnn.export.packed_fused.can_fuse_block`) first become
    :class:`~xorsnn.export.packed_fused.FusedBasicBlock`: conv, BN, residual and neurons in
    one pass over bit-packed spikes (forward hooks on their inner modules then do not fire). Their
    original form, itself packed layer by layer, is kept as the fallback for inputs the fused
    kernels cannot take.

    Works on any model built from ``nn.Conv2d`` / ``nn.Linear`` modules (``SpikingResNet``,
    ``DeepSNNStack``, re-parameterised models). Layers that are not ±1 (first conv, classifier,
    scaled binary layers of a model that was not re-parameterised) stay as they are;
    :func:`packed_layers` lists the replaced ones. Raises ``ValueError`` when nothing can be packed.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"pack_model: model must be an nn.Module, got {type(model).__name__}")
    out = copy.deepcopy(model).eval()
    if fuse_blocks and fuse_neurons and numba_available():
        _fuse_blocks(out)
    targets = [(name, mod) for name, mod in out.named_modules() if name and is_pm1(mod)]
    neurons = [(name, mod) for name, mod in out.named_modules() if isinstance(mod, SpikingNeuron) and not mod.stateful]
    if not targets:
        raise ValueError(
            "pack_model: the model has no conv/linear layer with exactly ±1 weights and no bias; build it with "
            "weights='binary' (binary_scale='none'), or re-parameterise scaled binary weights first: "
            "pack_model(xorsnn.export.reparameterize(model))"
        )
    for name, mod in targets:
        replace_module(out, name, PackedConv2d(mod) if isinstance(mod, nn.Conv2d) else PackedLinear(mod))
    if fuse_neurons:
        for name, mod in neurons:
            replace_module(out, name, FusedNeuron(mod))
    return out


def packed_layers(model: nn.Module) -> list[str]:
    """Names of the packed layers of a model returned by :func:`pack_model`."""
    return [name for name, mod in model.named_modules() if isinstance(mod, PackedConv2d)]
