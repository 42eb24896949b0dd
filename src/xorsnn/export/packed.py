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
import weakref
from typing import Any

import numpy as np
import torch
from torch import nn

from ..layers import is_binary_layer
from ..neurons import SpikingNeuron

__all__ = ["PackedConv2d", "PackedLinear", "FusedNeuron", "pack_model", "packed_layers", "is_pm1",
           "numba_available", "neuron_kernel_params"]


# Spikes packed by a FusedNeuron, keyed by the data pointer of its output: the consumer convs reuse them
# instead of re-reading the float tensor. An entry is valid while its tensor is alive and unmodified.
_PACKED: dict[int, tuple[Any, set[tuple[int, ...]], int, np.ndarray]] = {}


def _forget(key: int, ref: Any) -> None:
    e = _PACKED.get(key)
    if e is not None and e[0] is ref:
        del _PACKED[key]


def _register_packed(out: torch.Tensor, packed: np.ndarray) -> None:
    """Remember ``packed`` as the packed form of ``out``; dropped as soon as ``out`` is freed."""
    for key in [k for k, e in _PACKED.items() if e[0]() is None]:
        del _PACKED[key]
    ref = weakref.ref(out)
    weakref.finalize(out, _forget, out.data_ptr(), ref)
    shapes = {tuple(out.shape), (out.shape[0] * out.shape[1], *out.shape[2:])}  # [T, B, C, H, W] or [T*B, C, H, W]
    _PACKED[out.data_ptr()] = (ref, shapes, out._version, packed)


def _lookup_packed(x: torch.Tensor) -> np.ndarray | None:
    e = _PACKED.get(x.data_ptr())
    if e is None or e[0]() is None or tuple(x.shape) not in e[1] or e[2] != x._version or not x.is_contiguous():
        return None
    return e[3]


def numba_available() -> bool:
    """Whether the numba kernels can be imported."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _kernels() -> Any:
    try:
        from . import _packed_kernels
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the bit-packed engine needs numba: pip install 'xorsnn[deploy]' (or pip install numba)"
        ) from exc
    n = torch.get_num_threads()
    _packed_kernels.set_threads(n)  # starts numba's thread pool, which can reset the OpenMP thread count
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)  # leave PyTorch's thread count as the caller set it
    return _packed_kernels


def _effective_weight(mod: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return (mod.binary_weight() if is_binary_layer(mod) else mod.weight).detach()


def is_pm1(mod: nn.Module) -> bool:
    """Whether ``mod`` is a conv / linear layer without bias whose effective weights are all ±1."""
    if not isinstance(mod, (nn.Conv2d, nn.Linear)) or mod.bias is not None:
        return False
    if isinstance(mod, nn.Conv2d) and (mod.groups != 1 or tuple(mod.dilation) != (1, 1)):
        return False
    w = _effective_weight(mod)
    return bool(((w == 1) | (w == -1)).all())


def _pack_weight(w: torch.Tensor) -> np.ndarray:
    """±1 weight ``[O, C, KH, KW]`` -> bits of ``w == +1`` as ``[KH, KW, Cw, O]`` ``uint64``."""
    o_n, c_n, kh, kw = w.shape
    cw = (c_n + 63) // 64
    bits = np.zeros((kh, kw, o_n, cw * 64), np.uint8)
    bits[..., :c_n] = (w > 0).permute(2, 3, 0, 1).cpu().numpy()
    packed = np.packbits(bits, axis=-1, bitorder="little").view("<u8").astype(np.uint64)
    return np.ascontiguousarray(packed.transpose(0, 1, 3, 2))


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
        w = _effective_weight(conv)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size = tuple(conv.kernel_size)
        self.stride = int(conv.stride[0])
        self.padding = int(conv.padding[0])
        self.wpos = _pack_weight(w)
        self.sign = np.ascontiguousarray(w.permute(2, 3, 1, 0).to(torch.float64).cpu().numpy())
        self.last_path = ""  # "popcount" or "signed-add": the path the last call took

    def _out_hw(self, h: int, w: int) -> tuple[int, int]:
        kh, kw = self.kernel_size
        return ((h + 2 * self.padding - kh) // self.stride + 1, (w + 2 * self.padding - kw) // self.stride + 1)

    def forward_4d(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C, H, W] -> [N, O, OH, OW]`` (same dtype as ``x``)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"PackedConv2d: expected [N, C={self.in_channels}, H, W], got {tuple(x.shape)}")
        if x.device.type != "cpu":
            raise ValueError("PackedConv2d runs on the CPU; move the input with x.cpu()")
        k = _kernels()
        xn = x.detach().contiguous().numpy()
        oh, ow = self._out_hw(x.shape[2], x.shape[3])
        out = torch.empty(x.shape[0], self.out_channels, oh, ow, dtype=x.dtype)
        reuse = _lookup_packed(x) if self.padding <= 1 else None
        if reuse is not None:  # spikes packed by the FusedNeuron that produced x (padding 1)
            k.popcount_conv(reuse, self.wpos, self.stride, 1 - self.padding, out.numpy())
            self.last_path = "popcount"
            return out
        packed, binary = k.pack_spikes(xn, self.padding)
        if binary:
            k.popcount_conv(packed, self.wpos, self.stride, 0, out.numpy())
            self.last_path = "popcount"
        else:
            k.signed_add_conv(xn, self.sign, self.stride, self.padding, out.numpy())
            self.last_path = "signed-add"
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            return self.forward_4d(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        return self.forward_4d(x)

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
            conv.weight.copy_(_effective_weight(linear).view(linear.out_features, linear.in_features, 1, 1))
        super().__init__(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"PackedLinear: expected [..., F={self.in_channels}], got {tuple(x.shape)}")
        flat = x.reshape(-1, self.in_channels, 1, 1)
        return self.forward_4d(flat).view(*x.shape[:-1], self.out_channels)

    def extra_repr(self) -> str:
        return f"in_features={self.in_channels}, out_features={self.out_channels}"


def neuron_kernel_params(neuron: SpikingNeuron, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """The constants ``[k, c, b, v_threshold, v_reset, v_init]`` (in ``dtype``, the input's float type, as
    PyTorch casts them) and flags ``[use_c, use_k, k_is_one, use_b, hard_reset, real_valued]`` of the
    numba neuron kernels for ``neuron``'s update ``h = c*x + k*v + b``."""
    d = neuron.dynamics
    consts = np.array((d.k, d.c, d.b, d.v_threshold, d.v_reset, d.v_init), dtype=dtype)
    flags = np.array([d.c != 1.0, d.k != 0.0, d.k == 1.0, d.b != 0.0, d.hard_reset, d.real_valued])
    return consts, flags


class FusedNeuron(nn.Module):
    """Inference form of a :class:`~xorsnn.neurons.SpikingNeuron`: one fused pass over ``[T, B, ...]``.

    The numba kernel keeps the membrane in a register across the ``T`` steps instead of the
    ~8 whole-tensor PyTorch operations per step of the training form, and performs the same float
    operations in the same order (constants cast to the input dtype, as PyTorch does), so its
    output is bitwise equal to the neuron's. Starts from rest (the neuron must not be ``stateful``).
    Float32 and float64 inputs; other dtypes fall back to the original module.
    """

    def __init__(self, neuron: SpikingNeuron) -> None:
        super().__init__()
        if neuron.stateful:
            raise ValueError("FusedNeuron: a stateful neuron cannot be fused (it integrates from rest)")
        self.neuron = neuron
        self._consts32, self._flags = neuron_kernel_params(neuron, np.float32)
        self._consts64, _ = neuron_kernel_params(neuron, np.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype not in (torch.float32, torch.float64) or x.device.type != "cpu" or x.dim() < 2:
            return self.neuron(x)
        k = _kernels()
        xs = x.detach()
        out = torch.empty(xs.shape, dtype=xs.dtype)
        if x.dim() == 5 and not self._flags[5] and x.shape[0] > 1 and x.stride(0) == 0:
            xs = xs[:1]  # a T-expanded input (static image): the kernel reads its single step T times
        xs = xs.contiguous()
        consts = self._consts32 if x.dtype == torch.float32 else self._consts64
        if x.dim() == 5 and not self._flags[5]:  # binary spikes of feature maps: also pack them (padding 1)
            t_n, b_n, c_n, h_n, w_n = out.shape
            packed = np.zeros((t_n * b_n, h_n + 2, w_n + 2, (c_n + 63) // 64), np.uint64)
            k.neuron_pack(xs.numpy(), consts, self._flags, out.numpy(), packed)
            _register_packed(out, packed)
            return out
        k.neuron_multistep(xs.view(x.shape[0], -1).numpy(), consts, self._flags, out.view(x.shape[0], -1).numpy())
        return out

    def extra_repr(self) -> str:
        return "fused numba kernel"


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` in place of the submodule of ``model`` at the dotted path ``name``."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    if isinstance(parent, nn.Sequential) or child.isdigit():
        parent._modules[child] = new
    else:
        setattr(parent, child, new)


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
        from .packed_fused import fuse_blocks as _fuse_blocks

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
        _replace(out, name, PackedConv2d(mod) if isinstance(mod, nn.Conv2d) else PackedLinear(mod))
    if fuse_neurons:
        for name, mod in neurons:
            _replace(out, name, FusedNeuron(mod))
    return out


def packed_layers(model: nn.Module) -> list[str]:
    """Names of the packed layers of a model returned by :func:`pack_model`."""
    return [name for name, mod in model.named_modules() if isinstance(mod, PackedConv2d)]
