"""The docs' comparisons rerun over training seeds, with intervals.

Every comparison docs/ makes between recipes on the synthetic set --
training on the mean of the annotators vs on both (docs/multi_annotator.md),
the quarter-resolution heatmap and the sub-pixel decode
(docs/own_config.md), and temperature scaling (before/after, every arm) --
trained with several seeds per arm, each best checkpoint calibrated by
``tools/calibrate.py`` on the 4-image calibration split (the default
do-no-harm fit, and the unchecked per-landmark fit) and tested on one
larger synthetic Test1.

Per (arm, seed, variant) the test metrics with their 95 % image-bootstrap
intervals (``tools/test.py``: ``CephalometricMetric`` / ``UncertaintyMetric``
``<key>_low/_high``); per arm the mean and spread (min, max) over seeds; and
the paired comparisons (same test images resampled for both sides; per seed,
then how many seeds' intervals exclude 0): calibrated - uncalibrated,
both annotators - mean, sub-pixel - mode.

Stages (each skips what an earlier run already wrote, so an interrupted run
continues): ``data`` (the synthetic set: ``tools/demo.py``'s recipe with
``--num-test1`` test images), ``train`` (``tools/train.py`` per arm and
seed), ``test`` (``tools/calibrate.py`` of each best checkpoint with the
default do-no-harm fit and with the unchecked per-landmark fit, then
``tools/test.py`` per variant), ``report``.

Usage:
    python benchmarks/claims_over_seeds.py [--seeds 0 1 2] [--arms ...]
        [--work-dir work_dirs/claims] [--json docs/results/claims_over_seeds.json]
    python benchmarks/claims_over_seeds.py --table-from docs/results/claims_over_seeds.json

``--arms mean mean_amp`` compares training, calibration and testing with
``--amp`` (bf16 autocast on a CPU) against float32 (docs/seeds.md);
``--variants`` limits the tests (and the calibrations they need).

``--quick`` trains 2 epochs on a tiny set (the smoke test in
tests/test_benchmarks); its numbers mean nothing.
"""
import argparse
import json
import os.path as osp
import sys
import time

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
sys.path[:0] = [p for p in (HERE, REPO) if p not in sys.path]

from harness.claims_report import format_tables, report  # noqa: E402
from harness.claims_runs import (ARMS, calibrate, make_data,  # noqa: E402
                                 test, train)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--arms', nargs='+', default=list(ARMS),
                        choices=list(ARMS))
    parser.add_argument('--work-dir', default='work_dirs/claims')
    parser.add_argument('--num-test1', type=int, default=40,
                        help='synthetic Test1 images (19 landmarks each)')
    parser.add_argument('--stage', default='all',
                        choices=('all', 'data', 'train', 'test', 'report'))
    parser.add_argument('--threads', type=int, default=0,
                        help='torch threads of each training/test process '
                        '(OMP_NUM_THREADS); 0: the default')
    parser.add_argument('--variants', nargs='+',
                        help='test only these variants (e.g. uncalibrated '
                        'calibrated); default: every variant of each arm')
    parser.add_argument('--quick', action='store_true',
                        help='2 epochs on a tiny set (a smoke run)')
    parser.add_argument('--json', help='write the results here')
    parser.add_argument('--table-from', metavar='JSON',
                        help='print the markdown tables of a results file '
                        'and exit')
    args = parser.parse_args(argv)
    if not args.seeds:
        parser.error('--seeds needs at least one seed')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.table_from:
        with open(args.table_from) as f:
            print(format_tables(json.load(f)))
        return 0
    start = time.time()
    # the report reads only what the test stage wrote
    coco = None if args.stage == 'report' else make_data(args)
    if args.stage == 'data':
        return 0
    for seed in args.seeds:
        for arm in args.arms:
            if args.stage in ('all', 'train'):
                train(args, coco, arm, seed)
    if args.stage == 'train':
        return 0
    if args.stage in ('all', 'test'):
        for seed in args.seeds:
            for arm in args.arms:
                calibrate(args, coco, arm, seed)
    runs = {arm: {seed: test(args, coco, arm, seed) for seed in args.seeds}
            for arm in args.arms}
    if args.stage == 'test':
        return 0
    result = report(args, runs, 'python benchmarks/claims_over_seeds.py ' +
                    ' '.join(sys.argv[1:] if args.json else []))
    result['duration_s'] = round(time.time() - start, 1)
    print(format_tables(result))
    if args.json:
        from mmchh.utils.io import write_json
        write_json(args.json, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
