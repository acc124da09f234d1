"""Which conformal score gives the smaller landmark regions at equal coverage?

Runs :func:`mmchh.testing.compare_scores` (synthetic calibrated maps: the
true landmark is drawn from each map, so every map is calibrated by
construction) over several seeds, for unimodal maps (one Gaussian blob plus
a thin uniform tail) and multimodal ones (up to three blobs), and reports
per score (``density``, ``mass``) and the disc baseline, at each level: the
coverage, the median and mean region area, and the coverage among the
third of the maps that are most uncertain (largest 90 % mass region). The
numbers behind the choice in docs/method.md ("Conformal regions").

Usage:
    python benchmarks/conformal_scores.py [--seeds 5] [--quick]
        [--json docs/results/conformal_scores.json]

``--quick`` uses few, small maps (the smoke test in tests/test_benchmarks).
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import sys
import time

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from mmchh.testing import compare_scores, format_score_rows  # noqa: E402
from mmchh.utils.io import write_json  # noqa: E402

KEYS = ('coverage', 'median_area', 'mean_area', 'empty',
        'coverage_uncertain_third')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, default=5,
                        help='independent synthetic sets per map family')
    parser.add_argument('--quick', action='store_true',
                        help='few small maps (a smoke run)')
    parser.add_argument('--json', help='write the results here')
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f'--seeds must be >= 1; got {args.seeds}')
    return args


def summarise(runs):
    """Mean and spread (min, max) over seeds of each row's numbers.

    Args:
        runs (list[list[dict]]): :func:`compare_scores`' rows of each seed.

    Returns:
        list[dict]: One row per (score, level): ``score``, ``level`` and,
        per key of ``KEYS``, ``{mean, min, max}``.
    """
    out = []
    for rows in zip(*runs):
        row = dict(score=rows[0]['score'], level=rows[0]['level'])
        for key in KEYS:
            values = [r[key] for r in rows]
            row[key] = dict(mean=statistics.fmean(values), min=min(values),
                            max=max(values))
        out.append(row)
    return out


def main(argv=None):
    args = parse_args(argv)
    sizes = dict(n_calib=200, n_test=1000, size=(16, 16)) if args.quick \
        else dict(n_calib=1000, n_test=20000, size=(32, 32))
    start = time.time()
    families = {}
    for name, max_blobs in (('unimodal', 1), ('multimodal', 3)):
        runs = []
        for seed in range(args.seeds):
            print(f'{name}: seed {seed + 1}/{args.seeds}', file=sys.stderr,
                  flush=True)
            runs.append(compare_scores(seed=seed, max_blobs=max_blobs,
                                       **sizes))
        families[name] = summarise(runs)
        print(f'\n{name} maps, {args.seeds} seed(s), mean over seeds:')
        print(format_score_rows([
            dict(r, **{k: r[k]['mean'] for k in KEYS})
            for r in families[name]
        ]))
    result = dict(
        command='python benchmarks/conformal_scores.py ' + ' '.join(
            sys.argv[1:] if argv is None else argv),
        machine=dict(platform=platform.platform(),
                     processor=platform.processor(), cpus=os.cpu_count()),
        seconds=round(time.time() - start, 1),
        seeds=args.seeds,
        sizes=dict(sizes, size=list(sizes['size'])),
        families=families)
    if args.json:
        write_json(args.json, result)
        print(f'\nwritten: {args.json}')
    return result


if __name__ == '__main__':
    main()
