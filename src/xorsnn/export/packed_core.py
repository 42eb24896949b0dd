"""What the layer-by-layer packed engine and the fused blocks share: the kernels, ±1 weights, and
:class:`PackedSpikes`, the value in which packed spikes travel from one layer to the next.

A producer that has the bit-packed form of its binary spikes anyway (a fused neuron, a fused block
chain) returns a :class:`PackedSpikes`: an ordinary float tensor ``[T, B, C, H, W]`` that also
carries ``packed``, the same spikes as ``uint64`` words ``[T*B, H+2, W+2, ceil(C/64)]`` (zero border
of 1). A packed conv that receives one reads the words instead of re-packing the floats. Any torch
operation on it returns a plain tensor (so nothing derived from it claims to be packed), and an
in-place change drops ``packed`` -- there is no registry and no lookup by address.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import numpy as np
import torch
from torch import nn

from ..layers import effective_weight
from ..neurons import SpikingNeuron

__all__ = [
    "PackedSpikes",
    "packed_form",
    "Residual",
    "kernels",
    "numba_available",
    "effective_weight",
    "is_pm1",
    "pack_weight",
    "neuron_kernel_params",
    "replace_module",
]


def _in_place(func: Any) -> bool:
    name = getattr(func, "__name__", "")
    if name.startswith("__"):
        return name == "__setitem__" or (name.startswith("__i") and name not in ("__index__", "__init__", "__iter__",
                                                                                  "__invert__"))
    return name.endswith("_")


class PackedSpikes(torch.Tensor):
    """Binary spikes ``[T, B, C, H, W]`` (float) with their bit-packed form ``packed`` (or ``None``
    once the tensor was changed in place). Build with :meth:`wrap`."""

    packed: np.ndarray | None

    @staticmethod
    def wrap(spikes: torch.Tensor, packed: np.ndarray) -> PackedSpikes:
        """``spikes`` (a plain tensor the caller owns) carrying ``packed`` ``[T*B, H+2, W+2, Cw]``."""
        out = spikes.as_subclass(PackedSpikes)
        out.packed = packed
        return out

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if args and isinstance(args[0], PackedSpikes) and _in_place(func):
            args[0].packed = None  # the words no longer describe the values
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **(kwargs or {}))


def packed_form(x: torch.Tensor) -> np.ndarray | None:
    """The packed words ``x`` carries (padding 1), or ``None``."""
    return x.packed if isinstance(x, PackedSpikes) else None


class Residual(IntEnum):
    """What the fused kernel (``_packed_kernels.fused_conv_bn_neuron``) merges into a conv's output."""

    NONE = 0
    ADD_SPIKES = 1  # + a binary spike read from packed words, before the neuron (Spiking ResNet identity)
    ADD_CURRENT = 2  # + a float current, before the neuron (projection shortcut: current ADD)
    OR = 3  # OR with packed words, after the neuron (OA identity)
    XOR = 4  # XOR with packed words, after the neuron (XOR merge)


def numba_available() -> bool:
    """Whether the numba kernels can be imported."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def kernels() -> Any:
    """The numba kernels (``ImportError`` naming the extra when numba is missing); keeps PyTorch's
    thread count as the caller set it."""
    try:
        from . import _packed_kernels
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the bit-packed engine needs numba: pip install 'xorsnn[deploy]' (or pip install numba)"
        ) from exc
    n = torch.get_num_threads()
    _packed_kernels.set_threads(n)  # starts numba's thread pool, which can reset the OpenMP thread count
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return _packed_kernels


def is_pm1(mod: nn.Module) -> bool:
    """Whether ``mod`` is a conv / linear layer without bias whose effective weights are all ±1."""
    if not isinstance(mod, (nn.Conv2d, nn.Linear)) or mod.bias is not None:
        return False
    if isinstance(mod, nn.Conv2d) and (mod.groups != 1 or tuple(mod.dilation) != (1, 1)):
        return False
    w = effective_weight(mod)
    return bool(((w == 1) | (w == -1)).all())


def pack_weight(w: torch.Tensor) -> np.ndarray:
    """±1 weight ``[O, C, KH, KW]`` -> bits of ``w == +1`` as ``[KH, KW, Cw, O]`` ``uint64``."""
    o_n, c_n, kh, kw = w.shape
    cw = (c_n + 63) // 64
    bits = np.zeros((kh, kw, o_n, cw * 64), np.uint8)
    bits[..., :c_n] = (w > 0).permute(2, 3, 0, 1).cpu().numpy()
    packed = np.packbits(bits, axis=-1, bitorder="little").view("<u8").astype(np.uint64)
    return np.ascontiguousarray(packed.transpose(0, 1, 3, 2))


def neuron_kernel_params(neuron: SpikingNeuron, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """The constants ``[k, c, b, v_threshold, v_reset, v_init]`` (in ``dtype``, the input's float type, as
    PyTorch casts them) and flags ``[use_c, use_k, k_is_one, use_b, hard_reset, real_valued]`` of the
    numba neuron kernels for ``neuron``'s update ``h = c*x + k*v + b``."""
    d = neuron.dynamics
    consts = np.array((d.k, d.c, d.b, d.v_threshold, d.v_reset, d.v_init), dtype=dtype)
    flags = np.array([d.c != 1.0, d.k != 0.0, d.k == 1.0, d.b != 0.0, d.hard_reset, d.real_valued])
    return consts, flags


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` in place of the submodule of ``model`` at the dotted path ``name``."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    if isinstance(parent, nn.Sequential) or child.isdigit():
        parent._modules[child] = new
    else:
        setattr(parent, child, new)
