# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The anatomical plausibility of each predicted landmark: where the other
landmarks say it must be.

ERE sees how spread a landmark's own map is; it cannot see a map that is
sharp in the wrong place (a confident second peak far away). The other
landmarks can: calibration fits a configuration model on the training
split's ground truth and a threshold on the calibration split's correct
landmarks (:mod:`mmchh.calibration.configuration`), and stores both
in the head's calibration state (the ``configuration_*`` buffers, sealed
with the temperatures). :class:`PlausibilityFieldsMixin` scores every
predicted configuration against it
(:func:`~mmchh.codecs.utils.configuration_model.plausibility_scores`) and
adds the result to the head's predictions.

The score (sigma) is invariant to a similarity of the whole configuration,
so a model fitted in mm scores points in image pixels alike (with square
pixels); the points are in mm whenever the sample has a ``spacing`` (the
unit the training shapes were taken in), so the residual's length is
reported in mm then.

With ``test_cfg=dict(plausibility_decode=True)`` an implausible landmark
also gets a second answer beside its map's mode: the mode of its map times
the Gaussian the other landmarks give it
(:mod:`~mmchh.codecs.utils.constrained_decode`), never replacing the
prediction. Off by default: see docs/method.md for what it was measured to
do.
"""
from typing import List, Optional

import numpy as np
import torch
from mmpose.utils.typing import ConfigType, OptSampleList
from torch import Tensor

from mmchh.codecs.utils.configuration_model import (ConfigurationModel,
                                                    expected_positions,
                                                    plausibility_scores)
from mmchh.codecs.utils.constrained_decode import (constrained_mode,
                                                   gaussian_log_prior,
                                                   prior_on_heatmap)
from mmchh.codecs.utils.frame import HeatmapFrame

__all__ = ['PlausibilityFieldsMixin']

#: The head's buffers holding the configuration model, in the order of
#: :class:`~mmchh.codecs.utils.configuration_model.ConfigurationModel`'s
#: fields.
MODEL_BUFFERS = ('configuration_mean', 'configuration_offset',
                 'configuration_cov', 'configuration_num_shapes')

#: Maps the constrained decode handles at once.
DECODE_CHUNK = 8


def _check_scalar(name: str, value: float, low: float = 0.0,
                  high: Optional[float] = None) -> float:
    """``value`` as a float: NaN (not set) or finite within the bounds."""
    value = float(value)
    if np.isnan(value):
        return value
    if not np.isfinite(value) or value < low or (high is not None
                                                 and value >= high):
        bound = f'in [{low}, {high})' if high is not None else f'>= {low}'
        raise ValueError(f'{name} must be NaN (not set) or finite and '
                         f'{bound}; got {value}')
    return value


class PlausibilityFieldsMixin:
    """The configuration model of a head, and the plausibility fields it
    predicts.

    Mixed into a heatmap head with the calibration state of
    :class:`~mmchh.models.heads.calibration_state.CalibrationStateMixin`
    (the ``configuration_*`` buffers) and the frames of
    :class:`~mmchh.models.heads.uncertainty_fields.UncertaintyFieldsMixin`
    (``_frames``).

    Fields, per sample, once a configuration model is stored and unless
    the config's ``test_cfg`` sets ``plausibility=False``:

    - ``keypoint_plausibility``: sigma, the Mahalanobis distance of each
      landmark from where the others place it (NaN: not scored, e.g. an
      invalid map or too few landmarks);
    - ``keypoint_plausibility_mm``: that residual's length in mm, when
      every sample of the batch has a ``spacing``;
    - ``keypoint_implausible``: sigma > ``configuration_threshold``, when a
      threshold is stored (NaN sigma: False);
    - ``keypoint_flagged`` becomes the ERE flag OR implausible (an invalid
      map stays flagged); with a threshold but no ERE threshold at all,
      implausible OR invalid. ``keypoint_ere_flagged`` keeps the ERE flag
      alone whenever there is one, with or without a configuration model;
    - ``keypoint_constrained``: with ``test_cfg=dict(plausibility_decode=
      True)`` and a threshold, each implausible landmark's
      plausibility-constrained position in original-image pixels (the mode
      of its map times the Gaussian the other landmarks give it), NaN for
      every other landmark; beside ``keypoints``, never replacing them.

    Note:
        - keypoints: (B, K, 2) model-input pixels (the decoder's output);
          valid: (B, K) bool; probs: (B, K, H, W)
        - every field above: (B, K); ``keypoint_constrained``: (B, K, 2)
        - ``configuration_mean``, ``configuration_offset``: (K, 2);
          ``configuration_cov``: (K, 2, 2); ``configuration_num_shapes``:
          (K,); ``configuration_threshold``, ``configuration_alpha``,
          ``configuration_num_scores``: ()
    """

    @property
    def configuration_model(self) -> Optional[ConfigurationModel]:
        """The stored configuration model (float64 arrays), None when not
        fitted."""
        if bool(torch.isnan(self.configuration_mean).all()):
            return None
        mean, offset, cov, counts = (
            getattr(self, name).detach().cpu().double().numpy()
            for name in MODEL_BUFFERS)
        return ConfigurationModel(
            mean=mean, offset=offset, cov=cov,
            num_shapes=np.nan_to_num(counts).astype(np.int64))

    @property
    def plausibility_threshold(self) -> Optional[float]:
        """The stored plausibility threshold (sigma), None when unset."""
        value = float(self.configuration_threshold)
        return value if np.isfinite(value) else None

    def set_configuration_model(self,
                                model: Optional[ConfigurationModel],
                                threshold: float = float('nan'),
                                alpha: float = float('nan'),
                                num_scores: float = float('nan')) -> None:
        """Stores a configuration model and its plausibility threshold.

        Args:
            model (ConfigurationModel | None): Fitted on ground-truth
                shapes of this head's K landmarks; None clears the model
                and the threshold.
            threshold (float): Sigma above which a landmark is
                implausible; NaN: scores only, nothing flagged.
            alpha (float): The level the threshold was fitted at, in
                (0, 1); NaN: none.
            num_scores (float): The correct calibration landmarks it was
                fitted on; NaN: none.

        Raises:
            ValueError: for a model of another K, an infinite parameter, a
                threshold without a model, or a number out of its range.
        """
        threshold = _check_scalar('configuration threshold', threshold)
        alpha = _check_scalar('configuration alpha', alpha, high=1.0)
        num_scores = _check_scalar('configuration num_scores', num_scores)
        if model is None:
            if not np.isnan(threshold):
                raise ValueError('a configuration threshold needs a model')
            values = {n: float('nan') for n in MODEL_BUFFERS}
        else:
            values = dict(zip(MODEL_BUFFERS, (model.mean, model.offset,
                                              model.cov, model.num_shapes)))
        tensors = {}
        for name, value in values.items():
            own = getattr(self, name)
            value = torch.as_tensor(np.asarray(value, np.float64)).to(own)
            if value.ndim and tuple(value.shape) != tuple(own.shape):
                raise ValueError(
                    f'{name} must have shape {tuple(own.shape)} (this '
                    f'head\'s landmarks); got {tuple(value.shape)}')
            if bool(torch.isinf(value).any()):
                raise ValueError(f'{name} must not be infinite')
            tensors[name] = value.expand_as(own)
        with torch.no_grad():
            for name, value in tensors.items():
                getattr(self, name).copy_(value)
            self.configuration_threshold.fill_(threshold)
            self.configuration_alpha.fill_(alpha)
            self.configuration_num_scores.fill_(num_scores)
        self._calibration_seen_by_loss = False

    def plausibility_fields(self, keypoints: Tensor, valid: Tensor,
                            ere_flagged: Optional[Tensor],
                            batch_data_samples: OptSampleList,
                            test_cfg: ConfigType = {},
                            probs: Optional[Tensor] = None) -> dict:
        """The plausibility fields of one predicted batch (see the class
        docstring).

        Args:
            keypoints (Tensor): (B, K, 2) decoded keypoints, model-input
                pixels (NaN for invalid maps).
            valid (Tensor): (B, K) bool map validity.
            ere_flagged (Tensor | None): (B, K) the ERE flag
                (``keypoint_flagged`` of ``_physical_fields``), None when
                the batch has none.
            batch_data_samples (list[PoseDataSample]): The batch; their
                ``input_center``/``input_scale`` place the keypoints in the
                image, ``spacing`` in mm.
            test_cfg (dict): ``plausibility`` (bool, default True);
                ``plausibility_decode`` (bool, default False: the
                constrained decode of the implausible landmarks).
            probs (Tensor, optional): (B, K, H, W) the probability maps the
                keypoints were decoded from; the constrained decode needs
                them.

        Returns:
            dict: ``keypoint_ere_flagged`` whenever ``ere_flagged`` is
            given; the rest only with a stored model and samples that carry
            their box (``input_center``, ``input_scale``).
        """
        fields = {}
        if ere_flagged is not None:
            fields['keypoint_ere_flagged'] = ere_flagged
        if not test_cfg.get('plausibility', True) or not batch_data_samples:
            return fields
        model = self.configuration_model
        frames = self._frames(batch_data_samples)
        if model is None or any(f.input_center is None or f.input_scale is
                                None for f in frames):
            return fields
        points = keypoints.detach().to('cpu', torch.float64).numpy()
        sigma = np.full(points.shape[:2], np.nan)
        distance = np.full(points.shape[:2], np.nan)
        # a new array: ``points`` may share the keypoints' memory
        units = np.full(points.shape, np.nan)
        for i, frame in enumerate(frames):
            # in the unit of the training shapes: mm with a spacing
            image = frame.input_to_image(points[i])
            if frame.spacing is not None:
                image = frame.image_to_mm(image)
            units[i] = image
            sigma[i], distance[i] = plausibility_scores(image, model)
        device = keypoints.device
        fields['keypoint_plausibility'] = torch.as_tensor(
            sigma, dtype=torch.float32, device=device)
        if all(f.spacing is not None for f in frames):
            fields['keypoint_plausibility_mm'] = torch.as_tensor(
                distance, dtype=torch.float32, device=device)
        if self.plausibility_threshold is None:
            return fields
        # the reported (float32) sigma against the stored threshold, so
        # that the flag and the field never disagree; NaN is not > anything
        implausible = fields['keypoint_plausibility'] > \
            self.configuration_threshold.to(device)
        fields['keypoint_implausible'] = implausible
        if test_cfg.get('plausibility_decode', False) and probs is not None:
            fields['keypoint_constrained'] = self.constrained_keypoints(
                probs, units, implausible.cpu().numpy(), frames, model)
        if ere_flagged is not None:
            fields['keypoint_flagged'] = ere_flagged | implausible
        elif not bool(torch.isfinite(self.flag_threshold)):
            # no ERE flag at all: implausible, and every invalid map
            fields['keypoint_flagged'] = implausible | ~valid
        # an ERE threshold the samples lack the unit of: flagging stays
        # unavailable (no keypoint_flagged), as without a configuration
        return fields

    def constrained_keypoints(self, probs: Tensor, points: np.ndarray,
                              decode: np.ndarray,
                              frames: List[HeatmapFrame],
                              model: ConfigurationModel) -> Tensor:
        """The plausibility-constrained positions of the landmarks in
        ``decode``.

        Per sample with one: :func:`~mmchh.codecs.utils.configuration_model.
        expected_positions` of its configuration (each landmark placed by
        the others, its own position left out), that Gaussian mapped onto
        the heatmap grid through the sample's frame, and the mode of the
        map times it (refined as the decoder refines its modes).

        Args:
            probs (Tensor): (B, K, H, W) probability maps.
            points (np.ndarray): (B, K, 2) the predicted configurations in
                the configuration model's units (mm where the sample has a
                spacing, else image pixels).
            decode (np.ndarray): (B, K) bool, the landmarks to decode.
            frames (list[HeatmapFrame]): The samples' frames.
            model (ConfigurationModel): The stored model.

        Returns:
            Tensor: (B, K, 2) float32 original-image pixels on the maps'
            device; NaN where not in ``decode`` or not decodable (the others
            cannot place it, or the product has no maximum).
        """
        out = np.full(points.shape, np.nan)
        rows, cols = np.nonzero(decode)
        if not len(rows):
            return torch.as_tensor(out, dtype=torch.float32,
                                   device=probs.device)
        center = np.full((len(rows), 2), np.nan)
        cov = np.full((len(rows), 2, 2), np.nan)
        for i in np.unique(rows):
            at = rows == i
            c, s = expected_positions(points[i], model)
            center[at], cov[at] = prior_on_heatmap(
                c[cols[at]], s[cols[at]], frames[i],
                frames[i].spacing is not None)
        # the batch's maps decoded together, a few at a time: each takes
        # several float64 copies of a map (at full resolution 37 MB each)
        height, width = probs.shape[-2:]
        radius = int(getattr(self.decoder, 'subpixel_radius', 0) or 0)
        uv = np.concatenate([
            constrained_mode(
                probs[torch.as_tensor(rows[j:j + DECODE_CHUNK]),
                      torch.as_tensor(cols[j:j + DECODE_CHUNK])],
                gaussian_log_prior(center[j:j + DECODE_CHUNK],
                                   cov[j:j + DECODE_CHUNK], height, width,
                                   probs.device), radius).cpu().numpy()
            for j in range(0, len(rows), DECODE_CHUNK)
        ])
        for i in np.unique(rows):
            at = rows == i
            out[i, cols[at]] = frames[i].heatmap_to_image(uv[at])
        return torch.as_tensor(out, dtype=torch.float32, device=probs.device)
