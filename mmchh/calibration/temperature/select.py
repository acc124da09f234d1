# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Do-no-harm choice of the temperatures, by cross-validation.

The per-landmark fit (:func:`~.temperature_fitting.fit_temperatures`) always
lowers the NLL of the calibration split it was fitted on; on new images it
can raise it (measured: fitted on 10 images, the test NLL went 2.976 ->
2.995 while the calibration split said 2.959 -> 2.913).
:func:`select_temperatures` estimates each candidate fit's NLL on images it
did not see, by cross-validation over the calibration IMAGES, and keeps a
fit only when the paired bootstrap interval of its out-of-fold NLL change
against T = 1 excludes harm:

1. ``per_landmark``: :func:`fit_temperatures` with the caller's prior (the
   fit used without this check);
2. ``pooled``: one :func:`fit_shared_temperature` for every landmark;
3. ``identity``: T = 1 for every landmark (the uncalibrated network).

The first of 1, 2 whose interval lies below 0 is chosen, else 3; the chosen
candidate is then refitted on all calibration images. The choice never
returns a fit whose own out-of-fold NLL estimate is above identity's.
"""
import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import Tensor

from mmchh.evaluation.functional.bootstrap import (BootstrapOptions,
                                                   paired_bootstrap_mean)
from .logit_summary import LogitSummary, nll_from_summary
from .fit import (fit_shared_temperature, fit_temperatures,
                                  single_threaded)

#: The candidates, in the order the rule tries them (identity last).
CANDIDATES = ('per_landmark', 'pooled', 'identity')
_LABELS = {
    'per_landmark': "per-landmark fit's",
    'pooled': "pooled fit's",
}


@dataclass
class TemperatureSelection:
    """The chosen temperatures and the cross-validation behind the choice.

    Attributes:
        chosen (str): One of :data:`CANDIDATES`.
        temperature (Tensor): The chosen candidate refitted on every
            calibration image, (K,) float32 on the CPU.
        reason (str): Why, with the intervals (one line).
        oof_nll (dict): Candidate -> mean out-of-fold NLL over the annotated
            landmarks (NaN when no cross-validation ran).
        change (dict): ``per_landmark`` / ``pooled`` -> the paired bootstrap
            interval (dict of
            :class:`~mmchh.evaluation.functional.bootstrap.BootstrapInterval`)
            of its out-of-fold NLL minus identity's, over images.
        scheme (str): ``'leave-one-image-out'``, ``'k-fold'`` or ``'none'``.
        folds (int): Number of folds (0 without cross-validation).
        seconds (float): Wall time of the cross-validation and the refit.
        do_no_harm (bool): False when the check was off (the per-landmark
            fit, unchecked).
        oof_per_image (dict): Candidate -> (B, K) float64 out-of-fold NLL
            (not in :meth:`report`).
    """
    chosen: str
    temperature: Tensor
    reason: str
    oof_nll: Dict[str, float] = field(default_factory=dict)
    change: Dict[str, dict] = field(default_factory=dict)
    scheme: str = 'none'
    folds: int = 0
    seconds: float = 0.0
    do_no_harm: bool = True
    oof_per_image: Dict[str, np.ndarray] = field(default_factory=dict)

    def report(self) -> Dict:
        """JSON-ready dict: ``chosen``, ``reason``, ``do_no_harm``,
        ``scheme``, ``folds``, ``seconds`` and per candidate its
        ``oof_nll`` and ``change`` (None for identity)."""
        return dict(
            chosen=self.chosen,
            reason=self.reason,
            do_no_harm=self.do_no_harm,
            scheme=self.scheme,
            folds=self.folds,
            seconds=round(self.seconds, 4),
            candidates={
                name: dict(
                    oof_nll=self.oof_nll.get(name, float('nan')),
                    change=self.change.get(name))
                for name in CANDIDATES
            })


def image_folds(num_images: int, cv_folds: int = 10,
                seed: int = 0) -> List[np.ndarray]:
    """Held-out image indices of each cross-validation fold.

    Args:
        num_images (int): B, >= 2.
        cv_folds (int): Folds at most, >= 2. Up to ``cv_folds`` images this
            is leave-one-image-out (B folds of one image, in order); above,
            ``cv_folds`` folds of a seeded random permutation of the images.
        seed (int): Seed of that permutation.

    Returns:
        list[np.ndarray]: ``min(B, cv_folds)`` disjoint sorted int64 arrays
        that together hold every image once.
    """
    if num_images < 2:
        raise ValueError(f'cross-validation needs >= 2 images; got '
                         f'{num_images}')
    if int(cv_folds) != cv_folds or cv_folds < 2:
        raise ValueError(f'cv_folds must be an integer >= 2; got {cv_folds}')
    if num_images <= cv_folds:
        return [np.array([i], dtype=np.int64) for i in range(num_images)]
    order = np.random.default_rng(seed).permutation(num_images)
    return [np.sort(part) for part in np.array_split(order, int(cv_folds))]


def _candidate_fits(summary: LogitSummary, weights: Tensor, init: Tensor,
                    prior_std: Optional[float]) -> Dict[str, Tensor]:
    """Each candidate's (K,) temperatures fitted on ``summary``."""
    k = summary.target_logit.shape[1]
    pooled = fit_shared_temperature(summary, weights)
    return dict(
        # the pooled T is the prior's centre too: fitted once
        per_landmark=fit_temperatures(
            summary, weights, init=init, prior_std=prior_std, pooled=pooled),
        pooled=torch.full((k, ), pooled, dtype=torch.float32),
        identity=torch.ones(k, dtype=torch.float32))


def out_of_fold_nll(summary: LogitSummary, weights: Tensor, init: Tensor,
                    prior_std: Optional[float],
                    folds: List[np.ndarray]) -> Dict[str, np.ndarray]:
    """Out-of-fold NLL of every candidate, per image and landmark.

    For each fold, the candidates are fitted on the other images and their
    NLL (:func:`~.logit_summary.nll_from_summary`) is evaluated on the
    fold's images.

    Args:
        summary (LogitSummary): (B, K) maps of the calibration split.
        weights (Tensor): (B, K) sample weights (0: not annotated).
        init (Tensor): (K,) starting temperatures of the per-landmark fit.
        prior_std (float, optional): Its prior (None: maximum likelihood).
        folds (list[np.ndarray]): Held-out images of each fold
            (:func:`image_folds`).

    Returns:
        dict: Candidate -> (B, K) float64 numpy array.

    Note:
        Shapes: summary (B, K, NB) / (B, K), weights (B, K), init (K,).
    """
    b, k = summary.target_logit.shape[:2]
    out = {name: np.full((b, k), np.nan) for name in CANDIDATES}
    everyone = np.arange(b)
    for held in folds:
        train = torch.as_tensor(np.setdiff1d(everyone, held))
        test = torch.as_tensor(held)
        fits = _candidate_fits(summary[train], weights[train], init,
                               prior_std)
        part = summary[test]
        for name, t in fits.items():
            out[name][held] = nll_from_summary(part, t).cpu().numpy()
    return out


def _decide(oof: Dict[str, np.ndarray], mask: np.ndarray, level: float,
            seed: int):
    """(chosen, reason, change intervals) from the out-of-fold NLL."""
    change = {}
    rejected = []
    for name in CANDIDATES[:-1]:
        values = oof[name]
        if not np.isfinite(values[mask]).all():
            change[name] = None
            rejected.append(f'{_LABELS[name]} out-of-fold NLL is not finite')
            continue
        iv = paired_bootstrap_mean(
            oof['identity'], values, valid_a=mask, valid_b=mask,
            options=BootstrapOptions(level=level, seed=seed))
        change[name] = iv.as_dict()
        span = (f'{_LABELS[name]} out-of-fold NLL change '
                f'{iv.estimate:+.4f} [{iv.low:+.4f}, {iv.high:+.4f}]')
        # the estimate too: the invariant "never worse than identity by its
        # own estimate" must not rest on the interval containing it
        if math.isfinite(iv.high) and iv.high < 0 and iv.estimate < 0:
            return name, (span + f' excludes harm at {level:.0%}' + (
                '; ' + '; '.join(rejected) if rejected else '')), change
        rejected.append(span + ' does not exclude harm' if math.isfinite(
            iv.high) else span + f' has no interval ({iv.reason})')
    return 'identity', '; '.join(rejected) + ': keeping T = 1', change


def select_temperatures(summary: LogitSummary,
                        weights: Optional[Tensor] = None,
                        init: Optional[Tensor] = None,
                        prior_std: Optional[float] = 1.0,
                        do_no_harm: bool = True,
                        cv_folds: int = 10,
                        level: float = 0.95,
                        seed: int = 0) -> TemperatureSelection:
    """Fits the temperatures, falling back to safer ones when the fit's
    out-of-sample gain is not established.

    Args:
        summary (LogitSummary): (B, K) maps of the calibration split.
        weights (Tensor, optional): (B, K) sample weights; 0 leaves a
            landmark of an image out (of the fits and of the NLL means).
        init (Tensor, optional): (K,) starting temperatures of the
            per-landmark fit (default 1).
        prior_std (float, optional): Prior of the per-landmark fit (see
            :func:`fit_temperatures`); None or 0 = maximum likelihood.
        do_no_harm (bool): False returns the per-landmark fit unchecked,
            exactly ``fit_temperatures(summary, weights, init, prior_std)``.
        cv_folds (int): Folds at most (:func:`image_folds`): with up to
            ``cv_folds`` images, leave-one-image-out.
        level (float): Level of the paired bootstrap intervals.
        seed (int): Seed of the folds and of the bootstrap.

    Returns:
        TemperatureSelection: The choice, its reason and the
        cross-validation numbers. With fewer than 2 images no
        cross-validation is possible: identity, saying so.

    Note:
        Shapes: summary (B, K, NB) / (B, K), weights (B, K), init and the
        temperatures (K,). Rule: the first of ``per_landmark``, ``pooled``
        whose out-of-fold NLL change against identity has its interval's
        high end and its estimate below 0; else ``identity``.
    """
    start = time.perf_counter()
    b, k = summary.target_logit.shape[:2]
    prior_std = prior_std or None
    if weights is None:
        weights = torch.ones(b, k)
    weights = weights.detach().cpu().double()
    init = torch.ones(k) if init is None else init.detach().cpu()
    if not do_no_harm:
        t = fit_temperatures(summary, weights, init=init, prior_std=prior_std)
        return TemperatureSelection(
            'per_landmark', t, 'do-no-harm check off: the per-landmark fit, '
            'not cross-validated', do_no_harm=False,
            seconds=time.perf_counter() - start)
    if b < 2:
        return TemperatureSelection(
            'identity', torch.ones(k), f'{b} calibration image(s): no '
            'cross-validation possible, so no evidence that a fit helps; '
            'keeping T = 1', seconds=time.perf_counter() - start)
    folds = image_folds(b, cv_folds, seed)
    # many small evaluations: threads only add hand-offs (see
    # single_threaded)
    with single_threaded(summary.bin_mean.device):
        oof = out_of_fold_nll(summary, weights, init, prior_std, folds)
    mask = (weights > 0).numpy()
    chosen, reason, change = _decide(oof, mask, level, seed)
    if chosen == 'per_landmark':
        t = fit_temperatures(summary, weights, init=init, prior_std=prior_std)
    elif chosen == 'pooled':
        t = torch.full((k, ), fit_shared_temperature(summary, weights))
    else:
        t = torch.ones(k)
    return TemperatureSelection(
        chosen,
        t.float(),
        reason,
        oof_nll={
            name: float(v[mask].mean()) if mask.any() else float('nan')
            for name, v in oof.items()
        },
        change=change,
        scheme='leave-one-image-out' if len(folds) == b else 'k-fold',
        folds=len(folds),
        seconds=time.perf_counter() - start,
        oof_per_image=oof)
