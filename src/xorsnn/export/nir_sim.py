"""A small discrete-time NIR interpreter: the reference simulator for graphs written by
:func:`xorsnn.export.export_nir` (and any NIR graph made of the nodes below).

Semantics (``dt = 1``, forward Euler; the conventions of ``docs/deploy.md``):

* a node's input is the **sum** of the outputs of all its incoming edges at the same step; the graph
  must be acyclic (no recurrent edges) and nodes are evaluated in topological order each step;
* ``LIF``: ``h = x * (r dt / tau) + v * (1 - dt / tau) + v_leak dt / tau``; ``IF``: ``h = v + r x``;
  spike ``s = 1[h >= v_threshold]``; ``v = v_reset`` where ``s`` else ``h`` (``v_reset`` defaults to 0);
  the membrane starts at ``v_reset``;
* ``Threshold``: ``1[x >= threshold]``; ``Scale``: ``scale * x``; ``Affine``: ``W x + b``;
  ``Linear``: ``W x``; ``Conv2d``, ``AvgPool2d``, ``SumPool2d``, ``Flatten``: as their PyTorch
  counterparts on one step.

Computed in float64 with PyTorch on the CPU.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["simulate"]


def _t(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _order(graph: Any) -> list[str]:
    indeg = {n: 0 for n in graph.nodes}
    succ = defaultdict(list)
    for a, b in graph.edges:
        indeg[b] += 1
        succ[a].append(b)
    ready = [n for n, d in indeg.items() if d == 0]
    order = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for m in succ[n]:
            indeg[m] -= 1
            if indeg[m] == 0:
                ready.append(m)
    if len(order) != len(graph.nodes):
        raise ValueError("simulate: the NIR graph has a cycle; recurrent graphs are not supported")
    return order


_PARAMS = {"LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"), "IF": ("r", "v_threshold", "v_reset"),
           "Threshold": ("threshold",), "Scale": ("scale",), "Affine": ("weight", "bias"), "Linear": ("weight",),
           "Conv2d": ("weight", "bias")}
_BROADCAST = {"LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"), "IF": ("r", "v_threshold", "v_reset")}


def _check_node(name: str, node: Any) -> None:
    """``ValueError`` naming the node and parameter if a parameter is non-numeric, non-finite, a
    ``tau <= 0``, or neuron parameters whose shapes do not broadcast."""
    kind = type(node).__name__
    arrays: dict[str, np.ndarray] = {}
    for key in _PARAMS.get(kind, ()):
        value = getattr(node, key, None)
        if value is None:
            continue
        try:
            a = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"simulate: node {name!r} ({kind}): {key} must be numeric, got {value!r}") from None
        if not np.isfinite(a).all():
            raise ValueError(f"simulate: node {name!r} ({kind}): {key} must be finite, has NaN/inf entries")
        arrays[key] = a
    if "tau" in arrays and not (arrays["tau"] > 0).all():
        raise ValueError(f"simulate: node {name!r} ({kind}): tau must be > 0, got min {arrays['tau'].min()}")
    shared = [k for k in _BROADCAST.get(kind, ()) if k in arrays]
    try:
        np.broadcast_shapes(*(arrays[k].shape for k in shared))
    except ValueError:
        shapes = {k: arrays[k].shape for k in shared}
        raise ValueError(f"simulate: node {name!r} ({kind}): parameter shapes {shapes} do not broadcast") from None


def _pair(v: Any) -> tuple[int, int]:
    a = np.atleast_1d(np.asarray(v)).astype(int)
    return (int(a[0]), int(a[-1]))


def simulate(graph: Any, x: torch.Tensor, *, record: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run ``graph`` on ``x`` ``[T, B, ...]`` (per-step input of the ``Input`` node).

    Returns:
        ``(out, recorded)``: the ``Output`` node's values ``[T, B, ...]`` and, with ``record=True``,
        every stateful or thresholding node's output ``{name: [T, B, ...]}`` (LIF, IF, Threshold).
    """
    import nir

    if x.dim() < 2:
        raise ValueError(f"simulate: x must be [T, B, ...], got {tuple(x.shape)}")
    order = _order(graph)
    preds = defaultdict(list)
    for a, b in graph.edges:
        preds[b].append(a)
    inputs = [n for n in order if isinstance(graph.nodes[n], nir.Input)]
    outputs = [n for n in order if isinstance(graph.nodes[n], nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError("simulate: the graph must have exactly one Input and one Output node")
    for name, node in graph.nodes.items():
        _check_node(name, node)
    params: dict[str, dict[str, torch.Tensor]] = {}
    for name, node in graph.nodes.items():
        if isinstance(node, (nir.LIF, nir.IF)):
            p = {"r": _t(node.r), "v_threshold": _t(node.v_threshold),
                 "v_reset": _t(node.v_reset) if getattr(node, "v_reset", None) is not None else _t(0.0)}
            if isinstance(node, nir.LIF):
                tau = _t(node.tau)
                p.update(k=1 - 1 / tau, c=p["r"] / tau, b=_t(node.v_leak) / tau)
            params[name] = p
    state: dict[str, torch.Tensor] = {}
    rec: dict[str, list[torch.Tensor]] = defaultdict(list)
    outs = []
    x = x.to(torch.float64)
    for t in range(x.shape[0]):
        val: dict[str, torch.Tensor] = {}
        for name in order:
            node = graph.nodes[name]
            if isinstance(node, nir.Input):
                val[name] = x[t]
                continue
            srcs = preds[name]
            if not srcs:
                raise ValueError(f"simulate: node {name!r} has no input")
            u = val[srcs[0]]
            for s in srcs[1:]:
                u = u + val[s]
            if isinstance(node, nir.Output):
                y = u
            elif isinstance(node, nir.Conv2d):
                y = F.conv2d(u, _t(node.weight), _t(node.bias), _pair(node.stride), _pair(node.padding),
                             _pair(node.dilation), int(node.groups))
            elif isinstance(node, nir.Affine):
                y = u @ _t(node.weight).T + _t(node.bias)
            elif isinstance(node, nir.Linear):
                y = u @ _t(node.weight).T
            elif isinstance(node, nir.Scale):
                y = u * _t(node.scale)
            elif isinstance(node, nir.Threshold):
                y = (u >= _t(node.threshold)).to(u.dtype)
            elif isinstance(node, nir.AvgPool2d):
                y = F.avg_pool2d(u, _pair(node.kernel_size), _pair(node.stride), _pair(node.padding))
            elif isinstance(node, nir.SumPool2d):
                k = _pair(node.kernel_size)
                y = F.avg_pool2d(u, k, _pair(node.stride), _pair(node.padding), divisor_override=1)
            elif isinstance(node, nir.Flatten):
                y = u.flatten(1 + int(node.start_dim), -1 if node.end_dim == -1 else 1 + int(node.end_dim))
            elif isinstance(node, (nir.LIF, nir.IF)):
                p = params[name]
                v = state.get(name)
                if v is None:
                    v = torch.zeros_like(u) + p["v_reset"]
                if isinstance(node, nir.LIF):
                    h = u * p["c"] + v * p["k"] + p["b"]
                else:
                    h = v + u * p["r"]
                s = (h >= p["v_threshold"]).to(h.dtype)
                state[name] = torch.where(s.bool(), p["v_reset"].expand_as(h), h)
                y = s
            else:
                raise ValueError(f"simulate: node {name!r} of type {type(node).__name__} is not supported")
            val[name] = y
            if record and isinstance(node, (nir.LIF, nir.IF, nir.Threshold)):
                rec[name].append(y)
        outs.append(val[outputs[0]])
    return torch.stack(outs), {k: torch.stack(v) for k, v in rec.items()}
