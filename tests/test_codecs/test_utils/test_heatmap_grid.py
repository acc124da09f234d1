import numpy as np
import pytest
import torch

from mmchh.codecs.utils import (heatmap_cell, heatmap_to_input,
                                input_to_heatmap, refine_subpixel)


def test_grid_hand_computed():
    # scale 4: heatmap pixel 0 covers input pixels 0..3, centre 1.5
    assert heatmap_to_input(np.array([0.0, 0.0]), 4.0).tolist() == [1.5, 1.5]
    assert heatmap_to_input(np.array([2.0, 1.0]), (4.0, 2.0)).tolist() == [
        9.5, 2.5
    ]
    assert input_to_heatmap(np.array([1.5, 2.5]), (4.0, 2.0)).tolist() == [
        0.0, 1.0
    ]
    assert heatmap_cell(np.array([[-0.5, 3.49], [3.5, 7.5]]), 4.0).tolist() \
        == [[0, 0], [1, 2]]
    # full resolution: the identity and nearest-pixel rounding
    assert heatmap_to_input(np.array([3.0, 5.0]), 1.0).tolist() == [3, 5]
    assert heatmap_cell(np.array([2.5, 2.49]), 1.0).tolist() == [3, 2]


def test_grid_round_trip_numpy_and_torch():
    rng = np.random.default_rng(0)
    xy = rng.uniform(-1, 300, (50, 2))
    s = (3.3, 4.0)
    np.testing.assert_allclose(
        heatmap_to_input(input_to_heatmap(xy, s), s), xy, atol=1e-9)
    t = torch.as_tensor(xy)
    np.testing.assert_allclose(
        input_to_heatmap(t, s).numpy(), input_to_heatmap(xy, s), atol=1e-12)
    np.testing.assert_allclose(
        heatmap_to_input(t, s).numpy(), heatmap_to_input(xy, s), atol=1e-12)


@pytest.mark.parametrize('radius', [1, 2])
def test_refine_subpixel_against_slow_loop(radius):
    g = torch.Generator().manual_seed(radius)
    probs = torch.rand(3, 4, 7, 9, generator=g, dtype=torch.float64)**6
    # put some modes on the borders and corners
    probs[0, 0, 0, 0] = 5
    probs[1, 1, 6, 8] = 5
    probs[2, 2, 3, 0] = 5
    flat = probs.flatten(-2)
    arg = flat.argmax(-1)
    coords = torch.stack((arg % 9, arg // 9), -1).double()
    out = refine_subpixel(probs, coords, radius)
    assert out.shape == (3, 4, 2) and out.dtype == torch.float64
    for b in range(3):
        for k in range(4):
            x0, y0 = int(coords[b, k, 0]), int(coords[b, k, 1])
            num, den = np.zeros(2), 0.0
            for y in range(y0 - radius, y0 + radius + 1):
                for x in range(x0 - radius, x0 + radius + 1):
                    if 0 <= x < 9 and 0 <= y < 7:
                        v = float(probs[b, k, y, x])
                        num += v * np.array([x, y])
                        den += v
            np.testing.assert_allclose(out[b, k].numpy(), num / den,
                                       rtol=1e-12)


def test_refine_subpixel_edge_cases():
    probs = torch.zeros(1, 2, 5, 5)
    probs[0, 1, 2, 2] = 1.0  # one-hot: stays on the pixel
    coords = torch.tensor([[[1.0, 3.0], [2.0, 2.0]]])
    out = refine_subpixel(probs, coords, 1)
    # an empty map keeps its mode
    assert out.tolist() == [[[1.0, 3.0], [2.0, 2.0]]]
    with pytest.raises(ValueError, match='radius'):
        refine_subpixel(probs, coords, 0)
