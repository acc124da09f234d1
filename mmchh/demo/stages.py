# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The demo's stages on the embedded synthetic ISBI-format set.

Synthetic data -> convert to COCO (resized) -> train the demo config (which
calibrates at the end) -> test the best checkpoint and the calibrated one
on Test1 -> calibration's paired effect on Test1 and the trivial baseline
(each landmark at its mean training position). ``tools/demo.py`` calls
them in that order and prints what they return.
"""
import os.path as osp

import numpy as np

from .outputs import remove_stale_outputs

__all__ = [
    'NUM_CALIB', 'NUM_VAL', 'load_calibration_report', 'make_demo_data',
    'prepare_run', 'run_test', 'stage', 'test1_calibration_change',
    'test1_mean_position_baseline', 'train_and_test',
    'write_before_after_diagram'
]

#: Images held out of the training images for validation / calibration.
NUM_VAL = 4
NUM_CALIB = 8


def stage(n, text):
    """Prints the banner of the demo's stage ``n`` (of 5)."""
    print(f'\n===== demo [{n}/5] {text} =====', flush=True)


def make_demo_data(data_dir, input_size, num_train=28, num_test1=8,
                   num_test2=4, progress=True):
    """The demo's data stages: the synthetic set, then its COCO conversion.

    Args:
        data_dir (str): parent folder of ``synthetic_ceph`` (the raw
            ISBI-layout set) and ``synthetic_ceph_coco`` (the conversion).
        input_size (tuple[int, int]): (W, H) the copies are resized to.
        num_train, num_test1, num_test2 (int): images per ISBI folder.
        progress (bool): print what is written.

    Returns:
        dict: ``raw``, ``coco`` (folders), ``synthetic`` (what
        ``make_synthetic_ceph`` returned: ``spacing_mm`` of the originals...)
        and ``summary`` (the conversion summary).
    """
    from mmchh.datasets.converters import convert_isbi
    from mmchh.datasets.synthetic import make_synthetic_ceph

    raw = osp.join(data_dir, 'synthetic_ceph')
    coco = osp.join(data_dir, 'synthetic_ceph_coco')
    if progress:
        stage(1, f'synthetic ISBI-format set -> {raw}')
    made = make_synthetic_ceph(
        raw,
        num_train=num_train,
        num_test1=num_test1,
        num_test2=num_test2,
        progress=progress)
    if progress:
        stage(2, f'convert to COCO keypoints, resized to {tuple(input_size)}'
              f' -> {coco}')
    summary = convert_isbi(
        raw,
        coco,
        num_val=NUM_VAL,
        num_calib=NUM_CALIB,
        resize=tuple(input_size),
        spacing=tuple(made['spacing_mm']))
    if progress:
        print(summary.format(), flush=True)
    return dict(raw=raw, coco=coco, synthetic=made, summary=summary)


def prepare_run(config, work_dir, data_dir, cfg_options=None, num_train=28,
                num_test1=8, num_test2=4):
    """Loads the demo config and runs the data stages into it.

    An earlier run's promised outputs are removed first (see
    :func:`~mmchh.demo.outputs.remove_stale_outputs`).

    Args:
        config (str): the demo config's path.
        work_dir (str): where the run's outputs go.
        data_dir (str): where the data stages write (see
            :func:`make_demo_data`).
        cfg_options (dict, optional): overrides of the config.
        num_train, num_test1, num_test2 (int): images per ISBI folder.

    Returns:
        tuple: (cfg, data) -- the config with every dataloader pointed at
        the converted set, and what :func:`make_demo_data` returned.
    """
    from mmchh.utils.run_config import load_run_config

    cfg = load_run_config(config, cfg_options, work_dir)
    removed = remove_stale_outputs(cfg.work_dir)
    if removed:
        print(f'demo: removed {len(removed)} outputs of an earlier run from '
              f'{cfg.work_dir}', flush=True)
    data = make_demo_data(
        data_dir,
        tuple(cfg.model.head.decoder.input_size),
        num_train=num_train,
        num_test1=num_test1,
        num_test2=num_test2)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                   'calib_dataloader'):
        cfg[loader].dataset.data_root = data['coco']
    return cfg, data


def choose_precision(cfg, amp: str = 'auto',
                     cpuinfo: str = '/proc/cpuinfo') -> bool:
    """Trains the demo in bf16 mixed precision where it pays, and says so.

    ``'auto'`` turns ``--amp`` on (``CpuAmpOptimWrapper``, see
    :func:`~mmchh.utils.run_config.enable_amp`) only on a CPU with native
    bf16 (:func:`~mmchh.engine.amp.native_bf16_flags`: AMX or AVX-512
    BF16): elsewhere bf16 is emulated and slower than float32
    (docs/benchmarks.md), and docs/seeds.md found no accuracy or
    calibration cost beyond the seeds' spread either way. ``'on'`` and
    ``'off'`` force it.

    Args:
        cfg (Config): the run's config, changed in place.
        amp (str): ``'auto'``, ``'on'`` or ``'off'``.
        cpuinfo (str): where the CPU's flags are read.

    Returns:
        bool: whether training runs in mixed precision.
    """
    import torch

    from mmchh.engine.amp import native_bf16_flags
    from mmchh.utils.run_config import enable_amp
    if amp not in ('auto', 'on', 'off'):
        raise ValueError(f"amp must be 'auto', 'on' or 'off'; got {amp!r}")
    on_cpu = not torch.cuda.is_available()
    flags = native_bf16_flags(cpuinfo) if on_cpu else ()
    use = amp == 'on' or (amp == 'auto' and bool(flags))
    if use:
        enable_amp(cfg)
        why = (f'native bf16: {", ".join(flags)}' if flags else
               'asked for; this CPU has no native bf16, so it is emulated'
               if on_cpu else 'asked for (fp16 on CUDA)')
        print(f'demo: training in mixed precision ({why})', flush=True)
    else:
        why = ('asked for' if amp == 'off' else
               'this CPU has no native bf16 (no amx_bf16 / avx512_bf16): '
               'bf16 would be emulated and slower' if on_cpu else
               '--amp auto turns it on for CPUs with native bf16 only')
        print(f'demo: training in float32 ({why})', flush=True)
    return use


def run_test(cfg, checkpoint, out_dir):
    """Tests ``checkpoint``; the uncertainty plots/JSON go to ``out_dir``."""
    from mmengine.runner import Runner

    from mmchh.utils.run_config import set_uncertainty_out_dir
    cfg = cfg.copy()
    cfg.load_from = checkpoint
    set_uncertainty_out_dir(cfg, out_dir, overwrite=True)
    cfg.visualizer = dict(cfg.visualizer, name=f'vis_{osp.basename(out_dir)}')
    return Runner.from_cfg(cfg).test()


def write_before_after_diagram(work_dir):
    """Test1 reliability before and after calibration, side by side."""
    import json

    from mmchh.visualization.calibration_plots import \
        reliability_diagram_png
    with open(osp.join(work_dir, 'uncalibrated', 'unc_uncertainty.json')) as f:
        before = json.load(f)['reliability']
    with open(osp.join(work_dir, 'unc_uncertainty.json')) as f:
        after = json.load(f)['reliability']
    reliability_diagram_png(
        osp.join(work_dir, 'test1_reliability_before_after.png'),
        {k: np.asarray(v, dtype=float) if isinstance(v, list) else v
         for k, v in before.items()},
        {k: np.asarray(v, dtype=float) if isinstance(v, list) else v
         for k, v in after.items()},
        title='Test1: before / after temperature scaling')


def train_and_test(cfg, config_name):
    """Trains (stage 3), then tests on Test1 (stage 4): the calibrated
    checkpoint when training wrote one, and the best one before it.

    Args:
        cfg (Config): the run's config (see :func:`prepare_run`).
        config_name (str): the config as the stage's banner names it.

    Returns:
        tuple: (metrics, metrics_before, checkpoint) -- Test1 metrics of
        ``checkpoint`` (the calibrated one when it exists, else the best),
        and of the best checkpoint before calibration (None without one).
    """
    from mmengine.runner import Runner

    stage(3, f'train {config_name} '
          f'({cfg.train_cfg.max_epochs} epochs) -> {cfg.work_dir}')
    runner = Runner.from_cfg(cfg)
    runner.train()
    ckpt_hook = next(h for h in runner.hooks
                     if type(h).__name__ == 'CheckpointHook')
    best = getattr(ckpt_hook, 'best_ckpt_path', None) or osp.join(
        cfg.work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')

    calibrated = osp.join(cfg.work_dir, 'calibrated.pth')
    metrics_before = None
    if osp.isfile(calibrated):
        # the same split before calibration, for the before/after numbers
        stage(4, f'test {osp.basename(best)} (uncalibrated) and '
              'calibrated.pth on Test1')
        metrics_before = run_test(cfg, best,
                                  osp.join(cfg.work_dir, 'uncalibrated'))
        best = calibrated
    else:
        stage(4, f'test {osp.basename(best)} on Test1')
    metrics = run_test(cfg, best, cfg.work_dir)
    if metrics_before is not None:
        write_before_after_diagram(cfg.work_dir)
    return metrics, metrics_before, best


def load_calibration_report(work_dir):
    """The temperature fit training wrote (``calibration.json``).

    Returns:
        dict | None: the report, None when training did not calibrate.
    """
    import json
    report_path = osp.join(work_dir, 'calibration.json')
    if not osp.isfile(report_path):
        return None
    with open(report_path) as f:
        return json.load(f)


def test1_calibration_change(work_dir):
    """Test1's NLL, ECE and AUC change by calibration, paired: the same
    resampled Test1 images for the uncalibrated and the calibrated run
    (their ``unc_landmarks.npz``), 95 % intervals.

    Returns:
        dict | None: name -> ``BootstrapInterval`` dict; None without both
        runs or when they cannot be compared (the reason is printed).
    """
    from mmchh.evaluation.functional import compare_runs
    from mmchh.utils.io import read_npz
    before = osp.join(work_dir, 'uncalibrated', 'unc_landmarks.npz')
    after = osp.join(work_dir, 'unc_landmarks.npz')
    if not (osp.isfile(before) and osp.isfile(after)):
        return None
    try:
        intervals = compare_runs(read_npz(before), read_npz(after),
                                 ('NLL', 'ECE', 'AUC'),
                                 names=(before, after))
    except ValueError as e:
        print(f'no paired before/after comparison on Test1: {e}')
        return None
    return {name: i.as_dict() for name, i in intervals.items()}


def test1_mean_position_baseline(coco):
    """The mean-position baseline on the converted set's Test1.

    Args:
        coco (str): the converted set (``train.json``, ``test1.json``).

    Returns:
        dict: the baseline's ``MRE``, ``SDR_2mm``... (mm, %).
    """
    from mmchh.evaluation.mean_position_baseline import \
        mean_position_baseline
    return mean_position_baseline(
        osp.join(coco, 'train.json'), osp.join(coco, 'test1.json'))
