# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The head's calibration buffers: their names, defaults and seal.

Which head tensors are calibration state (fitted after training, never
trained) is the head's own business, so it is written here, beside
:mod:`.calibration_state` (which holds, verifies and resets them): the
weights fingerprint leaves these out
(:func:`calibration_weights_fingerprint`), a checkpoint's finiteness check
lets their "not fitted" NaN pass (:func:`check_finite_weights`), and
:func:`calibration_seal` binds the fingerprint to their values -- the head
stores the seal, so a calibration edited after fitting is as stale as one
whose weights changed. Adding a calibration buffer means adding it here
and nowhere else.
"""
import hashlib
import math
from typing import Mapping, Optional

import torch

from mmchh.utils.checkpoint import (check_finite_state, hash_tensor,
                                    weights_fingerprint)

__all__ = [
    'CALIBRATION_STATE_DEFAULTS', 'CALIBRATION_STATE_NAMES',
    'LATER_CALIBRATION_STATE_NAMES', 'UNSET_AS_NAN_STATE_NAMES',
    'at_default', 'calibration_seal', 'calibration_weights_fingerprint',
    'check_finite_weights'
]

#: Head buffers that hold calibration state (fitted after training, never
#: trained), each with its "uncalibrated" fill value. They are excluded from
#: the weights fingerprint; NaN in ``flag_threshold`` and the ``conformal_*``
#: buffers (levels, score thresholds, disc radii in image pixels) means
#: "not fitted", zeros in ``calibration_fingerprint`` "no fingerprint".
#: ``flag_threshold_in_mm`` is the threshold's unit (True: mm, False:
#: original-image pixels); True by default, so a checkpoint written before
#: the unit was stored keeps its (mm) meaning.
#: ``flag_threshold_low`` / ``_high`` are the threshold's 95 % bootstrap
#: interval over the calibration images, ``flag_num_images`` /
#: ``flag_num_erroneous`` the images and erroneous landmarks it was fitted
#: on (NaN: not recorded); ``measurement_interval_scale`` / ``_level`` /
#: ``measurement_region_level`` the fitted scale of the measurement
#: intervals, its coverage level and the conformal region level the
#: landmarks are drawn within (NaN: not fitted); ``measurement_jitter`` the
#: (K, 2, 2) covariance, in heatmap pixels^2, each landmark's draws are
#: widened by (NaN: not fitted, no widening; see
#: :mod:`mmchh.calibration.conformal.landmark_jitter`). The ``configuration_*``
#: buffers hold the configuration model (mean shape, leave-one-out offsets
#: and covariances, shapes per landmark; see
#: :mod:`mmchh.codecs.utils.configuration_model`), the plausibility
#: threshold in sigma, its level ``alpha`` and the correct calibration
#: landmarks it was fitted on (NaN: not fitted; a NaN threshold beside a
#: fitted model: scores reported, nothing flagged implausible).
#: State fitted later joins the same fingerprinted calibration by adding its
#: buffer here (and to :data:`LATER_CALIBRATION_STATE_NAMES`): the head then
#: verifies, resets and fills it like the others.
CALIBRATION_STATE_DEFAULTS = {
    'log_temperature': 0.0,
    'flag_threshold': float('nan'),
    'flag_threshold_in_mm': True,
    'flag_threshold_low': float('nan'),
    'flag_threshold_high': float('nan'),
    'flag_num_images': float('nan'),
    'flag_num_erroneous': float('nan'),
    'measurement_interval_scale': float('nan'),
    'measurement_interval_level': float('nan'),
    'measurement_region_level': float('nan'),
    'measurement_jitter': float('nan'),
    'conformal_level': float('nan'),
    'conformal_threshold': float('nan'),
    'conformal_pooled_threshold': float('nan'),
    'conformal_disc_radius': float('nan'),
    'conformal_pooled_disc_radius': float('nan'),
    'configuration_mean': float('nan'),
    'configuration_offset': float('nan'),
    'configuration_cov': float('nan'),
    'configuration_num_shapes': float('nan'),
    'configuration_threshold': float('nan'),
    'configuration_alpha': float('nan'),
    'configuration_num_scores': float('nan'),
    'calibration_fingerprint': 0,
}
#: The names of :data:`CALIBRATION_STATE_DEFAULTS`, in order.
CALIBRATION_STATE_NAMES = tuple(CALIBRATION_STATE_DEFAULTS)
#: The calibration buffers added after seals bound the calibration values:
#: :func:`calibration_seal` hashes each only when it is set (not all at its
#: default), so a checkpoint sealed before it existed keeps its seal.
LATER_CALIBRATION_STATE_NAMES = (
    'flag_threshold_low', 'flag_threshold_high', 'flag_num_images',
    'flag_num_erroneous', 'measurement_interval_scale',
    'measurement_interval_level', 'measurement_region_level',
    'measurement_jitter', 'configuration_mean', 'configuration_offset', 'configuration_cov',
    'configuration_num_shapes', 'configuration_threshold',
    'configuration_alpha', 'configuration_num_scores')
#: The calibration buffers in which NaN means "not fitted" (their default);
#: :func:`check_finite_state` accepts NaN, never an infinity, in them.
UNSET_AS_NAN_STATE_NAMES = tuple(
    name for name, value in CALIBRATION_STATE_DEFAULTS.items()
    if isinstance(value, float) and math.isnan(value))


def at_default(name: str, value: torch.Tensor) -> bool:
    """Whether calibration buffer ``value`` holds its default everywhere."""
    default = CALIBRATION_STATE_DEFAULTS[name]
    value = value.detach()
    if isinstance(default, float) and math.isnan(default):
        return bool(torch.isnan(value).all())
    return bool((value == default).all())


def calibration_seal(weights_hex: str,
                     calibration: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of a weights fingerprint and the calibration values.

    What a head stores in ``calibration_fingerprint``: it changes when the
    weights change (through ``weights_hex``, see :func:`weights_fingerprint`)
    and when any calibration value does -- a temperature reset by hand, a
    threshold deleted from the file -- so neither passes as the calibration
    that was fitted. A calibration that kept every value at its default
    (the do-no-harm fit kept T = 1 and fitted nothing else) is still sealed.

    Args:
        weights_hex (str): :func:`weights_fingerprint` of the weights.
        calibration (Mapping[str, Tensor]): The calibration buffers by name
            (:data:`CALIBRATION_STATE_NAMES` but ``calibration_fingerprint``;
            any other name is refused).
    """
    unknown = set(calibration) - (set(CALIBRATION_STATE_NAMES) -
                                  {'calibration_fingerprint'})
    if unknown:
        raise KeyError(f'not calibration values: {sorted(unknown)}')
    digest = hashlib.sha256(b'mmchh calibration seal v2|')
    digest.update(weights_hex.encode())
    for name in sorted(calibration):
        if name in LATER_CALIBRATION_STATE_NAMES and at_default(
                name, calibration[name]):
            continue
        digest.update(b'|')
        hash_tensor(digest, name, calibration[name])
    return digest.hexdigest()


def calibration_weights_fingerprint(
        state: Mapping[str, torch.Tensor]) -> str:
    """The weights fingerprint of ``state``: every tensor but the
    calibration buffers (:func:`~mmchh.utils.checkpoint.weights_fingerprint`
    excluding :data:`CALIBRATION_STATE_NAMES`)."""
    return weights_fingerprint(state, exclude=CALIBRATION_STATE_NAMES)


def check_finite_weights(state: Mapping[str, torch.Tensor],
                         path: Optional[str] = None) -> None:
    """:func:`~mmchh.utils.checkpoint.check_finite_state` with the
    calibration buffers' "not fitted" NaN allowed (never an infinity)."""
    check_finite_state(state, path, nan_allowed=UNSET_AS_NAN_STATE_NAMES)
