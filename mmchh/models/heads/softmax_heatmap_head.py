# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
import warnings
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.structures import InstanceData, PixelData
from mmpose.models.heads import HeatmapHead
from mmpose.models.utils.tta import flip_heatmaps
from mmpose.registry import MODELS
from mmpose.utils.typing import (ConfigType, Features, OptConfigType,
                                 OptSampleList, Predictions)
from torch import Tensor

from mmchh.codecs.utils import (CONFORMAL_SCORES, HeatmapFrame, ScoreRadius,
                                nll_at_index, probability_within_radius,
                                softmax_2d)
from mmchh.utils.errors import InputError
from .calibration_state import CalibrationStateMixin
from .plausibility_fields import PlausibilityFieldsMixin
from .uncertainty_fields import UncertaintyFieldsMixin

OptIntSeq = Optional[Sequence[int]]

_SHIFT_WARNED = []


def _warn_shift_heatmap_once() -> None:
    if not _SHIFT_WARNED:
        _SHIFT_WARNED.append(True)
        warnings.warn(
            'SoftmaxHeatmapHead ignores test_cfg.shift_heatmap=True: the '
            'SoftmaxHeatmap grid mirrors exactly under a horizontal flip, so '
            'shifting the flipped maps by one pixel (a fix for MSRAHeatmap\'s '
            'grid) would misplace them. Set shift_heatmap=False to silence '
            'this.', stacklevel=3)


def _finite_maps(logits: Tensor) -> Tensor:
    """(B, K) bool: every value of the (B, K, H, W) map is finite."""
    # a map's minimum and maximum are finite exactly when all its values
    # are (NaN propagates into both): one read of the maps, no (B, K, H, W)
    # bool mask (half the time of isfinite().all() at 19 x 640 x 800)
    low, high = torch.aminmax(logits.flatten(-2), dim=-1)
    return torch.isfinite(low) & torch.isfinite(high)


@MODELS.register_module()
class SoftmaxHeatmapHead(CalibrationStateMixin, UncertaintyFieldsMixin,
                         PlausibilityFieldsMixin, HeatmapHead):
    """Heatmap head whose maps are 2D-softmax distributions over pixels.

    A drop-in replacement for MMPose's ``HeatmapHead`` (same arguments and
    layers): ``forward`` returns one logit map per landmark; training
    minimises the NLL of the ground-truth pixel
    (:class:`~mmchh.models.losses.SoftmaxNLLLoss`); prediction divides the
    logits by a per-landmark temperature, applies the 2D softmax and decodes
    the mode, its probability and the Expected Radial Error (ERE).

    The temperatures are stored as ``log_temperature`` (a buffer, so T stays
    positive, is never touched by the training optimizer, and travels in
    every checkpoint's state dict). They start at T = 1 and are fitted after
    training by the temperature-scaling hook or tool.

    Flip test (``test_cfg=dict(flip_test=True)``, off by default, only for
    data with a meaningful ``flip_indices``): each pass is temperature-scaled
    and softmaxed separately, the flipped maps are flipped back (exactly, no
    ``shift_heatmap``: the codec's grid mirrors pixel ``u`` onto
    ``W - 1 - u``) and the two probability maps are averaged (a
    mixture). Averaging log-probabilities instead would be a normalised
    product of the two distributions, which is sharper than either and so
    over-confident with temperatures fitted without flipping.

    When the val/test pipeline encodes the ground truth as training does
    (``GenerateTarget`` with the head's codec, one-hot, gives
    ``gt_instance_labels.heatmap_indices``), predict also returns
    per-landmark calibration scalars computed on the device
    (:meth:`target_scores`): ``keypoint_nll`` (NLL of the ground-truth
    pixel) and ``keypoint_mode_hit`` (the mode is the ground-truth pixel).
    Every sample with an ``input_scale`` (set by ``TopdownAffine``) gets
    ``keypoint_ere_px`` (ERE in original-image pixels); with a ``spacing``
    meta key also ``keypoint_ere_mm`` (ERE in mm). Once a flagging
    threshold is set (``flag_threshold``, a buffer like the temperatures,
    in mm or image pixels as ``flag_threshold_in_mm`` says),
    ``keypoint_flagged`` = ERE in that unit > threshold; an mm threshold
    on samples without ``spacing`` is an error when they carry the ground
    truth (see :class:`~.uncertainty_fields.UncertaintyFieldsMixin`). Only
    O(K) numbers per image ever leave the device. The head never maps the
    ground truth itself.

    Invalid maps: a landmark whose logits are not all finite, or whose
    probability map is not a distribution (non-finite or no mass), has no
    answer. Its ``keypoint_valid`` is False, its keypoint, score, ERE and
    NLL are NaN (never a plausible (0, 0)), and it is flagged whenever
    flagging is on. The check is one min-and-max pass per map on the
    device.

    Conformal regions: once calibration has fitted split-conformal
    thresholds (``conformal_threshold``, one per level and landmark, see
    :mod:`mmchh.calibration.conformal.fitting`), predict also returns, per
    landmark and level, the area of the region (the map's pixels whose
    ``conformal_score`` is within the threshold) in original-image pixels
    (``keypoint_region_area``) and, with ``spacing``, in mm²
    (``keypoint_region_area_mm2``); with the ground truth encoded, whether
    the true pixel lies in it (``keypoint_in_region``); and the disc
    baseline's radius (``keypoint_disc_radius``, image pixels) for the
    metric (:meth:`conformal_fields`).

    Plausibility: once calibration has stored a configuration model (the
    ``configuration_*`` buffers), predict also returns how far each
    landmark lies from where the others place it (``keypoint_plausibility``
    in sigma, ``keypoint_plausibility_mm``), ``keypoint_implausible`` and
    the ERE flag alone (``keypoint_ere_flagged``); ``keypoint_flagged`` is
    then either (:class:`~.plausibility_fields.PlausibilityFieldsMixin`;
    ``test_cfg=dict(plausibility=False)`` skips it).

    Calibration state (``log_temperature``, ``flag_threshold`` and
    ``flag_threshold_in_mm``, the ``conformal_*`` buffers and ``calibration_fingerprint``, the buffers
    named in
    :data:`~mmchh.models.heads.calibration_buffers.CALIBRATION_STATE_DEFAULTS`) follows the
    weights: :meth:`seal_calibration` records the fingerprint of the
    weights it was fitted for; every load refuses non-finite tensors and
    loads a calibration whose fingerprint does not match the incoming
    weights as uncalibrated, with a warning (see
    :mod:`mmchh.models.heads.calibration_state`);
    and the first :meth:`loss` of a training run resets it.

    Args:
        in_channels, out_channels, deconv_out_channels, deconv_kernel_sizes,
        conv_out_channels, conv_kernel_sizes, final_layer, init_cfg: As in
            ``HeatmapHead``.
        loss (dict): Loss config. Defaults to ``SoftmaxNLLLoss``.
        decoder (dict): Codec config, normally ``SoftmaxHeatmap``; it must
            provide ``decode_tensors``.
        conformal_levels (Sequence[float]): Coverage levels ``1 - alpha``
            calibration fits conformal regions for. Defaults to (0.9,).
        conformal_score (str): The score the regions use, ``'mass'`` (the
            highest-density set, default) or ``'density'`` (one probability
            threshold); see :mod:`mmchh.codecs.utils.conformal_regions`.

    Note:
        - logits: (B, K, H, W)
        - target ``heatmap_indices``: (B, K) flat pixel indices
        - ``pred_instances``: ``keypoints`` (1, K, 2), ``keypoint_scores``
          (1, K) = probability within a radius of the prediction
          (:meth:`radius_scores`), ``keypoint_mode_prob`` (1, K) =
          probability at the mode, ``keypoint_ere`` (1, K) = ERE in
          model-input pixels, ``keypoint_valid`` (1, K) bool;
          ``keypoint_ere_px`` / ``keypoint_ere_mm`` / ``keypoint_flagged``
          (1, K); ``keypoint_ere_flagged``, ``keypoint_plausibility``,
          ``keypoint_plausibility_mm``, ``keypoint_implausible`` (1, K);
          with conformal regions ``keypoint_region_area``,
          ``keypoint_region_area_mm2``, ``keypoint_in_region`` and
          ``keypoint_disc_radius`` (1, K, L) and ``keypoint_region_level``
          (1, L).
        - ``conformal_threshold``, ``conformal_disc_radius``: (L, K).
        - ``calibration_fingerprint``: (32,) uint8, a SHA-256 digest.
    """

    def __init__(self,
                 in_channels: Union[int, Sequence[int]],
                 out_channels: int,
                 deconv_out_channels: OptIntSeq = (256, 256, 256),
                 deconv_kernel_sizes: OptIntSeq = (4, 4, 4),
                 conv_out_channels: OptIntSeq = None,
                 conv_kernel_sizes: OptIntSeq = None,
                 final_layer: dict = dict(kernel_size=1),
                 loss: ConfigType = dict(type='SoftmaxNLLLoss'),
                 decoder: OptConfigType = None,
                 init_cfg: OptConfigType = None,
                 conformal_levels: Sequence[float] = (0.9, ),
                 conformal_score: str = 'mass'):
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            deconv_out_channels=deconv_out_channels,
            deconv_kernel_sizes=deconv_kernel_sizes,
            conv_out_channels=conv_out_channels,
            conv_kernel_sizes=conv_kernel_sizes,
            final_layer=final_layer,
            loss=loss,
            decoder=decoder,
            init_cfg=init_cfg)
        levels = tuple(float(level) for level in conformal_levels)
        if not levels or not all(0 < level < 1 for level in levels):
            raise InputError(
                'SoftmaxHeatmapHead: conformal_levels must be one or more '
                f'coverage levels in (0, 1); got {conformal_levels!r}')
        if conformal_score not in CONFORMAL_SCORES:
            raise InputError(
                'SoftmaxHeatmapHead: conformal_score must be one of '
                f'{CONFORMAL_SCORES}; got {conformal_score!r}')
        self.conformal_levels = levels
        self.conformal_score = conformal_score
        self._init_calibration_state(out_channels, len(levels))
        # the grids whose targets were checked against the decoder, by
        # stage ('train', 'test'): one host sync per stage, not per batch
        self._grids_checked = set()

    def probabilities(self, logits: Tensor) -> Tensor:
        """Temperature-scaled 2D softmax of (B, K, H, W) logits."""
        return softmax_2d(logits, self.temperature)

    def _forward_probabilities(
        self, feats: Features, batch_data_samples: OptSampleList,
        test_cfg: ConfigType
    ) -> Tuple[Optional[Tensor], Tensor, Tensor, Optional[Tensor]]:
        """Scaled logits, probability maps and map validity of one batch.

        Returns:
            tuple: ``scaled`` (B, K, H, W), the logits divided by the
            temperatures, None with flip test (the maps are then a mixture
            of two passes and have no single logit map); ``probs``
            (B, K, H, W); ``valid`` (B, K) bool, False where a logit is not
            finite; ``logits`` (B, K, H, W), the network's own logits, only
            with ``output_logits`` (else None).
        """
        if not test_cfg.get('flip_test', False):
            logits = self.forward(feats)
            valid = _finite_maps(logits)
            keep = test_cfg.get('output_logits', False)
            dtype = torch.promote_types(logits.dtype, torch.float32)
            temperature = self.temperature.to(
                device=logits.device, dtype=dtype)[:, None, None]
            if keep or torch.is_grad_enabled() or logits.dtype != dtype:
                scaled = logits.to(dtype) / temperature
            else:
                # nothing reads the raw logits after this: dividing them in
                # place saves a copy of the maps (the same quotient)
                scaled = logits.div_(temperature)
            return scaled, softmax_2d(scaled), valid, logits if keep else None
        assert isinstance(feats, list) and len(feats) == 2
        if test_cfg.get('output_logits', False):
            raise ValueError('SoftmaxHeatmapHead: output_logits cannot be '
                             'combined with flip_test (the averaged maps '
                             'have no logits)')
        if test_cfg.get('shift_heatmap', False):
            _warn_shift_heatmap_once()
        flip_indices = batch_data_samples[0].metainfo['flip_indices']
        logits = self.forward(feats[0])
        logits_flip = self.forward(feats[1])
        # SoftmaxHeatmap's pixels mirror exactly (pixel u <-> W-1-u), so
        # the flipped maps are flipped back without a shift
        probs_flip = flip_heatmaps(
            self.probabilities(logits_flip),
            flip_mode='heatmap',
            flip_indices=flip_indices,
            shift_heatmap=False)
        probs = (self.probabilities(logits) + probs_flip) * 0.5
        valid = _finite_maps(logits) & _finite_maps(logits_flip)[:,
                                                                 flip_indices]
        return None, probs, valid, None

    def target_scores(self, logits: Optional[Tensor], probs: Tensor,
                      valid: Tensor,
                      batch_data_samples: OptSampleList) -> dict:
        """How the predicted distributions score the ground truth.

        The ground truth arrives as in training: ``GenerateTarget`` in the
        val/test pipeline encodes it into ``gt_instance_labels`` with a
        one-hot codec on the model's grid (``heatmap_indices``,
        ``keypoint_weights``). Scoring happens here, once, because only the
        head holds the dense maps: the NLL of the target pixel is a
        log-sum-exp over each map on the device, and only O(K) numbers per
        image leave it (metrics never see a heatmap).

        Args:
            logits (Tensor | None): (B, K, H, W) logits divided by the
                temperatures, or None when the maps are a flip-test mixture
                (the NLL is then read from ``probs``).
            probs (Tensor): (B, K, H, W) probability maps.
            valid (Tensor): (B, K) bool map validity.
            batch_data_samples (list[PoseDataSample]): The batch.

        Returns:
            dict: ``keypoint_nll`` (B, K), NaN for invalid maps;
            ``keypoint_mode_hit`` (B, K) bool, the mode is the target pixel;
            ``keypoint_target_weight`` (B, K). Empty when a sample carries
            no ``heatmap_indices`` (no ground truth, e.g. inference).

        Raises:
            InputError: when the indices are not one-hot (an annotator
                codec in the val/test pipeline) or belong to another grid.
        """
        truth = self.target_indices(probs, batch_data_samples)
        if truth is None:
            return {}
        index, weight = truth
        if logits is None:  # the NLL of the mixture distribution
            nll = -probs.flatten(-2).gather(-1, index[..., None])[
                ..., 0].clamp_min(torch.finfo(probs.dtype).tiny).log()
        else:
            nll = nll_at_index(logits, index)
        return dict(
            keypoint_nll=torch.where(valid, nll,
                                     torch.full_like(nll, float('nan'))),
            keypoint_mode_hit=(probs.flatten(-2).argmax(-1) == index)
            & valid,
            keypoint_target_weight=weight)

    def target_indices(self, probs: Tensor,
                       batch_data_samples: OptSampleList
                       ) -> Optional[Tuple[Tensor, Tensor]]:
        """The encoded ground truth of a predicted batch, checked.

        Args:
            probs (Tensor): (B, K, H, W) probability maps (their device and
                grid).
            batch_data_samples (list[PoseDataSample]): The batch.

        Returns:
            tuple | None: ``heatmap_indices`` (B, K) flat target pixels and
            ``keypoint_weights`` (B, K), on the maps' device; None when a
            sample carries no ``heatmap_indices`` (e.g. inference).

        Raises:
            InputError: when the indices are not one-hot or belong to
                another grid (:meth:`check_target_grid`).
        """
        labels = [d.get('gt_instance_labels', None)
                  for d in batch_data_samples or []]
        if not labels or any(lab is None or 'heatmap_indices' not in lab
                             for lab in labels):
            return None
        index = torch.cat([lab.heatmap_indices for lab in labels]).to(
            probs.device)
        if index.ndim != 2:
            raise InputError(
                'SoftmaxHeatmapHead: predictions are scored against the '
                'ground truth, so the val/test pipeline\'s GenerateTarget '
                'must encode one-hot targets (annotator_targets=False); got '
                f'target indices of shape {tuple(index.shape)}')
        self.check_target_grid(probs, batch_data_samples, stage='test')
        weight = torch.cat([lab.keypoint_weights for lab in labels]).to(
            probs.device)
        return index, weight

    def radius_scores(self, probs: Tensor, keypoints: Tensor,
                      batch_data_samples: OptSampleList,
                      test_cfg: ConfigType) -> Tensor:
        """The calibrated probability that each landmark lies within a
        radius of its prediction: MMPose's ``keypoint_scores``.

        The radius is ``test_cfg.score_radius_mm`` (2 mm) for a sample with
        a ``spacing`` (and ``input_scale``), else
        ``test_cfg.score_box_fraction`` (5 %) of the model's box along each
        axis (:class:`~mmchh.codecs.utils.ScoreRadius`).

        Args:
            probs (Tensor): (B, K, H, W) probability maps.
            keypoints (Tensor): (B, K, 2) predictions in model-input pixels,
                NaN for invalid maps (their score is NaN).
            batch_data_samples (list[PoseDataSample]): The batch.
            test_cfg (dict): The radius settings.

        Returns:
            Tensor: (B, K) probabilities.
        """
        frames = [HeatmapFrame.from_codec(self.decoder, s.metainfo)
                  for s in batch_data_samples or []]
        mm = [f.heatmap_pixel_mm() if f.input_scale is not None else None
              for f in frames] or [None] * len(probs)
        radius, size = ScoreRadius.from_test_cfg(test_cfg).per_sample(
            mm, (probs.shape[-1], probs.shape[-2]))
        centre = self.decoder.grid_frame.input_to_heatmap(keypoints)
        # a float32 map sums to 1 within rounding: a probability, at most 1
        return probability_within_radius(
            probs, centre,
            torch.as_tensor(radius, device=probs.device)[:, None],
            torch.as_tensor(size, device=probs.device)[:, None, :]).clamp(
                max=1.0)

    def predict(self,
                feats: Features,
                batch_data_samples: OptSampleList,
                test_cfg: ConfigType = {}) -> Predictions:
        """Predicts keypoints, their scores, mode probabilities and ERE.

        Args:
            feats (Tuple[Tensor] | List[Tuple[Tensor]]): Features, or a pair
                (original, flipped) for flip test.
            batch_data_samples (List[PoseDataSample]): The batch samples.
            test_cfg (dict): ``flip_test`` (bool); ``score_radius_mm``,
                ``score_box_fraction`` (what ``keypoint_scores`` count, see
                :meth:`radius_scores`); ``plausibility`` (bool,
                default True: the plausibility fields once a configuration
                model is stored); ``plausibility_decode`` (bool, default
                False: also ``keypoint_constrained``, see
                :class:`~.plausibility_fields.PlausibilityFieldsMixin`);
                ``output_heatmaps``
                (bool: also return the probability maps as
                ``PixelData(heatmaps=...)``); ``output_logits`` (bool: also
                the logits, ``PixelData(logits=...)``, for temperature
                fitting; not with ``flip_test``). Both stay on the device.

        Returns:
            list[InstanceData] | tuple: Per sample ``keypoints``,
            ``keypoint_scores`` (probability within a radius),
            ``keypoint_mode_prob``, ``keypoint_ere`` and ``keypoint_valid``
            (NaN values where it is False), plus the fields of
            :meth:`_physical_fields`, :meth:`target_scores`,
            :meth:`conformal_fields` and :meth:`plausibility_fields` when
            the samples and the calibration allow them; with
            ``output_heatmaps`` / ``output_logits`` also a list of
            ``PixelData``.
        """
        scaled, probs, valid, logits = self._forward_probabilities(
            feats, batch_data_samples, test_cfg)
        # a map with a non-finite logit, or whose probabilities are not a
        # distribution, has no answer: NaN keypoint, score and ERE
        keypoints, scores, ere, valid = self.decoder.decode_tensors(
            probs, valid=valid, return_valid=True)
        fields = dict(
            keypoints=keypoints,
            keypoint_scores=self.radius_scores(probs, keypoints,
                                               batch_data_samples, test_cfg),
            keypoint_mode_prob=scores,
            keypoint_ere=ere,
            keypoint_valid=valid)
        fields.update(
            self._physical_fields(probs, ere, valid, batch_data_samples))
        fields.update(
            self.target_scores(scaled, probs, valid, batch_data_samples))
        fields.update(
            self.conformal_fields(probs, valid, batch_data_samples))
        fields.update(self.plausibility_fields(
            keypoints, valid, fields.get('keypoint_flagged'),
            batch_data_samples, test_cfg, probs=probs))
        host = {
            k: v[:, None].detach().cpu().numpy()
            for k, v in fields.items()
        }
        host['keypoints'] = host['keypoints'].astype(np.float32)
        preds = [
            InstanceData(**{k: v[i]
                            for k, v in host.items()})
            for i in range(len(probs))
        ]
        maps = {}
        if test_cfg.get('output_heatmaps', False):
            maps['heatmaps'] = probs.detach()
        if test_cfg.get('output_logits', False):
            maps['logits'] = logits.detach()
        if maps:
            return preds, [
                PixelData(**{k: v[i]
                             for k, v in maps.items()})
                for i in range(len(probs))
            ]
        return preds

    def check_target_grid(self,
                          maps: Tensor,
                          batch_data_samples: OptSampleList,
                          stage: str = 'train') -> None:
        """Raises unless the encoded targets fit this head's heatmap grid.

        The targets are encoded by ``GenerateTarget(encoder=...)`` in the
        pipeline, the predictions decoded by ``model.head.decoder``; when
        the two codecs differ, the indices address pixels of another grid
        and training runs without an error to a useless model (or test
        scores the wrong pixels). Compares the maps' (H, W) with the
        decoder's heatmap size and, when the codec emits it
        (``SoftmaxHeatmap`` does), each sample's ``heatmap_grid`` label
        ``(W, H, input w, input h)`` with the decoder's. The label
        comparison (one (B, 4) compare, one host sync) runs until a batch
        of the stage carrying the label has passed once: a pipeline's codec
        does not change between steps.

        Args:
            maps (Tensor): The head's logits or probabilities, (B, K, H, W).
            batch_data_samples (list[PoseDataSample]): The batch.
            stage (str): ``'train'`` (the train pipeline's targets) or
                ``'test'`` (the val/test pipeline's ground truth).

        Raises:
            InputError: naming both grids.
        """
        pipeline = 'train_pipeline' if stage == 'train' else \
            'the val/test pipeline'
        fix = (f'GenerateTarget(encoder=...) in {pipeline} must equal '
               'model.head.decoder')
        decoder = getattr(self, 'decoder', None)
        h, w = maps.shape[-2:]
        if decoder is not None and hasattr(decoder, 'heatmap_size') and \
                tuple(decoder.heatmap_size) != (w, h):
            raise InputError(
                f'SoftmaxHeatmapHead: the network outputs {w}x{h} (WxH) '
                f'heatmaps but model.head.decoder has heatmap_size='
                f'{tuple(decoder.heatmap_size)}; make the decoder\'s '
                'heatmap_size the network\'s output size (and ' + fix + ')')
        if stage in self._grids_checked:
            return
        grids = [
            d.gt_instance_labels.heatmap_grid for d in batch_data_samples
            if 'heatmap_grid' in d.gt_instance_labels
        ]
        if not grids or decoder is None or not hasattr(decoder,
                                                       'input_size'):
            return
        grid = torch.cat([torch.as_tensor(g).reshape(-1, 4) for g in grids])
        expected = tuple(decoder.heatmap_size) + tuple(decoder.input_size)
        ok = grid == torch.as_tensor(expected, dtype=grid.dtype,
                                     device=grid.device)
        if bool(ok.all()):
            self._grids_checked.add(stage)
            return
        bad = grid[~ok.all(-1)][0].tolist()
        targets = 'training targets' if stage == 'train' else \
            'ground-truth targets'
        raise InputError(
            f'SoftmaxHeatmapHead: the {targets} were encoded for a '
            f'{bad[0]}x{bad[1]} heatmap of a {bad[2]}x{bad[3]} input (WxH), '
            f'but model.head.decoder predicts a {expected[0]}x{expected[1]} '
            f'heatmap of a {expected[2]}x{expected[3]} input: {fix} '
            '(same input_size and heatmap_size)')

    def loss(self,
             feats: Tuple[Tensor],
             batch_data_samples: OptSampleList,
             train_cfg: ConfigType = {}) -> dict:
        """Computes the NLL loss from sparse targets.

        With an annotator-target codec, ``heatmap_indices`` is (B, K, A)
        and ``heatmap_index_weights`` holds the target masses; the loss is
        then the cross-entropy against that distribution.

        ``acc_pose`` (with ``compute_acc``, default on) is the fraction of
        counted landmarks whose mode is exactly a target pixel, computed
        on the device from O(B * K) indices instead of copying maps to the
        CPU as ``HeatmapHead`` does.
        """
        self._reset_calibration_for_training()
        logits = self.forward(feats)
        self.check_target_grid(logits, batch_data_samples)
        target = torch.cat([
            d.gt_instance_labels.heatmap_indices for d in batch_data_samples
        ]).to(logits.device)
        weights = torch.cat([
            d.gt_instance_labels.keypoint_weights for d in batch_data_samples
        ]).to(logits.device)

        mass = None
        if target.ndim == 3:  # a target distribution (e.g. per annotator)
            mass = torch.cat([
                d.gt_instance_labels.heatmap_index_weights
                for d in batch_data_samples
            ]).to(logits.device)
        losses = dict(
            loss_kpt=self.loss_module(logits, target, weights, mass)
            if mass is not None else self.loss_module(logits, target, weights))
        if train_cfg.get('compute_acc', True):
            with torch.no_grad():
                mode_index = logits.detach().flatten(-2).argmax(dim=-1)
                if mass is not None:
                    # the mode sits on a pixel that carries target mass
                    hit = ((mode_index[..., None] == target) &
                           (mass > 0)).any(-1).float()
                else:
                    hit = (mode_index == target).float()
                counted = (weights > 0).float()
                losses['acc_pose'] = (hit * counted).sum() / counted.sum(
                ).clamp_min(1.0)
        return losses
