# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""A heatmap as a distribution: 2D softmax, NLL, mode and ERE, in one place.

The math a softmax-heatmap codec needs, beside the codec (as MMPose keeps
its heatmap math in ``mmpose/codecs/utils``). Every other part of mmchh
(codec, head, loss, metrics, hooks, API and tools) calls these pure
functions instead of re-deriving the formulas, so that a number reported
anywhere means the same thing everywhere.

Conventions:
    * A heatmap is indexed ``[..., y, x]`` (rows, then columns), as in MMPose.
    * The flat pixel index of ``(x, y)`` in a map of width ``W`` is
      ``y * W + x``.
    * Distances are measured between pixel centres, in heatmap pixels times
      ``pixel_size`` (so callers can ask for input-image pixels or mm).
"""
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

__all__ = [
    'expected_radial_error', 'heatmap_mode', 'log_softmax_2d', 'nll_at_index',
    'probability_within_radius', 'softmax_2d'
]

PixelSize = Union[float, Sequence[float], Tensor]


def softmax_2d(logits: Tensor, temperature: Optional[Tensor] = None) -> Tensor:
    """Normalises each map over all its pixels (the paper's Eq. 1 and 3).

    Args:
        logits (Tensor): Logit maps in shape (..., K, H, W).
        temperature (Tensor, optional): One positive temperature per map, in
            shape (K,). ``None`` means T = 1.

    Returns:
        Tensor: Probability maps, same shape as ``logits``; each (H, W) map
        sums to 1. Computed in float32 at least, for stability under AMP.

    Note:
        Subtracting the per-map maximum (done by ``torch.softmax``) keeps the
        exponentials finite for logits of any magnitude.
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)
    x = logits.to(dtype)
    if temperature is not None:
        x = x / temperature.to(device=x.device, dtype=dtype)[:, None, None]
    flat = x.flatten(-2)
    return torch.softmax(flat, dim=-1).view_as(x)


def log_softmax_2d(logits: Tensor,
                   temperature: Optional[Tensor] = None) -> Tensor:
    """Log of :func:`softmax_2d`, computed stably (same args and shapes)."""
    dtype = torch.promote_types(logits.dtype, torch.float32)
    x = logits.to(dtype)
    if temperature is not None:
        x = x / temperature.to(device=x.device, dtype=dtype)[:, None, None]
    return torch.log_softmax(x.flatten(-2), dim=-1).view_as(x)


def nll_at_index(logits: Tensor,
                 index: Tensor,
                 temperature: Optional[Tensor] = None) -> Tensor:
    """Negative log-likelihood of the target pixel under the 2D softmax.

    ``-log softmax(logits / T)[index] = logsumexp(logits / T) - logits[index] / T``,
    computed without building a one-hot map.

    Args:
        logits (Tensor): Logit maps in shape (B, K, H, W).
        index (Tensor): Flat target pixel index per map, in shape (B, K),
            integer, each in ``[0, H*W)``.
        temperature (Tensor, optional): Temperatures in shape (K,).

    Returns:
        Tensor: NLL per map in shape (B, K), float32 (float64 for float64
        logits).
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)
    flat = logits.to(dtype).flatten(-2)
    if temperature is not None:
        flat = flat / temperature.to(device=flat.device, dtype=dtype)[:, None]
    index = index.to(device=flat.device, dtype=torch.long)
    target_logit = flat.gather(-1, index.unsqueeze(-1)).squeeze(-1)
    return torch.logsumexp(flat, dim=-1) - target_logit


def heatmap_mode(heatmaps: Tensor) -> Tuple[Tensor, Tensor]:
    """Locates the hottest pixel of each map.

    Args:
        heatmaps (Tensor): Maps in shape (..., H, W).

    Returns:
        tuple:
        - coords (Tensor): ``(x, y)`` of the mode in heatmap pixels, in shape
          (..., 2), float32.
        - values (Tensor): The map value at the mode, in shape (...).

    Note:
        Ties resolve to the first pixel in row-major order (``argmax``).
    """
    w = heatmaps.shape[-1]
    values, index = heatmaps.flatten(-2).max(dim=-1)
    coords = torch.stack((index % w, torch.div(index, w, rounding_mode='floor')),
                         dim=-1).to(torch.float32)
    return coords, values


def _per_map_pixel_size(pixel_size: PixelSize, lead: torch.Size,
                        dtype: torch.dtype, device) -> Tensor:
    """(N, 2) pixel sizes (sx, sy), one row per flattened map."""
    size = torch.as_tensor(pixel_size, dtype=dtype, device=device)
    if size.ndim == 0:
        size = size.expand(2)
    if size.shape[-1] != 2:
        raise ValueError('pixel_size must be a scalar or end in a dimension '
                         f'of 2 (sx, sy); got shape {tuple(size.shape)}')
    try:
        return size.expand(*lead, 2).reshape(-1, 2)
    except RuntimeError as e:
        raise ValueError(f'pixel_size of shape {tuple(size.shape)} does not '
                         f'broadcast to the maps\' leading shape '
                         f'{tuple(lead)} + (2,)') from e


def expected_radial_error(probs: Tensor,
                          threshold: float = 0.05,
                          pixel_size: PixelSize = 1.0,
                          chunk_size: int = 64) -> Tensor:
    """Expected Radial Error of each probability map (the paper's Eq. 4).

    For each map: divide by its maximum, set values below ``threshold`` (5 %
    of the maximum by default) to 0, renormalise to sum 1, and return the
    expected Euclidean distance of a pixel drawn from that distribution to
    the mode pixel.

    Args:
        probs (Tensor): Probability (or any non-negative) maps in shape
            (..., H, W).
        threshold (float): Values strictly below ``threshold * max`` are
            dropped. 0 keeps every pixel (the un-thresholded Eq. 4).
        pixel_size (float | sequence | Tensor): Size of one heatmap pixel as
            ``s`` or ``(sx, sy)``, or a tensor of shape (..., 2) matching the
            leading dimensions of ``probs`` (e.g. per-image mm/pixel). The
            result is in these units (heatmap pixels by default).
        chunk_size (int): Maps processed at once; bounds the temporary
            memory to about ``chunk_size * H * W`` elements.

    Returns:
        Tensor: ERE in shape (...), in the dtype of ``probs`` (at least
        float32).

    Note:
        The mode is the first maximum in row-major order, the same pixel as
        :func:`heatmap_mode` and every decoder uses. A map whose maximum is 0
        (no mass at all) has ERE 0.

        The pixels that count are usually a small part of a map (a trained
        network's maps drop below 5 % of their peak a few dozen pixels from
        it). Each map's row maxima are taken first, and only the rows that
        hold a pixel that counts are read again and weighted, so for such
        maps the cost is little more than one pass over them; for flat maps
        every row is weighted.
    """
    if not 0 <= threshold < 1:
        raise ValueError(f'threshold must be in [0, 1); got {threshold}')
    dtype = torch.promote_types(probs.dtype, torch.float32)
    lead, (h, w) = probs.shape[:-2], probs.shape[-2:]
    maps = probs.reshape(-1, h, w)
    n = maps.shape[0]

    size = _per_map_pixel_size(pixel_size, lead, dtype, probs.device)
    out = torch.empty(n, device=probs.device, dtype=dtype)
    # pixels with value 0 add nothing to either sum, so the cut is at least
    # the smallest positive number (this also empties all-zero maps)
    smallest = torch.nextafter(
        torch.zeros((), dtype=dtype), torch.ones((), dtype=dtype)).item()
    for start in range(0, n, chunk_size):
        chunk = maps[start:start + chunk_size].to(dtype)
        row_max = chunk.amax(dim=-1)
        peak = row_max.amax(dim=-1)
        # NaN peaks stay NaN: nothing counts and the ERE is 0
        cut = torch.where(peak * threshold >= smallest, peak * threshold,
                          torch.where(torch.isnan(peak), peak,
                                      torch.full_like(peak, smallest)))
        out[start:start + chunk_size] = _ere_rows(
            chunk, row_max, peak, cut, size[start:start + chunk_size])
    return out.reshape(lead)


def _ere_rows(chunk: Tensor, row_max: Tensor, peak: Tensor, cut: Tensor,
              size: Tensor) -> Tensor:
    """ERE of (N, H, W) maps from the rows that hold a counted pixel.

    ``row_max`` (N, H) are the rows' maxima, ``peak`` and ``cut`` (N,) each
    map's maximum and the smallest value that counts; ``size`` (N, 2) the
    pixel sizes. Returns (N,).
    """
    n, h, w = chunk.shape
    dtype, f64 = chunk.dtype, torch.float64
    cand_map, cand_row = (row_max >= cut[:, None]).nonzero(as_tuple=True)
    if len(cand_map) == n * h:
        rows = chunk.reshape(n * h, w)
    else:
        rows = chunk.reshape(n * h, w).index_select(
            0, cand_map * h + cand_row)
    # the mode: the first (row-major) pixel equal to the peak, as
    # heatmap_mode's argmax picks it: in the first candidate row whose
    # maximum is the peak, at that row's first maximum
    at_peak = (row_max[cand_map, cand_row] == peak[cand_map]).nonzero(
        as_tuple=True)[0]
    mode = torch.full((n, ), h * w, dtype=torch.long, device=chunk.device)
    mode.scatter_reduce_(
        0, cand_map[at_peak],
        cand_row[at_peak] * w + rows[at_peak].argmax(dim=-1), reduce='amin')
    mode_x = (mode % w).to(dtype)[cand_map, None]
    dy = ((cand_row - torch.div(mode, w, rounding_mode='floor')[cand_map]
           ).to(dtype) * size[cand_map, 1])[:, None]
    zero = torch.zeros((), device=chunk.device, dtype=dtype)
    values = torch.where(rows >= cut[cand_map, None], rows, zero)
    xs = torch.arange(w, device=chunk.device, dtype=dtype)
    dist = ((xs - mode_x) * size[cand_map, 0, None]).hypot_(dy)
    mass = torch.zeros(n, device=chunk.device, dtype=f64).index_add_(
        0, cand_map, values.sum(dim=-1).to(f64))
    weighted = torch.zeros(n, device=chunk.device, dtype=f64).index_add_(
        0, cand_map, values.mul_(dist).sum(dim=-1).to(f64))
    ere = torch.where(mass > 0, weighted / mass.clamp_min(1e-300),
                      torch.zeros((), device=chunk.device, dtype=f64))
    return ere.to(dtype)


def probability_within_radius(probs: Tensor,
                              centre: Tensor,
                              radius: Union[float, Tensor] = 1.0,
                              pixel_size: PixelSize = 1.0,
                              chunk_size: int = 64) -> Tensor:
    """Mass of each map on the pixels within ``radius`` of a point.

    Reads the map as a distribution over where the landmark lies (the
    landmark lies in a pixel with that pixel's probability) and sums the
    probabilities of the pixels whose centre is at most ``radius`` from
    ``centre`` (a disc, or an ellipse in heatmap pixels when ``sx != sy``):
    the probability that the landmark lies within ``radius`` of the
    prediction when ``centre`` is the prediction.

    Args:
        probs (Tensor): Probability maps in shape (..., H, W).
        centre (Tensor): ``(x, y)`` of each map's point in heatmap pixels
            (an integer is a pixel centre), in shape (..., 2). A non-finite
            centre gives NaN.
        radius (float | Tensor): Positive radius in the unit of
            ``pixel_size``: one number, or a tensor broadcasting to the
            maps' leading shape (...).
        pixel_size (float | sequence | Tensor): Size of one heatmap pixel as
            ``s``, ``(sx, sy)`` or a tensor of shape (..., 2), as in
            :func:`expected_radial_error` (e.g. mm per heatmap pixel).
        chunk_size (int): Maps processed at once.

    Returns:
        Tensor: The mass in shape (...), in [0, 1] for maps that sum to 1;
        the dtype of ``probs`` (at least float32), summed in float64.

    Note:
        Only a window around each point is read: (2a + 1) x (2b + 1)
        pixels with ``a`` (``b``) the radius in heatmap pixels along x (y)
        plus one, at most the map. A pixel at exactly ``radius`` counts.
    """
    dtype = torch.promote_types(probs.dtype, torch.float32)
    lead, (h, w) = probs.shape[:-2], probs.shape[-2:]
    if tuple(centre.shape) != tuple(lead) + (2, ):
        raise ValueError(f'centre must have shape {tuple(lead) + (2, )}; '
                         f'got {tuple(centre.shape)}')
    device = probs.device
    size = _per_map_pixel_size(pixel_size, lead, dtype, device)
    if not bool(torch.isfinite(size).all() & (size > 0).all()):
        raise ValueError('pixel_size must be finite and positive')
    rad = torch.as_tensor(radius, dtype=dtype, device=device)
    try:
        rad = rad.expand(lead).reshape(-1)
    except RuntimeError as e:
        raise ValueError(f'radius of shape {tuple(rad.shape)} does not '
                         f'broadcast to the maps\' leading shape '
                         f'{tuple(lead)}') from e
    if not bool(torch.isfinite(rad).all() & (rad > 0).all()):
        raise ValueError('radius must be finite and positive')
    maps = probs.reshape(-1, h * w)
    points = centre.reshape(-1, 2).to(device=device, dtype=dtype)
    out = torch.empty(maps.shape[0], device=device, dtype=dtype)
    for start in range(0, maps.shape[0], chunk_size):
        part = slice(start, start + chunk_size)
        out[part] = _mass_in_window(maps[part], points[part], rad[part],
                                    size[part], h, w)
    return out.reshape(lead)


def _mass_in_window(maps: Tensor, points: Tensor, rad: Tensor, size: Tensor,
                    h: int, w: int) -> Tensor:
    """(N,) mass of (N, H*W) maps within ``rad`` (N,) of ``points``
    (N, 2), distances scaled by ``size`` (N, 2); NaN for a non-finite
    point."""
    dtype = points.dtype
    finite = torch.isfinite(points).all(-1)
    safe = torch.where(finite[:, None], points, torch.zeros_like(points))
    reach = rad[:, None] / size  # (N, 2) heatmap pixels along x, y
    # the window around the nearest pixel (clamped onto the map) holds
    # every pixel within reach: |u - base| <= reach + 1/2 < ceil(reach) + 1
    half_x = min(int(torch.ceil(reach[:, 0].max()).item()) + 1, w - 1)
    half_y = min(int(torch.ceil(reach[:, 1].max()).item()) + 1, h - 1)
    base = torch.stack(
        (safe[:, 0].round().clamp(0, w - 1), safe[:, 1].round().clamp(
            0, h - 1)), dim=-1).long()
    cols = base[:, 0, None] + torch.arange(
        -half_x, half_x + 1, device=maps.device)  # (N, 2a+1)
    rows = base[:, 1, None] + torch.arange(
        -half_y, half_y + 1, device=maps.device)  # (N, 2b+1)
    dx = (cols.to(dtype) - safe[:, 0, None]) * size[:, 0, None]
    dy = (rows.to(dtype) - safe[:, 1, None]) * size[:, 1, None]
    inside = (dy[:, :, None]**2 + dx[:, None, :]**2) <= \
        (rad**2)[:, None, None]
    inside &= ((rows >= 0) & (rows < h))[:, :, None] & (
        (cols >= 0) & (cols < w))[:, None, :]
    index = rows.clamp(0, h - 1)[:, :, None] * w + cols.clamp(0, w - 1)[:,
                                                                        None]
    values = maps.gather(1, index.flatten(1)).view(index.shape)
    mass = torch.where(inside, values.to(torch.float64),
                       torch.zeros((), dtype=torch.float64,
                                   device=maps.device)).sum(dim=(1, 2))
    nan = torch.full((), float('nan'), dtype=torch.float64,
                     device=maps.device)
    return torch.where(finite, mass, nan).to(dtype)
