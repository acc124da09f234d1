# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Conformal landmark regions on a probability map: scores and regions.

Split conformal prediction needs a *nonconformity score* ``s(map, pixel)``
(large = the pixel fits the map badly). A region at threshold ``tau`` is the
set of pixels ``{y : s(map, y) <= tau}``, so the true pixel lies in it
exactly when its own score is ``<= tau``; fitting ``tau`` as the corrected
quantile of the calibration split's true-pixel scores
(:mod:`mmchh.evaluation.functional.conformal`) then covers a new landmark
with probability ``>= 1 - alpha``. Two scores:

* ``'density'``: ``s = -p[y]``. The region is the superlevel set
  ``{p >= -tau}`` (one probability threshold for every map of a landmark).
* ``'mass'`` (cumulative mass, the highest-density set): ``s`` = the total
  probability of the pixels with ``p > p[y]`` (strictly greater). The region
  is the smallest superlevel set of the map whose mass exceeds ``tau`` (the
  whole map when none does); the mode always belongs to it (score 0).

Ties in ``p`` (equal pixels, e.g. a flat tail) get equal scores under both
definitions, so a region holds all or none of a tie level: it is always the
set ``{y : s(y) <= tau}`` whatever the order of pixels in memory, and
"the target is inside" is always exactly "the target's score is
``<= tau``" -- the one property the guarantee rests on. Equal calibration
scores (e.g. every target at a mode, mass score 0) only make the quantile
more conservative: coverage stays ``>= 1 - alpha`` but may exceed
``1 - alpha + 1 / (n + 1)``. The randomised tie term of APS-style scores
(``+ U * mass of the target's tie level``) would make coverage exact, but it
makes each region a random set; mmchh keeps regions deterministic.

Everything runs on the maps' device, batched, in chunks of ``chunk_size``
maps, so the temporary memory is a few ``chunk_size * H * W`` arrays (the
mass score sorts each map). Maps holding a non-finite value have no region:
their score and area are NaN and their target is never inside.

Conventions follow :mod:`.heatmap_distribution`: maps are ``[..., y, x]``
and the flat pixel index of ``(x, y)`` is ``y * W + x``.
"""
from typing import Iterator, Optional, Tuple, Union

import torch
from torch import Tensor

__all__ = [
    'CONFORMAL_SCORES', 'conformal_region_masks', 'conformal_regions',
    'conformal_scores'
]

#: The nonconformity scores a region can be built on.
CONFORMAL_SCORES = ('density', 'mass')

Threshold = Union[float, Tensor]


def _check_score(score: str) -> None:
    if score not in CONFORMAL_SCORES:
        raise ValueError(f'score must be one of {CONFORMAL_SCORES}; got '
                         f'{score!r}')


def _flat_maps(probs: Tensor) -> Tuple[Tensor, torch.Size]:
    """(N, H*W) maps and the leading shape of ``probs`` (..., H, W)."""
    if probs.ndim < 2:
        raise ValueError('probs must have shape (..., H, W); got '
                         f'{tuple(probs.shape)}')
    lead = probs.shape[:-2]
    return probs.reshape(-1, probs.shape[-2] * probs.shape[-1]), lead


def _flat_per_map(value: Threshold, lead: torch.Size, name: str,
                  device) -> Tensor:
    """``value`` (scalar, or broadcastable to ``lead``) as (N,) float64."""
    value = torch.as_tensor(value, dtype=torch.float64, device=device)
    if bool(torch.isnan(value).any()):
        raise ValueError(f'{name} holds NaN (no threshold fitted)')
    try:
        return value.expand(lead).reshape(-1)
    except RuntimeError as e:
        raise ValueError(f'{name} of shape {tuple(value.shape)} does not '
                         f'broadcast to the maps\' leading shape '
                         f'{tuple(lead)}') from e


def _flat_index(target_index: Tensor, lead: torch.Size, n_pix: int,
                device) -> Tensor:
    """Checked (N,) int64 flat target indices."""
    if tuple(target_index.shape) != tuple(lead):
        raise ValueError(f'target_index must have shape {tuple(lead)}; got '
                         f'{tuple(target_index.shape)}')
    index = target_index.to(device=device, dtype=torch.long).reshape(-1)
    if index.numel() and bool(((index < 0) | (index >= n_pix)).any()):
        raise ValueError(f'target_index must lie in [0, {n_pix}); got values '
                         f'in [{int(index.min())}, {int(index.max())}]')
    return index


def _chunks(n: int, chunk_size: int) -> Iterator[slice]:
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f'chunk_size must be a positive integer; got '
                         f'{chunk_size}')
    for start in range(0, n, int(chunk_size)):
        yield slice(start, min(start + int(chunk_size), n))


def _mass_above(maps: Tensor, values: Tensor) -> Tensor:
    """Total mass of each map's pixels strictly above each value.

    Args:
        maps (Tensor): Maps in shape (N, P).
        values (Tensor): Values in shape (N, M), in the maps' dtype (a value
            equal to a pixel must compare equal to it).

    Returns:
        Tensor: (N, M) float64 masses.
    """
    ascending = maps.sort(dim=-1).values
    # suffix sums: above[:, i] = sum of ascending[:, i:], above[:, P] = 0;
    # accumulated from the top so that the small masses near the mode keep
    # their precision
    top_down = ascending.flip(-1).to(torch.float64).cumsum(-1)
    above = torch.cat((top_down.flip(-1), top_down.new_zeros(
        (len(maps), 1))), dim=-1)
    first_above = torch.searchsorted(ascending, values.contiguous(),
                                     right=True)
    return above.gather(-1, first_above)


def _pixel_scores(maps: Tensor, score: str) -> Tensor:
    """Every pixel's score, (N, P) float64."""
    if score == 'density':
        return maps.to(torch.float64).neg()
    return _mass_above(maps, maps)


def _finite_maps(maps: Tensor) -> Tensor:
    """(N,) bool: the (N, P) map holds no NaN / inf (a float64 sum of
    probabilities cannot overflow, so it is non-finite exactly then)."""
    return torch.isfinite(maps.sum(dim=-1, dtype=torch.float64))


def conformal_scores(probs: Tensor,
                     target_index: Tensor,
                     score: str = 'mass',
                     chunk_size: int = 64) -> Tensor:
    """Nonconformity score of the true pixel of each map.

    Args:
        probs (Tensor): Probability maps in shape (..., H, W), e.g. the
            head's calibrated (B, K, H, W) maps.
        target_index (Tensor): Flat true pixel index ``y * W + x`` per map,
            in shape (...), integer, each in ``[0, H*W)``.
        score (str): ``'density'`` (``-p[target]``) or ``'mass'`` (the mass
            of the pixels more probable than the target). See the module
            docstring.
        chunk_size (int): Maps processed at once (the mass score sorts
            them).

    Returns:
        Tensor: Scores in shape (...), float64, on the maps' device; NaN for
        a map holding a non-finite value.

    Note:
        Shapes: ``probs`` (..., H, W), ``target_index`` (...), result (...).
        The score of a pixel is computed from the map's values alone (never
        from pixel order), so it equals what :func:`conformal_regions`
        compares with the threshold for that pixel.
    """
    _check_score(score)
    maps, lead = _flat_maps(probs)
    index = _flat_index(target_index, lead, maps.shape[-1], probs.device)
    out = torch.empty(len(maps), dtype=torch.float64, device=probs.device)
    for part in _chunks(len(maps), chunk_size):
        chunk = maps[part]
        target = chunk.gather(-1, index[part, None])
        if score == 'density':
            value = target.to(torch.float64).neg()[:, 0]
        else:
            value = _mass_above(chunk, target)[:, 0]
        out[part] = torch.where(_finite_maps(chunk), value,
                                torch.full_like(value, float('nan')))
    return out.reshape(lead)


def conformal_regions(probs: Tensor,
                      threshold: Threshold,
                      target_index: Optional[Tensor] = None,
                      score: str = 'mass',
                      chunk_size: int = 64) -> Tuple[Tensor, Tensor]:
    """Area of each map's conformal region and whether it holds the target.

    Args:
        probs (Tensor): Probability maps in shape (..., H, W).
        threshold (float | Tensor): The fitted score threshold, a scalar
            (pooled) or broadcastable to (...), e.g. (K,) per landmark for
            (B, K, H, W) maps. ``inf`` gives the whole map (too few
            calibration maps for the level).
        target_index (Tensor, optional): Flat true pixel index per map in
            shape (...); None when there is no ground truth.
        score (str): ``'density'`` or ``'mass'``, the score the threshold
            was fitted on.
        chunk_size (int): Maps processed at once.

    Returns:
        tuple:
        - area (Tensor): Pixels in the region, in shape (...), float64 (in
          heatmap pixels; NaN for a map holding a non-finite value).
        - inside (Tensor | None): Whether the target pixel is in the region,
          in shape (...), bool (False for a non-finite map); None without
          ``target_index``.

    Note:
        Shapes: ``probs`` (..., H, W), ``threshold`` () or broadcastable to
        (...), ``target_index`` (...). ``inside`` equals
        ``conformal_scores(...) <= threshold`` exactly.
    """
    _check_score(score)
    maps, lead = _flat_maps(probs)
    tau = _flat_per_map(threshold, lead, 'threshold', probs.device)
    index = None if target_index is None else _flat_index(
        target_index, lead, maps.shape[-1], probs.device)
    area = torch.empty(len(maps), dtype=torch.float64, device=probs.device)
    inside = torch.zeros(len(maps), dtype=torch.bool, device=probs.device)
    for part in _chunks(len(maps), chunk_size):
        chunk = maps[part]
        finite = _finite_maps(chunk)
        in_region = _pixel_scores(chunk, score) <= tau[part, None]
        count = in_region.sum(dim=-1).to(torch.float64)
        area[part] = torch.where(finite, count,
                                 torch.full_like(count, float('nan')))
        if index is not None:
            inside[part] = in_region.gather(-1, index[part, None])[:, 0] & \
                finite
    return area.reshape(lead), (None if index is None else
                                inside.reshape(lead))


def conformal_region_masks(probs: Tensor,
                           threshold: Threshold,
                           score: str = 'mass',
                           chunk_size: int = 64) -> Tensor:
    """Each map's conformal region as a boolean mask (for outlines).

    Args:
        probs (Tensor): Probability maps in shape (..., H, W).
        threshold (float | Tensor): As for :func:`conformal_regions`.
        score (str): ``'density'`` or ``'mass'``.
        chunk_size (int): Maps processed at once.

    Returns:
        Tensor: (..., H, W) bool, True inside the region; all False for a
        map holding a non-finite value.

    Note:
        Shapes: ``probs`` (..., H, W), result (..., H, W). The mask's pixel
        count is :func:`conformal_regions`' area.
    """
    _check_score(score)
    maps, lead = _flat_maps(probs)
    tau = _flat_per_map(threshold, lead, 'threshold', probs.device)
    out = torch.empty(maps.shape, dtype=torch.bool, device=probs.device)
    for part in _chunks(len(maps), chunk_size):
        chunk = maps[part]
        out[part] = (_pixel_scores(chunk, score) <= tau[part, None]) & \
            _finite_maps(chunk)[:, None]
    return out.reshape(probs.shape)
