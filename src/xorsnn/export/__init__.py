"""Export trained networks for inference: exact re-parameterisation of binary-weight SNNs and op counts.

>>> from xorsnn.export import reparameterize, op_report
>>> inference = reparameterize(model)          # every block weight exactly ±1, same outputs
>>> print(op_report(inference, images).to_markdown())
>>> fast = pack_model(inference)                # bit-packed popcount convolutions (numba), same logits
>>> export_nir(model, images, "model.nir")      # NIR graph (needs the nir extra)
"""

from .inference import ChannelAffine, FoldedNeuron
from .nir_export import export_nir, to_nir
from .opcount import OpReport, OpRow, op_report
from .packed import PackedConv2d, PackedLinear, pack_model, packed_layers
from .reparam import reparameterize

__all__ = [
    "reparameterize",
    "op_report",
    "OpReport",
    "OpRow",
    "FoldedNeuron",
    "ChannelAffine",
    "pack_model",
    "packed_layers",
    "PackedConv2d",
    "PackedLinear",
    "to_nir",
    "export_nir",
]
