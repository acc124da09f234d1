"""The main job end to end on the embedded synthetic ISBI-format set.

Stages: synthetic data -> convert to COCO (resized) -> train the demo config
(which calibrates at the end) -> test the best checkpoint and the calibrated
one on Test1 -> compare with the trivial baseline (each landmark at its mean
training position) -> write the results (JSON and a Markdown table with the
machine and the command) and check that every promised output exists.

Usage:
    python tools/demo.py [--data-dir data] [--work-dir work_dirs/demo]
        [--cfg-options ...]

The stages, what the demo promises to write (``DEMO_OUTPUTS``, the single
source of what the documentation may promise) and its results table live
in :mod:`mmchh.demo`; this tool parses the options, calls the stages in
order and prints what they found.
"""
import argparse
import datetime
import os
import os.path as osp
import shlex
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'ceph',
                  'unet_r34_onehot_synthetic_demo.py')


def parse_args(argv=None):
    from mmengine.config import DictAction

    from mmchh.demo import NUM_CALIB, NUM_VAL
    from mmchh.utils import cli
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', default='data',
                        help='where the synthetic set and its COCO files go')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--config', default=CONFIG)
    parser.add_argument('--num-train', type=cli.any_int, default=28,
                        help=f'training images written; {NUM_VAL} are held '
                        f'out for validation and {NUM_CALIB} for calibration')
    parser.add_argument('--amp', choices=('auto', 'on', 'off'),
                        default='auto',
                        help='bf16 mixed-precision training: auto = only on '
                        'a CPU with native bf16 (AMX / AVX-512 BF16)')
    parser.add_argument('--num-test1', type=cli.any_int, default=8)
    parser.add_argument('--num-test2', type=cli.any_int, default=4)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the demo config')
    args = parser.parse_args(argv)
    least = NUM_VAL + NUM_CALIB + 1
    if args.num_train < least:
        parser.error(f'--num-train must be >= {least} ({NUM_VAL} validation '
                     f'+ {NUM_CALIB} calibration + 1 training image); got '
                     f'{args.num_train}')
    for flag in ('num_test1', 'num_test2'):
        if getattr(args, flag) < 1:
            parser.error(f'--{flag.replace("_", "-")} must be >= 1; got '
                         f'{getattr(args, flag)}')
    return args


def print_calibration(report):
    """Prints the temperature fit of ``calibration.json`` (``report``;
    nothing when training did not calibrate: None)."""
    from mmchh.demo import format_number as num
    from mmchh.demo import format_pair as pair
    if report is None:
        return
    c = report['calib']
    print(f'Temperature scaling on the calibration split '
          f'({c["num_landmarks"]} landmarks):')
    print(f'  NLL {pair(c["NLL_before"], c["NLL_after"], ".3f")}   '
          f'ECE {pair(c["ECE_before"], c["ECE_after"], ".4f")}')
    for name, fmt in (('NLL', '+.3f'), ('ECE', '+.4f')):
        change = c.get('intervals', {}).get(f'{name}_change')
        if change:
            print(f'  {name} change {num(change["estimate"], fmt)}, 95 % '
                  f'interval [{num(change["low"], fmt)}, '
                  f'{num(change["high"], fmt)}] over the '
                  f'{change["num_images"]} calibration images (paired '
                  'bootstrap; in-sample: the fit saw these images)')
    selection = c.get('selection')
    if selection:
        print(f'  temperatures kept: {selection["chosen"]} '
              f'({selection["reason"]})')
    if 'flagging' in report:
        print('  flag landmarks with ERE > '
              f'{num(report["flagging"]["threshold_mm"], ".2f")} mm')


def print_conformal(metrics, conformal):
    """Prints Test1's conformal regions next to the disc baseline (the
    calibrated test's ``unc/conformal/...`` numbers, stored with the other
    Test1 numbers under ``test1`` of ``demo_results.json``) and which
    thresholds the calibration's ``conformal`` report says are in use."""
    if 'unc/conformal/coverage' not in metrics or not conformal:
        return
    unit = 'mm2' if 'unc/conformal/area_mm2' in metrics else 'px2'
    level = f'{conformal["levels"][0]:g}'
    source = conformal['sources'][level]
    print(f'\nTest1 conformal regions at {level} (fitted on the calibration '
          f'split; {source.replace("_", "-")} thresholds' +
          (f': fewer than {conformal["min_maps_per_landmark"][level]} '
           'calibration images per landmark)' if source == 'pooled' else ')')
          + ':')
    print(f'{"":16s}{"coverage":>10s}{"median area (" + unit + ")":>22s}')
    for label, key in (('heatmap region', ''), ('disc baseline',
                                                  'disc_')):
        print(f'{label:16s}{metrics[f"unc/conformal/{key}coverage"]:10.3f}'
              f'{metrics[f"unc/conformal/{key}area_{unit}"]:22.2f}')
    num_test = metrics.get('unc/overall/count')
    if num_test:
        from mmchh.evaluation.functional import conformal_coverage
        counts = list(conformal['num_per_landmark'].values())
        n = sum(counts) if source == 'pooled' else min(counts)
        low, high = conformal_coverage(
            n, float(level), confidence=0.95,
            num_test=int(num_test))['conditional']
        print(f'(with {n} calibration maps, the coverage observed on '
              f'{int(num_test)} test landmarks lies in [{low:.2f}, '
              f'{high:.2f}] 95 % of the time, were they independent draws)')


def print_flagging(metrics, metrics_before, change=None):
    """Prints Test1 split by the ERE flag, and the calibration's effect
    (``change``: :func:`mmchh.demo.test1_calibration_change`)."""
    from mmchh.demo import format_number as num
    from mmchh.demo import format_with_interval as ci
    if 'unc/good/count' not in metrics:
        return
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
    for name, fmt in (('NLL', '+.3f'), ('ECE', '+.4f'), ('AUC', '+.3f')):
        interval = (change or {}).get(name)
        if interval:
            print(f'  {name} change {num(interval["estimate"], fmt)}, 95 % '
                  f'interval [{num(interval["low"], fmt)}, '
                  f'{num(interval["high"], fmt)}] over the '
                  f'{interval["num_images"]} Test1 images (paired bootstrap)')
    print(f'ERE-error Pearson {ci(metrics, "unc/pearson", ".2f")}, '
          f'AUC of ERE for errors > 2 mm {ci(metrics, "unc/AUC", ".2f")} '
          '(95 % intervals over images)\n')


def print_baseline(metrics, baseline):
    """Prints the model against the mean-position ``baseline`` on Test1."""
    rows = [('MRE (mm)', 'MRE'), ('SDR 2 mm (%)', 'SDR_2mm'),
            ('SDR 4 mm (%)', 'SDR_4mm')]
    print(f'{"":14s}{"model":>10s}{"baseline":>10s}')
    for label, key in rows:
        low, high = (metrics.get(f'ceph/{key}_{end}')
                     for end in ('low', 'high'))
        print(f'{label:14s}{metrics["ceph/" + key]:10.2f}'
              f'{baseline[key]:10.2f}' +
              ('' if low is None else
               f'   (model: 95 % interval [{low:.2f}, {high:.2f}])'))


def print_summary(work_dir, data, checkpoint, mre, baseline_mre, duration):
    """The closing lines: verdict against the baseline and where things are.

    Returns:
        bool: whether the model's MRE beats the baseline's.
    """
    from mmchh.demo import DEMO_OUTPUTS
    beats = mre < baseline_mre  # False when MRE is NaN
    print(f'\nThe model {"beats" if beats else "does NOT beat"} the '
          f'baseline (MRE {mre:.2f} vs {baseline_mre:.2f} mm).')
    print(f'Data:        {data["raw"]} (raw), {data["coco"]} (COCO)')
    print(f'Checkpoint:  {checkpoint}')
    print(f'Outputs:     {work_dir}/: ' + ', '.join(DEMO_OUTPUTS))
    print(f'Results:     {work_dir}/demo_results.md (the table of '
          'docs/results.md for this run)')
    print(f'Total time:  {duration:.0f} s')
    return beats


def _command(argv):
    """The command line as a user would type it from the repository root."""
    script = osp.relpath(osp.abspath(__file__), os.getcwd())
    if script.startswith('..'):
        script = osp.abspath(__file__)
    return shlex.join(['python', script] + list(argv))


def _main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    start = time.time()
    date_utc = datetime.datetime.now(datetime.timezone.utc).strftime(
        '%Y-%m-%d %H:%M UTC')
    from mmchh import demo
    machine = demo.machine_info()
    from mmchh.utils.cli import fail

    cfg, data = demo.prepare_run(
        args.config, args.work_dir, args.data_dir, args.cfg_options,
        num_train=args.num_train, num_test1=args.num_test1,
        num_test2=args.num_test2)
    demo.choose_precision(cfg, args.amp)
    metrics, metrics_before, checkpoint = demo.train_and_test(
        cfg, osp.relpath(args.config, REPO))
    demo.stage(5, 'calibration, flagging and the mean-position baseline')
    report = demo.load_calibration_report(cfg.work_dir)
    print_calibration(report)
    print_conformal(metrics, (report or {}).get('conformal') or {})
    change = demo.test1_calibration_change(cfg.work_dir)
    print_flagging(metrics, metrics_before, change)
    baseline = demo.test1_mean_position_baseline(data['coco'])
    print_baseline(metrics, baseline)
    duration = time.time() - start
    demo.write_results(cfg.work_dir, dict(
        run=demo.run_record(_command(argv), date_utc, duration, machine,
                            REPO),
        test1=metrics,
        test1_uncalibrated=metrics_before,
        test1_calibration_change=change,
        calibration=report,
        mean_position_baseline=baseline,
        checkpoint=checkpoint))
    beats = print_summary(cfg.work_dir, data, checkpoint, metrics['ceph/MRE'],
                          baseline['MRE'], duration)
    missing = demo.missing_outputs(cfg.work_dir)
    if missing:
        fail('demo.py', f'{cfg.work_dir} lacks {", ".join(missing)} (every '
             'output the docs promise must be written; see DEMO_OUTPUTS in '
             'mmchh/demo/outputs.py)')
    return 0 if beats else 1


def main(argv=None):
    """Runs the demo; a user error (bad option, file) is one line."""
    from mmchh.utils.cli import run_tool
    return run_tool('demo.py', _main, argv)


if __name__ == '__main__':
    sys.exit(main())
