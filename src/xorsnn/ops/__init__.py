"""Logic operations on spike tensors (OR, XOR, XNOR, AND, IAND, NOT) and the a-XNOR similarity."""

from .axnor import axnor_attention, axnor_kv, axnor_scores, dot_matching_factor
from .logic import (
    OR_FORMS,
    XOR_FORMS,
    spike_and,
    spike_iand,
    spike_not,
    spike_or,
    spike_xnor,
    spike_xor,
)

__all__ = [
    "OR_FORMS",
    "XOR_FORMS",
    "spike_and",
    "spike_or",
    "spike_xor",
    "spike_xnor",
    "spike_iand",
    "spike_not",
    "axnor_scores",
    "axnor_attention",
    "axnor_kv",
    "dot_matching_factor",
]
