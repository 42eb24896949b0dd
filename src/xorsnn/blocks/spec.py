"""One description per block: what a residual block computes, by the names of its submodules.

Every residual block has a ``spec()`` method returning a :class:`BlockSpec`. The block's own
``forward`` (written out like torchvision's ``resnet.py``) stays the readable reference; the
spec is what the other backends read -- re-parameterisation, NIR export, the fused packed engine,
the redundancy monitor, the model's ``depth`` -- so a family is described once. :func:`run_spec`
is a small interpreter of the description; a conformance test checks that it equals ``forward``
exactly for every family and option (``tests/test_block_spec.py``).

A block is one or more **segments**, applied in order (the output of one is the input ``x`` of
the next; only the multi-shortcut family has two). A segment computes::

    h = x                       (or XOR(x, x_prev) when meta=True: the XOR meta-residual)
    for op in branch: h = op(h) (conv / norm / neuron by attribute name; "xor_input": XOR(x, h))
    s = shortcut(x)             (identity, or the block's ``downsample`` module)
    out = merge(h, s)

======================  =====================================  ================================
merge                   output                                 families
======================  =====================================  ================================
``current_add``         ``SN(h + s)``                          Spiking ResNet, OA downsample
``membrane_add``        ``h + s``                              MS-ResNet, multi-shortcut
``add``                 ``SN(h) + s``                          SEW-ADD
``and`` / ``iand``      ``SN(h) * s`` / ``(1 - SN(h)) * s``    SEW-AND / SEW-IAND
``or``                  ``OR(s, SN(h))``                       OA, XOR (input / inner / none)
``xor``                 ``XOR(s, SN(h))``                      XOR (merge)
``or_select``           ``OR(s, SN(h) AND XOR(s, SN(h)))``     XOR (output)
======================  =====================================  ================================

``SN`` is the segment's ``neuron`` (``None`` for ``membrane_add``). Shortcuts: ``identity``,
``projection`` (``[AvgPool] - conv1x1 - norm``, a current) and ``spiking_projection`` (the same
ending in a neuron, spikes). ``handoff`` says what the next block of the stage receives as
``x_prev``: this block's input, or (``"shortcut"``) the spikes of its projected shortcut --
``handoff_neuron`` applied to the shortcut current, or the shortcut itself when it fires.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._checks import check_choice
from ..ops import spike_and, spike_iand, spike_or, spike_xor

__all__ = [
    "OP_KINDS",
    "MERGES",
    "SPIKE_MERGES",
    "LOGIC_MERGES",
    "SHORTCUTS",
    "Op",
    "Segment",
    "BlockSpec",
    "block_spec",
    "post_activation",
    "pre_activation",
    "run_spec",
    "require_spec",
]

OP_KINDS = ("conv", "norm", "neuron", "xor_input")
MERGES = ("current_add", "membrane_add", "add", "and", "iand", "or", "xor", "or_select")
SPIKE_MERGES = ("add", "and", "iand", "or", "xor", "or_select")
"""Merges of two spike tensors (the segment's neuron fires on the branch before the merge)."""
LOGIC_MERGES = ("and", "iand", "or", "xor", "or_select")
"""Merges that are Boolean logic on spikes (exact only on binary spikes)."""
SHORTCUTS = ("identity", "projection", "spiking_projection")
HANDOFFS = ("input", "shortcut")


@dataclass(frozen=True)
class Op:
    """One step of a branch: ``kind`` in :data:`OP_KINDS`, ``name`` the block attribute it applies
    (empty for ``"xor_input"``, which XORs the segment input with the current spikes)."""

    kind: str
    name: str = ""

    def __post_init__(self) -> None:
        check_choice("Op.kind", self.kind, OP_KINDS)
        if (self.kind == "xor_input") != (self.name == ""):
            raise ValueError(f"Op {self.kind!r}: name must be empty exactly for 'xor_input', got {self.name!r}")


@dataclass(frozen=True)
class Segment:
    """``merge(branch(x or XOR(x, x_prev)), shortcut(x))`` -- see the module docstring.

    Attributes:
        branch: the ordered ops of the residual branch.
        shortcut: one of :data:`SHORTCUTS` (a projection is the block's ``downsample`` module).
        merge: one of :data:`MERGES`.
        neuron: the neuron of the merge (``None`` exactly for ``membrane_add``).
        meta: the branch reads ``XOR(x, x_prev)`` (XOR ``xor_mode="input"``); ``x`` itself when the
            block gets no ``x_prev`` of ``x``'s shape.
    """

    branch: tuple[Op, ...]
    shortcut: str
    merge: str
    neuron: str | None
    meta: bool = False

    def __post_init__(self) -> None:
        check_choice("Segment.shortcut", self.shortcut, SHORTCUTS)
        check_choice("Segment.merge", self.merge, MERGES)
        if (self.neuron is None) != (self.merge == "membrane_add"):
            raise ValueError(f"Segment: merge {self.merge!r} {'needs' if self.neuron is None else 'takes no'} neuron")

    def names(self, kind: str) -> list[str]:
        """Attribute names of the branch ops of ``kind``, in order."""
        return [op.name for op in self.branch if op.kind == kind]

    def steps(self) -> list[tuple[str, str, str | None]]:
        """The branch as backends fold it: ``("weight", conv, norm or None)`` for a conv and the norm
        right after it, ``("norm", name, None)`` for a norm on the stream (no conv before it),
        ``("neuron", name, None)`` and ``("xor_input", "", None)``."""
        out: list[tuple[str, str, str | None]] = []
        ops = self.branch
        i = 0
        while i < len(ops):
            op = ops[i]
            if op.kind == "conv":
                norm = ops[i + 1].name if i + 1 < len(ops) and ops[i + 1].kind == "norm" else None
                out.append(("weight", op.name, norm))
                i += 2 if norm is not None else 1
                continue
            out.append((op.kind, op.name, None))
            i += 1
        return out


@dataclass(frozen=True)
class BlockSpec:
    """The full description of one residual block instance.

    Attributes:
        family: the block family (``"spiking"``, ``"sew"``, ``"ms"``, ``"oa"``, ``"xor"``, ``"msc"``, ...).
        segments: applied in order.
        output_kind: ``"spikes"`` (binary on binary input), ``"graded"`` (small integers) or ``"membrane"``.
        or_form, xor_form: the OR / XOR variants of the logic ops (see :mod:`xorsnn.ops.logic`).
        handoff: ``"input"`` or ``"shortcut"`` (see the module docstring).
        handoff_neuron: the parameter-free neuron firing on the shortcut current for ``handoff="shortcut"``
            (``None`` when the shortcut is a ``spiking_projection``).
        downsample: attribute name of the projection shortcut module.
    """

    family: str
    segments: tuple[Segment, ...]
    output_kind: str
    or_form: str = "poly"
    xor_form: str = "poly"
    handoff: str = "input"
    handoff_neuron: str | None = None
    downsample: str = "downsample"

    def __post_init__(self) -> None:
        check_choice("BlockSpec.output_kind", self.output_kind, ("spikes", "graded", "membrane"))
        check_choice("BlockSpec.handoff", self.handoff, HANDOFFS)
        if not self.segments:
            raise ValueError("BlockSpec: at least one segment")

    @property
    def uses_previous_input(self) -> bool:
        """Whether the block takes ``forward(x, x_prev)``."""
        return any(seg.meta for seg in self.segments)

    @property
    def n_convs(self) -> int:
        """Weight layers on the block's longest path (the branch convolutions)."""
        return sum(len(seg.names("conv")) for seg in self.segments)

    @property
    def projects(self) -> bool:
        """Whether the block has a projection shortcut (it changes the shape)."""
        return any(seg.shortcut != "identity" for seg in self.segments)


def post_activation(n: int, *, last_neuron: bool = False, inner_xor: bool = False) -> tuple[Op, ...]:
    """``conv{k} - bn{k} - sn{k}`` for ``k = 1..n`` (the last unit without its neuron unless
    ``last_neuron``); ``inner_xor`` XORs the segment input with ``sn1``'s spikes."""
    ops: list[Op] = []
    for k in range(1, n + 1):
        ops += [Op("conv", f"conv{k}"), Op("norm", f"bn{k}")]
        if k < n or last_neuron:
            ops.append(Op("neuron", f"sn{k}"))
        if k == 1 and inner_xor:
            ops.append(Op("xor_input"))
    return tuple(ops)


def pre_activation(n: int) -> tuple[Op, ...]:
    """``sn{k} - conv{k} - bn{k}`` for ``k = 1..n`` (MS-ResNet's membrane-shortcut branch)."""
    return tuple(op for k in range(1, n + 1) for op in (Op("neuron", f"sn{k}"), Op("conv", f"conv{k}"),
                                                         Op("norm", f"bn{k}")))


def block_spec(block: nn.Module) -> BlockSpec | None:
    """``block.spec()`` for a residual block, ``None`` for any other module."""
    fn = getattr(block, "spec", None)
    if not callable(fn):
        return None
    spec = fn()
    return spec if isinstance(spec, BlockSpec) else None


def require_spec(block: nn.Module, name: str, backend: str, *, merges: tuple[str, ...] = MERGES,
                segments: int = 1, stream_norm: bool = False, handoff: bool = False) -> BlockSpec:
    """The spec of ``block``, or ``ValueError`` naming ``backend`` and what it lacks.

    The one place where a backend refuses a block: ``merges`` it implements, the most ``segments``,
    whether it takes a ``norm`` op with no conv before it (a norm on the residual stream), and a
    shortcut ``handoff``.
    """
    spec = block_spec(block)
    if spec is None:
        raise ValueError(f"{name}: {type(block).__name__} has no block description (spec()); {backend} cannot read it")
    lacks = ""
    if len(spec.segments) > segments:
        lacks = f"{len(spec.segments)} residual segments per block (the {spec.family} family)"
    elif any(seg.merge not in merges for seg in spec.segments):
        lacks = f"the {'/'.join(seg.merge for seg in spec.segments)} merge"
    elif not stream_norm and any(k == "norm" for seg in spec.segments for k, _, _ in seg.steps()):
        lacks = "a BatchNorm on the residual stream"
    elif not handoff and spec.handoff == "shortcut":
        lacks = "xor_prev='shortcut' (the block hands its shortcut spikes to the next block)"
    if lacks:
        raise ValueError(f"{name}: {backend} does not support {lacks} ({type(block).__name__})")
    return spec


# -- the interpreter -------------------------------------------------------------------------------
def _merge(block: nn.Module, spec: BlockSpec, seg: Segment, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    if seg.merge == "membrane_add":
        return h + s
    sn = getattr(block, seg.neuron)  # type: ignore[arg-type]
    if seg.merge == "current_add":
        return sn(h + s)
    a = sn(h)
    if seg.merge == "add":
        return a + s
    if seg.merge == "and":
        return spike_and(a, s)
    if seg.merge == "iand":
        return spike_iand(a, s)
    if seg.merge == "or":
        return spike_or(s, a, spec.or_form)
    if seg.merge == "xor":
        return spike_xor(s, a, spec.xor_form)
    return spike_or(s, spike_and(a, spike_xor(s, a, spec.xor_form)), spec.or_form)  # or_select


def _segment(block: nn.Module, spec: BlockSpec, seg: Segment, x: torch.Tensor, x_prev: torch.Tensor | None,
             shortcut: torch.Tensor | None) -> torch.Tensor:
    h = x
    if seg.meta and x_prev is not None and x_prev.shape == x.shape:
        h = spike_xor(x, x_prev, spec.xor_form)
    for op in seg.branch:
        h = spike_xor(x, h, spec.xor_form) if op.kind == "xor_input" else getattr(block, op.name)(h)
    s = x if seg.shortcut == "identity" else shortcut
    return _merge(block, spec, seg, h, s)  # type: ignore[arg-type]


def run_spec(block: nn.Module, x: torch.Tensor, x_prev: torch.Tensor | None = None, *,
             return_handoff: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Compute ``block`` from its description: equal to ``block(x[, x_prev])`` exactly.

    Shapes as the block's ``forward`` (``[T, B, C, H, W]`` or ``[T, B, F]``). With
    ``return_handoff`` returns ``(out, stream)``, ``stream`` being the next block's ``x_prev``.
    """
    spec = block_spec(block)
    if spec is None:
        raise ValueError(f"run_spec: {type(block).__name__} has no spec()")
    x_in = x
    projected = None
    for seg in spec.segments:
        if seg.shortcut != "identity":
            projected = getattr(block, spec.downsample)(x)
        x = _segment(block, spec, seg, x, x_prev, projected)
    if not return_handoff:
        return x
    if spec.handoff == "input" or projected is None:
        return x, x_in
    return x, (projected if spec.handoff_neuron is None else getattr(block, spec.handoff_neuron)(projected))
