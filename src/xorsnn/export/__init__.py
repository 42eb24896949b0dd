"""Export trained networks for inference: exact re-parameterisation of binary-weight SNNs and op counts.

>>> from xorsnn.export import reparameterize, op_report
>>> inference = reparameterize(model)          # every block weight exactly ±1, same outputs
>>> print(op_report(inference, images).to_markdown())
"""

from .inference import ChannelAffine, FoldedNeuron
from .opcount import OpReport, OpRow, op_report
from .reparam import reparameterize

__all__ = ["reparameterize", "op_report", "OpReport", "OpRow", "FoldedNeuron", "ChannelAffine"]
