"""The analysis report: raw counts, energy under both conventions, firing, redundancy, gradients.

Every number is per sample (one inference of one input). :meth:`Report.to_markdown` prints the
raw counts next to every energy figure and names the convention of the headline.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .energy import CONVENTIONS, GRADED_COSTS, EnergyBreakdown, estimate_energy, get_convention
from .firing import NeuronStats
from .gradients import BlockGradStats, grad_norm_ratio
from .optable import OpTable
from .redundancy import BlockRedundancy, meta_residual_counts

__all__ = ["Report", "format_si"]

TABLES = ("layers", "neurons", "blocks", "gradients", "energy")


def format_si(value: float | None, unit: str = "", digits: int = 4) -> str:
    """``1.234e-6, "J"`` -> ``"1.234 µJ"``; ``3.88e9`` -> ``"3.88 G"``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if value == 0:
        return f"0 {unit}".strip()
    prefixes = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"),
                (1e-12, "p"), (1e-15, "f")]
    for scale, p in prefixes:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {p}{unit}".strip()
    return f"{value:.{digits}g} {unit}".strip()


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}g}"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of a markdown table: ``header``, its ``|---|`` rule, then one line per row of cell texts."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _clean(obj: Any) -> Any:
    """JSON-safe copy (NaN -> None, tuples -> lists)."""
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


@dataclass
class Report:
    """Result of :func:`xorsnn.analysis.analyze`.

    Attributes:
        model: model description.
        T: time steps of the analysed forward passes.
        samples, batches: how much data the statistics cover.
        ops: per-layer raw counts (:class:`~xorsnn.analysis.optable.OpTable`).
        neurons: neuron-layer output rates.
        blocks: residual-block redundancy metrics.
        gradients: per-block gradient statistics (``None`` when not computed).
        headline_convention, headline_graded_cost: which energy figure the headline states.
        notes: how things were counted (first layer, flagged layers, skipped metrics).
        raster, raster_layer: optional ``[T, N]`` raster of one layer for one sample; ``raster_info``
            says what it shows (sample, channel, per-sample shape, neurons shown).
    """

    model: str
    T: int
    samples: int
    batches: int
    ops: OpTable
    neurons: list[NeuronStats] = field(default_factory=list)
    blocks: list[BlockRedundancy] = field(default_factory=list)
    gradients: list[BlockGradStats] | None = None
    headline_convention: str = "45nm"
    headline_graded_cost: str = "mac"
    notes: list[str] = field(default_factory=list)
    raster: torch.Tensor | None = None
    raster_layer: str | None = None
    raster_info: dict[str, Any] | None = None

    # -- energy -------------------------------------------------------------------------------
    def energy(self, convention: str = "45nm", graded_cost: str = "mac") -> EnergyBreakdown:
        """Energy per sample under ``convention`` (``"45nm"``/``"a"`` or ``"77fJ"``/``"b"``)."""
        return estimate_energy(self.ops, convention, graded_cost=graded_cost)

    def energies(self) -> list[EnergyBreakdown]:
        """Both conventions x both ways of pricing graded inputs."""
        return [self.energy(c, g) for c in CONVENTIONS for g in GRADED_COSTS]

    @property
    def headline(self) -> EnergyBreakdown:
        return self.energy(self.headline_convention, self.headline_graded_cost)

    def headline_text(self) -> str:
        e = self.headline
        conv = get_convention(self.headline_convention)
        how = "as MACs" if self.headline_graded_cost == "mac" else "as ACs (as published)"
        return (
            f"{format_si(e.total_j, 'J')} per inference under convention {conv.label}; graded/real inputs "
            f"priced {how}; ANN reference {format_si(e.ann_j, 'J')} ({_fmt(e.ann_ratio, 3)}x)"
        )

    @property
    def grad_norm_ratio(self) -> float:
        """First/last block gradient-norm ratio (``nan`` without gradients)."""
        return grad_norm_ratio(self.gradients) if self.gradients else float("nan")

    # -- tables -------------------------------------------------------------------------------
    def table(self, name: str) -> list[dict[str, Any]]:
        """Rows of ``"layers"``, ``"neurons"``, ``"blocks"``, ``"gradients"`` or ``"energy"``."""
        if name == "layers":
            return self.ops.to_rows()
        if name == "neurons":
            return [n.to_dict() for n in self.neurons]
        if name == "blocks":
            return [b.to_dict() for b in self.blocks]
        if name == "gradients":
            return [g.to_dict() for g in self.gradients or []]
        if name == "energy":
            return [e.to_dict() for e in self.energies()]
        raise ValueError(f"table must be one of {TABLES}, got {name!r}")

    def totals(self) -> dict[str, float]:
        """The network's raw counts per sample and its mean input rate (the "Raw counts" table)."""
        counts = ("dense_macs", "sops_binary", "sops_graded", "sops_real", "sops", "ann_macs")
        return {**{k: getattr(self.ops, k) for k in counts}, "mean_rate": self.ops.mean_rate()}

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "model": self.model,
            "T": self.T,
            "samples": self.samples,
            "batches": self.batches,
            "totals": self.totals(),
            "headline": {
                "convention": self.headline_convention,
                "graded_cost": self.headline_graded_cost,
                "text": self.headline_text(),
                **self.headline.to_dict(),
            },
            "notes": list(self.notes),
        }
        for name in TABLES:
            d[name] = self.table(name)
        d["grad_norm_ratio"] = self.grad_norm_ratio
        if self.raster is not None:
            d["raster"] = {"layer": self.raster_layer, "shape": list(self.raster.shape),
                           "rate": float((self.raster != 0).float().mean()), **(self.raster_info or {})}
        return _clean(d)

    def to_json(self, path: str | Path | None = None, *, indent: int = 2) -> str:
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_csv(self, table: str = "layers", path: str | Path | None = None) -> str:
        rows = self.table(table)
        buf = io.StringIO()
        if rows:
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            for r in rows:
                writer.writerow({k: (";".join(map(str, v)) if isinstance(v, list) else v) for k, v in r.items()})
        text = buf.getvalue()
        if path is not None:
            Path(path).write_text(text)
        return text

    def save(self, directory: str | Path) -> list[Path]:
        """Write ``report.md``, ``report.json`` and one CSV per table into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        paths = [d / "report.md", d / "report.json"]
        paths[0].write_text(self.to_markdown())
        self.to_json(paths[1])
        for name in TABLES:
            if self.table(name):
                p = d / f"{name}.csv"
                self.to_csv(name, p)
                paths.append(p)
        return paths

    # -- markdown -----------------------------------------------------------------------------
    def to_markdown(self) -> str:
        o = self.ops
        lines = [
            f"# xorsnn analysis: {self.model}",
            "",
            f"T = {self.T}; {self.samples} samples in {self.batches} batch(es). All counts are per sample "
            "(one inference).",
            "",
            f"**Headline:** {self.headline_text()}.",
            "",
            "## Raw counts",
            "",
            "| quantity | value |",
            "|---|---|",
            f"| first-layer (dense) MACs | {format_si(o.dense_macs)} |",
            f"| SOPs, binary-spike inputs | {format_si(o.sops_binary)} |",
            f"| SOPs, graded (integer) inputs -- flagged | {format_si(o.sops_graded)} |",
            f"| SOPs, real-valued inputs -- flagged | {format_si(o.sops_real)} |",
            f"| SOPs, all (as the literature counts them) | {format_si(o.sops)} |",
            f"| ANN MACs of the same network (sum A_l) | {format_si(o.ann_macs)} |",
            f"| mean input rate (MAC-weighted, non-dense layers) | {_fmt(o.mean_rate())} |",
            "",
            "## Energy per inference",
            "",
        ]
        lines += _md_table(
            ["convention", "graded/real priced as", "first layer", "binary SOPs", "graded/real SOPs", "total", "ANN",
             "ANN/SNN"],
            [[get_convention(e.convention).label, e.graded_cost.upper(), format_si(e.dense_j, "J"),
              format_si(e.binary_j, "J"), format_si(e.graded_j, "J"), f"**{format_si(e.total_j, 'J')}**",
              format_si(e.ann_j, "J"), _fmt(e.ann_ratio, 3)] for e in self.energies()])
        lines += ["", "## Synaptic layers and extra ops", ""]
        lines += _md_table(
            ["layer", "op", "input", "A_l (MACs)", "steps", "fr_l", "SOPs", "dense MACs", "non-unit share", "max abs"],
            [[r.name, r.op, r.kind + (" (dense)" if r.dense else " ⚠" if r.flagged else ""), format_si(r.macs),
              _fmt(r.steps), _fmt(r.rate), format_si(r.sops), format_si(r.dense_macs), _fmt(r.nonbinary_fraction, 3),
              _fmt(r.max_abs, 3)] for r in o])
        if self.neurons:
            lines += ["", "## Neuron layers", ""]
            lines += _md_table(["layer", "kind", "rate", "rate per step"],
                               [[n.name, n.kind, _fmt(n.rate), ", ".join(f"{v:.3f}" for v in n.rate_per_step)]
                                for n in self.neurons])
        if self.blocks:
            lines += [
                "",
                "## Residual blocks: spike redundancy",
                "",
                "S = shortcut spikes, A = backbone spikes; overlap = fraction of positions where both fire "
                "(what OR removes and ADD double-counts); novel = nnz(XOR(x_l, x_l-1)) / nnz(x_l).",
                "",
            ]
            active, total = meta_residual_counts(self.blocks)
            if total:
                lines += [f"XOR meta-residual active in **{active} of {total}** XOR identity blocks "
                          "(the others have no same-shape previous stream and read x_l itself).", ""]
            lines += _md_table(
                ["block", "type", "merge", "out rate", "non-binary out", "S rate", "A rate", "overlap", "overlap/A",
                 "novel", "note"],
                [[b.name, b.block, b.merge, _fmt(b.output_rate), _fmt(b.nonbinary_output), _fmt(b.shortcut_rate),
                  _fmt(b.backbone_rate), _fmt(b.overlap), _fmt(b.overlap_of_backbone), _fmt(b.novel_fraction), b.note]
                 for b in self.blocks])
        if self.gradients:
            lines += ["", "## Gradients per block", "",
                      f"First/last block gradient-norm ratio: {_fmt(self.grad_norm_ratio)}.", ""]
            lines += _md_table(["block", "grad norm", "cos(prev)", "compared", "note"],
                               [[g.name, _fmt(g.grad_norm), _fmt(g.cos_prev), ", ".join(g.compared), g.note]
                                for g in self.gradients])
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"
