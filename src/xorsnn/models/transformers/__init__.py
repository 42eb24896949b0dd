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
