# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Per-landmark temperature fitting (paper Sec. 3.3) with L-BFGS.

:func:`fit_temperatures` minimises the NLL of the ground-truth pixel over
``log T`` per landmark, from the compact :class:`~.logit_summary.LogitSummary`
of a calibration split (maximum likelihood, or MAP around the pooled
:func:`fit_shared_temperature`). Nothing but T changes, so the mode of every
map is untouched. The metrics that judge the fit (ECE, ROC, ...) are in
:mod:`mmchh.evaluation.functional.calibration_metrics`.
"""
import math
from contextlib import contextmanager
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from .logit_summary import LogitSummary

# L-BFGS works on log T; T is kept inside [1e-4, 1e4] so that a degenerate
# calibration split (e.g. every target at the mode, whose NLL keeps falling as
# T -> 0) cannot drive the logits to inf / nan.
_T_MIN, _T_MAX = 1e-4, 1e4
_LOG_T_MIN, _LOG_T_MAX = math.log(_T_MIN), math.log(_T_MAX)


class LandmarkObjective:
    """Weighted mean NLL of one landmark as a function of ``1/T``, with its
    analytic derivative (the same formula as
    :func:`~.logit_summary.nll_from_summary`).

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


def _fit_one(objective: LandmarkObjective,
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
def single_threaded(device: torch.device):
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
    part = summary[rows, j:j + 1]
    p = {name: t[:, 0].contiguous() for name, t in part.nll_terms().items()}
    if prior is None and not bool((p['gap'] > 0).any()):
        # every target is at its map's maximum: the exact NLL,
        # log sum exp((z - max) / T), only falls as T -> 0, so the optimum is
        # the lower bound (L-BFGS would crawl there through an exponentially
        # flat tail)
        return _T_MIN
    objective = LandmarkObjective(p, weights[rows, j])
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
    pooled = summary.pool_landmarks()
    w = weights.detach().to(summary.bin_mean.device,
                            torch.float64).reshape(b * k, 1)
    with single_threaded(summary.bin_mean.device):
        return _fit_landmark(pooled, w, 0, 1.0, max_iter)


def fit_temperatures(summary: LogitSummary,
                     weights: Optional[Tensor] = None,
                     init: Optional[Tensor] = None,
                     max_iter: int = 100,
                     prior_std: Optional[float] = None,
                     pooled: Optional[float] = None) -> Tensor:
    """Fits one temperature per landmark by minimising the NLL (Sec. 3.3).

    For each landmark k, minimises the weighted mean over the B samples of
    :func:`~.logit_summary.nll_from_summary` over ``log T_k`` with L-BFGS
    (strong-Wolfe line search). The objective is a sum of per-landmark
    terms, so each landmark is fitted on its own (1-D problems converge in a
    few evaluations).
    Nothing but T changes, so the mode of every map (the localisation) is
    untouched.

    Args:
        summary (LogitSummary): Summary of the calibration split's (B, K)
            maps, from :func:`~.logit_summary.summarize_logits` (e.g.
            concatenated with :meth:`LogitSummary.cat`), on any device.
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
        pooled (float, optional): With ``prior_std``: the
            :func:`fit_shared_temperature` of these ``summary`` and
            ``weights``, when the caller already has it (it is not refitted).

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
        if pooled is None:
            pooled = fit_shared_temperature(summary, weights, max_iter)
        mu = 0.0 if pooled <= _T_MIN else math.log(pooled)
        prior = (mu, float(prior_std))

    with single_threaded(device):
        fitted = [
            _fit_landmark(summary, weights, j, float(init[j]), max_iter,
                          prior) for j in range(k)
        ]
    return torch.tensor(fitted, dtype=torch.float32)
