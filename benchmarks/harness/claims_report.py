"""The report of ``benchmarks/claims_over_seeds.py``: per arm and variant
the metrics of every seed and their spread, the paired comparisons on the
per-landmark tables the tests wrote, and the Markdown tables of both."""
import os
import os.path as osp
import platform
import statistics
import time

from .claims_runs import AMP_ARMS, ARMS, run_dir, variants

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
    ('unc/conformal/coverage', 'conformal coverage (90 %)', '{:.3f}'),
)


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
] + [(f'--amp - fp32 ({base}, {variant})', (base, variant), (amp, variant),
      ('MRE', 'SDR', 'MERE', 'NLL', 'ECE', 'pearson', 'spearman', 'AUC'))
     for amp, base in AMP_ARMS.items()
     for variant in ('uncalibrated', 'calibrated', 'calibrated_per_landmark')
     ] + [(f'--amp at predict time only ({base}, calibrated)',
           (base, 'calibrated'), (base, 'amp_predict'),
           ('MRE', 'SDR', 'MERE', 'NLL', 'ECE', 'AUC'))
          for base in AMP_ARMS.values()
          ] + [(f'--amp in training only ({base}, calibrated)',
                (base, 'calibrated'), (amp, 'fp32_predict'),
                ('MRE', 'SDR', 'MERE', 'NLL', 'ECE', 'AUC'))
               for amp, base in AMP_ARMS.items()]


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
    # the variants this run tested (--variants)
    pairs = [p for p in pairs if not args.variants or
             {p[1][1], p[2][1]} <= set(args.variants)]
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


def report(args, runs, command):
    """The results file: the setup, per arm/variant the metrics of every
    seed (with intervals) and their spread, and the paired comparisons.

    Args:
        args (Namespace): the script's options.
        runs (dict): arm -> seed -> variant -> test metrics.
        command (str): the command line recorded with the results.
    """
    import torch

    from mmchh.engine.amp import native_bf16_flags
    from mmchh.utils.provenance import cpu_model
    rows = []
    for arm, seeds in runs.items():
        for name, _, _ in variants(arm, args.variants):
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
        command=command,
        date_utc=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        machine=dict(system=f'{platform.system()} {platform.machine()}',
                     cpu=cpu_model(fallback=platform.machine()),
                     native_bf16=list(native_bf16_flags()),
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
    # the columns the file has (one recorded before a column was added
    # renders as it did)
    columns = [c for c in COLUMNS if c[0] in result['rows'][0]['spread']]
    lines = [f'Seeds {seeds}; Test1 {result["num_test1"]} images. Cells: '
             'mean over seeds (min–max).', '',
             '| arm | variant | ' + ' | '.join(h for _, h, _ in columns) +
             ' |', '|---|---|' + '---|' * len(columns)]
    for row in result['rows']:
        cells = [_cell(fmt, row['spread'][key]) for key, _, fmt in columns]
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
