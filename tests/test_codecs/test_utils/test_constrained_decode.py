"""The plausibility-constrained decode (``mmchh.codecs.utils.
constrained_decode``) against a slow float64 reference on random maps, the
exact mapping of a Gaussian onto the heatmap grid, and the hand case: two
peaks and a prior near the weaker one pick the weaker."""
import numpy as np
import pytest
import torch

from mmchh.codecs.utils.constrained_decode import (constrained_mode,
                                                   gaussian_log_prior,
                                                   heatmap_affine,
                                                   prior_on_heatmap)
from mmchh.codecs.utils.frame import HeatmapFrame


def ref_log_gaussian(x, y, center, cov):
    """log N((x, y); center, cov), written the obvious way."""
    d = np.array([x, y], float) - center
    return float(-0.5 * d @ np.linalg.inv(cov) @ d -
                 np.log(2 * np.pi * np.sqrt(np.linalg.det(cov))))


def ref_constrained_mode(prob, center, cov):
    """Every pixel in a loop, float64: the first (row-major) maximum of
    log p + log N."""
    best, where = -np.inf, (np.nan, np.nan)
    for y in range(prob.shape[0]):
        for x in range(prob.shape[1]):
            if prob[y, x] <= 0:
                continue
            score = np.log(prob[y, x]) + ref_log_gaussian(x, y, center, cov)
            if score > best:
                best, where = score, (x, y)
    return np.array(where, float)


def random_gaussians(rng, num, height, width):
    center = rng.uniform([-3, -3], [width + 3, height + 3], (num, 2))
    a = rng.normal(0, 3, (num, 2, 2))
    cov = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(2)
    return center, cov


def test_log_prior_is_the_gaussian_density():
    rng = np.random.default_rng(0)
    center, cov = random_gaussians(rng, 3, 7, 9)
    log_prior = gaussian_log_prior(center, cov, 7, 9).numpy()
    assert log_prior.shape == (3, 7, 9) and log_prior.dtype == np.float64
    for n in range(3):
        for y in range(7):
            for x in range(9):
                assert log_prior[n, y, x] == pytest.approx(
                    ref_log_gaussian(x, y, center[n], cov[n]), rel=1e-12)


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_mode_matches_slow_reference_on_random_maps(dtype):
    rng = np.random.default_rng(1)
    num, height, width = 12, 10, 13
    logits = rng.normal(0, 2.5, (num, height, width))
    probs = np.exp(logits) / np.exp(logits).sum((1, 2), keepdims=True)
    center, cov = random_gaussians(rng, num, height, width)
    got = constrained_mode(
        torch.as_tensor(probs, dtype=dtype),
        gaussian_log_prior(center, cov, height, width)).numpy()
    for n in range(num):
        want = ref_constrained_mode(probs[n], center[n], cov[n])
        if dtype == torch.float64:
            np.testing.assert_array_equal(got[n], want)
        else:
            # float32 maps round the log-probabilities: the pixel chosen
            # scores within float32 precision of the best one
            def score(xy):
                x, y = int(xy[0]), int(xy[1])
                return np.log(probs[n, y, x]) + ref_log_gaussian(
                    x, y, center[n], cov[n])
            assert score(got[n]) == pytest.approx(score(want), abs=1e-5)


def two_peaks(height=24, width=32):
    """A strong peak at (24, 6) with 80 % of the mass, a weak one at
    (6, 18)."""
    ys, xs = np.mgrid[:height, :width]
    strong = np.exp(-((xs - 24)**2 + (ys - 6)**2) / 2.0)
    weak = np.exp(-((xs - 6)**2 + (ys - 18)**2) / 2.0)
    prob = 0.8 * strong / strong.sum() + 0.2 * weak / weak.sum()
    return torch.as_tensor(prob[None])


def test_prior_near_the_weaker_peak_picks_it():
    probs = two_peaks()
    assert tuple(np.unravel_index(int(probs.argmax()), (24, 32))) == (6, 24)
    cov = np.eye(2)[None] * 16.0
    for center, want in (((8.0, 16.0), (6, 18)), ((22.0, 8.0), (24, 6))):
        got = constrained_mode(probs, gaussian_log_prior(
            np.array([center]), cov, 24, 32))[0].numpy()
        np.testing.assert_array_equal(got, want)
    # a very broad prior leaves the map's own mode
    got = constrained_mode(probs, gaussian_log_prior(
        np.array([[8.0, 16.0]]), np.eye(2)[None] * 1e6, 24, 32))[0]
    np.testing.assert_array_equal(got.numpy(), (24, 6))


def test_subpixel_refines_around_the_constrained_mode():
    probs = two_peaks()
    prior = gaussian_log_prior(np.array([[8.0, 16.0]]),
                               np.eye(2)[None] * 16.0, 24, 32)
    got = constrained_mode(probs, prior, subpixel_radius=1)[0].numpy()
    # the weak peak's 3x3 window, pulled slightly towards the prior
    assert np.abs(got - (6, 18)).max() < 0.5
    assert got[0] > 6 and got[1] < 18


def test_nothing_to_decode_gives_nan():
    probs = two_peaks().repeat(3, 1, 1).clone()
    probs[0, 2, 2] = float('nan')
    probs[1] = 0.0
    center = np.array([[8.0, 16.0], [8.0, 16.0], [np.nan, 16.0]])
    got = constrained_mode(probs, gaussian_log_prior(
        center, np.broadcast_to(np.eye(2), (3, 2, 2)), 24, 32)).numpy()
    assert np.isnan(got).all()


@pytest.mark.parametrize('in_mm', [True, False])
def test_prior_maps_exactly_onto_the_heatmap_grid(in_mm):
    # anisotropic everything: grid scale, box and spacing differ along x, y
    frame = HeatmapFrame(heatmap_size=(16, 10), input_size=(64, 48),
                         input_center=(130.0, 95.0),
                         input_scale=(180.0, 150.0), spacing=(0.1, 0.13))
    rng = np.random.default_rng(2)
    center = np.array([120.0, 90.0]) * ((0.1, 0.13) if in_mm else 1.0)
    a = rng.normal(0, 4, (2, 2))
    cov = a @ a.T + np.eye(2)
    center_uv, cov_uv = prior_on_heatmap(center, cov, frame, in_mm)
    slope, offset = heatmap_affine(frame, in_mm)
    uv = rng.uniform(-2, 18, (20, 2))
    points = frame.heatmap_to_image(uv)
    if in_mm:
        points = frame.image_to_mm(points)
    # the affine is the frame's own conversion
    np.testing.assert_allclose(slope * uv + offset, points, rtol=1e-12)
    # the density on the grid is the density in the points' unit times the
    # (constant) Jacobian |slope_x * slope_y|
    jacobian = np.log(abs(slope[0] * slope[1]))
    for i in range(20):
        want = ref_log_gaussian(*points[i], center, cov) + jacobian
        # the 1x1 grid is pixel (0, 0): shift the centre instead
        got = gaussian_log_prior(center_uv[None] - uv[i], cov_uv[None], 1,
                                 1)[0, 0, 0].item()
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9)
