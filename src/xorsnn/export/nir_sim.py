"""A small discrete-time NIR interpreter: the reference simulator for graphs written by
:func:`xorsnn.export.export_nir` (and any NIR graph made of the nodes below).

Semantics (forward Euler with the graph's ``metadata["dt"]``, 1 when absent; the conventions of
``docs/deploy.md``):

* a node's input is the **sum** of the outputs of all its incoming edges at the same step; the graph
  must be acyclic (no recurrent edges) and nodes are evaluated in topological order each step;
* ``LIF``: ``h = x * (r dt / tau) + v * (1 - dt / tau) + v_leak dt / tau``; ``IF``: ``h = v + r dt x``
  (NIR's ``dv/dt = R I``: SpikingJelly writes ``r = 1 / dt``);
  spike ``s = 1[h >= v_threshold]``; ``v = v_reset`` where ``s`` else ``h`` (``v_reset`` defaults to 0);
  the membrane starts at ``v_reset``;
* ``Threshold``: ``1[x >= threshold]``; ``Scale``: ``scale * x``; ``Affine``: ``W x + b``;
  ``Linear``: ``W x``; ``Conv2d``, ``AvgPool2d``, ``SumPool2d``, ``Flatten``: as their PyTorch
  counterparts on one step (``Flatten`` dims batch-free, as NIR specifies; a graph whose metadata
  names ``consumer="snntorch"`` or ``"norse"`` counts the batch, as those importers do).

Computed in float64 with PyTorch on the CPU.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["simulate", "NIRGraphModule", "read_graph"]


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
    shapes = {k: a.shape for k, a in arrays.items()} if kind in ("LIF", "IF") else {}
    try:
        np.broadcast_shapes(*shapes.values())
    except ValueError:
        raise ValueError(f"simulate: node {name!r} ({kind}): parameter shapes {shapes} do not broadcast") from None


def _pair(v: Any) -> tuple[int, int]:
    a = np.atleast_1d(np.asarray(v)).astype(int)
    return (int(a[0]), int(a[-1]))


def _neuron_params(graph: Any, dt: float) -> dict[str, dict[str, torch.Tensor]]:
    """Per LIF / IF node: ``v_threshold``, ``v_reset`` and the Euler update: LIF ``h = c u + k v + b``
    with ``k = 1 - dt/tau``, ``c = r dt / tau``, ``b = v_leak dt / tau``; IF ``h = v + r u`` with
    ``r = R dt``."""
    import nir

    params: dict[str, dict[str, torch.Tensor]] = {}
    for name, node in graph.nodes.items():
        if isinstance(node, (nir.LIF, nir.IF)):
            p = {"r": _t(node.r), "v_threshold": _t(node.v_threshold),
                 "v_reset": _t(node.v_reset) if getattr(node, "v_reset", None) is not None else _t(0.0)}
            if isinstance(node, nir.LIF):
                tau = _t(node.tau) / dt
                p.update(k=1 - 1 / tau, c=p["r"] / tau, b=_t(node.v_leak) / tau)
            else:
                p["r"] = p["r"] * dt
            params[name] = p
    return params


def _stateless(name: str, node: Any, u: torch.Tensor, batched_flatten: bool = False) -> torch.Tensor:
    """One stateless node on its summed input ``u`` ``[B, ...]``."""
    import nir

    if isinstance(node, nir.Output):
        return u
    if isinstance(node, nir.Conv2d):
        return F.conv2d(u, _t(node.weight), _t(node.bias), _pair(node.stride), _pair(node.padding),
                        _pair(node.dilation), int(node.groups))
    if isinstance(node, nir.Affine):
        return u @ _t(node.weight).T + _t(node.bias)
    if isinstance(node, nir.Linear):
        return u @ _t(node.weight).T
    if isinstance(node, nir.Scale):
        return u * _t(node.scale)
    if isinstance(node, nir.Threshold):
        return (u >= _t(node.threshold)).to(u.dtype)
    if isinstance(node, nir.AvgPool2d):
        return F.avg_pool2d(u, _pair(node.kernel_size), _pair(node.stride), _pair(node.padding))
    if isinstance(node, nir.SumPool2d):
        return F.avg_pool2d(u, _pair(node.kernel_size), _pair(node.stride), _pair(node.padding), divisor_override=1)
    if isinstance(node, nir.Flatten):  # NIR counts dims without the batch (a graph for snnTorch with it);
        lead = 0 if batched_flatten else 1  # negative dims count from the end either way
        start, end = int(node.start_dim), int(node.end_dim)
        return u.flatten(start if start < 0 else lead + start, end if end < 0 else lead + end)
    raise ValueError(f"simulate: node {name!r} of type {type(node).__name__} is not supported")


def _neuron_step(node: Any, p: dict[str, torch.Tensor], v: torch.Tensor | None,
                 u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward-Euler step of a LIF / IF node from membrane ``v`` (rest when ``None``): ``(spikes, v')``."""
    import nir

    if v is None:
        v = torch.zeros_like(u) + p["v_reset"]
    h = u * p["c"] + v * p["k"] + p["b"] if isinstance(node, nir.LIF) else v + u * p["r"]
    s = (h >= p["v_threshold"]).to(h.dtype)
    return s, torch.where(s.bool(), p["v_reset"].expand_as(h), h)


def _graph_dt(meta: dict[str, Any], dt: float | None) -> float:
    """``dt`` if given (checked), else the graph's ``metadata["dt"]``, else 1."""
    if dt is None:
        return float(meta.get("dt", 1.0))
    if not (isinstance(dt, (int, float)) and not isinstance(dt, bool) and 0 < dt < float("inf")):
        raise ValueError(f"simulate: dt must be a positive number, got {dt!r}")
    return float(dt)


def simulate(graph: Any, x: torch.Tensor, *, record: bool = False,
             dt: float | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run ``graph`` on ``x`` ``[T, B, ...]`` (per-step input of the ``Input`` node).

    ``dt``: the time step the graph's time constants were written for. Default: the graph's
    ``metadata["dt"]`` (xorsnn writes it), else 1. Graphs written by SpikingJelly's
    ``export_to_nir`` (and snnTorch's) use ``dt = 1e-4`` without recording it: pass ``dt=1e-4``.

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
    meta = getattr(graph, "metadata", None) or {}
    batched_flatten = meta.get("consumer") in ("snntorch", "norse")
    params = _neuron_params(graph, _graph_dt(meta, dt))
    state: dict[str, torch.Tensor] = {}
    rec: dict[str, list[torch.Tensor]] = defaultdict(list)
    outs = []
    x = x.to(torch.float64)
    for t in range(x.shape[0]):
        val: dict[str, torch.Tensor] = {inputs[0]: x[t]}
        for name in order:
            node = graph.nodes[name]
            if isinstance(node, nir.Input):
                continue
            if not preds[name]:
                raise ValueError(f"simulate: node {name!r} has no input")
            u = val[preds[name][0]]
            for src in preds[name][1:]:
                u = u + val[src]
            if name in params:
                val[name], state[name] = _neuron_step(node, params[name], state.get(name), u)
            else:
                val[name] = _stateless(name, node, u, batched_flatten)
            if record and isinstance(node, (nir.LIF, nir.IF, nir.Threshold)):
                rec[name].append(val[name])
        outs.append(val[outputs[0]])
    return torch.stack(outs), {k: torch.stack(v) for k, v in rec.items()}


def read_graph(path: str | Any) -> Any:
    """``nir.read(path)`` with a one-line error naming the file when it is not a readable NIR graph."""
    import nir

    try:
        return nir.read(str(path))
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable NIR graph ({type(exc).__name__}: {exc})") from None


class NIRGraphModule(nn.Module):
    """A NIR graph as an inference model of xorsnn's shape: ``[B, C, H, W]`` (repeated over ``T``) or
    ``[T, B, ...]`` -> the ``Output`` node's values ``[T, B, K]`` (float32), computed by :func:`simulate`.

    Args:
        graph: a ``nir.NIRGraph`` (any writer; see ``docs/deploy.md`` for the ones checked).
        T: time steps for a static input.
        dt: see :func:`simulate` (default: the graph's ``metadata["dt"]``, else 1).
    """

    def __init__(self, graph: Any, T: int, dt: float | None = None) -> None:
        super().__init__()
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ValueError(f"NIRGraphModule: T must be a positive integer, got {T!r}")
        self.graph, self.T, self.dt = graph, T, dt
        _graph_dt(getattr(graph, "metadata", None) or {}, dt)  # a bad dt fails here, not at the first batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x if x.dim() == 5 else x.unsqueeze(0).expand(self.T, *x.shape)
        out, _ = simulate(self.graph, seq, dt=self.dt)
        return out.float()
