# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The variants' changes on a small base written by hand: what each
returns, and that the base is read, never changed."""
import copy

from mmengine.config import ConfigDict

from mmchh.utils.config_variants import (annotator_targets, smaller_heatmaps,
                                         softmax_overlay)


def small_base():
    codec = dict(type='SoftmaxHeatmap', input_size=(128, 160),
                 heatmap_size=(128, 160))
    return ConfigDict(
        codec=codec,
        train_pipeline=[
            dict(type='LoadFullRangeImage'),
            dict(type='TopdownAffine', input_size=(128, 160)),
            dict(type='GenerateTarget', encoder=codec),
            dict(type='PackPoseInputs')
        ],
        val_pipeline=[
            dict(type='LoadImage'),
            dict(type='GenerateTargetIfAnnotated', encoder=codec),
            dict(type='PackPoseInputs')
        ])


def test_smaller_heatmaps_by_hand():
    base = small_base()
    before = copy.deepcopy(base)
    codec, model, train, val = smaller_heatmaps(base, 4)
    assert codec == dict(type='SoftmaxHeatmap', input_size=(128, 160),
                         heatmap_size=(32, 40), subpixel_radius=1)
    assert model == dict(neck=dict(decoder_channels=(256, 128, 64)),
                         head=dict(in_channels=64, decoder=codec))
    assert [t.get('encoder') for t in train] == [None, None, codec, None]
    assert [t.get('encoder') for t in val] == [None, codec, None]
    assert [t['type'] for t in train] == [t.type for t in base.train_pipeline]
    assert base == before


def test_annotator_targets_by_hand():
    base = small_base()
    before = copy.deepcopy(base)
    codec, model, train = annotator_targets(base)
    assert codec == dict(base.codec, annotator_targets=True)
    assert model == dict(head=dict(decoder=codec))
    assert [t['type'] for t in train] == [
        'LoadFullRangeImage', 'AttachAnnotatorKeypoints', 'TopdownAffine',
        'DetachAnnotatorKeypoints', 'GenerateTarget', 'PackPoseInputs'
    ]
    assert train[4]['encoder'] == codec
    assert base == before


def test_softmax_overlay_by_hand():
    base = small_base()
    base.codec = dict(type='MSRAHeatmap', input_size=(192, 256),
                      heatmap_size=(48, 64), sigma=2)
    base.softmax_overlay = dict(
        codec=dict(type='SoftmaxHeatmap', subpixel_radius=1),
        head=dict(type='SoftmaxHeatmapHead'),
        test_cfg=dict(flip_test=True),
        target=dict(type='GenerateTargetIfAnnotated'),
        metric=dict(type='UncertaintyMetric'))
    before = copy.deepcopy(base)
    for evaluator, kept in ((dict(type='CocoMetric'), [dict(
            type='CocoMetric')]), ([dict(type='PCKAccuracy'),
                                    dict(type='EPE')],
                                   [dict(type='PCKAccuracy'),
                                    dict(type='EPE')])):
        base.val_evaluator = evaluator
        codec, model, train, val, evaluators = softmax_overlay(base)
        assert codec == dict(type='SoftmaxHeatmap', subpixel_radius=1,
                             input_size=(192, 256), heatmap_size=(48, 64))
        assert model == dict(
            head=dict(type='SoftmaxHeatmapHead',
                      decoder=dict(codec, _delete_=True)),
            test_cfg=dict(flip_test=True))
        assert train[2] == dict(type='GenerateTarget', encoder=codec)
        # the ground truth encoded right before PackPoseInputs
        assert [t['type'] for t in val] == [
            'LoadImage', 'GenerateTargetIfAnnotated',
            'GenerateTargetIfAnnotated', 'PackPoseInputs'
        ]
        assert val[2]['encoder'] == codec
        assert evaluators == kept + [dict(type='UncertaintyMetric')]
    del base.val_evaluator
    assert base == before
