# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""A variant's change to its base config, written once for every base it is
applied to.

A variant config reads its base (``_base_``) and replaces only what its
recipe changes; when the same change is made to two bases (the paper's
recipe and the CPU demo; two MMPose configs), the change is one function
here and each variant calls it. Imported after ``_base_ = ...`` (MMEngine
then reads the file as a plain config and leaves the function out of it)::

    _base_ = ['./unet_r34_onehot.py']
    from mmchh.utils.config_variants import smaller_heatmaps  # noqa: E402
    codec, model, train_pipeline, val_pipeline = smaller_heatmaps(_base_, 4)

Each function returns new dicts and lists; the base's entries are read,
never changed.
"""
from typing import Any, List, Tuple

__all__ = ['annotator_targets', 'smaller_heatmaps', 'softmax_overlay']


def _encoding_with(pipeline, codec: dict) -> List[Any]:
    """``pipeline`` with every step that encodes a target using ``codec``."""
    return [dict(t, encoder=codec) if 'encoder' in t else t for t in pipeline]


def smaller_heatmaps(base, divisor: int) -> Tuple[dict, dict, list, list]:
    """Heatmaps at ``1 / divisor`` of the input, decoded with sub-pixel
    refinement in the mode's 3x3 window.

    The U-Net decoder stops after three blocks (stride 32 -> 4: 64
    channels), the head maps those 64 channels to the logit maps, and the
    train and val pipelines encode with the new codec.

    Args:
        base: The base config (``_base_``): its ``codec``,
            ``train_pipeline`` and ``val_pipeline``.
        divisor (int): Input size over heatmap size (4 for these
            decoder channels).

    Returns:
        tuple: ``codec``, ``model`` (the change to the base's),
        ``train_pipeline``, ``val_pipeline``.
    """
    w, h = base.codec.input_size
    codec = dict(base.codec, heatmap_size=(w // divisor, h // divisor),
                 subpixel_radius=1)
    model = dict(neck=dict(decoder_channels=(256, 128, 64)),
                 head=dict(in_channels=64, decoder=codec))
    return (codec, model, _encoding_with(base.train_pipeline, codec),
            _encoding_with(base.val_pipeline, codec))


def annotator_targets(base) -> Tuple[dict, dict, list]:
    """Training on every annotator instead of their mean.

    Each annotator's points ride through the geometric transforms beside
    the ground truth (``AttachAnnotatorKeypoints`` after either image
    loader, ``DetachAnnotatorKeypoints`` before the target), and the codec
    encodes the distribution with mass ``1/A`` on each annotator's pixel.

    Args:
        base: The base config (``_base_``): its ``codec`` and
            ``train_pipeline``.

    Returns:
        tuple: ``codec``, ``model`` (the change to the base's),
        ``train_pipeline``.
    """
    codec = dict(base.codec, annotator_targets=True)
    train_pipeline = [
        step for t in base.train_pipeline for step in (
            [t, dict(type='AttachAnnotatorKeypoints')]
            if t.type in ('LoadFullRangeImage', 'LoadImage') else
            [dict(type='DetachAnnotatorKeypoints'),
             dict(t, encoder=codec)] if t.type == 'GenerateTarget' else [t])
    ]
    return codec, dict(head=dict(decoder=codec)), train_pipeline


def softmax_overlay(base) -> Tuple[dict, dict, list, list, list]:
    """An MMPose heatmap config with the softmax codec, head and loss
    (``configs/_base_/softmax_heatmap_overlay.py``, read as
    ``base.softmax_overlay``) at the base codec's sizes.

    The train pipeline encodes with the new codec; val/test encode the
    ground truth before ``PackPoseInputs`` (the head scores NLL, ERE and
    coverage against it) and add ``UncertaintyMetric`` beside the base's
    evaluators.

    Args:
        base: The base config (``_base_``): an MMPose config plus the
            overlay.

    Returns:
        tuple: ``codec``, ``model`` (the change to the base's),
        ``train_pipeline``, ``val_pipeline``, ``val_evaluator``.
    """
    overlay = base.softmax_overlay
    codec = dict(overlay.codec, input_size=base.codec.input_size,
                 heatmap_size=base.codec.heatmap_size)
    evaluators = base.val_evaluator if isinstance(
        base.val_evaluator, (list, tuple)) else [base.val_evaluator]
    model = dict(head=dict(overlay.head, decoder=dict(codec, _delete_=True)),
                 test_cfg=overlay.test_cfg)
    train_pipeline = [
        dict(t, encoder=codec) if t.type == 'GenerateTarget' else t
        for t in base.train_pipeline
    ]
    val_pipeline = [
        step for t in base.val_pipeline for step in (
            [dict(overlay.target, encoder=codec), t]
            if t.type == 'PackPoseInputs' else [t])
    ]
    return (codec, model, train_pipeline, val_pipeline,
            [*evaluators, overlay.metric])
