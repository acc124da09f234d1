# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
from typing import Optional, Sequence, Tuple, Union

import torch
from mmengine.structures import InstanceData, PixelData
from mmpose.models.heads import HeatmapHead
from mmpose.models.utils.tta import flip_heatmaps
from mmpose.registry import MODELS
from mmpose.utils.typing import (ConfigType, Features, OptConfigType,
                                 OptSampleList, Predictions)
from torch import Tensor

from mmchh.evaluation.functional import softmax_2d

OptIntSeq = Optional[Sequence[int]]


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
    and softmaxed separately, then the two probability maps are averaged (a
    mixture). Averaging log-probabilities instead would be a normalised
    product of the two distributions, which is sharper than either and so
    over-confident with temperatures fitted without flipping.

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
            probs = self.probabilities(self.forward(feats[0]))
            probs_flip = flip_heatmaps(
                self.probabilities(self.forward(feats[1])),
                flip_mode='heatmap',
                flip_indices=flip_indices,
                shift_heatmap=test_cfg.get('shift_heatmap', False))
            probs = (probs + probs_flip) * 0.5
        else:
            probs = self.probabilities(self.forward(feats))

        keypoints, scores, ere = self.decoder.decode_tensors(probs)
        keypoints, scores, ere = (t[:, None].detach().float().cpu().numpy()
                                  for t in (keypoints, scores, ere))
        preds = [
            InstanceData(
                keypoints=keypoints[i],
                keypoint_scores=scores[i],
                keypoint_ere=ere[i]) for i in range(len(keypoints))
        ]
        if test_cfg.get('output_heatmaps', False):
            return preds, [PixelData(heatmaps=p) for p in probs.detach()]
        return preds

    def loss(self,
             feats: Tuple[Tensor],
             batch_data_samples: OptSampleList,
             train_cfg: ConfigType = {}) -> dict:
        """Computes the NLL loss from sparse targets.

        ``acc_pose`` (with ``compute_acc``, default on) is the fraction of
        counted landmarks whose mode is exactly the target pixel, computed
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

        losses = dict(loss_kpt=self.loss_module(logits, target, weights))
        if train_cfg.get('compute_acc', True):
            with torch.no_grad():
                mode_index = logits.detach().flatten(-2).argmax(dim=-1)
                hit = (mode_index == target).float()
                counted = (weights > 0).float()
                losses['acc_pose'] = (hit * counted).sum() / counted.sum(
                ).clamp_min(1.0)
        return losses
