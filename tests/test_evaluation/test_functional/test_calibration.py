# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Tests of the calibration / flagging math against slow, obvious float64
references and hand-computed cases."""
import math
import os

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

from mmchh.evaluation.functional.calibration import (
    LogitSummary, binned_correlation, ere_vs_error_png,
    expected_calibration_error, fit_shared_temperature, fit_temperatures,
    good_erroneous_table, nll_from_summary, pearson_spearman, reliability_diagram_png, roc_auc,
    roc_png, summarize_logits, threshold_at_tpr)
from mmchh.evaluation.functional.uncertainty import (heatmap_mode,
                                                     nll_at_index,
                                                     softmax_2d)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def slow_nll(logits, index, temperature):
    """-log softmax(z / T)[target], per map, in float64 numpy loops."""
    z = np.asarray(logits, dtype=np.float64)
    b, k, h, w = z.shape
    out = np.empty((b, k))
    for i in range(b):
        for j in range(k):
            x = z[i, j].reshape(-1) / float(temperature[j])
            top = x.max()
            lse = top + math.log(np.exp(x - top).sum())
            out[i, j] = lse - x[int(index[i, j])]
    return out


def bowl_logits(b, k, h, w, seed, value_range=50.0, noise=1.0):
    """Peaked maps like a trained network's: an inverted quadratic bowl at a
    random centre, scaled to ``value_range``, plus pixel noise and a random
    level per map."""
    g = torch.Generator().manual_seed(seed)
    ys = torch.arange(h, dtype=torch.float64)[:, None]
    xs = torch.arange(w, dtype=torch.float64)[None, :]
    centre = torch.rand(b, k, 2, generator=g, dtype=torch.float64)
    cx = (centre[..., 0] * w)[..., None, None]
    cy = (centre[..., 1] * h)[..., None, None]
    d2 = (xs - cx)**2 + (ys - cy)**2
    bowl = -d2 / d2.flatten(-2).max(-1).values[..., None, None] * value_range
    level = torch.randn(b, k, 1, 1, generator=g, dtype=torch.float64) * 5
    z = bowl + level + noise * torch.randn(
        b, k, h, w, generator=g, dtype=torch.float64)
    return z.float()


def peak_logits(b, temps, h, w, seed):
    """Maps that pin T down well: one peak pixel over a flat, slightly noisy
    background, whose softmax mass at ``T = temps[k]`` is about one half (the
    Fisher information about log T is then ~(log HW)^2 / 4 per sample)."""
    g = torch.Generator().manual_seed(seed)
    k, n = len(temps), h * w
    t = torch.as_tensor(temps, dtype=torch.float64)
    z = torch.randn(b, k, h, w, generator=g, dtype=torch.float64)
    z = z * 0.3 * t[:, None, None]
    peak = torch.randint(0, n, (b, k), generator=g)
    jitter = 1 + 0.3 * (torch.rand(b, k, generator=g, dtype=torch.float64) -
                        0.5)
    height = t * math.log(n) * jitter
    z.view(b, k, n).scatter_add_(2, peak[..., None], height[..., None])
    return z, g


def sample_targets(z, temps, g):
    """Target pixels drawn from softmax(z / T): a calibrated-at-T model."""
    b, k, h, w = z.shape
    probs = softmax_2d(z, torch.as_tensor(temps, dtype=z.dtype))
    return torch.multinomial(probs.reshape(-1, h * w), 1,
                             generator=g).reshape(b, k)


def mode_confidence(z, index, temperature):
    """(confidence at the mode, mode == target) from dense maps."""
    probs = softmax_2d(z, temperature).flatten(-2)
    conf, mode = probs.max(dim=-1)
    return conf.numpy().reshape(-1), (mode == index).numpy().reshape(-1)


# --------------------------------------------------------------------------
# summarize_logits / nll_from_summary
# --------------------------------------------------------------------------
def test_summary_fields_shapes_and_counts():
    z = bowl_logits(2, 3, 12, 15, seed=0)
    index = torch.randint(0, 180, (2, 3),
                          generator=torch.Generator().manual_seed(0))
    s = summarize_logits(z, index, num_bins=64)
    assert s.bin_mean.shape == s.bin_count.shape == s.bin_var.shape == (2, 3,
                                                                       64)
    assert s.bin_mean.dtype == torch.float64
    assert s.bin_count.dtype == torch.int32
    assert s.num_bins == 64 and len(s) == 2
    # every pixel but one maximum is in the histogram
    assert (s.bin_count.sum(-1) == 12 * 15 - 1).all()
    flat = z.double().flatten(-2)
    assert torch.equal(s.max_logit, flat.max(-1).values)
    assert torch.equal(s.min_logit, flat.min(-1).values)
    assert torch.equal(s.target_logit, flat.gather(-1, index[..., None])[...,
                                                                         0])
    # bin means lie inside their bins; empty bins hold their centres
    w = (s.max_logit - s.min_logit)[..., None] / 64
    lo = s.min_logit[..., None] + torch.arange(64) * w
    assert (s.bin_mean >= lo - 1e-9).all() and (s.bin_mean <= lo + w +
                                                1e-9).all()
    assert (s.bin_var >= 0).all()


def test_summary_matches_slow_histogram():
    z = bowl_logits(1, 2, 9, 11, seed=1, value_range=10)
    s = summarize_logits(z, torch.zeros(1, 2, dtype=torch.long), num_bins=8)
    for j in range(2):
        x = z[0, j].double().reshape(-1).numpy()
        skip = int(np.argmax(x))
        lo, hi = x.min(), x.max()
        members = [[] for _ in range(8)]
        for i, v in enumerate(x):
            if i == skip:
                continue
            members[min(int((v - lo) / ((hi - lo) / 8)), 7)].append(v)
        for b in range(8):
            assert int(s.bin_count[0, j, b]) == len(members[b])
            if members[b]:
                assert float(s.bin_mean[0, j, b]) == pytest.approx(
                    np.mean(members[b]), rel=1e-12, abs=1e-12)
                assert float(s.bin_var[0, j, b]) == pytest.approx(
                    np.var(members[b]), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize('temperature', [0.25, 0.5, 1.0, 2.0, 4.0])
def test_summary_nll_matches_exact_on_realistic_maps(temperature):
    # 96x120 maps with a logit range of ~50 at the default 2048 bins
    z = bowl_logits(3, 4, 96, 120, seed=2)
    g = torch.Generator().manual_seed(2)
    index = torch.randint(0, 96 * 120, (3, 4), generator=g)
    index[0] = z[0].flatten(-2).argmax(-1)  # some targets at the mode
    s = summarize_logits(z, index)
    t = torch.full((4, ), temperature, dtype=torch.float64)
    approx = nll_from_summary(s, t)
    exact = nll_at_index(z.double(), index, t)
    assert approx.dtype == torch.float64 and approx.shape == (3, 4)
    # the brief asks for 1e-4; the variance term gives ~1e-6 at T = 0.25
    np.testing.assert_allclose(approx.numpy(), exact.numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        exact.numpy(), slow_nll(z, index, t.numpy()), rtol=1e-10)


def test_summary_nll_exact_for_very_peaked_huge_and_constant_maps():
    g = torch.Generator().manual_seed(3)
    h, w = 20, 24
    z = torch.randn(4, 3, h, w, generator=g)
    z[0, :, 5, 7] += 60  # very peaked: the mass sits in the max pixel
    z[1] = 1e4 + torch.randn(3, h, w, generator=g, dtype=torch.float64) * 8
    z[2] = torch.randn(3, h, w, generator=g) * 3e3  # range ~2e4
    z[3] = 7.5  # constant maps
    index = torch.randint(0, h * w, (4, 3), generator=g)
    index[0, 0] = 5 * w + 7
    s = summarize_logits(z, index)
    for temperature in (0.25, 1.0, 4.0):
        t = torch.full((3, ), temperature, dtype=torch.float64)
        approx = nll_from_summary(s, t)
        exact = torch.from_numpy(slow_nll(z, index, t.numpy()))
        # the max pixel is exact and the pixels that matter near it sit
        # alone in their bins (variance 0), so the summary is exact here
        np.testing.assert_allclose(approx.numpy(), exact.numpy(), rtol=1e-8,
                                   atol=1e-9)
        # a constant map: uniform softmax whatever T
        np.testing.assert_allclose(approx[3].numpy(), math.log(h * w),
                                   rtol=1e-12)


def test_summary_of_one_pixel_maps_and_validation():
    s = summarize_logits(torch.full((2, 1, 1, 1), 3.0),
                         torch.zeros(2, 1, dtype=torch.long))
    t = torch.ones(1, dtype=torch.float64, requires_grad=True)
    nll = nll_from_summary(s, t)
    nll.sum().backward()
    assert torch.equal(nll.detach(), torch.zeros(2, 1, dtype=torch.float64))
    assert torch.isfinite(t.grad).all()
    with pytest.raises(ValueError, match='target_index'):
        summarize_logits(torch.zeros(1, 1, 2, 2), torch.tensor([[4]]))
    with pytest.raises(ValueError, match='shape'):
        summarize_logits(torch.zeros(1, 1, 2, 2), torch.tensor([0]))
    with pytest.raises(ValueError, match='empty'):
        summarize_logits(torch.zeros(0, 1, 2, 2),
                         torch.zeros(0, 1, dtype=torch.long))
    with pytest.raises(ValueError, match='finite'):
        summarize_logits(torch.full((1, 1, 2, 2), math.nan),
                         torch.zeros(1, 1, dtype=torch.long))
    with pytest.raises(ValueError, match='temperature'):
        nll_from_summary(s, torch.ones(2))


def test_summary_chunking_cat_select_and_to():
    z = bowl_logits(3, 2, 10, 12, seed=4)
    index = torch.randint(0, 120, (3, 2),
                          generator=torch.Generator().manual_seed(4))
    whole = summarize_logits(z, index, num_bins=32)
    chunked = summarize_logits(z, index, num_bins=32, max_chunk_elements=1)
    parts = LogitSummary.cat([
        summarize_logits(z[:1], index[:1], num_bins=32),
        summarize_logits(z[1:], index[1:], num_bins=32)
    ]).to('cpu')
    for other in (chunked, parts):
        for name in ('bin_mean', 'bin_count', 'bin_var', 'target_logit',
                     'max_logit', 'min_logit'):
            assert torch.equal(getattr(whole, name), getattr(other, name))
    assert torch.equal(whole[1].bin_mean, whole.bin_mean[1:2])
    assert torch.equal(whole[-1].max_logit, whole.max_logit[2:])
    with pytest.raises(ValueError, match='differ'):
        LogitSummary.cat([whole, summarize_logits(z, index, num_bins=16)])
    with pytest.raises(ValueError, match='at least one'):
        LogitSummary.cat([])


def test_nll_from_summary_gradient():
    z = bowl_logits(2, 3, 16, 20, seed=5, value_range=20)
    index = torch.randint(0, 320, (2, 3),
                          generator=torch.Generator().manual_seed(5))
    s = summarize_logits(z, index, num_bins=128)
    t = torch.tensor([0.4, 1.0, 3.0], dtype=torch.float64,
                     requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: nll_from_summary(s, x), (t, ))


# --------------------------------------------------------------------------
# fit_temperatures
# --------------------------------------------------------------------------
def test_fit_objective_matches_nll_from_summary_in_both_regimes():
    # the fit's hand-written loss / gradient (private) against autograd
    # through the public formula, from moderate T down to T far below the bin
    # width, where the variance term hits its cap
    from mmchh.evaluation.functional.calibration import (_LandmarkObjective,
                                                         _prepare)
    z = bowl_logits(6, 1, 24, 30, seed=6, value_range=40, noise=2.0)
    index = torch.randint(0, 720, (6, 1),
                          generator=torch.Generator().manual_seed(6))
    s = summarize_logits(z, index, num_bins=16)  # wide bins: w = 2.5
    weight = torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0, 1.0], dtype=torch.float64)
    p = {k: v[:, 0].contiguous() for k, v in _prepare(s).items()}
    objective = _LandmarkObjective(p, weight)
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


# --------------------------------------------------------------------------
# expected_calibration_error
# --------------------------------------------------------------------------
def slow_ece(conf, correct, num_bins, binning):
    top = max(conf) if binning == 'max' else 1.0
    edges = [top * i / num_bins for i in range(num_bins)] + [top]
    members = [[] for _ in range(num_bins)]
    for c, ok in zip(conf, correct):
        for i in range(num_bins):
            if edges[i] < c <= edges[i + 1] or (i == 0 and c == edges[0]):
                members[i].append((c, ok))
                break
    ece, bin_conf, bin_acc, count = 0.0, [], [], []
    for m in members:
        count.append(len(m))
        if not m:
            bin_conf.append(math.nan)
            bin_acc.append(math.nan)
            continue
        c = sum(x for x, _ in m) / len(m)
        a = sum(1.0 for _, ok in m if ok) / len(m)
        bin_conf.append(c)
        bin_acc.append(a)
        ece += len(m) / len(conf) * abs(a - c)
    return ece, edges, bin_conf, bin_acc, count


@pytest.mark.parametrize('binning', ['max', 'unit'])
@pytest.mark.parametrize('num_bins', [1, 7, 10])
def test_ece_matches_slow_reference(binning, num_bins):
    rng = np.random.default_rng(num_bins)
    conf = rng.beta(2, 8, 500) * 0.8
    correct = rng.random(500) < conf * 1.2
    out = expected_calibration_error(conf, correct, num_bins, binning)
    ece, edges, bin_conf, bin_acc, count = slow_ece(
        conf.tolist(), correct.tolist(), num_bins, binning)
    assert out['ece'] == pytest.approx(ece, rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(out['edges'], edges, rtol=1e-12)
    np.testing.assert_allclose(out['bin_confidence'], bin_conf, rtol=1e-12)
    np.testing.assert_allclose(out['bin_accuracy'], bin_acc, rtol=1e-12)
    assert out['bin_count'].tolist() == count
    assert out['bin_count'].sum() == 500


def test_ece_hand_example_and_edge_rule():
    conf = np.array([0.0, 0.1, 0.2, 0.4, 0.8])
    correct = np.array([False, False, True, True, True])
    # 'max': edges 0, .2, .4, .6, .8; 0 joins bin 0, 0.2 and 0.4 close their
    # bins on the right, 0.8 (= M) is in the last bin
    out = expected_calibration_error(conf, correct, 4, 'max')
    np.testing.assert_allclose(out['edges'], [0, .2, .4, .6, .8])
    assert out['bin_count'].tolist() == [3, 1, 0, 1]
    np.testing.assert_allclose(out['bin_confidence'], [0.1, 0.4, np.nan, .8])
    np.testing.assert_allclose(out['bin_accuracy'], [1 / 3, 1, np.nan, 1])
    expected = 3 / 5 * abs(1 / 3 - 0.1) + 1 / 5 * 0.6 + 1 / 5 * 0.2
    assert out['ece'] == pytest.approx(expected)
    # 'unit' with 2 bins: edges 0, .5, 1
    out = expected_calibration_error(conf, correct, 2, 'unit')
    assert out['bin_count'].tolist() == [4, 1]
    expected = 4 / 5 * abs(0.5 - 0.7 / 4) + 1 / 5 * 0.2
    assert out['ece'] == pytest.approx(expected)
    # perfectly calibrated in each bin
    out = expected_calibration_error([0.5, 0.5], [True, False], 10, 'unit')
    assert out['ece'] == 0.0


def test_ece_rejects_bad_input():
    with pytest.raises(ValueError, match='no predictions'):
        expected_calibration_error(np.array([]), np.array([], bool))
    with pytest.raises(ValueError, match='within'):
        expected_calibration_error([1.5], [True])
    with pytest.raises(ValueError, match='same number'):
        expected_calibration_error([0.5, 0.2], [True])
    with pytest.raises(ValueError, match='binning'):
        expected_calibration_error([0.5], [True], binning='equal')


# --------------------------------------------------------------------------
# correlations
# --------------------------------------------------------------------------
def test_pearson_spearman_matches_scipy_and_degenerate_cases():
    rng = np.random.default_rng(0)
    x = rng.gamma(2, 1, 200)
    y = x + rng.normal(0, 0.5, 200)
    p, s = pearson_spearman(x, y)
    assert p == pytest.approx(stats.pearsonr(x, y)[0], rel=1e-12)
    assert s == pytest.approx(stats.spearmanr(x, y)[0], rel=1e-12)
    assert all(math.isnan(v) for v in pearson_spearman([1.0], [2.0]))
    assert all(math.isnan(v) for v in pearson_spearman([1, 1, 1], [1, 2, 3]))


def test_binned_correlation_hand_example():
    # sorted by ERE: bins of 3 -> [0,1,2], [3,4,5]; the rest (2 >= 3/2
    # landmarks) is kept as its own bin
    ere = np.array([7, 0, 5, 1, 3, 2, 6, 4], dtype=float)
    err = ere * 2 + np.array([0, 1, 0, -1, 0, 0, 1, 0])
    out = binned_correlation(ere, err, bin_size=3)
    np.testing.assert_allclose(out['bin_ere'], [1, 4, 6.5])
    by_ere = dict(zip(ere, err))
    np.testing.assert_allclose(out['bin_error'], [
        np.mean([by_ere[0], by_ere[1], by_ere[2]]),
        np.mean([by_ere[3], by_ere[4], by_ere[5]]),
        np.mean([by_ere[6], by_ere[7]])
    ])
    assert out['pearson'] == pytest.approx(
        stats.pearsonr(out['bin_ere'], out['bin_error'])[0])
    # a rest of 1 < 4 / 2 is dropped: 9 landmarks in bins of 4 -> 2 bins
    out = binned_correlation(np.arange(9.0), np.arange(9.0), bin_size=4)
    np.testing.assert_allclose(out['bin_ere'], [1.5, 5.5])
    assert out['pearson'] == pytest.approx(1.0)
    # a rest of exactly bin_size / 2 is kept
    out = binned_correlation(np.arange(10.0), np.arange(10.0), bin_size=4)
    np.testing.assert_allclose(out['bin_ere'], [1.5, 5.5, 8.5])
    # fewer than two bins: undefined correlation
    few = binned_correlation([1.0, 2.0], [1.0, 2.0], 36)
    assert math.isnan(few['pearson']) and few['bin_ere'].size == 0


def test_binned_correlation_of_paper_sized_data():
    rng = np.random.default_rng(1)
    ere = rng.gamma(2, 0.7, 150 * 19)
    err = np.abs(ere + rng.normal(0, 0.7, ere.size))
    out = binned_correlation(ere, err)
    assert out['bin_ere'].shape == (150 * 19 // 36, )  # rest 6 < 18 dropped
    assert np.all(np.diff(out['bin_ere']) >= 0)
    assert out['pearson'] > 0.95


# --------------------------------------------------------------------------
# ROC, threshold, Table 2
# --------------------------------------------------------------------------
def test_roc_auc_matches_sklearn_and_separable_case():
    rng = np.random.default_rng(2)
    ere = rng.gamma(2, 1, 400)
    bad = rng.random(400) < ere / ere.max()
    out = roc_auc(ere, bad)
    fpr, tpr, thr = roc_curve(bad, ere, drop_intermediate=False)
    np.testing.assert_array_equal(out['fpr'], fpr)
    np.testing.assert_array_equal(out['tpr'], tpr)
    np.testing.assert_array_equal(out['thresholds'], thr)
    assert out['auc'] == pytest.approx(roc_auc_score(bad, ere), rel=1e-12)
    perfect = roc_auc([0.1, 0.2, 0.3, 0.9, 1.5], [0, 0, 0, 1, 1])
    assert perfect['auc'] == 1.0
    with pytest.raises(ValueError, match='both good and erroneous'):
        roc_auc([0.1, 0.2], [False, False])
    with pytest.raises(ValueError, match='both good and erroneous'):
        roc_auc([0.1, 0.2], [True, True])


def test_threshold_at_tpr_hand_example():
    ere = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    bad = np.array([False, True, False, True, False, True])
    # P = 3, m = ceil(1.5) = 2, e_2 = 2.0: the largest ERE below is 1.5;
    # ERE > 1.5 flags 2.0, 2.5, 3.0 -> TPR 2/3, FPR 1/3
    assert threshold_at_tpr(ere, bad, 0.5) == 1.5
    # m = 3, e_3 = 1.0 -> 0.5; m = 1, e_1 = 3.0 -> 2.5
    assert threshold_at_tpr(ere, bad, 1.0) == 0.5
    assert threshold_at_tpr(ere, bad, 0.2) == 2.5
    # exact products do not round up: 2/3 of 3 is m = 2
    assert threshold_at_tpr(ere, bad, 2 / 3) == 1.5
    # nothing observed below e_m: one ulp under it
    t = threshold_at_tpr([1.0, 2.0], [True, False], 1.0)
    assert t == np.nextafter(1.0, -np.inf) and t < 1.0
    with pytest.raises(ValueError, match='erroneous'):
        threshold_at_tpr([1.0, 2.0], [False, False])
    with pytest.raises(ValueError, match='target_tpr'):
        threshold_at_tpr(ere, bad, 0.0)


@pytest.mark.parametrize('seed', range(5))
def test_threshold_at_tpr_random(seed):
    rng = np.random.default_rng(seed)
    n = 200
    ere = np.round(rng.gamma(2, 1, n), 1)  # with ties
    bad = rng.random(n) < np.clip(ere / 6, 0.05, 0.95)
    for target in (0.1, 0.5, 0.77, 1.0):
        t = threshold_at_tpr(ere, bad, target)
        tpr = np.mean(ere[bad] > t)
        assert tpr >= target - 1e-12
        # any larger observed threshold falls below the target
        larger = np.unique(ere[ere > t])
        for u in larger:
            assert np.mean(ere[bad] > u) < target
        # and the threshold flags no more good landmarks than needed: the
        # next observed ERE up already misses the target (checked above),
        # so t is the last one that reaches it
        assert t in ere or not np.any(ere < t)


def test_good_erroneous_table_hand_example():
    errors = np.array([1.0, 2.0, 2.4, 3.0, 5.0, 0.5])
    ere = np.array([0.2, 0.9, 1.5, 1.2, 3.0, 1.0])
    table = good_erroneous_table(errors, ere, threshold=1.0)
    # good: ERE <= 1.0 -> errors 1.0, 2.0, 0.5 (2.0 is not < 2: strict)
    assert table['good'] == pytest.approx(
        dict(count=3, MRE=3.5 / 3, SDR_2mm=200 / 3, **{
            'SDR_2.5mm': 100.0
        }, SDR_3mm=100.0, SDR_4mm=100.0))
    # flagged: 2.4, 3.0, 5.0 (3.0 is not < 3)
    assert table['erroneous'] == pytest.approx(
        dict(count=3, MRE=10.4 / 3, SDR_2mm=0.0, **{
            'SDR_2.5mm': 100 / 3
        }, SDR_3mm=100 / 3, SDR_4mm=200 / 3))
    # overall: < 2 -> 1.0, 0.5; < 2.5 and < 3 -> also 2.0, 2.4; < 4 -> 5 of 6
    assert table['overall'] == pytest.approx(
        dict(count=6, MRE=13.9 / 6, SDR_2mm=200 / 6, **{
            'SDR_2.5mm': 400 / 6
        }, SDR_3mm=400 / 6, SDR_4mm=500 / 6))
    assert (table['good']['count'] + table['erroneous']['count'] ==
            table['overall']['count'])
    # precomputed flags give the same table
    same = good_erroneous_table(errors, ere, None, flagged=ere > 1.0)
    assert same == table
    # an empty row: count 0, nan values
    none = good_erroneous_table(errors, ere, threshold=10.0)
    assert none['erroneous']['count'] == 0
    assert all(math.isnan(v) for key, v in none['erroneous'].items()
               if key != 'count')
    custom = good_erroneous_table(errors, ere, 1.0, sdr_thresholds=(1.5, ))
    assert set(custom['good']) == {'count', 'MRE', 'SDR_1.5mm'}
    with pytest.raises(ValueError):
        good_erroneous_table(errors, ere, None)
    with pytest.raises(ValueError):
        good_erroneous_table(errors, ere, 1.0, flagged=ere > 1.0)


# --------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------
def _is_png(path):
    with open(path, 'rb') as f:
        head = f.read(8)
    return head == b'\x89PNG\r\n\x1a\n' and os.path.getsize(path) > 1000


def test_png_writers(tmp_path):
    rng = np.random.default_rng(3)
    conf = rng.beta(2, 10, 300)
    hit = rng.random(300) < conf
    before = expected_calibration_error(np.clip(conf * 1.5, 0, 1), hit)
    after = expected_calibration_error(conf, hit)
    ere = rng.gamma(2, 0.7, 300)
    err = np.abs(ere + rng.normal(0, 0.5, 300))
    out = tmp_path / 'figs'  # created on demand
    paths = [str(out / n) for n in ('rel2.png', 'rel1.png', 'ere.png',
                                    'roc.png', 'roc_t.png')]
    reliability_diagram_png(paths[0], before, after, title='T scaling')
    reliability_diagram_png(paths[1], after)
    ere_vs_error_png(paths[2], ere, err, binned_correlation(ere, err))
    roc = roc_auc(ere, err > 2)
    roc_png(paths[3], roc)
    roc_png(paths[4], roc, threshold=threshold_at_tpr(ere, err > 2))
    for p in paths:
        assert _is_png(p), p
    # atomic writes leave nothing else behind, and overwrite in place
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p)
                                             for p in paths)
    roc_png(paths[3], roc)
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p)
                                             for p in paths)
