"""The raw operation counts of a network: one row per synaptic layer or reported extra op.

For row ``l`` (all numbers **per sample**, i.e. per inference of one input):

==============  =================================================================================
column          meaning
==============  =================================================================================
``macs``        ``A_l``: ANN-equivalent MACs of one execution (one sample at one time step)
``steps``       executions per sample: ``T`` for a time-distributed layer, 1 for a stem that runs
                once on a static image and is repeated (what the code does, measured)
``rate``        ``fr_l``: non-zero fraction of the layer's input (its event operand)
``kind``        ``binary`` / ``graded`` / ``real`` input (see :mod:`xorsnn.analysis.kinds`)
``dense``       priced as dense MACs with no rate discount (the first layer on real-valued input)
``sops``        ``fr_l * steps * A_l`` for non-dense rows (0 for dense rows)
``dense_macs``  ``steps * A_l`` for dense rows (0 otherwise)
==============  =================================================================================

SOPs are split by input kind: ``sops_binary`` are true spike-driven accumulates; ``sops_graded``
and ``sops_real`` count non-zero multi-valued inputs and are *not* single-bit events.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace

from .._checks import check_choice
from .kinds import KINDS

__all__ = ["LayerOps", "OpTable"]


@dataclass(frozen=True)
class LayerOps:
    """Raw counts of one synaptic layer / extra op, per sample (see the module docstring)."""

    name: str
    op: str
    macs: float
    steps: float
    rate: float
    kind: str = "binary"
    dense: bool = False
    nonbinary_fraction: float = 0.0
    max_abs: float = 1.0

    def __post_init__(self) -> None:
        check_choice(f"LayerOps {self.name!r}: kind", self.kind, KINDS)
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"LayerOps {self.name!r}: rate must be in [0, 1], got {self.rate!r}")
        if self.macs < 0 or self.steps < 0:
            raise ValueError(f"LayerOps {self.name!r}: macs and steps must be >= 0")

    @property
    def sops(self) -> float:
        """``fr * steps * A`` (0 for dense rows)."""
        return 0.0 if self.dense else self.rate * self.steps * self.macs

    @property
    def dense_macs(self) -> float:
        """``steps * A`` for dense rows (0 otherwise)."""
        return self.steps * self.macs if self.dense else 0.0

    @property
    def flagged(self) -> bool:
        """A non-dense row whose input is graded or real: its SOPs are not single-bit events."""
        return not self.dense and self.kind != "binary"

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.update(sops=self.sops, dense_macs=self.dense_macs)
        return d


class OpTable:
    """Ordered rows of :class:`LayerOps` with totals (per sample)."""

    def __init__(self, rows: Iterable[LayerOps]) -> None:
        self.rows = list(rows)

    def __iter__(self) -> Iterator[LayerOps]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, name: str) -> LayerOps:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no row named {name!r}; rows are {[r.name for r in self.rows]}")

    # -- totals -------------------------------------------------------------------------------
    @property
    def dense_macs(self) -> float:
        """MACs of the dense rows (first layer): ``sum steps * A``."""
        return sum(r.dense_macs for r in self.rows)

    def sops_of(self, kind: str) -> float:
        """SOPs of the non-dense rows whose input is ``kind``."""
        check_choice("kind", kind, KINDS)
        return sum(r.sops for r in self.rows if r.kind == kind)

    @property
    def sops_binary(self) -> float:
        return self.sops_of("binary")

    @property
    def sops_graded(self) -> float:
        return self.sops_of("graded")

    @property
    def sops_real(self) -> float:
        return self.sops_of("real")

    @property
    def sops(self) -> float:
        """All SOPs, as the literature counts them (every non-zero input of a non-dense row)."""
        return sum(r.sops for r in self.rows)

    @property
    def ann_macs(self) -> float:
        """MACs of the same network as an ANN run once: ``sum A_l`` over all rows."""
        return sum(r.macs for r in self.rows)

    @property
    def sparse_macs(self) -> float:
        """``sum A_l`` over the non-dense rows (the ``A`` of ``SOP = fr * T * A``)."""
        return sum(r.macs for r in self.rows if not r.dense)

    def mean_rate(self) -> float:
        """MAC-weighted input rate of the non-dense rows: ``sops / sum(steps * A)``."""
        denom = sum(r.steps * r.macs for r in self.rows if not r.dense)
        return self.sops / denom if denom else 0.0

    # -- what-if ------------------------------------------------------------------------------
    def with_rate(self, rate: float) -> OpTable:
        """A copy where every non-dense row has input rate ``rate`` (literature-style estimates)."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate!r}")
        return OpTable(r if r.dense else replace(r, rate=float(rate)) for r in self.rows)

    def with_steps(self, steps: float, *, dense: bool | None = None) -> OpTable:
        """A copy with ``steps`` set on every row (``dense=True/False``: only dense / non-dense rows)."""
        return OpTable(
            replace(r, steps=float(steps)) if dense is None or r.dense == dense else r for r in self.rows
        )

    def to_rows(self) -> list[dict[str, object]]:
        return [r.to_dict() for r in self.rows]
