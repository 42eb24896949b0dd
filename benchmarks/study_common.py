"""Helpers shared by ``ablation_xoresnet.py`` and ``depth_study.py``: results files, machine info,
report summaries.

Both studies run in several short invocations (each under the CPU lock) and merge their rows into
one JSON file keyed by run; the markdown table is re-rendered from the whole file each time.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

import xorsnn

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """Device, CPU count, thread count and versions of the running process."""
    return {
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "xorsnn": getattr(xorsnn, "__version__", "?"),
    }


def command_line() -> str:
    """The command that is running, as a copy-pasteable string."""
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def load_rows(path: Path) -> dict[str, dict[str, Any]]:
    """``{key: row}`` from a results JSON file (empty if it does not exist)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("rows"), dict):
        raise ValueError(f"{path}: expected a JSON object with a 'rows' mapping")
    return data["rows"]


def merge_rows(path: Path, new: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Add/replace ``new`` rows in ``path`` (written atomically); returns all rows."""
    rows = load_rows(path)
    rows.update(new)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"rows": rows}, indent=1, sort_keys=True))
    tmp.replace(path)
    return rows


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else None


def summarize_report(report: Any) -> dict[str, Any]:
    """The study's columns from a :class:`xorsnn.analysis.Report` (all per sample).

    * ``neuron_rate``: spikes / neuron outputs over all spiking-neuron layers;
    * ``input_rate``: MAC-weighted input rate of the non-dense synaptic layers (``OpTable.mean_rate``);
    * ``overlap``, ``overlap_of_backbone``: means over blocks where a spike-level merge exists;
    * ``nonbinary_out``: mean fraction of block outputs not in {0, 1} over all blocks;
    * ``novel``: mean XOR novelty over blocks with an active meta-residual (``None`` elsewhere);
    * ``sops``, ``dense_macs``; ``energy_45nm_uJ`` / ``energy_77fJ_uJ`` (graded inputs priced as MACs).
    """
    spikes = sum(n.rate * n.entries for n in report.neurons)
    entries = sum(n.entries for n in report.neurons)
    blocks = report.blocks
    totals = report.totals()
    return {
        "neuron_rate": spikes / entries if entries else None,
        "input_rate": totals["mean_rate"],
        "overlap": _mean([b.overlap for b in blocks]),
        "overlap_of_backbone": _mean([b.overlap_of_backbone for b in blocks]),
        "nonbinary_out": _mean([b.nonbinary_output for b in blocks]),
        "novel": _mean([b.novel_fraction for b in blocks]),
        "sops": totals["sops"],
        "sops_graded_or_real": totals["sops_graded"] + totals["sops_real"],
        "dense_macs": totals["dense_macs"],
        "energy_45nm_uJ": report.energy("45nm", "mac").total_j * 1e6,
        "energy_77fJ_uJ": report.energy("77fJ", "mac").total_j * 1e6,
        "grad_ratio": report.grad_norm_ratio,
    }


def fmt(value: Any, spec: str) -> str:
    """Format a number, ``–`` for missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec)
