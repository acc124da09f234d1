"""Shared fixtures: a tiny COCO-keypoint dataset written to disk and a real
MMEngine Runner that trains MMPose's ResNet-18 with our head on it."""
import os.path as osp

import pytest

from mmchh.testing import tiny_runner_cfg


@pytest.fixture(scope='session', autouse=True)
def memoized_config_formatting():
    """Formats each distinct config text with yapf once per session.

    MMEngine re-formats the whole config with yapf every time it logs it
    and in every checkpoint's meta (``Config.pretty_text``): about a second
    each on 2 cores, dozens of times in this suite. ``FormatCode`` is a pure
    function of (text, style), so remembering its answers changes no
    output; the runners, checkpoints and logs stay real.
    """
    import json

    import mmengine.config.config as mmengine_config
    format_code = mmengine_config.FormatCode
    answers = {}

    def remembered(text, style_config=None, **kwargs):
        key = (text, json.dumps(style_config, sort_keys=True),
               json.dumps(kwargs, sort_keys=True))
        if key not in answers:
            answers[key] = format_code(
                text, style_config=style_config, **kwargs)
        return answers[key]

    mmengine_config.FormatCode = remembered
    yield
    mmengine_config.FormatCode = format_code

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: The demo's config: ``train_small_demo`` trains it shrunk.
DEMO_CONFIG = osp.join(REPO, 'configs', 'ceph',
                       'unet_r34_onehot_synthetic_demo.py')


@pytest.fixture(scope='session')
def trained_tiny(tmp_path_factory):
    """Trains the tiny model once per session with a real Runner.

    Returns:
        dict: ``cfg`` (Config), ``work_dir``, ``losses`` (per-iteration loss
        values), ``val_metrics`` (metrics of the last validation) and
        ``checkpoint`` (path of the last epoch's checkpoint).
    """
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    import mmchh  # noqa: F401

    root = str(tmp_path_factory.mktemp('tiny_data'))
    work_dir = str(tmp_path_factory.mktemp('tiny_work'))
    cfg = Config(tiny_runner_cfg(root, work_dir))

    class Recorder(Hook):
        def __init__(self):
            self.losses, self.val_metrics = [], None

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            self.losses.append(float(outputs['loss'].detach()))

        def after_val_epoch(self, runner, metrics=None):
            self.val_metrics = dict(metrics)

    recorder = Recorder()
    runner = Runner.from_cfg(cfg)
    runner.register_hook(recorder)
    runner.train()
    checkpoint = osp.join(work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    return dict(
        cfg=cfg,
        work_dir=work_dir,
        losses=recorder.losses,
        val_metrics=recorder.val_metrics,
        checkpoint=checkpoint)


def write_isbi_tree(root, counts=(6, 2, 2), size=(100, 120), nested=True,
                     crlf=True, labels=True, seed=0):
    """Writes a fixture in the exact ISBI 2015 release layout.

    Images are dark BMPs with a bright 9x9 block centred on each senior
    landmark; both annotators' points are integers inside the image.

    Returns:
        dict: stem -> dict(split folder, senior (19, 2), junior (19, 2),
        labels list) for every image written.
    """
    import os

    import cv2
    import numpy as np
    rng = np.random.default_rng(seed)
    w, h = size
    ann_parent = osp.join(root, 'AnnotationsByMD') if nested else root
    for a in ('400_senior', '400_junior'):
        os.makedirs(osp.join(ann_parent, a), exist_ok=True)
    truth = {}
    number = 0
    for folder, count in zip(('TrainingData', 'Test1Data', 'Test2Data'),
                             counts):
        os.makedirs(osp.join(root, 'RawImage', folder), exist_ok=True)
        for _ in range(count):
            number += 1
            stem = f'{number:03d}'
            senior = np.stack([rng.integers(6, w - 6, 19),
                               rng.integers(6, h - 6, 19)], axis=1)
            junior = np.clip(senior + rng.integers(-3, 4, (19, 2)), 0,
                             [w - 1, h - 1])
            img = np.full((h, w), 10, np.uint8)
            for x, y in senior:
                img[y - 4:y + 5, x - 4:x + 5] = 250
            cv2.imwrite(osp.join(root, 'RawImage', folder, f'{stem}.bmp'),
                        img)
            label_values = rng.integers(1, 4, 8).tolist()
            eol = '\r\n' if crlf else '\n'
            for a, pts in (('400_senior', senior), ('400_junior', junior)):
                lines = [f'{x},{y}  ' for x, y in pts]
                if labels:
                    lines += [str(v) for v in label_values]
                with open(osp.join(ann_parent, a, f'{stem}.txt'), 'w',
                          newline='') as f:
                    f.write(eol.join(lines) + eol)
            truth[stem] = dict(
                folder=folder, senior=senior, junior=junior,
                labels=label_values)
    return truth


@pytest.fixture
def isbi_tree():
    """Factory fixture: ``isbi_tree(root, **kwargs)`` writes an ISBI tree."""
    return write_isbi_tree


@pytest.fixture(scope='session')
def ceph_coco_small(tmp_path_factory):
    """An ISBI-format fixture converted (resized to 64x96) once per session.

    Returns:
        str: the converted folder (train/val/calib/test1/test2 JSON).
    """
    from mmchh.datasets.converters import convert_isbi
    root = str(tmp_path_factory.mktemp('isbi_small'))
    out = str(tmp_path_factory.mktemp('isbi_small_coco'))
    # 3 calibration images: the fewest on which a flag threshold is used
    write_isbi_tree(root, counts=(9, 3, 2), size=(100, 120))
    convert_isbi(root, out, num_val=2, num_calib=3, resize=(64, 96),
                 progress=False)
    return out


SMALL_SIZE = (64, 96)  # (w, h), divisible by 32


def small_ceph_options(data_root, epochs=1, size=SMALL_SIZE):
    """cfg-options that shrink configs/ceph/*onehot*.py to a CPU-sized run
    on the ``ceph_coco_small`` data (no separate code path: the same
    config, overridden the way a user would)."""
    opts = {
        'train_cfg.max_epochs': epochs,
        'train_cfg.val_interval': 1,
        'model.head.decoder.input_size': size,
        'model.head.decoder.heatmap_size': size,
        'model.backbone.init_cfg': None,
        'train_dataloader.dataset.pipeline.3.input_size': size,
        'train_dataloader.dataset.pipeline.6.encoder.input_size': size,
        'train_dataloader.dataset.pipeline.6.encoder.heatmap_size': size,
        'train_dataloader.batch_size': 2,
        'randomness.seed': 0,
        'default_hooks.logger.interval': 1,
    }
    for loader in ('train', 'val', 'test', 'calib'):
        opts[f'{loader}_dataloader.dataset.data_root'] = data_root
        opts[f'{loader}_dataloader.num_workers'] = 0
        opts[f'{loader}_dataloader.persistent_workers'] = False
        if loader != 'train':
            opts[f'{loader}_dataloader.dataset.pipeline.2.input_size'] = size
            # the ground truth is encoded on the model's grid (GenerateTarget)
            for key in ('input_size', 'heatmap_size'):
                opts[f'{loader}_dataloader.dataset.pipeline.3.encoder.'
                     f'{key}'] = size
    return opts


def train_small_demo(data_root, work_dir, cfg_name, epochs=1, options=None):
    """Trains :data:`DEMO_CONFIG` shrunk to the ``ceph_coco_small`` data.

    The config's ``TemperatureScalingHook`` calibrates at the end, so
    ``work_dir/calibrated.pth`` is written; the shrunk config is dumped to
    ``work_dir/cfg_name`` for :func:`mmchh.apis.init_landmark_model`.

    Args:
        data_root (str): The ``ceph_coco_small`` folder.
        work_dir (str): A fresh folder for the run.
        cfg_name (str): File name of the dumped config.
        epochs (int): Training epochs.
        options (dict, optional): More ``--cfg-options`` overrides.

    Returns:
        tuple: (config path, calibrated checkpoint path, the Runner)
    """
    from mmengine.runner import Runner

    from mmchh.utils.run_config import load_run_config
    opts = small_ceph_options(data_root, epochs=epochs)
    opts.update(options or {})
    opts['visualizer.name'] = f'vis_{osp.basename(work_dir)}'
    cfg = load_run_config(DEMO_CONFIG, opts, work_dir)
    runner = Runner.from_cfg(cfg)
    runner.train()
    cfg_path = osp.join(work_dir, cfg_name)
    cfg.dump(cfg_path)
    return cfg_path, osp.join(work_dir, 'calibrated.pth'), runner


@pytest.fixture(scope='session')
def calibrated_small_demo(ceph_coco_small, tmp_path_factory):
    """The demo config trained 2 epochs on ``ceph_coco_small`` (validated
    after each) and calibrated by its ``TemperatureScalingHook``, once per
    session: the run that the calibration-hook, API, measurement and
    labelme tests read. None of them writes into its work dir; a test that
    changes the runner's model restores it.

    Returns:
        dict: ``cfg`` (the dumped config), ``ckpt`` (calibrated.pth),
        ``work`` (the run's folder), ``runner`` (the Runner after training
        and calibration), ``data`` (the ``ceph_coco_small`` folder).
    """
    work = str(tmp_path_factory.mktemp('calibrated_demo'))
    cfg_path, ckpt, runner = train_small_demo(
        ceph_coco_small, work, 'demo_cfg.py', epochs=2)
    return dict(cfg=cfg_path, ckpt=ckpt, work=work, runner=runner,
                data=ceph_coco_small)


def as_cli_options(opts):
    """The same overrides as ``--cfg-options`` strings."""
    def fmt(v):
        if isinstance(v, tuple):
            return '(' + ','.join(str(x) for x in v) + ')'
        return str(v)
    return [f'{k}={fmt(v)}' for k, v in opts.items()]


def train_small_recording(data_root, work, flag, record):
    """``tools/train.py configs/ceph/unet_r34_onehot.py FLAG`` for one
    epoch on the small set, with ``record(module, args, output)`` a forward
    hook on every module while it runs.

    Returns:
        CompletedProcess-like: the tool's exit status, stdout and stderr.
    """
    import torch

    from mmchh.testing import run_tool_in_process
    config = osp.join(REPO, 'configs', 'ceph', 'unet_r34_onehot.py')
    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        return run_tool_in_process('train', [
            config, flag, '--work-dir', work, '--cfg-options',
            *as_cli_options(small_ceph_options(data_root, epochs=1))
        ])
    finally:
        handle.remove()
