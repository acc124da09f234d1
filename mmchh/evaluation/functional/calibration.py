# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Temperature scaling, calibration and ERE-flagging math (paper Sec. 3.3,
5.2 and 5.3), as pure functions.

Two halves:

* **On-device (torch).** :func:`summarize_logits` reduces each logit map to a
  compact histogram (:class:`LogitSummary`) from which the NLL of any
  temperature follows to ~1e-6, so that a calibration split never
  has to keep its dense logits (150 images x 19 x 640x800 would be 5.8 GB).
  :func:`nll_from_summary` evaluates the NLL of the ground-truth pixel from
  that summary, and :func:`fit_temperatures` minimises it over ``log T``
  with L-BFGS.
* **Metrics (numpy).** Expected calibration error and reliability bins
  (:func:`expected_calibration_error`), ERE-vs-error correlations
  (:func:`pearson_spearman`, :func:`binned_correlation`), the ROC of ERE as a
  detector of erroneous landmarks (:func:`roc_auc`), the operating threshold
  (:func:`threshold_at_tpr`), the paper's Table 2
  (:func:`good_erroneous_table`), and PNG writers for the three figures.

Conventions follow :mod:`mmchh.evaluation.functional.uncertainty`: maps are
``[..., y, x]`` and the flat pixel index of ``(x, y)`` is ``y * W + x``.
"""
import math
import os
import os.path as osp
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

# L-BFGS works on log T; T is kept inside [1e-4, 1e4] so that a degenerate
# calibration split (e.g. every target at the mode, whose NLL keeps falling as
# T -> 0) cannot drive the logits to inf / nan.
_T_MIN, _T_MAX = 1e-4, 1e4
_LOG_T_MIN, _LOG_T_MAX = math.log(_T_MIN), math.log(_T_MAX)


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
        """Selects samples (first dimension), e.g. ``summary[10:20]``."""
        if isinstance(index, int):
            i = range(len(self))[index]  # IndexError / negative indices
            index = slice(i, i + 1)  # keep the B dimension
        return self._map(lambda t: t[index])

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
    num_bins = int(num_bins)
    if b * k == 0 or h * w == 0:
        raise ValueError('summarize_logits got empty logits of shape '
                         f'{tuple(logits.shape)}')
    n_pix = h * w
    device = logits.device
    index = target_index.to(device=device, dtype=torch.long).reshape(-1)
    if bool(((index < 0) | (index >= n_pix)).any()):
        raise ValueError(f'target_index must lie in [0, {n_pix}); got values '
                         f'in [{int(index.min())}, {int(index.max())}]')

    maps = logits.detach().reshape(b * k, n_pix)
    n_maps = b * k
    f64 = torch.float64
    bin_mean = torch.empty(n_maps, num_bins, dtype=f64, device=device)
    bin_var = torch.empty(n_maps, num_bins, dtype=torch.float32, device=device)
    bin_count = torch.empty(n_maps, num_bins, dtype=torch.int32, device=device)
    target_logit = torch.empty(n_maps, dtype=f64, device=device)
    max_logit = torch.empty(n_maps, dtype=f64, device=device)
    min_logit = torch.empty(n_maps, dtype=f64, device=device)
    half = torch.arange(num_bins, dtype=f64, device=device) + 0.5

    step = max(1, max_chunk_elements // n_pix)
    for start in range(0, n_maps, step):
        stop = min(start + step, n_maps)
        z = maps[start:stop].to(f64)
        if not bool(torch.isfinite(z).all()):
            raise ValueError('logits must be finite')
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
        bin_mean[start:stop] = centre + m1
        bin_var[start:stop] = (s2 / safe - m1.square()).clamp_min_(0.0)
        bin_count[start:stop] = cnt.round_().to(torch.int32)
        max_logit[start:stop] = zmax
        min_logit[start:stop] = zmin
        target_logit[start:stop] = z.gather(1, index[start:stop, None])[:, 0]
    shape = (b, k, num_bins)
    return LogitSummary(
        bin_mean=bin_mean.view(shape),
        bin_count=bin_count.view(shape),
        target_logit=target_logit.view(b, k),
        max_logit=max_logit.view(b, k),
        bin_var=bin_var.view(shape),
        min_logit=min_logit.view(b, k))


def _prepare(s: LogitSummary) -> Dict[str, Tensor]:
    """The T-independent float64 parts of the summary NLL.

    ``log_n`` (-inf for empty bins), ``delta = m - max``, ``var`` and
    ``upper = hi - m`` (the bin's room above its mean) in the bins' shape,
    and ``gap = max - target`` in the maps' shape. Empty bins get finite
    zeros in ``delta`` / ``var`` / ``upper``, so that no inf ever meets a 0
    in a product.
    """
    f64 = torch.float64
    count = s.bin_count.to(f64)
    mx = s.max_logit.to(f64)[..., None]
    mn = s.min_logit.to(f64)[..., None]
    nb = s.bin_mean.shape[-1]
    nonempty = count > 0
    zero = torch.zeros((), dtype=f64, device=count.device)
    mean = s.bin_mean.to(f64)
    hi = mn + (torch.arange(1, nb + 1, dtype=f64, device=count.device) *
               ((mx - mn) / nb))
    return dict(
        log_n=torch.where(nonempty, count.clamp_min(1.0).log(),
                          torch.full_like(count, -math.inf)),
        delta=torch.where(nonempty, mean - mx, zero),
        var=torch.where(nonempty, s.bin_var.to(f64), zero),
        upper=torch.where(nonempty, (hi - mean).clamp_min(0.0), zero),
        gap=mx[..., 0] - s.target_logit.to(f64))


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
    p = _prepare(summary)
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


class _LandmarkObjective:
    """Weighted mean NLL of one landmark as a function of ``1/T``, with its
    analytic derivative (the same formula as :func:`nll_from_summary`).

    Hand-written rather than autograd, and in base 2: one landmark's (B, NB)
    slab stays in cache, each evaluation is a handful of fused passes, and
    ``exp2`` has no slow path for the -inf of empty bins or the underflow of
    far bins at small T (float64 ``exp`` is 3-7x slower on those). This is
    what lets the whole fit (19 landmarks x ~7 evaluations) run well under a
    second on a CPU.
    """

    def __init__(self, p: Dict[str, Tensor], weight: Tensor):
        log2e = 1.0 / math.log(2.0)
        # every bin quantity scaled by log2(e): the bin terms become log2 of
        # each bin's share of sum exp(z / T)
        self.log2_n = p['log_n'] * log2e
        self.delta2 = p['delta'] * log2e
        self.var2 = p['var'] * log2e
        self.upper2 = p['upper'] * log2e
        self.gap = p['gap']
        self.weight = weight / weight.sum()
        var, upper = p['var'], p['upper']
        # the variance term is capped where v / (2 T^2) > (hi - m) / T, i.e.
        # where 1 / T > 2 (hi - m) / v; below the smallest such 1 / T the
        # cap is inactive everywhere and its extra passes are skipped
        ratio = torch.where(var > 0, 2.0 * upper / var.clamp_min(1e-300),
                            torch.full_like(var, math.inf))
        self.inv_cap = float(ratio.min()) if ratio.numel() else math.inf
        # reused work buffers: fresh multi-MB tensors per evaluation cost
        # page faults comparable to the arithmetic itself
        self._terms = torch.empty_like(self.delta2)
        self._slope = torch.empty_like(self.delta2)

    def __call__(self, inv: float) -> Tuple[float, float]:
        """(loss, d loss / d(1/T)) at ``1/T = inv``."""
        terms, slope = self._terms, self._slope
        if inv < self.inv_cap:
            # terms = log2 n + inv * (delta + inv * var / 2)
            torch.add(self.delta2, self.var2, alpha=0.5 * inv, out=terms)
            torch.add(self.log2_n, terms, alpha=inv, out=terms)
            torch.add(self.delta2, self.var2, alpha=inv, out=slope)
        else:
            quad = self.var2 * (0.5 * inv * inv)
            lin = self.upper2 * inv
            torch.minimum(quad, lin, out=terms)
            terms.add_(self.delta2, alpha=inv).add_(self.log2_n)
            torch.where(quad > lin, self.upper2, self.var2 * inv, out=slope)
            slope.add_(self.delta2)
        # log2(1 + sum_b 2^terms), shifted by the largest term for stability
        top = terms.amax(dim=-1).clamp_min_(0.0)
        share = terms.sub_(top[:, None]).exp2_()
        total = share.sum(dim=-1) + torch.exp2(-top)
        lse = math.log(2.0) * top + total.log()
        dlse = math.log(2.0) * torch.linalg.vecdot(share, slope) / total
        loss = torch.dot(self.weight, lse + self.gap * inv)
        grad = torch.dot(self.weight, dlse + self.gap)
        return float(loss), float(grad)


def _fit_one(objective: _LandmarkObjective,
             log_t0: float,
             max_iter: int,
             prior: Optional[Tuple[float, float]] = None) -> float:
    """Minimises ``objective`` over log T with L-BFGS; returns log T.

    ``prior = (mu, c)`` adds ``c * (log T - mu)^2`` (a Gaussian prior on
    log T, already divided by the landmark's total weight)."""
    s = torch.tensor([log_t0], dtype=torch.float64, requires_grad=True)
    optim = torch.optim.LBFGS([s],
                              lr=1.0,
                              max_iter=max_iter,
                              max_eval=max_iter * 2,
                              tolerance_grad=1e-7,
                              tolerance_change=1e-12,
                              history_size=10,
                              line_search_fn='strong_wolfe')

    def closure():
        raw = float(s.detach())
        log_t = min(max(raw, _LOG_T_MIN), _LOG_T_MAX)
        inv = math.exp(-log_t)
        loss, dloss_dinv = objective(inv)
        # d/ds of f(1/T) with 1/T = exp(-s); flat outside the clamp
        inside = _LOG_T_MIN <= raw <= _LOG_T_MAX
        grad = -dloss_dinv * inv if inside else 0.0
        if prior is not None:
            mu, c = prior
            loss += c * (raw - mu)**2
            grad += 2.0 * c * (raw - mu)
        s.grad = torch.tensor([grad], dtype=torch.float64)
        return torch.tensor(loss, dtype=torch.float64)

    optim.step(closure)
    return min(max(float(s.detach()), _LOG_T_MIN), _LOG_T_MAX)


@contextmanager
def _single_threaded(device: torch.device):
    """Runs CPU work with one intra-op thread, restoring the setting after.

    Each landmark's problem is a (B, NB) slab of ~2 MB that stays in cache;
    splitting its short passes across threads gains little, and when the
    CPU is oversubscribed (dataloader workers, several ranks per node) the
    thread hand-offs made the fit 10-30x slower in our measurements.
    """
    if torch.device(device).type != 'cpu':
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit_landmark(summary: LogitSummary,
                  weights: Tensor,
                  j: int,
                  t0: float,
                  max_iter: int,
                  prior: Optional[Tuple[float, float]] = None) -> float:
    """Fitted T of landmark j, starting from ``t0`` (returned as is when the
    landmark has no weighted sample). ``prior = (mu, std)``: a Gaussian
    prior on log T (MAP instead of maximum likelihood)."""
    rows = torch.nonzero(weights[:, j] > 0)[:, 0]
    if rows.numel() == 0:
        return t0
    # this landmark's weighted rows only, made contiguous once (cache
    # friendly for the repeated evaluations)
    part = LogitSummary(
        **{f: getattr(summary, f)[rows, j:j + 1]
           for f in _FIELDS})
    p = {name: t[:, 0].contiguous() for name, t in _prepare(part).items()}
    if prior is None and not bool((p['gap'] > 0).any()):
        # every target is at its map's maximum: the exact NLL,
        # log sum exp((z - max) / T), only falls as T -> 0, so the optimum is
        # the lower bound (L-BFGS would crawl there through an exponentially
        # flat tail)
        return _T_MIN
    objective = _LandmarkObjective(p, weights[rows, j])
    log_t0 = min(max(math.log(t0), _LOG_T_MIN), _LOG_T_MAX)
    penalty = None
    if prior is not None:
        # the objective is the weighted *mean* NLL; the prior belongs to
        # the weighted *sum*, so it is divided by the total weight
        mu, std = prior
        penalty = (mu, 1.0 / (2.0 * std * std * float(weights[rows,
                                                              j].sum())))
    return math.exp(_fit_one(objective, log_t0, max_iter, penalty))


def fit_shared_temperature(summary: LogitSummary,
                           weights: Optional[Tensor] = None,
                           max_iter: int = 100) -> float:
    """One temperature for every landmark (maximum likelihood, pooled).

    Args:
        summary (LogitSummary): (B, K) maps' summary.
        weights (Tensor, optional): (B, K) sample weights.
        max_iter (int): L-BFGS iterations at most.

    Returns:
        float: The pooled T (1e-4 if every target is at its mode; 1 if no
        sample has weight).
    """
    b, k = summary.target_logit.shape[:2]
    if weights is None:
        weights = torch.ones(b, k)
    pooled = LogitSummary(
        **{f: getattr(summary, f).reshape(b * k, 1,
                                          *getattr(summary, f).shape[2:])
           for f in _FIELDS})
    w = weights.detach().to(summary.bin_mean.device,
                            torch.float64).reshape(b * k, 1)
    with _single_threaded(summary.bin_mean.device):
        return _fit_landmark(pooled, w, 0, 1.0, max_iter)


def fit_temperatures(summary: LogitSummary,
                     weights: Optional[Tensor] = None,
                     init: Optional[Tensor] = None,
                     max_iter: int = 100,
                     prior_std: Optional[float] = None) -> Tensor:
    """Fits one temperature per landmark by minimising the NLL (Sec. 3.3).

    For each landmark k, minimises the weighted mean over the B samples of
    :func:`nll_from_summary` over ``log T_k`` with L-BFGS (strong-Wolfe line
    search). The objective is a sum of per-landmark terms, so each landmark
    is fitted on its own (1-D problems converge in a few evaluations).
    Nothing but T changes, so the mode of every map (the localisation) is
    untouched.

    Args:
        summary (LogitSummary): Summary of the calibration split's (B, K)
            maps, from :func:`summarize_logits` (e.g. concatenated with
            :meth:`LogitSummary.cat`), on any device.
        weights (Tensor, optional): Non-negative sample weights in shape
            (B, K); 0 excludes a sample from landmark k's fit (e.g. an
            invisible landmark). ``None`` weighs every sample 1.
        init (Tensor, optional): Starting temperatures in shape (K,), > 0.
            Default all 1.
        max_iter (int): L-BFGS iterations per landmark at most. Default 100.
        prior_std (float, optional): With a value, each landmark's fit is a
            MAP estimate under a Gaussian prior on ``log T_k`` centred at
            the pooled temperature of all landmarks
            (:func:`fit_shared_temperature`; T = 1 if that is degenerate)
            with this standard deviation: the summed NLL plus
            ``(log T_k - log T_pooled)^2 / (2 prior_std^2)``. With few
            calibration images a landmark can have every target at its mode,
            whose maximum-likelihood T is 0 (certainty, and an unbounded NLL
            on the next miss); the prior keeps it near the pooled T, and
            fades as samples accumulate. None (default) is the plain
            maximum likelihood of the paper.

    Returns:
        Tensor: Fitted temperatures in shape (K,), float32, on the CPU, each
        within ``[1e-4, 1e4]``.

    Note:
        Shapes: summary (B, K, NB) / (B, K), ``weights`` (B, K), ``init`` and
        result (K,). A landmark whose weights are all 0 has no data and keeps
        ``T = init`` (so all-zero weights return ``init``). A landmark whose
        every target is at its map's mode has an NLL that keeps falling as
        T -> 0: it gets the lower bound 1e-4 directly. One whose targets are
        uniform noise has an NLL that keeps falling as T -> inf; L-BFGS stops
        at a large T (or the bound 1e4) when the gradient vanishes.
    """
    b, k = summary.target_logit.shape[:2]
    if b == 0 or k == 0:
        raise ValueError('fit_temperatures got an empty summary (B='
                         f'{b}, K={k}); summarise at least one sample')
    device = summary.bin_mean.device
    f64 = torch.float64
    if weights is None:
        weights = torch.ones(b, k, dtype=f64, device=device)
    else:
        if tuple(weights.shape) != (b, k):
            raise ValueError(f'weights must have shape {(b, k)}; got '
                             f'{tuple(weights.shape)}')
        weights = weights.detach().to(device=device, dtype=f64)
        if not bool(torch.isfinite(weights).all()) or bool(
                (weights < 0).any()):
            raise ValueError('weights must be finite and >= 0')
    if init is None:
        init = torch.ones(k, dtype=f64)
    else:
        if tuple(init.shape) != (k, ):
            raise ValueError(f'init must have shape ({k},); got '
                             f'{tuple(init.shape)}')
        init = init.detach().to(dtype=f64, device='cpu')
        if not bool(torch.isfinite(init).all() & (init > 0).all()):
            raise ValueError('init temperatures must be finite and > 0')
    if max_iter < 1:
        raise ValueError(f'max_iter must be >= 1; got {max_iter}')
    prior = None
    if prior_std is not None:
        if not (math.isfinite(prior_std) and prior_std > 0):
            raise ValueError(f'prior_std must be > 0; got {prior_std}')
        pooled = fit_shared_temperature(summary, weights, max_iter)
        mu = 0.0 if pooled <= _T_MIN else math.log(pooled)
        prior = (mu, float(prior_std))

    with _single_threaded(device):
        fitted = [
            _fit_landmark(summary, weights, j, float(init[j]), max_iter,
                          prior) for j in range(k)
        ]
    return torch.tensor(fitted, dtype=torch.float32)


# --------------------------------------------------------------------------
# Metrics (numpy)
# --------------------------------------------------------------------------
def _as_1d(x, name: str, dtype=np.float64) -> np.ndarray:
    """Flattens an array-like (or tensor) to 1-D ``dtype``."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype).reshape(-1)


def _paired(x, y, x_name: str, y_name: str, y_dtype=np.float64):
    """Two flattened arrays of equal length, or a ValueError."""
    x = _as_1d(x, x_name)
    y = _as_1d(y, y_name, y_dtype)
    if x.shape != y.shape:
        raise ValueError(f'{x_name} and {y_name} must have the same number '
                         f'of elements; got {x.size} and {y.size}')
    return x, y


def expected_calibration_error(confidence: np.ndarray,
                               correct: np.ndarray,
                               num_bins: int = 10,
                               binning: str = 'max') -> dict:
    """Reliability-diagram bins and Expected Calibration Error (Sec. 5.2.1).

    ``ECE = sum_b (n_b / N) |acc_b - conf_b|`` over non-empty bins, where
    ``conf_b`` is the mean confidence and ``acc_b`` the fraction of correct
    predictions in bin b.

    Args:
        confidence (np.ndarray): Probability at the mode of each map, in
            [0, 1], any shape (flattened).
        correct (np.ndarray): Whether each mode is exactly the ground-truth
            pixel, bool, same number of elements.
        num_bins (int): Number of equal-width bins. Default 10.
        binning (str): ``'max'`` (the paper's): bins over ``[0, M]`` with M
            the largest confidence; ``'unit'``: bins over ``[0, 1]``.

    Returns:
        dict: ``ece`` (float), ``edges`` (num_bins + 1,), ``bin_confidence``
        and ``bin_accuracy`` (num_bins,), nan for empty bins, and
        ``bin_count`` (num_bins,) int.

    Note:
        Bin i covers ``(edges[i], edges[i+1]]``; the first bin also includes
        its left edge, so a confidence of exactly 0 falls in bin 0 and, with
        ``'max'``, the largest confidence falls in the last bin. If every
        confidence is 0 under ``'max'`` binning, all edges are 0 and every
        sample is in bin 0.
    """
    conf, corr = _paired(confidence, correct, 'confidence', 'correct',
                         np.bool_)
    if conf.size == 0:
        raise ValueError('expected_calibration_error got no predictions')
    if not np.all(np.isfinite(conf)) or conf.min() < 0 or conf.max() > 1:
        raise ValueError('confidence must be finite and within [0, 1]; got '
                         f'range [{np.nanmin(conf)}, {np.nanmax(conf)}]')
    if int(num_bins) != num_bins or num_bins < 1:
        raise ValueError(f'num_bins must be a positive integer; got '
                         f'{num_bins}')
    num_bins = int(num_bins)
    if binning == 'max':
        top = float(conf.max())
    elif binning == 'unit':
        top = 1.0
    else:
        raise ValueError(f"binning must be 'max' or 'unit'; got {binning!r}")
    edges = np.linspace(0.0, top, num_bins + 1)  # edges[-1] == top exactly
    # side='left' maps (edges[i], edges[i+1]] to i + 1; the clip puts the
    # left edge of the first bin into bin 0
    which = np.clip(np.searchsorted(edges, conf, side='left') - 1, 0,
                    num_bins - 1)
    count = np.bincount(which, minlength=num_bins)
    conf_sum = np.bincount(which, weights=conf, minlength=num_bins)
    hit_sum = np.bincount(which, weights=corr.astype(np.float64),
                          minlength=num_bins)
    nonempty = count > 0
    safe = np.maximum(count, 1)
    bin_conf = np.where(nonempty, conf_sum / safe, np.nan)
    bin_acc = np.where(nonempty, hit_sum / safe, np.nan)
    gaps = np.abs(bin_acc[nonempty] - bin_conf[nonempty])
    ece = float(np.sum(count[nonempty] / conf.size * gaps))
    return dict(
        ece=ece,
        edges=edges,
        bin_confidence=bin_conf,
        bin_accuracy=bin_acc,
        bin_count=count.astype(np.int64))


def pearson_spearman(x: np.ndarray, y: np.ndarray) -> Tuple[float, float]:
    """Pearson and Spearman correlation of paired samples (scipy.stats).

    Args:
        x (np.ndarray): First variable (e.g. ERE), any shape (flattened).
        y (np.ndarray): Second variable (e.g. radial error), same size.

    Returns:
        tuple[float, float]: ``(pearson, spearman)``; both nan when there are
        fewer than 2 pairs or either variable is constant (a correlation is
        undefined there, which is not an input error).
    """
    from scipy import stats

    x, y = _paired(x, y, 'x', 'y')
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float('nan'), float('nan')
    pearson = stats.pearsonr(x, y)[0]
    spearman = stats.spearmanr(x, y)[0]
    return float(pearson), float(spearman)


def binned_correlation(ere: np.ndarray,
                       error: np.ndarray,
                       bin_size: int = 36) -> dict:
    """Correlation of ERE with the true error over bins of landmarks (Fig. 5).

    The pairs are sorted by ERE (stable sort) and cut into consecutive bins of
    ``bin_size`` landmarks (the paper uses 36); the Pearson and Spearman
    correlations are taken between the bins' mean ERE and mean error.

    Args:
        ere (np.ndarray): ERE per landmark, any shape (flattened).
        error (np.ndarray): True radial error per landmark, same size and
            unit.
        bin_size (int): Landmarks per bin. Default 36.

    Returns:
        dict: ``pearson`` and ``spearman`` (float), ``bin_ere`` and
        ``bin_error`` (nbins,) bin means in increasing ERE order.

    Note:
        The last, partial bin (``n % bin_size`` landmarks with the highest
        ERE) is kept as its own bin if it holds at least ``bin_size / 2``
        landmarks and dropped otherwise, so no bin mean rests on a handful of
        points. With fewer than 2 bins the correlations are nan.
    """
    ere, error = _paired(ere, error, 'ere', 'error')
    if int(bin_size) != bin_size or bin_size < 1:
        raise ValueError(f'bin_size must be a positive integer; got '
                         f'{bin_size}')
    bin_size = int(bin_size)
    order = np.argsort(ere, kind='stable')
    ere, error = ere[order], error[order]
    full, rest = divmod(ere.size, bin_size)
    ends = [bin_size * (i + 1) for i in range(full)]
    if rest and rest >= bin_size / 2:
        ends.append(ere.size)
    starts = [0] + ends[:-1]
    bin_ere = np.array([ere[s:e].mean() for s, e in zip(starts, ends)],
                       dtype=np.float64)
    bin_error = np.array([error[s:e].mean() for s, e in zip(starts, ends)],
                         dtype=np.float64)
    pearson, spearman = pearson_spearman(bin_ere, bin_error)
    return dict(
        pearson=pearson,
        spearman=spearman,
        bin_ere=bin_ere,
        bin_error=bin_error)


def _check_two_classes(ere, erroneous, who: str):
    ere, bad = _paired(ere, erroneous, 'ere', 'erroneous', np.bool_)
    if ere.size == 0:
        raise ValueError(f'{who} got no landmarks')
    if not np.all(np.isfinite(ere)):
        raise ValueError(f'{who}: ere must be finite')
    return ere, bad


def roc_auc(ere: np.ndarray, erroneous: np.ndarray) -> dict:
    """ROC of the ERE as a detector of erroneous landmarks (Sec. 5.3.1).

    Score = ERE, positive = erroneous (e.g. radial error > 2 mm), via
    ``sklearn.metrics.roc_curve`` / ``roc_auc_score``.

    Args:
        ere (np.ndarray): ERE per landmark, any shape (flattened).
        erroneous (np.ndarray): Whether each landmark is erroneous, bool,
            same size.

    Returns:
        dict: ``fpr``, ``tpr`` and ``thresholds`` (n,) arrays and ``auc``
        (float). Point i is "flag ERE >= thresholds[i]"; ``thresholds[0]``
        is above every ERE (nothing flagged).

    Note:
        Every distinct ERE is kept as a point (``drop_intermediate=False``)
        so the operating point of any observed threshold lies on the curve.
        Raises ValueError when only one class is present (the ROC is then
        undefined).
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    ere, bad = _check_two_classes(ere, erroneous, 'roc_auc')
    positives = int(bad.sum())
    if positives == 0 or positives == bad.size:
        kind = 'erroneous' if positives else 'good'
        raise ValueError('roc_auc needs both good and erroneous landmarks; '
                         f'all {bad.size} are {kind}')
    fpr, tpr, thresholds = roc_curve(bad, ere, drop_intermediate=False)
    return dict(
        fpr=fpr,
        tpr=tpr,
        thresholds=thresholds,
        auc=float(roc_auc_score(bad, ere)))


def threshold_at_tpr(ere: np.ndarray,
                     erroneous: np.ndarray,
                     target_tpr: float = 0.5) -> float:
    """The ERE threshold that flags at least ``target_tpr`` of the erroneous.

    Convention: a landmark is flagged iff ``ERE > threshold``. Let
    ``e_1 >= e_2 >= ...`` be the EREs of the P erroneous landmarks and
    ``m = ceil(target_tpr * P)`` (at least 1). The threshold is the largest
    observed ERE (good or erroneous) strictly below ``e_m``, so flagging
    ``ERE > t`` flags every landmark with ``ERE >= e_m``: at least m
    erroneous ones, and as few good ones as any observed threshold reaching
    the target allows. If no observed ERE is below ``e_m``, the threshold is
    ``e_m`` minus one ulp (``np.nextafter`` towards -inf).

    Args:
        ere (np.ndarray): ERE per landmark, any shape (flattened), finite.
        erroneous (np.ndarray): Whether each landmark is erroneous, bool,
            same size; at least one must be True.
        target_tpr (float): Wanted fraction of erroneous landmarks flagged,
            in (0, 1]. The paper uses 0.5.

    Returns:
        float: The threshold t. The TPR of ``ERE > t`` on these landmarks is
        >= ``target_tpr``, and any larger observed ERE used as the threshold
        would give a TPR below it.
    """
    ere, bad = _check_two_classes(ere, erroneous, 'threshold_at_tpr')
    if not 0 < target_tpr <= 1:
        raise ValueError(f'target_tpr must be in (0, 1]; got {target_tpr}')
    positives = np.sort(ere[bad])[::-1]
    p = positives.size
    if p == 0:
        raise ValueError('threshold_at_tpr needs at least one erroneous '
                         'landmark to reach a TPR')
    # the small slack keeps an exact product (e.g. 0.3 * 10) from rounding
    # up to the next integer
    m = min(p, max(1, math.ceil(target_tpr * p - 1e-9)))
    e_m = positives[m - 1]
    below = ere[ere < e_m]
    if below.size:
        return float(below.max())
    return float(np.nextafter(e_m, -np.inf))


def good_erroneous_table(errors_mm: np.ndarray,
                         ere: np.ndarray,
                         threshold: Optional[float],
                         sdr_thresholds: Sequence[float] = (2.0, 2.5, 3.0,
                                                            4.0),
                         flagged: Optional[np.ndarray] = None) -> dict:
    """The paper's Table 2: accuracy overall and of good / flagged landmarks.

    Args:
        errors_mm (np.ndarray): Radial error per landmark in mm, any shape
            (flattened), finite.
        ere (np.ndarray): ERE per landmark, same size.
        threshold (float | None): Flag iff ``ERE > threshold``. May be None
            when ``flagged`` is given.
        sdr_thresholds (Sequence[float]): Success-detection radii in mm.
        flagged (np.ndarray, optional): Precomputed flags (bool, same size);
            overrides ``threshold``. Exactly one of the two must be given.

    Returns:
        dict: Rows ``'overall'``, ``'good'`` (not flagged, ERE <= threshold)
        and ``'erroneous'`` (flagged), each a dict with ``count`` (int),
        ``MRE`` (mm) and ``SDR_{t:g}mm`` (percent of errors strictly below t
        mm, e.g. ``SDR_2mm``, ``SDR_2.5mm``). An empty row has count 0 and
        nan values.
    """
    errors, ere = _paired(errors_mm, ere, 'errors_mm', 'ere')
    if errors.size == 0:
        raise ValueError('good_erroneous_table got no landmarks')
    if not np.all(np.isfinite(errors)):
        raise ValueError('errors_mm must be finite')
    if flagged is not None:
        if threshold is not None:
            raise ValueError('give either threshold or flagged, not both')
        flags = _as_1d(flagged, 'flagged', np.bool_)
        if flags.size != errors.size:
            raise ValueError('flagged must have one entry per landmark; got '
                             f'{flags.size} for {errors.size}')
    elif threshold is None:
        raise ValueError('good_erroneous_table needs a threshold or flags')
    else:
        flags = ere > threshold

    def row(err: np.ndarray) -> dict:
        out = dict(count=int(err.size))
        empty = err.size == 0
        out['MRE'] = float('nan') if empty else float(err.mean())
        for t in sdr_thresholds:
            out[f'SDR_{t:g}mm'] = (float('nan') if empty else
                                   float(np.mean(err < t) * 100.0))
        return out

    return dict(
        overall=row(errors), good=row(errors[~flags]),
        erroneous=row(errors[flags]))


# --------------------------------------------------------------------------
# Figures (matplotlib, headless)
# --------------------------------------------------------------------------
def _new_figure(width: float, height: float):
    """A figure drawn by the Agg canvas, independent of pyplot's state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save_png_atomically(fig, path: str) -> None:
    """Writes ``fig`` to ``path`` via a temporary file and ``os.replace``, so
    a reader never sees a half-written PNG and a failure leaves no debris."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            fig.savefig(f, format='png')
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def _reliability_panel(ax, rel: dict, name: str, top: float) -> None:
    edges = np.asarray(rel['edges'], dtype=np.float64)
    acc = np.asarray(rel['bin_accuracy'], dtype=np.float64)
    conf = np.asarray(rel['bin_confidence'], dtype=np.float64)
    count = np.asarray(rel['bin_count'])
    has = count > 0
    centres = ((edges[:-1] + edges[1:]) / 2)[has]
    width = np.diff(edges)[has] * 0.95
    acc, conf, count = acc[has], conf[has], count[has]
    # the paper's overlay (Sec. 5.2.1): opaque accuracy bars under
    # translucent confidence bars, so a solid lime top marks an
    # over-confident bin and a solid blue top an under-confident one
    ax.bar(centres, acc, width=width, color='tab:blue', edgecolor='black',
           linewidth=0.6, label='accuracy', zorder=2)
    ax.bar(centres, conf, width=width, color='lime', alpha=0.45,
           edgecolor='green', linewidth=0.8, label='mean confidence',
           zorder=3)
    ax.plot([0, top], [0, top], '--', color='grey', linewidth=1,
            label='perfect calibration', zorder=4)
    for c, a, f, n in zip(centres, acc, conf, count):
        ax.text(c, max(a, f) + 0.01 * top, str(int(n)), ha='center',
                va='bottom', fontsize=7, color='dimgrey', zorder=5)
    ax.set_xlim(0, top)
    # only ever raise the limit: panels may share the y axis, and the last
    # one drawn must not cut off the bars (and counts) of the first
    needed = max([top] + list(acc) + list(conf)) * 1.1
    ax.set_ylim(0, max(needed, ax.get_ylim()[1] if ax.get_ylim()[1] > 1e-9
                       and ax.has_data() else 0.0))
    ax.set_xlabel('confidence (probability at the mode)')
    ax.set_ylabel('accuracy (mode == ground-truth pixel)')
    label = f'ECE = {rel["ece"]:.4f}'
    ax.set_title(f'{name}: {label}' if name else label)
    ax.grid(alpha=0.3, zorder=0)
    ax.legend(loc='upper left', fontsize=8,
              title='lime top: over-confident\nblue top: under-confident\n'
              'numbers: landmarks per bin', title_fontsize=7)


def reliability_diagram_png(path: str,
                            before: dict,
                            after: Optional[dict] = None,
                            title: str = '') -> None:
    """Writes a reliability diagram (Fig. 4) as a PNG.

    Args:
        path (str): Output PNG path; written atomically (a temporary file in
            the same folder, then ``os.replace``), folders created.
        before (dict): Output of :func:`expected_calibration_error` (e.g.
            before temperature scaling).
        after (dict, optional): Another one (e.g. after scaling), drawn as a
            second panel on the same axes.
        title (str): Figure title.

    Note:
        As in the paper: each non-empty bin shows its accuracy (blue) under
        its mean confidence (translucent lime) at the bin centre, with its
        landmark count above; the dashed diagonal is perfect calibration.
        Drawn on matplotlib's Agg canvas directly, so it works headless and
        leaves pyplot's backend and figure list alone.
    """
    panels = [(before, 'before' if after is not None else '')]
    if after is not None:
        panels.append((after, 'after'))
    top = max(float(np.asarray(rel['edges'])[-1]) for rel, _ in panels)
    top = top if top > 0 else 1.0
    fig = _new_figure(5.2 * len(panels), 4.8)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, (rel, name) in zip(axes, panels):
        _reliability_panel(ax, rel, name, top)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save_png_atomically(fig, path)


def ere_vs_error_png(path: str, ere: np.ndarray, error: np.ndarray,
                     binned: dict) -> None:
    """Writes the ERE-vs-true-error plot (Fig. 5) as a PNG.

    Args:
        path (str): Output PNG path; written atomically.
        ere (np.ndarray): ERE per landmark (flattened).
        error (np.ndarray): True radial error per landmark, same size/unit.
        binned (dict): Output of :func:`binned_correlation` on the same data.
    """
    ere, error = _paired(ere, error, 'ere', 'error')
    fig = _new_figure(5.6, 4.8)
    ax = fig.subplots()
    ax.scatter(ere, error, s=6, alpha=0.25, color='tab:grey',
               label=f'landmarks (n={ere.size})', zorder=2)
    bx = np.asarray(binned['bin_ere'], dtype=np.float64)
    by = np.asarray(binned['bin_error'], dtype=np.float64)
    ax.plot(bx, by, 'o-', color='tab:red', markersize=4, linewidth=1,
            label=(f'bin means: Pearson {binned["pearson"]:.3f}, '
                   f'Spearman {binned["spearman"]:.3f}'),
            zorder=3)
    finite = np.r_[ere, error, bx, by]
    finite = finite[np.isfinite(finite)]
    hi = float(finite.max()) if finite.size else 1.0
    ax.plot([0, hi], [0, hi], '--', color='black', linewidth=0.8,
            label='error = ERE', zorder=1)
    ax.set_xlabel('expected radial error (ERE)')
    ax.set_ylabel('true radial error')
    ax.set_title('ERE vs true radial error')
    ax.grid(alpha=0.3)
    ax.legend(loc='upper left', fontsize=8)
    fig.tight_layout()
    _save_png_atomically(fig, path)


def roc_png(path: str, roc: dict, threshold: Optional[float] = None) -> None:
    """Writes the ROC of ERE-flagging (Fig. 6) as a PNG.

    Args:
        path (str): Output PNG path; written atomically.
        roc (dict): Output of :func:`roc_auc`.
        threshold (float, optional): An ERE threshold (flag iff ERE > it) to
            mark as the operating point.
    """
    fpr = np.asarray(roc['fpr'], dtype=np.float64)
    tpr = np.asarray(roc['tpr'], dtype=np.float64)
    fig = _new_figure(5.0, 4.8)
    ax = fig.subplots()
    ax.plot(fpr, tpr, color='tab:blue', linewidth=1.5,
            label=f'ERE (AUC = {roc["auc"]:.3f})')
    ax.plot([0, 1], [0, 1], '--', color='grey', linewidth=1,
            label='chance')
    if threshold is not None:
        # roc_curve's point i flags ERE >= thresholds[i] (decreasing), so
        # "ERE > threshold" is the last point whose threshold exceeds it
        thr = np.asarray(roc['thresholds'], dtype=np.float64)
        i = int(np.nonzero(thr > threshold)[0][-1]) if np.any(
            thr > threshold) else 0
        ax.plot(fpr[i], tpr[i], 'o', color='tab:red', markersize=7,
                label=(f'ERE > {threshold:.4g}: TPR {tpr[i]:.2f}, '
                       f'FPR {fpr[i]:.2f}'))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel('false positive rate (good landmarks flagged)')
    ax.set_ylabel('true positive rate (erroneous landmarks flagged)')
    ax.set_title('flagging erroneous landmarks by ERE')
    ax.grid(alpha=0.3)
    ax.legend(loc='lower right', fontsize=8)
    fig.tight_layout()
    _save_png_atomically(fig, path)
