# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The calibration state of a softmax heatmap head, and how it follows the
weights.

A head's calibration is a few buffers (:data:`~mmchh.models.heads.
calibration_buffers.CALIBRATION_STATE_DEFAULTS`): one temperature per map (``log_temperature``),
the ERE flag threshold (``flag_threshold``) and its unit, mm or
original-image pixels (``flag_threshold_in_mm``), the split-conformal
regions (``conformal_*``: levels, score thresholds and disc radii, see
:mod:`mmchh.calibration.conformal.fitting`), the configuration model and its
plausibility threshold (``configuration_*``, see
:mod:`mmchh.calibration.configuration`) and the fingerprint of the
weights they were fitted for (``calibration_fingerprint``). They travel in
every checkpoint, and must never outlive the weights they belong to:

- every load refuses non-finite tensors and loads a calibration whose
  fingerprint does not match the incoming weights as UNCALIBRATED, with one
  warning (:func:`verify_loaded_state`, registered on whatever module holds
  the head, so that it sees the whole model's state dict);
- :meth:`CalibrationStateMixin.seal_calibration` binds a fitted calibration
  to the weights;
- the first training ``loss()`` resets it (the weights are about to change).

:class:`CalibrationStateMixin` holds this for ``SoftmaxHeatmapHead`` (it is
listed before ``HeatmapHead`` in the head's bases).
"""
import logging
import warnings
from typing import Dict, Optional, Union

import numpy as np
import torch
from mmengine.logging import print_log
from torch import Tensor

from mmchh.codecs.utils import check_jitter

from .calibration_buffers import (CALIBRATION_STATE_DEFAULTS,
                                  calibration_seal,
                                  calibration_weights_fingerprint,
                                  check_finite_weights)

def verify_loaded_state(model: torch.nn.Module, state_dict: dict,
                        prefix: str, *args, **kwargs) -> None:
    """Load pre-hook of every model that holds a head with a calibration state.

    Torch and MMEngine hand each submodule only its own keys, so the head
    cannot see the rest of the model; this hook is registered on the
    module that holds the head (the pose estimator) as soon as the head is
    assigned to it, and so runs for every path that loads weights into
    it (``load_state_dict``, MMEngine's ``load_checkpoint``, the Runner's
    ``load_from``/``resume``, ``init_model``, the mmchh API). It

    1. refuses non-finite weights (:class:`~mmchh.utils.checkpoint.
       CheckpointError` naming the tensor), and
    2. loads a calibration whose fingerprint does not match the incoming
       weights as UNCALIBRATED, with one warning (see
       :meth:`SoftmaxHeatmapHead.seal_calibration`).

    Args:
        model (nn.Module): The module the hook is registered on.
        state_dict (dict): The incoming state dict (modified in place).
        prefix (str): ``model``'s key prefix in ``state_dict``.
    """
    own = {k[len(prefix):]: v for k, v in state_dict.items()
           if k.startswith(prefix)}
    check_finite_weights(own)
    heads = [(name, m) for name, m in model.named_modules()
             if isinstance(m, CalibrationStateMixin) and name]
    model_keys = None
    for name, head in heads:
        model_keys = head._verify_calibration(state_dict, prefix + name + '.',
                                              own, name + '.', model,
                                              model_keys)
        head._state_verified = True


def _watch_heads(module: torch.nn.Module, name: str,
                 submodule: torch.nn.Module) -> None:
    """Global module-registration hook: a module that gets a
    head with a calibration state child checks every state dict loaded into it
    (:func:`verify_loaded_state`)."""
    if isinstance(submodule, CalibrationStateMixin) and not \
            module.__dict__.get('_mmchh_verifies_state', False):
        module.register_load_state_dict_pre_hook(verify_loaded_state)
        module.__dict__['_mmchh_verifies_state'] = True


class CalibrationStateMixin:
    """Temperatures, flag threshold and weights fingerprint of a head.

    Mixed into a heatmap head before MMPose's ``HeatmapHead`` (whose
    ``_load_state_dict_pre_hook`` it extends). The head calls
    :meth:`_init_calibration_state` in ``__init__`` and
    :meth:`_reset_calibration_for_training` at the top of ``loss``.

    Note:
        - ``log_temperature``: (K,) float, log T per map (T = 1 at 0)
        - ``flag_threshold``: () float, mm or image pixels; NaN = unset
        - ``flag_threshold_in_mm``: () bool, the threshold's unit (True:
          mm, the default, so older checkpoints keep their meaning; False:
          original-image pixels)
        - ``flag_threshold_low``, ``flag_threshold_high``: () float, the
          threshold's 95 % bootstrap interval over calibration images;
          ``flag_num_images``, ``flag_num_erroneous``: () float, what it
          was fitted on (a threshold below the minimum of
          :mod:`~mmchh.models.heads.flag_basis` is not stored: NaN
          ``flag_threshold`` with these set); NaN = not recorded
        - ``measurement_interval_scale``, ``measurement_interval_level``,
          ``measurement_region_level``: () float, the measurement
          intervals' fitted scale, level and draw region level; NaN = not
          fitted
        - ``measurement_jitter``: (K, 2, 2) float32, the covariance (heatmap
          pixels^2) added to each landmark's measurement draws; NaN = not
          fitted
        - ``conformal_level``: (L,) float, coverage levels ``1 - alpha``
        - ``conformal_threshold``: (L, K) float, score threshold per level
          and landmark; ``conformal_pooled_threshold``: (L,)
        - ``conformal_disc_radius``: (L, K) float, the disc baseline's
          radius in original-image pixels; ``conformal_pooled_disc_radius``:
          (L,)
        - every ``conformal_*`` buffer: float32, NaN = not fitted
        - ``configuration_mean``, ``configuration_offset``: (K, 2);
          ``configuration_cov``: (K, 2, 2); ``configuration_num_shapes``:
          (K,); ``configuration_threshold`` (sigma),
          ``configuration_alpha``, ``configuration_num_scores``: ();
          float32, NaN = not fitted (see
          :class:`~mmchh.models.heads.plausibility_fields.PlausibilityFieldsMixin`)
        - ``calibration_fingerprint``: (32,) uint8, a SHA-256 digest
    """

    def _init_calibration_state(self, num_maps: int,
                                num_levels: int = 1) -> None:
        """Registers the calibration buffers (call from ``__init__``).

        Args:
            num_maps (int): K, the number of landmark maps.
            num_levels (int): L, the number of conformal coverage levels.
        """
        self.register_buffer('log_temperature', torch.zeros(num_maps))
        # ERE threshold above which a landmark is flagged; NaN = unset;
        # in mm, or in original-image pixels when flag_threshold_in_mm is
        # False
        self.register_buffer('flag_threshold', torch.tensor(float('nan')))
        self.register_buffer('flag_threshold_in_mm', torch.tensor(True))
        nan = float('nan')
        # what the threshold was fitted on (its bootstrap interval over the
        # calibration images, their number and that of the erroneous
        # landmarks) and the measurement intervals' fitted scale, its level
        # and the region level of the draws; NaN = not recorded / not fitted
        for name in ('flag_threshold_low', 'flag_threshold_high',
                     'flag_num_images', 'flag_num_erroneous',
                     'measurement_interval_scale',
                     'measurement_interval_level',
                     'measurement_region_level'):
            self.register_buffer(name, torch.tensor(nan))
        # the error each landmark's map does not show, added to its
        # measurement draws; NaN = not fitted
        self.register_buffer('measurement_jitter',
                             torch.full((num_maps, 2, 2), nan))
        # split-conformal regions and their disc baseline; NaN = not fitted
        for name, shape in (('conformal_level', (num_levels, )),
                            ('conformal_threshold', (num_levels, num_maps)),
                            ('conformal_pooled_threshold', (num_levels, )),
                            ('conformal_disc_radius',
                             (num_levels, num_maps)),
                            ('conformal_pooled_disc_radius',
                             (num_levels, ))):
            self.register_buffer(
                name, torch.full(shape, nan, dtype=torch.float32))
        # the configuration model and its plausibility threshold (see
        # PlausibilityFieldsMixin); NaN = not fitted
        for name, shape in (('configuration_mean', (num_maps, 2)),
                            ('configuration_offset', (num_maps, 2)),
                            ('configuration_cov', (num_maps, 2, 2)),
                            ('configuration_num_shapes', (num_maps, )),
                            ('configuration_threshold', ()),
                            ('configuration_alpha', ()),
                            ('configuration_num_scores', ())):
            self.register_buffer(
                name, torch.full(shape, nan, dtype=torch.float32))
        # SHA-256 digest of the weights the calibration was fitted for
        # (weights_fingerprint of the model's state dict); zeros = none
        self.register_buffer('calibration_fingerprint',
                             torch.zeros(32, dtype=torch.uint8))
        # whether loss() has looked at the calibration state since it last
        # changed (one host sync then, never per batch)
        self._calibration_seen_by_loss = False
        self._state_verified = False

    def _load_state_dict_pre_hook(self, state_dict, prefix, local_meta, *args,
                                  **kwargs):
        """Checks and completes the incoming head state.

        Refuses non-finite tensors; a calibration the model holding this
        head has not verified (the head loaded on its own) is verified
        against the head's own weights. Accepts state dicts without
        calibration buffers (e.g. from a ``HeatmapHead`` or an uncalibrated
        export): T = 1, no threshold, no fingerprint.
        """
        super()._load_state_dict_pre_hook(state_dict, prefix, local_meta,
                                          *args, **kwargs)
        self._calibration_seen_by_loss = False
        if self._state_verified:
            # verify_loaded_state already checked the whole model's dict
            self._state_verified = False
        else:
            own = {k[len(prefix):]: v for k, v in state_dict.items()
                   if k.startswith(prefix)}
            check_finite_weights(own)
            self._verify_calibration(state_dict, prefix, own, '', self)
        for name in CALIBRATION_STATE_DEFAULTS:
            if prefix + name not in state_dict:
                state_dict[prefix + name] = self._uncalibrated(name)

    def _uncalibrated(self, name: str) -> Tensor:
        """A copy of calibration buffer ``name`` at its "none" value."""
        return getattr(self, name).detach().clone().fill_(
            CALIBRATION_STATE_DEFAULTS[name])

    def _verify_calibration(self, state_dict: dict, key_prefix: str,
                            owner_state: dict, owner_prefix: str,
                            owner: torch.nn.Module,
                            owner_keys: Optional[set] = None
                            ) -> Optional[set]:
        """Resets, in ``state_dict``, a calibration not fitted for the
        incoming weights, with one warning.

        The incoming calibration (any calibration buffer but the
        fingerprint away from its "none" value, or a seal of a calibration
        that kept them all there) is kept only when its
        ``calibration_fingerprint`` equals
        :func:`~mmchh.models.heads.calibration_buffers.calibration_seal` of the incoming
        calibration values and of
        :func:`~mmchh.models.heads.calibration_buffers.calibration_weights_fingerprint` of the incoming
        state of ``owner`` (the module the fingerprint was taken over; its
        keys in ``owner_state``, the head's under ``owner_prefix``). A
        fingerprint of the weights alone (sealed before seals bound the
        values) is kept with a warning.

        Returns:
            set | None: ``owner``'s state-dict keys, when they were needed
            (cached across heads of one model).
        """
        incoming = {
            n: owner_state.get(owner_prefix + n)
            for n in CALIBRATION_STATE_DEFAULTS
        }
        calibrated = [
            n for n, v in incoming.items()
            if n != 'calibration_fingerprint' and isinstance(v, Tensor)
            and not self._is_uncalibrated(n, v)
        ]
        fingerprint = incoming['calibration_fingerprint']
        sealed = isinstance(fingerprint, Tensor) and bool(fingerprint.any())
        if not calibrated and not sealed:
            return owner_keys
        if not sealed:
            reason = ('it carries no calibration fingerprint (written '
                      'before mmchh recorded one, or calibrated by hand), '
                      'so it cannot be matched to the weights')
        else:
            if owner_keys is None:
                owner_keys = set(owner.state_dict().keys())
            weights_hex = calibration_weights_fingerprint(
                {k: v for k, v in owner_state.items() if k in owner_keys})
            # a buffer missing from the file is filled with its default
            # after this check (older checkpoints), so it is sealed as such
            seal = calibration_seal(weights_hex, {
                n: v if isinstance(v, Tensor) else self._uncalibrated(n)
                for n, v in incoming.items() if n != 'calibration_fingerprint'
            })
            found = bytes(fingerprint.detach().cpu().to(
                torch.uint8).numpy().tobytes()).hex()
            if found == seal:
                return owner_keys
            if found == weights_hex:
                if not calibrated:
                    # a weights-only fingerprint of no calibration (written
                    # before seals bound the values) means nothing
                    state_dict[key_prefix + 'calibration_fingerprint'] = \
                        self._uncalibrated('calibration_fingerprint')
                    return owner_keys
                # sealed before seals bound the calibration values: the
                # weights are right, an edit of the values cannot be seen
                warnings.warn(
                    'calibration sealed by an older mmchh (its fingerprint '
                    'covers the weights, not the calibration values, so a '
                    'temperature or threshold edited since cannot be '
                    'detected); kept. Re-run tools/calibrate.py to seal it '
                    'fully.',
                    UserWarning,
                    stacklevel=2)
                return owner_keys
            reason = (f'it was sealed as {found[:16]}… but these weights '
                      f'and calibration values give {seal[:16]}… (the '
                      'weights changed after calibration, e.g. fine-tuning '
                      'or editing, or the calibration values were edited)')
        if not calibrated:
            calibrated = ['the sealed T = 1']
        warnings.warn(
            f'stale calibration ({", ".join(calibrated)}) ignored: '
            f'{reason}. The model is loaded UNCALIBRATED (T = 1, no flag '
            'threshold, no conformal regions); re-run tools/calibrate.py on '
            'these weights.',
            UserWarning,
            stacklevel=2)
        for name in CALIBRATION_STATE_DEFAULTS:
            state_dict[key_prefix + name] = self._uncalibrated(name)
        return owner_keys

    @staticmethod
    def _is_uncalibrated(name: str, value: Tensor) -> bool:
        """Whether calibration tensor ``value`` holds its "none" value."""
        default = CALIBRATION_STATE_DEFAULTS[name]
        value = value.detach()
        if isinstance(default, float) and np.isnan(default):
            return bool(torch.isnan(value).all())
        return bool((value == default).all())

    @property
    def has_calibration_state(self) -> bool:
        """Whether any calibration buffer (temperatures, threshold, ...)
        is set, i.e. differs from its uncalibrated value."""
        return any(
            not self._is_uncalibrated(n, getattr(self, n))
            for n in CALIBRATION_STATE_DEFAULTS
            if n != 'calibration_fingerprint')

    @property
    def is_calibrated(self) -> bool:
        """Whether any temperature differs from 1, or a calibration is
        sealed to these weights (``calibrate_model`` may keep T = 1 when
        cross-validation finds no fit that helps: still calibrated).

        A checkpoint whose calibration does not match its weights is loaded
        with T = 1 and no fingerprint (see :func:`verify_loaded_state`), so
        this is False for it.
        """
        return bool((self.log_temperature != 0).any()) or bool(
            self.calibration_fingerprint.any())

    @property
    def calibration_fingerprint_hex(self) -> Optional[str]:
        """The calibration's seal (hex; weights and calibration values,
        see :func:`~mmchh.models.heads.calibration_buffers.calibration_seal`), None when
        unset."""
        if not bool(self.calibration_fingerprint.any()):
            return None
        return bytes(self.calibration_fingerprint.detach().cpu().numpy()
                     .tobytes()).hex()

    def seal_calibration(self, weights_state: Optional[dict] = None) -> str:
        """Binds the current calibration to the given weights.

        Stores :func:`~mmchh.models.heads.calibration_buffers.calibration_seal` of
        :func:`~mmchh.models.heads.calibration_buffers.calibration_weights_fingerprint` of
        ``weights_state`` and of the calibration values in
        ``calibration_fingerprint``. Call it after fitting every calibration
        buffer (``calibrate_model`` does); a checkpoint whose weights or
        calibration values then hash differently is loaded uncalibrated.

        Args:
            weights_state (dict, optional): The state dict of the model that
                holds this head (``model.state_dict()`` of the pose
                estimator), or None for the head on its own.

        Returns:
            str: The weights fingerprint (hex), as reports name it.
        """
        state = self.state_dict() if weights_state is None else weights_state
        fingerprint = calibration_weights_fingerprint(state)
        seal = calibration_seal(fingerprint, self.calibration_values())
        with torch.no_grad():
            self.calibration_fingerprint.copy_(
                torch.frombuffer(bytearray.fromhex(seal), dtype=torch.uint8))
        return fingerprint

    def calibration_values(self) -> Dict[str, Tensor]:
        """The calibration buffers but the fingerprint, by name (what
        :func:`~mmchh.models.heads.calibration_buffers.calibration_seal` binds)."""
        return {
            n: getattr(self, n)
            for n in CALIBRATION_STATE_DEFAULTS
            if n != 'calibration_fingerprint'
        }

    def reset_calibration(self) -> None:
        """Back to uncalibrated: T = 1, no threshold, no fingerprint."""
        with torch.no_grad():
            for name in CALIBRATION_STATE_DEFAULTS:
                getattr(self, name).fill_(CALIBRATION_STATE_DEFAULTS[name])
        self._calibration_seen_by_loss = False

    def train(self, mode: bool = True):
        """As ``nn.Module.train``; entering training makes the next
        ``loss()`` look at the calibration state again."""
        if mode:
            self._calibration_seen_by_loss = False
        return super().train(mode)

    def _reset_calibration_for_training(self) -> None:
        """Called by :meth:`loss`: weights that train invalidate the
        calibration, so it is reset (once, with a log warning)."""
        if self._calibration_seen_by_loss:
            return
        self._calibration_seen_by_loss = True
        if self.has_calibration_state:
            self.reset_calibration()
            self._calibration_seen_by_loss = True
            print_log(
                'training from a calibrated checkpoint: calibration reset '
                '(T = 1, no flag threshold, no conformal regions); the '
                'TemperatureScalingHook or tools/calibrate.py refits it',
                logger='current',
                level=logging.WARNING)

    @property
    def temperature(self) -> Tensor:
        """Per-landmark temperatures T, shape (K,), always positive."""
        return self.log_temperature.exp()

    def set_temperature(self, temperature: Union[float, Tensor]) -> None:
        """Sets the temperatures (a scalar or one positive value per map)."""
        t = torch.as_tensor(
            temperature, dtype=self.log_temperature.dtype,
            device=self.log_temperature.device).expand_as(self.log_temperature)
        if not bool(torch.isfinite(t).all() and (t > 0).all()):
            raise ValueError(f'temperatures must be finite and > 0; got {t}')
        with torch.no_grad():
            self.log_temperature.copy_(t.log())
        self._calibration_seen_by_loss = False

    @property
    def has_conformal_regions(self) -> bool:
        """Whether conformal thresholds are fitted (none is NaN)."""
        return not bool(torch.isnan(self.conformal_threshold).any())

    def set_conformal_state(self, buffers: Dict[str, Tensor]) -> None:
        """Sets the conformal buffers, e.g. from
        :meth:`~mmchh.calibration.conformal.fitting.ConformalFit.head_buffers`.

        Args:
            buffers (dict): Every ``conformal_*`` buffer name -> a tensor
                of the buffer's shape, without NaN or infinity.

        Raises:
            ValueError: when a buffer is missing, of another shape or not
                finite.
        """
        names = [n for n in CALIBRATION_STATE_DEFAULTS
                 if n.startswith('conformal_')]
        missing = sorted(set(names) - set(buffers))
        if missing:
            raise ValueError(f'conformal state lacks {missing}')
        values = {}
        for name in names:
            own = getattr(self, name)
            value = torch.as_tensor(buffers[name]).to(own)
            if tuple(value.shape) != tuple(own.shape):
                raise ValueError(
                    f'{name} must have shape {tuple(own.shape)} (levels x '
                    f'landmarks of this head); got {tuple(value.shape)}')
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f'{name} must be finite; got {value}')
            values[name] = value
        with torch.no_grad():
            for name, value in values.items():
                getattr(self, name).copy_(value)
        self._calibration_seen_by_loss = False

    def set_flag_basis(self, low: float, high: float, num_images: int,
                       num_erroneous: int) -> None:
        """Records what the flag threshold was fitted on.

        Args:
            low (float): Lower end of its bootstrap interval (NaN: none).
            high (float): Upper end (NaN: none).
            num_images (int): Calibration images it was fitted on.
            num_erroneous (int): Erroneous landmarks among them.
        """
        values = dict(flag_threshold_low=low, flag_threshold_high=high,
                      flag_num_images=num_images,
                      flag_num_erroneous=num_erroneous)
        for name, value in values.items():
            if np.isinf(float(value)):
                raise ValueError(f'{name} must not be infinite')
        with torch.no_grad():
            for name, value in values.items():
                getattr(self, name).fill_(float(value))
        self._calibration_seen_by_loss = False

    def set_measurement_interval(self, scale: float, level: float,
                                 region_level: float,
                                 jitter: Optional[np.ndarray] = None) -> None:
        """Stores the measurement intervals' fit.

        Args:
            scale (float): The scale ``q`` (finite, >= 0), or NaN when the
                calibration split was too small for ``level`` (the fit
                gave infinity).
            level (float): The intervals' coverage level, in (0, 1).
            region_level (float): The conformal region level the landmarks
                are drawn within, in (0, 1).
            jitter (np.ndarray, optional): (K, 2, 2) PSD covariances
                (heatmap pixels^2) the draws are widened by; None: not
                fitted (NaN stored).
        """
        scale = float(scale)
        if np.isinf(scale) or scale < 0:
            raise ValueError(f'measurement interval scale must be finite '
                             f'and >= 0 (NaN: not finite); got {scale}')
        for name, value in (('level', level), ('region_level', region_level)):
            if not 0 < float(value) < 1:
                raise ValueError(f'{name} must be in (0, 1); got {value}')
        if jitter is not None:
            jitter = check_jitter(jitter, self.measurement_jitter.shape[0],
                                  'measurement jitter')
        with torch.no_grad():
            self.measurement_interval_scale.fill_(scale)
            self.measurement_interval_level.fill_(float(level))
            self.measurement_region_level.fill_(float(region_level))
            if jitter is None:
                self.measurement_jitter.fill_(float('nan'))
            else:
                self.measurement_jitter.copy_(torch.as_tensor(
                    jitter, dtype=self.measurement_jitter.dtype))
        self._calibration_seen_by_loss = False

    @property
    def flag_threshold_unit(self) -> Optional[str]:
        """The flag threshold's unit, ``'mm'`` or ``'px'`` (original-image
        pixels); None when no threshold is set."""
        if not bool(torch.isfinite(self.flag_threshold)):
            return None
        return 'mm' if bool(self.flag_threshold_in_mm) else 'px'

    def set_flag_threshold(self, threshold: float, unit: str = 'mm') -> None:
        """Sets the ERE threshold above which landmarks are flagged.

        Args:
            threshold (float): The ERE threshold, finite and >= 0.
            unit (str): Its unit: ``'mm'`` (flags ``keypoint_ere_mm``, needs
                the samples' ``spacing``) or ``'px'`` (original-image
                pixels, flags ``keypoint_ere_px``).
        """
        if unit not in ('mm', 'px'):
            raise ValueError(f"flag threshold unit must be 'mm' or 'px'; "
                             f'got {unit!r}')
        value = float(threshold)
        if not np.isfinite(value) or value < 0:
            raise ValueError(f'flag threshold must be a finite ERE >= 0 '
                             f'{unit}; got {threshold}')
        with torch.no_grad():
            self.flag_threshold.fill_(value)
            self.flag_threshold_in_mm.fill_(unit == 'mm')
        self._calibration_seen_by_loss = False


torch.nn.modules.module.register_module_module_registration_hook(
    _watch_heads)
