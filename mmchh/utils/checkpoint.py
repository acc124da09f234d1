# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Reading checkpoints safely, checking their weights, fingerprinting them.

Every entry point that takes a checkpoint (the API, ``tools/infer.py``,
``test.py``, ``calibrate.py``, ``measure.py``, ``train.py``'s
``load_from``/``--resume``) goes through :func:`load_checkpoint_file`, so a
truncated, empty, malicious or foreign file ends in one
:class:`CheckpointError` line naming the file and the reason -- never in a
traceback, and never with advice to turn ``weights_only`` off.

:func:`check_finite_state` refuses weights holding NaN/inf (naming the
tensor): a network with a non-finite weight answers (0, 0) with ERE 0 for
every landmark, the most confident answer there is.

:func:`weights_fingerprint` is a SHA-256 over every tensor of a state dict
except the calibration state itself; calibration records it, and a consumer
whose weights hash differently knows the calibration was fitted for other
weights. :func:`calibration_seal` binds that fingerprint to the calibration
values themselves (temperatures, threshold, conformal regions): the head
stores the seal, so a calibration edited after fitting is as stale as one
whose weights changed.
"""
import hashlib
import math
import os.path as osp
import pickle
from typing import Any, Dict, Iterable, Mapping, Optional

import torch

from .errors import InputError

__all__ = [
    'CALIBRATION_STATE_DEFAULTS', 'CALIBRATION_STATE_NAMES', 'CheckpointError',
    'LATER_CALIBRATION_STATE_NAMES',
    'UNSET_AS_NAN_STATE_NAMES', 'check_finite_state', 'checkpoint_state_dict',
    'calibration_seal', 'load_checkpoint_file', 'weights_fingerprint'
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
#: landmarks are drawn within (NaN: not fitted). The ``configuration_*``
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
    'configuration_mean', 'configuration_offset', 'configuration_cov',
    'configuration_num_shapes', 'configuration_threshold',
    'configuration_alpha', 'configuration_num_scores')
#: The calibration buffers in which NaN means "not fitted" (their default);
#: :func:`check_finite_state` accepts NaN, never an infinity, in them.
UNSET_AS_NAN_STATE_NAMES = tuple(
    name for name, value in CALIBRATION_STATE_DEFAULTS.items()
    if isinstance(value, float) and math.isnan(value))


class CheckpointError(InputError):
    """A checkpoint file that cannot be used; the message names the file.

    Args:
        path (str | None): The checkpoint file.
        reason (str): Why it cannot be used, in words.
    """

    def __init__(self, path: Optional[str], reason: str):
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(f'checkpoint {self.path or "<memory>"}: {reason}')


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_checkpoint_file(path: str, map_location: Any = 'cpu') -> Any:
    """Loads a checkpoint with ``weights_only=True`` and plain errors.

    Args:
        path (str): The file.
        map_location: As for ``torch.load``.

    Returns:
        The loaded object (normally a dict with ``state_dict`` and ``meta``).

    Raises:
        CheckpointError: missing, empty, truncated/not a torch file, or
            holding objects other than weights (a possibly malicious file);
            the message names the file.
    """
    import mmchh.utils.compat as compat
    compat.allow_checkpoint_globals()
    path = str(path)
    if not osp.exists(path):
        raise CheckpointError(path, 'no such file')
    if not osp.isfile(path):
        raise CheckpointError(path, 'not a file')
    if osp.getsize(path) == 0:
        raise CheckpointError(path, 'empty file (0 bytes)')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message suggests turning weights_only off; we never do that
        # keep torch's diagnosis (which global, which operand), drop its
        # preamble and its advice
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = next(
            (ln for ln in lines if not ln.startswith(
                ('Weights only load failed', 'Check the documentation',
                 'Please file an issue'))
             and 'weights_only' not in ln), 'an unsupported object')
        raise CheckpointError(
            path, 'refused: it holds objects that are not plain weights '
            f'({detail.rstrip(".")}). mmchh loads checkpoints with '
            'weights_only=True only; use a checkpoint written by MMEngine '
            'or mmchh') from e
    except Exception as e:  # noqa: B902  (any failure to parse the file)
        raise CheckpointError(
            path, 'not a readable PyTorch checkpoint (truncated or another '
            f'kind of file): {_first_line(e)}') from e


def checkpoint_state_dict(ckpt: Any,
                          path: Optional[str] = None
                          ) -> Dict[str, torch.Tensor]:
    """The state dict inside an MMEngine/plain checkpoint, ``module.``-free.

    Raises:
        CheckpointError: if there is no dict of tensors in it.
    """
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, 'holds no state dict of tensors (not a '
                              'model checkpoint)')
    # DDP-wrapped saves prefix every key with "module."
    return {(k[7:] if k.startswith('module.') else k): v
            for k, v in state.items()}


def check_finite_state(state: Mapping[str, torch.Tensor],
                       path: Optional[str] = None) -> None:
    """Raises unless every floating tensor of ``state`` is finite.

    The buffers of :data:`UNSET_AS_NAN_STATE_NAMES` (``flag_threshold``,
    the ``conformal_*`` state) may be NaN (not fitted) but not infinite.

    Raises:
        CheckpointError: naming the first offending tensor and how many of
            its values are NaN or infinite.
    """
    for name, value in state.items():
        if not isinstance(value, torch.Tensor) or not (
                value.is_floating_point() or value.is_complex()):
            continue
        bad = ~torch.isfinite(value)
        if name.rsplit('.', 1)[-1] in UNSET_AS_NAN_STATE_NAMES:
            bad = torch.isinf(value)
        if bool(bad.any()):
            n_nan = int(torch.isnan(value).sum())
            n_inf = int(torch.isinf(value).sum())
            raise CheckpointError(
                path, f'tensor {name} {tuple(value.shape)} holds {n_nan} '
                f'NaN and {n_inf} infinite value(s); the weights are broken '
                '(a diverged training run?) and would give meaningless '
                'predictions')


def weights_fingerprint(state: Mapping[str, torch.Tensor],
                        exclude: Iterable[str] = CALIBRATION_STATE_NAMES
                        ) -> str:
    """SHA-256 (hex) of every tensor of ``state`` but the calibration state.

    Names (``module.`` stripped), dtypes, shapes and bytes all count, in
    sorted name order, so the same weights give the same fingerprint
    whether they come from a checkpoint file or from ``model.state_dict()``
    on any device.
    """
    exclude = tuple(exclude)
    digest = hashlib.sha256()
    for name in sorted(state):
        key = name[7:] if name.startswith('module.') else name
        if key.rsplit('.', 1)[-1] in exclude:
            continue
        value = state[name]
        if not isinstance(value, torch.Tensor):
            continue
        _hash_tensor(digest, key, value)
    return digest.hexdigest()


def _at_default(name: str, value: torch.Tensor) -> bool:
    """Whether calibration buffer ``value`` holds its default everywhere."""
    default = CALIBRATION_STATE_DEFAULTS[name]
    value = value.detach()
    if isinstance(default, float) and math.isnan(default):
        return bool(torch.isnan(value).all())
    return bool((value == default).all())


def _hash_tensor(digest, name: str, value: torch.Tensor) -> None:
    """Feeds ``name|dtype|shape|`` and the raw bytes of ``value`` (on the
    CPU) to ``digest``: one tensor of a fingerprint or a seal."""
    tensor = value.detach().to('cpu').contiguous()
    digest.update(f'{name}|{tensor.dtype}|{tuple(tensor.shape)}|'.encode())
    digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
                  if tensor.numel() else b'')


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
        if name in LATER_CALIBRATION_STATE_NAMES and _at_default(
                name, calibration[name]):
            continue
        digest.update(b'|')
        _hash_tensor(digest, name, calibration[name])
    return digest.hexdigest()
