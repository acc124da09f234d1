# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Synthetic calibrated heatmaps for conformal regions: the true landmark
is drawn from each map itself, so the maps are calibrated by construction.

The conformal tests draw their maps here, and :func:`compare_scores`
measures which conformal score gives smaller regions at equal coverage on
such maps (``benchmarks/conformal_scores.py`` runs it over seeds and writes
``docs/results/conformal_scores.json``).
"""
import math

import torch

from mmchh.codecs.utils import (CONFORMAL_SCORES, conformal_regions,
                                conformal_scores, heatmap_mode)
from mmchh.evaluation.functional import (conformal_thresholds, disc_regions,
                                         region_summary)


def blob_maps(num, h, w, seed, max_blobs=3, sigma_range=(0.6, 3.0)):
    """Probability maps like calibrated network outputs: a mixture of up to
    ``max_blobs`` Gaussian blobs of random widths and weights (one usually
    dominant) plus a thin uniform tail of random mass (1e-4 to 1e-2).

    Returns:
        Tensor: (num, h, w) float32 maps, each summing to 1.
    """
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    ys = torch.arange(h, dtype=f64)[:, None]
    xs = torch.arange(w, dtype=f64)[None, :]
    centre = torch.rand(num, max_blobs, 2, generator=g, dtype=f64) * \
        torch.tensor([w - 1, h - 1], dtype=f64)
    log_lo, log_hi = (math.log(s) for s in sigma_range)
    sigma = (torch.rand(num, max_blobs, generator=g, dtype=f64) *
             (log_hi - log_lo) + log_lo).exp()
    weight = torch.rand(num, max_blobs, generator=g, dtype=f64)**4
    d2 = (xs - centre[..., 0, None, None])**2 + \
        (ys - centre[..., 1, None, None])**2
    blobs = (weight / sigma**2)[..., None, None] * torch.exp(
        -d2 / (2 * sigma[..., None, None]**2))
    dens = blobs.sum(1)
    dens = dens / dens.flatten(-2).sum(-1)[:, None, None]
    tail = 10**(torch.rand(num, generator=g, dtype=f64) * 2 - 4)
    maps = dens * (1 - tail)[:, None, None] + (tail / (h * w))[:, None, None]
    maps = maps.float()
    return maps / maps.flatten(-2).sum(-1)[:, None, None]


def draw_targets(maps, seed):
    """One flat pixel index per map, drawn from the map: (num,) int64."""
    g = torch.Generator().manual_seed(seed)
    return torch.multinomial(maps.flatten(-2).double(), 1, generator=g)[:, 0]


def mode_errors(maps, index):
    """Distance (pixels) from each map's mode to its target: the radial
    error of the prediction, for the disc baseline. (num,) float64."""
    w = maps.shape[-1]
    mode, _ = heatmap_mode(maps)
    target = torch.stack((index % w, index // w), -1).to(mode.dtype)
    return (mode - target).double().norm(dim=-1)


def compare_scores(n_calib=1000, n_test=20000, size=(32, 32),
                   levels=(0.8, 0.9, 0.95), seed=0, max_blobs=3):
    """Coverage and region area of each score (and the disc) on synthetic
    calibrated maps; returns one row per level and score (see
    :func:`format_score_rows`).

    The "uncertain third" of the test maps are those whose 90 % mass region
    is largest: coverage there shows how evenly each score spreads its
    misses over easy and hard maps. ``max_blobs=1`` gives unimodal maps.
    """
    h, w = size
    maps = blob_maps(n_calib + n_test, h, w, seed, max_blobs)
    index = draw_targets(maps, seed + 1)
    errors = mode_errors(maps, index).numpy()
    calib, test = slice(0, n_calib), slice(n_calib, None)
    spread, _ = conformal_regions(maps[test], 0.9, None, 'mass')
    hard = (spread >= spread.quantile(2 / 3)).numpy()[:, None]
    rows = []
    for name in CONFORMAL_SCORES + ('disc', ):
        if name == 'disc':
            fit = conformal_thresholds(errors[calib], levels)
        else:
            scores = conformal_scores(maps[calib], index[calib], name)
            fit = conformal_thresholds(scores.numpy(), levels)
        for level, tau in zip(levels, fit['pooled']):
            if name == 'disc':
                inside, area = disc_regions(errors[test], tau)
            else:
                area, inside = conformal_regions(maps[test], float(tau),
                                                 index[test], name)
                inside, area = inside.numpy()[:, None], area.numpy()[:, None]
            every = region_summary(inside, area)
            rows.append(dict(
                score=name, level=level, coverage=every['coverage'],
                median_area=every['median_area'],
                mean_area=every['mean_area'],
                empty=float((area == 0).mean()),
                coverage_uncertain_third=region_summary(
                    inside, area, hard)['coverage']))
    return rows


def format_score_rows(rows) -> str:
    """:func:`compare_scores`' rows as a text table."""
    lines = ['score    level coverage median_px mean_px empty '
             'cover(uncertain 1/3)']
    for r in rows:
        lines.append(
            f'{r["score"]:8s} {r["level"]:.2f}  {r["coverage"]:.4f}  '
            f'{r["median_area"]:8.1f} {r["mean_area"]:7.1f} '
            f'{r["empty"]:.3f} {r["coverage_uncertain_third"]:.4f}')
    return '\n'.join(lines)
