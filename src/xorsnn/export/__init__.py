"""Export trained networks for inference: exact re-parameterisation of binary-weight SNNs and op counts.

>>> from xorsnn.export import reparameterize, op_report
>>> inference = reparameterize(model)          # every block weight exactly ±1, same outputs
>>> print(op_report(inference, images).to_markdown())
>>> fast = pack_model(inference)                # bit-packed popcount convolutions (numba), same logits
>>> export_nir(model, images, "model.nir")      # NIR graph (needs the nir extra)
"""

from . import inference, nir_export, opcount, packed, reparam  # noqa: F401
from .inference import *  # noqa: F403
from .nir_export import *  # noqa: F403
from .opcount import *  # noqa: F403
from .packed import *  # noqa: F403
from .reparam import *  # noqa: F403

__all__ = [
    *inference.__all__, *nir_export.__all__, *opcount.__all__, *packed.__all__, *reparam.__all__,
]
