"""Build neurons from plain specs (dicts), so models and config files can name them.

A spec is a dict with an optional ``"type"`` (``"lif"``, ``"if"`` or ``"real"``) and the keyword
arguments of that neuron class::

    {"type": "lif", "tau": 2.0, "v_threshold": 1.0, "surrogate": "atan"}
    {"type": "lif", "tau": None, "decay": 0.25, "v_threshold": 0.5, "surrogate": {"name": "rectangle", "width": 1.0}}
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from .lif import IF, LIF, RealSpikeLIF, SpikingNeuron

__all__ = ["NEURON_TYPES", "make_neuron", "neuron_factory", "merge_neuron_spec"]

NEURON_TYPES: dict[str, type[SpikingNeuron]] = {"lif": LIF, "if": IF, "real": RealSpikeLIF}

_COMMON_KEYS = set(inspect.signature(SpikingNeuron.__init__).parameters) - {"self"}


def merge_neuron_spec(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    """Overlay ``override`` on ``base``.

    Giving ``decay`` in the override clears a ``tau`` from the base (and vice versa), and changing
    ``type`` drops base keys the new type does not accept, so ``{"decay": 0.25}`` switches a tau-form
    default to the decay form without having to write ``"tau": None``.
    """
    spec = dict(base)
    override = dict(override or {})
    if "decay" in override and override["decay"] is not None and "tau" not in override:
        spec["tau"] = None
    if "tau" in override and override["tau"] is not None and "decay" not in override:
        spec.pop("decay", None)
    if "type" in override and override["type"] != spec.get("type"):
        if override["type"] == "if":
            for key in ("tau", "decay", "decay_input"):
                spec.pop(key, None)
    spec.update(override)
    return spec


def make_neuron(spec: Mapping[str, Any] | SpikingNeuron | None = None, **overrides: Any) -> SpikingNeuron:
    """Instantiate a neuron from a spec dict (see the module docstring).

    Raises ``ValueError`` naming the valid types or keys when the spec is wrong.
    """
    if isinstance(spec, SpikingNeuron):
        if overrides:
            raise ValueError("make_neuron: overrides cannot be applied to a neuron instance")
        return spec
    full = merge_neuron_spec(dict(spec or {}), overrides)
    kind = str(full.pop("type", "lif")).lower()
    if kind not in NEURON_TYPES:
        raise ValueError(f"neuron type {kind!r} is unknown; valid types are {sorted(NEURON_TYPES)}")
    cls = NEURON_TYPES[kind]
    valid = _COMMON_KEYS - ({"tau", "decay", "decay_input"} if cls is IF else set())
    bad = set(full) - valid
    if bad:
        raise ValueError(f"neuron {kind!r}: unknown argument(s) {sorted(bad)}; valid ones are {sorted(valid)}")
    return cls(**full)


def neuron_factory(spec: Mapping[str, Any] | None = None, **overrides: Any) -> Callable[[], SpikingNeuron]:
    """A zero-argument callable that builds a fresh neuron from ``spec`` each time.

    The spec is validated once, immediately, so a bad spec fails at model construction.
    """
    full = merge_neuron_spec(dict(spec or {}), overrides)
    make_neuron(full)  # validate now

    def build() -> SpikingNeuron:
        return make_neuron(full)

    build.spec = full  # type: ignore[attr-defined]
    return build
