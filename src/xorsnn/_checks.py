"""Argument checks shared by every layer of the package (no imports from it: any module may use them)."""

from __future__ import annotations

from collections.abc import Collection
from typing import TypeVar

__all__ = ["check_choice"]

V = TypeVar("V")


def check_choice(name: str, value: V, valid: Collection[object]) -> V:
    """``value`` if it is one of ``valid``, else ``ValueError("<name> must be one of <valid>, got <value>")``."""
    if value not in valid:
        raise ValueError(f"{name} must be one of {valid}, got {value!r}")
    return value
