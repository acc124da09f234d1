"""How often does temperature scaling on a small calibration split make the
test NLL worse, with the per-landmark fit and with the do-no-harm rule?

Streams the logit summaries of a pool of synthetic cephalograms (the
project's generator, another seed than the demo's data) through a trained
model ONCE, then, for each calibration size n and seed, draws n calibration
images and uses the other images of the pool (all but a reference part) as
the test set, fits the temperatures with today's rule (per-landmark MAP,
``prior_std=1``, :func:`mmchh.calibration.fit_temperatures`) and with the
do-no-harm rule (:func:`mmchh.calibration.temperature.select.
select_temperatures`) and records the test NLL change against T = 1 of each.

Two regimes:

* ``raw``: the model's logits as they are;
* ``calibrated``: the logits divided by temperatures fitted on a reference
  part of the pool (disjoint from every draw), so that T = 1 is about right
  -- where small-sample fits can only add noise.

The numbers behind docs/method.md ("Do no harm"). Usage:

    python benchmarks/calibration_harm.py [--seeds 50] \
        [--json docs/results/calibration_harm.json]
    python benchmarks/calibration_harm.py --table-from \
        docs/results/calibration_harm.json

``--quick`` is the smoke test (tests/test_benchmarks): a randomly
initialised model of the config (no checkpoint, nothing trained), a pool of
30 small images, n in (5, 10) and 2 seeds.
"""
import argparse
import glob
import os
import os.path as osp
import platform
import sys
import time

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
sys.path[:0] = [p for p in (HERE, REPO) if p not in sys.path]

from harness.temperature_draws import (REGIMES, divided,  # noqa: E402
                                       format_table, one_draw,
                                       pool_summaries, summarise)

CONFIG = osp.join(REPO, 'configs', 'ceph',
                  'unet_r34_onehot_synthetic_demo.py')


def default_checkpoint():
    """The best checkpoint of the demo run (work_dirs/demo/best_*.pth)."""
    found = sorted(glob.glob(osp.join(REPO, 'work_dirs', 'demo',
                                      'best_*.pth')))
    return found[-1] if found else None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=CONFIG)
    parser.add_argument('--checkpoint', default=None,
                        help='trained weights (default: work_dirs/demo/'
                        'best_*.pth; --quick uses a random-init model)')
    parser.add_argument('--data-dir',
                        default=osp.join(REPO, 'work_dirs', 'calibration_harm',
                                         'pool'),
                        help='where the synthetic pool is written (reused '
                        'when it is already there)')
    parser.add_argument('--pool-size', type=int, default=200)
    parser.add_argument('--pool-seed', type=int, default=1000,
                        help='seed of the synthetic pool (the demo: 0)')
    parser.add_argument('--reference-size', type=int, default=60,
                        help='pool images whose fitted temperatures make the '
                        '"calibrated" regime (never drawn)')
    parser.add_argument('--sizes', type=int, nargs='+',
                        default=[5, 10, 20, 40],
                        help='calibration set sizes n')
    parser.add_argument('--seeds', type=int, default=50)
    parser.add_argument('--prior-std', type=float, default=1.0)
    parser.add_argument('--quick', action='store_true',
                        help='random-init model, 30 small images, n in '
                        '(5, 10), 2 seeds (a smoke run)')
    parser.add_argument('--json', help='write the results here')
    parser.add_argument('--table-from', metavar='JSON',
                        help='only print the markdown table of a result')
    args = parser.parse_args(argv)
    if args.quick:
        args.pool_size, args.reference_size = 30, 10
        args.sizes, args.seeds = [5, 10], min(args.seeds, 2)
    if args.seeds < 1:
        parser.error(f'--seeds must be >= 1; got {args.seeds}')
    if max(args.sizes) + 2 > args.pool_size - args.reference_size:
        parser.error('--pool-size must leave, after --reference-size, at '
                     'least 2 test images beside the largest n')
    return args


def run(args, argv):
    import numpy as np
    import torch

    from mmchh.calibration.temperature.logit_summary import nll_from_summary
    from mmchh.calibration.temperature.fit import fit_temperatures
    start = time.time()
    # one thread: the many small fits and evaluations gain nothing from
    # more, and on a shared CPU the thread hand-offs cost 10x
    torch.set_num_threads(1)
    summary, weights, stream_s = pool_summaries(args)
    num = len(summary)
    order = np.random.default_rng(args.pool_seed).permutation(num)
    reference, rest = order[:args.reference_size], order[args.reference_size:]
    t_ref = fit_temperatures(summary[torch.as_tensor(reference)],
                             weights[reference], prior_std=args.prior_std)
    pools = dict(raw=summary, calibrated=divided(summary, t_ref))
    ones = torch.ones(weights.shape[1])
    identity = {name: nll_from_summary(s, ones) for name, s in pools.items()}
    regimes = {name: {} for name in REGIMES}
    for n in args.sizes:
        draws = {name: [] for name in REGIMES}
        for seed in range(args.seeds):
            perm = np.random.default_rng([seed, n]).permutation(rest)
            calib, test = np.sort(perm[:n]), np.sort(perm[n:])
            for name in REGIMES:
                draws[name].append(
                    one_draw(pools[name], weights, identity[name], calib,
                             test, args.prior_std))
            if seed % 10 == 9:
                print(f'n = {n}: {seed + 1} seeds ({time.time() - start:.0f}'
                      ' s)', file=sys.stderr, flush=True)
        for name in REGIMES:
            regimes[name][str(n)] = summarise(draws[name])
        print(f'n = {n}: done ({time.time() - start:.0f} s)',
              file=sys.stderr, flush=True)
    return dict(
        command='python benchmarks/calibration_harm.py ' + ' '.join(
            sys.argv[1:] if argv is None else argv),
        machine=dict(platform=platform.platform(),
                     processor=platform.processor(), cpus=os.cpu_count(),
                     torch_threads=1),
        seconds=round(time.time() - start, 1),
        stream_seconds=round(stream_s, 1),
        config=osp.relpath(args.config, REPO),
        checkpoint=None if args.quick else osp.relpath(
            args.checkpoint, REPO),
        model='random-init (--quick)' if args.quick else 'trained',
        pool=dict(images=num, seed=args.pool_seed,
                  reference=int(args.reference_size),
                  drawn_from=int(len(rest))),
        reference_temperature=dict(
            min=float(t_ref.min()), max=float(t_ref.max()),
            median=float(t_ref.median())),
        sizes=list(args.sizes), seeds=args.seeds, prior_std=args.prior_std,
        test_images={str(n): int(len(rest) - n) for n in args.sizes},
        regimes=regimes)


def main(argv=None):
    args = parse_args(argv)
    if args.table_from:
        import json
        with open(args.table_from) as f:
            print(format_table(json.load(f)))
        return 0
    if not args.quick:
        args.checkpoint = args.checkpoint or default_checkpoint()
        if not args.checkpoint or not osp.isfile(args.checkpoint):
            sys.exit('calibration_harm.py: no checkpoint (run `make demo` '
                     'for work_dirs/demo/best_*.pth, or pass --checkpoint)')
    result = run(args, argv)
    print(format_table(result))
    if args.json:
        from mmchh.utils.io import write_json
        write_json(args.json, result)
        print(f'\nwritten: {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
