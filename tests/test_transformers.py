"""Spiking transformers (Spikformer, SDT) and the a-XNOR similarity.

The a-XNOR checks compare the fast paths with the naive per-pair definition
``Σ_i [q_i k_i + a (1 - q_i)(1 - k_i)]``; with dyadic ``a`` and binary inputs every intermediate value
is exactly representable, so the comparisons are exact (``torch.equal``).
"""

import pytest
import torch
from helpers import binary
from torch import nn

import xorsnn
from xorsnn.analysis import attention_table, extra_op_records, record_attention
from xorsnn.models import SpikeDrivenTransformer, Spikformer
from xorsnn.models.transformers import AXNORCoefficient, SpikeDrivenSelfAttention, SpikingSelfAttention
from xorsnn.neurons import SpikingNeuron
from xorsnn.ops import axnor_attention, axnor_kv, axnor_scores, dot_matching_factor
from xorsnn.ops.axnor import ORDERS

H = 4  # heads in the functional tests


# -- naive references ------------------------------------------------------------------------
def _a_pairwise(a, ndim):
    """``a`` shaped to broadcast against a pairwise tensor ``[..., h, N, M, d]`` of ``ndim`` dims."""
    if not isinstance(a, torch.Tensor):
        return a
    if a.dim() == 1 and a.numel() > 1:
        a = a.view(-1, 1, 1)
    return a.reshape(a.shape + (1,)) if a.dim() else a


def naive_scores(q, k, a):
    """``S[..., n, m] = Σ_i [q_ni k_mi + a (1 - q_ni)(1 - k_mi)]`` through the pairwise tensor."""
    qq, kk = q.unsqueeze(-2), k.unsqueeze(-3)  # [..., N, 1, d], [..., 1, M, d]
    pair = qq * kk + _a_pairwise(a, qq.dim()) * (1 - qq) * (1 - kk)
    return pair.sum(-1)


def naive_kv(k, v, a):
    a = a.view(-1, 1, 1) if isinstance(a, torch.Tensor) and a.dim() == 1 and a.numel() > 1 else a
    return (k * v + a * (1 - k) * (1 - v)).sum(-2, keepdim=True)


A_LAYOUTS = {
    "global float": 0.375,
    "global 0-dim tensor": torch.tensor(0.625, dtype=torch.float64),
    "per-head [h]": torch.tensor([0.25, 0.5, 0.125, 0.875], dtype=torch.float64),
    "per-head [h,1,1]": torch.tensor([0.75, 0.5, 0.375, 0.0625], dtype=torch.float64).view(H, 1, 1),
}


def _qkv(n=7, m=6, d=5, dv=3, dtype=torch.float64):
    q = binary(2, 3, H, n, d, p=0.3, dtype=dtype)
    k = binary(2, 3, H, m, d, p=0.3, dtype=dtype)
    v = binary(2, 3, H, m, dv, p=0.3, dtype=dtype)
    return q, k, v


# -- a-XNOR: exactness ---------------------------------------------------------------------
@pytest.mark.parametrize("layout", list(A_LAYOUTS))
def test_axnor_scores_equal_naive_definition_exactly(layout):
    q, k, _ = _qkv()
    a = A_LAYOUTS[layout]
    expected = naive_scores(q, k, a)
    assert torch.equal(axnor_scores(q, k, a), expected)
    # sanity of the reference itself: the complement form Q Kᵀ + a (1 - Q)(1 - K)ᵀ
    a_b = a.view(-1, 1, 1) if isinstance(a, torch.Tensor) and a.dim() == 1 else a
    torch.testing.assert_close(expected, q @ k.mT + a_b * (1 - q) @ (1 - k).mT, rtol=0, atol=0)


@pytest.mark.parametrize("layout", list(A_LAYOUTS))
@pytest.mark.parametrize("order", ORDERS)
def test_axnor_attention_equals_naive_exactly_for_every_order(layout, order):
    q, k, v = _qkv()
    a = A_LAYOUTS[layout]
    expected = (naive_scores(q, k, a) @ v) * 0.125
    assert torch.equal(axnor_attention(q, k, v, a, 0.125, order=order), expected)


@pytest.mark.parametrize("order", ORDERS)
def test_axnor_attention_non_dyadic_a_matches_to_rounding(order):
    q, k, v = _qkv(n=9, m=9, d=16, dv=16)
    a = torch.rand(H, dtype=torch.float64) * 0.9 + 0.05
    expected = naive_scores(q, k, a) @ v
    torch.testing.assert_close(axnor_attention(q, k, v, a, order=order), expected, rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("a", [0.0, torch.zeros(H, dtype=torch.float64)])
def test_a_zero_is_the_dot_product_bit_for_bit(a):
    q, k, v = _qkv(dtype=torch.float32)
    if isinstance(a, torch.Tensor):
        a = a.float()
    assert torch.equal(axnor_scores(q, k, a), q @ k.mT)
    assert torch.equal(axnor_attention(q, k, v, a, 0.125, order="kv_first"), (q @ (k.mT @ v)) * 0.125)
    assert torch.equal(axnor_attention(q, k, v, a, 0.125, order="qk_first"), ((q @ k.mT) @ v) * 0.125)
    kk, vv = k, binary(*k.shape, p=0.3)
    assert torch.equal(axnor_kv(kk, vv, a), (kk * vv).sum(-2, keepdim=True))
    assert torch.equal(dot_matching_factor(torch.rand(3), torch.rand(3), 0.0), torch.ones(3))


@pytest.mark.parametrize("layout", list(A_LAYOUTS))
def test_axnor_kv_equals_naive_sdsa_analogue_exactly(layout):
    k = binary(2, 3, H, 11, 5, p=0.3, dtype=torch.float64)
    v = binary(2, 3, H, 11, 5, p=0.3, dtype=torch.float64)
    a = A_LAYOUTS[layout]
    assert torch.equal(axnor_kv(k, v, a), naive_kv(k, v, a))


def test_a_xnor_counts_agreeing_zeros_which_the_dot_product_ignores():
    q = torch.tensor([[1.0, 0, 0, 0]])
    k = torch.tensor([[1.0, 0, 0, 0], [0.0, 1, 0, 0]])
    # pair 0: one (1,1) + three (0,0); pair 1: two mismatches + two (0,0)
    assert axnor_scores(q, k, 0.5).tolist() == [[1 + 3 * 0.5, 2 * 0.5]]
    assert (q @ k.mT).tolist() == [[1.0, 0.0]]


def test_kv_first_never_builds_pairwise_tensors():
    # the [N, N, d] pairwise tensor would need 32768² x 16 x 4 B = 64 GiB and even S [N, N] 4 GiB;
    # the KᵀV ordering needs only [d, d_v] intermediates.
    n, d = 32768, 16
    q, k, v = (binary(1, n, d, p=0.2) for _ in range(3))
    out = axnor_attention(q, k, v, 0.25, order="kv_first")
    assert out.shape == (1, n, d)
    torch.testing.assert_close(out[:, :5], naive_scores(q[:, :5], k, 0.25) @ v, rtol=1e-5, atol=1e-2)


# -- a-XNOR: gradients -----------------------------------------------------------------------
def _smooth_inputs(n=5, m=4, d=3, dv=2):
    def real(*shape):
        return (torch.rand(*shape, dtype=torch.float64) * 0.9 + 0.05).requires_grad_()

    a = (torch.rand(H, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    return real(2, H, n, d), real(2, H, m, d), real(2, H, m, dv), a


def test_axnor_scores_gradcheck_smooth_form():
    q, k, _, a = _smooth_inputs()
    assert torch.autograd.gradcheck(axnor_scores, (q, k, a))
    a0 = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)  # global a
    assert torch.autograd.gradcheck(axnor_scores, (q, k, a0))


@pytest.mark.parametrize("order", ORDERS)
def test_axnor_attention_gradcheck_and_matches_naive_gradients(order):
    q, k, v, a = _smooth_inputs()

    def fast(q, k, v, a):
        return axnor_attention(q, k, v, a, 0.125, order=order)

    assert torch.autograd.gradcheck(fast, (q, k, v, a))
    # gradients of the fast path equal those of the naive pairwise definition
    g_fast = torch.autograd.grad(fast(q, k, v, a).sum(), (q, k, v, a))
    g_naive = torch.autograd.grad(((naive_scores(q, k, a) @ v) * 0.125).sum(), (q, k, v, a))
    for gf, gn in zip(g_fast, g_naive, strict=True):
        torch.testing.assert_close(gf, gn, rtol=1e-12, atol=1e-12)


def test_axnor_kv_and_matching_factor_gradcheck():
    _, k, v, a = _smooth_inputs(m=6, d=3)
    v = v.detach()[..., :1].expand_as(k).clone().requires_grad_()
    assert torch.autograd.gradcheck(axnor_kv, (k, v, a))
    rx, ry = (torch.rand(3, H, 1, 1, dtype=torch.float64) for _ in range(2))
    assert torch.autograd.gradcheck(lambda a: dot_matching_factor(rx, ry, a.view(-1, 1, 1)), (a,))


def test_functional_api_rejects_bad_arguments():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="same feature size"):
        axnor_scores(q, k[..., :3], 0.5)
    with pytest.raises(ValueError, match="order must be one of"):
        axnor_attention(q, k, v, 0.5, order="diagonal")
    with pytest.raises(ValueError, match="one value per head"):
        axnor_scores(q, k, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="does not broadcast"):
        axnor_scores(q, k, torch.ones(5, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="floating-point"):
        axnor_scores(q.long(), k, 0.5)
    with pytest.raises(ValueError, match="same number of tokens"):
        axnor_attention(q, k, v[..., :2, :], 0.5)
    with pytest.raises(ValueError, match="finite"):
        axnor_scores(q, k, float("nan"))


# -- the coefficient a -------------------------------------------------------------------------
@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_learnable_a_stays_in_open_interval_after_huge_step(direction):
    coef = AXNORCoefficient(0.25, learnable=True, num_values=3)
    opt = torch.optim.SGD(coef.parameters(), lr=1.0)
    (direction * 1e12 * coef().sum()).backward()
    opt.step()
    a = coef()
    assert torch.isfinite(a).all()
    assert ((a > 0) & (a < 1)).all(), a
    assert (a < 0.01).all() if direction > 0 else (a > 0.99).all()


def test_coefficient_initial_values_and_bad_values():
    assert torch.allclose(AXNORCoefficient(0.3)(), torch.tensor([0.3]))
    assert AXNORCoefficient(0.0, learnable=False)().item() == 0.0
    assert not list(AXNORCoefficient(0.5, learnable=False).parameters())
    for bad, learnable in ((0.0, True), (1.0, True), (1.5, False), (-0.1, False), (float("nan"), False)):
        with pytest.raises(ValueError, match="a "):
            AXNORCoefficient(bad, learnable=learnable)


# -- models --------------------------------------------------------------------------------------
def _small(cls, **kw):
    args = dict(embed_dim=32, depth=2, num_heads=4, T=2, num_classes=5)
    args.update(kw)
    return cls(**args)


@pytest.mark.parametrize("cls", [Spikformer, SpikeDrivenTransformer])
def test_granularity_decides_the_a_parameters(cls):
    def a_params(m):
        return {n: p.shape for n, p in m.named_parameters() if n.endswith("rho")}

    g = _small(cls, similarity="axnor", a_granularity="global", depth=3)
    assert a_params(g) == {"a_coef.rho": (1,)}
    assert len({id(blk.attn.a_coef) for blk in g.blocks}) == 1
    layer = a_params(_small(cls, similarity="axnor", a_granularity="layer", depth=3))
    assert list(layer.values()) == [(1,)] * 3
    head = a_params(_small(cls, similarity="axnor", depth=3))  # default granularity: per head
    assert list(head.values()) == [(4,)] * 3
    assert a_params(_small(cls, similarity="axnor", a=0.4, a_learnable=False)) == {}
    assert a_params(_small(cls)) == {}


@pytest.mark.parametrize("cls", [Spikformer, SpikeDrivenTransformer])
@pytest.mark.parametrize("order,norm", [("kv_first", "none"), ("qk_first", "none"), ("kv_first", "match_dot"),
                                        ("qk_first", "center")])
def test_fixed_a_zero_model_equals_dot_model_exactly(cls, order, norm):
    kw = {"attn_order": order} if cls is Spikformer else {}
    dot = _small(cls, **kw)
    ax = _small(cls, similarity="axnor", a=0.0, a_learnable=False, attn_norm=norm, **kw)
    missing, unexpected = ax.load_state_dict(dot.state_dict(), strict=False)
    assert unexpected == [] and all(k.endswith("a_fixed") for k in missing)
    x = torch.rand(3, 3, 16, 16)
    assert torch.equal(dot(x), ax(x))


@pytest.mark.parametrize("similarity", ["dot", "axnor"])
def test_spikformer_orders_compute_the_same_function(similarity):
    kw = {"similarity": similarity, "a": 0.25, "a_learnable": False} if similarity == "axnor" else {}
    dense = {"neuron": {"v_threshold": 0.2}}  # dense Q/K/V spikes, so the attention neurons fire
    kv = _small(Spikformer, attn_order="kv_first", **dense, **kw)
    qk = _small(Spikformer, attn_order="qk_first", **dense, **kw)
    qk.load_state_dict(kv.state_dict())
    pre = {}
    for name, model in (("kv", kv), ("qk", qk)):
        model.blocks[0].attn.attn_sn.register_forward_hook(lambda m, i, o, name=name: pre.__setitem__(name, i[0]))
    x = torch.rand(3, 3, 16, 16)
    with record_attention(kv) as rec:
        out = kv(x)
    assert torch.equal(out, qk(x))
    assert torch.equal(pre["kv"], pre["qk"]) and pre["kv"].abs().sum() > 0
    assert all(r.rates["attn"] > 0 for r in rec.values())


@pytest.mark.parametrize("cls", [Spikformer, SpikeDrivenTransformer])
def test_static_image_equals_repeated_sequence(cls):
    model = _small(cls, T=3, similarity="axnor").eval()
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(model(x), model(x.unsqueeze(0).repeat(3, 1, 1, 1, 1)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("norm", ["none", "match_dot", "center"])
@pytest.mark.parametrize("order", ORDERS)
def test_ssa_record_is_the_map_that_multiplies_v(order, norm):
    model = _small(Spikformer, attn_order=order, similarity="axnor", attn_norm=norm)
    attn = model.blocks[1].attn
    seen = {}
    attn.v.register_forward_hook(lambda m, i, o: seen.__setitem__("v", o))
    attn.attn_sn.register_forward_hook(lambda m, i, o: seen.__setitem__("x", i[0]))
    attn.q.sn.register_forward_hook(lambda m, i, o: seen.__setitem__("q", o))
    with record_attention(model) as rec:
        model(torch.rand(2, 3, 32, 32) * 2)
    r = rec["blocks.1.attn"]
    assert r.scores.shape == (2, 2, 4, 64, 64) and r.kv is None
    v = attn.split_heads(seen["v"])
    torch.testing.assert_close(attn.merge_heads(r.scores @ v), seen["x"], rtol=1e-5, atol=1e-5)
    assert r.rates["q"] == pytest.approx(seen["q"].mean().item())
    assert r.head_rates["q"].shape == (4,) and r.a.shape == (4,)
    assert not attn._forward_hooks and not attn.q._forward_hooks and len(attn.attn_sn._forward_hooks) == 1  # ours stay
    assert rec["blocks.1.attn"] is r and not hasattr(attn, "last_record")  # no analysis state in the model
    with pytest.warns(FutureWarning, match="moved to xorsnn.analysis.record_attention"):
        from xorsnn.models import record_attention as old
    with pytest.warns(FutureWarning, match="transformers.AttentionRecord moved to xorsnn.analysis.AttentionRecord"):
        from xorsnn.models.transformers import AttentionRecord as old_record
    assert old is record_attention and old_record is type(r)


@pytest.mark.parametrize("norm", ["none", "match_dot", "center"])
def test_sdsa_record_holds_kv_counts_and_mask(norm):
    a = 0.5
    model = _small(SpikeDrivenTransformer, similarity="axnor", a=a, a_learnable=False, attn_norm=norm)
    attn = model.blocks[0].attn
    seen = {}
    attn.kv_sn.register_forward_hook(lambda m, i, o: seen.update(x=i[0], s=o))
    attn.k.sn.register_forward_hook(lambda m, i, o: seen.update(k=attn.split_heads(o)))
    attn.v.sn.register_forward_hook(lambda m, i, o: seen.update(v=attn.split_heads(o)))
    with record_attention(model) as rec:
        model(torch.rand(2, 3, 32, 32))
    r = rec["blocks.0.attn"]
    assert r.scores is None and r.kv.shape == r.kv_mask.shape == (2, 2, 4, 8)
    assert torch.equal(r.kv, seen["x"].squeeze(-2)) and torch.equal(r.kv_mask, seen["s"].squeeze(-2))
    # the KV neuron's input, recomputed from the K and V spikes with the naive definition
    k, v = seen["k"], seen["v"]
    rk, rv, n = k.mean((-2, -1), keepdim=True), v.mean((-2, -1), keepdim=True), k.shape[-2]
    expected = naive_kv(k, v, a)
    if norm == "match_dot":
        expected = expected * dot_matching_factor(rk, rv, a)
    elif norm == "center":
        expected = expected - a * n * (1 - rk) * (1 - rv)
    torch.testing.assert_close(seen["x"], expected, rtol=1e-6, atol=1e-5)
    assert set(r.kv_mask.unique().tolist()) <= {0.0, 1.0}
    assert r.rates["attn"] == pytest.approx(r.kv_mask.mean().item())


def test_geometry_and_attention_ops_for_sop_accounting():
    model = Spikformer(embed_dim=384, depth=1, num_heads=12, T=1, similarity="axnor")
    model(torch.rand(1, 3, 32, 32))
    attn = model.blocks[0].attn
    g = attn.geometry()
    assert (g["tokens"], g["heads"], g["head_dim"], g["order"], g["similarity"]) == (64, 12, 32, "kv_first", "axnor")
    assert g["scale"] == 0.125 and len(g["a"]) == 12
    ops = {o["name"]: o for o in attention_table(attn)}
    assert ops["k^T@v"]["macs"] == ops["q@(k^T v)"]["macs"] == 12 * 64 * 32 * 32
    extra = sum(o["macs"] for n, o in ops.items() if n not in ("k^T@v", "q@(k^T v)"))
    assert extra == 12 * 64 * 32 * 7  # O(N d): |q|, |k|, 1ᵀv, |k|ᵀv + 3 per output entry = 22 % of one product
    qk = SpikingSelfAttention(384, 12, neuron=SpikingNeuron, attn_neuron=SpikingNeuron, order="qk_first")
    assert {o["name"]: o["macs"] for o in attention_table(qk, tokens=64)} == {
        "q@k^T": 12 * 64 * 64 * 32, "(q k^T)@v": 12 * 64 * 64 * 32}
    sdsa = SpikeDrivenSelfAttention(64, 4, neuron=SpikingNeuron, attn_neuron=SpikingNeuron)
    assert [o["macs"] for o in attention_table(sdsa, tokens=10)] == [640, 640, 640]
    with pytest.raises(ValueError, match="tokens"):
        attention_table(sdsa)
    with pytest.raises(ValueError, match="tokens must be a positive integer"):
        attention_table(sdsa, tokens=0)


def test_neuron_defaults_and_overrides():
    model = xorsnn.create_model("spikformer_4_384", T=1)
    sn = model.patch_embed.sns[0]
    assert (sn.tau, sn.v_threshold, sn.reset, sn.detach_reset) == (2.0, 1.0, "hard", True)
    assert sn.surrogate.name == "sigmoid" and sn.surrogate.alpha == 4.0
    assert model.blocks[0].attn.attn_sn.v_threshold == 0.5
    sdt = xorsnn.create_model("sdt_2_512", T=1)
    assert sdt.blocks[0].attn.kv_sn.v_threshold == 0.5 and sdt.blocks[0].attn.q.sn.v_threshold == 1.0
    m = xorsnn.create_model("spikformer_2_384", neuron={"tau": 1.5, "surrogate": "atan"},
                            attn_neuron={"v_threshold": 0.25})
    assert m.blocks[0].mlp.fc1.sn.tau == 1.5 and m.blocks[0].mlp.fc1.sn.surrogate.name == "atan"
    a_sn = m.blocks[0].attn.attn_sn
    assert a_sn.tau == 1.5 and a_sn.v_threshold == 0.25


def _expected_params(depth, dim, *, qkv_bias, classes, in_ch=3):
    """Parameter count of the official code's layers (Spikformer and SDT have the same layers)."""
    widths = [in_ch, dim // 8, dim // 4, dim // 2, dim]
    sps = sum(9 * ci * co + 2 * co for ci, co in zip(widths[:-1], widths[1:], strict=True)) + 9 * dim * dim + 2 * dim
    attn = 3 * (dim * dim + (dim if qkv_bias else 0) + 2 * dim) + dim * dim + dim + 2 * dim
    mlp = (dim * 4 * dim + 4 * dim + 8 * dim) + (4 * dim * dim + dim + 2 * dim)
    return sps + depth * (attn + mlp) + dim * classes + classes


# name, qkv bias, paper params (M). Paper values from transformers.md (Spikformer Tables 2-3; SDT via
# Spikingformer). The SDT-2-512 figure (10.28M) is the CIFAR-100 count: with a 100-class head.
PAPER_PARAMS = [
    ("spikformer_4_256", True, 10, 4.15),
    ("spikformer_2_384", True, 10, 5.76),
    ("spikformer_4_384", True, 10, 9.32),
    ("spikformer_8_384", False, 1000, 16.81),
    ("spikformer_6_512", False, 1000, 23.37),
    ("spikformer_8_512", False, 1000, 29.68),
    ("spikformer_10_512", False, 1000, 36.01),
    ("spikformer_8_768", False, 1000, 66.34),
    ("sdt_2_512", False, 100, 10.28),
    ("sdt_8_768", False, 1000, 66.34),
]


@pytest.mark.parametrize("name,qkv_bias,classes,paper", PAPER_PARAMS)
def test_parameter_counts_match_the_papers(name, qkv_bias, classes, paper):
    with torch.device("meta"):  # construction without allocating 66M weights
        model = xorsnn.create_model(name, num_classes=classes)
    n = sum(p.numel() for p in model.parameters())
    depth, dim = (int(s) for s in name.split("_")[1:])
    assert n == _expected_params(depth, dim, qkv_bias=qkv_bias, classes=classes)
    # the papers print 2 decimals but neither round nor truncate consistently (e.g. 8-384 = 16.816M
    # is printed 16.81, 10-512 = 36.005M is printed 36.01): agree to within 0.01M
    assert abs(n / 1e6 - paper) < 0.01, f"{name}: {n / 1e6:.4f}M vs paper {paper}M"


def test_imagenet_models_give_196_tokens_at_224():
    with torch.device("meta"):
        model = xorsnn.create_model("spikformer_8_384")
        tokens = model.patch_embed(torch.empty(1, 3, 224, 224), 1)
    assert tokens.shape == (1, 1, 196, 384)


def test_create_model_overrides_and_bad_arguments():
    m = xorsnn.create_model("spikformer_4_384", num_classes=100, T=2, similarity="axnor", a=0.1,
                            a_learnable=False, a_granularity="layer")
    assert m.a_values()["blocks.0.attn"] == pytest.approx([0.1])
    assert m.fc.out_features == 100 and m.T == 2
    bad = [
        ({"colour": "red"}, "valid arguments are"),
        ({"similarity": "cosine"}, "similarity must be one of"),
        ({"a": 0.3}, "only apply with similarity='axnor'"),
        ({"similarity": "axnor", "a": 0.0}, "open interval"),
        ({"similarity": "axnor", "a": 2.0, "a_learnable": False}, r"fixed a must be in \[0, 1\]"),
        ({"similarity": "axnor", "a_granularity": "channel"}, "a_granularity must be one of"),
        ({"similarity": "axnor", "a_learnable": "yes"}, "a_learnable must be a bool"),
        ({"attn_norm": "match_dot"}, "only applies to similarity='axnor'"),
        ({"similarity": "axnor", "attn_norm": "l2"}, "normalisation must be one of"),
        ({"attn_order": "diagonal"}, "order must be one of"),
        ({"attn_scale": 0}, "scale must be"),
        ({"num_heads": 7}, "divisible by num_heads"),
        ({"pooling": "012"}, "pooling must be 4 characters"),
        ({"T": 0}, "T must be a positive int"),
        ({"neuron": {"colour": 1}}, "unknown argument"),
    ]
    for kwargs, match in bad:
        with pytest.raises(ValueError, match=match):
            xorsnn.create_model("spikformer_4_384", **kwargs)
    with pytest.raises(ValueError, match="valid arguments are.*attn_norm"):
        xorsnn.create_model("sdt_2_512", attn_order="kv_first")  # SDSA has no ordering


@pytest.mark.parametrize(
    "x,match",
    [
        (torch.rand(3, 32, 32), r"\[B, 3, H, W\]"),
        (torch.rand(5, 2, 3, 32, 32), "time steps but the model runs T=2"),
        (torch.randint(0, 255, (2, 3, 32, 32)), "floating-point"),
        (torch.rand(2, 1, 32, 32), "in_channels=3"),
    ],
)
@pytest.mark.parametrize("cls", [Spikformer, SpikeDrivenTransformer])
def test_bad_input_raises_value_error(cls, x, match):
    with pytest.raises(ValueError, match=match):
        _small(cls)(x)
    with pytest.raises(ValueError, match="input_size"):
        _small(cls, input_size=28)(torch.rand(1, 3, 32, 32))


def test_attention_rejects_bad_token_shape():
    attn = SpikingSelfAttention(32, 4, neuron=SpikingNeuron, attn_neuron=SpikingNeuron)
    with pytest.raises(ValueError, match=r"\[T, B, N, C=32\]"):
        attn(torch.rand(2, 2, 10, 16))


@pytest.mark.parametrize(
    "cls,kw",
    [
        (Spikformer, {}),
        (Spikformer, {"similarity": "axnor"}),
        (SpikeDrivenTransformer, {"similarity": "axnor", "attn_norm": "match_dot"}),
    ],
)
def test_models_train_on_random_data(cls, kw):
    model = _small(cls, embed_dim=32, depth=1, num_classes=4, **kw)
    x, y = torch.rand(8, 3, 16, 16), torch.randint(0, 4, (8,))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    a0 = {k: list(v) for k, v in model.a_values().items()}
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x).mean(0), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses
    if kw.get("similarity") == "axnor":
        a1 = model.a_values()
        assert a1 != a0 and all(0 < v < 1 for vals in a1.values() for v in vals)


@pytest.mark.parametrize("kind,order", [("ssa", "kv_first"), ("ssa", "qk_first"), ("sdsa", None)])
@pytest.mark.parametrize("similarity,normalize", [("dot", "none"), ("axnor", "none"), ("axnor", "match_dot"),
                                                  ("axnor", "center")])
def test_attention_ops_equal_the_analysis_records(kind, order, similarity, normalize):
    """The static per-sample description and what xorsnn.analysis counts on real operands agree entry by entry."""
    coef = AXNORCoefficient(0.25) if similarity == "axnor" else None
    if kind == "ssa":
        attn = SpikingSelfAttention(32, 4, neuron=SpikingNeuron, attn_neuron=SpikingNeuron, order=order,
                                    similarity=similarity, a_coef=coef, normalize=normalize)
    else:
        attn = SpikeDrivenSelfAttention(32, 4, neuron=SpikingNeuron, attn_neuron=SpikingNeuron,
                                        similarity=similarity, a_coef=coef, normalize=normalize)
    x = (torch.rand(2, 3, 10, 32, generator=torch.Generator().manual_seed(0)) < 0.4).float()
    attn.capture_op_operands = True
    out = attn(x)
    records = extra_op_records(attn, (x,), out)  # the registered counter (xorsnn.analysis.attention_ops)
    counted = {r.name: r.macs / r.step_samples for r in records}
    static = {o["name"]: o["macs"] for o in attention_table(attn)}
    assert counted == static and len(records) == len(static)
    for o in attention_table(attn):
        assert set(o["operands"]) <= {"q", "k", "v", "attn"}


def test_learnable_a_keeps_autocast_dtype_and_gets_fp32_grad():
    """An fp32 learnable ``a`` must not promote bf16 attention (autocast) to fp32; integer scores stay exact."""
    from xorsnn.ops.axnor import axnor_attention, axnor_scores

    g = torch.Generator().manual_seed(0)
    q, k, v = ((torch.rand(2, 4, 8, 16, generator=g) > 0.5).float() for _ in range(3))
    a = torch.nn.Parameter(torch.full((4,), 0.25))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outs = [axnor_scores(q, k, a), axnor_attention(q, k, v, a), axnor_attention(q, k, v, a, order="qk_first")]
    assert all(o.dtype == torch.bfloat16 for o in outs)
    assert torch.equal(outs[0].float(), axnor_scores(q, k, a.detach()))  # small integers: exact in bf16
    sum(o.float().sum() for o in outs).backward()
    assert a.grad is not None and a.grad.dtype == torch.float32 and torch.isfinite(a.grad).all()
