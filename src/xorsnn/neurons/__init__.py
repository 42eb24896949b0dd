"""Spiking neurons (multi-step, time-first ``[T, B, ...]``) and surrogate gradients."""

from .backends import BACKENDS, fused_cpu_available, multistep, multistep_fused_cpu, resolve_backend
from .dynamics import NeuronDynamics, multistep_autograd, multistep_bptt, single_step
from .factory import NEURON_TYPES, make_neuron, merge_neuron_spec, neuron_factory
from .lif import IF, LIF, RealSpikeLIF, SpikingNeuron
from .surrogate import SURROGATES, ATan, Rectangle, Sigmoid, Surrogate, Triangle, get_surrogate

__all__ = [
    "SpikingNeuron",
    "LIF",
    "IF",
    "RealSpikeLIF",
    "NeuronDynamics",
    "single_step",
    "multistep_autograd",
    "multistep_bptt",
    "multistep",
    "multistep_fused_cpu",
    "fused_cpu_available",
    "resolve_backend",
    "BACKENDS",
    "Surrogate",
    "ATan",
    "Sigmoid",
    "Triangle",
    "Rectangle",
    "SURROGATES",
    "get_surrogate",
    "NEURON_TYPES",
    "make_neuron",
    "neuron_factory",
    "merge_neuron_spec",
]
