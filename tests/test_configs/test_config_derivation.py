"""Variants change their base's entries instead of restating them.

Each variant config reads its base's codec and pipelines (``_base_.xxx``)
and replaces only the entries its recipe changes. These tests pin what
resolves: the codec each config trains and decodes with, and that a
variant's pipelines equal its base's except in the entries it names.
"""
import os.path as osp

import mmpose
import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MMPOSE_CONFIGS = osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs')
CEPH = 'ceph/unet_r34_onehot.py'
DEMO = 'ceph/unet_r34_onehot_synthetic_demo.py'
COCO_RES50 = 'body_2d_keypoint/topdown_softmax/coco/' \
    'td-sm_res50_8xb64-210e_coco-256x192.py'
COCO_HRNET = 'body_2d_keypoint/topdown_softmax/coco/' \
    'td-sm_hrnet-w32_8xb64-210e_coco-256x192.py'
ONEHAND = 'hand_2d_keypoint/topdown_softmax/onehand10k/' \
    'td-sm_res50_8xb32-210e_onehand10k-256x256.py'
OVERLAYS = {
    COCO_RES50: 'body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_res50_8xb64-210e_coco-256x192.py',
    COCO_HRNET: 'body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_hrnet-w32_8xb64-210e_coco-256x192.py',
    ONEHAND: 'hand_2d_keypoint/topdown_heatmap/onehand10k/'
    'td-hm_res50_8xb32-210e_onehand10k-256x256.py',
}

# the codec each config resolves to (the head's decoder)
EXPECTED_CODECS = {
    CEPH:
    dict(type='SoftmaxHeatmap', input_size=(640, 800),
         heatmap_size=(640, 800)),
    'ceph/unet_r34_onehot_quarter.py':
    dict(type='SoftmaxHeatmap', input_size=(640, 800),
         heatmap_size=(160, 200), subpixel_radius=1),
    'ceph/unet_r34_multiannotator.py':
    dict(type='SoftmaxHeatmap', input_size=(640, 800),
         heatmap_size=(640, 800), annotator_targets=True),
    'ceph/unet_r34_gaussian.py':
    dict(type='MSRAHeatmap', input_size=(640, 800), heatmap_size=(640, 800),
         sigma=2),
    DEMO:
    dict(type='SoftmaxHeatmap', input_size=(128, 160),
         heatmap_size=(128, 160)),
    'ceph/unet_r34_onehot_quarter_synthetic_demo.py':
    dict(type='SoftmaxHeatmap', input_size=(128, 160), heatmap_size=(32, 40),
         subpixel_radius=1),
    'ceph/unet_r34_multiannotator_synthetic_demo.py':
    dict(type='SoftmaxHeatmap', input_size=(128, 160),
         heatmap_size=(128, 160), annotator_targets=True),
    COCO_RES50:
    dict(type='SoftmaxHeatmap', input_size=(192, 256), heatmap_size=(48, 64),
         subpixel_radius=1),
    COCO_HRNET:
    dict(type='SoftmaxHeatmap', input_size=(192, 256), heatmap_size=(48, 64),
         subpixel_radius=1),
    ONEHAND:
    dict(type='SoftmaxHeatmap', input_size=(256, 256), heatmap_size=(64, 64),
         subpixel_radius=1),
}

# variant -> (base, the train-pipeline transforms it changes, the
# transforms it adds, the val-pipeline transforms it changes, the
# val-pipeline transforms it removes)
ANNOTATORS = {'AttachAnnotatorKeypoints', 'DetachAnnotatorKeypoints'}
GT = 'GenerateTargetIfAnnotated'  # the val/test ground truth on the grid
VARIANTS = {
    'ceph/unet_r34_onehot_quarter.py': (CEPH, {'GenerateTarget'}, set(),
                                        {GT}, set()),
    # scored against the ground truth itself: the base's one-hot encoding
    'ceph/unet_r34_multiannotator.py': (CEPH, {'GenerateTarget'},
                                        ANNOTATORS, set(), set()),
    # HeatmapHead scores nothing at test time
    'ceph/unet_r34_gaussian.py': (CEPH, {'GenerateTarget'}, set(), set(),
                                  {GT}),
    DEMO: (CEPH, {'TopdownAffine', 'GenerateTarget'}, set(),
           {'TopdownAffine', GT}, set()),
    'ceph/unet_r34_onehot_quarter_synthetic_demo.py': (DEMO,
                                                       {'GenerateTarget'},
                                                       set(), {GT}, set()),
    'ceph/unet_r34_multiannotator_synthetic_demo.py': (DEMO,
                                                       {'GenerateTarget'},
                                                       ANNOTATORS, set(),
                                                       set()),
    # another dataset folder, the base's pipelines as they are
    'landmark/unet_r34_onehot.py': (CEPH, set(), set(), set(), set()),
}


def _load(name):
    return Config.fromfile(osp.join(REPO, 'configs', name))


def _plain(cfg):
    """``cfg`` as plain dicts and lists, without the registry scope
    (``_scope_='mmpose'``) MMEngine marks on what comes from an
    ``mmpose::`` base: it names the default scope, so builds the same."""
    if isinstance(cfg, dict):
        return {k: _plain(v) for k, v in cfg.items() if k != '_scope_'}
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_plain(v) for v in cfg)
    return cfg


def _assert_differs_only_in(variant,
                            base,
                            changed,
                            added=frozenset(),
                            removed=frozenset()):
    variant = [t for t in variant if t['type'] not in added]
    base = [t for t in base if t['type'] not in removed]
    assert [t['type'] for t in variant] == [t['type'] for t in base]
    for new, old in zip(variant, base):
        if new['type'] in changed:
            assert _plain(new) != _plain(old), new['type']
        else:
            assert _plain(new) == _plain(old), new['type']


@pytest.mark.parametrize('name', sorted(EXPECTED_CODECS))
def test_config_resolves_to_the_recorded_codec(name):
    cfg = _load(name)
    codec = cfg.model.head.decoder.to_dict()
    assert codec == EXPECTED_CODECS[name]
    if name not in OVERLAYS:
        # an overlay's top-level ``codec`` merges into the MMPose base's
        # (keeping its ``sigma``); only the head's decoder is read
        assert cfg.codec.to_dict() == codec
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for t in cfg[loader].dataset.pipeline:
            if t['type'] == 'TopdownAffine':
                assert tuple(t['input_size']) == codec['input_size']
            if t['type'] == 'GenerateTarget':
                assert t['encoder'].to_dict() == codec


@pytest.mark.parametrize('name', sorted(VARIANTS))
def test_variant_pipeline_differs_from_its_base_only_where_it_says(name):
    base_name, changed, added, val_changed, val_removed = VARIANTS[name]
    cfg, base = _load(name), _load(base_name)
    _assert_differs_only_in(cfg.train_dataloader.dataset.pipeline,
                            base.train_dataloader.dataset.pipeline, changed,
                            added)
    assert cfg.train_pipeline == cfg.train_dataloader.dataset.pipeline
    for loader in ('val_dataloader', 'test_dataloader', 'calib_dataloader'):
        _assert_differs_only_in(cfg[loader].dataset.pipeline,
                                base[loader].dataset.pipeline, val_changed,
                                removed=val_removed)


def test_multiannotator_points_ride_through_the_geometric_transforms():
    types = [
        t['type'] for t in _load('ceph/unet_r34_multiannotator.py')
        .train_dataloader.dataset.pipeline
    ]
    assert types[:2] == ['LoadFullRangeImage', 'AttachAnnotatorKeypoints']
    assert types[-3:] == [
        'DetachAnnotatorKeypoints', 'GenerateTarget', 'PackPoseInputs'
    ]


@pytest.mark.parametrize('name', sorted(OVERLAYS))
def test_overlay_changes_only_codec_head_and_target(name):
    cfg = _load(name)
    base = Config.fromfile(osp.join(MMPOSE_CONFIGS, OVERLAYS[name]))
    # the shared softmax overrides, applied at the base codec's sizes
    assert cfg.codec.input_size == base.codec.input_size
    assert cfg.codec.heatmap_size == base.codec.heatmap_size
    head = cfg.model.head
    assert head.type == 'SoftmaxHeatmapHead'
    assert head.loss.to_dict() == dict(type='SoftmaxNLLLoss')
    assert cfg.model.test_cfg.to_dict() == dict(
        flip_test=True, flip_mode='heatmap', shift_heatmap=False)
    # the rest of the head (layers, channels) is the base's
    own = ('type', 'loss', 'decoder')
    assert _plain({k: v for k, v in head.items() if k not in own}) == _plain(
        {k: v for k, v in base.model.head.items() if k not in own})
    assert _plain(cfg.model.backbone) == _plain(base.model.backbone)
    _assert_differs_only_in(cfg.train_dataloader.dataset.pipeline,
                            base.train_dataloader.dataset.pipeline,
                            {'GenerateTarget'})
    for loader in ('val_dataloader', 'test_dataloader'):
        # the ground truth encoded with the codec right before packing
        pipeline = cfg[loader].dataset.pipeline
        _assert_differs_only_in(pipeline, base[loader].dataset.pipeline,
                                set(), added={GT})
        types = [t['type'] for t in pipeline]
        assert types[-2:] == [GT, 'PackPoseInputs']
        assert pipeline[-2].encoder.to_dict() == \
            cfg.model.head.decoder.to_dict()
        # the rest of the loader is the base's, but COCO's detected boxes
        # (they carry no ground truth) give way to the ground-truth boxes
        ours, theirs = (_plain(c[loader].to_dict()) for c in (cfg, base))
        for loader_cfg in (ours, theirs):
            del loader_cfg['dataset']['pipeline']
        if theirs['dataset'].get('bbox_file'):
            assert ours['dataset'].pop('bbox_file') is None
            del theirs['dataset']['bbox_file']
        assert ours == theirs
    # the base's metrics, and UncertaintyMetric (unc/..., image pixels)
    evaluators = base.val_evaluator
    if not isinstance(evaluators, list):
        evaluators = [evaluators]
    for name in ('val_evaluator', 'test_evaluator'):
        assert _plain(cfg[name][:-1]) == _plain(evaluators)
        assert cfg[name][-1].type == 'UncertaintyMetric'
