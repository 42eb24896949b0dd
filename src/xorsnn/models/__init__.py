"""Networks: the spiking ResNet skeleton, deep MLP stacks, and the model registry."""

from . import binary_weight  # noqa: F401  (registers the ReverB / multi-shortcut models)
from .ann import (
    ANNResNet,  # registers ann_reverb_resnet20 / ann_resnet19 / ann_cifar_resnetN (ReLU counterparts, KD teachers)
)
from .registry import ModelEntry, create_model, list_models, model_info, register_model
from .resnet import SpikingResNet, check_image_input
from .stack import DeepSNNStack
from .transformers import SpikeDrivenTransformer, Spikformer  # registers spikformer_*, sdt_*

__all__ = [
    "SpikingResNet",
    "ANNResNet",
    "DeepSNNStack",
    "Spikformer",
    "SpikeDrivenTransformer",
    "check_image_input",
    "ModelEntry",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
]


def __getattr__(name: str) -> object:
    """``xorsnn.models.record_attention``: moved to :mod:`xorsnn.analysis` (deprecated alias, one release)."""
    if name == "record_attention":
        from .transformers import moved_to_analysis

        return moved_to_analysis("xorsnn.models", name)
    raise AttributeError(f"module 'xorsnn.models' has no attribute {name!r}")
