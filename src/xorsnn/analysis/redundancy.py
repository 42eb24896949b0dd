"""Spike-redundancy metrics of residual blocks, measured with hooks on the blocks' sub-modules.

Notation: ``x`` is the block input, ``S`` the shortcut spikes (``x`` itself, or the output of a
spiking downsample shortcut), ``A`` the backbone spikes (output of the branch's last neuron).
Which module produces ``A`` and ``S`` in each family is described by a :class:`BlockAnatomy`
(see :func:`block_anatomy`, which reads the block's description, :mod:`xorsnn.blocks.spec`):

==============================  =============  ====================================================
block                           merge          A / S
==============================  =============  ====================================================
SEW basic / bottleneck          add/and/iand   last branch neuron (``sn2``/``sn3``) / ``x`` or the
                                               downsample's neuron
OA, XOR (identity)              or, xor        ``sn2``/``sn3`` / ``x`` (XOR ``merge`` mode: ``xor``)
OA, XOR (downsample, ``or``)    or             ``sn2``/``sn3`` / the downsample's neuron
OA, XOR (downsample, ``add``)   current        no spike-level merge: overlap not defined
Spiking ResNet                  current        ``SN(F(x) + x)``: no spike-level merge
MS-ResNet                       membrane       real-valued stream: no spike-level merge
==============================  =============  ====================================================

Metrics per block (accumulated over every call; fractions of all positions unless stated):

* ``shortcut_rate``, ``backbone_rate``: non-zero fraction of ``S`` and ``A``;
* ``overlap``: positions where **both** fire -- what OR removes and ADD double-counts;
  ``overlap_of_backbone`` = overlap / backbone spikes (share of backbone spikes already present);
* ``output_rate`` and ``nonbinary_output``: non-zero fraction and fraction of output entries not in
  {0, 1} (SEW-ADD's 2s, MS's membrane values);
* ``novel_fraction`` (XOR blocks in ``xor_mode="input"`` with an active meta-residual):
  ``nnz(XOR(x_l, x_{l-1})) / nnz(x_l)`` measured on the actual backbone input -- the share of the
  block input the backbone sees as new;
* ``backbone_input_rate``: non-zero fraction of the branch's first synaptic layer input.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..blocks.spec import SPIKE_MERGES, block_spec
from .hooks import HookedMonitor

__all__ = [
    "BlockAnatomy",
    "BlockRedundancy",
    "RedundancyMonitor",
    "block_anatomy",
    "find_blocks",
    "meta_residual_counts",
]


@dataclass(frozen=True)
class BlockAnatomy:
    """Where a block's backbone and shortcut spikes come from.

    Attributes:
        merge: how the two paths meet (``"or"``, ``"add"``, ``"iand"``, ``"and"``, ``"xor"``,
            ``"current"``, ``"membrane"``).
        backbone: module whose output is ``A``; ``None`` when the paths do not meet as spikes.
        shortcut: module whose output is ``S``; ``None`` means ``S`` is the block input ``x``.
        backbone_input: the branch's first synaptic layer (its input is what the branch sees).
        novelty: the block feeds ``XOR(x, x_prev)`` to its branch (XOR ``input`` mode).
        note: why a metric is not defined, if it is not.
    """

    merge: str
    backbone: nn.Module | None
    shortcut: nn.Module | None = None
    backbone_input: nn.Module | None = None
    novelty: bool = False
    note: str = ""


_NOTES = {
    "current_add": "backbone and shortcut merge as currents before one neuron (SN(F(x) + shortcut)): no spike overlap",
    "membrane_add": "real-valued membrane stream: the paths merge as currents, no spike overlap",
}


def block_anatomy(block: nn.Module) -> BlockAnatomy | None:
    """The anatomy of ``block`` read from its description (:mod:`xorsnn.blocks.spec`), or ``None``
    for a module without one. Blocks of several segments are described by their first."""
    spec = block_spec(block)
    if spec is None:
        return None
    seg = spec.segments[0]
    first_conv = getattr(block, seg.names("conv")[0])
    if seg.merge not in SPIKE_MERGES:
        merge = "current" if seg.merge == "current_add" else "membrane"
        return BlockAnatomy(merge, None, backbone_input=first_conv, note=_NOTES[seg.merge])
    shortcut = getattr(block, spec.downsample)[-1] if seg.shortcut == "spiking_projection" else None
    merge = "or" if seg.merge == "or_select" else seg.merge
    return BlockAnatomy(merge, getattr(block, seg.neuron), shortcut, first_conv, novelty=seg.meta)  # type: ignore[arg-type]


def find_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Residual blocks of ``model`` (modules with a description, ``spec()``), in definition order."""
    return [(n, m) for n, m in model.named_modules() if m is not model and block_spec(m) is not None]


@dataclass
class BlockRedundancy:
    """Redundancy metrics of one block (see the module docstring); ``None`` where not defined."""

    name: str
    block: str
    merge: str
    calls: int
    output_rate: float
    nonbinary_output: float
    backbone_input_rate: float | None
    shortcut_rate: float | None
    backbone_rate: float | None
    overlap: float | None
    overlap_of_backbone: float | None
    novel_fraction: float | None
    note: str = ""
    meta_residual: bool | None = None  # XOR input mode: whether XOR(x_l, x_prev) fed the branch (None: no XOR input)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class _Acc:
    def __init__(self) -> None:
        self.calls = 0
        self.out_entries = self.out_nonzero = self.out_nonbinary = 0
        self.bin_entries = self.bin_nonzero = 0
        self.positions = self.n_s = self.n_a = self.n_both = 0
        self.novel_num = self.novel_den = 0
        self.meta_calls = 0  # calls that had a same-shape previous stream (XOR input mode)


def meta_residual_counts(blocks: list[BlockRedundancy]) -> tuple[int, int]:
    """``(active, total)``: XOR-input blocks whose branch read ``XOR(x_l, x_prev)``, of all XOR-input blocks."""
    flags = [b.meta_residual for b in blocks if b.meta_residual is not None]
    return sum(flags), len(flags)


def _nnz(t: torch.Tensor) -> int:
    return int((t != 0).sum())


def _frac(num: int, den: int) -> float | None:
    return num / den if den else None


class RedundancyMonitor(HookedMonitor):
    """Context manager measuring :class:`BlockRedundancy` of every known block in ``model``.

    Hooks: a forward pre-hook on each block (``x`` and ``x_prev``), forward hooks on the backbone
    neuron (``A``) and spiking shortcut (``S``), a pre-hook on the branch's first layer (backbone
    input), and a forward hook on the block (output; metrics are accumulated there).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.blocks = find_blocks(model)
        self._acc = {name: _Acc() for name, _ in self.blocks}
        self._cur: dict[str, dict[str, Any]] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> RedundancyMonitor:
        for name, block in self.blocks:
            anat = block_anatomy(block)
            assert anat is not None
            self._handles.append(block.register_forward_pre_hook(self._pre(name), with_kwargs=True))
            self._handles.append(block.register_forward_hook(self._post(name, anat)))
            for key, source in (("A", anat.backbone), ("S", anat.shortcut)):
                if source is not None:
                    self._handles.append(source.register_forward_hook(self._store(name, key)))
            if anat.backbone_input is not None:
                self._handles.append(anat.backbone_input.register_forward_pre_hook(self._store_input(name)))
        return self

    def _pre(self, name: str):
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            x_prev = args[1] if len(args) > 1 else kwargs.get("x_prev")
            self._cur[name] = {"x": args[0], "x_prev": x_prev}

        return hook

    def _store(self, name: str, key: str):
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            if name in self._cur:
                self._cur[name][key] = output

        return hook

    def _store_input(self, name: str):
        def hook(module: nn.Module, inputs: tuple[Any, ...]) -> None:
            if name in self._cur and "m" not in self._cur[name]:
                self._cur[name]["m"] = inputs[0]

        return hook

    def _post(self, name: str, anat: BlockAnatomy):
        @torch.no_grad()
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            cur = self._cur.pop(name, None)
            if isinstance(output, tuple):  # (out, handoff) of a block handing on its shortcut spikes
                output = output[0]
            if cur is None or not isinstance(output, torch.Tensor):
                return
            acc = self._acc[name]
            acc.calls += 1
            out = output.detach()
            nz = out != 0
            acc.out_entries += out.numel()
            acc.out_nonzero += int(nz.sum())
            acc.out_nonbinary += int((nz & (out != 1)).sum())
            x, x_prev, m = cur["x"], cur["x_prev"], cur.get("m")
            if m is not None:
                acc.bin_entries += m.numel()
                acc.bin_nonzero += _nnz(m)
            if anat.backbone is not None and "A" in cur:
                a = cur["A"].detach()
                s = (cur["S"] if anat.shortcut is not None else x).detach()
                if a.shape == s.shape:
                    a_nz, s_nz = a != 0, s != 0
                    acc.positions += a.numel()
                    acc.n_a += int(a_nz.sum())
                    acc.n_s += int(s_nz.sum())
                    acc.n_both += int((a_nz & s_nz).sum())
            if anat.novelty and x_prev is not None and x_prev.shape == x.shape:
                acc.meta_calls += 1
                if m is not None:
                    acc.novel_num += _nnz(m)
                    acc.novel_den += _nnz(x)

        return hook

    def reset(self) -> None:
        self._acc = {name: _Acc() for name, _ in self.blocks}
        self._cur.clear()

    def results(self) -> list[BlockRedundancy]:
        """Metrics of every block that ran, in definition order."""
        out = []
        for name, block in self.blocks:
            acc = self._acc[name]
            if acc.calls == 0:
                continue
            anat = block_anatomy(block)
            assert anat is not None
            note = anat.note
            if anat.novelty and acc.meta_calls == 0:
                note = (note + "; " if note else "") + "XOR meta-residual inactive (no same-shape previous input)"
            out.append(
                BlockRedundancy(
                    name=name,
                    block=type(block).__name__,
                    merge=anat.merge,
                    calls=acc.calls,
                    output_rate=acc.out_nonzero / acc.out_entries if acc.out_entries else 0.0,
                    nonbinary_output=acc.out_nonbinary / acc.out_entries if acc.out_entries else 0.0,
                    backbone_input_rate=_frac(acc.bin_nonzero, acc.bin_entries),
                    # n_a <= positions, so every spike-overlap metric is None when no A/S pair was compared
                    shortcut_rate=_frac(acc.n_s, acc.positions),
                    backbone_rate=_frac(acc.n_a, acc.positions),
                    overlap=_frac(acc.n_both, acc.positions),
                    overlap_of_backbone=_frac(acc.n_both, acc.n_a),
                    novel_fraction=_frac(acc.novel_num, acc.novel_den),
                    note=note,
                    meta_residual=(acc.meta_calls > 0) if anat.novelty else None,
                )
            )
        return out
