"""One parametrised spiking ResNet skeleton; the residual block family is an argument.

``SpikingResNet(family="xor", layers=[2, 2, 2, 2])`` is XOResNet-18; ``family="sew"`` gives
SEW-ResNet-18 with the same stem, stages and head, so families are compared like for like.

Layout::

    stem:   ImageNet  conv7x7/2 - BN - [SN] - maxpool3/2     (MS: no max-pool, first stage strided)
            CIFAR     conv3x3/1 - BN - [SN]
            cifar3    3 x [conv3x3/1 - BN - SN] - avgpool2      (ReverB's ResNet-20, convention (b))
    stages: len(layers) stages of blocks, widths ``widths``, stride 2 at the first block of each
            stage after the first (ImageNet MS layout: every stage)
    head:   [BN - SN] - global average pool - [FC - SN] - FC -> per-time-step logits [T, B, K]

``[SN]`` is present or not according to the family (see :mod:`xorsnn.blocks.families`).

Binary weights and real-valued spikes are options of every family: ``weights="binary"`` builds
the blocks' convolutions (and the cifar3 stem's 2nd/3rd convs) as sign-binarised layers
(:mod:`xorsnn.layers.binary`, ``binary_scale`` in ``{"none", "alpha", "magnitude"}``); the first
conv, the optional hidden FC and the classifier stay full precision. ``spikes="real"`` makes
every neuron emit ``U * 1[U >= V_th]`` (ReverB-SNN), keeping the family's other neuron constants.

Static images ``[B, C, H, W]`` are encoded directly: the stem's conv and BN run once and their
output is repeated over ``T`` (identical to repeating the image, at 1/T of the stem cost).
Sequences ``[T, B, C, H, W]`` (e.g. DVS frames) are taken as they are.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .._checks import check_choice
from ..blocks.families import BlockFamily, get_family
from ..blocks.stage import ResidualStage
from ..layers import CONV, LayerKit, TimeAdaptiveAvgPool2d, TimeAvgPool2d, TimeMaxPool2d, binarize_kit
from ..layers.binary import BINARY_SCALES
from ..neurons import neuron_factory

__all__ = ["SpikingResNet", "check_image_input", "WEIGHTS"]

STEMS = ("imagenet", "cifar", "cifar3")
WEIGHTS = ("float", "binary")


def check_image_input(
    x: Any, *, T: int, in_channels: int, input_size: tuple[int, int] | None, name: str = "x"
) -> None:
    """Validate an image batch for a spiking CNN; raises ``ValueError`` naming ``name`` and the expected shape."""
    expected = f"[B, {in_channels}, H, W] (static image) or [T={T}, B, {in_channels}, H, W] (sequence)"
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape {expected}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(
            f"{name} must be a floating-point tensor, got dtype {x.dtype}; convert images with x.float() "
            "(and scale/normalise them) before calling the model"
        )
    if x.dim() not in (4, 5):
        raise ValueError(f"{name} must have shape {expected}, got {tuple(x.shape)} ({x.dim()} dims)")
    if x.dim() == 5 and x.shape[0] != T:
        if x.shape[1] == T:
            raise ValueError(
                f"{name} has {x.shape[0]} time steps but the model runs T={T}, and its shape {tuple(x.shape)} looks "
                f"batch-first [B, T, C, H, W]; xorsnn is time-first, pass x.transpose(0, 1) ([T={T}, B, C, H, W])"
            )
        raise ValueError(
            f"{name} has {x.shape[0]} time steps but the model runs T={T}: pass [T={T}, B, C, H, W], a static "
            f"[B, C, H, W] image, or set model.T = {x.shape[0]}"
        )
    c = x.shape[-3]
    if c != in_channels:
        raise ValueError(
            f"{name} has {c} channels but the model's stem expects in_channels={in_channels}: "
            f"expected shape {expected}, got {tuple(x.shape)}"
        )
    if input_size is not None and tuple(x.shape[-2:]) != tuple(input_size):
        raise ValueError(
            f"{name} has spatial size {tuple(x.shape[-2:])} but the model was built with input_size={tuple(input_size)}"
        )
    if x.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")


def check_positive_ints(**values: Any) -> None:
    """``ValueError`` naming the first of ``values`` that is not a positive int (a bool is not one)."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def as_size(input_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``input_size`` (an int or an ``(H, W)`` pair, or ``None``) as ``(H, W)``; ``ValueError`` otherwise."""
    if input_size is None:
        return None
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        input_size = (input_size, input_size)
    try:
        size = tuple(int(s) for s in input_size)  # type: ignore[union-attr]
    except TypeError:
        size = ()
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"input_size must be an int or (H, W) with positive entries, got {input_size!r}")
    return size  # type: ignore[return-value]


class SpikingResNet(nn.Module):
    """Spiking ResNet of any block family.

    Args:
        family: ``"spiking"``, ``"sew"``, ``"ms"``, ``"oa"``, ``"xor"`` or a :class:`BlockFamily`.
        layers: number of blocks per stage, e.g. ``[2, 2, 2, 2]``.
        block: ``"basic"`` or ``"bottleneck"``.
        widths: base width of each stage (bottlenecks output ``4 * width``).
        stem: ``"imagenet"`` (conv7x7/2 + max-pool), ``"cifar"`` (conv3x3/1) or ``"cifar3"``
            (three conv3x3/1 - BN - SN units, then avg-pool 2).
        stem_width: stem output channels (default ``widths[0]``).
        num_classes: classifier outputs ``K``.
        T: time steps; static images are repeated ``T`` times.
        in_channels: image channels (1 for Fashion-MNIST).
        input_size: optional ``(H, W)`` the model accepts; checked on every call when given.
        neuron: overrides of the family's neuron spec, e.g. ``{"tau": 1.5, "surrogate": "sigmoid"}``.
        zero_init_residual: zero the last BN of each branch (family default when ``None``).
        head_hidden: width of an extra ``FC - SN`` layer before the classifier (ResNet-19 uses 256).
        dropout: dropout before the classifier.
        layer_kit: builds the blocks' weight/norm layers (e.g. binary-weight layers).
        weights: ``"float"`` or ``"binary"`` (``binarize_kit(layer_kit, binary_scale)`` builds the
            blocks' convolutions; first conv and classifier stay full precision).
        binary_scale: ``"none"``, ``"alpha"`` (learnable, per input channel) or ``"magnitude"``
            (``mean|W|`` per output channel); only with ``weights="binary"``.
        spikes: ``"binary"`` or ``"real"`` (real-valued spikes ``U * 1[U >= V_th]`` in every neuron).
        **block_kwargs: family options, e.g. ``connect="iand"`` (SEW), ``or_form="max"`` (OA/XOR),
            ``xor_mode="output"`` (XOR). Unknown options raise ``ValueError``.

    Shapes:
        input ``[B, C, H, W]`` or ``[T, B, C, H, W]``; output logits ``[T, B, num_classes]``.
    """

    def __init__(
        self,
        family: str | BlockFamily,
        layers: Sequence[int],
        *,
        block: str = "basic",
        widths: Sequence[int] = (64, 128, 256, 512),
        stem: str = "imagenet",
        stem_width: int | None = None,
        num_classes: int = 1000,
        T: int = 4,
        in_channels: int = 3,
        input_size: int | Sequence[int] | None = None,
        neuron: Mapping[str, Any] | None = None,
        zero_init_residual: bool | None = None,
        head_hidden: int | None = None,
        dropout: float = 0.0,
        layer_kit: LayerKit = CONV,
        weights: str = "float",
        binary_scale: str = "none",
        spikes: str = "binary",
        **block_kwargs: Any,
    ) -> None:
        super().__init__()
        fam = get_family(family)
        block_cls = fam.block(block)
        self._check_args(layers, widths, stem, num_classes, T, in_channels, dropout, head_hidden)
        check_choice("weights", weights, WEIGHTS)
        check_choice("binary_scale", binary_scale, BINARY_SCALES)
        if weights == "float" and binary_scale != "none":
            raise ValueError(f"binary_scale={binary_scale!r} needs weights='binary'")
        if weights == "binary":
            layer_kit = binarize_kit(layer_kit, binary_scale)
        self.weights = weights
        self.binary_scale = binary_scale
        self.spikes = spikes
        self.family = fam.name
        self.T = int(T)
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.input_size = as_size(input_size)
        self.stem_type = stem

        self.neuron_spec = fam.neuron_spec(spikes, neuron)
        make_sn = neuron_factory(self.neuron_spec)
        kwargs = {**fam.block_kwargs, **block_kwargs}
        if fam.bn_init_threshold:
            kwargs.setdefault("bn_init", make_sn().v_threshold)
        self._check_block_kwargs(block_cls, kwargs)
        self.block_kwargs = dict(kwargs)

        c0 = int(stem_width or widths[0])
        first_stride = self._build_stem(fam, stem, in_channels, c0, layer_kit, make_sn)
        in_planes = self._build_stages(block_cls, layers, widths, c0, first_stride, layer_kit, make_sn, kwargs)
        self._build_head(fam, in_planes, head_hidden, dropout, num_classes, layer_kit, make_sn)

        self._init_weights(fam, make_sn().v_threshold)
        zero = fam.zero_init_residual if zero_init_residual is None else bool(zero_init_residual)
        self.zero_init_residual = zero
        if zero:
            for m in self.modules():
                if hasattr(m, "zero_init_residual") and m is not self and callable(m.zero_init_residual):
                    m.zero_init_residual()

    # -- construction helpers ----------------------------------------------------------------
    def _build_stem(self, fam: BlockFamily, stem: str, in_channels: int, c0: int, layer_kit: LayerKit,
                    make_sn: Callable[[], nn.Module]) -> int:
        """``stem_conv - stem_bn - stem_sn - stem_extra - stem_pool`` (module docstring); returns the
        first stage's stride (MS strides its first stage instead of max-pooling)."""
        k, s = (7, 2) if stem == "imagenet" else (3, 1)
        self.stem_conv = nn.Conv2d(in_channels, c0, k, stride=s, padding=k // 2, bias=False)
        self.stem_bn = nn.BatchNorm2d(c0)
        self.stem_sn = make_sn() if fam.stem_neuron or stem == "cifar3" else nn.Identity()
        self.stem_extra: nn.Module = nn.Identity()
        self.stem_pool: nn.Module = nn.Identity()
        if stem == "cifar3":  # two more conv-BN-SN units at full resolution (the last SN per family)
            last = make_sn() if fam.stem_neuron else nn.Identity()
            self.stem_extra = nn.Sequential(layer_kit.conv3x3(c0, c0), layer_kit.norm(c0), make_sn(),
                                            layer_kit.conv3x3(c0, c0), layer_kit.norm(c0), last)
            self.stem_pool = TimeAvgPool2d(2)
        elif stem == "imagenet" and fam.stem_maxpool:
            self.stem_pool = TimeMaxPool2d(3, stride=2, padding=1)
        return 2 if stem == "imagenet" and not fam.stem_maxpool else 1

    def _build_stages(self, block_cls: type[nn.Module], layers: Sequence[int], widths: Sequence[int], c0: int,
                      first_stride: int, layer_kit: LayerKit, make_sn: Callable[[], nn.Module],
                      kwargs: Mapping[str, Any]) -> int:
        """``stages``: one :class:`ResidualStage` per entry of ``layers``; returns the output channels."""
        stages = []
        in_planes = c0
        for i, (n_blocks, width) in enumerate(zip(layers, widths[: len(layers)], strict=True)):
            blocks = []
            for j in range(n_blocks):
                stride = (first_stride if i == 0 else 2) if j == 0 else 1
                blocks.append(block_cls(in_planes, width, stride, neuron=make_sn, layers=layer_kit, **kwargs))
                in_planes = width * block_cls.expansion
            stages.append(ResidualStage(*blocks))
        self.stages = nn.Sequential(*stages)
        self.num_features = in_planes
        return in_planes

    def _build_head(self, fam: BlockFamily, in_planes: int, head_hidden: int | None, dropout: float,
                    num_classes: int, layer_kit: LayerKit, make_sn: Callable[[], nn.Module]) -> None:
        """``head_bn - head_sn - pool - hidden - dropout - fc``."""
        self.head_bn = layer_kit.norm(in_planes) if fam.head_norm else nn.Identity()
        self.head_sn = make_sn() if fam.head_neuron else nn.Identity()
        self.pool = TimeAdaptiveAvgPool2d(1)
        self.hidden: nn.Module = nn.Identity()
        if head_hidden:
            self.hidden = nn.Sequential(nn.Linear(in_planes, head_hidden), make_sn())
            in_planes = head_hidden
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_planes, num_classes)

    @staticmethod
    def _check_args(layers: Sequence[int], widths: Sequence[int], stem: str, num_classes: int, T: int,
                    in_channels: int, dropout: float, head_hidden: int | None) -> None:
        if not layers or any(not isinstance(n, int) or n < 1 for n in layers):
            raise ValueError(f"layers must be a non-empty list of positive ints, got {list(layers)!r}")
        if len(widths) < len(layers) or any(int(w) < 1 for w in widths):
            raise ValueError(f"widths must give a positive width for each of the {len(layers)} stages, got {widths!r}")
        check_choice("stem", stem, STEMS)
        check_positive_ints(num_classes=num_classes, T=T, in_channels=in_channels)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if head_hidden is not None and (not isinstance(head_hidden, int) or head_hidden < 1):
            raise ValueError(f"head_hidden must be a positive int or None, got {head_hidden!r}")

    @staticmethod
    def _check_block_kwargs(block_cls: type[nn.Module], kwargs: Mapping[str, Any]) -> None:
        params = inspect.signature(block_cls.__init__).parameters
        valid = {n for n, p in params.items() if p.kind == p.KEYWORD_ONLY} - {"neuron", "layers"}
        bad = set(kwargs) - valid
        if bad:
            model_args = sorted(
                n for n in inspect.signature(SpikingResNet.__init__).parameters if n not in ("self", "block_kwargs")
            )
            raise ValueError(
                f"unknown argument(s) {sorted(bad)}: valid model arguments are {model_args}, and valid "
                f"{block_cls.__name__} options are {sorted(valid)}"
            )

    def _init_weights(self, fam: BlockFamily, v_threshold: float) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and not fam.bn_init_threshold:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if fam.bn_init_threshold:
            nn.init.constant_(self.stem_bn.weight, v_threshold)

    # -- forward -----------------------------------------------------------------------------
    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` or ``[T, B, C, H, W]`` -> stem output ``[T, B, C0, H', W']``."""
        if x.dim() == 4:  # static image: conv + BN once, repeated over T
            y = self.stem_bn(self.stem_conv(x))
            y = y.unsqueeze(0).expand(self.T, *y.shape)
        else:
            y = self.stem_bn(self.stem_conv(x.flatten(0, 1))).unflatten(0, x.shape[:2])
        return self.stem_pool(self.stem_extra(self.stem_sn(y)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``[T, B, num_features]`` (after the last stage and the head neuron)."""
        check_image_input(x, T=self.T, in_channels=self.in_channels, input_size=self.input_size)
        y = self.stages(self.stem(x))
        return self.pool(self.head_sn(self.head_bn(y))).flatten(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-time-step logits ``[T, B, num_classes]``; average over dim 0 for a prediction."""
        return self.fc(self.dropout(self.hidden(self.forward_features(x))))

    @property
    def depth(self) -> int:
        """Weight layers on the longest path: stem + convs in the blocks + FC layers."""
        convs = sum(blk.spec().n_convs for stage in self.stages for blk in stage)
        stem = 3 if self.stem_type == "cifar3" else 1
        return stem + convs + (2 if isinstance(self.hidden, nn.Sequential) else 1)

    def extra_repr(self) -> str:
        extra = ""
        if self.weights != "float":
            extra += f", weights={self.weights!r}, binary_scale={self.binary_scale!r}"
        if self.spikes != "binary":
            extra += f", spikes={self.spikes!r}"
        return (
            f"family={self.family!r}, T={self.T}, num_classes={self.num_classes}, stem={self.stem_type!r}" + extra
        )
