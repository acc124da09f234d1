# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Synthetic logit maps and slow references shared by the tests of
:mod:`mmchh.calibration.temperature.logit_summary` and :mod:`mmchh.calibration.temperature.fit`
(imported as ``from logit_maps import ...``, like ``conftest``)."""
import math

import numpy as np
import torch

from mmchh.codecs.utils import softmax_2d


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
