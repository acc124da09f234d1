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

``--quick`` trains 2 epochs on a tiny set (the smoke test in
tests/test_benchmarks); its numbers mean nothing.
"""
import argparse
import glob
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import time

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

#: arm -> (config, the test variants: name -> extra --cfg-options)
ARMS = {
    'mean': ('configs/ceph/unet_r34_onehot_synthetic_demo.py', {
        'subpixel': ['model.head.decoder.subpixel_radius=1'],
    }),
    'both': ('configs/ceph/unet_r34_multiannotator_synthetic_demo.py', {}),
    'quarter': ('configs/ceph/unet_r34_onehot_quarter_synthetic_demo.py', {
        'mode': ['model.head.decoder.subpixel_radius=0'],
    }),
}
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader',
           'calib_dataloader')
#: the numbers of each row, in table order: (metrics key, header, format)
COLUMNS = (
    ('ceph/MRE', 'MRE (mm)', '{:.2f}'),
    ('ceph/SDR_2mm', 'SDR 2 mm (%)', '{:.1f}'),
    ('ceph/SDR_4mm', 'SDR 4 mm (%)', '{:.1f}'),
    ('unc/MERE', 'MERE (mm)', '{:.2f}'),
    ('unc/NLL', 'test NLL', '{:.2f}'),
    ('unc/ECE', 'ECE', '{:.3f}'),
    ('unc/pearson', 'ERE–error Pearson', '{:.2f}'),
    ('unc/spearman', 'Spearman', '{:.2f}'),
    ('unc/AUC', 'AUC (error > 2 mm)', '{:.2f}'),
)


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


def run(cmd, log, threads):
    """Runs one tool command, its output to ``log``; raises with the log's
    tail when it fails."""
    env = dict(os.environ)
    if threads:
        env['OMP_NUM_THREADS'] = str(threads)
    print('$ ' + ' '.join(cmd), flush=True)
    start = time.time()
    with open(log, 'w') as f:
        proc = subprocess.run(cmd, cwd=REPO, stdout=f,
                              stderr=subprocess.STDOUT, env=env)
    if proc.returncode:
        with open(log) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f'{cmd[1]} failed (rc {proc.returncode}); log '
                           f'{log}:\n{tail}')
    print(f'  done in {time.time() - start:.0f} s', flush=True)


def data_options(coco):
    """--cfg-options pointing every split at the claims' set."""
    return [f'{loader}.dataset.data_root={coco}/' for loader in LOADERS]


def make_data(args):
    """The demo's synthetic set with ``--num-test1`` test images."""
    from mmchh.demo import make_demo_data
    coco = osp.join(args.work_dir, 'data', 'synthetic_ceph_coco')
    if osp.isfile(osp.join(coco, 'test1.json')):
        return coco
    made = make_demo_data(
        osp.join(args.work_dir, 'data'), (128, 160),
        num_train=12 if args.quick else 24,
        num_test1=args.num_test1, num_test2=1)
    return made['coco']


def run_dir(args, arm, seed):
    return osp.join(args.work_dir, f'{arm}_seed{seed}')


def train(args, coco, arm, seed):
    """tools/train.py of one arm and seed (skipped when its calibrated
    checkpoint exists: the config's TemperatureScalingHook ends training)."""
    work = run_dir(args, arm, seed)
    if osp.isfile(osp.join(work, 'calibrated.pth')):
        return
    os.makedirs(work, exist_ok=True)
    options = [f'randomness.seed={seed}'] + data_options(coco)
    if args.quick:
        options += ['train_cfg.max_epochs=2', 'train_cfg.val_interval=1']
    run([sys.executable, 'tools/train.py', ARMS[arm][0], '--work-dir', work,
         '--cfg-options'] + options, osp.join(work, 'train.out'),
        args.threads)


def best_checkpoint(work):
    """The run's best checkpoint (MMEngine keeps one), else its last."""
    found = sorted(glob.glob(osp.join(work, 'best_*.pth')))
    if found:
        return found[-1]
    found = sorted(glob.glob(osp.join(work, 'epoch_*.pth')),
                   key=lambda p: int(p.rsplit('_', 1)[1][:-4]))
    if not found:
        raise FileNotFoundError(f'no checkpoint in {work}')
    return found[-1]


#: tools/calibrate.py --fit of each calibrated checkpoint: the default
#: (do-no-harm) and the unchecked per-landmark fit
FITS = ('safe', 'per-landmark')


def calibrate(args, coco, arm, seed):
    """tools/calibrate.py of the run's best checkpoint with each fit of
    :data:`FITS`, into ``calib_<fit>/`` (skipped when written). The
    training run's own hook calibrated too; recalibrating with the tool
    makes every run's calibration the current code's."""
    work = run_dir(args, arm, seed)
    for fit in FITS:
        out = osp.join(work, f'calib_{fit}')
        if osp.isfile(osp.join(out, 'calibrated.pth')):
            continue
        os.makedirs(out, exist_ok=True)
        run([sys.executable, 'tools/calibrate.py', ARMS[arm][0],
             best_checkpoint(work), '--work-dir', out, '--fit', fit,
             '--no-validate', '--cfg-options'] + data_options(coco),
            osp.join(out, 'calibrate.out'), args.threads)


def variants(arm):
    """(variant, checkpoint, extra options) of one arm's tests; the
    checkpoint relative to the run's folder (``best`` for the best one)."""
    out = [('uncalibrated', 'best', []),
           ('calibrated', 'calib_safe/calibrated.pth', []),
           ('calibrated_per_landmark', 'calib_per-landmark/calibrated.pth',
            [])]
    for name, options in ARMS[arm][1].items():
        out.append((name, 'calib_safe/calibrated.pth', options))
    return out


def test(args, coco, arm, seed):
    """tools/test.py of every variant; returns {variant: metrics}."""
    work = run_dir(args, arm, seed)
    results = {}
    for name, kind, options in variants(arm):
        out_dir = osp.join(work, 'test', name)
        out = osp.join(out_dir, 'metrics.json')
        if not osp.isfile(out):
            if coco is None:
                raise FileNotFoundError(
                    f'{out} is missing; run the test stage first')
            ckpt = best_checkpoint(work) if kind == 'best' else osp.join(
                work, kind)
            os.makedirs(out_dir, exist_ok=True)
            run([sys.executable, 'tools/test.py', ARMS[arm][0], ckpt,
                 '--work-dir', out_dir, '--out', out, '--cfg-options'] +
                data_options(coco) + options,
                osp.join(out_dir, 'test.out'), args.threads)
        with open(out) as f:
            results[name] = json.load(f)
    return results


# --------------------------------------------------------------------------
# paired comparisons on the per-landmark arrays UncertaintyMetric writes
# --------------------------------------------------------------------------
def load_landmarks(work, variant):
    """The test's per-landmark table (``unc_landmarks.npz``)."""
    from mmchh.utils.io import read_npz
    return read_npz(osp.join(work, 'test', variant, 'unc_landmarks.npz'))


#: (name, side a (arm, variant), side b, statistics)
COMPARISONS = [
    ('calibrated - uncalibrated ({arm})', None, 'calibrated',
     ('NLL', 'ECE', 'pearson', 'spearman', 'AUC')),
    ('per-landmark fit - uncalibrated ({arm})', None,
     'calibrated_per_landmark', ('NLL', 'ECE', 'pearson', 'spearman', 'AUC')),
    ('both annotators - mean (calibrated)', ('mean', 'calibrated'),
     ('both', 'calibrated'),
     ('MRE', 'SDR', 'MERE', 'NLL', 'ECE', 'pearson', 'spearman', 'AUC')),
    ('sub-pixel - mode (full resolution)', ('mean', 'calibrated'),
     ('mean', 'subpixel'), ('MRE', 'SDR', 'spearman', 'AUC')),
    ('sub-pixel - mode (quarter)', ('quarter', 'mode'),
     ('quarter', 'calibrated'), ('MRE', 'SDR', 'spearman', 'AUC')),
]


def comparisons(args):
    """Every paired comparison whose arms ran, per seed, and how many
    seeds' intervals exclude 0 on either side (errors in mm: ``SDR`` is
    below 2 mm, ``AUC`` flags errors above 2 mm)."""
    from mmchh.evaluation.functional import compare_runs
    pairs = []
    for name, a, b, stats in COMPARISONS:
        if a is None:
            pairs += [(name.format(arm=arm), (arm, 'uncalibrated'),
                       (arm, b), stats) for arm in args.arms]
        elif a[0] in args.arms and b[0] in args.arms:
            pairs.append((name, a, b, stats))
    out = []
    for name, a, b, stats in pairs:
        per_seed = {}
        for seed in args.seeds:
            intervals = compare_runs(
                load_landmarks(run_dir(args, a[0], seed), a[1]),
                load_landmarks(run_dir(args, b[0], seed), b[1]), stats,
                names=(f'{a[0]}/{a[1]}', f'{b[0]}/{b[1]}'),
                num_resamples=200 if args.quick else 1000)
            per_seed[seed] = {k: v.as_dict() for k, v in intervals.items()}
        summary = {}
        for stat in stats:
            rows = [per_seed[s][stat] for s in args.seeds]
            # NaN ends (no interval) compare False: never counted
            summary[stat] = dict(
                spread([r['estimate'] for r in rows]),
                seeds_above_0=sum(r['low'] > 0 for r in rows),
                seeds_below_0=sum(r['high'] < 0 for r in rows))
        out.append(dict(name=name, a=list(a), b=list(b), per_seed=per_seed,
                        summary=summary))
    return out


def spread(values):
    """mean, min, max of the finite values (NaN when none)."""
    import math
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return dict(mean=float('nan'), min=float('nan'), max=float('nan'),
                    n=0)
    return dict(mean=statistics.fmean(finite), min=min(finite),
                max=max(finite), n=len(finite))


def report(args, runs):
    """The results file: the setup, per arm/variant the metrics of every
    seed (with intervals) and their spread, and the paired comparisons."""
    import torch
    rows = []
    for arm, seeds in runs.items():
        for name, _, _ in variants(arm):
            row = dict(arm=arm, config=ARMS[arm][0], variant=name,
                       per_seed={}, spread={})
            for seed, results in seeds.items():
                metrics = results[name]
                row['per_seed'][seed] = {
                    key: dict(value=metrics.get(key),
                              low=metrics.get(f'{key}_low'),
                              high=metrics.get(f'{key}_high'))
                    for key, _, _ in COLUMNS
                }
            for key, _, _ in COLUMNS:
                row['spread'][key] = spread(
                    [row['per_seed'][s][key]['value'] for s in seeds])
            rows.append(row)
    return dict(
        command='python benchmarks/claims_over_seeds.py ' +
        ' '.join(sys.argv[1:] if args.json else []),
        date_utc=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        machine=dict(system=f'{platform.system()} {platform.machine()}',
                     logical_cpus=os.cpu_count(),
                     torch=torch.__version__),
        quick=args.quick, seeds=args.seeds, num_test1=args.num_test1,
        rows=rows, comparisons=comparisons(args))


def _cell(fmt, s):
    if not s['n']:
        return 'n/a'
    return f'{fmt.format(s["mean"])} ({fmt.format(s["min"])}–' \
        f'{fmt.format(s["max"])})'


def _signed(value):
    """``+0.123``, or 'n/a' for a missing (None / NaN) number."""
    import math
    if value is None or not math.isfinite(value):
        return 'n/a'
    return f'{value:+.3f}'


def format_tables(result):
    """Two markdown tables: metrics per arm and variant (mean over seeds,
    min–max), and the paired differences (per seed with intervals)."""
    seeds = result['seeds']
    lines = [f'Seeds {seeds}; Test1 {result["num_test1"]} images. Cells: '
             'mean over seeds (min–max).', '',
             '| arm | variant | ' + ' | '.join(h for _, h, _ in COLUMNS) +
             ' |', '|---|---|' + '---|' * len(COLUMNS)]
    for row in result['rows']:
        cells = [_cell(fmt, row['spread'][key]) for key, _, fmt in COLUMNS]
        lines.append(f'| {row["arm"]} | {row["variant"]} | ' +
                     ' | '.join(cells) + ' |')
    lines += ['', 'Paired differences b − a on the same test images: per '
              'seed the estimate and its 95 % image-bootstrap interval; '
              '"n/N > 0" / "< 0": seeds whose interval excludes 0.', '',
              '| comparison | statistic | mean over seeds | per seed | '
              'interval excludes 0 |', '|---|---|---|---|---|']
    for comp in result['comparisons']:
        for stat, s in comp['summary'].items():
            per = '; '.join(
                f'{_signed(r["estimate"])} [{_signed(r["low"])}, '
                f'{_signed(r["high"])}]'
                for r in (comp['per_seed'][k][stat]
                          for k in comp['per_seed']))
            n = len(comp['per_seed'])
            lines.append(
                f'| {comp["name"]} | {stat} | {_signed(s["mean"])} | {per} '
                f'| {s["seeds_above_0"]}/{n} > 0, {s["seeds_below_0"]}/{n} '
                '< 0 |')
    return '\n'.join(lines)


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
    result = report(args, runs)
    result['duration_s'] = round(time.time() - start, 1)
    print(format_tables(result))
    if args.json:
        from mmchh.utils.io import write_json
        write_json(args.json, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
