"""configs/ceph/unet_r34_onehot_native.py: the paper's recipe on the native
ISBI grid, with the memory mode (with_cp) and AMP. It changes only what
its header says, maps a 1935 x 2400 image at scale 1, and trains (with_cp
on) with a real Runner at a tiny override size."""
import os
import os.path as osp

import numpy as np
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

import mmchh  # noqa: F401
from mmchh.utils.run_config import load_run_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NATIVE = osp.join(REPO, 'configs', 'ceph', 'unet_r34_onehot_native.py')
BASE = osp.join(REPO, 'configs', 'ceph', 'unet_r34_onehot.py')
SIZE = (1952, 2400)


def test_native_config_changes_only_size_memory_mode_and_amp():
    cfg, base = Config.fromfile(NATIVE), Config.fromfile(BASE)
    assert SIZE[0] % 32 == 0 and SIZE[1] % 32 == 0
    assert SIZE[0] >= 1935 and SIZE[1] >= 2400
    codec = cfg.model.head.decoder.to_dict()
    assert codec == dict(base.model.head.decoder.to_dict(), input_size=SIZE,
                         heatmap_size=SIZE)
    assert cfg.model.backbone.with_cp and cfg.model.neck.with_cp
    assert cfg.model.neck.backbone.to_dict() == cfg.model.backbone.to_dict()
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.optimizer == base.optim_wrapper.optimizer
    assert cfg.train_dataloader.batch_size == 2
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                   'calib_dataloader'):
        ours, theirs = cfg[loader].dataset, base[loader].dataset
        assert ours.ann_file == theirs.ann_file
        assert ours.data_root == 'data/isbi2015_coco_native/'
        assert [t['type'] for t in ours.pipeline] == [
            t['type'] for t in theirs.pipeline]
        for new, old in zip(ours.pipeline, theirs.pipeline):
            if new['type'] == 'TopdownAffine':
                assert tuple(new['input_size']) == SIZE
            elif 'encoder' in new:
                assert new['encoder'].to_dict() == codec
            else:
                # the augmentation is relative (shift: a fraction of the
                # box; elastic: scaled from its 640x800 reference_size)
                assert new == old, new['type']


def test_native_image_is_mapped_at_scale_one():
    """A 1935 x 2400 image fills the 1952 x 2400 input at scale 1, centred
    (8.5 px of padding left and right), its landmarks moved by 8.5 px."""
    init_default_scope('mmpose')
    cfg = Config.fromfile(NATIVE)
    steps = [t for t in cfg.val_dataloader.dataset.pipeline
             if t['type'] in ('GetBBoxCenterScale', 'TopdownAffine')]
    img = np.random.default_rng(0).integers(0, 255, (2400, 1935, 3),
                                            dtype=np.uint8)
    kpts = np.array([[[100.0, 200.0], [1800.5, 2300.25]]], dtype=np.float32)
    out = Compose(steps)(dict(
        img=img, img_shape=img.shape[:2], bbox=np.array(
            [[0, 0, 1935, 2400]], dtype=np.float32),
        keypoints=kpts, keypoints_visible=np.ones((1, 2), np.float32)))
    assert out['img'].shape == (2400, 1952, 3)
    np.testing.assert_allclose(out['input_scale'], SIZE, rtol=1e-6)
    np.testing.assert_allclose(out['transformed_keypoints'],
                               kpts + [8.5, 0.0], atol=1e-3)


def test_native_config_trains_with_cp_on_a_real_runner(ceph_coco_small,
                                                       tmp_path):
    """The config itself, shrunk the way a user would (tiny input, CPU:
    plain OptimWrapper instead of AMP): one epoch with checkpointing on."""
    from conftest import small_ceph_options
    from mmengine.runner import Runner
    opts = small_ceph_options(ceph_coco_small, epochs=1)
    opts.update({
        'optim_wrapper.type': 'OptimWrapper',
        'visualizer.name': 'vis_native',
        'custom_hooks': [],
    })
    work = str(tmp_path / 'native')
    runner = Runner.from_cfg(load_run_config(NATIVE, opts, work))
    model = runner.model
    assert model.backbone.with_cp and model.neck.with_cp
    runner.train()
    assert any(f.endswith('.pth') for f in os.listdir(work))
