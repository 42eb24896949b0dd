"""Spiking transformers -- Spikformer and the Spike-driven Transformer -- with a-XNOR attention.

Importing this package registers ``spikformer_*`` and ``sdt_*`` in the model registry::

    model = xorsnn.create_model("spikformer_4_384", similarity="axnor", a=0.25, a_learnable=True,
                                a_granularity="head")

See ``docs/transformers.md`` for what is confirmed and what is reconstructed.
"""

from .attention import SpikeDrivenSelfAttention, SpikingAttention, SpikingSelfAttention
from .base import EncoderBlock, SpikingTransformer
from .sdt import MSMLP, MSPatchSplitting, SpikeDrivenTransformer
from .similarity import AXNORCoefficient, make_coefficients
from .spikformer import Spikformer, SpikingMLP, SpikingPatchSplitting
from .tokens import TokenBatchNorm, TokenLinear

__all__ = [
    "SpikingTransformer",
    "EncoderBlock",
    "Spikformer",
    "SpikingPatchSplitting",
    "SpikingMLP",
    "SpikeDrivenTransformer",
    "MSPatchSplitting",
    "MSMLP",
    "SpikingAttention",
    "SpikingSelfAttention",
    "SpikeDrivenSelfAttention",
    "AXNORCoefficient",
    "make_coefficients",
    "TokenBatchNorm",
    "TokenLinear",
]


_MOVED = ("AttentionRecord", "record_attention")  # to xorsnn.analysis.attention_record (deprecated here)


def moved_to_analysis(package: str, name: str) -> object:
    """``name`` from :mod:`xorsnn.analysis.attention_record`, with a ``FutureWarning`` that ``package.name`` moved."""
    import warnings

    from ...analysis import attention_record

    warnings.warn(f"{package}.{name} moved to xorsnn.analysis.{name}; the old name goes in the next release",
                  FutureWarning, stacklevel=3)
    return getattr(attention_record, name)


def __getattr__(name: str) -> object:
    """``AttentionRecord`` / ``record_attention``: moved to :mod:`xorsnn.analysis` (deprecated aliases, one release)."""
    if name in _MOVED:
        return moved_to_analysis("xorsnn.models.transformers", name)
    raise AttributeError(f"module 'xorsnn.models.transformers' has no attribute {name!r}")
