# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The paper's reference network, segmentation_models_pytorch's ``Unet``,
mapped onto ours.

The U-Net test (``tests/test_models/test_necks``) and the benchmark
(``benchmarks/ours.py``) copy an smp ``Unet``'s weights into our
``TopdownPoseEstimator`` (``ResNetWithStem`` + ``UNetDecoder`` +
``SoftmaxHeatmapHead``) with this one mapping, so both compare the same
network.
"""

__all__ = ['smp_to_ours_key']


def smp_to_ours_key(key: str) -> str:
    """Maps a segmentation_models_pytorch ``Unet`` state-dict key to ours.

    Args:
        key (str): e.g. ``encoder.layer1.0.conv1.weight``,
            ``decoder.blocks.0.conv1.0.weight`` or
            ``segmentation_head.0.bias``.

    Returns:
        str: The key of the same tensor in our model (``backbone.``,
        ``neck.blocks.`` or ``head.final_layer.``).

    Raises:
        KeyError: For a key of no part we map.
    """
    if key.startswith('encoder.'):
        return 'backbone.' + key[len('encoder.'):]
    if key.startswith('decoder.blocks.'):
        parts = key.split('.')  # decoder.blocks.i.convj.{0,1}.param
        layer = {'0': 'conv', '1': 'bn'}[parts[4]]
        return '.'.join(['neck.blocks', parts[2], parts[3], layer] +
                        parts[5:])
    if key.startswith('segmentation_head.0.'):
        return 'head.final_layer.' + key[len('segmentation_head.0.'):]
    raise KeyError(key)
