# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
import copy
import json
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmpose.registry import MODELS
from torch import Tensor, nn

from ..utils import checkpoint_train, nearest_upsample_conv3x3

#: input side of the probe that reads a backbone's features (a multiple of
#: 64 so stride-32 and stride-64 backbones give integer sizes)
PROBE_SIZE = 128


def backbone_feature_info(backbone: dict,
                          probe_size: int = PROBE_SIZE
                          ) -> Tuple[List[int], List[int]]:
    """Channels and strides of every feature a backbone returns.

    Builds the backbone (without its pretrained weights) and runs one
    zero image of ``probe_size`` squared through it.

    Args:
        backbone (dict): The backbone's config, as in the model config.
        probe_size (int): Side of the probe image.

    Returns:
        tuple: ``channels`` and ``strides`` (input pixels per feature
        pixel), one entry per returned feature, in the backbone's order.

    Note:
        The answer depends on the config alone, so it is remembered per
        process: building the backbone again (its random init is most of a
        model build's time) is paid once per distinct backbone config.
    """
    cfg = copy.deepcopy(dict(backbone))
    cfg['init_cfg'] = None
    key = (json.dumps(cfg, sort_keys=True, default=repr), int(probe_size))
    if key not in _FEATURE_INFO:
        _FEATURE_INFO[key] = _probe_features(cfg, probe_size)
    channels, strides = _FEATURE_INFO[key]
    return list(channels), list(strides)


#: backbone_feature_info's answers, by (config JSON, probe size)
_FEATURE_INFO: Dict[Tuple[str, int], Tuple[Tuple[int, ...],
                                          Tuple[int, ...]]] = {}


def _probe_features(cfg: dict, probe_size: int
                    ) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """Builds the backbone of ``cfg`` and probes it (see
    :func:`backbone_feature_info`)."""
    in_ch = int(cfg.get('in_channels', 3))
    # the probe's random init must not shift the seeded model's weights
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        net = MODELS.build(cfg)
        net.eval()  # (MMPose's ResNet.train returns None: no chaining)
        outs = net(torch.zeros(1, in_ch, probe_size, probe_size))
    if isinstance(outs, Tensor):
        outs = (outs, )
    channels = tuple(int(o.shape[1]) for o in outs)
    strides = tuple(probe_size // int(o.shape[-1]) for o in outs)
    return channels, strides


class UNetDecoderBlock(nn.Module):
    """Upsample x2 (nearest) -> concat skip -> 2 x (conv3x3 + BN + ReLU).

    ``with_cp``: the block is checkpointed as a whole (only ``x`` and
    ``skip`` are kept for backward); ``cp_convs`` (with ``with_cp``)
    checkpoints each conv + BN + ReLU inside it as well, so that the
    recompute in backward holds one of them at a time (one tensor of the
    block's output size less at the peak, for one more forward of the
    first conv).

    ``fold_upsample``: when the skip is exactly twice ``x``'s size (or there
    is none), the first conv convolves ``x`` itself with its phase kernels
    (:func:`~mmchh.models.utils.nearest_upsample_conv3x3`: on the
    low-resolution grid, then a pixel shuffle) and the skip with the rest
    of its weight, and adds them: the same output, without the upsampled
    and the concatenated tensors (only ``x`` is saved for the backward of
    that part). The weights are the same parameters either way.
    """

    def __init__(self, in_channels: int, skip_channels: int,
                 out_channels: int, norm_cfg: dict, with_cp: bool = False,
                 cp_convs: bool = False, fold_upsample: bool = False):
        super().__init__()
        self.with_cp = with_cp
        self.cp_convs = with_cp and cp_convs
        self.fold_upsample = bool(fold_upsample)
        self.conv1 = ConvModule(
            in_channels + skip_channels,
            out_channels,
            3,
            padding=1,
            norm_cfg=norm_cfg,
            act_cfg=dict(type='ReLU'))
        self.conv2 = ConvModule(
            out_channels,
            out_channels,
            3,
            padding=1,
            norm_cfg=norm_cfg,
            act_cfg=dict(type='ReLU'))

    def forward(self, x: Tensor, skip: Optional[Tensor] = None) -> Tensor:
        if self.with_cp:
            return checkpoint_train(self, self._forward, x, skip)
        return self._forward(x, skip)

    def _forward(self, x: Tensor, skip: Optional[Tensor] = None) -> Tensor:
        doubles = skip is None or tuple(skip.shape[-2:]) == (
            2 * x.shape[-2], 2 * x.shape[-1])
        if self.fold_upsample and doubles:
            x = self._conv(self.conv1, self._upsample_conv1, x, skip)
        else:
            if skip is not None:
                # the skip's size (2x for sizes divisible by the stride)
                x = F.interpolate(x, size=skip.shape[-2:], mode='nearest')
                x = torch.cat([x, skip], dim=1)
            else:
                x = F.interpolate(x, scale_factor=2.0, mode='nearest')
            x = self._conv(self.conv1, self.conv1, x)
        return self._conv(self.conv2, self.conv2, x)

    def _upsample_conv1(self, x: Tensor,
                        skip: Optional[Tensor] = None) -> Tensor:
        """``conv1(cat(upsample(x), skip))`` without the upsampled and the
        concatenated tensors (``ConvModule``'s conv -> norm -> act)."""
        layer = self.conv1
        weight = layer.conv.weight
        out = nearest_upsample_conv3x3(x, weight[:, :x.shape[1]])
        if skip is not None:
            out = out + F.conv2d(skip, weight[:, x.shape[1]:], padding=1)
        if layer.conv.bias is not None:
            out = out + layer.conv.bias.view(1, -1, 1, 1)
        if layer.with_norm:
            out = layer.norm(out)
        if layer.with_activation:
            out = layer.activate(out)
        return out

    def _conv(self, layer: nn.Module, fn, *args) -> Tensor:
        """``fn(*args)``, checkpointed on its own with ``cp_convs``
        (``layer``: the ConvModule whose BN it runs)."""
        if self.cp_convs:
            return checkpoint_train(layer, fn, *args)
        return fn(*args)


@MODELS.register_module()
class UNetDecoder(BaseModule):
    """The U-Net decoder of the paper, as an MMPose neck, for any backbone.

    Starting from the deepest backbone feature, each block upsamples by 2
    (nearest), concatenates the backbone feature of that stride if there is
    one, and applies two conv3x3 + BN + ReLU. Each block halves the stride,
    so ``len(decoder_channels)`` sets the output resolution: with
    ``ResNetWithStem(depth=34)`` (strides 2..32) and
    ``decoder_channels=(256, 128, 64, 32, 32)`` the output is at input
    resolution and the network is ``segmentation_models_pytorch.Unet(
    'resnet34', decoder_channels=(256, 128, 64, 32, 32))`` without its final
    conv (which is the head's ``final_layer``); with three blocks it is at
    1/4 of the input.

    The backbone's channels and strides are read from the backbone itself
    (``backbone=`` its config: it is built once without weights and probed
    with a zero image), so the same neck config serves ResNet-18/34/50,
    MMPose's ``ResNet`` (strides 4..32, no stem feature), MobileNet and any
    backbone returning a tuple of features at strides that double.
    ``in_channels`` (with ``in_strides``) gives them by hand instead.

    Args:
        backbone (dict, optional): The model's backbone config; channels and
            strides are read from it.
        in_channels (Sequence[int], optional): Channels of the backbone's
            features, shallowest first, when ``backbone`` is not given.
        in_strides (Sequence[int], optional): Their strides; defaults to
            ``2, 4, 8, ...`` (ResNetWithStem's).
        decoder_channels (Sequence[int]): Output channels of each block,
            deepest first.
        norm_cfg (dict): Normalisation layer. Defaults to BN.
        with_cp (bool): The memory mode (MMPose's convention): while
            training, each block keeps only its inputs for backward and
            recomputes the rest there (non-reentrant
            ``torch.utils.checkpoint``; BN running statistics are updated
            once per step, as without it). The last block, at the output
            resolution (the largest tensors: 32 x 640 x 800 in the paper),
            also checkpoints its two convs one by one; at 640 x 800 on CPU
            that lowers the peak by one such tensor (65 MB per image).
            Defaults to False.
        fold_upsample_max_channels (int): Blocks whose upsampled input has
            at most this many channels fold the x2 upsampling into their
            first conv (see :class:`UNetDecoderBlock`): the same output
            from the same weights, without the upsampled tensor (65 MB per
            image in the paper's last block). On the CPU measured
            (docs/benchmarks.md) that conv was faster for the blocks with
            64 to 32 upsampled channels and slower for 256 and 512 (4 x
            the output channels on a small map). 0 never folds. Defaults
            to 128 (the paper's network: its three highest-resolution
            blocks).
        init_cfg (dict, optional): Initialisation config.

    Note:
        - inputs: tuple of len(in_channels) tensors (B, C_i, H / s_i, W / s_i)
        - output: a 1-tuple with (B, decoder_channels[-1], H / s_out,
          W / s_out), ``s_out = max(in_strides) / 2 ** len(decoder_channels)``
          (``out_stride``)
    """

    def __init__(self,
                 in_channels: Optional[Sequence[int]] = None,
                 decoder_channels: Sequence[int] = (256, 128, 64, 32, 32),
                 backbone: Optional[dict] = None,
                 in_strides: Optional[Sequence[int]] = None,
                 norm_cfg: dict = dict(type='BN'),
                 with_cp: bool = False,
                 fold_upsample_max_channels: int = 128,
                 init_cfg=dict(
                     type='Kaiming', layer='Conv2d', nonlinearity='relu')):
        super().__init__(init_cfg=init_cfg)
        if (backbone is None) == (in_channels is None):
            raise ValueError(
                'UNetDecoder: give exactly one of backbone= (the model\'s '
                'backbone config; its channels are read from it) and '
                'in_channels=')
        if backbone is not None:
            if in_strides is not None:
                raise ValueError('UNetDecoder: in_strides is read from the '
                                 'backbone; do not give it with backbone=')
            in_channels, in_strides = backbone_feature_info(backbone)
        in_channels = [int(c) for c in in_channels]
        if in_strides is None:
            in_strides = [2**(i + 1) for i in range(len(in_channels))]
        in_strides = [int(s) for s in in_strides]
        if len(in_strides) != len(in_channels):
            raise ValueError(
                f'UNetDecoder: {len(in_channels)} in_channels but '
                f'{len(in_strides)} in_strides')
        if in_strides != sorted(set(in_strides)):
            raise ValueError(
                'UNetDecoder: backbone features must come shallowest first '
                f'with distinct strides; got strides {in_strides}')
        if not decoder_channels:
            raise ValueError('UNetDecoder: decoder_channels is empty')
        deepest = in_strides[-1]
        out_stride = deepest / 2**len(decoder_channels)
        if out_stride < 1:
            raise ValueError(
                f'UNetDecoder: {len(decoder_channels)} blocks upsample the '
                f'deepest feature (stride {deepest}) beyond the input '
                f'resolution; use at most {deepest.bit_length() - 1} blocks')
        by_stride = dict(zip(in_strides, in_channels))
        self.in_channels = tuple(in_channels)
        self.in_strides = tuple(in_strides)
        self.out_stride = out_stride
        self.with_cp = bool(with_cp)
        # block j works at stride deepest / 2^(j+1); its skip is the feature
        # of that stride, if the backbone has one
        self.skip_index: List[Optional[int]] = []
        blocks, prev = [], in_channels[-1]
        for j, out in enumerate(decoder_channels):
            stride = deepest // 2**(j + 1)
            skip = in_strides.index(stride) if stride in by_stride and (
                deepest % 2**(j + 1) == 0) else None
            self.skip_index.append(skip)
            blocks.append(
                UNetDecoderBlock(prev, 0 if skip is None else
                                 in_channels[skip], int(out), norm_cfg,
                                 with_cp=bool(with_cp),
                                 cp_convs=j == len(decoder_channels) - 1,
                                 fold_upsample=prev <=
                                 fold_upsample_max_channels))
            prev = int(out)
        self.blocks = nn.ModuleList(blocks)

    def forward(self, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor]:
        if len(inputs) != len(self.in_channels):
            raise ValueError(
                f'UNetDecoder: expected {len(self.in_channels)} backbone '
                f'features (shallowest first), got {len(inputs)}; build the '
                'neck with backbone=<the backbone config> so they match')
        for i, (f, c) in enumerate(zip(inputs, self.in_channels)):
            if f.shape[1] != c:
                raise ValueError(
                    f'UNetDecoder: backbone feature {i} has {f.shape[1]} '
                    f'channels, the neck was built for {c}; give the neck '
                    'the same backbone config as the model (backbone=...), '
                    'also when overriding it with --cfg-options')
        x = inputs[-1]
        for block, skip in zip(self.blocks, self.skip_index):
            x = block(x, None if skip is None else inputs[skip])
        return (x, )
