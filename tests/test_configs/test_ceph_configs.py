"""Every ceph config builds, and training is reproducible under a seed."""
import copy
import glob
import json
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmpose.registry import MODELS

import mmchh  # noqa: F401
from mmchh.utils.run_config import load_run_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'ceph', '*.py')))


def test_the_expected_configs_exist():
    names = {osp.basename(c) for c in CONFIGS}
    assert {'unet_r34_onehot.py', 'unet_r34_gaussian.py'} <= names
    assert any('demo' in n for n in names)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds_model_and_pipelines(path):
    init_default_scope('mmpose')
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmpose'
    assert cfg.custom_imports['imports'] == ['mmchh']
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None
    model = MODELS.build(model_cfg)
    assert model.head.out_channels == 19
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        Compose(cfg[loader].dataset.pipeline)
        assert cfg[loader].dataset.type == 'CephalometricDataset'
        # the paths convert_isbi.py writes by default
        assert cfg[loader].dataset.data_prefix == dict(img='')
    assert cfg.train_dataloader.dataset.ann_file == 'train.json'
    assert cfg.val_dataloader.dataset.ann_file == 'val.json'
    assert cfg.test_dataloader.dataset.ann_file == 'test1.json'
    codec = cfg.model.head.decoder
    affine = [t for t in cfg.train_dataloader.dataset.pipeline
              if t['type'] == 'TopdownAffine'][0]
    assert tuple(affine['input_size']) == tuple(codec.input_size)
    assert cfg.default_hooks.checkpoint.save_best == 'ceph/MRE'


def test_paper_recipe():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'ceph',
                                   'unet_r34_onehot.py'))
    assert tuple(cfg.model.head.decoder.input_size) == (640, 800)
    assert tuple(cfg.model.head.decoder.heatmap_size) == (640, 800)
    assert cfg.optim_wrapper.optimizer == dict(
        type='Adam', lr=1e-3, fused=True)
    assert cfg.train_dataloader.batch_size == 4
    assert cfg.train_cfg.max_epochs == 15
    assert cfg.param_scheduler[0].milestone_fractions == (4 / 15, 6 / 15,
                                                       8 / 15)
    assert cfg.model.backbone.init_cfg.checkpoint == 'torchvision://resnet34'
    types = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    assert 'RandomFlip' not in types
    assert {'UniformRandomBBoxTransform', 'RandomIntensityGamma',
            'ElasticDeformation'} <= set(types)


def _train_losses(cfg_path, data_root, work_dir):
    from conftest import small_ceph_options
    from mmengine.runner import Runner
    opts = small_ceph_options(data_root, epochs=2)
    opts.update({
        'train_cfg.val_interval': 2,
        'randomness': dict(seed=7, deterministic=True),
        # training and validation are what must repeat; the calibration
        # after training has its own tests (test_temperature_scaling.py)
        'custom_hooks': [],
        # a visualizer of its own, so the run logs into its own work dir
        'visualizer.name': f'vis_{osp.basename(work_dir)}',
    })
    cfg = load_run_config(cfg_path, opts, work_dir)
    runner = Runner.from_cfg(cfg)
    runner.train()
    run = [d for d in os.listdir(work_dir) if osp.isdir(osp.join(
        work_dir, d))][0]
    with open(osp.join(work_dir, run, 'vis_data', 'scalars.json')) as f:
        rows = [json.loads(line) for line in f]
    losses = [r['loss'] for r in rows if 'loss' in r]
    metrics = [r for r in rows if 'ceph/MRE' in r]
    return losses, metrics


def test_demo_config_training_is_reproducible(ceph_coco_small, tmp_path):
    path = osp.join(REPO, 'configs', 'ceph',
                    'unet_r34_onehot_synthetic_demo.py')
    a = _train_losses(path, ceph_coco_small, str(tmp_path / 'a'))
    b = _train_losses(path, ceph_coco_small, str(tmp_path / 'b'))
    assert len(a[0]) == 4 and np.isfinite(a[0]).all()  # 2 epochs x 2 iters
    assert a[0] == b[0]
    assert a[1] and [m['ceph/MRE'] for m in a[1]] == [
        m['ceph/MRE'] for m in b[1]
    ]


def test_multiannotator_config_trains_with_a_real_runner(ceph_coco_small,
                                                         tmp_path):
    """unet_r34_multiannotator.py, shrunk the way a user would: the
    annotators' points travel through the real pipeline into the
    cross-entropy, and validation scores against the ground truth."""
    from conftest import SMALL_SIZE, small_ceph_options
    from mmengine.runner import Runner
    path = osp.join(REPO, 'configs', 'ceph', 'unet_r34_multiannotator.py')
    cfg = Config.fromfile(path)
    types = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    affine = types.index('TopdownAffine')
    target = types.index('GenerateTarget')
    assert types.index('AttachAnnotatorKeypoints') < affine < types.index(
        'DetachAnnotatorKeypoints') < target
    opts = small_ceph_options(ceph_coco_small, epochs=1)
    for k in ('train_dataloader.dataset.pipeline.3.input_size',
              'train_dataloader.dataset.pipeline.6.encoder.input_size',
              'train_dataloader.dataset.pipeline.6.encoder.heatmap_size'):
        del opts[k]
    opts.update({
        f'train_dataloader.dataset.pipeline.{affine}.input_size': SMALL_SIZE,
        f'train_dataloader.dataset.pipeline.{target}.encoder.input_size':
        SMALL_SIZE,
        f'train_dataloader.dataset.pipeline.{target}.encoder.heatmap_size':
        SMALL_SIZE,
        'visualizer.name': 'vis_multiannotator',
        'custom_hooks': [],
    })
    work = str(tmp_path / 'multi')
    runner = Runner.from_cfg(load_run_config(path, opts, work))
    batch = next(iter(runner.build_dataloader(runner.cfg.train_dataloader)))
    labels = batch['data_samples'][0].gt_instance_labels
    assert labels.heatmap_indices.shape[-1] == 2  # senior and junior
    torch_sum = labels.heatmap_index_weights.sum(-1)
    assert np.allclose(np.asarray(torch_sum), 1.0)
    runner.train()
    run = [d for d in os.listdir(work) if osp.isdir(osp.join(work, d))][0]
    with open(osp.join(work, run, 'vis_data', 'scalars.json')) as f:
        rows = [json.loads(line) for line in f]
    losses = [r['loss'] for r in rows if 'loss' in r]
    assert losses and np.isfinite(losses).all()
    assert any('ceph/MRE' in r and 'unc/NLL' in r for r in rows)
