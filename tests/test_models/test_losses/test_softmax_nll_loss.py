import numpy as np
import pytest
import torch

from mmchh.models.losses import SoftmaxNLLLoss
from mmchh.testing.dense_nll import dense_softmax_nll


def random_case(seed, scale=3.0, shape=(3, 4, 7, 9)):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g) * scale
    index = torch.randint(0, shape[2] * shape[3], shape[:2], generator=g)
    weights = (torch.rand(shape[:2], generator=g) > 0.3).float()
    weights[0, 0] = 1
    return logits, index, weights


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_matches_dense_float64_reference(seed):
    logits, index, weights = random_case(seed)
    loss = SoftmaxNLLLoss()(logits, index, weights)
    assert loss.dtype == torch.float32
    ref = dense_softmax_nll(logits, index.numpy(), weights.numpy())
    assert loss.item() == pytest.approx(ref, rel=1e-6)


def test_fractional_weights_and_loss_weight():
    logits, index, _ = random_case(3)
    weights = torch.rand(3, 4, generator=torch.Generator().manual_seed(9))
    loss = SoftmaxNLLLoss(loss_weight=2.5)(logits, index, weights)
    ref = dense_softmax_nll(logits, index.numpy(), weights.numpy())
    assert loss.item() == pytest.approx(2.5 * ref, rel=1e-6)
    unweighted = SoftmaxNLLLoss(use_target_weight=False)(logits, index,
                                                         weights)
    ref = dense_softmax_nll(logits, index.numpy(), np.ones((3, 4)))
    assert unweighted.item() == pytest.approx(ref, rel=1e-6)


def test_finite_for_huge_logits():
    logits, index, weights = random_case(4, scale=1e4)
    logits.requires_grad_(True)
    loss = SoftmaxNLLLoss()(logits, index, weights)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    ref = dense_softmax_nll(logits, index.numpy(), weights.numpy())
    assert loss.item() == pytest.approx(ref, rel=1e-6)


def test_float32_under_autocast():
    logits, index, weights = random_case(5)
    low = logits.bfloat16()
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        loss = SoftmaxNLLLoss()(low, index, weights)
    assert loss.dtype == torch.float32
    # exact for the bf16 values it was given: no bf16 arithmetic inside
    ref = dense_softmax_nll(low.float(), index.numpy(), weights.numpy())
    assert loss.item() == pytest.approx(ref, rel=1e-6)


def test_no_countable_landmark_gives_zero_with_gradient():
    logits, index, _ = random_case(6)
    logits.requires_grad_(True)
    loss = SoftmaxNLLLoss()(logits, index, torch.zeros(3, 4))
    loss.backward()
    assert loss.item() == 0 and torch.equal(logits.grad,
                                            torch.zeros_like(logits))


def test_gradient_is_softmax_minus_onehot():
    logits, index, _ = random_case(7, shape=(1, 1, 3, 4))
    logits.requires_grad_(True)
    SoftmaxNLLLoss()(logits, index, torch.ones(1, 1)).backward()
    expected = torch.softmax(logits.detach().reshape(-1), 0)
    expected[index.item()] -= 1
    torch.testing.assert_close(logits.grad.reshape(-1), expected)


def test_rejects_dense_targets():
    with pytest.raises(ValueError, match='SoftmaxHeatmap codec'):
        SoftmaxNLLLoss()(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3))


def test_fused_gradient_matches_autograd_and_gradcheck():
    from mmchh.codecs.utils import nll_at_index
    from mmchh.models.losses.softmax_nll_loss import NLLAtIndexFunction
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64)
    index = torch.randint(0, 20, (2, 3), generator=g)
    weights = torch.rand(2, 3, generator=g, dtype=torch.float64)
    index[0, 1] = index[0, 2]  # same pixel in two maps
    loss_fn = SoftmaxNLLLoss()
    fused = logits.clone().requires_grad_(True)
    loss_fn(fused, index, weights).backward()
    plain = logits.clone().requires_grad_(True)
    ((nll_at_index(plain, index) * weights).sum() / weights.sum()).backward()
    torch.testing.assert_close(fused.grad, plain.grad, rtol=1e-10,
                               atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda x: NLLAtIndexFunction.apply(x.flatten(-2), index),
        (logits.clone().requires_grad_(True), ))
    # half-precision logits (AMP) get a half-precision gradient
    half = logits.half().requires_grad_(True)
    loss_fn(half, index, weights).backward()
    assert half.grad.dtype == torch.float16
    torch.testing.assert_close(half.grad.double(), plain.grad, rtol=1e-2,
                               atol=1e-3)
