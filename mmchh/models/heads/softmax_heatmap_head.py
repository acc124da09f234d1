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

from mmchh.evaluation.functional import (expected_radial_error, nll_at_index,
                                         softmax_2d)

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


@MODELS.register_module()
class SoftmaxHeatmapHead(HeatmapHead):
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

    When the data samples carry ground truth (validation and test), predict
    also returns per-landmark calibration scalars computed on the device:
    ``keypoint_nll`` (NLL of the ground-truth pixel) and
    ``keypoint_mode_hit`` (the mode is the ground-truth pixel); with a
    ``spacing`` meta key, ``keypoint_ere_mm`` (ERE in mm of the original
    image) and, once a flagging threshold is set (``flag_threshold``, mm,
    a buffer like the temperatures), ``keypoint_flagged`` = ERE > threshold.
    Only O(K) numbers per image ever leave the device.

    Args:
        in_channels, out_channels, deconv_out_channels, deconv_kernel_sizes,
        conv_out_channels, conv_kernel_sizes, final_layer, init_cfg: As in
            ``HeatmapHead``.
        loss (dict): Loss config. Defaults to ``SoftmaxNLLLoss``.
        decoder (dict): Codec config, normally ``SoftmaxHeatmap``; it must
            provide ``decode_tensors``.

    Note:
        - logits: (B, K, H, W)
        - target ``heatmap_indices``: (B, K) flat pixel indices
        - ``pred_instances``: ``keypoints`` (1, K, 2), ``keypoint_scores``
          (1, K) = probability at the mode, ``keypoint_ere`` (1, K) = ERE in
          model-input pixels.
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
                 init_cfg: OptConfigType = None):
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
        self.register_buffer('log_temperature', torch.zeros(out_channels))
        # ERE threshold (mm) above which a landmark is flagged; NaN = unset
        self.register_buffer('flag_threshold', torch.tensor(float('nan')))

    def _load_state_dict_pre_hook(self, state_dict, prefix, local_meta, *args,
                                  **kwargs):
        """Also accepts state dicts without calibration buffers (e.g. from
        a ``HeatmapHead`` or an uncalibrated export): T = 1, no threshold."""
        super()._load_state_dict_pre_hook(state_dict, prefix, local_meta,
                                          *args, **kwargs)
        for name in ('log_temperature', 'flag_threshold'):
            if prefix + name not in state_dict:
                state_dict[prefix + name] = getattr(self, name).detach(
                ).clone().fill_(0.0 if name == 'log_temperature' else
                                float('nan'))

    @property
    def is_calibrated(self) -> bool:
        """Whether any temperature differs from 1."""
        return bool((self.log_temperature != 0).any())

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

    def set_flag_threshold(self, threshold_mm: float) -> None:
        """Sets the ERE threshold (mm) above which landmarks are flagged."""
        value = float(threshold_mm)
        if not np.isfinite(value) or value < 0:
            raise ValueError(f'flag threshold must be a finite ERE >= 0 mm; '
                             f'got {threshold_mm}')
        with torch.no_grad():
            self.flag_threshold.fill_(value)

    def gt_targets(self, batch_data_samples: OptSampleList,
                   device=None) -> Optional[Tuple[Tensor, Tensor]]:
        """Ground-truth heatmap indices of samples that carry ground truth.

        Maps ``gt_instances.keypoints`` (original image) into the model
        input with the sample's ``input_center/scale/size`` -- the exact
        inverse of ``TopdownPoseEstimator.add_pred_to_datasample`` for an
        unrotated test pipeline -- and encodes them with the codec.

        Returns:
            tuple | None: (indices (B, K) long, weights (B, K) float), or
            None when any sample lacks ground-truth keypoints.
        """
        if not batch_data_samples:
            return None
        indices, weights = [], []
        for sample in batch_data_samples:
            gt = sample.get('gt_instances', None)
            meta = sample.metainfo
            if gt is None or 'keypoints' not in gt or not {
                    'input_center', 'input_scale', 'input_size'
            } <= set(meta):
                return None
            kpts = np.asarray(gt.keypoints, dtype=np.float64)[:1, :, :2]
            visible = np.asarray(
                gt.get('keypoints_visible', np.ones(kpts.shape[:2])),
                dtype=np.float32)[:1]
            center = np.asarray(meta['input_center'], dtype=np.float64)
            scale = np.asarray(meta['input_scale'], dtype=np.float64)
            size = np.asarray(meta['input_size'], dtype=np.float64)
            kpts_in = (kpts - center + 0.5 * scale) / scale * size
            # scored against the ground truth itself, also when training
            # used every annotator's points
            enc = self.decoder.encode_one_hot(kpts_in, visible)
            indices.append(enc['heatmap_indices'][0])
            weights.append(enc['keypoint_weights'][0])
        return (torch.as_tensor(np.stack(indices), device=device),
                torch.as_tensor(np.stack(weights), device=device))

    def heatmap_pixel_mm(self, batch_data_samples: OptSampleList,
                         device=None) -> Optional[Tensor]:
        """(B, 1, 2) mm per heatmap pixel (x, y) of each sample, or None.

        heatmap pixel -> input pixel (codec scale) -> original pixel
        (``input_scale / input_size``) -> mm (``spacing``).
        """
        if not batch_data_samples:
            return None
        sizes = []
        for sample in batch_data_samples:
            meta = sample.metainfo
            if not {'spacing', 'input_scale', 'input_size'} <= set(meta):
                return None
            sizes.append(
                np.asarray(self.decoder.scale_factor, np.float64) *
                np.asarray(meta['input_scale'], np.float64) /
                np.asarray(meta['input_size'], np.float64) *
                np.broadcast_to(np.asarray(meta['spacing'], np.float64),
                                (2, )))
        return torch.as_tensor(
            np.stack(sizes)[:, None, :], dtype=torch.float32, device=device)

    def probabilities(self, logits: Tensor) -> Tensor:
        """Temperature-scaled 2D softmax of (B, K, H, W) logits."""
        return softmax_2d(logits, self.temperature)

    def predict(self,
                feats: Features,
                batch_data_samples: OptSampleList,
                test_cfg: ConfigType = {}) -> Predictions:
        """Predicts keypoints, mode probabilities and ERE.

        Args:
            feats (Tuple[Tensor] | List[Tuple[Tensor]]): Features, or a pair
                (original, flipped) for flip test.
            batch_data_samples (List[PoseDataSample]): The batch samples.
            test_cfg (dict): ``flip_test`` (bool), ``output_heatmaps`` (bool:
                also return the probability maps as ``PixelData``).

        Returns:
            list[InstanceData] | tuple: Per sample ``keypoints``,
            ``keypoint_scores`` and ``keypoint_ere``; with
            ``output_heatmaps`` also a list of ``PixelData(heatmaps=probs)``.
        """
        if test_cfg.get('flip_test', False):
            assert isinstance(feats, list) and len(feats) == 2
            flip_indices = batch_data_samples[0].metainfo['flip_indices']
            logits = self.forward(feats[0])
            probs = self.probabilities(logits)
            if test_cfg.get('shift_heatmap', False):
                _warn_shift_heatmap_once()
            # SoftmaxHeatmap's pixels mirror exactly (pixel u <-> W-1-u), so
            # the flipped maps are flipped back without a shift
            probs_flip = flip_heatmaps(
                self.probabilities(self.forward(feats[1])),
                flip_mode='heatmap',
                flip_indices=flip_indices,
                shift_heatmap=False)
            probs = (probs + probs_flip) * 0.5
        else:
            logits = self.forward(feats)
            probs = self.probabilities(logits)

        keypoints, scores, ere = self.decoder.decode_tensors(probs)
        fields = dict(
            keypoints=keypoints, keypoint_scores=scores, keypoint_ere=ere)

        pixel_mm = self.heatmap_pixel_mm(batch_data_samples, probs.device)
        if pixel_mm is not None:
            # mm per heatmap pixel = ratio * input pixels per heatmap pixel;
            # when the ratio is the same along x and y (square pixels after
            # the affine: the usual case) ERE in mm is ERE in input pixels
            # times it, and the maps need not be walked a second time
            scale = torch.as_tensor(
                self.decoder.scale_factor, dtype=pixel_mm.dtype,
                device=pixel_mm.device)
            ratio = (pixel_mm / scale)[:, 0]  # (B, 2)
            if bool(torch.allclose(ratio[:, 0], ratio[:, 1], rtol=1e-6,
                                   atol=0.0)):
                ere_mm = ere * ratio.mean(-1, keepdim=True).to(ere.dtype)
            else:
                ere_mm = expected_radial_error(
                    probs,
                    threshold=self.decoder.ere_threshold,
                    pixel_size=pixel_mm)
            fields['keypoint_ere_mm'] = ere_mm
            if torch.isfinite(self.flag_threshold):
                fields['keypoint_flagged'] = ere_mm > self.flag_threshold
        targets = self.gt_targets(batch_data_samples, probs.device)
        if targets is not None:
            index, weight = targets
            if test_cfg.get('flip_test', False):
                # the NLL of the combined (mixture) distribution
                nll = -probs.flatten(-2).gather(
                    -1, index[..., None])[..., 0].clamp_min(
                        torch.finfo(probs.dtype).tiny).log()
            else:
                nll = nll_at_index(logits, index, self.temperature)
            fields['keypoint_nll'] = nll
            fields['keypoint_mode_hit'] = probs.flatten(-2).argmax(-1) == index
            fields['keypoint_target_weight'] = weight

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
        if test_cfg.get('output_heatmaps', False):
            return preds, [PixelData(heatmaps=p) for p in probs.detach()]
        return preds

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
        logits = self.forward(feats)
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
