"""probability_within_radius against a float64 loop over every pixel, on
random maps (discs and ellipses, per-map radii and pixel sizes, points near
and outside the edges), a hand-computed 3x3 case, and ScoreRadius: what the
head's keypoint_scores count for samples with and without a spacing."""
import math

import numpy as np
import pytest
import torch

from mmchh.codecs.utils import (ScoreRadius, probability_within_radius,
                                softmax_2d)
from mmchh.utils.errors import InputError


def slow_within(prob_map, cx, cy, radius, sx=1.0, sy=1.0):
    """The mass of the pixels whose centre is within ``radius``, looping
    over every pixel in float64."""
    p = np.asarray(prob_map, dtype=np.float64)
    if not (math.isfinite(cx) and math.isfinite(cy)):
        return float('nan')
    total = 0.0
    for y in range(p.shape[0]):
        for x in range(p.shape[1]):
            if math.hypot((x - cx) * sx, (y - cy) * sy) <= radius:
                total += p[y, x]
    return total


def random_maps(shape, seed, sharpness=3.0):
    g = torch.Generator().manual_seed(seed)
    return softmax_2d(torch.randn(shape, generator=g) * sharpness)


def test_hand_case_3x3():
    probs = torch.tensor([[0.0, 0.1, 0.0], [0.1, 0.5, 0.1], [0.0, 0.1, 0.1]])
    centre = torch.tensor([1.0, 1.0])
    # radius 1: the centre and its four neighbours (at exactly 1: counted)
    assert probability_within_radius(probs, centre, 1.0).item() == \
        pytest.approx(0.9)
    # radius 0.99: the centre pixel alone
    assert probability_within_radius(probs, centre, 0.99).item() == \
        pytest.approx(0.5)
    # radius 1.5 reaches the diagonal (sqrt 2): everything
    assert probability_within_radius(probs, centre, 1.5).item() == \
        pytest.approx(1.0)
    # 2 mm per pixel along x, 1 along y, radius 1.5 mm: only the vertical
    # neighbours join the centre (0.5 + 0.1 + 0.1)
    assert probability_within_radius(probs, centre, 1.5,
                                     (2.0, 1.0)).item() == pytest.approx(0.7)
    # a point between pixels: (1.5, 1) with radius 0.5 takes (1,1), (2,1)
    assert probability_within_radius(probs, torch.tensor([1.5, 1.0]),
                                      0.5).item() == pytest.approx(0.6)


@pytest.mark.parametrize('sharpness', [0.5, 3.0])
def test_matches_slow_reference_on_random_maps(sharpness):
    rng = np.random.default_rng(3)
    probs = random_maps((3, 4, 13, 17), seed=2, sharpness=sharpness)
    # points anywhere on the map, some outside it
    centre = torch.as_tensor(
        rng.uniform(-3, 19, (3, 4, 2)), dtype=torch.float32)
    radius = torch.as_tensor(rng.uniform(0.3, 7.0, (3, 4)),
                             dtype=torch.float32)
    size = torch.as_tensor(rng.uniform(0.4, 2.5, (3, 4, 2)),
                           dtype=torch.float32)
    fast = probability_within_radius(probs, centre, radius, size,
                                     chunk_size=5)
    assert fast.shape == (3, 4)
    for b in range(3):
        for k in range(4):
            cx, cy = centre[b, k].double().tolist()
            sx, sy = size[b, k].double().tolist()
            expected = slow_within(probs[b, k], cx, cy,
                                   float(radius[b, k]), sx, sy)
            assert fast[b, k].item() == pytest.approx(expected, abs=1e-6)


def test_radius_covering_the_map_is_all_its_mass():
    probs = random_maps((2, 9, 7), seed=5).double()
    centre = torch.tensor([[0.0, 0.0], [6.0, 8.0]], dtype=torch.float64)
    out = probability_within_radius(probs, centre, 100.0)
    np.testing.assert_allclose(out.numpy(), probs.sum((-2, -1)).numpy(),
                               rtol=0, atol=1e-12)
    assert out.dtype == torch.float64


def test_nan_point_gives_nan_others_unchanged():
    probs = random_maps((3, 8, 8), seed=7)
    centre = torch.tensor([[3.0, 4.0], [float('nan'), 2.0], [5.0, 5.0]])
    out = probability_within_radius(probs, centre, 2.0)
    assert math.isnan(out[1].item())
    for i in (0, 2):
        assert out[i].item() == pytest.approx(
            slow_within(probs[i], *centre[i].tolist(), 2.0), abs=1e-6)


@pytest.mark.parametrize('kwargs, match', [
    (dict(radius=0.0), 'radius must be finite and positive'),
    (dict(radius=float('nan')), 'radius must be finite and positive'),
    (dict(pixel_size=(1.0, 0.0)), 'pixel_size must be finite and positive'),
    (dict(radius=torch.ones(3)), 'does not broadcast'),
])
def test_bad_arguments_are_named(kwargs, match):
    probs = random_maps((2, 5, 5), seed=1)
    with pytest.raises(ValueError, match=match):
        probability_within_radius(probs, torch.zeros(2, 2), **kwargs)


def test_centre_shape_is_checked():
    with pytest.raises(ValueError, match=r'centre must have shape \(2, 2\)'):
        probability_within_radius(random_maps((2, 5, 5), seed=1),
                                  torch.zeros(2, 3), 1.0)


def test_score_radius_per_sample_units():
    radius, size = ScoreRadius().per_sample(
        [np.array([0.5, 0.25]), None], heatmap_size=(40, 20))
    # with a spacing: 2 mm, pixel sizes in mm
    assert radius[0] == 2.0
    np.testing.assert_allclose(size[0], [0.5, 0.25])
    # without: radius 1 in units of 5 % of the box (2 px along x, 1 along y)
    assert radius[1] == 1.0
    np.testing.assert_allclose(size[1], [1 / 2.0, 1 / 1.0])


def test_score_radius_box_fraction_is_an_ellipse_of_the_box():
    """5 % of a 40 x 20 map: semi-axes 2 and 1 heatmap pixels."""
    probs = torch.zeros(20, 40)
    probs[10, 12] = 0.25  # 2 px along x: inside
    probs[10, 13] = 0.25  # 3 px along x: outside
    probs[11, 10] = 0.25  # 1 px along y: inside
    probs[12, 10] = 0.25  # 2 px along y: outside
    radius, size = ScoreRadius().per_sample([None], (40, 20))
    out = probability_within_radius(probs[None], torch.tensor([[10.0, 10.0]]),
                                    torch.as_tensor(radius),
                                    torch.as_tensor(size))
    assert out.item() == pytest.approx(0.5)


def test_score_radius_from_test_cfg_and_words():
    sr = ScoreRadius.from_test_cfg(
        dict(score_radius_mm=2.5, score_box_fraction=0.1))
    assert (sr.mm, sr.box_fraction) == (2.5, 0.1)
    assert ScoreRadius.from_test_cfg(None) == ScoreRadius(2.0, 0.05)
    assert sr.describe(True) == ('probability that the landmark lies within '
                                 '2.5 mm of the prediction')
    assert '10% of the box' in sr.describe(False)
    with pytest.raises(InputError, match='test_cfg.score_radius_mm'):
        ScoreRadius.from_test_cfg(dict(score_radius_mm=-1))
    with pytest.raises(InputError, match='test_cfg.score_box_fraction'):
        ScoreRadius.from_test_cfg(dict(score_box_fraction='5%'))
