# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmpose.registry import MODELS
from torch import Tensor, nn


class UNetDecoderBlock(nn.Module):
    """Nearest 2x upsample -> concat skip -> 2 x (conv3x3 + BN + ReLU)."""

    def __init__(self, in_channels: int, skip_channels: int,
                 out_channels: int, norm_cfg: dict):
        super().__init__()
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

    def forward(self, x: Tensor, skip: Tensor = None) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode='nearest')
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


@MODELS.register_module()
class UNetDecoder(BaseModule):
    """The U-Net decoder of the paper, as an MMPose neck.

    Starting from the deepest encoder feature, each block upsamples by 2
    (nearest), concatenates the encoder feature of that scale, and applies
    two conv3x3 + BN + ReLU. The last block has no skip and brings the
    features to the input resolution. With ``ResNetWithStem(depth=34)`` and
    ``decoder_channels=(256, 128, 64, 32, 32)`` this is the network of
    ``segmentation_models_pytorch.Unet('resnet34',
    decoder_channels=(256, 128, 64, 32, 32))`` without its final conv (which
    is the head's ``final_layer``).

    Args:
        in_channels (Sequence[int]): Channels of the encoder features,
            shallowest first, e.g. (64, 64, 128, 256, 512) for ResNet-34.
        decoder_channels (Sequence[int]): Output channels of each block,
            deepest first. One block per encoder feature.
        norm_cfg (dict): Normalisation layer. Defaults to BN.
        init_cfg (dict, optional): Initialisation config.

    Note:
        - inputs: tuple of len(in_channels) tensors, feature i at stride
          2^(i+1) of the input
        - output: a 1-tuple with (B, decoder_channels[-1], H, W)
    """

    def __init__(self,
                 in_channels: Sequence[int] = (64, 64, 128, 256, 512),
                 decoder_channels: Sequence[int] = (256, 128, 64, 32, 32),
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg=dict(
                     type='Kaiming', layer='Conv2d', nonlinearity='relu')):
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != len(decoder_channels):
            raise ValueError(
                'UNetDecoder: one decoder block per encoder feature; got '
                f'{len(in_channels)} in_channels and {len(decoder_channels)}'
                ' decoder_channels')
        deep_first = list(in_channels)[::-1]
        block_in = [deep_first[0]] + list(decoder_channels[:-1])
        skips = deep_first[1:] + [0]
        self.in_channels = tuple(in_channels)
        self.blocks = nn.ModuleList(
            UNetDecoderBlock(i, s, o, norm_cfg)
            for i, s, o in zip(block_in, skips, decoder_channels))

    def forward(self, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor]:
        if len(inputs) != len(self.in_channels):
            raise ValueError(
                f'UNetDecoder: expected {len(self.in_channels)} encoder '
                f'features (shallowest first), got {len(inputs)}; use '
                'ResNetWithStem or a backbone returning every scale')
        features = list(inputs)[::-1]
        x = features[0]
        skips = features[1:] + [None]
        for block, skip in zip(self.blocks, skips):
            x = block(x, skip)
        return (x, )
