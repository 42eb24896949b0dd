"""Analysis of spiking networks: firing rates, op counts, energy, spike redundancy, gradients.

Entry point::

    from xorsnn.analysis import analyze
    report = analyze(model, [(x, y)], T=4)
    print(report.to_markdown())          # raw counts + energy under both conventions

Building blocks, one concept per module:

=======================  ===================================================================
module                   what
=======================  ===================================================================
``kinds``                binary / graded / real input classification
``ops``                  MACs of conv/linear layers; the ``extra_ops`` protocol (OpRecord)
``attention_ops``        op counters for SSA ``Q K^T V``, a-XNOR (expanded form), SDSA
``optable``              per-layer raw counts (A_l, steps, fr_l, SOPs) and totals
``energy``               the two published energy conventions
``firing``               FiringMonitor: hooks recording input/output rates
``redundancy``           RedundancyMonitor: shortcut/backbone overlap, XOR novelty
``gradients``            per-block gradient norms and consecutive-block cosines
``raster``               spike rasters of one layer
``report``               the Report (markdown / JSON / CSV)
``plots``                matplotlib figures (optional dependency, imported lazily)
``analyze``              ``analyze(model, batches, ...) -> Report``
=======================  ===================================================================

See ``docs/energy.md`` for the counting rules and worked examples (SEW-ResNet-34, ReverB).
"""

from . import energy
from .analyze import analyze, split_batch
from .attention_ops import attention_records, attention_table, axnor_ops, sdsa_ops, ssa_ops
from .attention_record import AttentionRecord, record_attention
from .energy import *  # noqa: F403
from .firing import FiringMonitor, NeuronStats, count_ops
from .gradients import BlockGradStats, accumulate_gradients, block_gradient_stats, grad_norm_ratio, mean_output_ce
from .kinds import KINDS, ValueCounts, worst_kind
from .ops import (
    SYNAPTIC_TYPES,
    OpRecord,
    extra_op_records,
    matmul_op,
    op_counter_for,
    register_op_counter,
    synaptic_events,
    synaptic_macs,
)
from .optable import LayerOps, OpTable
from .raster import RasterRecorder, capture_raster
from .redundancy import (
    BlockAnatomy,
    BlockRedundancy,
    RedundancyMonitor,
    block_anatomy,
    find_blocks,
)
from .report import Report, format_si

__all__ = [
    "analyze",
    "split_batch",
    "Report",
    "format_si",
    "count_ops",
    # counts
    "KINDS",
    "ValueCounts",
    "worst_kind",
    "OpRecord",
    "SYNAPTIC_TYPES",
    "register_op_counter",
    "op_counter_for",
    "extra_op_records",
    "synaptic_events",
    "synaptic_macs",
    "matmul_op",
    "ssa_ops",
    "attention_records",
    "attention_table",
    "axnor_ops",
    "sdsa_ops",
    "LayerOps",
    "OpTable",
    # energy
    *energy.__all__,
    # monitors
    "FiringMonitor",
    "NeuronStats",
    "RedundancyMonitor",
    "BlockRedundancy",
    "BlockAnatomy",
    "block_anatomy",
    "find_blocks",
    "BlockGradStats",
    "block_gradient_stats",
    "grad_norm_ratio",
    "accumulate_gradients",
    "mean_output_ce",
    "RasterRecorder",
    "capture_raster",
    "AttentionRecord",
    "record_attention",
]
