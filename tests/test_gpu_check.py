"""``benchmarks/gpu_check.py`` runs end to end as a CPU dry run (so the prepared GPU command does not rot),
and the GPU-marked tests it starts (skipped without CUDA)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

import xorsnn
from xorsnn.neurons.backends import multistep
from xorsnn.neurons.dynamics import multistep_autograd

REPO = Path(__file__).resolve().parent.parent
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.slow
def test_gpu_check_cpu_dry_run(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    assert mod.main(["--device", "cpu", "--quick", "--skip-tests", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_check_cpu_dryrun.json").read_text())
    assert report["done"] == ["env", "correctness", "train_step", "cuda_graphs", "time_to_accuracy"]
    graphs = report["cuda_graphs"]
    assert graphs["compile"] == {"backend": "eager"} and graphs["eager"]["ms_per_step"] > 0
    assert graphs["compiled"]["ms_per_step"] > 0, graphs  # the compiled training step ran (no "error")
    assert all(r["spikes_equal"] and r["grad_max_err"] < 1e-5 for r in report["neurons"])
    assert report["model"]["fp32_max_err_vs_cpu"] == 0.0 and report["model"]["bf16_finite"]
    models = {r["model"] for r in report["train_step"]}
    assert {"ann ceiling (B*T images)", "xorsnn xoresnet18_cifar"} <= models
    assert 0.0 <= report["time_to_accuracy"]["test_acc"] <= 1.0
    assert "## Training step" in (tmp_path / "gpu_check_cpu_dryrun.md").read_text()


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("spec", [{"tau": 2.0}, {"tau": None, "decay": 0.25, "v_threshold": 0.5},
                                  {"tau": 2.0, "reset": "soft", "detach_reset": False}, {"real_valued": True}])
def test_neuron_on_cuda_matches_cpu_oracle(spec):
    d = xorsnn.neurons.make_neuron(spec).dynamics
    x = torch.randn(4, 8, 1000) * 1.5
    xr = x.clone().requires_grad_(True)
    ref, _ = multistep_autograd(xr, d)
    ref.sum().backward()
    xc = x.cuda().requires_grad_(True)
    out, _ = multistep(xc, d)
    out.sum().backward()
    assert torch.equal(out.cpu() != 0, ref != 0)
    torch.testing.assert_close(xc.grad.cpu(), xr.grad, atol=1e-5, rtol=1e-5)


@pytest.mark.gpu
@cuda
def test_model_on_cuda_matches_cpu_and_trains_in_bf16():
    torch.manual_seed(0)
    model = xorsnn.create_model("xoresnet18_cifar", T=2, zero_init_residual=False).eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        out = model.cuda()(x.cuda())
    torch.testing.assert_close(out.cpu(), ref, atol=1e-4, rtol=1e-4)
    model.train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(model(x.cuda()).mean(0).float(), torch.arange(4).cuda())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.gpu
@cuda
def test_training_steps_replay_as_cuda_graphs_without_skips():
    """``torch.compile(mode="reduce-overhead")`` (``--compile-mode reduce-overhead``) of an XOResNet training step:
    inductor records no reason to skip CUDA graphs, and the loss matches eager."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    model = xorsnn.create_model("xoresnet8", T=2, zero_init_residual=False, xor_prev="shortcut").cuda().train()
    x, y = torch.rand(8, 3, 32, 32, device="cuda"), torch.randint(0, 10, (8,), device="cuda")
    eager = torch.nn.functional.cross_entropy(model(x).mean(0), y).item()
    run = torch.compile(model, mode="reduce-overhead")
    for _ in range(3):
        torch.compiler.cudagraph_mark_step_begin()
        loss = torch.nn.functional.cross_entropy(run(x).mean(0), y)
        loss.backward()
    skips = {k: v for k, v in counters["inductor"].items() if "skip" in k}
    assert not any(skips.values()), skips
    assert abs(loss.item() - eager) < 1e-3
    torch._dynamo.reset()
