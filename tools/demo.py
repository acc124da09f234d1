"""The main job end to end on the embedded synthetic ISBI-format set.

Stages: synthetic data -> convert to COCO (resized) -> train the demo config
-> test the best checkpoint on Test1 -> compare with the trivial baseline
(each landmark at its mean training position) -> say where everything is.

Usage:
    python tools/demo.py [--data-dir data] [--work-dir work_dirs/demo]
        [--cfg-options ...]
"""
import argparse
import json
import os.path as osp
import sys
import time

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'ceph',
                  'unet_r34_onehot_synthetic_demo.py')


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', default='data',
                        help='where the synthetic set and its COCO files go')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--config', default=CONFIG)
    parser.add_argument('--num-train', type=int, default=24)
    parser.add_argument('--num-test1', type=int, default=8)
    parser.add_argument('--num-test2', type=int, default=4)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the demo config')
    return parser.parse_args(argv)


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
    from mmchh.evaluation.functional.calibration import \
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


def stage(n, text):
    print(f'\n===== demo [{n}/5] {text} =====', flush=True)


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    import mmchh  # noqa: F401
    from mmengine.runner import Runner

    from mmchh.datasets.isbi_converter import convert_isbi
    from mmchh.datasets.synthetic_ceph import make_synthetic_ceph
    from mmchh.evaluation.mean_position_baseline import \
        mean_position_baseline
    from mmchh.utils.run_config import load_run_config

    raw = osp.join(args.data_dir, 'synthetic_ceph')
    coco = osp.join(args.data_dir, 'synthetic_ceph_coco')
    cfg = load_run_config(args.config, args.cfg_options, args.work_dir)
    input_size = tuple(cfg.model.head.decoder.input_size)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                   'calib_dataloader'):
        cfg[loader].dataset.data_root = coco

    stage(1, f'synthetic ISBI-format set -> {raw}')
    made = make_synthetic_ceph(
        raw,
        num_train=args.num_train,
        num_test1=args.num_test1,
        num_test2=args.num_test2)

    stage(2, f'convert to COCO keypoints, resized to {input_size} -> {coco}')
    summary = convert_isbi(
        raw,
        coco,
        num_val=4,
        num_calib=4,
        resize=input_size,
        spacing=tuple(made['spacing_mm']))
    print(summary.format(), flush=True)

    stage(3, f'train {osp.relpath(args.config, REPO)} '
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

    stage(5, 'calibration, flagging and the mean-position baseline')
    report_path = osp.join(cfg.work_dir, 'calibration.json')
    if osp.isfile(report_path):
        with open(report_path) as f:
            report = json.load(f)
        c = report['calib']
        print(f'Temperature scaling on the calibration split '
              f'({c["num_landmarks"]} landmarks):')
        print(f'  NLL {c["NLL_before"]:.3f} -> {c["NLL_after"]:.3f}   '
              f'ECE {c["ECE_before"]:.4f} -> {c["ECE_after"]:.4f}')
        if 'flagging' in report:
            print(f'  flag landmarks with ERE > '
                  f'{report["flagging"]["threshold_mm"]:.2f} mm')
    if 'unc/good/count' in metrics:
        print('\nTest1, split by the ERE flag (the paper\'s Table 2):')
        print(f'{"":11s}{"count":>7s}{"MRE":>7s}' +
              ''.join(f'{"SDR " + t:>10s}'
                      for t in ('2mm', '2.5mm', '3mm', '4mm')))
        for row in ('overall', 'good', 'erroneous'):
            vals = [metrics[f'unc/{row}/{k}'] for k in (
                'count', 'MRE', 'SDR_2mm', 'SDR_2.5mm', 'SDR_3mm',
                'SDR_4mm')]
            print(f'{row:11s}{vals[0]:7.0f}{vals[1]:7.2f}' +
                  ''.join(f'{v:10.1f}' for v in vals[2:]))
        if metrics_before is not None:
            print(f'Test1 NLL {metrics_before["unc/NLL"]:.3f} -> '
                  f'{metrics["unc/NLL"]:.3f}, ECE '
                  f'{metrics_before["unc/ECE"]:.4f} -> '
                  f'{metrics["unc/ECE"]:.4f} (before -> after calibration)')
        print(f'ERE-error Pearson {metrics["unc/pearson"]:.2f}, '
              f'AUC of ERE for errors > 2 mm {metrics["unc/AUC"]:.2f}\n')
    baseline = mean_position_baseline(
        osp.join(coco, 'train.json'), osp.join(coco, 'test1.json'))
    rows = [('MRE (mm)', 'MRE'), ('SDR 2 mm (%)', 'SDR_2mm'),
            ('SDR 4 mm (%)', 'SDR_4mm')]
    print(f'{"":14s}{"model":>10s}{"baseline":>10s}')
    for label, key in rows:
        print(f'{label:14s}{metrics["ceph/" + key]:10.2f}'
              f'{baseline[key]:10.2f}')
    results = dict(
        test1=metrics,
        test1_uncalibrated=metrics_before,
        calibration=report if osp.isfile(report_path) else None,
        mean_position_baseline=baseline,
        checkpoint=best)
    with open(osp.join(cfg.work_dir, 'demo_results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    verdict = 'beats' if metrics['ceph/MRE'] < baseline['MRE'] else \
        'does NOT beat'
    print(f'\nThe model {verdict} the baseline '
          f'(MRE {metrics["ceph/MRE"]:.2f} vs {baseline["MRE"]:.2f} mm).')
    print(f'Data:        {raw} (raw), {coco} (COCO)')
    print(f'Checkpoint:  {best}')
    print(f'Plots, JSON: {cfg.work_dir}/test1_reliability_before_after.png, '
          'calib_reliability_before_after.png, unc_ere_vs_error.png, '
          'unc_roc.png; every number in demo_results.json')
    print(f'Logs:        {cfg.work_dir}')
    print(f'Total time:  {time.time() - start:.0f} s')
    if metrics['ceph/MRE'] >= baseline['MRE']:
        sys.exit(1)


if __name__ == '__main__':
    main()
