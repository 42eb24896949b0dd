"""Logic operations on spike tensors (OR, XOR, XNOR, AND, IAND, NOT)."""

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
]
