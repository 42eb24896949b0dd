import math

import pytest
import torch

from xorsnn.neurons import ATan, Rectangle, Sigmoid, Triangle, get_surrogate

SURROGATES = [
    ATan(2.0), ATan(5.0), Sigmoid(4.0), Sigmoid(1.5), Triangle(1.0), Triangle(0.3), Rectangle(1.0), Rectangle(0.4)
]


def _smooth_points(s):
    """Points away from the kinks of piecewise surrogates (finite differences are exact elsewhere)."""
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    kinks = {Triangle: lambda p: [-p, 0.0, p], Rectangle: lambda p: [-p / 2, p / 2]}
    for cls, fn in kinks.items():
        if isinstance(s, cls):
            for k in fn(s.param):
                x = x[(x - k).abs() > 1e-3]
    return x


@pytest.mark.parametrize("s", SURROGATES, ids=repr)
def test_forward_is_heaviside(s):
    x = torch.tensor([-2.0, -1e-6, 0.0, 1e-6, 3.0])
    assert torch.equal(s(x), torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0]))


@pytest.mark.parametrize("s", SURROGATES, ids=repr)
def test_derivative_matches_finite_difference_of_primitive(s):
    x = _smooth_points(s)
    h = 1e-6
    fd = (s.primitive(x + h) - s.primitive(x - h)) / (2 * h)
    torch.testing.assert_close(s.derivative(x), fd, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("s", SURROGATES, ids=repr)
def test_backward_uses_derivative(s):
    x = _smooth_points(s).requires_grad_()
    s(x).sum().backward()
    torch.testing.assert_close(x.grad, s.derivative(x.detach()))


@pytest.mark.parametrize("s", SURROGATES, ids=repr)
def test_primitive_is_a_step(s):
    x = torch.tensor([-50.0, 50.0], dtype=torch.float64)
    p = s.primitive(x)
    assert p[0] < 1e-2 and p[1] > 1 - 1e-2
    # the surrogate gradient integrates to 1 (the size of the Heaviside jump)
    grid = torch.linspace(-60, 60, 2_000_001, dtype=torch.float64)
    area = torch.trapezoid(s.derivative(grid), grid).item()
    assert area == pytest.approx(1.0, abs=2e-2)


def test_closed_forms():
    x = torch.tensor([-1.5, -0.5, 0.0, 0.2, 2.0], dtype=torch.float64)
    g = 0.8
    expected = torch.clamp(g - x.abs(), min=0) / g**2
    torch.testing.assert_close(Triangle(g).derivative(x), expected)
    torch.testing.assert_close(Rectangle(1.0).derivative(x), (x.abs() < 0.5).double())
    a = 2.0
    torch.testing.assert_close(ATan(a).derivative(x), a / (2 * (1 + (math.pi / 2 * a * x) ** 2)))


def test_get_surrogate_specs_and_errors():
    assert get_surrogate("triangle", gamma=0.5) == Triangle(0.5)
    assert get_surrogate({"name": "atan", "alpha": 4}) == ATan(4)
    assert get_surrogate(None) == ATan(2.0)
    with pytest.raises(ValueError, match="valid names"):
        get_surrogate("relu")
    with pytest.raises(ValueError, match="its parameter is 'gamma'"):
        get_surrogate("triangle", alpha=1.0)
    with pytest.raises(ValueError, match="alpha must be"):
        ATan(-1.0)
