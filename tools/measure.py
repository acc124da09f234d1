# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Evaluate the eight ISBI 2015 measurements predicted with uncertainty.

Runs the model on every image of a converted split (with each image's
spacing), samples the measurements from the calibrated heatmaps and
reports, per measurement: accuracy of the most likely class against the
annotation files' label lines, coverage of the 95 % interval for the value
computed from the ground-truth keypoints (near 0.95 when calibration works),
mean interval width, mean absolute error and mean std. Writes
DIR/measurements_eval.json and DIR/measurements_eval.csv.

The intervals are by default the fitted ones: landmarks drawn within their
conformal regions, scaled by the factor calibration stored in the checkpoint
(a checkpoint without one: a warning, and the full-map intervals, labelled
FULL-MAP); --intervals full-map asks for the full-map ones. With --calib
CALIB_JSON it instead first fits the scale of intervals drawn within
the landmarks' conformal regions on that calibration split (never the
evaluated one), writes it to DIR/measurement_intervals.json, and reports
those intervals' coverage and width beside the full-map ones; --interval-fit
reuses a fit written before.

Example:
    python tools/measure.py configs/ceph/unet_r34_onehot_synthetic_demo.py \
        work_dirs/demo/calibrated.pth data/synthetic_ceph_coco/test1.json \
        --out-dir work_dirs/demo/measurements \
        --calib data/synthetic_ceph_coco/calib.json
"""
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    from mmchh.utils import cli
    parser = cli.ArgumentParser(prog='measure.py',
                                description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint (calibrated.pth)')
    parser.add_argument('ann_file',
                        help='converted split JSON (e.g. test1.json)')
    parser.add_argument('--out-dir', help='write the JSON/CSV here '
                        '(default: next to the checkpoint, measurements/)')
    parser.add_argument('--num-samples', type=cli.positive_int, default=1000,
                        help='landmark draws per heatmap')
    parser.add_argument('--seed', type=cli.non_negative_int, default=0)
    parser.add_argument('--batch-size', type=cli.positive_int, default=4)
    parser.add_argument('--img-root', help='folder the JSON file names are '
                        'relative to (default: the JSON\'s folder)')
    parser.add_argument('--calib', help='calibration split JSON to fit the '
                        'interval scale on first (e.g. calib.json; never '
                        'the evaluated split)')
    parser.add_argument('--interval-fit', help='a measurement_intervals.json '
                        'written by an earlier --calib run, instead')
    parser.add_argument('--intervals', choices=('fitted', 'full-map'),
                        default='fitted', help='fitted (default): the '
                        'scale calibration stored in the checkpoint (or '
                        '--calib / --interval-fit); full-map: the full-map '
                        'draws\' 95 %% intervals, labelled as such')
    parser.add_argument('--level', type=cli.open_fraction, default=0.95,
                        help='coverage level of the fitted intervals')
    parser.add_argument('--region-level', type=cli.open_fraction,
                        help='conformal region level the landmarks are '
                        'drawn within (default: the model\'s highest)')
    parser.add_argument('--device', type=cli.torch_device, default='cpu',
                        help='torch device this machine has (cpu, cuda, '
                        'cuda:1...)')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument(
        '--allow-split-overlap', action='store_true',
        help='measure even on a split whose images are in the train or calib '
        'split of its conversion (refused by default); prints a warning '
        'and records the overlap in measurements_eval.json')
    cli.add_allow_config_mismatch(parser)
    cli.add_amp_option(parser)
    args = parser.parse_args(argv)
    if args.calib and args.interval_fit:
        parser.error('give --calib or --interval-fit, not both')
    return args


def _main(argv=None):
    start_time = time.time()
    args = parse_args(argv)
    from mmchh.apis import init_landmark_model
    from mmchh.apis.measure import evaluate_measurements, format_table
    from mmchh.calibration.conformal.measurement_intervals import \
        jitter_note
    from mmchh.datasets.split_leaks import check_split, record_override
    from mmchh.utils.cli import option_values
    from mmchh.utils.errors import InputError

    out_dir = args.out_dir or osp.join(
        osp.dirname(osp.abspath(args.checkpoint)), 'measurements')
    leak = check_split(args.ann_file, 'score', args.allow_split_overlap,
                       'measure.py')
    try:
        model = init_landmark_model(
            args.config, args.checkpoint, args.device,
            allow_config_mismatch=args.allow_config_mismatch, amp=args.amp)
        result = evaluate_measurements(
            model, args.ann_file, out_dir=out_dir,
            progress=not args.no_progress, calib_file=args.calib,
            **option_values(args, 'num_samples', 'seed', 'batch_size',
                            'img_root', 'interval_fit', 'level',
                            'region_level', 'intervals'))
    except ValueError as e:
        # a split, config or checkpoint that does not fit: the user's to fix
        raise InputError(str(e)) from e
    print(f'measure.py: {result["num_images"]} image(s) of '
          f'{args.ann_file}, {args.num_samples} draws per landmark')
    fit, kind = result['interval_fit'], result['intervals']
    if fit is not None:
        scale = 'inf' if fit['scale'] is None else f'{fit["scale"]:.3f}'
        where = ('stored in the checkpoint by calibration'
                 if kind['source'] == 'checkpoint' else
                 f'from {fit["num_scores"]} calibration values of '
                 f'{fit["calib_file"]}')
        print(f'measure.py: intervals: fitted, interval scale {scale} at '
              f'level {fit["level"]} {where}; landmarks drawn within their '
              f'{fit["region_level"]} conformal regions, ' + jitter_note(
                  fit.get('jitter') is not None, fit.get('jitter_images', 0)))
    else:
        print(f'measure.py: intervals: FULL-MAP ({kind["note"]})')
    print(format_table(result))
    print('acc: most likely class vs label line; acc_pt: class of the point '
          'estimate; cov95/width95: true value inside / width of the 95 % '
          'interval of full-map draws; cov_fit/w_fit: the same for the '
          'fitted interval (w/MAE: its width over the MAE); lab_ag: class '
          'of the true value vs label line')
    missing = [
        f'{name} {r["n_missing_truth"]} (truth) / '
        f'{r["n_missing_prediction"]} (prediction)'
        for name, r in result['summary'].items()
        if r.get('n_missing_truth') or r.get('n_missing_prediction')
    ]
    if missing:
        print('measure.py: measurements missing (a landmark not annotated '
              'or not predicted; not computed, see missing_reasons in '
              'measurements_eval.json): ' + ', '.join(missing))
    record_override(osp.join(out_dir, 'measurements_eval.json'), leak)
    from mmchh.utils.cli import print_written
    print_written('measure.py', [
        ('evaluation', osp.join(out_dir, 'measurements_eval.json')),
        ('table', osp.join(out_dir, 'measurements_eval.csv'))
    ], since=start_time)
    return 0


def main(argv=None):
    from mmchh.utils.cli import run_tool
    return run_tool('measure.py', _main, argv)


if __name__ == '__main__':
    sys.exit(main())
