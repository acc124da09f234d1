"""Cross-entropy against a multi-annotator target distribution."""
import numpy as np
import pytest
import torch

from mmchh.models.losses import SoftmaxNLLLoss
from mmchh.testing.dense_nll import dense_softmax_nll


def random_case(seed, a=2, shape=(3, 4, 6, 7)):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    index = torch.randint(0, shape[2] * shape[3], shape[:2] + (a, ),
                          generator=g)
    if a > 1:
        index[0, 0, 1] = index[0, 0, 0]  # coincident annotators
    mass = torch.full(shape[:2] + (a, ), 1.0 / a, dtype=torch.float64)
    mass[1, 1] = torch.tensor([1.0] + [0.0] * (a - 1))  # one annotator left
    weights = (torch.rand(shape[:2], generator=g) > 0.2).double()
    weights[0, 0] = 1
    return logits, index, mass, weights


@pytest.mark.parametrize('seed,a', [(0, 2), (1, 3)])
def test_value_and_gradient_match_dense_reference(seed, a):
    logits, index, mass, weights = random_case(seed, a)
    x = logits.clone().requires_grad_(True)
    loss = SoftmaxNLLLoss()(x, index, weights, mass)
    ref = dense_softmax_nll(logits, index.numpy(), weights.numpy(),
                            mass.numpy())
    assert loss.item() == pytest.approx(ref, rel=1e-12)
    loss.backward()
    # autograd through the obvious dense formula
    y = logits.clone().requires_grad_(True)
    log_p = torch.log_softmax(y.flatten(-2), -1)
    target = torch.zeros_like(log_p).scatter_add_(-1, index, mass)
    dense = (-(target * log_p).sum(-1) * weights).sum() / weights.sum()
    dense.backward()
    torch.testing.assert_close(x.grad, y.grad, rtol=1e-10, atol=1e-12)
    # without a graph: the same value
    with torch.no_grad():
        assert SoftmaxNLLLoss()(logits, index, weights,
                                mass).item() == pytest.approx(ref, rel=1e-12)


def test_one_annotator_is_the_one_hot_nll():
    logits, index, mass, weights = random_case(2, a=1)
    mass = torch.ones_like(mass)
    ce = SoftmaxNLLLoss()(logits, index, weights, mass)
    nll = SoftmaxNLLLoss()(logits, index[..., 0], weights)
    assert ce.item() == pytest.approx(nll.item(), rel=1e-12)


def test_hand_computed():
    # 1x1x1x3 map, logits (0, 0, log 2): p = (1/4, 1/4, 1/2); two
    # annotators on pixels 0 and 2 -> CE = -(log(1/4) + log(1/2)) / 2
    logits = torch.tensor([[[[0.0, 0.0, np.log(2.0)]]]])
    loss = SoftmaxNLLLoss()(logits, torch.tensor([[[0, 2]]]), None,
                            torch.tensor([[[0.5, 0.5]]]))
    assert loss.item() == pytest.approx(
        -(np.log(0.25) + np.log(0.5)) / 2, rel=1e-6)


def test_shape_errors_are_clear():
    logits = torch.zeros(1, 2, 3, 3)
    with pytest.raises(ValueError, match='target_mass'):
        SoftmaxNLLLoss()(logits, torch.zeros(1, 2, 2, dtype=torch.long))
