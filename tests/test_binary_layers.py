import pytest
import torch
from torch import nn
from torch.nn import functional as F

from xorsnn.layers import (
    BinaryConv2d,
    BinaryConvLayers,
    BinaryLinear,
    BinaryLinearLayers,
    ConvLayers,
    LinearLayers,
    TimeBatchNorm2d,
    binarize_kit,
    binarize_weight,
    sign_ste,
)


def test_sign_of_zero_is_plus_one_and_values_are_pm1():
    w = torch.tensor([-2.0, -0.5, -0.0, 0.0, 1e-30, 0.5, 3.0])
    assert sign_ste(w).tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_ste_gradient_is_the_clip_indicator():
    w = torch.tensor([-1.5, -1.0, -0.999, -0.2, 0.0, 0.7, 1.0, 1.0001, 4.0], dtype=torch.float64, requires_grad=True)
    upstream = torch.arange(1.0, 10.0, dtype=torch.float64)
    (sign_ste(w) * upstream).sum().backward()
    indicator = (w.detach().abs() <= 1).double()
    assert torch.equal(w.grad, upstream * indicator)
    assert w.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 0.0, 0.0]


@pytest.mark.parametrize("scale", ["none", "alpha", "magnitude"])
def test_binary_conv_forward_equals_float_conv_with_binarised_weights(scale):
    torch.manual_seed(0)
    conv = BinaryConv2d(3, 5, 3, stride=2, padding=1, bias=False, scale=scale).double()
    if scale == "alpha":
        with torch.no_grad():
            conv.log_alpha.normal_(0, 0.5)
    x = torch.randn(4, 2, 3, 9, 9, dtype=torch.float64)  # [T, B, C, H, W]
    w = torch.where(conv.weight >= 0, 1.0, -1.0).double()
    if scale == "alpha":
        w = w * (torch.exp(conv.log_alpha) + 1e-8).view(1, -1, 1, 1)
    elif scale == "magnitude":
        w = w * conv.weight.abs().mean(dim=(1, 2, 3)).view(-1, 1, 1, 1)
    ref = F.conv2d(x.flatten(0, 1), w.detach(), stride=2, padding=1).unflatten(0, (4, 2))
    torch.testing.assert_close(conv(x), ref, rtol=1e-12, atol=1e-12)
    assert conv(x[0]).shape == ref[0].shape  # 4-D input works too


def test_binary_linear_forward_on_time_first_input():
    lin = BinaryLinear(6, 4, scale="alpha").double()
    with torch.no_grad():
        lin.log_alpha.normal_()
    x = torch.randn(3, 2, 6, dtype=torch.float64)
    w = torch.where(lin.weight >= 0, 1.0, -1.0) * (torch.exp(lin.log_alpha) + 1e-8).view(1, -1)
    torch.testing.assert_close(lin(x), x @ w.detach().T + lin.bias.detach())


def test_alpha_is_an_input_channel_scale_and_folds_into_the_input():
    """(alpha ⊙_in sign W) * x == sign W * (alpha ⊙ x): the exact fold of ReverB Eq. 18."""
    conv = BinaryConv2d(4, 6, 3, padding=1, bias=False, scale="alpha").double()
    with torch.no_grad():
        conv.log_alpha.normal_()
    assert conv.log_alpha.shape == (4,) and conv.alpha_axis == "input"
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    scaled = x * conv.alpha.view(1, -1, 1, 1)
    torch.testing.assert_close(conv(x), F.conv2d(scaled, conv.sign_weight(), padding=1), rtol=1e-12, atol=1e-12)


def test_alpha_stays_positive_under_aggressive_updates():
    torch.manual_seed(0)
    conv = BinaryConv2d(3, 3, 1, bias=False, scale="alpha")
    raw = torch.ones(3, requires_grad=True)  # what an unconstrained amplitude would do
    opt = torch.optim.SGD([*conv.parameters(), raw], lr=20.0)
    x = torch.rand(8, 3, 4, 4)
    w = torch.where(conv.weight >= 0, 1.0, -1.0).detach()
    for _ in range(10):  # shrink the output energy: pushes every amplitude towards 0
        opt.zero_grad()
        (conv(x) ** 2).mean().backward()
        (F.conv2d(x, w * raw.view(1, -1, 1, 1)) ** 2).mean().backward()
        opt.step()
    assert float(raw.detach().min()) < 0, "the unconstrained amplitude overshoots below 0"
    assert float(conv.alpha.detach().min()) > 0
    with torch.no_grad():
        conv.log_alpha.fill_(-1e4)  # exp underflows to 0: the floor keeps alpha > 0
    assert float(conv.alpha.detach().min()) > 0


def test_magnitude_scale_is_constant_in_backward():
    torch.manual_seed(1)
    w = (torch.randn(3, 2, 3, 3, dtype=torch.float64) * 0.8).requires_grad_()
    upstream = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    (binarize_weight(w, "magnitude") * upstream).sum().backward()
    a = w.detach().abs().mean(dim=(1, 2, 3)).view(-1, 1, 1, 1)
    assert torch.equal(w.grad, upstream * a * (w.detach().abs() <= 1).double())


def test_output_channel_scale_is_cancelled_by_train_mode_bn_but_input_alpha_is_not():
    """Why alpha is declared on the input channel (binary-weight.md §1.6 item 4)."""
    torch.manual_seed(0)
    x = torch.randn(16, 4, 6, 6)
    bn = nn.BatchNorm2d(5, affine=False)
    conv = BinaryConv2d(4, 5, 3, padding=1, bias=False, scale="alpha")
    with torch.no_grad():
        conv.log_alpha.normal_()
    target = torch.randn(16, 5, 6, 6)
    out_scale = torch.ones(5, requires_grad=True)
    z = F.conv2d(x, sign_ste(conv.weight) * conv.alpha.view(1, -1, 1, 1), padding=1)
    loss = ((bn(z * out_scale.view(1, -1, 1, 1)) - target) ** 2).mean()
    loss.backward()
    assert out_scale.grad.abs().max() < 1e-5
    assert conv.log_alpha.grad.abs().max() > 1e-3


def test_binary_kits_and_errors():
    kit = binarize_kit(ConvLayers(norm_cls=TimeBatchNorm2d), "alpha")
    assert isinstance(kit, BinaryConvLayers) and kit.scale == "alpha"
    c = kit.conv3x3(4, 8, 2)
    assert isinstance(c, BinaryConv2d) and c.stride == (2, 2) and c.scale == "alpha" and c.bias is None
    assert isinstance(binarize_kit(LinearLayers(), "none"), BinaryLinearLayers)
    plain = ConvLayers(conv_cls=BinaryConv2d).conv1x1(3, 4)  # usable as a conv_cls directly
    assert isinstance(plain, BinaryConv2d) and plain.scale == "none"
    with pytest.raises(ValueError, match="scale must be one of"):
        BinaryConv2d(3, 3, 3, scale="xnor")
    with pytest.raises(ValueError, match="already binary"):
        binarize_kit(kit)
    with pytest.raises(ValueError, match="floating-point"):
        sign_ste(torch.tensor([1, -1]))
