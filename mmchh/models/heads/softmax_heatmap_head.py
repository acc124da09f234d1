# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
import logging
import warnings
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.structures import InstanceData, PixelData
from mmpose.models.heads import HeatmapHead
from mmpose.models.utils.tta import flip_heatmaps
from mmpose.registry import MODELS
from mmpose.utils.typing import (ConfigType, Features, OptConfigType,
                                 OptSampleList, Predictions)
from torch import Tensor

from mmchh.evaluation.functional import (expected_radial_error, nll_at_index,
                                         softmax_2d)
from mmchh.utils.checkpoint import (CALIBRATION_STATE_DEFAULTS,
                                    check_finite_state, weights_fingerprint)

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
    return torch.isfinite(logits).flatten(-2).all(-1)


def verify_loaded_state(model: torch.nn.Module, state_dict: dict,
                        prefix: str, *args, **kwargs) -> None:
    """Load pre-hook of every model that holds a ``SoftmaxHeatmapHead``.

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
    check_finite_state(own)
    heads = [(name, m) for name, m in model.named_modules()
             if isinstance(m, SoftmaxHeatmapHead) and name]
    model_keys = None
    for name, head in heads:
        model_keys = head._verify_calibration(state_dict, prefix + name + '.',
                                              own, name + '.', model,
                                              model_keys)
        head._state_verified = True


def _watch_heads(module: torch.nn.Module, name: str,
                 submodule: torch.nn.Module) -> None:
    """Global module-registration hook: a module that gets a
    ``SoftmaxHeatmapHead`` child checks every state dict loaded into it
    (:func:`verify_loaded_state`)."""
    if isinstance(submodule, SoftmaxHeatmapHead) and not \
            module.__dict__.get('_mmchh_verifies_state', False):
        module.register_load_state_dict_pre_hook(verify_loaded_state)
        module.__dict__['_mmchh_verifies_state'] = True


torch.nn.modules.module.register_module_module_registration_hook(
    _watch_heads)


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

    Invalid maps: a landmark whose logits are not all finite, or whose
    probability map is not a distribution (non-finite or no mass), has no
    answer. Its ``keypoint_valid`` is False, its keypoint, score, ERE and
    NLL are NaN (never a plausible (0, 0)), and it is flagged whenever
    flagging is on. The check is one ``isfinite().all()`` per map on the
    device.

    Calibration state (``log_temperature``, ``flag_threshold`` and
    ``calibration_fingerprint``, the buffers named in
    :data:`~mmchh.utils.checkpoint.CALIBRATION_STATE_DEFAULTS`) follows the
    weights: :meth:`seal_calibration` records the fingerprint of the
    weights it was fitted for; every load refuses non-finite tensors and
    loads a calibration whose fingerprint does not match the incoming
    weights as uncalibrated, with a warning (:func:`verify_loaded_state`);
    and the first :meth:`loss` of a training run resets it.

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
          model-input pixels, ``keypoint_valid`` (1, K) bool.
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
            check_finite_state(own)
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
        fingerprint away from its "none" value) is kept only when its
        ``calibration_fingerprint`` equals
        :func:`~mmchh.utils.checkpoint.weights_fingerprint` of the incoming
        state of ``owner`` (the module the fingerprint was taken over; its
        keys in ``owner_state``, the head's under ``owner_prefix``).

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
        if not calibrated:
            if isinstance(fingerprint, Tensor) and bool(fingerprint.any()):
                # a fingerprint of no calibration means nothing
                state_dict[key_prefix + 'calibration_fingerprint'] = \
                    self._uncalibrated('calibration_fingerprint')
            return owner_keys
        if not isinstance(fingerprint, Tensor) or not bool(
                fingerprint.any()):
            reason = ('it carries no calibration fingerprint (written '
                      'before mmchh recorded one, or calibrated by hand), '
                      'so it cannot be matched to the weights')
        else:
            if owner_keys is None:
                owner_keys = set(owner.state_dict().keys())
            expected = weights_fingerprint(
                {k: v for k, v in owner_state.items() if k in owner_keys})
            found = bytes(fingerprint.detach().cpu().to(
                torch.uint8).numpy().tobytes()).hex()
            if found == expected:
                return owner_keys
            reason = (f'it was fitted for weights with fingerprint '
                      f'{found[:16]}… but these weights have {expected[:16]}'
                      '… (the weights changed after calibration, e.g. '
                      'fine-tuning or editing)')
        warnings.warn(
            f'stale calibration ({", ".join(calibrated)}) ignored: '
            f'{reason}. The model is loaded UNCALIBRATED (T = 1, no flag '
            'threshold); re-run tools/calibrate.py on these weights.',
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
        """Whether any temperature differs from 1.

        A checkpoint whose calibration does not match its weights is loaded
        with T = 1 (see :func:`verify_loaded_state`), so this is False for
        it.
        """
        return bool((self.log_temperature != 0).any())

    @property
    def calibration_fingerprint_hex(self) -> Optional[str]:
        """The calibration's weights fingerprint (hex), None when unset."""
        if not bool(self.calibration_fingerprint.any()):
            return None
        return bytes(self.calibration_fingerprint.detach().cpu().numpy()
                     .tobytes()).hex()

    def seal_calibration(self, weights_state: Optional[dict] = None) -> str:
        """Binds the current calibration to the given weights.

        Stores the digest of
        :func:`~mmchh.utils.checkpoint.weights_fingerprint` of
        ``weights_state`` in ``calibration_fingerprint``. Call it after
        fitting every calibration buffer (``calibrate_model`` does); a
        checkpoint whose weights then hash differently is loaded
        uncalibrated.

        Args:
            weights_state (dict, optional): The state dict of the model that
                holds this head (``model.state_dict()`` of the pose
                estimator), or None for the head on its own.

        Returns:
            str: The fingerprint (hex).
        """
        state = self.state_dict() if weights_state is None else weights_state
        fingerprint = weights_fingerprint(state)
        with torch.no_grad():
            self.calibration_fingerprint.copy_(
                torch.frombuffer(bytearray.fromhex(fingerprint),
                                 dtype=torch.uint8))
        return fingerprint

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
                '(T = 1, no flag threshold); the TemperatureScalingHook or '
                'tools/calibrate.py refits it',
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

    def set_flag_threshold(self, threshold_mm: float) -> None:
        """Sets the ERE threshold (mm) above which landmarks are flagged."""
        value = float(threshold_mm)
        if not np.isfinite(value) or value < 0:
            raise ValueError(f'flag threshold must be a finite ERE >= 0 mm; '
                             f'got {threshold_mm}')
        with torch.no_grad():
            self.flag_threshold.fill_(value)
        self._calibration_seen_by_loss = False

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
            ``keypoint_scores``, ``keypoint_ere`` and ``keypoint_valid``
            (NaN values where it is False); with ``output_heatmaps`` also a
            list of ``PixelData(heatmaps=probs)``.
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
            logits_flip = self.forward(feats[1])
            probs_flip = flip_heatmaps(
                self.probabilities(logits_flip),
                flip_mode='heatmap',
                flip_indices=flip_indices,
                shift_heatmap=False)
            probs = (probs + probs_flip) * 0.5
            valid = _finite_maps(logits) & _finite_maps(
                logits_flip)[:, flip_indices]
        else:
            logits = self.forward(feats)
            probs = self.probabilities(logits)
            valid = _finite_maps(logits)

        # a map with a non-finite logit, or whose probabilities are not a
        # distribution, has no answer: NaN keypoint, score and ERE
        keypoints, scores, ere, valid = self.decoder.decode_tensors(
            probs, valid=valid, return_valid=True)
        nan = torch.full((), float('nan'), device=probs.device)
        fields = dict(
            keypoints=keypoints,
            keypoint_scores=scores,
            keypoint_ere=ere,
            keypoint_valid=valid)

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
                ere_mm = torch.where(
                    valid,
                    expected_radial_error(
                        probs,
                        threshold=self.decoder.ere_threshold,
                        pixel_size=pixel_mm), nan)
            fields['keypoint_ere_mm'] = ere_mm
            if torch.isfinite(self.flag_threshold):
                # an invalid landmark is always flagged
                fields['keypoint_flagged'] = (ere_mm >
                                              self.flag_threshold) | ~valid
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
            fields['keypoint_nll'] = torch.where(valid, nll, nan)
            fields['keypoint_mode_hit'] = (probs.flatten(-2).argmax(-1)
                                           == index) & valid
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

    def check_target_grid(self, logits: Tensor,
                          batch_data_samples: OptSampleList) -> None:
        """Raises unless the training targets fit this head's heatmap grid.

        The targets are encoded by ``GenerateTarget(encoder=...)`` in the
        training pipeline, the predictions decoded by ``model.head.decoder``;
        when the two codecs differ, the indices address pixels of another
        grid and training runs without an error to a useless model. Compares
        the logits' (H, W) with the decoder's heatmap size and, when the
        codec emits it (``SoftmaxHeatmap`` does), each sample's
        ``heatmap_grid`` label ``(W, H, input w, input h)`` with the
        decoder's. The label comparison (one (B, 4) compare, one host sync)
        runs until a batch carrying the label has passed once: the training
        pipeline's codec does not change between steps.

        Args:
            logits (Tensor): The head's output, (B, K, H, W).
            batch_data_samples (list[PoseDataSample]): The training batch.

        Raises:
            InputError: naming both grids.
        """
        from mmchh.utils.errors import InputError
        fix = ('GenerateTarget(encoder=...) in train_pipeline must equal '
               'model.head.decoder')
        decoder = getattr(self, 'decoder', None)
        h, w = logits.shape[-2:]
        if decoder is not None and hasattr(decoder, 'heatmap_size') and \
                tuple(decoder.heatmap_size) != (w, h):
            raise InputError(
                f'SoftmaxHeatmapHead: the network outputs {w}x{h} (WxH) '
                f'heatmaps but model.head.decoder has heatmap_size='
                f'{tuple(decoder.heatmap_size)}; make the decoder\'s '
                'heatmap_size the network\'s output size (and ' + fix + ')')
        if getattr(self, '_target_grid_checked', False):
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
            self._target_grid_checked = True
            return
        bad = grid[~ok.all(-1)][0].tolist()
        raise InputError(
            'SoftmaxHeatmapHead: the training targets were encoded for a '
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
