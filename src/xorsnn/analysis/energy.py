"""Energy estimates under the two published conventions -- always next to the raw counts.

=====  ==============================================  ========================================
key    constants                                       used by
=====  ==============================================  ========================================
45nm   (a) ``E_MAC = 4.6 pJ``, ``E_AC = 0.9 pJ``       Spikingformer (Eq. 19-20), Spike-driven
       (Horowitz, ISSCC 2014, 32-bit float)            Transformer line
77fJ   (b) ``12.5 pJ`` per FLOP, ``77 fJ`` per SOP     Spikformer Table 2, ReverB, IM-Loss
       (attributed to Hu, Tang, Pan, TNNLS 2021)       (the Guo lineage)
=====  ==============================================  ========================================

``E = e_mac * dense_MACs + e_sop * binary_SOPs + e_graded * graded_SOPs``

* ``dense_MACs``: the first layer on real-valued input, no rate discount (``steps * A``).
* ``binary_SOPs``: ``fr * steps * A`` of layers whose input is binary spikes.
* ``graded_SOPs``: the same count for layers whose input is graded (SEW-ADD integers) or real
  (membrane stream, real-valued spikes). ``graded_cost="mac"`` (default) prices each of these
  non-zero multi-valued inputs as a multiply-accumulate (``e_graded = e_mac``); ``"ac"`` prices
  them as a spike (``e_graded = e_sop``), which is what the SEW/Spikformer/ReverB tables printed.
* Convention (b) is per FLOP; ``flops_per_mac`` (default 1, the reading under which ReverB's
  3.54M first-layer FLOPs are 2 steps x 1.77M MACs) converts MACs to FLOPs.
* The ANN reference is the same network run once as an ANN: ``e_mac * sum_l A_l``.

BN is not counted (it folds into the convolution for float weights).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .._checks import check_choice
from .optable import OpTable

__all__ = [
    "EnergyConvention",
    "EnergyBreakdown",
    "CONVENTIONS",
    "GRADED_COSTS",
    "horowitz_45nm",
    "flop_sop_convention",
    "get_convention",
    "estimate_energy",
    "energy_from_counts",
]

GRADED_COSTS = ("mac", "ac")


@dataclass(frozen=True)
class EnergyConvention:
    """Energy per operation, in joules.

    Attributes:
        key: short name (``"45nm"``, ``"77fJ"``).
        label: one-line description with the constants.
        e_mac: energy of one dense multiply-accumulate (the first layer, priced-as-MAC inputs, ANN).
        e_sop: energy of one synaptic operation (an accumulate triggered by a binary spike).
        source: where the constants come from.
    """

    key: str
    label: str
    e_mac: float
    e_sop: float
    source: str = ""


def horowitz_45nm() -> EnergyConvention:
    """Convention (a): ``E_MAC = 4.6 pJ`` (3.7 mult + 0.9 add, 32-bit float), ``E_AC = 0.9 pJ``."""
    return EnergyConvention(
        "45nm",
        "(a) 45 nm CMOS: E_MAC 4.6 pJ, E_AC 0.9 pJ",
        4.6e-12,
        0.9e-12,
        "Horowitz, ISSCC 2014; as used by Spikingformer Eq. 19-20",
    )


def flop_sop_convention(flops_per_mac: float = 1.0) -> EnergyConvention:
    """Convention (b): 12.5 pJ per FLOP (``flops_per_mac`` FLOPs per MAC) and 77 fJ per SOP."""
    if flops_per_mac <= 0:
        raise ValueError(f"flops_per_mac must be > 0, got {flops_per_mac!r}")
    suffix = "" if flops_per_mac == 1 else f", {flops_per_mac:g} FLOP/MAC"
    return EnergyConvention(
        "77fJ",
        f"(b) 12.5 pJ/FLOP + 77 fJ/SOP{suffix}",
        12.5e-12 * flops_per_mac,
        77e-15,
        "Hu, Tang, Pan, TNNLS 2021 (via ReverB section 5, Spikformer Table 2)",
    )


CONVENTIONS: dict[str, EnergyConvention] = {c.key: c for c in (horowitz_45nm(), flop_sop_convention())}
"""The two published conventions by key; ``"a"`` and ``"b"`` are accepted as aliases."""

_ALIASES = {"a": "45nm", "b": "77fJ"}


def get_convention(convention: str | EnergyConvention) -> EnergyConvention:
    """Look up a convention by key (``"45nm"``/``"a"``, ``"77fJ"``/``"b"``) or pass one through."""
    if isinstance(convention, EnergyConvention):
        return convention
    key = _ALIASES.get(str(convention), str(convention))
    if key not in CONVENTIONS:
        raise ValueError(f"convention must be one of {sorted(CONVENTIONS)} (or 'a'/'b'), got {convention!r}")
    return CONVENTIONS[key]


@dataclass(frozen=True)
class EnergyBreakdown:
    """Energy of one inference (one sample), in joules, split by term.

    Attributes:
        convention: the convention's key.
        graded_cost: ``"mac"`` or ``"ac"`` -- how graded/real SOPs were priced.
        dense_j: dense (first-layer) MACs term.
        binary_j: binary-spike SOP term.
        graded_j: graded/real-input SOP term.
        ann_j: the same network as an ANN (``e_mac * sum A``); ``nan`` when unknown.
    """

    convention: str
    graded_cost: str
    dense_j: float
    binary_j: float
    graded_j: float
    ann_j: float = float("nan")

    @property
    def sop_j(self) -> float:
        """All SOP terms (binary + graded)."""
        return self.binary_j + self.graded_j

    @property
    def total_j(self) -> float:
        return self.dense_j + self.binary_j + self.graded_j

    @property
    def ann_ratio(self) -> float:
        """``ann_j / total_j`` -- how many times cheaper than the ANN (``nan`` without an ANN figure)."""
        return self.ann_j / self.total_j if self.total_j else float("nan")

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.update(sop_j=self.sop_j, total_j=self.total_j, ann_ratio=self.ann_ratio)
        return d


def energy_from_counts(
    *,
    dense_macs: float,
    sops: float,
    graded_sops: float = 0.0,
    ann_macs: float | None = None,
    convention: str | EnergyConvention = "45nm",
    graded_cost: str = "mac",
) -> EnergyBreakdown:
    """Energy from raw totals (e.g. a paper's printed counts).

    Args:
        dense_macs: first-layer MACs (no rate discount), all steps.
        sops: binary-spike SOPs.
        graded_sops: SOPs whose input is graded or real (priced by ``graded_cost``).
        ann_macs: MACs of the ANN reference (``sum A``), or ``None``.
        convention: ``"45nm"``/``"a"``, ``"77fJ"``/``"b"`` or an :class:`EnergyConvention`.
        graded_cost: ``"mac"`` or ``"ac"``.
    """
    conv = get_convention(convention)
    check_choice("graded_cost", graded_cost, GRADED_COSTS)
    e_graded = conv.e_mac if graded_cost == "mac" else conv.e_sop
    for name, value in (("dense_macs", dense_macs), ("sops", sops), ("graded_sops", graded_sops)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
    return EnergyBreakdown(
        conv.key,
        graded_cost,
        conv.e_mac * dense_macs,
        conv.e_sop * sops,
        e_graded * graded_sops,
        float("nan") if ann_macs is None else conv.e_mac * ann_macs,
    )


def estimate_energy(
    table: OpTable, convention: str | EnergyConvention = "45nm", *, graded_cost: str = "mac"
) -> EnergyBreakdown:
    """Energy per sample of the counts in ``table`` (see the module docstring for the formula)."""
    return energy_from_counts(
        dense_macs=table.dense_macs,
        sops=table.sops_binary,
        graded_sops=table.sops_graded + table.sops_real,
        ann_macs=table.ann_macs,
        convention=convention,
        graded_cost=graded_cost,
    )
