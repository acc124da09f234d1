# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Tests of the per-landmark temperature fit: known temperatures recovered,
stationary points, priors, weights and degenerate landmarks."""
import numpy as np
import pytest
import torch
from logit_maps import (bowl_logits, mode_confidence, peak_logits,
                        sample_targets)

from mmchh.codecs.utils import heatmap_mode, nll_at_index, softmax_2d
from mmchh.calibration.temperature.logit_summary import nll_from_summary, summarize_logits
from mmchh.calibration.temperature.fit import (fit_shared_temperature,
                                              fit_temperatures)
from mmchh.evaluation.functional.calibration_metrics import \
    expected_calibration_error


def test_fit_objective_matches_nll_from_summary_in_both_regimes():
    # the fit's hand-written loss / gradient against autograd
    # through the public formula, from moderate T down to T far below the bin
    # width, where the variance term hits its cap
    from mmchh.calibration.temperature.fit import LandmarkObjective
    z = bowl_logits(6, 1, 24, 30, seed=6, value_range=40, noise=2.0)
    index = torch.randint(0, 720, (6, 1),
                          generator=torch.Generator().manual_seed(6))
    s = summarize_logits(z, index, num_bins=16)  # wide bins: w = 2.5
    weight = torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0, 1.0], dtype=torch.float64)
    p = {k: v[:, 0].contiguous() for k, v in s.nll_terms().items()}
    objective = LandmarkObjective(p, weight)
    assert objective.inv_cap < 50
    for inv in (0.3, 1.0, 4.0, objective.inv_cap * 1.5, 200.0):
        t = torch.tensor([1 / inv], dtype=torch.float64, requires_grad=True)
        ref = (nll_from_summary(s, t)[:, 0] * weight).sum() / weight.sum()
        (d_t, ) = torch.autograd.grad(ref, t)
        loss, d_inv = objective(inv)
        assert loss == pytest.approx(float(ref.detach()), rel=1e-12)
        # dL/dT = dL/d(1/T) * -(1/T)^2
        assert -d_inv * inv**2 == pytest.approx(float(d_t), rel=1e-9,
                                                abs=1e-12)


def test_fit_recovers_known_temperatures():
    temps = [0.5, 1.0, 2.5]
    # 300 maps of 32x40: the standard error of each T is ~1.6 %, so +-5 %
    # is a 3-sigma test (checked over 30 seeds: worst deviation 4.7 %)
    z, g = peak_logits(300, temps, 32, 40, seed=0)
    index = sample_targets(z, temps, g)
    s = summarize_logits(z, index, num_bins=256)
    fitted = fit_temperatures(s)
    assert fitted.dtype == torch.float32 and fitted.shape == (3, )
    np.testing.assert_allclose(fitted.numpy(), temps, rtol=0.05)
    # the default 2048 bins give the same optimum (here on 60 maps)
    coarse = fit_temperatures(s[:60])
    fine = fit_temperatures(summarize_logits(z[:60], index[:60]))
    np.testing.assert_allclose(fine.numpy(), coarse.numpy(), rtol=1e-4)


def test_fit_is_a_stationary_point_of_the_summary_nll():
    temps = [0.7, 1.8]
    z, g = peak_logits(60, temps, 16, 20, seed=1)
    index = sample_targets(z, temps, g)
    s = summarize_logits(z, index, num_bins=256)
    fitted = fit_temperatures(s, init=torch.tensor([3.0, 0.2]))
    t = fitted.double().requires_grad_(True)
    nll_from_summary(s, t).mean(0).sum().backward()
    assert t.grad.abs().max() < 1e-4
    # and a minimum: moving T either way raises the mean NLL
    base = nll_from_summary(s, fitted.double()).mean(0)
    for factor in (0.97, 1.03):
        assert (nll_from_summary(s, fitted.double() * factor).mean(0) >
                base).all()


def test_fit_never_moves_the_mode():
    temps = [0.5, 1.0, 2.5]
    z, g = peak_logits(40, temps, 16, 20, seed=2)
    z = z + bowl_logits(40, 3, 16, 20, seed=2, value_range=3).double()
    index = sample_targets(z, temps, g)
    fitted = fit_temperatures(summarize_logits(z, index, num_bins=256))
    before, _ = heatmap_mode(softmax_2d(z))
    after, _ = heatmap_mode(softmax_2d(z, fitted.double()))
    raw, _ = heatmap_mode(z)
    assert torch.equal(before, after) and torch.equal(raw, after)


def test_fit_calibrates_an_overconfident_model():
    # targets drawn at T = 2 but scored at T = 1: over-confident
    temps = [2.0, 2.0, 2.0]
    z, g = peak_logits(300, temps, 16, 20, seed=3)
    index = sample_targets(z, temps, g)
    s = summarize_logits(z, index, num_bins=256)
    one = torch.ones(3, dtype=torch.float64)
    fitted = fit_temperatures(s).double()
    np.testing.assert_allclose(fitted.numpy(), temps, rtol=0.1)
    nll_before = nll_at_index(z, index, one).mean()
    nll_after = nll_at_index(z, index, fitted).mean()
    assert nll_after < nll_before - 0.1
    conf0, hit0 = mode_confidence(z, index, one)
    conf1, hit1 = mode_confidence(z, index, fitted)
    assert np.array_equal(hit0, hit1)
    ece0 = expected_calibration_error(conf0, hit0)['ece']
    ece1 = expected_calibration_error(conf1, hit1)['ece']
    assert conf0.mean() > hit0.mean() + 0.1  # over-confident before
    assert ece1 < 0.5 * ece0


def test_fit_weights_and_landmarks_without_data():
    temps = [0.8, 1.5, 1.0]
    z, g = peak_logits(80, temps, 16, 20, seed=4)
    index = sample_targets(z, temps, g)
    s = summarize_logits(z, index, num_bins=256)
    weights = torch.ones(80, 3)
    weights[40:, 0] = 0  # landmark 0: the first half only
    weights[:, 2] = 0  # landmark 2: no data at all
    init = torch.tensor([1.0, 1.0, 0.37])
    fitted = fit_temperatures(s, weights, init)
    half = fit_temperatures(s[:40])
    assert fitted[0] == pytest.approx(float(half[0]), rel=1e-5)
    full = fit_temperatures(s)
    assert fitted[1] == pytest.approx(float(full[1]), rel=1e-5)
    assert fitted[2] == pytest.approx(0.37)  # keeps init
    # all-zero weights: init back
    assert torch.allclose(fit_temperatures(s, torch.zeros(80, 3), init),
                          init)
    # every target at its mode: the NLL only falls as T -> 0
    at_mode = summarize_logits(z, z.flatten(-2).argmax(-1), num_bins=64)
    assert torch.allclose(fit_temperatures(at_mode), torch.full((3, ), 1e-4))


def test_shared_temperature_recovers_a_common_t():
    z, g = peak_logits(200, [1.6, 1.6, 1.6], 16, 20, seed=8)
    index = sample_targets(z, [1.6, 1.6, 1.6], g)
    s = summarize_logits(z, index, num_bins=256)
    assert fit_shared_temperature(s) == pytest.approx(1.6, rel=0.05)


def test_map_fit_is_a_stationary_point_of_nll_plus_prior():
    """The MAP fit minimises (summed NLL) + (log T - mu)^2 / (2 std^2), mu
    the pooled log T -- checked with float64 autograd on dense logits."""
    temps = [0.6, 2.0]
    z, g = peak_logits(12, temps, 12, 14, seed=9)
    index = sample_targets(z, temps, g)
    s = summarize_logits(z, index, num_bins=4096)
    std = 0.5
    fitted = fit_temperatures(s, prior_std=std).double()
    mu = np.log(fit_shared_temperature(s))
    for j in range(2):
        log_t = fitted[j].log().clone().requires_grad_(True)
        zj = z[:, j].reshape(12, -1) / log_t.exp()
        nll = (torch.logsumexp(zj, -1) -
               zj.gather(1, index[:, j:j + 1])[:, 0]).sum()
        (nll + (log_t - mu)**2 / (2 * std**2)).backward()
        assert abs(float(log_t.grad)) < 1e-3
    # pulled from the maximum likelihood towards the pooled T
    mle = fit_temperatures(s).double()
    pooled = np.exp(mu)
    for j in range(2):
        lo, hi = sorted([float(mle[j]), pooled])
        assert lo - 1e-6 <= float(fitted[j]) <= hi + 1e-6


def test_map_fit_keeps_degenerate_landmarks_finite_and_fades_with_data():
    temps = [0.8, 0.8, 0.8]
    z, g = peak_logits(400, temps, 16, 20, seed=10)
    index = sample_targets(z, temps, g)
    # landmark 0 of the first 4 images: every target at the mode
    index[:4, 0] = z[:4, 0].flatten(-2).argmax(-1)
    few = summarize_logits(z[:4], index[:4], num_bins=256)
    plain = fit_temperatures(few)
    assert float(plain[0]) == pytest.approx(1e-4)  # certainty: T -> 0
    shrunk = fit_temperatures(few, prior_std=1.0)
    pooled = fit_shared_temperature(few)
    assert 0.05 * pooled < float(shrunk[0]) <= pooled
    # with 400 images the prior barely matters
    many = summarize_logits(z, index, num_bins=256)
    np.testing.assert_allclose(
        fit_temperatures(many, prior_std=1.0).numpy(),
        fit_temperatures(many).numpy(), rtol=0.02)
    with pytest.raises(ValueError, match='prior_std'):
        fit_temperatures(few, prior_std=0.0)


def test_fit_rejects_bad_input():
    s = summarize_logits(torch.randn(2, 3, 4, 4),
                         torch.zeros(2, 3, dtype=torch.long), num_bins=8)
    with pytest.raises(ValueError, match='empty'):
        fit_temperatures(s[0:0])
    with pytest.raises(ValueError, match='weights'):
        fit_temperatures(s, torch.ones(3, 2))
    with pytest.raises(ValueError, match='weights'):
        fit_temperatures(s, -torch.ones(2, 3))
    with pytest.raises(ValueError, match='init'):
        fit_temperatures(s, init=torch.tensor([1.0, 0.0, 1.0]))
