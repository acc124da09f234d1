"""Every config under configs/ stays alive.

For each file (``_base_`` excluded) the model is built from the config, at a
reduced input size that keeps the config's heatmap-to-input ratio, takes one
optimizer step on generated inputs and predicts (with the config's own
test_cfg, flip test included). A config that no longer builds fails CI.
"""
import copy
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData, PixelData
from mmpose.registry import KEYPOINT_CODECS, MODELS
from mmpose.structures import PoseDataSample

import mmchh  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                         recursive=True)
    if '_base_' not in osp.relpath(p, REPO).split(osp.sep))

# the reduced input (w, h): divisible by 32 (U-Net skips, HRNet branches)
SMALL_INPUT = (64, 96)


def _name(path):
    return osp.relpath(path, osp.join(REPO, 'configs'))


def test_configs_are_found():
    names = {_name(p) for p in CONFIGS}
    assert 'ceph/unet_r34_onehot.py' in names
    assert any(n.startswith('body_2d_keypoint/') and 'res50' in n
               for n in names)
    assert any(n.startswith('body_2d_keypoint/') and 'hrnet-w32' in n
               for n in names)
    assert any(n.startswith(('hand_2d_keypoint/', 'face_2d_keypoint/'))
               for n in names)


def _shrunk_codec(codec_cfg):
    """The config's codec at SMALL_INPUT, same heatmap/input ratio."""
    codec_cfg = copy.deepcopy(codec_cfg)
    w_in, h_in = codec_cfg['input_size']
    w_hm, h_hm = codec_cfg['heatmap_size']
    rx, ry = w_in / w_hm, h_in / h_hm
    assert rx == int(rx) and ry == int(ry), 'ratio must be an integer'
    codec_cfg['input_size'] = SMALL_INPUT
    codec_cfg['heatmap_size'] = (int(SMALL_INPUT[0] / rx),
                                 int(SMALL_INPUT[1] / ry))
    return codec_cfg


def _samples(codec, k, flip_indices, rng, n=2):
    w, h = SMALL_INPUT
    out = []
    for _ in range(n):
        kpts = np.stack([rng.uniform(1, w - 2, (1, k)),
                         rng.uniform(1, h - 2, (1, k))], -1).astype(np.float32)
        extra = {}
        if getattr(codec, 'annotator_targets', False):
            # two annotators a few pixels either side of the ground truth
            extra['transformed_annotator_keypoints'] = np.stack(
                [kpts + rng.normal(0, 2, kpts.shape) for _ in range(2)], 1)
        enc = codec.encode(kpts, np.ones((1, k), np.float32), **extra)
        s = PoseDataSample(
            metainfo=dict(
                input_size=SMALL_INPUT,
                input_center=np.array([w / 2, h / 2]),
                input_scale=np.array([float(w), float(h)]),
                spacing=np.array([0.1, 0.1]),
                flip_indices=list(flip_indices)))
        labels = {
            key: torch.as_tensor(np.asarray(enc[key]))
            for key in codec.label_mapping_table if key in enc
        }
        if labels:
            s.gt_instance_labels = InstanceData(**labels)
        if 'heatmaps' in enc:
            s.gt_fields = PixelData(heatmaps=torch.as_tensor(enc['heatmaps']))
        s.gt_instances = InstanceData(
            keypoints=kpts,
            keypoints_visible=np.ones((1, k), np.float32),
            bboxes=np.array([[0, 0, w, h]], np.float32),
            bbox_scores=np.ones(1, np.float32))
        out.append(s)
    return out


@pytest.mark.parametrize('path', CONFIGS, ids=_name)
def test_config_is_consistent(path):
    """What a config says twice says the same thing: the training target
    encoder is the head's codec, the ground truth of val/test/calib is
    encoded by the same codec with one-hot targets (it is scored against
    the ground truth itself), the affine makes the codec's input."""
    init_default_scope('mmpose')
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmpose'
    assert 'mmchh' in cfg.custom_imports['imports']
    codec = cfg.model.head.decoder
    one_hot = dict(codec, annotator_targets=False)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                   'calib_dataloader'):
        if loader not in cfg:
            continue
        pipeline = cfg[loader].dataset.pipeline
        Compose(pipeline)
        for t in pipeline:
            if t['type'] == 'TopdownAffine':
                assert tuple(t['input_size']) == tuple(codec.input_size)
            if t['type'] == 'GenerateTarget' and loader == 'train_dataloader':
                assert t['encoder'] == codec, loader
            elif 'encoder' in t:
                assert dict(t['encoder'], annotator_targets=False) == \
                    one_hot and not t['encoder'].get('annotator_targets'), \
                    loader
    if cfg.model.head.type == 'SoftmaxHeatmapHead':
        assert codec.type == 'SoftmaxHeatmap'
        assert cfg.model.head.loss.type == 'SoftmaxNLLLoss'
        # the SoftmaxHeatmap grid mirrors exactly: shifting is wrong
        assert not cfg.model.test_cfg.get('shift_heatmap', False)


@pytest.mark.parametrize('path', CONFIGS, ids=_name)
def test_config_trains_one_step_and_predicts(path):
    init_default_scope('mmpose')
    cfg = Config.fromfile(path)
    codec_cfg = _shrunk_codec(cfg.model.head.decoder)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None
    model_cfg.head.decoder = codec_cfg
    model = MODELS.build(model_cfg)
    codec = KEYPOINT_CODECS.build(codec_cfg)
    k = model_cfg.head.out_channels
    # a real left/right permutation when the config flips
    flip = list(range(k))
    if k > 1:
        flip[0], flip[1] = 1, 0
    samples = _samples(codec, k, flip, np.random.default_rng(0))
    inputs = torch.randn(2, 3, SMALL_INPUT[1], SMALL_INPUT[0])

    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    if optim_cfg.get('type') == 'AmpOptimWrapper' and \
            not torch.cuda.is_available():
        optim_cfg.type = 'OptimWrapper'  # AMP needs a GPU; fp32 on a CPU
    wrapper = build_optim_wrapper(model, optim_cfg)
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    losses = model(inputs, samples, mode='loss')
    loss, _ = model.parse_losses(losses)
    wrapper.update_params(loss)
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b)
               for a, b in zip(before, model.parameters()))

    # at test time the ground truth itself is encoded, one-hot (the val
    # pipeline's GenerateTargetIfAnnotated), whatever the training targets
    if codec_cfg.get('annotator_targets', False):
        codec = KEYPOINT_CODECS.build(dict(codec_cfg,
                                           annotator_targets=False))
        samples = _samples(codec, k, flip, np.random.default_rng(0))
    model.eval()
    with torch.no_grad():
        preds = model(inputs, samples, mode='predict')
    assert len(preds) == 2
    pred = preds[0].pred_instances
    assert pred.keypoints.shape == (1, k, 2)
    assert np.isfinite(pred.keypoints).all()
    if cfg.model.head.type == 'SoftmaxHeatmapHead':
        scores = np.asarray(pred.keypoint_scores)
        assert ((scores > 0) & (scores <= 1)).all()
        assert np.asarray(pred.keypoint_ere).shape == (1, k)
        assert np.asarray(pred.keypoint_nll).shape == (1, k)
