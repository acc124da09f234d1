# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
from typing import Optional, Tuple

import torch
from mmpose.registry import MODELS
from torch import Tensor, nn

from mmchh.codecs.utils import nll_at_index
from mmchh.utils.errors import InputError


class NLLAtIndexFunction(torch.autograd.Function):
    """``logsumexp(x) - x[index]`` per map with a fused backward.

    The value is :func:`~mmchh.codecs.utils.nll_at_index`'s. Its
    gradient ``softmax(x) - onehot(index)`` (times the incoming gradient) is
    written into one buffer: ``exp(x - lse)`` in place, then the target
    pixels are decremented. Autograd's generic backward of ``logsumexp`` and
    ``gather`` would instead build the softmax term and a dense zero map
    for the gather, and add them: two more (B, K, H, W) temporaries and
    three more passes over them, at the moment the network's activations
    are all still alive (the peak of a training step).
    """

    @staticmethod
    def forward(ctx, flat: Tensor, index: Tensor) -> Tensor:
        lse = torch.logsumexp(flat, dim=-1)
        nll = lse - flat.gather(-1, index.unsqueeze(-1)).squeeze(-1)
        ctx.save_for_backward(flat, lse, index)
        return nll

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        flat, lse, index = ctx.saved_tensors
        g = torch.sub(flat, lse.unsqueeze(-1)).exp_()
        g.mul_(grad.unsqueeze(-1))
        g.scatter_add_(-1, index.unsqueeze(-1), -grad.unsqueeze(-1))
        return g, None


class _CrossEntropyAtIndices(torch.autograd.Function):
    """``logsumexp(x) - sum_a m_a x[index_a]`` per map, fused backward.

    The cross-entropy against a target distribution with mass ``m_a`` on
    pixel ``index_a`` (the masses sum to 1); gradient ``softmax(x) - target``
    built in one buffer as in :class:`NLLAtIndexFunction`. Repeated indices
    add their masses, as the target distribution does.
    """

    @staticmethod
    def forward(ctx, flat: Tensor, index: Tensor, mass: Tensor) -> Tensor:
        lse = torch.logsumexp(flat, dim=-1)
        ce = lse - (flat.gather(-1, index) * mass).sum(-1)
        ctx.save_for_backward(flat, lse, index, mass)
        return ce

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        flat, lse, index, mass = ctx.saved_tensors
        g = torch.sub(flat, lse.unsqueeze(-1)).exp_()
        g.mul_(grad.unsqueeze(-1))
        g.scatter_add_(-1, index, -grad.unsqueeze(-1) * mass)
        return g, None, None


def check_targets(target: Tensor,
                  map_size: Tuple[int, int],
                  weights: Optional[Tensor] = None,
                  mass: Optional[Tensor] = None) -> None:
    """Raises unless the sparse targets fit a (H, W) map; never clamps.

    A target index outside ``[0, H * W)`` is the sign of a codec encoded for
    another heatmap grid (or of a bug): clamping it into the map would train
    the network on a wrong pixel without any error. Float indices would be
    truncated, negative weights or masses would turn the loss into a reward,
    and non-finite ones make it NaN. All checks are O(B * K * A) and cost one
    small device-to-host copy.

    Args:
        target (Tensor): Flat indices ``y * W + x``, (B, K) or (B, K, A).
        map_size (tuple): The logits' (H, W).
        weights (Tensor, optional): Per-landmark weights, (B, K).
        mass (Tensor, optional): Target masses, same shape as ``target``.

    Raises:
        InputError: (a ``ValueError``) naming the offending value, where
            it is and the map size.
    """
    h, w = map_size
    size = h * w
    if target.is_floating_point() or target.is_complex() or \
            target.dtype == torch.bool:
        raise InputError(
            f'SoftmaxNLLLoss: target indices must be integers (flat pixel '
            f'indices y * W + x of the {h}x{w} map); got dtype '
            f'{target.dtype}. Encode them with the SoftmaxHeatmap codec')
    if not target.numel():
        return
    # a few reductions, one device-to-host copy for all of them
    stats = [target.min().to(torch.float32), target.max().to(torch.float32)]
    names = []
    for name, value in (('target_weights', weights), ('target_mass', mass)):
        if value is not None and value.numel():
            value = value.detach().to(device=target.device,
                                      dtype=torch.float32)
            clean = value.nan_to_num(nan=0.0, posinf=float('inf'),
                                     neginf=float('-inf'))
            stats += [torch.isnan(value).any().to(torch.float32),
                      clean.min(), clean.max()]
            names.append(name)
    values = torch.stack(stats).cpu().tolist()
    lo, hi = values[0], values[1]
    if lo < 0 or hi >= size:
        bad_value = int(lo if lo < 0 else hi)
        where = torch.nonzero((target < 0) | (target >= size))[0].tolist()
        raise InputError(
            f'SoftmaxNLLLoss: target index {bad_value} at {tuple(where)} is '
            f'outside the {h}x{w} heatmap (valid flat indices 0..{size - 1}).'
            ' The targets were encoded for another heatmap size: '
            'GenerateTarget(encoder=...) in train_pipeline must equal '
            'model.head.decoder')
    for i, name in enumerate(names):
        has_nan, vmin, vmax = values[2 + 3 * i:5 + 3 * i]
        bad = (float('nan') if has_nan else vmin if vmin < 0 else
               vmax if vmax == float('inf') else None)
        if bad is not None:
            raise InputError(
                f'SoftmaxNLLLoss: {name} must be finite and >= 0; got '
                f'{bad} (map {h}x{w}). A negative weight would '
                'reward the network for moving away from the target')


@MODELS.register_module()
class SoftmaxNLLLoss(nn.Module):
    """Negative log-likelihood of the target pixel under a 2D softmax.

    Each landmark's logit map is a categorical distribution over all its
    pixels (the paper's Eq. 1); the target is the one pixel that holds the
    landmark (Eq. 2), given as a flat index, so no dense one-hot map is ever
    built. Per landmark the loss is ``logsumexp(logits) - logits[target]``.

    Args:
        use_target_weight (bool): Multiply each landmark's loss by its
            ``keypoint_weights`` entry and average over the landmarks that
            count (weight sum). When False, every landmark counts once.
            Defaults to True; invisible and out-of-heatmap landmarks carry
            weight 0 from the codec, so keep it on.
        loss_weight (float): Scale of the returned loss. Defaults to 1.0.

    Note:
        - output: (B, K, H, W) logits
        - target: (B, K) integer flat pixel indices ``y * W + x``, or
          (B, K, A) with ``target_mass`` (B, K, A): a target distribution
          with mass ``target_mass[..., a]`` on pixel ``target[..., a]``
          (e.g. one pixel per annotator, mass 1/A); the loss is then the
          cross-entropy ``logsumexp(logits) - sum_a mass_a logits[a]``,
          which for A = 1 is the NLL above
        - target_weights: (B, K)

        The loss is computed in float32 with autocast disabled, so it is the
        same under AMP; the logsumexp form is finite for logits of any
        magnitude.

        Targets are never clamped into the map: an index outside it, a
        floating-point index tensor, or a negative / non-finite weight or
        mass raises an ``InputError`` (a ``ValueError``; see
        :func:`check_targets`).
    """

    def __init__(self, use_target_weight: bool = True,
                 loss_weight: float = 1.0):
        super().__init__()
        self.use_target_weight = use_target_weight
        self.loss_weight = loss_weight

    def forward(self,
                output: Tensor,
                target: Tensor,
                target_weights: Tensor = None,
                target_mass: Tensor = None) -> Tensor:
        if output.ndim != 4:
            raise ValueError('SoftmaxNLLLoss expects logits of shape '
                             f'(B, K, H, W); got {tuple(output.shape)}')
        b, k, h, w = output.shape
        if target.ndim == 3:
            mass_shape = None if target_mass is None else tuple(
                target_mass.shape)
            if target.shape[:2] != (b, k) or mass_shape != tuple(
                    target.shape):
                raise ValueError(
                    'SoftmaxNLLLoss: a (B, K, A) target needs target_mass of '
                    f'the same shape; got target {tuple(target.shape)} and '
                    f'mass {mass_shape} for logits {tuple(output.shape)}')
        elif target.shape != (b, k):
            raise ValueError('SoftmaxNLLLoss expects flat target indices of '
                             f'shape {(b, k)}; got {tuple(target.shape)}. '
                             'Use the SoftmaxHeatmap codec to encode them.')
        check_targets(target, (h, w), target_weights, target_mass)
        with torch.autocast(device_type=output.device.type, enabled=False):
            index = target.to(device=output.device, dtype=torch.long)
            nll = self._per_map(output, index, target_mass)
            if self.use_target_weight and target_weights is not None:
                weights = target_weights.to(nll.dtype).reshape(b, k)
            else:
                weights = torch.ones_like(nll)
            # with no countable landmark the numerator is an exact 0 (with a
            # graph, so DDP sees every parameter); clamping the denominator
            # instead of branching avoids a device-to-host sync
            loss = (nll * weights).sum() / weights.sum().clamp_min(1e-12)
        return loss * self.loss_weight

    @staticmethod
    def _per_map(output: Tensor, index: Tensor, mass: Tensor) -> Tensor:
        """(B, K) NLL of a one-hot target (index (B, K)) or cross-entropy of
        a target distribution (index and mass (B, K, A))."""
        dtype = torch.promote_types(output.dtype, torch.float32)
        grad = torch.is_grad_enabled() and output.requires_grad
        if index.ndim == 2:
            if grad:
                return NLLAtIndexFunction.apply(
                    output.to(dtype).flatten(-2), index)
            return nll_at_index(output, index)
        flat = output.to(dtype).flatten(-2)
        mass = mass.to(device=output.device, dtype=dtype)
        if grad:
            return _CrossEntropyAtIndices.apply(flat, index, mass)
        return torch.logsumexp(flat, dim=-1) - (flat.gather(-1, index) *
                                                mass).sum(-1)
