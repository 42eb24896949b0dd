"""xorsnn: deep spiking neural networks built on logic operations.

Tensors are time-first, ``[T, B, ...]``. Quick tour::

    import torch, xorsnn
    model = xorsnn.create_model("xoresnet19", num_classes=10, T=4)
    logits = model(torch.rand(8, 3, 32, 32))     # [T=4, B=8, 10]
    pred = logits.mean(0).argmax(-1)

Sub-packages, in dependency order: :mod:`xorsnn.neurons` (LIF/IF/real-valued neurons,
surrogates) -> :mod:`xorsnn.ops` (spike logic) -> :mod:`xorsnn.layers` -> :mod:`xorsnn.blocks`
(five residual families) -> :mod:`xorsnn.models` (skeleton, registry).
"""

from .models import DeepSNNStack, SpikingResNet, create_model, list_models, model_info, register_model

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
    "SpikingResNet",
    "DeepSNNStack",
]
