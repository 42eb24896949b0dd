"""Re-parameterise a trained binary-weight SNN into an exact, (mostly) addition-only inference model.

``reparameterize(model)`` returns a copy of a :class:`~xorsnn.models.SpikingResNet` built with
``weights="binary"`` in which

* every block convolution (and the ``cifar3`` stem's 2nd/3rd convs) is an ordinary conv with
  weights **exactly ±1** (the first conv, the hidden FC, the classifier and the multi-shortcut
  family's real-valued shortcut convs stay full precision; they are listed in
  ``model.full_precision_layers``);
* eval-mode BatchNorm and the binary scales (ReverB's ``alpha``, magnitude-aware ``a_c``) are
  folded into the neurons: per-channel threshold ``theta = V_th / u``, constant bias current
  ``beta = b / u`` and output gain ``omega`` (:class:`~xorsnn.export.inference.FoldedNeuron`);
* where a gain cannot be folded away (two differently-scaled currents meeting at one neuron, a
  real-valued residual stream), an explicit :class:`~xorsnn.export.inference.ChannelAffine` is
  inserted and costed by :func:`~xorsnn.export.opcount.op_report`.

The rewritten model computes **the same function** as the training-form model in eval mode (up to
floating-point rounding). The rules (binary-weight.md §1.5-1.6):

1. A binary conv with input-channel ``alpha`` applied to a tensor ``x = g ⊙ x'`` (``x'`` what the
   inference model stores, ``g`` its per-channel gain) equals a ±1 conv on ``(alpha g) ⊙ x'``. The
   factor ``alpha g`` goes into the output gain of the neuron that produced ``x'`` (ReverB Eq. 18:
   one multiplication per emitted real-valued spike; a constant-amplitude event for binary spikes)
   when that neuron has no other consumer, otherwise into a ``ChannelAffine`` before the conv.
2. Conv -> BN gives ``sigma ⊙ z + b`` with ``sigma = s m`` (BN scale times magnitude scale). A
   negative ``sigma_o`` is moved into the filter: ``-sign(W_o)`` (never ``sign(-W_o)``, which keeps
   +1 where ``W = 0``).
3. A neuron with ``v_reset = 0`` is positively homogeneous: input ``u ⊙ (X' + beta)`` with
   ``u > 0`` fires exactly when ``X'`` does against ``theta = V_th / u``; real-valued spikes come
   out divided by ``u`` (carried forward as a gain). **Every scale that crosses a neuron must be > 0**:
   a zero or negative one (e.g. a pre-activation BN with ``gamma <= 0`` on the residual stream,
   which cannot be moved into a filter) raises ``ValueError`` naming the layer.
4. Summands meeting at a neuron or in a residual stream must carry the same gain: an identity
   shortcut's gain is matched through its producer's output gain; a second conv path gets a
   ``ChannelAffine``; a full-precision path absorbs any gain into its weights for free.
5. Spike-logic merges (OR, XOR, AND, IAND) and SEW's spike sums need binary spikes with gain 1:
   the SEW / OA / XOR families are exported with binary spikes only; with ``spikes="real"`` the
   export refuses (``ValueError`` naming the block).

Supported block families: ``spiking`` and ``reverb`` (real or binary spikes), ``msc`` (real or
binary spikes), ``ms`` (real or binary spikes; its residual stream needs one ``ChannelAffine`` per
block), and ``sew``, ``oa``, ``xor`` (binary spikes).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..blocks.spec import SPIKE_MERGES, Segment, block_spec, require_spec
from ..layers import TimeConv2d, TimeLinear, is_binary_layer
from ..models.resnet import SpikingResNet
from ..neurons import SpikingNeuron
from .inference import ChannelAffine, FoldedNeuron

__all__ = ["reparameterize"]

_BN = nn.modules.batchnorm._BatchNorm


# -- small data types ----------------------------------------------------------------------------
@dataclass
class _Sig:
    """A tensor between layers of the inference model: ``actual = gain ⊙ stored`` (per channel).

    kind: ``"spikes"`` (0 or one per-channel constant), ``"graded"`` (sparse, several values),
    ``"dense"`` (currents, residual streams). ``binary``: stored values are exactly {0, 1}.
    ``producer``: the folded neuron whose output gain can still absorb a factor (else ``None``).
    """

    gain: torch.Tensor
    kind: str
    binary: bool
    producer: FoldedNeuron | None


@dataclass
class _Current:
    """Output of a weight path: ``actual = gain ⊙ stored + offset``.

    ``rescale(scale, shift)`` makes the path emit ``scale ⊙ stored + shift`` instead (``free``: by
    changing full-precision weights; otherwise by a ``ChannelAffine``).
    """

    gain: torch.Tensor
    offset: torch.Tensor
    rescale: Callable[[torch.Tensor | None, torch.Tensor | None], None]
    free: bool
    name: str


class _Slot:
    """A settable attribute ``parent.attr``; ``name`` is its qualified name ``prefix.attr`` (for messages)."""

    def __init__(self, parent: nn.Module, attr: str, prefix: str = "") -> None:
        self.parent, self.attr = parent, attr
        self.name = f"{prefix}.{attr}" if prefix else attr

    def get(self) -> nn.Module:
        return getattr(self.parent, self.attr)

    def set(self, module: nn.Module) -> None:
        setattr(self.parent, self.attr, module)


def _ones(n: int) -> torch.Tensor:
    return torch.ones(n, dtype=torch.float64)


def _is_one(v: torch.Tensor) -> bool:
    return bool((v == 1).all())


def bn_affine(bn: nn.Module, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BN as ``s ⊙ z + b`` (float64): the one BN folding of re-parameterisation and NIR export."""
    if not isinstance(bn, _BN):
        raise ValueError(f"{name}: expected a BatchNorm layer, got {type(bn).__name__}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"{name}: a BatchNorm without running statistics cannot be folded (track_running_stats=False)")
    var = bn.running_var.detach().double()
    mean = bn.running_mean.detach().double()
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(var)
    s = gamma / torch.sqrt(var + bn.eps)
    return s, beta - s * mean


def _take_bn(bn_slot: _Slot | None, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The BN after a weight layer as ``s ⊙ z + b`` (``1``, ``0`` without one); the BN leaves the model."""
    if bn_slot is None:
        return _ones(n), torch.zeros(n, dtype=torch.float64)
    s, b = bn_affine(bn_slot.get(), bn_slot.name)
    bn_slot.set(nn.Identity())
    return s, b


def _channels_str(mask: torch.Tensor) -> str:
    idx = torch.nonzero(mask).flatten().tolist()
    return str(idx[:8])[:-1] + (", ...]" if len(idx) > 8 else "]")


# -- the folder ----------------------------------------------------------------------------------
class _Folder:
    def __init__(self, model: SpikingResNet) -> None:
        self.model = model
        p = next(model.parameters())
        self.dtype, self.device = p.dtype, p.device
        self.full_precision: dict[int, str] = {}  # id(module) -> reason

    def _t(self, v: torch.Tensor) -> torch.Tensor:
        return v.to(dtype=self.dtype, device=self.device)

    def _affine(self, scale: torch.Tensor | None, shift: torch.Tensor | None) -> ChannelAffine:
        """An explicit ``scale ⊙ x + shift`` on a dense current."""
        return ChannelAffine(None if scale is None else self._t(scale), None if shift is None else self._t(shift),
                             "dense")

    # -- weight paths --------------------------------------------------------------------------
    def _input_factor(self, sig: _Sig, factor: torch.Tensor) -> nn.Module | None:
        """Make a consumer see ``factor ⊙ stored``: absorbed by the producer, or a ChannelAffine."""
        if _is_one(factor):
            return None
        if sig.producer is not None:
            sig.producer.scale_output(self._t(factor))
            sig.gain = sig.gain / factor
            sig.producer = None
            sig.binary = False
            return None
        kind = {"spikes": "events", "graded": "sparse", "dense": "dense"}[sig.kind]
        return ChannelAffine(self._t(factor), None, kind)

    def _match_gain(self, sig: _Sig, target: torch.Tensor, name: str) -> None:
        """Rescale ``sig`` (through its producer's output gain) so that its gain is exactly ``target``."""
        if torch.equal(sig.gain, target):
            return
        if sig.producer is None:
            raise ValueError(
                f"{name}: the shortcut must carry the gain of the branch it is added to, but the tensor it "
                "carries has no neuron that could absorb the factor; no exact fold"
            )
        self._input_factor(sig, sig.gain / target)
        sig.gain = target.clone()

    def _layer_like(self, layer: nn.Module, cls: type, *, bias: bool, groups: int = 1) -> nn.Module:
        """A new ``cls`` conv / linear with the geometry of ``layer``, in the model's dtype and device."""
        if isinstance(layer, nn.Conv2d):
            new = cls(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                      padding=layer.padding, dilation=layer.dilation, groups=groups, bias=bias,
                      padding_mode=layer.padding_mode)
        else:
            new = cls(layer.in_features, layer.out_features, bias=bias)
        return new.to(dtype=self.dtype, device=self.device)

    def _sign_layer(self, layer: nn.Module, flip: torch.Tensor) -> nn.Module:
        """A plain ±1 conv/linear: ``sign(W)``, with ``-sign(W)`` for the flipped output channels."""
        w = layer.sign_weight()
        view = (-1,) + (1,) * (w.dim() - 1)
        w = torch.where(flip.to(w.device).view(view), -w, w)
        new = self._layer_like(layer, TimeConv2d if isinstance(layer, nn.Conv2d) else TimeLinear, bias=False)
        with torch.no_grad():
            new.weight.copy_(w)
        return new

    def _binary_path(self, conv_slot: _Slot, bn_slot: _Slot | None, sig: _Sig) -> _Current:
        """Binary conv (-> BN): replace by a ±1 conv; returns the current ``|sigma| ⊙ z + b``."""
        conv = conv_slot.get()
        if not is_binary_layer(conv):
            raise ValueError(
                f"{conv_slot.name}: {type(conv).__name__} is full precision; reparameterize needs a model built "
                "with weights='binary' (every block convolution binary)"
            )
        alpha = conv.input_scale()
        alpha = _ones(conv.weight.shape[1]) if alpha is None else alpha.double().cpu()
        if not bool((alpha > 0).all()):
            raise ValueError(
                f"{conv_slot.name}: alpha must be > 0 in every input channel, channel(s) "
                f"{_channels_str(alpha <= 0)} are not"
            )
        pre = self._input_factor(sig, alpha * sig.gain)
        m = conv.output_scale()
        m = _ones(conv.weight.shape[0]) if m is None else m.double().cpu()
        s, b = _take_bn(bn_slot, m.numel())
        bias = s * (conv.bias.detach().double().cpu() if conv.bias is not None else 0.0) + b
        sigma = s * m
        new = self._sign_layer(conv, sigma < 0)
        conv_slot.set(nn.Sequential(pre, new) if pre is not None else new)

        def rescale(scale: torch.Tensor | None, shift: torch.Tensor | None) -> None:
            if bn_slot is not None:
                bn_slot.set(self._affine(scale, shift))
            else:
                conv_slot.set(nn.Sequential(conv_slot.get(), self._affine(scale, shift)))

        return _Current(sigma.abs(), bias, rescale, False, bn_slot.name if bn_slot else conv_slot.name)

    def _fp_path(self, conv_slot: _Slot, bn_slot: _Slot | None, sig: _Sig) -> _Current:
        """Full-precision conv/linear (-> BN): fold input gain and BN into its weights and bias."""
        conv = conv_slot.get()
        if is_binary_layer(conv):
            raise ValueError(f"{conv_slot.name}: expected a full-precision layer")
        w = conv.weight.detach().double().cpu()
        w = w * sig.gain.view((1, -1) + (1,) * (w.dim() - 2))
        n_out = w.shape[0]
        s, b = _take_bn(bn_slot, n_out)
        view_out = (-1,) + (1,) * (w.dim() - 1)
        w = w * s.view(view_out)
        bias = s * (conv.bias.detach().double().cpu() if conv.bias is not None else 0.0) + b
        new = self._layer_like(conv, type(conv), bias=True, groups=conv.groups)

        def rescale(scale: torch.Tensor | None = None, shift: torch.Tensor | None = None) -> None:
            """Fold ``scale ⊙ (.) + shift`` into the float64 weight and bias, and write them to ``new``."""
            nonlocal w, bias
            if scale is not None:
                w = w * scale.view(view_out)
                bias = bias * scale
            if shift is not None:
                bias = bias + shift
            with torch.no_grad():
                new.weight.copy_(self._t(w))
                new.bias.copy_(self._t(bias))

        rescale()
        conv_slot.set(new)
        self.full_precision[id(new)] = "full-precision layer (MACs)"
        return _Current(_ones(n_out), torch.zeros(n_out).double(), rescale, True, conv_slot.name)

    def _weight_path(self, conv_slot: _Slot, bn_slot: _Slot | None, sig: _Sig) -> _Current:
        if is_binary_layer(conv_slot.get()):
            return self._binary_path(conv_slot, bn_slot, sig)
        return self._fp_path(conv_slot, bn_slot, sig)

    def _stream_bn(self, bn_slot: _Slot, sig: _Sig) -> _Current:
        """Pre-activation BN on a residual stream: the current ``(s g) ⊙ x' + b`` into the next neuron."""
        s, b = _take_bn(bn_slot, sig.gain.numel())

        def rescale(scale: torch.Tensor | None, shift: torch.Tensor | None) -> None:  # pragma: no cover
            bn_slot.set(self._affine(scale, shift))

        return _Current(s * sig.gain, b, rescale, False, bn_slot.name)

    def _shortcut_path(self, seq: nn.Sequential, sig: _Sig, name: str) -> tuple[_Current, int]:
        """``[AvgPool] - conv - BN`` of a projection shortcut; returns the current and the index after BN."""
        i = 0
        if isinstance(seq[0], nn.AvgPool2d):  # linear and per-channel: gains pass through
            sig = _Sig(sig.gain, "graded" if sig.kind == "spikes" else sig.kind, False, None)
            i = 1
        cur = self._weight_path(_Slot(seq, str(i), name), _Slot(seq, str(i + 1), name), sig)
        return cur, i + 2

    # -- neurons and merges --------------------------------------------------------------------
    def _neuron(self, slot: _Slot, currents: list[_Current], identity: _Sig | None = None) -> _Sig:
        """Fold the scales of the currents (and an added identity tensor) into the neuron at ``slot``."""
        sn = slot.get()
        if not isinstance(sn, SpikingNeuron):
            raise ValueError(f"{slot.name}: expected a spiking neuron, got {type(sn).__name__}")
        d = sn.dynamics
        if d.b != 0.0 or (d.hard_reset and d.v_reset != 0.0):
            raise ValueError(
                f"{slot.name}: the neuron is not positively homogeneous (v_reset={d.v_reset:g}); a scale cannot "
                "be moved into its threshold -- use v_reset=0"
            )
        primary = next((c for c in currents if not c.free), currents[0] if currents else None)
        if primary is not None:
            unit = primary.gain
            where = f"from {primary.name}"
        elif identity is not None:
            unit = identity.gain
            where = "the gain of its input stream"
        else:  # pragma: no cover - every call passes a current or an input
            raise ValueError(f"{slot.name}: neuron without input")
        if not bool((unit > 0).all()):
            raise ValueError(
                f"{slot.name}: the combined scale that crosses this neuron ({where}: BN gamma/sqrt(var+eps) x binary "
                f"scale x input gain) must be > 0, but channel(s) {_channels_str(unit <= 0)} are <= 0; "
                "a zero or negative scale cannot be moved into a threshold (no exact fold)"
            )
        if identity is not None and not torch.equal(identity.gain, unit):  # pragma: no cover - callers match it
            raise ValueError(f"{slot.name}: shortcut gain does not match the branch gain")
        offset = torch.zeros_like(unit)
        for c in currents:
            offset = offset + c.offset
            if c is not primary:
                ratio = c.gain / unit
                if not _is_one(ratio):
                    c.rescale(ratio, None)
        bias = None if bool((offset == 0).all()) else self._t(offset / unit)
        folded = FoldedNeuron(d, self._t(sn.v_threshold / unit), bias, None, stateful=sn.stateful)
        slot.set(folded)
        if sn.real_valued:
            return _Sig(unit.clone(), "graded", False, folded)
        return _Sig(_ones(unit.numel()), "spikes", True, folded)

    def _stream_sum(self, currents: list[_Current], identity: _Sig | None) -> _Sig:
        """A real-valued residual stream ``identity + sum(currents)`` (no neuron after the sum)."""
        if identity is not None:
            gain = identity.gain
        else:
            gain = next((c.gain for c in currents if not c.free and bool((c.gain > 0).all())), None)
            gain = _ones(currents[0].gain.numel()) if gain is None else gain
        for c in currents:
            ratio, shift = c.gain / gain, c.offset / gain
            scale = None if _is_one(ratio) else ratio
            shift_ = None if bool((shift == 0).all()) else shift
            if scale is not None or shift_ is not None:
                c.rescale(scale, shift_)
        return _Sig(gain.clone(), "dense", False, None)

    # -- blocks --------------------------------------------------------------------------------
    @staticmethod
    def _require_binary_spikes(blk: nn.Module, name: str, what: str) -> None:
        if any(isinstance(m, SpikingNeuron) and m.real_valued for m in blk.modules()):
            raise ValueError(
                f"{name}: {type(blk).__name__} merges spikes with {what}, which is exact only on binary spikes "
                "with unit gain; a model with spikes='real' has no exact addition-only fold for this block"
            )

    @staticmethod
    def _check_unit_binary(sig: _Sig | None, name: str) -> None:
        if sig is not None and not (sig.binary and _is_one(sig.gain)):
            raise ValueError(f"{name}: spike-logic merge needs binary input spikes with unit gain")

    def _fold_block(self, blk: nn.Module, x: _Sig, x_prev: _Sig | None, name: str) -> _Sig:
        """Fold one block segment by segment, reading its description (:mod:`xorsnn.blocks.spec`)."""
        spec = block_spec(blk)
        assert spec is not None  # run() checked every block
        for seg in spec.segments:
            if seg.merge in SPIKE_MERGES:
                what = "SEW ADD" if seg.merge == "add" else f"{seg.merge.replace('_select', '').upper()} logic"
                self._require_binary_spikes(blk, name, what)
                if seg.merge == "add" and not _is_one(x.gain):
                    raise ValueError(f"{name}: SEW-ADD needs a unit-gain input")
                if seg.merge != "add":
                    self._check_unit_binary(x, name)
                if seg.meta:
                    self._check_unit_binary(x_prev, name)
                x = _Sig(x.gain, x.kind, x.binary, None)  # x meets the merge as spikes: keep its unit gain
            x = self._fold_segment(blk, spec.downsample, seg, x, name)
        return x

    def _fold_segment(self, blk: nn.Module, downsample: str, seg: Segment, x: _Sig, name: str) -> _Sig:
        steps = seg.steps()
        identity = None
        if seg.merge == "current_add" and seg.shortcut == "identity":
            identity = self._identity_into_neuron(blk, steps[-1], seg.neuron, x, name)  # type: ignore[arg-type]
        h, cur = x, None  # the branch: a spike tensor h, or a current cur (after a weight step)
        for i, (kind, attr, norm) in enumerate(steps):
            slot = _Slot(blk, attr, name)
            if kind == "weight":
                cur = self._binary_path(slot, _Slot(blk, norm, name) if norm else None, h)
            elif kind == "norm":
                cur = self._stream_bn(slot, h)
            elif kind == "neuron":
                h = self._neuron(slot, [cur]) if cur is not None else self._neuron(slot, [], h)
                cur = None
                if i + 1 < len(steps) and steps[i + 1][0] == "xor_input":
                    h.producer = None  # its spikes meet a logic op: keep them binary
        assert cur is not None, f"{name}: a branch ends in a weight layer"
        shortcut = None
        if seg.shortcut != "identity":
            seq = getattr(blk, downsample)
            shortcut, after = self._shortcut_path(seq, x, f"{name}.{downsample}")
            if seg.shortcut == "spiking_projection":
                self._neuron(_Slot(seq, str(after), f"{name}.{downsample}"), [shortcut])
        currents = [cur] if shortcut is None else [cur, shortcut]
        if seg.merge == "membrane_add":
            return self._stream_sum(currents, x if shortcut is None else None)
        fire = _Slot(blk, seg.neuron, name)  # type: ignore[arg-type]
        if seg.merge == "current_add":
            return self._neuron(fire, currents, identity)
        ones = _ones(self._neuron(fire, [cur]).gain.numel())  # a spike merge: its output has unit gain
        if seg.merge == "add":  # SEW-ADD: spike counts
            return _Sig(ones, "graded", False, None)
        return _Sig(ones, "spikes", True, None)

    def _identity_into_neuron(self, blk: nn.Module, last: tuple[str, str, str | None], neuron: str, x: _Sig,
                              name: str) -> _Sig:
        """An identity shortcut summed into the merge neuron must carry the branch current's scale."""
        _, conv_name, bn_name = last
        conv, bn = getattr(blk, conv_name), getattr(blk, bn_name)  # type: ignore[arg-type]
        s, _ = bn_affine(bn, f"{name}.{bn_name}")
        m = conv.output_scale() if is_binary_layer(conv) else None
        u = (s * (1 if m is None else m.double().cpu())).abs()
        if not bool((u > 0).all()):
            raise ValueError(
                f"{name}.{bn_name}: the combined scale that crosses {name}.{neuron} must be > 0 in every channel, "
                f"channel(s) {_channels_str(u <= 0)} are 0; no exact fold"
            )
        self._match_gain(x, u, f"{name} (identity shortcut)")
        return x

    # -- the whole network ---------------------------------------------------------------------
    def _fp_linear_absorb(self, linear: nn.Linear, gain: torch.Tensor) -> None:
        with torch.no_grad():
            linear.weight.mul_(self._t(gain).view(1, -1))
        self.full_precision[id(linear)] = "full-precision layer (MACs)"

    def run(self) -> None:
        m = self.model
        for si, stage in enumerate(m.stages):  # refuse an unsupported block before folding anything
            for bi, blk in enumerate(stage):
                require_spec(blk, f"stages.{si}.{bi}", "reparameterize", segments=2, stream_norm=True)
        x = self._fold_stem(m)
        for si, stage in enumerate(m.stages):
            prev = None
            for bi, blk in enumerate(stage):
                prev, x = x, self._fold_block(blk, x, prev, f"stages.{si}.{bi}")
        self._fold_head(m, x)

    def _neuron_or_stream(self, slot: _Slot, cur: _Current) -> _Sig:
        """A stem unit's current into its neuron, or (a family without one there) onto the stream."""
        if isinstance(slot.get(), SpikingNeuron):
            return self._neuron(slot, [cur])
        return self._stream_sum([cur], None)

    def _fold_stem(self, m: SpikingResNet) -> _Sig:
        image = _Sig(_ones(m.in_channels), "dense", False, None)
        stem = self._fp_path(_Slot(m, "stem_conv"), _Slot(m, "stem_bn"), image)
        self.full_precision[id(m.stem_conv)] = "first layer: real-valued pixels (MACs)"
        x = self._neuron_or_stream(_Slot(m, "stem_sn"), stem)
        if isinstance(m.stem_extra, nn.Sequential):
            se = m.stem_extra
            for i in (0, 3):
                cur = self._weight_path(_Slot(se, str(i), "stem_extra"), _Slot(se, str(i + 1), "stem_extra"), x)
                x = self._neuron_or_stream(_Slot(se, str(i + 2), "stem_extra"), cur)
        if isinstance(m.stem_pool, nn.AvgPool2d):
            x = _Sig(x.gain, "graded" if x.kind == "spikes" else x.kind, False, x.producer)
        return x

    def _fold_head(self, m: SpikingResNet, x: _Sig) -> None:
        if isinstance(m.head_bn, _BN):
            x = self._neuron(_Slot(m, "head_sn"), [self._stream_bn(_Slot(m, "head_bn"), x)])
        elif isinstance(m.head_sn, SpikingNeuron):
            x = self._neuron(_Slot(m, "head_sn"), [], x)
        gain = x.gain
        if isinstance(m.hidden, nn.Sequential):
            self._fp_linear_absorb(m.hidden[0], gain)
            gain = _ones(m.hidden[0].out_features)
        self._fp_linear_absorb(m.fc, gain)

    def check(self) -> dict[str, str]:
        """Every weight layer not declared full precision must be exactly ±1 with no bias."""
        fp: dict[str, str] = {}
        for name, mod in self.model.named_modules():
            if not isinstance(mod, (nn.Conv2d, nn.Linear)):
                continue
            if id(mod) in self.full_precision:
                fp[name] = self.full_precision[id(mod)]
                continue
            w = mod.weight
            if not bool(((w == 1) | (w == -1)).all()) or mod.bias is not None:  # pragma: no cover - invariant
                raise RuntimeError(f"internal error: exported layer {name} is not a ±1 layer without bias")
        return fp


def reparameterize(model: nn.Module) -> nn.Module:
    """Exact inference form of a trained binary-weight :class:`~xorsnn.models.SpikingResNet`.

    Args:
        model: a model built with ``weights="binary"`` (any ``binary_scale``, ``spikes``); it is
            not modified (the result is a deep copy, in eval mode).

    Returns:
        The re-parameterised model: same call signature and output ``[T, B, num_classes]``, equal
        to ``model.eval()(x)`` up to floating-point rounding. ``result.full_precision_layers`` maps
        the names of the weight layers that are not ±1 (first conv, hidden FC, classifier,
        real-valued shortcut convs) to the reason; every other conv/linear weight is exactly ±1.

    Raises:
        ValueError: naming the layer or block, when a scale that must cross a neuron is <= 0, when a
            block has no exact fold (spike-logic merges with real-valued spikes), when a block layer
            is full precision, or for an unsupported model.
    """
    if not isinstance(model, SpikingResNet):
        raise ValueError(
            f"reparameterize: expected a SpikingResNet (xorsnn.create_model(...)), got {type(model).__name__}"
        )
    if any(isinstance(mod, (FoldedNeuron, ChannelAffine)) for mod in model.modules()):
        raise ValueError("reparameterize: the model is already re-parameterised")
    if not any(isinstance(m, SpikingNeuron) for m in model.modules()):
        raise ValueError(f"reparameterize: {type(model).__name__} has no spiking neurons (an ANN teacher?); the "
                         "re-parameterisation folds BN and binary scales into spiking thresholds")
    out = copy.deepcopy(model).eval()
    folder = _Folder(out)
    folder.run()
    out.full_precision_layers = folder.check()
    out.reparameterized = True
    for mod in out.modules():
        if isinstance(mod, SpikingNeuron):
            mod.reset_state()
    return out
