import itertools

import pytest
import torch

from xorsnn.ops import OR_FORMS, XOR_FORMS, spike_and, spike_iand, spike_not, spike_or, spike_xnor, spike_xor

PAIRS = list(itertools.product([0, 1], repeat=2))
A = torch.tensor([a for a, _ in PAIRS], dtype=torch.float32)
B = torch.tensor([b for _, b in PAIRS], dtype=torch.float32)


def _table(fn):
    return torch.tensor([float(fn(bool(a), bool(b))) for a, b in PAIRS])


@pytest.mark.parametrize("form", OR_FORMS)
def test_or_truth_table(form):
    assert torch.equal(spike_or(A, B, form), _table(lambda a, b: a or b))


@pytest.mark.parametrize("form", XOR_FORMS)
def test_xor_xnor_truth_tables(form):
    assert torch.equal(spike_xor(A, B, form), _table(lambda a, b: a != b))
    assert torch.equal(spike_xnor(A, B, form), _table(lambda a, b: a == b))


def test_and_iand_not_truth_tables():
    assert torch.equal(spike_and(A, B), _table(lambda a, b: a and b))
    assert torch.equal(spike_iand(A, B), _table(lambda a, b: (not a) and b))
    assert torch.equal(spike_not(A), 1 - A)


def test_identities_on_random_spikes():
    a = (torch.rand(1000) < 0.3).float()
    b = (torch.rand(1000) < 0.6).float()
    # OR = ADD with the overlap removed; XOR = OR - AND; SEW-ADD = XOR + 2 AND
    assert torch.equal(spike_or(a, b), a + spike_iand(a, b))
    assert torch.equal(spike_xor(a, b), spike_or(a, b) - spike_and(a, b))
    assert torch.equal(a + b, spike_xor(a, b) + 2 * spike_and(a, b))


def test_poly_gradients():
    a = torch.tensor([0.0, 0.0, 1.0, 1.0], requires_grad=True)
    b = torch.tensor([0.0, 1.0, 0.0, 1.0])
    spike_or(a, b).sum().backward()
    assert torch.equal(a.grad, 1 - b)
    a.grad = None
    spike_xor(a, b).sum().backward()
    assert torch.equal(a.grad, 1 - 2 * b)


def test_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        spike_or(torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="floating-point"):
        spike_xor(torch.zeros(3, dtype=torch.int64), torch.zeros(3))
    with pytest.raises(ValueError, match="form must be one of"):
        spike_or(A, B, "min")
