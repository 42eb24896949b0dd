"""Export spiking networks to NIR (the Neuromorphic Intermediate Representation, ``nir >= 1.0.8``).

:func:`to_nir` turns an eval-mode :class:`~xorsnn.models.SpikingResNet` (families ``spiking``,
``reverb``, ``sew``, ``ms``, ``oa``, ``xor``), a :class:`~xorsnn.models.DeepSNNStack` (the same blocks,
fully connected) or a feed-forward ``nn.Sequential`` of time-first layers
into a :class:`nir.NIRGraph`; :func:`export_nir` also writes it (``nir.write``, HDF5).
:func:`xorsnn.export.nir_sim.simulate` runs a graph in discrete time (the reference the tests use).

Conventions (``docs/deploy.md``):

* **time**: one NIR time step is one xorsnn step, ``dt = 1``, forward Euler; a static image is
  presented at every step (xorsnn computes the stem conv once and repeats it: the same values).
* **BatchNorm** (eval statistics) is folded into the preceding conv / linear (weight and bias).
* **LIF**, tau form ``H = V + (X - (V - V_reset)) / tau``: ``tau = tau``, ``r = 1`` (``tau`` with
  ``decay_input=False``), ``v_leak = V_reset``; decay form ``H = d V + X``: ``tau = 1 / (1 - d)``,
  ``r = tau``, ``v_leak = 0`` (``d = 1`` is exported as IF); **IF**: ``r = 1``. Threshold
  ``v_threshold = V_th`` (a spike where ``v >= V_th``), hard reset to ``v_reset = V_reset``.
* **Residual ADD** (Spiking ResNet, SEW-ADD, MS): no node -- every summand gets an edge into the
  consumer (NIR sums a node's inputs).
* **Spike logic** on binary spikes is lowered exactly to stateless ``Threshold`` nodes on summed
  spikes (``Scale(-1)`` where a summand is negated): ``OR(a, b) = H(a + b - 1/2)``,
  ``AND(a, b) = H(a + b - 3/2)``, ``IAND(a, b) = (1 - a) b = H(b - a - 1/2)``,
  ``XOR(a, b) = OR(a, b) - AND(a, b)`` (two thresholds, the second through ``Scale(-1)``); max-pool
  of binary spikes is ``H(SumPool - 1/2)``. Truth tables in ``docs/deploy.md``; the half-integer
  thresholds make the convention at ``x = threshold`` irrelevant.

Refused (``ValueError`` naming the module): real-valued spikes (no NIR neuron emits its membrane),
soft reset (NIR neurons reset to ``v_reset``), the multi-shortcut family (soft-reset neurons and a
BatchNorm on the residual stream), spike logic on non-binary operands (e.g. after a SEW-ADD),
max-pool of non-spike values, an avg-down shortcut whose input size is not a multiple of the stride
(``ceil_mode`` padding has no NIR equivalent), and modules without a NIR mapping.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import check_choice
from ..blocks.spec import Segment, require_spec
from ..layers import effective_weight
from ..models.resnet import SpikingResNet
from ..models.stack import DeepSNNStack
from ..neurons import SpikingNeuron
from .reparam import bn_affine

__all__ = ["to_nir", "export_nir", "norse_from_nir", "neuron_to_nir_params", "CONSUMERS", "SNNTORCH_DT"]

_BN = nn.modules.batchnorm._BatchNorm


def _nir() -> Any:
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("NIR export needs the nir package: pip install 'xorsnn[nir]'") from exc
    return nir


@dataclass
class _Sig:
    """A tensor of the exported graph: the sum of the outputs of ``sources`` (NIR multi-input edges)."""

    sources: list[str]
    shape: tuple[int, ...]  # per sample, per step: (C, H, W) or (F,)
    binary: bool  # every value in {0, 1}


def neuron_to_nir_params(neuron: SpikingNeuron, name: str) -> dict[str, float]:
    """NIR LIF/IF parameters of an xorsnn neuron (scalars; see the module docstring).

    Returns ``{"kind": "LIF" | "IF", "tau", "r", "v_leak", "v_threshold", "v_reset"}``.
    Raises ``ValueError`` naming ``name`` for real-valued spikes and soft reset.
    """
    if neuron.real_valued:
        raise ValueError(f"{name}: real-valued spikes (U * 1[U >= V_th]) have no NIR neuron; export binary spikes")
    if neuron.reset != "hard":
        raise ValueError(f"{name}: soft reset (subtract V_th) has no NIR equivalent (NIR neurons reset to v_reset)")
    out = {"v_threshold": neuron.v_threshold, "v_reset": neuron.v_reset}
    if neuron.tau is not None:
        r = 1.0 if neuron.decay_input else neuron.tau
        return {"kind": "LIF", "tau": neuron.tau, "r": r, "v_leak": neuron.v_reset, **out}
    if neuron.decay is not None and neuron.decay < 1.0:
        tau = 1.0 / (1.0 - neuron.decay)
        return {"kind": "LIF", "tau": tau, "r": tau, "v_leak": 0.0, **out}
    return {"kind": "IF", "tau": float("inf"), "r": 1.0, "v_leak": 0.0, **out}


CONSUMERS = ("nir", "snntorch", "spikingjelly", "norse")
"""``consumer`` of :func:`to_nir`: ``"nir"`` (the NIR specification: dt = 1, batch-free ``Flatten``
dims, ``Threshold`` / ``Scale`` / ``SumPool2d`` nodes), ``"snntorch"`` (what snnTorch's
``import_from_nir`` executes: see :data:`SNNTORCH_DT` and ``docs/deploy.md``) or ``"spikingjelly"``
(the specification's graph, refusing what SpikingJelly's importer lacks: ``Threshold``, i.e. spike
logic and max-pool; import it with ``import_from_nir(graph, dt=1.0)``) or ``"norse"`` (snnTorch's
form -- dt = 1e-4, batched ``Flatten`` -- plus average pools as diagonal convolutions, for Norse's
``from_nir(graph, dt=1e-4)``, or, for residual networks, :func:`norse_from_nir`)."""

_BATCHED = ("snntorch", "norse")
"""Consumers whose importers build ``torch.nn`` layers on batched tensors with ``dt = 1e-4`` and have no
``Threshold`` / ``Scale`` / ``SumPool2d`` node (the snnTorch lowerings serve both)."""

SNNTORCH_DT = 1e-4
"""The step snnTorch's NIR importer assumes (``beta = 1 - dt / tau``); a ``consumer="snntorch"``
graph states its time constants in that unit (``tau * dt``)."""


class _Builder:
    def __init__(self, model: nn.Module, sample: torch.Tensor, consumer: str = "nir") -> None:
        self.nir = _nir()
        self.consumer = consumer
        self.dt = SNNTORCH_DT if consumer in _BATCHED else 1.0
        self.model = model
        self.nodes: dict[str, Any] = {}
        self.edges: list[tuple[str, str]] = []
        self.shapes: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self._trace(sample)

    # -- shapes ---------------------------------------------------------------------------------
    def _trace(self, sample: torch.Tensor) -> None:
        """Record each module's per-sample input/output shape with one forward pass."""
        hooks = []

        def hook(mod: nn.Module, args: tuple, out: Any) -> None:
            if isinstance(out, torch.Tensor) and args and isinstance(args[0], torch.Tensor):
                lead = 2 if args[0].dim() in (5, 3) and mod is not self.model else 1
                self.shapes.setdefault(id(mod), (tuple(args[0].shape[lead:]), tuple(out.shape[lead:])))

        for mod in self.model.modules():
            hooks.append(mod.register_forward_hook(hook))
        try:
            with torch.no_grad():
                self.model(sample)
        finally:
            for h in hooks:
                h.remove()

    def _out_shape(self, mod: nn.Module) -> tuple[int, ...]:
        return self.shapes[id(mod)][1]

    # -- graph primitives -----------------------------------------------------------------------
    def add(self, name: str, node: Any, inputs: _Sig | list[str]) -> str:
        if name in self.nodes:
            raise RuntimeError(f"internal error: duplicate NIR node {name}")  # pragma: no cover
        self.nodes[name] = node
        for src in inputs.sources if isinstance(inputs, _Sig) else inputs:
            self.edges.append((src, name))
        return name

    @staticmethod
    def _np(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().to(torch.float64).numpy()

    def weight_layer(self, name: str, layer: nn.Module, bn: nn.Module | None, x: _Sig) -> _Sig:
        """Conv/Linear (+ folded BN) node fed by ``x``."""
        w = effective_weight(layer).double()
        b = layer.bias.detach().double() if layer.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        if bn is not None:
            s, shift = bn_affine(bn, name)
            w = w * s.view((-1,) + (1,) * (w.dim() - 1))
            b = s * b + shift
        if isinstance(layer, nn.Conv2d):
            if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
                raise ValueError(f"{name}: only numeric zero padding can be exported")
            node = self.nir.Conv2d(
                input_shape=tuple(x.shape[1:]), weight=self._np(w), stride=tuple(layer.stride),
                padding=tuple(layer.padding), dilation=tuple(layer.dilation), groups=layer.groups, bias=self._np(b))
        else:
            node = self.nir.Affine(weight=self._np(w), bias=self._np(b))
        self.add(name, node, x)
        return _Sig([name], self._out_shape(bn if bn is not None else layer), False)

    def neuron(self, name: str, neuron: nn.Module, x: _Sig) -> _Sig:
        if not isinstance(neuron, SpikingNeuron):
            raise ValueError(f"{name}: {type(neuron).__name__} is not an xorsnn spiking neuron")
        p = neuron_to_nir_params(neuron, name)
        if self.consumer in _BATCHED:
            self._batched_consumer_neuron_check(name, p)
        if self.consumer == "norse" and p["r"] != 1.0:  # Norse's LIF has r = 1: scale the input current instead
            x, p["r"] = self.scale(f"{name}.r", x, p["r"]), 1.0
        p["tau"] = p["tau"] * self.dt  # time constants in the graph's unit (dt = 1 step by default)
        full = {k: np.full(x.shape, v, dtype=np.float64) for k, v in p.items() if k != "kind"}
        if p["kind"] == "LIF":
            node = self.nir.LIF(**full)
        else:
            node = self.nir.IF(r=full["r"], v_threshold=full["v_threshold"], v_reset=full["v_reset"])
        self.add(name, node, x)
        return _Sig([name], x.shape, True)

    def _batched_consumer_neuron_check(self, name: str, p: dict[str, Any]) -> None:
        consumer = self.consumer
        if p["kind"] == "IF":
            raise ValueError(f"{name}: snnTorch imports a NIR IF node as Leaky(beta=0.9), not as an IF neuron; "
                             "this neuron (no leak) has no exact snnTorch form -- export with consumer='nir'"
                             if consumer == "snntorch" else
                             f"{name}: IF neurons are not exported for Norse (its importer is checked with LIF only)")
        if p["v_leak"] != 0.0 or p["v_reset"] != 0.0:
            raise ValueError(f"{name}: {consumer}'s importer supports v_leak = v_reset = 0 only "
                             f"(this neuron has v_reset={p['v_reset']:g})")

    def scale(self, name: str, x: _Sig, factor: float) -> _Sig:
        if self.consumer not in _BATCHED:
            self.add(name, self.nir.Scale(scale=np.full(x.shape, factor)), x)
        elif len(x.shape) == 3:  # snnTorch has no Scale node: a diagonal 1x1 conv ...
            self._diagonal_conv(name, x, np.full((1, 1), factor), (1, 1), (0, 0))
        else:  # ... or a diagonal affine
            n = int(np.prod(x.shape))
            self.add(name, self.nir.Affine(weight=np.eye(n) * factor, bias=np.zeros(n)), x)
        return _Sig([name], x.shape, False)

    def threshold(self, name: str, x: _Sig, theta: float) -> _Sig:
        if self.consumer == "spikingjelly":
            raise ValueError(f"{name}: SpikingJelly's NIR importer has no Threshold node (and no LIF with "
                             "tau = dt), so spike logic (OR/XOR/AND/IAND merges) and max-pool cannot be exported "
                             "for it; the spiking, sew (ADD), ms and reverb families can")
        if self.consumer in _BATCHED:  # no Threshold node: a LIF with beta = 0 (tau = dt) is H(u - theta)
            ones = np.ones(x.shape)
            node = self.nir.LIF(tau=ones * self.dt, r=ones, v_leak=0 * ones, v_threshold=ones * theta,
                                v_reset=0 * ones)
        else:
            node = self.nir.Threshold(threshold=np.full(x.shape, theta))
        self.add(name, node, x)
        return _Sig([name], x.shape, True)

    def logic(self, name: str, op: str, a: _Sig, b: _Sig) -> _Sig:
        """Exact lowering of ``op(a, b)`` on binary spikes (see the module docstring)."""
        if not (a.binary and b.binary):
            raise ValueError(
                f"{name}: spike logic on non-binary operands (e.g. the integer output of a SEW-ADD) computes a "
                "different function when lowered to thresholds; refusing to export")
        both = _Sig(a.sources + b.sources, a.shape, False)
        if op == "or":
            return self.threshold(f"{name}.or", both, 0.5)
        if op == "and":
            return self.threshold(f"{name}.and", both, 1.5)
        if op == "iand":  # (1 - a) * b
            neg = self.scale(f"{name}.neg", a, -1.0)
            return self.threshold(f"{name}.iand", _Sig(neg.sources + b.sources, a.shape, False), 0.5)
        if op == "xor":  # OR - AND
            o = self.threshold(f"{name}.xor_or", both, 0.5)
            n = self.threshold(f"{name}.xor_and", both, 1.5)
            neg = self.scale(f"{name}.xor_neg", n, -1.0)
            return _Sig(o.sources + neg.sources, a.shape, True)
        raise ValueError(f"{name}: unknown logic op {op!r}")  # pragma: no cover

    # -- pieces of models ---------------------------------------------------------------------
    def seq(self, name: str, seq: nn.Module, x: _Sig) -> _Sig:
        """A feed-forward chain of conv/linear (+BN), neurons, pools, flatten."""
        mods = list(seq.named_children()) if isinstance(seq, nn.Sequential) else [("", seq)]
        i = 0
        while i < len(mods):
            sub, mod = mods[i]
            full = f"{name}.{sub}" if name and sub else (name or sub)
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                bn = mods[i + 1][1] if i + 1 < len(mods) and isinstance(mods[i + 1][1], _BN) else None
                x = self.weight_layer(full, mod, bn, x)
                i += 2 if bn is not None else 1
                continue
            x = self.module(full, mod, x)
            i += 1
        return x

    def module(self, name: str, mod: nn.Module, x: _Sig) -> _Sig:
        if isinstance(mod, (nn.Identity, nn.Dropout)):
            return x
        if isinstance(mod, SpikingNeuron):
            return self.neuron(name, mod, x)
        if isinstance(mod, nn.Sequential):
            return self.seq(name, mod, x)
        if isinstance(mod, _BN):
            raise ValueError(f"{name}: a BatchNorm that does not follow a conv/linear cannot be folded")
        if isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            return self.pool(name, mod, x)
        if isinstance(mod, nn.Flatten):
            if mod.start_dim != 2 or mod.end_dim != -1:
                raise ValueError(f"{name}: only nn.Flatten(start_dim=2) ([T, B, ...] -> [T, B, F]) is supported")
            return self._flatten(name, x)
        raise ValueError(f"{name}: {type(mod).__name__} has no NIR mapping")

    def _diagonal_conv(self, name: str, x: _Sig, kernel: np.ndarray, stride: tuple[int, int],
                       padding: tuple[int, int]) -> None:
        """A conv node applying ``kernel`` ``[KH, KW]`` to every channel of ``x`` ``[C, H, W]`` on its own: a
        dense conv (the batched importers read ``in_channels`` from the weight, so no groups) whose weight is
        ``kernel`` on the channel diagonal and exactly 0 elsewhere."""
        c = x.shape[0]
        self.add(name, self.nir.Conv2d(input_shape=tuple(x.shape[1:]), weight=np.eye(c)[:, :, None, None] * kernel,
                                       stride=stride, padding=padding, dilation=(1, 1), groups=1, bias=np.zeros(c)), x)

    def _avg_pool(self, name: str, x: _Sig, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int]) -> None:
        """An ``AvgPool2d`` node; for Norse (no pool node) a diagonal conv of weight ``1/k²``."""
        if self.consumer == "norse":
            self._diagonal_conv(name, x, np.full(k, 1.0 / (k[0] * k[1])), s, p)
        else:
            self.add(name, self.nir.AvgPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p)), x)

    def pool(self, name: str, mod: nn.Module, x: _Sig) -> _Sig:
        """Max-pool of spikes (``H(SumPool - 1/2)``), average pool, global average pool."""
        nir = self.nir
        if isinstance(mod, nn.MaxPool2d):
            if not x.binary:
                raise ValueError(f"{name}: max-pool of non-spike values has no NIR primitive")
            if mod.dilation not in (1, (1, 1)) or mod.ceil_mode:
                raise ValueError(f"{name}: max-pool with dilation or ceil_mode cannot be exported")
            k, s, p = (np.array(_pair(v)) for v in (mod.kernel_size, mod.stride, mod.padding))
            if self.consumer in _BATCHED:  # no SumPool2d there: the mean of k*k spikes is >= 1/k^2 iff one fired
                self._avg_pool(f"{name}.sum", x, tuple(k), tuple(s), tuple(p))
                theta = 0.5 / float(k[0] * k[1])
            else:
                self.add(f"{name}.sum", nir.SumPool2d(kernel_size=k, stride=s, padding=p), x)
                theta = 0.5
            return self.threshold(name, _Sig([f"{name}.sum"], self._out_shape(mod), False), theta)
        if isinstance(mod, nn.AvgPool2d):
            k, s, p = _pair(mod.kernel_size), _pair(mod.stride or mod.kernel_size), _pair(mod.padding)
            h, w = x.shape[1:]
            exact = p == (0, 0) and (h - k[0]) % s[0] == 0 and (w - k[1]) % s[1] == 0
            if not exact and (mod.ceil_mode or (p != (0, 0) and not mod.count_include_pad)):
                raise ValueError(f"{name}: average pool with ceil_mode/excluded padding on a {h}x{w} input has no "
                                 "NIR equivalent (use an input size divisible by the stride)")
            self._avg_pool(name, x, k, s, p)
            return _Sig([name], self._out_shape(mod), False)
        if isinstance(mod, nn.AdaptiveAvgPool2d):
            h, w = x.shape[1:]
            if _pair(mod.output_size) != (1, 1):
                raise ValueError(f"{name}: only global average pooling (output size 1) can be exported")
            self.add(name, nir.AvgPool2d(kernel_size=np.array([h, w]), stride=np.array([h, w]),
                                         padding=np.array([0, 0])), x)
            return _Sig([name], (x.shape[0], 1, 1), False)
        raise ValueError(f"{name}: {type(mod).__name__} has no NIR mapping")  # pragma: no cover

    def block(self, name: str, blk: nn.Module, x: _Sig, x_prev: _Sig | None) -> _Sig:
        """A residual block, read from its description (:mod:`xorsnn.blocks.spec`)."""
        spec = require_spec(blk, name, "NIR export", segments=2)
        for seg in spec.segments:
            h = x
            if seg.meta and x_prev is not None and x_prev.shape == x.shape:
                h = self.logic(f"{name}.meta_xor", "xor", x, x_prev)
            for kind, attr, norm in seg.steps():
                if kind == "weight":
                    h = self.weight_layer(f"{name}.{attr}", getattr(blk, attr), getattr(blk, norm) if norm else None, h)
                elif kind == "neuron":
                    h = self.neuron(f"{name}.{attr}", getattr(blk, attr), h)
                else:  # xor_input (stream norms were refused above)
                    h = self.logic(f"{name}.inner_xor", "xor", x, h)
            s = x
            if seg.shortcut != "identity":
                s = self.seq(f"{name}.{spec.downsample}", getattr(blk, spec.downsample), x)
            x = self._merge(name, blk, seg, h, s)
        return x

    def _merge(self, name: str, blk: nn.Module, seg: Segment, h: _Sig, s: _Sig) -> _Sig:
        """``seg.merge`` of the branch ``h`` and the shortcut ``s``: an ADD is edges into the consumer."""
        if seg.merge == "membrane_add":
            return _Sig(h.sources + s.sources, h.shape, False)
        fire = f"{name}.{seg.neuron}"
        sn = getattr(blk, seg.neuron)  # type: ignore[arg-type]
        if seg.merge == "current_add":
            return self.neuron(fire, sn, _Sig(h.sources + s.sources, h.shape, False))
        a = self.neuron(fire, sn, h)
        if seg.merge == "add":
            return _Sig(a.sources + s.sources, a.shape, False)
        if seg.merge in ("and", "iand"):
            return self.logic(f"{name}.{seg.merge}", seg.merge, a, s)  # IAND(A, S) = (1 - A) S
        if seg.merge == "or":
            return self.logic(f"{name}.merge", "or", s, a)
        if seg.merge == "xor":
            return self.logic(f"{name}.merge_xor", "xor", s, a)
        # or_select: OR(s, A AND XOR(s, A)) == OR(s, A) on binary spikes, exported as written
        sel = self.logic(f"{name}.sel", "and", a, self.logic(f"{name}.out_xor", "xor", s, a))
        return self.logic(f"{name}.merge", "or", s, sel)

    # -- whole models ---------------------------------------------------------------------------
    def model_graph(self, m: nn.Module, in_shape: tuple[int, ...]) -> None:
        """``input`` node (``in_shape`` per sample and step), the body of ``m``, ``output`` node."""
        if not isinstance(m, (SpikingResNet, DeepSNNStack, nn.Sequential)):
            raise ValueError(
                f"to_nir: {type(m).__name__} is not supported (SpikingResNet, DeepSNNStack or nn.Sequential)")
        if self.consumer == "norse" and not isinstance(m, nn.Sequential):
            warnings.warn("consumer='norse' on a residual network: norse.torch.from_nir (nirtorch's legacy "
                          "GraphExecutor) runs residual edges on the wrong inputs; load this graph with "
                          "xorsnn.export.norse_from_nir(graph), which wires Norse's modules with "
                          "nirtorch.nir_to_torch (docs/deploy.md)", UserWarning, stacklevel=3)
        self.add("input", self.nir.Input(input_type={"input": np.array(in_shape)}), [])
        x = _Sig(["input"], in_shape, False)
        if isinstance(m, SpikingResNet):
            x = self.resnet(m, x)
        elif isinstance(m, DeepSNNStack):
            x = self.stack(m, x)
        else:
            x = self.seq("", m, x)
        self.add("output", self.nir.Output(output_type={"output": np.array(x.shape)}), x)

    def stage(self, prefix: str, blocks: nn.Module, x: _Sig) -> _Sig:
        """Residual blocks ``prefix.0``, ``prefix.1``, ... in a row, each handing its input on as ``x_prev``."""
        prev = None
        for i, blk in enumerate(blocks):
            prev, x = x, self.block(f"{prefix}.{i}", blk, x, prev)
        return x

    def head_neuron(self, m: SpikingResNet | DeepSNNStack, x: _Sig) -> _Sig:
        if isinstance(m.head_bn, _BN):
            raise ValueError("head_bn: a BatchNorm on the residual stream cannot be folded into NIR")
        return self.module("head_sn", m.head_sn, x)

    def resnet(self, m: SpikingResNet, x: _Sig) -> _Sig:
        x = self.weight_layer("stem_conv", m.stem_conv, m.stem_bn, x)
        for attr in ("stem_sn", "stem_extra", "stem_pool"):
            x = self.module(attr, getattr(m, attr), x)
        for si, stage in enumerate(m.stages):
            x = self.stage(f"stages.{si}", stage, x)
        x = self.module("pool", m.pool, self.head_neuron(m, x))
        x = self.module("hidden", m.hidden, self._flatten("flatten", x))
        return self.weight_layer("fc", m.fc, None, x)

    def stack(self, m: DeepSNNStack, x: _Sig) -> _Sig:
        x = self.stage("blocks", m.blocks, self.seq("encoder", m.encoder, x))
        x = self.head_neuron(m, x)
        return x if m.fc is None else self.weight_layer("fc", m.fc, None, x)

    def _flatten(self, name: str, x: _Sig) -> _Sig:
        """``[C, H, W] -> [C*H*W]``. NIR counts ``start_dim`` in the batch-free shape (0); snnTorch's and
        Norse's importers build ``torch.nn.Flatten(start_dim)`` on batched tensors, so for them the dims are
        counted from the end (``-3``: the same dims with or without a batch, so the graph still passes NIR's
        type check when read back from a file)."""
        start = -len(x.shape) if self.consumer in _BATCHED else 0
        self.add(name, self.nir.Flatten(input_type={"input": np.array(x.shape)}, start_dim=start), x)
        return _Sig([name], (int(np.prod(x.shape)),), x.binary)

    def graph(self) -> Any:
        meta = {"producer": "xorsnn", "consumer": self.consumer, "dt": self.dt}
        return self.nir.NIRGraph(nodes=self.nodes, edges=self.edges, metadata=meta, type_check=False)


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def to_nir(model: nn.Module, sample: torch.Tensor, *, consumer: str = "nir") -> Any:
    """The NIR graph of ``model`` (eval mode; the model is not modified).

    Args:
        model: a :class:`~xorsnn.models.SpikingResNet`, a :class:`~xorsnn.models.DeepSNNStack` (FC residual
            blocks) or an ``nn.Sequential`` of time-first layers
            (``TimeConv2d``/``TimeLinear`` [+ BN], neurons, pools, ``nn.Flatten(start_dim=2)``).
        sample: one input the model accepts (``[B, C, H, W]`` or ``[T, B, C, H, W]``), used to trace
            shapes. Node names are the model's module names (neurons keep theirs: ``stages.0.1.sn2``).
        consumer: one of :data:`CONSUMERS`: ``"nir"`` (the specification; dt = 1), ``"spikingjelly"``,
            ``"norse"`` or ``"snntorch"`` (a graph snnTorch's ``import_from_nir`` runs with the same spikes:
            dt = 1e-4, logic thresholds as beta-0 LIFs, ``Scale`` as per-channel convs, ``Flatten(start_dim=1)``;
            IF neurons are refused). The graph's ``metadata`` records ``consumer`` and ``dt``;
            :func:`~xorsnn.export.nir_sim.simulate` reads them.

    Returns:
        ``nir.NIRGraph`` with nodes ``input`` and ``output``. Per sample and step, the input is
        ``[C, H, W]`` (or ``[F]``) and the output the logits ``[K]``.

    Raises:
        ValueError: naming the module, for anything that has no exact NIR form (module docstring).
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"to_nir: model must be an nn.Module, got {type(model).__name__}")
    check_choice("to_nir: consumer", consumer, CONSUMERS)
    if not any(isinstance(m, SpikingNeuron) for m in model.modules()):
        raise ValueError(f"to_nir: {type(model).__name__} has no spiking neurons (an ANN?); NIR export is for SNNs")
    was_training = model.training
    model.eval()
    try:
        b = _Builder(model, sample, consumer)
        b.model_graph(model, tuple(sample.shape[-3:]) if sample.dim() >= 4 else tuple(sample.shape[-1:]))
        return b.graph()
    finally:
        model.train(was_training)


def export_nir(model: nn.Module, sample: torch.Tensor, path: str | Path, *, consumer: str = "nir") -> Any:
    """:func:`to_nir` and ``nir.write(path, graph)``; returns the graph."""
    graph = to_nir(model, sample, consumer=consumer)
    _nir().write(str(path), graph)
    return graph


def norse_from_nir(graph: Any, dt: float = SNNTORCH_DT) -> nn.Module:
    """Norse's modules for a ``consumer="norse"`` graph, wired by ``nirtorch.nir_to_torch`` (needs ``norse``).

    ``norse.torch.from_nir`` runs a graph through nirtorch's legacy ``GraphExecutor``, which orders the
    nodes depth first and so runs a residual merge before the branch it has not reached yet (on the
    previous step's value). ``nirtorch.nir_to_torch`` orders them topologically; every node is built by
    Norse's own converter (``_import_norse_module``: LIF as ``LIFBoxCell``, convs, affines), not by
    nirtorch's default map (nirtorch 2.6's default ``Affine`` drops the bias).

    Returns:
        a module called like Norse's: ``out, state = net(x, state)`` per step, ``x`` ``[B, ...]``,
        ``state=None`` at the first step.
    """
    if not (isinstance(dt, (int, float)) and dt > 0 and math.isfinite(dt)):
        raise ValueError(f"norse_from_nir: dt must be a positive finite number of seconds, got {dt!r}")
    nir = _nir()
    if not isinstance(graph, nir.NIRGraph):
        raise ValueError(f"norse_from_nir: graph must be a nir.NIRGraph (to_nir(...) or nir.read(path)), "
                         f"got {type(graph).__name__}")
    try:
        import nirtorch
        from norse.torch.utils.import_nir import _import_norse_module
    except ImportError as exc:
        raise ImportError("norse_from_nir needs norse and nirtorch: pip install norse") from exc
    convert = partial(_import_norse_module, dt=dt, ignore_warnings=True)
    types = (nir.LIF, nir.IF, nir.CubaLIF, nir.Affine, nir.Linear, nir.Conv2d, nir.Flatten, nir.SumPool2d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return nirtorch.nir_to_torch(graph, {t: convert for t in types})
