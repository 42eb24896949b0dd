"""Trainer-level binary-weight SNN training: SLTT / SLTT-K mode, knowledge distillation, --init-from, the
SEI-BWSNN / ReverB presets and their CLI flags."""

import copy

import pytest
import torch
from helpers import synthetic_digits
from torch import nn
from torch.nn import functional as F

import xorsnn
from xorsnn.cli import _config_from_args, build_parser, main
from xorsnn.layers.binary import BinaryConv2d
from xorsnn.neurons.lif import SpikingNeuron
from xorsnn.online import sltt_step_losses
from xorsnn.training import (
    DistContext,
    TrainConfig,
    build_model,
    build_model_from_checkpoint,
    distill_loss,
    init_from_checkpoint,
    load_config,
    load_teacher,
    make_loaders,
    mean_ce_loss,
    seed_everything,
    teacher_logits,
    tet_loss,
    train,
)
from xorsnn.training.trainer import _loss, model_arguments

SMALL = {"widths": [4, 8, 8]}  # msc_resnet20 at 1/4 width: fast on 8x8 inputs


def tiny_digits(n_train=48, n_test=32, seed=0):
    """Synthetic 8x8 'digits' (class = bright row); see helpers.synthetic_digits."""
    return synthetic_digits(n_train, n_test, seed)


def one_batch_cfg(tmp_path, name="run", **kw):
    """One epoch of exactly one batch, plain SGD (no momentum, no decay, constant lr): w1 = w0 - lr * grad."""
    base = dict(model="msc_resnet20", model_kwargs=dict(SMALL), dataset="digits", epochs=1, batch_size=48, T=3,
                optimizer="sgd", momentum=0.0, weight_decay=0.0, lr=1.0, schedule="constant", augment=False,
                out_dir=str(tmp_path / name), progress=False)
    base.update(kw)
    return TrainConfig.from_dict(base)


def first_batch(cfg, data):
    loader, _ = make_loaders(cfg, data, DistContext())
    loader.set_epoch(0)
    return next(iter(loader))


def initial_model(cfg, data):
    seed_everything(cfg.seed)  # what train() does before building the model
    return build_model(cfg, data)


def step_of(w0, w1, lr):
    """The gradient an SGD step applied: (w0 - w1) / lr, per parameter name."""
    return {k: (w0[k] - w1[k]) / lr for k in w0}


def grads(model):
    return {k: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for k, p in model.named_parameters()}


def assert_same_grads(applied, expected, rtol=1e-4, atol=2e-6):
    for k, g in expected.items():
        torch.testing.assert_close(applied[k], g, rtol=rtol, atol=atol, msg=lambda m, k=k: f"{k}: {m}")


def max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in b)


# -- SLTT / SLTT-K as a trainer mode -------------------------------------------------------------------
def test_sltt_trainer_step_applies_the_model_level_sltt_gradient(tmp_path):
    data = tiny_digits()
    cfg = one_batch_cfg(tmp_path, online="sltt")
    ref = initial_model(cfg, data)
    w0 = {k: p.detach().clone() for k, p in ref.named_parameters()}
    res = train(cfg, data)
    assert res.metrics[0]["epoch"] == 1 and 0 <= res.final_test_acc <= 1
    applied = step_of(w0, dict(res.model.named_parameters()), cfg.lr)

    x, y = first_batch(cfg, data)
    sltt_ref = copy.deepcopy(ref).train()
    out = sltt_step_losses(sltt_ref, x, y, F.cross_entropy)  # SLTT's loss: per-step CE
    assert out.grad_steps == [0, 1, 2]
    assert_same_grads(applied, grads(sltt_ref))

    # the comparison has teeth: whole-sequence BPTT of the same per-step loss gives a different gradient
    bptt = copy.deepcopy(ref).train()
    tet_loss(bptt(x), y).backward()
    assert max_diff(applied, grads(bptt)) > 1e-3


def test_sltt_k_trainer_back_propagates_k_random_steps(tmp_path):
    data = tiny_digits()
    cfg = one_batch_cfg(tmp_path, online="sltt-k", online_k=1)
    ref = initial_model(cfg, data)
    w0 = {k: p.detach().clone() for k, p in ref.named_parameters()}
    applied = step_of(w0, dict(train(cfg, data).model.named_parameters()), cfg.lr)
    x, y = first_batch(cfg, data)
    diffs = []
    for t in range(cfg.T):  # the update must be exactly the SLTT gradient of one of the T single steps

        m = copy.deepcopy(ref).train()
        g = torch.Generator()
        # find a seed whose permutation starts with t, so sltt_step_losses picks step t
        seed = next(s for s in range(100) if torch.randperm(cfg.T, generator=g.manual_seed(s))[0].item() == t)
        res = sltt_step_losses(m, x, y, F.cross_entropy, k=1, generator=g.manual_seed(seed))
        assert res.grad_steps == [t]
        diffs.append(max_diff(applied, grads(m)))
    assert sorted(diffs)[0] < 1e-5 < sorted(diffs)[1], diffs


# -- knowledge distillation ----------------------------------------------------------------------------
def test_kd_objective_reduces_to_task_and_matches_hand_computation():
    torch.manual_seed(0)
    T, B, K = 3, 5, 4
    out, y, z = torch.randn(T, B, K), torch.randint(0, K, (B,)), torch.randn(B, K)
    cfg = TrainConfig(loss="ce", kd_lambda=0.0)
    assert torch.equal(_loss(cfg, out, y, z), mean_ce_loss(out, y))  # lambda = 0: the task loss itself
    lam, tau = 0.3, 2.0
    cfg = TrainConfig(loss="ce", kd_lambda=lam, kd_tau=tau)
    kl = 0.0
    for t in range(T):
        for b in range(B):
            p = torch.softmax(z[b] / tau, 0)
            q = torch.softmax(out[t, b] / tau, 0)
            kl += float((p * (p / q).log()).sum())
    ce = float(F.cross_entropy(out.mean(0), y))
    assert float(_loss(cfg, out, y, z)) == pytest.approx((1 - lam) * ce + lam * tau**2 * kl / (T * B), rel=1e-5)
    # TET as the task loss; lambda = 1 is pure distillation
    cfg = TrainConfig(loss="tet", tet_lambda=0.1, kd_lambda=0.6, kd_tau=tau)
    expected = 0.4 * tet_loss(out, y, 0.1) + 0.6 * tau**2 * kl / (T * B)
    torch.testing.assert_close(_loss(cfg, out, y, z), expected)
    assert float(distill_loss(torch.tensor(9.0), out, z, 1.0, tau)) == pytest.approx(tau**2 * kl / (T * B), rel=1e-5)


@pytest.mark.parametrize("loss", ["tet", "ce"])
def test_per_step_objective_sums_to_whole_sequence_for_tet_and_kd(loss):
    """SLTT back-propagates loss(O_t) / T per step; for TET and KD their sum is the whole-sequence objective."""
    torch.manual_seed(1)
    out, y, z = torch.randn(4, 6, 5), torch.randint(0, 5, (6,)), torch.randn(6, 5)
    cfg = TrainConfig(loss=loss, tet_lambda=0.05, kd_lambda=0.4, kd_tau=1.5, label_smoothing=0.1)
    per_step = sum(_loss(cfg, out[t : t + 1], y, z) for t in range(4)) / 4
    if loss == "tet":
        torch.testing.assert_close(per_step, _loss(cfg, out, y, z))
    else:  # CE of the time-mean does not decompose: SLTT uses per-step CE (its paper's loss)
        assert abs(float(per_step - _loss(cfg, out, y, z))) > 1e-3


def stage1_run(tmp_path, data, **kw):
    cfg = one_batch_cfg(tmp_path, name="stage1", lr=0.05, epochs=2, batch_size=16, **kw)
    return cfg, train(cfg, data)


def test_teacher_from_checkpoint_and_from_name_with_weights(tmp_path):
    data = tiny_digits()
    cfg, res = stage1_run(tmp_path, data)
    args = model_arguments(cfg, data)
    teacher = load_teacher(str(res.out_dir), args)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    ref, _ = build_model_from_checkpoint(res.out_dir)
    x = torch.randn(7, 1, 8, 8)
    torch.testing.assert_close(teacher_logits(teacher, x), ref.eval()(x).mean(0))
    assert teacher_logits(teacher, x).shape == (7, 10)
    with pytest.raises(ValueError, match="predicts 10 classes but the student has num_classes=5"):
        load_teacher(str(res.out_dir), {**args, "num_classes": 5})
    # a registered ANN with a weights file; a bare registered name is refused (an untrained teacher)
    ann_args = {"num_classes": 10, "in_channels": 1, "T": 3, "widths": [8, 8, 16, 16]}
    ann = xorsnn.create_model("ann_reverb_resnet20", **ann_args)
    assert not any(isinstance(m, SpikingNeuron) for m in ann.modules())
    torch.save({"state_dict": ann.state_dict()}, tmp_path / "ann.pt")
    t2 = load_teacher(f"ann_reverb_resnet20:{tmp_path / 'ann.pt'}", ann_args)
    torch.testing.assert_close(teacher_logits(t2, x), ann.eval()(x)[0])
    assert ann(x).shape == (1, 7, 10)  # an ANN has one "time step" whatever T is
    with pytest.raises(ValueError, match="without weights"):
        load_teacher("ann_reverb_resnet20", args)
    with pytest.raises(ValueError, match="neither an existing checkpoint"):
        load_teacher(str(tmp_path / "nope"), args)


@pytest.mark.parametrize("online", ["none", "sltt"])
def test_trainer_kd_gradient_matches_hand_built_objective(tmp_path, online):
    data = tiny_digits()
    _, s1 = stage1_run(tmp_path, data)
    lam, tau = 0.7, 2.0
    cfg = one_batch_cfg(tmp_path, name=f"kd_{online}", online=online, loss="tet", teacher=str(s1.out_dir),
                        kd_lambda=lam, kd_tau=tau, model_kwargs={**SMALL, "weights": "binary",
                                                                 "binary_scale": "magnitude"})
    ref = initial_model(cfg, data)
    w0 = {k: p.detach().clone() for k, p in ref.named_parameters()}
    applied = step_of(w0, dict(train(cfg, data).model.named_parameters()), cfg.lr)
    x, y = first_batch(cfg, data)
    teacher, _ = build_model_from_checkpoint(s1.out_dir)
    with torch.no_grad():
        z = teacher.eval()(x).mean(0)
    m = copy.deepcopy(ref).train()
    if online == "none":
        out = m(x)
        distill_loss(tet_loss(out, y), out, z, lam, tau).backward()
    else:
        sltt_step_losses(m, x, y, lambda o, t: distill_loss(tet_loss(o[None], t), o[None], z, lam, tau))
    assert_same_grads(applied, grads(m))
    # and KD matters: the task-only gradient differs
    m2 = copy.deepcopy(ref).train()
    tet_loss(m2(x), y).backward()
    assert max_diff(applied, grads(m2)) > 1e-3


# -- --init-from: stage 2 from stage 1 -----------------------------------------------------------------
@pytest.mark.parametrize("scale", ["magnitude", "alpha"])
def test_init_from_copies_full_precision_weights_into_binary_latent_weights(tmp_path, scale):
    data = tiny_digits()
    cfg, s1 = stage1_run(tmp_path, data)
    stage1, _ = build_model_from_checkpoint(s1.out_dir)
    binary = xorsnn.create_model("msc_resnet20", **{**model_arguments(cfg, data), "weights": "binary",
                                                     "binary_scale": scale})
    report = init_from_checkpoint(binary, s1.out_dir)
    assert set(report.loaded) == set(stage1.state_dict()) and not report.mismatched and not report.unexpected
    names = dict(binary.named_modules())
    n_binary = 0
    for name, module in stage1.named_modules():
        if isinstance(module, nn.Conv2d):
            target = names[name]
            torch.testing.assert_close(target.weight, module.weight, rtol=0, atol=0)  # the latent weight
            if isinstance(target, BinaryConv2d):
                n_binary += 1
                assert torch.equal(target.sign_weight(), torch.where(module.weight >= 0, 1.0, -1.0))
    assert n_binary == 18  # every 3x3 block conv of ResNet-20; stem and shortcut convs stay full precision
    missing = {k.rsplit(".", 1)[-1] for k in report.missing}
    assert missing == ({"log_alpha"} if scale == "alpha" else set())
    for k, v in stage1.state_dict().items():  # BN statistics and the classifier come along
        assert torch.equal(binary.state_dict()[k], v), k
    before = {k: v.clone() for k, v in binary.state_dict().items()}
    with pytest.raises(ValueError, match="not a checkpoint of this architecture"):
        init_from_checkpoint(xorsnn.create_model("ann_reverb_resnet20", num_classes=3), s1.out_dir)
    other_k = xorsnn.create_model("msc_resnet20", **{**model_arguments(cfg, data), "num_classes": 3})
    with pytest.raises(ValueError, match=r"mismatched \(fc.bias, fc.weight\)"):
        init_from_checkpoint(other_k, s1.out_dir)
    assert all(torch.equal(binary.state_dict()[k], v) for k, v in before.items())


def test_trainer_init_from_starts_stage2_at_stage1_weights(tmp_path):
    data = tiny_digits()
    _, s1 = stage1_run(tmp_path, data)
    stage1, _ = build_model_from_checkpoint(s1.out_dir)
    kw = dict(lr=1e-9, model_kwargs={**SMALL, "weights": "binary", "binary_scale": "magnitude"})
    res = train(one_batch_cfg(tmp_path, name="s2", init_from=str(s1.out_dir), **kw), data)
    fresh = train(one_batch_cfg(tmp_path, name="s2_fresh", **kw), data)
    w1 = dict(stage1.named_parameters())
    assert max_diff(dict(res.model.named_parameters()), w1) < 1e-6
    assert max_diff(dict(fresh.model.named_parameters()), w1) > 1e-2


# -- configuration, presets, CLI -----------------------------------------------------------------------
def test_cli_flags_parse_and_are_documented(capsys):
    args = build_parser().parse_args(["train", "--online", "sltt-k", "--online-k", "2", "--teacher", "runs/t",
                                      "--kd-lambda", "0.7", "--kd-tau", "2", "--init-from", "runs/s1",
                                      "--crop-padding", "0", "--T", "4"])
    cfg = _config_from_args(args)
    assert (cfg.online, cfg.online_k, cfg.teacher, cfg.kd_lambda, cfg.kd_tau, cfg.init_from, cfg.crop_padding) == (
        "sltt-k", 2, "runs/t", 0.7, 2.0, "runs/s1", 0)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    for flag in ("--online {none,sltt,sltt-k}", "--online-k", "--teacher", "--kd-lambda", "--kd-tau", "--init-from",
                 "--crop-padding"):
        assert flag in help_text, flag
    with pytest.raises(ValueError, match="online_k must be an int in \\[1, T=4\\]"):
        TrainConfig.from_dict({"online": "sltt-k", "T": 4})
    with pytest.raises(ValueError, match="online_k is only used"):
        TrainConfig.from_dict({"online": "sltt", "online_k": 2})
    with pytest.raises(ValueError, match="kd_lambda must be in"):
        TrainConfig.from_dict({"kd_lambda": 1.5})


def test_binary_presets():
    rb = TrainConfig.from_dict(load_config("cifar10_reverb_resnet20"))
    assert (rb.model, rb.optimizer, rb.lr, rb.schedule, rb.crop_padding, rb.augment) == (
        "reverb_resnet20", "sgd", 0.1, "cosine", 0, True)
    s1 = TrainConfig.from_dict(load_config("cifar10_seibwsnn_stage1"))
    s2 = TrainConfig.from_dict(load_config("cifar10_seibwsnn_stage2"))
    assert s1.model == s2.model and s1.model_kwargs.get("weights", "float") == "float"
    assert s2.model_kwargs["weights"] == "binary" and s2.model_kwargs["binary_scale"] == "magnitude"
    assert s2.weight_decay == 0 and s1.weight_decay > 0
    assert s2.init_from == s1.resolved_out_dir() == s2.teacher
    assert s1.online == s2.online == "sltt"
    model = xorsnn.create_model(s2.model, **s2.model_kwargs)
    assert any(isinstance(m, BinaryConv2d) for m in model.modules())
    neuron = next(m for m in xorsnn.create_model(rb.model, **rb.model_kwargs).modules()
                  if isinstance(m, SpikingNeuron))
    assert neuron.decay == 0.25
