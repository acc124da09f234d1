"""What the demo model's fitted measurement intervals rest on, per split.

For each image of each split, the eight measurements' normalised residuals
``|true - center| / spread`` (the values the pooled conformal scale is
fitted on), with the landmarks drawn at pixel centres, inside the drawn
pixels, and at pixel centres widened by the landmarks' jitter fitted on the
calibration split (what calibration and the API do); the scale refitted on
the calibration split for each draw and what it gives on the other splits
(width / MAE, coverage); whether an image's landmark errors are shared (the
draws treat landmarks as independent). See
``harness/measurement_scores.py``.

Usage:

    python benchmarks/measurement_scores.py \
        [--checkpoint work_dirs/demo/calibrated.pth] \
        [--data-root data/synthetic_ceph_coco] \
        [--splits val calib test1 test2] [--calib-split calib] \
        [--json docs/results/measurement_scores.json]
"""
import argparse
import os.path as osp
import sys

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
sys.path[:0] = [p for p in (HERE, REPO) if p not in sys.path]

from harness.run_record import run_main, run_record  # noqa: E402
from harness.measurement_scores import (  # noqa: E402
    add_jitter_draws, format_table, jitter_sds, predict_split, summarise)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint',
                        default=osp.join(REPO, 'work_dirs', 'demo',
                                         'calibrated.pth'))
    parser.add_argument('--data-root',
                        default=osp.join(REPO, 'data', 'synthetic_ceph_coco'))
    parser.add_argument('--splits', nargs='+',
                        default=['val', 'calib', 'test1', 'test2'],
                        help='COCO files <data-root>/<split>.json')
    parser.add_argument('--calib-split', default='calib',
                        help='the split the scale is refitted on')
    parser.add_argument('--num-samples', type=int, default=1000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='write the results here')
    args = parser.parse_args(argv)
    if args.calib_split not in args.splits:
        parser.error(f'--calib-split {args.calib_split} is not one of '
                     f'--splits {args.splits}')
    if args.num_samples < 1:
        parser.error('--num-samples must be >= 1')
    return args


def run(args, argv):
    import torch

    from mmchh.apis import init_landmark_model
    model = init_landmark_model(None, args.checkpoint, device='cpu')
    head = model.head
    level = float(head.measurement_interval_level)
    region_level = float(head.measurement_region_level)
    if not (level == level and region_level == region_level):
        raise SystemExit(f'{args.checkpoint} has no fitted measurement '
                         'intervals: calibrate it first')
    split_images = {}
    with torch.no_grad():
        for split in args.splits:
            print(f'measurement_scores: {split}', file=sys.stderr, flush=True)
            split_images[split] = predict_split(
                model, osp.join(args.data_root, f'{split}.json'),
                args.num_samples, args.seed)
    jitter = add_jitter_draws(split_images, args.calib_split)
    result = dict(
        **run_record('measurement_scores.py', argv),
        checkpoint=osp.relpath(args.checkpoint, REPO),
        stored_scale=round(float(head.measurement_interval_scale), 4),
        level=level, region_level=region_level, calib_split=args.calib_split,
        images={s: len(v) for s, v in split_images.items()},
        jitter_sd=jitter_sds(jitter),
        **summarise(split_images, args.calib_split, level, region_level))
    return result


def main(argv=None):
    run_main(parse_args, run, argv)


if __name__ == '__main__':
    main()
