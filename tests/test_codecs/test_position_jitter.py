# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Draws widened by a per-landmark covariance, and what such a covariance
must be."""
import numpy as np
import pytest

from mmchh.codecs.utils import add_position_jitter, check_jitter


def test_draws_spread_by_the_covariance():
    jitter = np.array([[[4.0, 1.0], [1.0, 2.0]], [[0.0, 0.0], [0.0, 1.0]],
                       [[0.0, 0.0], [0.0, 0.0]]])
    pos = np.zeros((200000, 3, 2))
    pos[:, 2] = 7.0
    out = add_position_jitter(pos, jitter, seed=0)
    for k in range(2):
        np.testing.assert_allclose(np.cov(out[:, k].T), jitter[k], atol=0.03)
    assert (out[:, 1, 0] == 0).all()  # singular: widened along y only
    assert (out[:, 2] == 7.0).all()  # zero jitter: unchanged


def test_same_seed_same_draws_and_nan_stays_nan():
    rng = np.random.default_rng(2)
    pos = rng.normal(size=(50, 2, 2))
    pos[:, 1] = np.nan
    jitter = np.broadcast_to(np.eye(2), (2, 2, 2))
    a = add_position_jitter(pos, jitter, seed=5)
    b = add_position_jitter(pos, jitter, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert np.isnan(a[:, 1]).all()
    # the offsets: z @ sqrtm(J)^T, z the generator's standard normals
    z = np.random.default_rng(5).standard_normal(pos.shape)
    np.testing.assert_allclose(a[:, 0], pos[:, 0] + z[:, 0])


@pytest.mark.parametrize('bad, message', [
    (np.ones((2, 2, 2)) * np.array([[1, 2], [2, 1]]), 'semi-definite'),
    (np.array([[[1.0, 0.5], [0.0, 1.0]]] * 2), 'symmetric'),
    (np.full((2, 2, 2), np.nan), 'non-finite'),
    (np.zeros((3, 2, 2)), 'K = 2'),
    (np.zeros((2, 2)), r'\(K, 2, 2\)'),
])
def test_bad_covariances_are_refused_naming_where(bad, message):
    with pytest.raises(ValueError, match=message) as info:
        check_jitter(bad, 2, 'calib.json')
    assert 'calib.json' in str(info.value)
    with pytest.raises(ValueError, match=message):
        add_position_jitter(np.zeros((4, 2, 2)), bad)


def test_check_returns_an_array_or_none():
    assert check_jitter(None, 3, 'x') is None
    out = check_jitter([[[1, 0], [0, 2]]], None, 'x')
    assert out.dtype == np.float64 and out.shape == (1, 2, 2)
