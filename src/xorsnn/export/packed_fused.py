"""Fused residual blocks of the bit-packed engine: a whole basic block in two or three kernels.

The layer-by-layer engine (:mod:`xorsnn.export.packed`) replaces each ±1 conv by a popcount kernel
but still runs BN, the residual add and the neurons as separate passes over float tensors; at
batch 64 those passes, not the convolutions, dominate (memory traffic of ``[T*B, C, H, W]`` float
maps). :class:`FusedBasicBlock` runs a basic block with ``x`` and the hidden spikes kept
bit-packed, BN + residual + neuron applied in the conv's epilogue while the accumulators are in
L1; :class:`FusedBlockChain` runs consecutive fused blocks with one float write at the end. Blocks:

* Spiking ResNet ``SN(BN(conv(SN(BN(conv(x))))) + shortcut(x))`` (identity or ``Conv1x1 - BN``);
* OA / XOResNet: identity blocks ``OR(x, SN(F(x)))`` as a word-wise OR of packed spikes,
  downsampling blocks with the current ADD (``down_merge="add"``); XOR blocks with
  ``xor_mode="input"`` (the backbone reads ``XOR(x_l, x_{l-1})``, a word-wise XOR of packed
  spikes, ``x_{l-1}`` handed on within a stage as :class:`~xorsnn.blocks.ResidualStage` does),
  ``"output"`` (forward-identical to OA on binary spikes), ``"merge"`` (``XOR(x, A)``) and ``"none"``.
  Every OR / XOR form is the same function on binary spikes.

Exactness: the conv output is an integer ``y`` with ``|y| <= K = C * KH * KW``, so BN can only see
``2K + 1`` values per channel. Before a block is fused for a spatial size, its epilogue formula is
compared with PyTorch's own BN for **every** ``y`` in ``[-K, K]`` and every channel; a block whose
BN does not match bit for bit (another CPU path in PyTorch, float64 weights) runs unfused. The
residual add and the neuron perform the same float32 operations in the same order as the float
model, so the block output is bitwise equal to the original block's (tested on real images).

Forward hooks registered on the *inner* modules of a fused block do not fire (the block runs as
one unit); build with ``pack_model(..., fuse_blocks=False)`` when per-layer hooks are needed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..blocks.spec import block_spec
from ..blocks.stage import ResidualStage
from ..neurons import SpikingNeuron
from .packed_core import (
    PackedSpikes,
    Residual,
    effective_weight,
    is_pm1,
    kernels,
    neuron_kernel_params,
    pack_weight,
    packed_form,
    replace_module,
)

__all__ = ["FusedBasicBlock", "FusedBlockChain", "can_fuse_block", "fuse_blocks"]

_EMPTY_U64 = np.zeros((1, 1, 1, 1), np.uint64)
_EMPTY_F32 = np.zeros((1, 1, 1, 1), np.float32)
_NO_NEURON = (np.zeros(6, np.float32), np.zeros(6, np.bool_))
# the kernel's merge after the block's second conv, per fused merge (a projection adds its current instead)
_RESIDUAL = {"add": Residual.ADD_SPIKES, "or": Residual.OR, "xor_in": Residual.OR, "xor_merge": Residual.XOR}


def _is_eval_bn(bn: nn.Module) -> bool:
    return (isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats and bn.running_mean is not None
            and bn.running_var is not None)


def _is_binary_neuron(sn: nn.Module) -> bool:
    return isinstance(sn, SpikingNeuron) and not sn.stateful and not sn.dynamics.real_valued


def _conv_ok(conv: nn.Module, kernel: int, padding: int) -> bool:
    return (isinstance(conv, nn.Conv2d) and is_pm1(conv) and tuple(conv.kernel_size) == (kernel, kernel)
            and tuple(conv.padding) == (padding, padding) and conv.stride[0] == conv.stride[1]
            and conv.padding_mode == "zeros")


# (merge, shortcut, meta) of a block description -> the fused kernel's merge ("output" mode's or_select
# is OR on binary spikes)
_FUSED_MERGES = {
    ("current_add", "identity", False): "add",
    ("current_add", "projection", False): "add",
    ("or", "identity", False): "or",
    ("or_select", "identity", False): "or",
    ("or", "identity", True): "xor_in",
    ("xor", "identity", False): "xor_merge",
}


def _fused_layout(block: nn.Module) -> tuple[str, list[str]] | None:
    """The fused merge of ``block`` and its module names ``[conv1, bn1, sn1, conv2, bn2, merge neuron]``
    from its description, or ``None`` when it is not a one-segment ``conv-BN-SN-conv-BN`` block with a
    merge the kernels implement (and no shortcut hand-off, which runs unfused as in PyTorch)."""
    spec = block_spec(block)
    if spec is None or len(spec.segments) != 1 or spec.handoff != "input":
        return None
    seg = spec.segments[0]
    steps = seg.steps()
    if [k for k, _, _ in steps] != ["weight", "neuron", "weight"] or steps[0][2] is None or steps[2][2] is None:
        return None
    merge = _FUSED_MERGES.get((seg.merge, seg.shortcut, seg.meta))
    if merge is None:
        return None
    (_, c1, b1), (_, s1, _), (_, c2, b2) = steps
    return merge, [c1, b1, s1, c2, b2, seg.neuron]  # type: ignore[list-item]


def can_fuse_block(block: nn.Module) -> bool:
    """Whether ``block`` is a basic block the fused path handles exactly (read from its description,
    :mod:`xorsnn.blocks.spec`): Spiking ResNet, OA or XOR (``xor_mode`` input / output / merge / none;
    downsampling with ``down_merge="add"``) with ±1 3x3 convs (padding 1), eval-mode BNs with running
    statistics, binary-spike non-stateful neurons, and an identity or ``Conv1x1(±1) - BN`` shortcut."""
    layout = _fused_layout(block)
    if layout is None:
        return False
    conv1, bn1, sn1, conv2, bn2, sn2 = (getattr(block, n) for n in layout[1])
    if not (_conv_ok(conv1, 3, 1) and _conv_ok(conv2, 3, 1) and conv2.stride[0] == 1):
        return False
    if not (_is_eval_bn(bn1) and _is_eval_bn(bn2) and _is_binary_neuron(sn1) and _is_binary_neuron(sn2)):
        return False
    ds = block.downsample
    if ds is None:
        return conv1.stride[0] == 1 and conv1.in_channels == conv2.out_channels
    return (isinstance(ds, nn.Sequential) and len(ds) == 2 and _conv_ok(ds[0], 1, 0) and _is_eval_bn(ds[1])
            and ds[0].stride[0] == conv1.stride[0])


def _conv_bn_neuron(layer: _ConvBN, xp: np.ndarray, t_n: int, oh: int, ow: int, *, offset: int = 0,
                    residual: Residual = Residual.NONE, res_packed: np.ndarray = _EMPTY_U64,
                    res_float: np.ndarray = _EMPTY_F32, neuron: tuple[np.ndarray, np.ndarray] | None = None,
                    out_packed: np.ndarray = _EMPTY_U64, out_float: np.ndarray = _EMPTY_F32) -> None:
    """One call of the fused kernel (``_packed_kernels.fused_conv_bn_neuron``, arguments named):
    ``layer``'s conv + BN on packed ``xp``, then ``residual``, then ``neuron`` (or none: the current
    goes to ``out_float``). Spikes go to ``out_packed`` and, when given, ``out_float``."""
    consts, flags = neuron if neuron is not None else _NO_NEURON
    kernels().fused_conv_bn_neuron(
        xp, layer.wpos, layer.stride, offset, t_n, oh, ow, layer.alpha, layer.beta, int(residual), res_packed,
        res_float, consts, flags, neuron is not None, out_packed, out_float, out_float is not _EMPTY_F32)


class _ConvBN:
    """A ±1 conv and the BN after it, as the fused kernel's operands (weights packed, BN as ``alpha``,
    ``beta``), with the exhaustive BN check per spatial size."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
        self.wpos = pack_weight(effective_weight(conv))
        self.stride = int(conv.stride[0])
        self.out_channels = int(conv.out_channels)
        self.k_max = int(conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1])
        self.bn = bn
        with torch.no_grad():
            f32 = torch.float32
            weight = bn.weight.to(f32) if bn.weight is not None else torch.ones(self.out_channels)
            bias = bn.bias.to(f32) if bn.bias is not None else torch.zeros(self.out_channels)
            alpha = torch.rsqrt(bn.running_var.to(f32) + bn.eps) * weight
            beta = (bias.double() - bn.running_mean.double() * alpha.double()).float()
        self.alpha = alpha.double().numpy()
        self.beta = beta.double().numpy()
        self._exact: dict[tuple[int, int], bool] = {}

    def exact_for(self, oh: int, ow: int) -> bool:
        """Whether ``float32(y * alpha + beta)`` equals PyTorch's BN on ``[*, O, oh, ow]`` maps for every
        integer ``y`` in ``[-K, K]`` and every channel (each value placed at a channel-dependent
        position, so vector bodies and tails are both exercised). Cached per size."""
        if (oh, ow) not in self._exact:
            self._exact[oh, ow] = self._check(oh, ow)
        return self._exact[oh, ow]

    @torch.no_grad()
    def _check(self, oh: int, ow: int) -> bool:
        if self.bn.running_var.dtype != torch.float32:
            return False
        values = 2 * self.k_max + 1
        hw = oh * ow
        n = math.ceil(values / hw)
        pos = torch.arange(n * hw)
        chan = torch.arange(self.out_channels)
        idx = (pos[None, :] + 7 * chan[:, None]) % values  # [O, n*hw]: every y in every channel
        y = (idx - self.k_max).to(torch.float32)
        probe = y.view(self.out_channels, n, oh, ow).transpose(0, 1).contiguous()  # [n, O, oh, ow]
        ref = self.bn(probe)
        mine = (probe.double() * torch.from_numpy(self.alpha)[None, :, None, None]
                + torch.from_numpy(self.beta)[None, :, None, None]).float()
        return bool(torch.equal(ref, mine))


class FusedBasicBlock(nn.Module):
    """Inference form of a Spiking / OA / XOR basic block on bit-packed spikes (see :func:`can_fuse_block`).

    Shapes: ``[T, B, C, H, W]`` (binary spikes, float32) ``-> [T, B, planes, H/stride, W/stride]``;
    ``forward(x, x_prev=None)`` like the XOR block it may replace. Inputs the kernels cannot take (not
    float32, not binary, another device) and spatial sizes whose BN check fails run through the
    original block (kept as ``self.block``), so the output is always the original block's.
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        if not can_fuse_block(block):
            raise ValueError("FusedBasicBlock: block must satisfy can_fuse_block (see its docstring)")
        self.block = block
        merge, names = _fused_layout(block)  # type: ignore[misc]
        conv1, bn1, sn1, conv2, bn2, sn2 = (getattr(block, n) for n in names)
        self.merge_kind = merge
        self.uses_previous_input = bool(getattr(block, "uses_previous_input", False))
        self.l1 = _ConvBN(conv1, bn1)
        self.l2 = _ConvBN(conv2, bn2)
        self.ds = _ConvBN(block.downsample[0], block.downsample[1]) if block.downsample is not None else None
        self.n1 = neuron_kernel_params(sn1)
        self.n2 = neuron_kernel_params(sn2)
        self.in_channels = int(conv1.in_channels)
        self.out_channels = int(conv2.out_channels)
        self.last_path = ""  # "fused" or "unfused": the path the last call took

    def _fallback(self, x: torch.Tensor, x_prev: torch.Tensor | None) -> torch.Tensor:
        self.last_path = "unfused"
        return self.block(x, x_prev) if self.uses_previous_input else self.block(x)

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        """Output spatial size for an ``h x w`` input."""
        s = self.l1.stride
        return (h - 1) // s + 1, (w - 1) // s + 1

    def exact_for(self, h: int, w: int) -> bool:
        """Whether every BN of the block passed the exhaustive check at the block's output size."""
        oh, ow = self.out_size(h, w)
        layers = [self.l1, self.l2] + ([self.ds] if self.ds is not None else [])
        return all(layer.exact_for(oh, ow) for layer in layers)

    def run_packed(self, xp: np.ndarray, xp_prev: np.ndarray | None, t_n: int, h: int, w: int, want_float: bool
                   ) -> tuple[np.ndarray, np.ndarray | None]:
        """Packed spikes ``[T*B, H+2, W+2, Cw]`` (padding 1; ``xp_prev``: the previous block's input of
        the same shape, for ``xor_mode="input"``, or ``None``) -> the block's packed output spikes
        ``[T*B, OH+2, OW+2, Ow]`` and, with ``want_float``, its float spikes channels-last
        ``[T*B, OH, OW, O]`` (else ``None``). The caller has checked :meth:`exact_for`."""
        oh, ow = self.out_size(h, w)
        nt = xp.shape[0]
        o_n = self.out_channels
        words = (o_n + 63) // 64
        branch_in = np.bitwise_xor(xp, xp_prev) if self.merge_kind == "xor_in" and xp_prev is not None else xp
        hidden = np.zeros((nt, oh + 2, ow + 2, words), np.uint64)
        _conv_bn_neuron(self.l1, branch_in, t_n, oh, ow, neuron=self.n1, out_packed=hidden)
        residual, res_float = _RESIDUAL[self.merge_kind], _EMPTY_F32
        if self.ds is not None:
            residual, res_float = Residual.ADD_CURRENT, np.empty((nt, oh, ow, o_n), np.float32)
            _conv_bn_neuron(self.ds, xp, t_n, oh, ow, offset=1, out_float=res_float)  # the shortcut current
        out = np.empty((nt, oh, ow, o_n), np.float32) if want_float else _EMPTY_F32
        packed = np.zeros((nt, oh + 2, ow + 2, words), np.uint64)
        _conv_bn_neuron(self.l2, hidden, t_n, oh, ow, residual=residual, res_packed=xp, res_float=res_float,
                        neuron=self.n2, out_packed=packed, out_float=out)
        return packed, (out if want_float else None)

    def forward(self, x: torch.Tensor, x_prev: torch.Tensor | None = None) -> torch.Tensor:
        return _run_chain([self], [x_prev is None], x, x_prev)

    def extra_repr(self) -> str:
        return f"merge={self.merge_kind!r}, kernels={3 if self.ds is not None else 2}"


def _packed_or_none(x: torch.Tensor) -> np.ndarray | None:
    """``x``'s packed spikes (padding 1): the registered ones, or packed now; ``None`` if not binary."""
    xp = packed_form(x)
    if xp is None:
        t_n, b_n, c_n, h, w = x.shape
        xp, binary = kernels().pack_spikes(x.detach().contiguous().view(t_n * b_n, c_n, h, w).numpy(), 1)
        xp = xp if binary else None
    return xp


def _run_chain(blocks: list[FusedBasicBlock], stage_first: list[bool], x: torch.Tensor,
               x_prev: torch.Tensor | None = None) -> torch.Tensor:
    """Run fused blocks back to back on packed spikes; float spikes are written once, at the end.
    ``stage_first[i]``: block ``i`` starts a stage (receives no previous input, as in
    :class:`~xorsnn.blocks.ResidualStage`). Falls back to the original blocks for inputs the kernels
    cannot take."""
    first = blocks[0]
    if x.dim() != 5 or x.shape[2] != first.in_channels:
        raise ValueError(f"FusedBasicBlock: expected [T, B, C={first.in_channels}, H, W], got {tuple(x.shape)}")
    t_n, b_n, c_n, h, w = x.shape
    sizes = [(h, w)]
    for blk in blocks:
        sizes.append(blk.out_size(*sizes[-1]))
    usable = x.dtype == torch.float32 and x.device.type == "cpu" and all(
        blk.exact_for(*hw) for blk, hw in zip(blocks, sizes[:-1], strict=True))
    xp = _packed_or_none(x) if usable else None
    cur_shape = tuple(x.shape)
    prev_p: np.ndarray | None = None  # x_prev packed, when it has x's shape
    prev_shape = cur_shape
    if xp is not None and x_prev is not None and tuple(x_prev.shape) == cur_shape:
        prev_p = _packed_or_none(x_prev) if x_prev.dtype == torch.float32 else None
        if prev_p is None and first.uses_previous_input:
            xp = None  # a non-binary previous input: only the original block computes that
    if xp is None:
        prev = x_prev
        for blk, new_stage in zip(blocks, stage_first, strict=True):
            if new_stage and blk is not first:
                prev = None
            prev, x = x, blk._fallback(x, prev)
        return x
    out: np.ndarray | None = None
    for i, (blk, new_stage, (hi, wi)) in enumerate(zip(blocks, stage_first, sizes[:-1], strict=True)):
        if new_stage and i > 0:
            prev_p = None
        same = prev_p is not None and prev_shape == cur_shape
        nxt, out = blk.run_packed(xp, prev_p if same else None, t_n, hi, wi, want_float=i == len(blocks) - 1)
        blk.last_path = "fused"
        prev_p, prev_shape = xp, cur_shape
        xp, cur_shape = nxt, (t_n, b_n, blk.out_channels, *sizes[i + 1])
    assert out is not None
    oh, ow = sizes[-1]
    y = torch.from_numpy(out).view(t_n, b_n, oh, ow, -1).permute(0, 1, 4, 2, 3).contiguous()
    return PackedSpikes.wrap(y, xp)


class FusedBlockChain(nn.Module):
    """Consecutive :class:`FusedBasicBlock` s (a whole ``ResidualStage`` or every stage of a network)
    run on packed spikes: one pack at the input (or none, when the producer was a fused neuron), one
    float write at the output. ``[T, B, C, H, W] -> [T, B, C', H', W']``.

    ``stage_first[i]`` marks the blocks that start a stage (they get no previous input).
    """

    def __init__(self, blocks: list[FusedBasicBlock], stage_first: list[bool] | None = None) -> None:
        super().__init__()
        if not blocks or not all(isinstance(b, FusedBasicBlock) for b in blocks):
            raise ValueError("FusedBlockChain: blocks must be a non-empty list of FusedBasicBlock")
        self.blocks = nn.ModuleList(blocks)
        self.stage_first = list(stage_first) if stage_first is not None else [True] * len(blocks)
        if len(self.stage_first) != len(blocks):
            raise ValueError(f"FusedBlockChain: stage_first needs {len(blocks)} entries, got {len(self.stage_first)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _run_chain(list(self.blocks), self.stage_first, x)


def _chain_members(seq: nn.Module) -> list[tuple[nn.Module, bool]] | None:
    """The blocks of a plain ``nn.Sequential`` / ``ResidualStage`` (nested ones flattened), each with
    whether it starts a stage (the first block of a ``ResidualStage``; every block of a plain
    ``nn.Sequential``, which hands on no previous input), or ``None`` for another module."""
    if type(seq) not in (nn.Sequential, ResidualStage):
        return None
    members: list[tuple[nn.Module, bool]] = []
    for i, child in enumerate(seq):
        inner = _chain_members(child)
        if inner is None:
            members.append((child, i == 0 or type(seq) is not ResidualStage))
        else:
            members.extend(inner)
    return members


def fuse_blocks(model: nn.Module) -> list[str]:
    """Replace, in place, every block of ``model`` that :func:`can_fuse_block` accepts by a
    :class:`FusedBasicBlock`, then every ``nn.Sequential`` / ``ResidualStage`` (outermost first) made
    only of such blocks by a :class:`FusedBlockChain`. Returns the fused blocks' names."""
    names = [name for name, mod in model.named_modules() if name and can_fuse_block(mod)]
    for name in names:
        replace_module(model, name, FusedBasicBlock(model.get_submodule(name)))
    done: set[str] = set()
    for name, mod in list(model.named_modules()):
        if not name or any(name.startswith(d + ".") for d in done):
            continue
        members = _chain_members(mod)
        if members and len(members) > 1 and all(isinstance(m, FusedBasicBlock) for m, _ in members):
            chain = FusedBlockChain([m for m, _ in members], [f for _, f in members])  # type: ignore[misc]
            replace_module(model, name, chain)
            done.add(name)
    return names
