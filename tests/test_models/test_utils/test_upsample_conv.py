"""nearest_upsample_conv3x3: the 3 x 3 conv of a x2 nearest upsampling,
computed on the low-resolution input, against the slow obvious way."""
import numpy as np
import pytest
import torch

from mmchh.models.utils import (nearest_upsample_conv3x3,
                                upsample_conv3x3_phase_kernels)


def slow_reference(x, w):
    """Upsample by repeating every pixel 2 x 2, zero-pad by 1, and sum the
    3 x 3 products pixel by pixel (float64, loops)."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    n, ci, h, wd = x.shape
    up = x.repeat(2, axis=2).repeat(2, axis=3)
    pad = np.zeros((n, ci, 2 * h + 2, 2 * wd + 2))
    pad[:, :, 1:-1, 1:-1] = up
    out = np.zeros((n, w.shape[0], 2 * h, 2 * wd))
    for b in range(n):
        for o in range(w.shape[0]):
            for r in range(2 * h):
                for c in range(2 * wd):
                    out[b, o, r, c] = np.sum(pad[b, :, r:r + 3, c:c + 3] *
                                             w[o])
    return out


@pytest.mark.parametrize('shape', [(1, 1, 2, 2), (2, 3, 5, 4), (1, 4, 1, 3)],
                         ids=['tiny', 'batch', 'one_row'])
def test_matches_the_slow_reference(shape):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    w = torch.randn(3, shape[1], 3, 3, generator=g, dtype=torch.float64)
    got = nearest_upsample_conv3x3(x, w)
    assert got.shape == (shape[0], 3, 2 * shape[2], 2 * shape[3])
    np.testing.assert_allclose(got.numpy(), slow_reference(x, w),
                               rtol=1e-12, atol=1e-12)
    # and the float32 path torch users run
    np.testing.assert_allclose(
        nearest_upsample_conv3x3(x.float(), w.float()).numpy(),
        slow_reference(x, w), rtol=1e-4, atol=1e-4)


def test_hand_case():
    # x = [[1, 2]], all-ones kernel: the upsampled row pair is
    # [[1, 1, 2, 2], [1, 1, 2, 2]]; each output sums its 3 x 3 window
    # (zero outside): columns see {1,1}, {1,1,2}, {1,2,2}, {2,2} over 2 rows
    x = torch.tensor([[[[1.0, 2.0]]]], dtype=torch.float64)
    w = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    expected = [[4.0, 8.0, 10.0, 8.0], [4.0, 8.0, 10.0, 8.0]]
    assert nearest_upsample_conv3x3(x, w)[0, 0].tolist() == expected
    # phase (0, 0) of the all-ones kernel: rows {-1} / {0, +1} -> 1 / 2,
    # likewise columns
    k = upsample_conv3x3_phase_kernels(w)
    assert k.shape == (4, 1, 3, 3)
    # phase (0, 0) reads input rows/columns i - 1, i: the top-left 2 x 2
    assert k[0, 0].tolist() == [[1.0, 2.0, 0.0], [2.0, 4.0, 0.0],
                                [0.0, 0.0, 0.0]]
    # phase (1, 1) reads i, i + 1: the bottom-right 2 x 2
    assert k[3, 0].tolist() == [[0.0, 0.0, 0.0], [0.0, 4.0, 2.0],
                                [0.0, 2.0, 1.0]]
    # every phase kernel keeps the kernel's total
    assert k.sum((1, 2, 3)).tolist() == [9.0] * 4


def test_gradients_reach_the_3x3_weight():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 3, 4, generator=g, dtype=torch.float64,
                    requires_grad=True)
    w = torch.randn(2, 2, 3, 3, generator=g, dtype=torch.float64,
                    requires_grad=True)
    assert torch.autograd.gradcheck(nearest_upsample_conv3x3, (x, w))


def test_refuses_other_kernels():
    with pytest.raises(ValueError, match=r'\(O, I, 3, 3\)'):
        upsample_conv3x3_phase_kernels(torch.zeros(2, 2, 5, 5))
