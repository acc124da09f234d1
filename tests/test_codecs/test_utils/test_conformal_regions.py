"""Conformal scores and regions of probability maps, against a slow float64
reference written the obvious way (loops over pixels), on maps with and
without ties."""
import numpy as np
import pytest
import torch

from mmchh.codecs.utils import (conformal_region_masks, conformal_regions,
                                conformal_scores, softmax_2d)


def slow_pixel_score(prob_map, y, score):
    """Score of flat pixel ``y``: -p[y], or the mass of pixels above it."""
    p = np.asarray(prob_map, dtype=np.float64).reshape(-1)
    if score == 'density':
        return -p[y]
    total = 0.0
    for v in p:
        if v > p[y]:
            total += v
    return total


def slow_region(prob_map, tau, score):
    """The pixels whose score is <= tau, as a set of flat indices."""
    n = np.asarray(prob_map).size
    return {y for y in range(n) if slow_pixel_score(prob_map, y, score) <= tau}


def continuous_maps(seed, shape=(2, 3, 5, 6)):
    g = torch.Generator().manual_seed(seed)
    return softmax_2d(torch.randn(shape, generator=g) * 2.0)


def tied_maps(seed, shape=(2, 3, 5, 6)):
    """Maps of few distinct values (a flat tail, plateaus): many ties."""
    g = torch.Generator().manual_seed(seed)
    level = torch.randint(1, 4, shape, generator=g).float()**3
    return level / level.flatten(-2).sum(-1)[..., None, None]


MAPS = {'continuous': continuous_maps, 'ties': tied_maps}


def targets(probs, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, probs.shape[-1] * probs.shape[-2],
                         probs.shape[:-2], generator=g)


def midpoint_thresholds(probs, score):
    """Per map, a threshold halfway between two of its distinct pixel
    scores (so that summation order cannot move a pixel across it)."""
    out = np.empty(probs.shape[:-2])
    for i in np.ndindex(out.shape):
        values = sorted({slow_pixel_score(probs[i], y, score)
                         for y in range(probs[i].numel())})
        j = len(values) // 3
        out[i] = (values[j] + values[j + 1]) / 2
    return torch.as_tensor(out)


@pytest.mark.parametrize('score', ['density', 'mass'])
@pytest.mark.parametrize('kind', ['continuous', 'ties'])
def test_scores_match_slow_reference(kind, score):
    probs = MAPS[kind](seed=1)
    index = targets(probs, seed=2)
    got = conformal_scores(probs, index, score)
    assert got.shape == (2, 3) and got.dtype == torch.float64
    for i in np.ndindex(2, 3):
        expected = slow_pixel_score(probs[i], int(index[i]), score)
        assert float(got[i]) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize('score', ['density', 'mass'])
@pytest.mark.parametrize('kind', ['continuous', 'ties'])
def test_regions_match_slow_reference(kind, score):
    probs = MAPS[kind](seed=3)
    index = targets(probs, seed=4)
    tau = midpoint_thresholds(probs, score)
    area, inside = conformal_regions(probs, tau, index, score)
    masks = conformal_region_masks(probs, tau, score)
    for i in np.ndindex(2, 3):
        region = slow_region(probs[i], float(tau[i]), score)
        assert area[i] == len(region)
        assert bool(inside[i]) == (int(index[i]) in region)
        assert set(masks[i].reshape(-1).nonzero()[:, 0].tolist()) == region


@pytest.mark.parametrize('score', ['density', 'mass'])
@pytest.mark.parametrize('kind', ['continuous', 'ties'])
def test_inside_is_exactly_score_below_threshold(kind, score):
    """The guarantee rests on this: at a threshold equal to a calibration
    score (ties included), the target is inside iff its score <= it."""
    probs = MAPS[kind](seed=5, shape=(40, 1, 4, 4))
    index = targets(probs, seed=6)
    scores = conformal_scores(probs, index, score)
    for tau in scores[::7, 0].tolist():
        _, inside = conformal_regions(probs, tau, index, score)
        assert torch.equal(inside, scores <= tau)


@pytest.mark.parametrize('kind', ['continuous', 'ties'])
def test_mass_region_is_the_smallest_top_density_set_over_the_mass(kind):
    probs = MAPS[kind](seed=7, shape=(6, 2, 5, 6))
    for tau in (0.0, 0.3, 0.75):
        masks = conformal_region_masks(probs, tau, 'mass')
        for i in np.ndindex(6, 2):
            p, m = probs[i].reshape(-1).double(), masks[i].reshape(-1)
            assert m[p.argmax()]  # the mode is always in
            if not m.all():
                # a superlevel set: nothing outside beats anything inside
                assert p[~m].max() < p[m].min()
                # it holds more than tau; without its lowest tie level it
                # would hold at most tau
                lowest = p[m] == p[m].min()
                assert p[m].sum() > tau
                assert p[m][~lowest].sum() <= tau


def test_density_region_is_a_probability_superlevel_set():
    probs = continuous_maps(seed=8)
    masks = conformal_region_masks(probs, -0.05, 'density')
    assert torch.equal(masks, probs >= 0.05)


@pytest.mark.parametrize('score', ['density', 'mass'])
def test_per_landmark_threshold_and_chunks(score):
    probs = continuous_maps(seed=9, shape=(5, 3, 4, 7))
    index = targets(probs, seed=10)
    tau = torch.tensor([-0.05, -0.02, -0.1]) if score == 'density' else \
        torch.tensor([0.2, 0.5, 0.9])
    area, inside = conformal_regions(probs, tau, index, score)
    for j in range(3):
        a, hit = conformal_regions(probs[:, j], float(tau[j]), index[:, j],
                                   score, chunk_size=1)
        assert torch.equal(area[:, j], a) and torch.equal(inside[:, j], hit)
    torch.testing.assert_close(
        conformal_scores(probs, index, score, chunk_size=2),
        conformal_scores(probs, index, score))


@pytest.mark.parametrize('score', ['density', 'mass'])
def test_infinite_threshold_is_the_whole_map(score):
    probs = continuous_maps(seed=11)
    area, inside = conformal_regions(probs, float('inf'), targets(probs, 12),
                                     score)
    assert bool((area == 30).all()) and bool(inside.all())


@pytest.mark.parametrize('score', ['density', 'mass'])
def test_non_finite_map_has_no_region(score):
    probs = continuous_maps(seed=13)
    probs[1, 2, 0, 0] = float('nan')
    index = targets(probs, 14)
    scores = conformal_scores(probs, index, score)
    area, inside = conformal_regions(probs, float('inf'), index, score)
    assert torch.isnan(scores[1, 2]) and torch.isnan(area[1, 2])
    assert not inside[1, 2] and inside.sum() == 5
    assert torch.isfinite(scores).sum() == 5
    assert not conformal_region_masks(probs, float('inf'), score)[1, 2].any()


@pytest.mark.parametrize(
    'call, message', [
        (lambda p, i: conformal_scores(p, i, 'box'), 'score must be one'),
        (lambda p, i: conformal_scores(p, i[:1], 'mass'), 'target_index'),
        (lambda p, i: conformal_scores(p, i + 100, 'mass'), 'must lie in'),
        (lambda p, i: conformal_regions(p, float('nan'), i), 'NaN'),
        (lambda p, i: conformal_regions(p, torch.ones(4), i), 'broadcast'),
    ],
    ids=['unknown-score', 'index-shape', 'index-range', 'nan-threshold',
         'threshold-shape'])
def test_bad_arguments_are_refused(call, message):
    probs = continuous_maps(seed=15)
    with pytest.raises(ValueError, match=message):
        call(probs, targets(probs, 16))
