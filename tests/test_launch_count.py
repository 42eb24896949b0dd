"""Kernel launches of one training step on the fused CPU path (issue 13's launch budget).

Counted with a dispatch mode: every aten op that computes (views, detaches and allocations
excluded), plus one per fused-kernel call (neuron and OR / XOR kernels). ``xoresnet20``, T = 4, B = 8, SGD + Nesterov
through the trainer's optimizer. The torch path issues ~2,500; the fused path must stay <= 300.
"""

import collections

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import xorsnn
from xorsnn.neurons import backends
from xorsnn.ops import logic
from xorsnn.training.optim import make_optimizer

_FREE = {"view", "_unsafe_view", "as_strided", "t", "transpose", "permute", "expand", "unsqueeze", "squeeze",
         "select", "slice", "detach", "alias", "unbind", "split", "flatten", "unflatten", "reshape",
         "_reshape_alias", "empty", "empty_like", "empty_strided", "lift_fresh"}


class _Count(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = func.overloadpacket.__name__
        if name not in _FREE:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))


def _step_launches(model: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int, int]:
    """``(aten ops, neuron-kernel calls, logic-kernel calls)`` of one training step."""
    opt = make_optimizer(model, "sgd", 0.1, 5e-4, 0.9, True)
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x).mean(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up: optimizer state, kernel compilation
    calls: collections.Counter[str] = collections.Counter()
    for kind, kern in (("neuron", backends._kernels()), ("logic", logic._kernels())):
        for fn in ("forward", "backward"):
            orig = getattr(kern, fn)
            monkeypatch.setattr(kern, fn, lambda *a, _o=orig, _k=kind: (calls.update([_k]), _o(*a))[1])
    with _Count() as c:
        step()
    return sum(c.ops.values()), calls["neuron"], calls["logic"]


def test_fused_training_step_launch_budget(monkeypatch):
    pytest.importorskip("numba")
    torch.manual_seed(0)
    model = xorsnn.create_model("xoresnet20", T=4, zero_init_residual=False)
    aten, fused, merges = _step_launches(model, monkeypatch)
    neurons = sum(1 for m in model.modules() if isinstance(m, xorsnn.neurons.SpikingNeuron))
    assert fused == 2 * neurons  # one forward and one backward call per neuron layer
    assert merges == 2 * 4  # one XOR per active meta-residual, each way (the ORs run inside the neuron kernels)
    assert aten + fused + merges <= 300, f"{aten} aten ops + {fused + merges} fused calls per step"


def test_torch_path_issues_far_more_launches(monkeypatch):
    """The reference: the same step on the torch backend (the budget above is a real reduction)."""
    pytest.importorskip("numba")
    torch.manual_seed(0)
    model = xorsnn.create_model("xoresnet20", T=4, zero_init_residual=False, neuron={"backend": "torch"})
    aten, fused, _ = _step_launches(model, monkeypatch)
    assert fused == 0 and aten > 1000
