"""Model registry: build any registered network by name, timm-style.

>>> import xorsnn
>>> model = xorsnn.create_model("xoresnet19", num_classes=10, T=4)
>>> xorsnn.list_models("sew_resnet*")[:3]
['sew_resnet101', 'sew_resnet110', 'sew_resnet152']

Every registered name is ``<family prefix><depth>[_cifar]``:

===================  ==========================================================================
prefix               family
===================  ==========================================================================
``spiking_resnet``   Spiking ResNet (``SN(F(x) + x)``)
``sew_resnet``       SEW-ResNet (``connect="add"`` by default; ``"and"``, ``"iand"``)
``ms_resnet``        MS-ResNet (membrane shortcut)
``oa_resnet``        OR-ADD shortcut only (XOResNet without XOR meta-residuals)
``xoresnet``         XOResNet-style (OA shortcut + XOR meta-residuals)
===================  ==========================================================================

================================  ======================================================  =========
depth suffix                      layout                                                  classes
================================  ======================================================  =========
18, 34 / 50, 101, 152             ImageNet: 7x7 stem, basic / bottleneck, widths 64-512   1000
18_cifar                          3x3 stem, no max-pool, [2,2,2,2] x 64-512               10
19                                tdBN ResNet-19: 3x3 stem, [3,3,2] x 128-512, FC-256     10
8, 14, 20, 32, 44, 56, 110, 482   He et al. CIFAR 6n+2: [n,n,n] x 16/32/64                10
================================  ======================================================  =========

Other keyword arguments of :class:`~xorsnn.models.resnet.SpikingResNet` (``T``, ``in_channels``,
``input_size``, ``neuron``, ``stem``, block options such as ``connect`` or ``xor_mode``) can be
passed to :func:`create_model` to override the registered defaults.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..blocks.families import FAMILIES, BlockFamily
from .resnet import SpikingResNet

__all__ = ["ModelEntry", "register_model", "register_alias", "register_family_models", "create_model", "list_models",
           "model_info"]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder, default arguments and a one-line description."""

    name: str
    builder: Callable[..., nn.Module]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def defined_in(self) -> str:
        """``path:line`` of the code that defines what this name builds: the block family's basic block for a
        :class:`~xorsnn.models.resnet.SpikingResNet` entry, else the builder (``xorsnn list -v`` prints it)."""
        family = self.defaults.get("family") if self.builder is SpikingResNet else None
        target = FAMILIES[family].basic if family in FAMILIES else self.builder
        target = inspect.unwrap(target)
        try:
            path, line = inspect.getsourcefile(target), inspect.getsourcelines(target)[1]
        except (OSError, TypeError):  # pragma: no cover - builders without source (C extensions)
            return getattr(target, "__module__", "?")
        root = Path(__file__).resolve().parents[2]
        rel = Path(path).resolve()
        return f"{rel.relative_to(root) if rel.is_relative_to(root) else rel}:{line}"


_MODELS: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}  # deprecated name -> current name (kept for one release)


def register_model(
    name: str, builder: Callable[..., nn.Module] | None = None, *, description: str = "", **defaults: Any
) -> Any:
    """Register ``builder(**defaults, **overrides)`` under ``name`` (``ValueError`` if taken); returns the entry.

    Without ``builder`` it is a decorator, timm-style, so the name sits on its definition::

        @register_model("my_snn", description="...")
        def my_snn(*, num_classes: int = 10, T: int = 4) -> nn.Module: ...
    """
    if builder is None:
        def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
            register_model(name, fn, description=description or (fn.__doc__ or "").strip().split("\n")[0],
                           **defaults)
            return fn

        return decorate
    if name in _MODELS:
        raise ValueError(f"model name {name!r} is already registered")
    entry = ModelEntry(name, builder, dict(defaults), description)
    _MODELS[name] = entry
    return entry


def register_alias(old: str, new: str) -> None:
    """Keep ``old`` working as a deprecated name of the registered model ``new`` (a ``FutureWarning``
    when used; not listed by :func:`list_models`)."""
    if new not in _MODELS:
        raise ValueError(f"alias target {new!r} is not a registered model")
    if old in _MODELS or old in _ALIASES:
        raise ValueError(f"model name {old!r} is already registered")
    _ALIASES[old] = new


def resolve_name(name: str) -> str:
    """The current name for ``name`` (a deprecated alias warns once per call site)."""
    new = _ALIASES.get(name)
    if new is None:
        return name
    warnings.warn(f"model name {name!r} is deprecated: the same network is now {new!r}; the old name will be "
                  "removed in the next release", FutureWarning, stacklevel=3)
    return new


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered models matching the shell-style ``pattern`` (e.g. ``"xoresnet*"``)."""
    return sorted(n for n in _MODELS if fnmatch.fnmatchcase(n, pattern))


def model_info(name: str) -> ModelEntry:
    """The registry entry of ``name`` (``ValueError`` listing close matches if unknown; a deprecated
    alias gives its new name's entry, with a ``FutureWarning``)."""
    name = resolve_name(name)
    if name not in _MODELS:
        close = difflib.get_close_matches(str(name), list(_MODELS), n=5, cutoff=0.5)
        if close:  # the suggestions are the answer; the full list would bury them
            raise ValueError(f"unknown model {name!r}. Did you mean {close}? ({len(_MODELS)} models are registered: "
                             "`xorsnn list` or xorsnn.list_models())")
        raise ValueError(
            f"unknown model {name!r}. {len(_MODELS)} models are registered: "
            f"{', '.join(list_models())} (see xorsnn.list_models())"
        )
    return _MODELS[name]


def _accepted_kwargs(builder: Callable[..., nn.Module]) -> set[str] | None:
    """The keyword arguments ``builder`` takes; a class whose ``__init__`` passes ``**kwargs`` on
    takes its base classes' too. ``None`` when a plain function takes ``**kwargs`` (it validates them)."""
    chain = [c.__init__ for c in builder.__mro__ if "__init__" in vars(c)] if isinstance(builder, type) else [builder]
    names: set[str] = set()
    for fn in chain:
        params = inspect.signature(fn).parameters
        names |= {n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            return names - {"self"}
    return None


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _size(v: Any) -> bool:
    if _positive_int(v):
        return True
    return isinstance(v, (list, tuple)) and len(v) == 2 and all(_positive_int(s) for s in v)


def _fraction(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and 0 <= v < 1


# strict checks of common constructor arguments: (test, expected value); ``None`` is allowed where noted
_ARG_CHECKS: dict[str, tuple[Callable[[Any], bool], str, bool]] = {
    "num_classes": (_positive_int, "a positive integer", False),
    "T": (_positive_int, "a positive integer", False),
    "in_channels": (_positive_int, "a positive integer", False),
    "stem_width": (_positive_int, "a positive integer or None", True),
    "head_hidden": (_positive_int, "a positive integer or None", True),
    "zero_init_residual": (lambda v: isinstance(v, bool), "true, false or None", True),
    "input_size": (_size, "a positive integer or an (H, W) pair of positive integers, or None", True),
    "widths": (lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(_positive_int(w) for w in v),
               "a non-empty list of positive integers", False),
    "dropout": (_fraction, "a number in [0, 1)", False),
}


def _check_arg_types(name: str, kwargs: dict[str, Any]) -> None:
    """``ValueError`` naming the first argument of the wrong type (``"no"`` is not a bool, ``"28"`` not a size)."""
    for key, value in kwargs.items():
        check = _ARG_CHECKS.get(key)
        if check is None:
            continue
        test, expected, none_ok = check
        if value is None and none_ok:
            continue
        if not test(value):
            raise ValueError(f"{name}: argument {key} must be {expected}, got {value!r}")


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: a name from :func:`list_models`.
        **overrides: arguments replacing the registered defaults, e.g. ``num_classes=100``,
            ``T=6``, ``in_channels=1``, ``neuron={"tau": 1.5}``, ``xor_mode="output"``.

    Returns:
        The model (``nn.Module``), output ``[T, B, num_classes]``.

    Raises:
        ValueError: unknown name (lists the registered ones) or invalid arguments.
    """
    entry = model_info(name)
    valid = _accepted_kwargs(entry.builder)
    if valid is not None:
        bad = set(overrides) - valid
        if bad:
            raise ValueError(f"{name}: unknown argument(s) {sorted(bad)}; valid arguments are {sorted(valid)}")
    fixed = {"family", "layers", "block"} & set(overrides)
    if fixed and entry.builder is SpikingResNet:
        raise ValueError(
            f"{name}: {sorted(fixed)} define the registered architecture and cannot be overridden; "
            "build SpikingResNet(...) directly for a custom layout"
        )
    _check_arg_types(name, overrides)
    kwargs = {**entry.defaults, **overrides}
    try:
        return entry.builder(**kwargs)
    except TypeError as exc:  # a wrong argument type deep in a constructor: name the model
        raise ValueError(f"{name}: invalid arguments {sorted(overrides)}: {exc}") from exc


# -- registrations -------------------------------------------------------------------------------
_IMAGENET = {
    "18": ("basic", [2, 2, 2, 2]),
    "34": ("basic", [3, 4, 6, 3]),
    "50": ("bottleneck", [3, 4, 6, 3]),
    "101": ("bottleneck", [3, 4, 23, 3]),
    "152": ("bottleneck", [3, 8, 36, 3]),
}
_CIFAR_6N2 = (8, 14, 20, 32, 44, 56, 110, 482)
# 6n+2 nets up to this depth default to ``zero_init_residual=False``: at convergence (Fashion-MNIST,
# ResNet-14, T = 2, 15 epochs) zero-init cost XOResNet 0.75 and SEW-ResNet 0.85 points of final test
# accuracy. Deeper nets keep their family's zero-init: without it XOResNet's gradient at initialisation
# grows with depth (norm 24 at 44 layers, 3e6 at 110, non-finite at 482; docs/findings.md).
SHALLOW_ZERO_INIT_OFF = 20


def cifar_6n2_layout(depth: int) -> dict[str, Any]:
    """He et al.'s CIFAR ResNet-``depth`` (``depth = 6n + 2``): 3x3 stem, ``[n, n, n]`` x 16/32/64, 10 classes."""
    n = (depth - 2) // 6
    return {"layers": [n, n, n], "widths": [16, 32, 64], "stem": "cifar", "num_classes": 10}


def resnet19_layout() -> dict[str, Any]:
    """The tdBN ResNet-19 of every ``*19`` model: 3x3 stem 128, ``[3, 3, 2]`` x 128/256/512, FC-256 head."""
    return {"layers": [3, 3, 2], "widths": [128, 256, 512], "stem": "cifar", "head_hidden": 256, "num_classes": 10}


def register_family_models(family: BlockFamily) -> list[str]:
    """Register ``family``'s networks at every standard layout (the tables in the module docstring;
    the bottleneck depths only for a family that has bottleneck blocks) under
    ``<family.prefix><depth>[_cifar]``; returns the new names."""
    prefix, title, name = family.prefix, family.title, family.name
    if not prefix:
        raise ValueError(f"family {name!r} has no model prefix")
    before = set(_MODELS)
    for depth, (block, layers) in _IMAGENET.items():
        if block == "bottleneck" and family.bottleneck is None:
            continue
        register_model(
            f"{prefix}{depth}",
            SpikingResNet,
            description=f"{title}-{depth}, ImageNet layout (7x7 stem), {block} blocks {layers}",
            family=name,
            layers=layers,
            block=block,
            stem="imagenet",
            num_classes=1000,
        )
    register_model(
        f"{prefix}18_cifar",
        SpikingResNet,
        description=f"{title}-18, CIFAR layout (3x3 stem, no max-pool), basic blocks [2,2,2,2]",
        family=name,
        layers=[2, 2, 2, 2],
        stem="cifar",
        num_classes=10,
    )
    register_model(
        f"{prefix}19",
        SpikingResNet,
        description=f"{title}-19 (tdBN layout): 3x3 stem 128, [3,3,2] x 128/256/512, FC-256 head",
        family=name,
        **resnet19_layout(),
    )
    for depth in _CIFAR_6N2:
        shallow = {"zero_init_residual": False} if depth <= SHALLOW_ZERO_INIT_OFF else {}
        register_model(
            f"{prefix}{depth}",
            SpikingResNet,
            description=f"{title}-{depth}, CIFAR 6n+2 family (n={(depth - 2) // 6}), widths 16/32/64"
            + (", zero-init off" if shallow else ""),
            family=name,
            **cifar_6n2_layout(depth),
            **shallow,
        )
    return sorted(set(_MODELS) - before)


for _family in FAMILIES.values():
    if _family.prefix:
        register_family_models(_family)
