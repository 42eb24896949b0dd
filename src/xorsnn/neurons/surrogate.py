"""Surrogate gradients for the Heaviside spike function.

Every surrogate's forward pass is the exact Heaviside step ``Θ(x) = 1[x >= 0]`` where
``x = u - V_th``; only the backward pass differs. Each surrogate is an object with a parameter
and three views of the same smooth function ``σ``:

* ``surrogate(x)``      -- Heaviside forward, ``σ'(x)`` backward (an autograd function);
* ``surrogate.primitive(x)`` -- the smooth function ``σ`` itself (differentiable by autograd);
* ``surrogate.derivative(x)`` -- ``σ'(x)`` in closed form (used by the hand-written BPTT).

For the fused CPU neuron kernels every surrogate class also carries a ``kernel_id`` and
``scalar_derivative(x, param)``: the same ``σ'`` on one float, written with ``math`` only so that
numba compiles it (``xorsnn.neurons._cpu_kernels`` dispatches on ``kernel_id``). A subclass
without them runs on the torch path only.

The tests check ``derivative`` against finite differences of ``primitive`` and
``scalar_derivative`` against ``derivative``.

==========  ===========  =======================================================
name        parameter    derivative ``σ'(x)``
==========  ===========  =======================================================
atan        alpha = 2    ``alpha / (2 * (1 + (pi/2 * alpha * x)**2))``
sigmoid     alpha = 4    ``alpha * s * (1 - s)`` with ``s = sigmoid(alpha * x)``
triangle    gamma = 1    ``max(0, gamma - |x|) / gamma**2``
rectangle   width = 1    ``1[|x| < width / 2] / width``
==========  ===========  =======================================================
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = [
    "Surrogate",
    "ATan",
    "Sigmoid",
    "Triangle",
    "Rectangle",
    "get_surrogate",
    "SURROGATES",
]


class _HeavisideSurrogate(torch.autograd.Function):
    """Heaviside forward, ``surrogate.derivative`` backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, surrogate: Surrogate) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        (x,) = ctx.saved_tensors
        grad_x = grad_out * ctx.surrogate.derivative(x) if ctx.needs_input_grad[0] else None
        return grad_x, None


class Surrogate:
    """Base class: Heaviside forward with the derivative of a smooth step as its gradient.

    Subclasses implement :meth:`primitive` (the smooth step ``σ``) and :meth:`derivative` (``σ'``).
    Instances are immutable, hashable and comparable, so a neuron's configuration can be printed
    and compared.
    """

    name: str = "surrogate"
    param_name: str = "alpha"
    #: id of :meth:`scalar_derivative` in the fused kernels' dispatch; ``None``: torch path only.
    kernel_id: int | None = None

    def __init__(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(
                f"{type(self).__name__}: {self.param_name} must be a finite number > 0, got {value!r}"
            )
        self._value = value

    @property
    def param(self) -> float:
        """The surrogate's single shape parameter (``alpha``, ``gamma`` or ``width``)."""
        return self._value

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Spike function: ``1[x >= 0]`` with gradient ``σ'(x)``. ``x`` is ``u - V_th``, any shape."""
        return _HeavisideSurrogate.apply(x, self)

    def primitive(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """The smooth step ``σ(x)`` whose derivative is used as the surrogate gradient."""
        raise NotImplementedError

    def derivative(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """``σ'(x)`` in closed form, same shape and dtype as ``x``."""
        raise NotImplementedError

    @staticmethod
    def scalar_derivative(x: float, p: float) -> float:  # pragma: no cover - abstract
        """``σ'(x)`` for one float ``x`` and the parameter ``p`` (``math`` only: numba compiles it)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.param_name}={self._value:g})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._value == other._value  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._value))


class ATan(Surrogate):
    """Arc-tangent surrogate (SpikingJelly's ``ATan``): ``σ(x) = atan(pi/2 * alpha * x) / pi + 1/2``."""

    name = "atan"
    param_name = "alpha"
    kernel_id = 0

    def __init__(self, alpha: float = 2.0) -> None:
        super().__init__(alpha)

    @property
    def alpha(self) -> float:
        return self._value

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        return torch.atan(math.pi / 2 * self._value * x) / math.pi + 0.5

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        a = self._value
        return a / (2 * (1 + (math.pi / 2 * a * x) ** 2))

    @staticmethod
    def scalar_derivative(x: float, p: float) -> float:
        return p / (2.0 * (1.0 + (math.pi / 2.0 * p * x) ** 2))

class Sigmoid(Surrogate):
    """Sigmoid surrogate (SpikingJelly's default): ``σ(x) = sigmoid(alpha * x)``."""

    name = "sigmoid"
    param_name = "alpha"
    kernel_id = 1

    def __init__(self, alpha: float = 4.0) -> None:
        super().__init__(alpha)

    @property
    def alpha(self) -> float:
        return self._value

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self._value * x)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        # s * (1 - s) as sigmoid(y) * sigmoid(-y): no cancellation in 1 - s where s is close to 1
        y = self._value * x
        return self._value * torch.sigmoid(y) * torch.sigmoid(-y)

    @staticmethod
    def scalar_derivative(x: float, p: float) -> float:
        z = math.exp(-abs(p * x))  # sigma'(y) = e^-|y| / (1 + e^-|y|)^2: no overflow
        return p * z / ((1.0 + z) * (1.0 + z))

class Triangle(Surrogate):
    """Triangle surrogate: ``σ'(x) = max(0, gamma - |x|) / gamma**2`` (area 1).

    With ``gamma = V_th = 1`` this is SLTT's / SpikingJelly's ``PiecewiseQuadratic(alpha=1)`` and
    SEI-BWSNN's "triangle with gamma = V_th".
    """

    name = "triangle"
    param_name = "gamma"
    kernel_id = 2

    def __init__(self, gamma: float = 1.0) -> None:
        super().__init__(gamma)

    @property
    def gamma(self) -> float:
        return self._value

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        g = self._value
        xc = x.clamp(-g, g)
        # integral of the triangle from -g to x: piecewise quadratic, 0 below -g and 1 above g
        left = (xc + g) ** 2 / (2 * g * g)
        right = 1 - (g - xc) ** 2 / (2 * g * g)
        return torch.where(xc < 0, left, right)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        g = self._value
        return (g - x.abs()).clamp_min(0) / (g * g)

    @staticmethod
    def scalar_derivative(x: float, p: float) -> float:
        return max(0.0, p - abs(x)) / (p * p)

class Rectangle(Surrogate):
    """Rectangular (boxcar) surrogate: ``σ'(x) = 1[|x| < width/2] / width`` (area 1).

    ``width = 1`` is MS-ResNet's / tdBN's ``1[|u - V_th| < 0.5]`` with ``V_th = 0.5``.
    """

    name = "rectangle"
    param_name = "width"
    kernel_id = 3

    def __init__(self, width: float = 1.0) -> None:
        super().__init__(width)

    @property
    def width(self) -> float:
        return self._value

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        return (x / self._value + 0.5).clamp(0, 1)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        w = self._value
        return (x.abs() < w / 2).to(x.dtype) / w

    @staticmethod
    def scalar_derivative(x: float, p: float) -> float:
        return 1.0 / p if abs(x) < p / 2 else 0.0

SURROGATES: dict[str, type[Surrogate]] = {
    cls.name: cls for cls in (ATan, Sigmoid, Triangle, Rectangle)
}


def get_surrogate(spec: str | Surrogate | dict[str, Any] | None = "atan", **params: float) -> Surrogate:
    """Build a surrogate from a name, a dict or an existing object.

    >>> get_surrogate("triangle", gamma=0.5)
    Triangle(gamma=0.5)
    >>> get_surrogate({"name": "atan", "alpha": 4})
    ATan(alpha=4)

    Raises ``ValueError`` naming the valid surrogates for an unknown name, and naming the valid
    parameter for a wrong keyword.
    """
    if isinstance(spec, Surrogate):
        if params:
            raise ValueError("surrogate: parameters cannot be given together with a Surrogate object")
        return spec
    if spec is None:
        spec = "atan"
    if isinstance(spec, dict):
        spec = dict(spec)
        name = spec.pop("name", None)
        if name is None:
            raise ValueError(f"surrogate: a dict spec needs a 'name' key, got {spec!r}")
        params = {**spec, **params}
        spec = name
    if not isinstance(spec, str):
        raise ValueError(f"surrogate: expected a name, dict or Surrogate, got {type(spec).__name__}")
    key = spec.strip().lower()
    if key not in SURROGATES:
        raise ValueError(f"surrogate: unknown name {spec!r}; valid names are {sorted(SURROGATES)}")
    cls = SURROGATES[key]
    bad = set(params) - {cls.param_name}
    if bad:
        raise ValueError(
            f"surrogate {key!r}: unknown parameter(s) {sorted(bad)}; its parameter is {cls.param_name!r}"
        )
    return cls(**params)
