# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The textbook loss the fast ``SoftmaxNLLLoss`` is checked against.

A loop over maps that builds each dense target map and takes
``-sum(target * log softmax)`` in float64 numpy: slow, obviously right,
sharing no code with :mod:`mmchh.models.losses`.
"""
from typing import Optional

import numpy as np

__all__ = ['dense_softmax_nll']


def dense_softmax_nll(logits, index: np.ndarray, weights: np.ndarray,
                      mass: Optional[np.ndarray] = None) -> float:
    """Weighted mean cross-entropy of 2D-softmax maps, computed densely.

    Args:
        logits (torch.Tensor): The maps' logits (any float dtype).
        index (np.ndarray): Flat target pixel of each map, or of each
            annotator of each map (with ``mass``).
        weights (np.ndarray): Weight of each map.
        mass (np.ndarray, optional): Probability mass of each annotator's
            pixel; None for one-hot targets (mass 1 at ``index``).

    Returns:
        float: ``sum(w * CE) / sum(w)`` over the maps.

    Note:
        Shapes: ``logits`` (B, K, H, W); ``index`` (B, K) one-hot or
        (B, K, A) with ``mass`` (B, K, A); ``weights`` (B, K).
    """
    x = logits.detach().double().numpy()
    b, k, h, w = x.shape
    if mass is None:
        index, mass = np.asarray(index)[..., None], np.ones((b, k, 1))
    total, count = 0.0, 0.0
    for i in range(b):
        for j in range(k):
            target = np.zeros(h * w)
            for a in range(index.shape[-1]):
                target[index[i, j, a]] += mass[i, j, a]
            flat = x[i, j].reshape(-1)
            log_p = flat - flat.max() - np.log(np.exp(flat - flat.max()).sum())
            total += weights[i, j] * -(target * log_p).sum()
            count += weights[i, j]
    return total / count
