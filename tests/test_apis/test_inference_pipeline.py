# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""inference_pipeline: the config's test pipeline without GenerateTarget,
run on an image that has no keypoints."""
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

import mmchh  # noqa: F401
from mmchh.apis import inference_pipeline

CODEC = dict(type='SoftmaxHeatmap', input_size=(32, 24),
             heatmap_size=(16, 12))


def config(generate_target):
    pipeline = [
        dict(type='LoadImage'),
        dict(type='GetBBoxCenterScale', padding=1.0),
        dict(type='TopdownAffine', input_size=CODEC['input_size']),
        generate_target,
        dict(type='PackPoseInputs',
             meta_keys=('id', 'img_id', 'img_path', 'input_size',
                        'input_center', 'input_scale', 'spacing')),
    ]
    return Config(dict(default_scope='mmpose',
                       test_dataloader=dict(dataset=dict(pipeline=pipeline))))


def image_without_keypoints():
    img = np.random.default_rng(0).integers(0, 255, (40, 50, 3), np.uint8)
    return dict(img=img, img_path=None, id=0, img_id=0,
                bbox=np.array([[0, 0, 50, 40]], np.float32),
                bbox_score=np.ones(1, np.float32),
                spacing=np.float32([0.1, 0.1]))


@pytest.mark.parametrize(
    'step', [
        dict(type='GenerateTarget', encoder=CODEC),
        dict(type='mmpose.GenerateTarget', encoder=CODEC)
    ],
    ids=['plain_name', 'scoped_name'])
def test_generate_target_is_stripped_and_pipeline_runs(step):
    cfg = config(step)
    # the step really cannot run without keypoints: stripping it matters
    init_default_scope('mmpose')
    with pytest.raises(ValueError, match='keypoints'):
        Compose(cfg.test_dataloader.dataset.pipeline)(
            image_without_keypoints())
    pipeline = inference_pipeline(cfg)
    names = [type(t).__name__ for t in pipeline.transforms]
    assert names == ['LoadImage', 'GetBBoxCenterScale', 'TopdownAffine',
                     'PackPoseInputs']
    out = pipeline(image_without_keypoints())
    assert tuple(out['inputs'].shape) == (3, 24, 32)
    meta = out['data_samples'].metainfo
    assert tuple(meta['input_size']) == CODEC['input_size']
    # the config itself is left as it was
    assert len(cfg.test_dataloader.dataset.pipeline) == 5
