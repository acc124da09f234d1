# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Tests of the do-no-harm choice of the temperatures: the out-of-fold NLL
against a slow dense reference, the rule's invariant, and its fallbacks."""
import math

import numpy as np
import pytest
import torch
from logit_maps import peak_logits, sample_targets, slow_nll

from mmchh.calibration.temperature.logit_summary import summarize_logits
from mmchh.calibration.temperature.fit import (fit_shared_temperature,
                                              fit_temperatures)
from mmchh.calibration.temperature.select import (CANDIDATES, image_folds,
                                                select_temperatures)


def maps(b, true_t, k=4, seed=0, h=16, w=20):
    """(B, K) peaked maps whose targets are drawn at temperature
    ``true_t``: the network (T = 1) is over-confident when true_t > 1 and
    calibrated when true_t = 1."""
    temps = [true_t] * k
    z, g = peak_logits(b, temps, h, w, seed=seed)
    index = sample_targets(z, temps, g)
    return z, index


def test_image_folds_by_hand():
    assert [f.tolist() for f in image_folds(3, cv_folds=10)] == [[0], [1],
                                                                 [2]]
    folds = image_folds(25, cv_folds=10, seed=3)
    assert len(folds) == 10
    assert sorted(np.concatenate(folds).tolist()) == list(range(25))
    assert {len(f) for f in folds} == {2, 3}
    # seeded: the same folds again, other folds for another seed
    again = image_folds(25, cv_folds=10, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(folds, again))
    other = image_folds(25, cv_folds=10, seed=4)
    assert not all(np.array_equal(a, b) for a, b in zip(folds, other))
    with pytest.raises(ValueError, match='>= 2 images'):
        image_folds(1)
    with pytest.raises(ValueError, match='cv_folds'):
        image_folds(5, cv_folds=1)


def test_over_confident_model_keeps_the_per_landmark_fit():
    z, index = maps(20, true_t=3.0, seed=1)
    s = summarize_logits(z, index, num_bins=256)
    sel = select_temperatures(s, prior_std=1.0)
    assert sel.chosen == 'per_landmark'
    assert sel.scheme == 'k-fold' and sel.folds == 10
    change = sel.change['per_landmark']
    assert change['high'] < 0 and change['num_images'] == 20
    assert 'excludes harm' in sel.reason
    # the final temperatures are the fit on ALL images
    torch.testing.assert_close(sel.temperature,
                               fit_temperatures(s, prior_std=1.0),
                               rtol=0, atol=0)
    assert (sel.temperature > 2).all()
    report = sel.report()
    assert report['chosen'] == 'per_landmark'
    assert set(report['candidates']) == set(CANDIDATES)
    assert report['candidates']['identity']['change'] is None


@pytest.mark.parametrize('seed', range(6))
def test_calibrated_model_never_gets_a_fit_worse_out_of_fold(seed):
    """5 images of an already calibrated model: whatever is chosen, its own
    out-of-fold NLL is not above identity's, and a fit is kept only when
    its interval lies below 0."""
    z, index = maps(5, true_t=1.0, seed=100 + seed)
    s = summarize_logits(z, index, num_bins=256)
    sel = select_temperatures(s, prior_std=1.0, seed=seed)
    assert sel.scheme == 'leave-one-image-out' and sel.folds == 5
    assert sel.oof_nll[sel.chosen] <= sel.oof_nll['identity']
    if sel.chosen != 'identity':
        assert sel.change[sel.chosen]['high'] < 0
    else:
        assert torch.equal(sel.temperature, torch.ones(4))
        assert 'does not exclude harm' in sel.reason
    # the per-landmark candidate is reported whatever was chosen
    assert math.isfinite(sel.oof_nll['per_landmark'])


@pytest.mark.parametrize('b, cv_folds', [(6, 10), (9, 3)])
def test_out_of_fold_nll_matches_a_slow_dense_reference(b, cv_folds):
    """Each fold refitted by hand on the other images' own summary, the
    held-out images' NLL from a dense float64 log-softmax of the maps."""
    z, index = maps(b, true_t=1.7, k=3, seed=b)
    weights = torch.ones(b, 3)
    weights[1, 2] = 0.0  # one unannotated landmark
    s = summarize_logits(z, index)
    sel = select_temperatures(s, weights, prior_std=0.5, cv_folds=cv_folds)
    folds = image_folds(b, cv_folds)
    assert sel.folds == len(folds)
    ref = {name: np.full((b, 3), np.nan) for name in CANDIDATES}
    for held in folds:
        rest = np.setdiff1d(np.arange(b), held)
        train = summarize_logits(z[rest], index[rest])
        t = dict(
            per_landmark=fit_temperatures(train, weights[rest],
                                          prior_std=0.5),
            pooled=torch.full((3, ),
                              fit_shared_temperature(train, weights[rest])),
            identity=torch.ones(3))
        for name in CANDIDATES:
            ref[name][held] = slow_nll(z[held].numpy(), index[held].numpy(),
                                       t[name].numpy())
    mask = weights.numpy() > 0
    for name in CANDIDATES:
        got = sel.oof_per_image[name]
        np.testing.assert_allclose(got[mask], ref[name][mask], rtol=2e-5)
        assert sel.oof_nll[name] == pytest.approx(ref[name][mask].mean(),
                                                  rel=2e-5)


def test_off_reproduces_the_per_landmark_fit_exactly():
    z, index = maps(7, true_t=1.0, seed=7)
    s = summarize_logits(z, index, num_bins=256)
    weights = torch.rand(7, 4, generator=torch.Generator().manual_seed(0))
    init = torch.tensor([0.5, 1.0, 2.0, 1.5])
    sel = select_temperatures(s, weights, init=init, prior_std=1.0,
                              do_no_harm=False)
    expected = fit_temperatures(s, weights, init=init, prior_std=1.0)
    assert sel.chosen == 'per_landmark' and not sel.do_no_harm
    assert torch.equal(sel.temperature, expected)
    assert sel.report()['do_no_harm'] is False


def test_one_image_keeps_identity_and_says_why():
    z, index = maps(1, true_t=3.0, seed=2)
    sel = select_temperatures(summarize_logits(z, index, num_bins=64))
    assert sel.chosen == 'identity' and sel.folds == 0
    assert torch.equal(sel.temperature, torch.ones(4))
    assert 'no cross-validation' in sel.reason
    assert sel.report()['scheme'] == 'none'


def test_given_pooled_temperature_is_the_one_the_prior_would_fit():
    """The cross-validation passes the pooled T it already has to the
    per-landmark fit: the same temperatures as letting it refit."""
    z, index = maps(6, true_t=2.0, seed=5)
    s = summarize_logits(z, index, num_bins=128)
    pooled = fit_shared_temperature(s)
    assert torch.equal(fit_temperatures(s, prior_std=0.7, pooled=pooled),
                       fit_temperatures(s, prior_std=0.7))
