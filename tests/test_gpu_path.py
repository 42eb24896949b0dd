"""The GPU hot path, checked where the CPU can see it: bucketed gradient all-reduce, one GPU per process,
RNG states of this process's GPU only, no host copy per step, a warning for --amp on a CPU, and a
model that torch.compile traces without graph breaks."""

import logging
import traceback

import pytest
import torch

import xorsnn
from xorsnn.training import TrainConfig, train
from xorsnn.training.distributed import cuda_index
from xorsnn.training.trainer import _all_reduce_grads, _rng_state, _set_rng_state, grad_buckets


class _FakeCtx:
    """A 2-rank context whose all-reduce doubles the tensor (as if the other rank held the same grads)."""

    enabled, world_size = True, 2

    def __init__(self):
        self.calls = 0

    def all_reduce_sum(self, t):
        self.calls += 1
        return t.mul_(2)


def test_online_gradient_all_reduce_is_bucketed_and_averages():
    torch.manual_seed(0)
    model = xorsnn.create_model("xoresnet8", T=2, in_channels=1)
    model(torch.rand(2, 1, 16, 16)).sum().backward()
    before = [p.grad.clone() for p in model.parameters()]
    ctx = _FakeCtx()
    _all_reduce_grads(model, ctx)
    assert ctx.calls == 1  # 0.08M parameters: one bucket, not one call per parameter
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), before, strict=True))  # (2g)/2 == g
    params = [torch.nn.Parameter(torch.zeros(n)) for n in (10, 10, 30, 5)]
    for p in params:
        p.grad = torch.ones_like(p)
    assert [len(b) for b in grad_buckets(params, bucket_bytes=80)] == [2, 1, 1]  # 40+40 | 120 (alone) | 20


def test_cuda_index_works_when_each_process_sees_one_gpu():
    assert cuda_index(3, visible=8) == 3
    assert cuda_index(3, visible=1) == 0  # CUDA_VISIBLE_DEVICES set per process
    with pytest.raises(ValueError, match="LOCAL_RANK=3 but this process sees 2 GPUs"):
        cuda_index(3, visible=2)


def test_rng_state_has_no_gpu_list_and_restores_on_cpu():
    state = _rng_state(torch.device("cpu"))
    assert "cuda" not in state
    a = torch.rand(3)
    _set_rng_state(state, torch.device("cpu"))
    assert torch.equal(torch.rand(3), a)
    _set_rng_state({**state, "cuda": [torch.zeros(8, dtype=torch.uint8)] * 3}, torch.device("cpu"))  # ignored off GPU


def test_amp_on_cpu_warns_and_the_training_step_makes_no_host_tensor(tmp_path, caplog, monkeypatch):
    pytest.importorskip("sklearn")
    made = []
    real_tensor = torch.tensor

    def counting_tensor(*args, **kwargs):  # a host -> device copy on a GPU; none per step from xorsnn's code
        caller = traceback.extract_stack()[-2].filename
        if "xorsnn" in caller and "/torch/" not in caller:
            made.append(caller)
        return real_tensor(*args, **kwargs)

    cfg = TrainConfig(model="xoresnet8", dataset="digits", T=2, epochs=1, batch_size=64, train_subset=256,
                      test_subset=64, optimizer="adamw", lr=0.005, augment=False, device="cpu", amp="bf16",
                      progress=False, out_dir=str(tmp_path / "run"))
    monkeypatch.setattr(torch, "tensor", counting_tensor)
    with caplog.at_level(logging.WARNING, logger="xorsnn.train"):
        train(cfg)
    assert any("--amp bf16 is ignored on cpu" in r.message for r in caplog.records)
    steps = 256 // 64
    assert len(made) <= 2, f"xorsnn called torch.tensor {len(made)} times in {steps} steps: {made}"  # mean/std once


def test_model_traces_without_graph_breaks():
    torch._dynamo.reset()
    model = xorsnn.create_model("xoresnet8", T=2, in_channels=1, zero_init_residual=False, xor_prev="shortcut")
    explanation = torch._dynamo.explain(model)(torch.rand(2, 1, 16, 16))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    torch._dynamo.reset()


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compile_mode_reaches_torch_compile_and_cuda_graph_modes_mark_each_step(mode, tmp_path, monkeypatch, caplog):
    """``--compile-mode`` is passed to ``torch.compile``; in a CUDA-graph mode every training and evaluation step
    starts with ``cudagraph_mark_step_begin`` (what lets CUDA-graph trees reuse their output memory), and on a
    CPU the run says that CUDA graphs are CUDA-only. Compiled here with dynamo's ``eager`` backend (fast)."""
    pytest.importorskip("sklearn")
    real_compile, modes, marks = torch.compile, [], []

    def fake_compile(model, mode=None, **kwargs):
        modes.append(mode)
        return real_compile(model, backend="eager")

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    cfg = TrainConfig(model="xoresnet8", dataset="digits", T=2, epochs=1, batch_size=64, train_subset=256,
                      test_subset=64, optimizer="adamw", lr=0.005, augment=False, device="cpu", compile=True,
                      compile_mode=mode, progress=False, out_dir=str(tmp_path / "run"))
    torch._dynamo.reset()
    with caplog.at_level(logging.WARNING, logger="xorsnn.train"):
        result = train(cfg)
    torch._dynamo.reset()
    assert result.final_test_acc > 0.0
    warned = any("CUDA graphs are CUDA-only" in r.message for r in caplog.records)
    if mode == "default":
        assert modes == [None] and marks == [] and not warned
    else:
        assert modes == ["reduce-overhead"] and warned
        assert len(marks) == 256 // 64 + 1  # 4 training steps + 1 test batch


def test_compile_mode_without_compile_is_refused():
    with pytest.raises(ValueError, match="compile_mode='reduce-overhead' takes effect only with compile=true"):
        TrainConfig(model="xoresnet8", dataset="digits", compile_mode="reduce-overhead").validate()
    with pytest.raises(ValueError, match="compile_mode must be one of"):
        TrainConfig(model="xoresnet8", dataset="digits", compile=True, compile_mode="fast").validate()
