"""Residual block families: Spiking ResNet, SEW-ResNet, MS-ResNet, OA, XOR (XOResNet-style), ORRC, multi-shortcut."""

from .common import NeuronFactory, needs_projection, projection_shortcut, zero_norm_
from .families import FAMILIES, BlockFamily, get_family
from .fc import MembraneShortcutBlock, OABlock, SEWBlock, SpikingBlock, XORBlock
from .ms import MSBasicBlock, MSBottleneck
from .multishortcut import MultiShortcutBasicBlock
from .oa import DOWN_MERGES, OABasicBlock, OABottleneck
from .orrc import ORRC, ORRCBasicBlock, ORRCBottleneck  # registers the orrc family and orrc_resnet* models
from .sew import SEW_CONNECTS, SEWBasicBlock, SEWBottleneck, sew_connect
from .spiking import SpikingBasicBlock, SpikingBottleneck
from .stage import ResidualStage
from .xor import XOR_MODES, XOR_PREVS, XORBasicBlock, XORBottleneck

__all__ = [
    "NeuronFactory",
    "needs_projection",
    "zero_norm_",
    "projection_shortcut",
    "BlockFamily",
    "FAMILIES",
    "get_family",
    "SpikingBasicBlock",
    "SpikingBottleneck",
    "SEWBasicBlock",
    "SEWBottleneck",
    "SEW_CONNECTS",
    "sew_connect",
    "MSBasicBlock",
    "MSBottleneck",
    "MultiShortcutBasicBlock",
    "OABasicBlock",
    "OABottleneck",
    "DOWN_MERGES",
    "ORRC",
    "ORRCBasicBlock",
    "ORRCBottleneck",
    "XORBasicBlock",
    "XORBottleneck",
    "XOR_MODES",
    "XOR_PREVS",
    "ResidualStage",
    "SpikingBlock",
    "SEWBlock",
    "MembraneShortcutBlock",
    "OABlock",
    "XORBlock",
]
