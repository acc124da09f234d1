# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Compact histogram summaries of logit maps, for temperature fitting.

:func:`summarize_logits` reduces each logit map to a :class:`LogitSummary`
from which the NLL of any temperature follows to ~1e-6
(:func:`nll_from_summary`), so that a calibration split never has to keep
its dense logits (150 images x 19 x 640x800 would be 5.8 GB). The fit itself
is in :mod:`mmchh.calibration.temperature.fit`.

Conventions follow :mod:`mmchh.codecs.utils.heatmap_distribution`: maps are
``[..., y, x]`` and the flat pixel index of ``(x, y)`` is ``y * W + x``.
"""
import math
from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

import torch
from torch import Tensor


# the fields of LogitSummary, in order
_FIELDS = ('bin_mean', 'bin_count', 'target_logit', 'max_logit', 'bin_var',
           'min_logit')


@dataclass(eq=False)  # tensors have no single truth value to compare
class LogitSummary:
    """Per-map histogram summary of logit maps, enough to fit temperatures.

    Attributes:
        bin_mean (Tensor): Mean logit of the pixels in each bin, float64.
            Empty bins hold their bin centre (never used: their count is 0).
        bin_count (Tensor): Number of pixels in each bin, int32.
        target_logit (Tensor): Logit at the ground-truth pixel, float64.
        max_logit (Tensor): Largest logit of the map, float64.
        bin_var (Tensor): Variance of the logits in each bin (population,
            0 for bins of 0 or 1 pixel), float32.
        min_logit (Tensor): Smallest logit of the map, float64; with
            ``max_logit`` it fixes the bin edges.

    Note:
        Shapes: ``bin_mean``, ``bin_count`` and ``bin_var`` are (B, K, NB);
        ``target_logit``, ``max_logit`` and ``min_logit`` are (B, K). Bin b
        of a map spans ``min + [b, b + 1] * (max - min) / NB``. The
        histogram covers every pixel of the map **except one pixel holding
        the maximum** (the first in row-major order), which is represented
        exactly by ``max_logit``; so ``bin_count.sum(-1) == H * W - 1``.
    """
    bin_mean: Tensor
    bin_count: Tensor
    target_logit: Tensor
    max_logit: Tensor
    bin_var: Tensor
    min_logit: Tensor

    @property
    def num_bins(self) -> int:
        """NB, the number of histogram bins per map."""
        return self.bin_mean.shape[-1]

    def __len__(self) -> int:
        """B, the number of samples (images)."""
        return self.bin_mean.shape[0]

    def _map(self, fn) -> 'LogitSummary':
        return LogitSummary(**{f: fn(getattr(self, f)) for f in _FIELDS})

    def to(self, device) -> 'LogitSummary':
        """Returns a copy with every tensor on ``device``."""
        return self._map(lambda t: t.to(device))

    def __getitem__(self, index) -> 'LogitSummary':
        """Selects samples, e.g. ``summary[10:20]``, or samples and
        landmarks, e.g. ``summary[rows, j:j + 1]`` (indexes every tensor's
        first dimensions; an int keeps the B dimension)."""
        if isinstance(index, int):
            i = range(len(self))[index]  # IndexError / negative indices
            index = slice(i, i + 1)  # keep the B dimension
        return self._map(lambda t: t[index])

    def pool_landmarks(self) -> 'LogitSummary':
        """Every map as a sample of one landmark: a (B*K, 1) summary."""
        return self._map(lambda t: t.flatten(0, 1).unsqueeze(1))

    def nll_terms(self) -> Dict[str, Tensor]:
        """The T-independent float64 parts of the summary NLL.

        ``log_n`` (-inf for empty bins), ``delta = m - max``, ``var`` and
        ``upper = hi - m`` (the bin's room above its mean) in the bins' shape,
        and ``gap = max - target`` in the maps' shape. Empty bins get finite
        zeros in ``delta`` / ``var`` / ``upper``, so that no inf ever meets a 0
        in a product.

        Returns:
            dict: ``log_n``, ``delta``, ``var``, ``upper`` and ``gap``.

        Note:
            Shapes: ``log_n``, ``delta``, ``var``, ``upper`` (B, K, NB);
            ``gap`` (B, K); all float64. Used by :func:`nll_from_summary`
            and by the fit in :mod:`mmchh.calibration.temperature.fit`.
        """
        f64 = torch.float64
        count = self.bin_count.to(f64)
        mx = self.max_logit.to(f64)[..., None]
        mn = self.min_logit.to(f64)[..., None]
        nb = self.bin_mean.shape[-1]
        nonempty = count > 0
        zero = torch.zeros((), dtype=f64, device=count.device)
        mean = self.bin_mean.to(f64)
        hi = mn + (torch.arange(1, nb + 1, dtype=f64, device=count.device) *
                   ((mx - mn) / nb))
        return dict(
            log_n=torch.where(nonempty, count.clamp_min(1.0).log(),
                              torch.full_like(count, -math.inf)),
            delta=torch.where(nonempty, mean - mx, zero),
            var=torch.where(nonempty, self.bin_var.to(f64), zero),
            upper=torch.where(nonempty, (hi - mean).clamp_min(0.0), zero),
            gap=mx[..., 0] - self.target_logit.to(f64))

    @staticmethod
    def cat(summaries: Sequence['LogitSummary']) -> 'LogitSummary':
        """Concatenates summaries along the sample dimension B.

        Args:
            summaries (Sequence[LogitSummary]): Summaries with the same K and
                NB on one device, e.g. one per validation batch.

        Returns:
            LogitSummary: The summary of all their samples, in order.
        """
        summaries = list(summaries)
        if not summaries:
            raise ValueError('LogitSummary.cat needs at least one summary')
        shapes = {tuple(s.bin_mean.shape[1:]) for s in summaries}
        if len(shapes) != 1:
            raise ValueError('LogitSummary.cat: summaries differ in (K, NB): '
                             f'{sorted(shapes)}')
        return LogitSummary(**{
            f: torch.cat([getattr(s, f) for s in summaries])
            for f in _FIELDS
        })


def summarize_logits(logits: Tensor,
                     target_index: Tensor,
                     num_bins: int = 2048,
                     max_chunk_elements: int = 1 << 22) -> LogitSummary:
    """Reduces logit maps to a histogram summary for temperature fitting.

    For each map, its logits (minus one maximum pixel, kept exactly) are put
    into ``num_bins`` equal-width bins spanning ``[min, max]`` of that map,
    and each bin stores its pixel count ``n``, mean ``m`` and variance ``v``.
    Then, for any T,

    ``logsumexp(z / T) ~= logaddexp(max / T, logsumexp_b(log n + m / T))``

    which is exact up to ``log E_bin[exp((z - m) / T)] ~= v / (2 T**2)``, an
    error second order in the bin width w (at most ``w**2 / (8 T**2)``).
    :func:`nll_from_summary` adds that variance term too, which leaves an
    error of third order.

    Args:
        logits (Tensor): Logit maps in shape (B, K, H, W), on any device; the
            summary is computed there, vectorised (``scatter_add`` on bin
            indices).
        target_index (Tensor): Flat ground-truth pixel index ``y * W + x``
            in shape (B, K), integer, each in ``[0, H*W)``.
        num_bins (int): NB, bins per map. Default 2048.
        max_chunk_elements (int): Maps are processed in chunks of about this
            many logits, which bounds the temporary memory (a few float64 /
            int64 copies of one chunk; ~200 MB at the default 4 Mi).

    Returns:
        LogitSummary: On the device of ``logits``.

    Note:
        Shapes: ``logits`` (B, K, H, W), ``target_index`` (B, K); the summary
        holds (B, K, NB) float64 means, float32 variances and int32 counts,
        and (B, K) float64 target / max / min logits: ``16 * NB + 24`` bytes
        per map (32.8 KB for NB = 2048, against 2 MB for one float32 640x800
        map). Sums are taken in float64 around each bin's centre, so logits
        of any magnitude (e.g. 1e4) keep their small differences. A constant
        map is summarised exactly.
    """
    index, num_bins = _checked_summary_inputs(logits, target_index, num_bins)
    b, k, h, w = logits.shape
    n_pix, n_maps = h * w, b * k
    maps = logits.detach().reshape(n_maps, n_pix)
    device, f64 = logits.device, torch.float64
    out = dict(
        bin_mean=torch.empty(n_maps, num_bins, dtype=f64, device=device),
        bin_count=torch.empty(
            n_maps, num_bins, dtype=torch.int32, device=device),
        target_logit=torch.empty(n_maps, dtype=f64, device=device),
        max_logit=torch.empty(n_maps, dtype=f64, device=device),
        bin_var=torch.empty(
            n_maps, num_bins, dtype=torch.float32, device=device),
        min_logit=torch.empty(n_maps, dtype=f64, device=device))
    step = max(1, max_chunk_elements // n_pix)
    for start in range(0, n_maps, step):
        stop = min(start + step, n_maps)
        part = _summarize_chunk(maps[start:stop].to(f64), index[start:stop],
                                num_bins)
        for name in _FIELDS:
            out[name][start:stop] = part[name]
    return LogitSummary(**{
        name: out[name].view((b, k) + out[name].shape[1:])
        for name in _FIELDS
    })


def _checked_summary_inputs(logits: Tensor, target_index: Tensor,
                            num_bins: int) -> Tuple[Tensor, int]:
    """Validates :func:`summarize_logits`' arguments; returns the flat
    target indices (B*K,) as int64 on the logits' device and ``num_bins``
    as an int."""
    if logits.ndim != 4:
        raise ValueError('logits must have shape (B, K, H, W); got '
                         f'{tuple(logits.shape)}')
    b, k, h, w = logits.shape
    if tuple(target_index.shape) != (b, k):
        raise ValueError(f'target_index must have shape {(b, k)}; got '
                         f'{tuple(target_index.shape)}')
    if int(num_bins) != num_bins or num_bins < 1:
        raise ValueError(f'num_bins must be a positive integer; got '
                         f'{num_bins}')
    if b * k == 0 or h * w == 0:
        raise ValueError('summarize_logits got empty logits of shape '
                         f'{tuple(logits.shape)}')
    n_pix = h * w
    index = target_index.to(device=logits.device, dtype=torch.long)
    index = index.reshape(-1)
    if bool(((index < 0) | (index >= n_pix)).any()):
        raise ValueError(f'target_index must lie in [0, {n_pix}); got values '
                         f'in [{int(index.min())}, {int(index.max())}]')
    return index, int(num_bins)


def _summarize_chunk(z: Tensor, index: Tensor,
                     num_bins: int) -> Dict[str, Tensor]:
    """The :class:`LogitSummary` fields of a chunk of flattened maps.

    Args:
        z (Tensor): Maps in shape (N, H*W), float64.
        index (Tensor): Flat target index per map in shape (N,), int64.
        num_bins (int): NB, bins per map.

    Returns:
        dict: Each field of :class:`LogitSummary`, (N, NB) or (N,).
    """
    if not bool(torch.isfinite(z).all()):
        raise ValueError('logits must be finite')
    half = torch.arange(num_bins, dtype=z.dtype, device=z.device) + 0.5
    zmax, arg = z.max(dim=-1)
    zmin = z.min(dim=-1).values
    width = (zmax - zmin) / num_bins  # 0 for a constant map
    inv_width = torch.where(width > 0, 1.0 / width.clamp_min(1e-300),
                            torch.zeros_like(width))
    # a constant map (inv_width 0) puts every pixel in bin 0; the max
    # pixel lands on the right edge (== num_bins) and is clamped in
    idx = ((z - zmin[:, None]) * inv_width[:, None]).floor_().long()
    idx.clamp_(0, num_bins - 1)
    # moments around the bin centre: |r| <= w / 2, so the variance
    # E[r^2] - E[r]^2 suffers no cancellation whatever the logit level
    centre = zmin[:, None] + half[None, :] * width[:, None]
    r = z - centre.gather(1, idx)
    # drop one max pixel from the histogram: it is summarised exactly by
    # max_logit, which keeps very peaked maps (whose softmax mass sits in
    # that one pixel) exact
    keep = torch.ones_like(z)
    keep.scatter_(1, arg[:, None], 0.0)
    r.mul_(keep)
    cnt = torch.zeros_like(centre).scatter_add_(1, idx, keep)
    s1 = torch.zeros_like(centre).scatter_add_(1, idx, r)
    s2 = torch.zeros_like(centre).scatter_add_(1, idx, r.square_())
    safe = cnt.clamp_min(1.0)
    m1 = s1 / safe
    return dict(
        bin_mean=centre + m1,
        bin_count=cnt.round_().to(torch.int32),
        target_logit=z.gather(1, index[:, None])[:, 0],
        max_logit=zmax,
        bin_var=(s2 / safe - m1.square()).clamp_min_(0.0),
        min_logit=zmin)

def nll_from_summary(summary: LogitSummary, temperature: Tensor) -> Tensor:
    """NLL of the ground-truth pixel under ``softmax(z / T)``, from a summary.

    ``NLL = logsumexp(z / T) - z_target / T``, evaluated in float64 as
    ``(max - z_target) / T + log(1 + sum_b n_b exp(t_b))`` with the bin terms

    ``t_b = (m_b - max) / T + min(v_b / (2 T**2), (hi_b - m_b) / T)``.

    The second part is the within-bin correction ``log E[exp((z - m) / T)]``
    to second order (the variance), bounded by its exact upper limit (no
    pixel lies above its bin's upper edge ``hi_b``) so that it stays sane
    when T is far below the bin width.

    Args:
        summary (LogitSummary): Summary of (B, K) maps.
        temperature (Tensor): Positive temperatures in shape (K,); may require
            grad (the result is differentiable w.r.t. it).

    Returns:
        Tensor: NLL per map in shape (B, K), float64, on the summary's device.

    Note:
        Shapes: summary tensors (B, K, NB) / (B, K), ``temperature`` (K,),
        result (B, K). Error against the dense :func:`nll_at_index`: about
        1e-6 relative at T = 0.25 and falling fast with T, on maps of logit
        range ~50 at NB = 2048 (without the variance term it would be ~2e-4);
        exact for constant maps and for maps whose bins near
        the maximum hold single pixels.
    """
    k = summary.bin_mean.shape[1]
    if tuple(temperature.shape) != (k, ):
        raise ValueError(f'temperature must have shape ({k},); got '
                         f'{tuple(temperature.shape)}')
    p = summary.nll_terms()
    inv = temperature.to(device=summary.bin_mean.device,
                         dtype=torch.float64).reciprocal()
    inv_b = inv[:, None]
    terms = (p['log_n'] + p['delta'] * inv_b + torch.minimum(
        0.5 * p['var'] * inv_b.square(), p['upper'] * inv_b))
    # the max pixel's term is exp(0) after the shift by max / T; keeping that
    # 0 inside the logsumexp also gives an all-empty histogram (a 1-pixel
    # map) a finite gradient
    zero = terms.new_zeros(terms.shape[:-1] + (1, ))
    lse = torch.logsumexp(torch.cat((zero, terms), dim=-1), dim=-1)
    return lse + p['gap'] * inv
