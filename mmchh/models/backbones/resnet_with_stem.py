# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
from typing import Tuple

from mmpose.models.backbones import ResNet
from mmpose.registry import MODELS
from torch import Tensor

from ..utils import checkpoint_train


@MODELS.register_module()
class ResNetWithStem(ResNet):
    """MMPose's ResNet that also returns its stride-2 stem feature.

    A U-Net decoder needs a skip at every scale; MMPose's ``ResNet`` only
    exposes the four stages (stride 4 to 32). This subclass returns the stem
    output (after conv1 + BN + ReLU, before the max-pool) first, then the
    stages in ``out_indices``. Layers and parameter names are MMPose's (and
    torchvision's), so ``init_cfg=dict(type='Pretrained',
    checkpoint='torchvision://resnet34')`` loads ImageNet weights.

    ``with_cp=True`` (MMPose's memory mode) checkpoints the stem (conv1 +
    BN + ReLU, or the deep stem) and every residual block while training:
    only their inputs are kept for backward, the rest is recomputed there.
    Unlike MMPose's ``ResNet(with_cp=True)``, whose blocks call the
    reentrant ``torch.utils.checkpoint`` and so update every BN's running
    statistics twice per step, the recompute here leaves them untouched
    (:func:`mmchh.models.utils.checkpoint_train`): a step gives the same
    gradients and buffers as without ``with_cp``.

    Args:
        depth (int): 18, 34, 50, 101 or 152.
        out_indices (Sequence[int]): Stages to return after the stem.
            Defaults to all four.
        with_cp (bool): Activation checkpointing of the stem and the blocks
            (less memory, one more forward of them in backward).
        **kwargs: Other arguments of :class:`mmpose.models.ResNet`.

    Note:
        - input: (B, C, H, W) with H and W divisible by 32, so that every
          decoder upsampling step meets its skip exactly
        - outputs: (stem (B, stem_channels, H/2, W/2), then the stages at
          H/4 ... H/32)
    """

    def __init__(self,
                 depth: int,
                 out_indices=(0, 1, 2, 3),
                 with_cp: bool = False,
                 **kwargs):
        # the blocks never checkpoint themselves (MMPose's reentrant call);
        # forward checkpoints them (see the class docstring)
        super().__init__(
            depth=depth, out_indices=out_indices, with_cp=False, **kwargs)
        self.with_cp = bool(with_cp)

    def init_weights(self) -> None:
        """Initialises weights; explains what to do when the pretrained
        checkpoint cannot be fetched (e.g. on a machine without internet)."""
        try:
            super().init_weights()
        except OSError as e:  # URLError, missing file, ...
            source = (self.init_cfg or {}).get('checkpoint') if isinstance(
                self.init_cfg, dict) else None
            raise RuntimeError(
                f'{type(self).__name__}: could not load the pretrained '
                f'weights {source!r} ({e}). Offline, either train without '
                'them: --cfg-options model.backbone.init_cfg=None, or copy '
                'the checkpoint file into $TORCH_HOME/hub/checkpoints/ '
                '(default ~/.cache/torch/hub/checkpoints/) on a machine '
                'that can download it.') from e

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        h, w = x.shape[-2:]
        if h % 32 or w % 32:
            raise ValueError(
                f'{type(self).__name__}: input size {w}x{h} (WxH) must be '
                'divisible by 32 for the U-Net skips to align; pick an '
                'input_size such as 640x800 or 160x192')
        stem = self.stem if self.deep_stem else self.norm1
        x = self._run(stem, self._stem_forward, x)
        outs = [x]
        x = self.maxpool(x)
        for i, layer_name in enumerate(self.res_layers):
            for block in getattr(self, layer_name):
                x = self._run(block, block, x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _stem_forward(self, x: Tensor) -> Tensor:
        if self.deep_stem:
            return self.stem(x)
        return self.relu(self.norm1(self.conv1(x)))

    def _run(self, module, fn, x: Tensor) -> Tensor:
        """``fn(x)``, checkpointed in the memory mode (``module``: the part
        of the network whose norm layers ``fn`` runs)."""
        if self.with_cp:
            return checkpoint_train(module, fn, x)
        return fn(x)
