"""The main job end to end on the embedded synthetic ISBI-format set.

Stages: synthetic data -> convert to COCO (resized) -> train the demo config
(which calibrates at the end) -> test the best checkpoint and the calibrated
one on Test1 -> compare with the trivial baseline (each landmark at its mean
training position) -> write the results (JSON and a Markdown table with the
machine and the command) and check that every promised output exists.

Usage:
    python tools/demo.py [--data-dir data] [--work-dir work_dirs/demo]
        [--cfg-options ...]

The names this module exposes are the single source of what the
documentation may promise: :data:`DEMO_OUTPUTS` (files under the work dir),
:data:`DEMO_DATA_OUTPUTS` (paths under the data dir), :func:`make_demo_data`
(the data stages), :func:`results_markdown` (the table in ``docs/results.md``
is this function's output for the recorded JSON) and
:func:`outputs_markdown` (the table of outputs in
``docs/getting_started.md``). ``tests/test_reliability/test_docs.py`` checks
the documentation against them.
"""
import argparse
import datetime
import glob
import os
import os.path as osp
import platform
import shlex
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'ceph',
                  'unet_r34_onehot_synthetic_demo.py')

#: Every file the demo writes under ``--work-dir`` that the documentation
#: may name (shell patterns), with what it holds. The demo removes them
#: before it starts (an earlier run's copies) and fails at the end if one of
#: them is missing.
DEMO_OUTPUTS = {
    'calibrated.pth':
    'the calibrated checkpoint (temperatures and flag threshold inside)',
    'best_ceph_MRE_epoch_*.pth':
    'the best checkpoint by validation MRE, uncalibrated (only one is kept; '
    'the epoch depends on the run)',
    'calibration.json':
    'the temperature fit on the calibration split: temperatures, NLL and '
    'ECE before/after, the ERE flag threshold',
    'calib_reliability_before_after.png':
    'reliability diagram of the calibration split before and after',
    'test1_reliability_before_after.png':
    'Test1 reliability diagram before and after calibration',
    'unc_reliability.png':
    'Test1 reliability diagram (calibrated)',
    'unc_ere_vs_error.png':
    'ERE vs radial error on Test1 (calibrated)',
    'unc_roc.png':
    'ROC of ERE for errors > 2 mm on Test1 (calibrated)',
    'unc_uncertainty.json':
    'every uncertainty number on Test1 (calibrated)',
    'unc_landmarks.npz':
    'per landmark of Test1 (calibrated): error, ERE, confidence, NLL ... '
    '(what the paired before/after intervals are computed from)',
    'uncalibrated/unc_uncertainty.json':
    'the same for the best checkpoint before calibration',
    'uncalibrated/unc_landmarks.npz':
    'per landmark of Test1 before calibration',
    'demo_results.json':
    'every number the demo printed, with the machine, the command and the '
    'duration',
    'demo_results.md':
    'the results table of docs/results.md for this run, with the machine '
    'and the command',
}

#: What the data stages write under ``--data-dir`` (shell patterns).
DEMO_DATA_OUTPUTS = (
    'synthetic_ceph',
    'synthetic_ceph/RawImage/TrainingData/*.bmp',
    'synthetic_ceph/RawImage/Test1Data/*.bmp',
    'synthetic_ceph/RawImage/Test2Data/*.bmp',
    'synthetic_ceph/AnnotationsByMD/400_senior/*.txt',
    'synthetic_ceph/AnnotationsByMD/400_junior/*.txt',
    'synthetic_ceph_coco',
    'synthetic_ceph_coco/train.json',
    'synthetic_ceph_coco/val.json',
    'synthetic_ceph_coco/calib.json',
    'synthetic_ceph_coco/test1.json',
    'synthetic_ceph_coco/test2.json',
    'synthetic_ceph_coco/conversion.json',
    'synthetic_ceph_coco/images/*.png',
)

#: Images held out of the training images for validation / calibration.
NUM_VAL = 4
NUM_CALIB = 8

#: How the results table shows a number that is missing (None in the JSON).
_NA = 'n/a'


def parse_args(argv=None):
    from mmchh.utils import cli
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', default='data',
                        help='where the synthetic set and its COCO files go')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--config', default=CONFIG)
    parser.add_argument('--num-train', type=cli.any_int, default=28,
                        help=f'training images written; {NUM_VAL} are held '
                        f'out for validation and {NUM_CALIB} for calibration')
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
    from mmchh.testing.synthetic_ceph import make_synthetic_ceph

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


def stage(n, text):
    print(f'\n===== demo [{n}/5] {text} =====', flush=True)


def _cpu_model():
    """The CPU's model name from /proc/cpuinfo, else what platform says."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def _git_state():
    """``<short commit>`` plus `` with uncommitted changes`` when dirty."""
    try:
        commit = subprocess.run(
            ['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO, text=True,
            capture_output=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(
            ['git', 'status', '--porcelain', '--untracked-files=no'],
            cwd=REPO, text=True, capture_output=True, timeout=10,
            check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + (' with uncommitted changes' if dirty else '')


def machine_info():
    """What the demo's numbers and duration depend on besides the code.

    Returns:
        dict: ``cpu`` (model name), ``logical_cpus``, ``system``,
        ``python``, ``torch``, ``torch_threads``, ``load_average``
        (1-minute load when called: other processes on the machine).
    """
    import torch
    return dict(
        cpu=_cpu_model(),
        logical_cpus=os.cpu_count(),
        system=f'{platform.system()} {platform.machine()}',
        python=platform.python_version(),
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        load_average=round(os.getloadavg()[0], 2))


def _num(value, fmt, unit=''):
    """``value`` formatted, or 'n/a' when it is missing (None)."""
    return _NA if value is None else f'{value:{fmt}}{unit}'


def _pair(before, after, fmt, change=None):
    """``before → after``, with the paired change's interval when given (a
    ``BootstrapInterval`` dict)."""
    text = f'{_num(before, fmt)} → {_num(after, fmt)}'
    if change:
        text += (f' (change {_num(change.get("estimate"), "+" + fmt)}, '
                 f'[{_num(change.get("low"), "+" + fmt)}, '
                 f'{_num(change.get("high"), "+" + fmt)}])')
    return text


def _ci(metrics, key, fmt, unit=''):
    """A metric with its 95 % interval (``<key>_low`` / ``_high``) when the
    metric reported one: ``'1.80 mm [1.52, 2.10]'``."""
    text = _num(metrics.get(key), fmt, unit)
    # no value, no interval: an interval beside 'n/a' would read as one
    if metrics.get(key) is not None and f'{key}_low' in metrics:
        text += (f' [{_num(metrics.get(key + "_low"), fmt)}, '
                 f'{_num(metrics.get(key + "_high"), fmt)}]')
    return text


def results_markdown(results):
    """The Markdown the demo writes to ``demo_results.md``.

    ``docs/results.md`` holds this function's output for the recorded
    ``docs/results/demo_results.json`` verbatim (a test checks it), so the
    documented numbers, the JSON and this writer cannot drift apart.

    Args:
        results (dict): the content of ``demo_results.json`` (plain JSON
            types; missing numbers are None).

    Returns:
        str: a run line (command, date, duration), a machine line and a
        two-column table, ending with a newline.
    """
    run = results['run']
    m = run['machine']
    t1 = results['test1']
    before = results.get('test1_uncalibrated') or {}
    calib = results.get('calibration') or {}
    c = calib.get('calib', {})
    flag = calib.get('flagging', {})
    base = results['mean_position_baseline']
    # paired intervals of the before/after changes (95 %, over images)
    ci_nll, ci_ece = ((c.get('intervals') or {}).get(f'{k}_change')
                      for k in ('NLL', 'ECE'))
    t1_nll, t1_ece = ((results.get('test1_calibration_change') or {}).get(k)
                      for k in ('NLL', 'ECE'))
    lines = [
        f'Command: `{run["command"]}`, {run["date_utc"]}, '
        f'{run["duration_s"]:.0f} s wall clock'
        + (f', git commit {run["commit"]}' if run.get('commit') else '')
        + '.',
        '',
        f'Machine: {m["cpu"]}, {m["logical_cpus"]} logical CPUs, '
        f'{m["system"]}, Python {m["python"]}, torch {m["torch"]} with '
        f'{m["torch_threads"]} thread'
        f'{"" if m["torch_threads"] == 1 else "s"}; 1-minute load average '
        f'{m["load_average"]:.1f} at the start, '
        f'{run["load_average_end"]:.1f} at the end.',
        '',
        '| | value |',
        '|---|---|',
        '| Test1 MRE / SDR 2 mm / SDR 4 mm | '
        f'{_ci(t1, "ceph/MRE", ".2f", " mm")} / '
        f'{_ci(t1, "ceph/SDR_2mm", ".1f", " %")} / '
        f'{_ci(t1, "ceph/SDR_4mm", ".1f", " %")} |',
        '| mean-position baseline MRE / SDR 2 mm | '
        f'{_num(base.get("MRE"), ".2f", " mm")} / '
        f'{_num(base.get("SDR_2mm"), ".1f", " %")} |',
        '| calibration split NLL before → after | '
        f'{_pair(c.get("NLL_before"), c.get("NLL_after"), ".3f", ci_nll)} |',
        '| calibration split ECE before → after | '
        f'{_pair(c.get("ECE_before"), c.get("ECE_after"), ".3f", ci_ece)} |',
        '| Test1 NLL before → after | '
        f'{_pair(before.get("unc/NLL"), t1.get("unc/NLL"), ".3f", t1_nll)} |',
        '| Test1 ECE before → after | '
        f'{_pair(before.get("unc/ECE"), t1.get("unc/ECE"), ".3f", t1_ece)} |',
        f'| ERE flag threshold (TPR {_num(flag.get("target_tpr"), "g")} '
        'on the calibration split) | '
        f'{_num(flag.get("threshold_mm"), ".2f", " mm")} |',
        '| Test1 Good / Erroneous (count, MRE) | '
        f'{_num(t1.get("unc/good/count"), ".0f")}, '
        f'{_ci(t1, "unc/good/MRE", ".2f", " mm")} / '
        f'{_num(t1.get("unc/erroneous/count"), ".0f")}, '
        f'{_ci(t1, "unc/erroneous/MRE", ".2f", " mm")} |',
        '| ERE–error Pearson / AUC of ERE for > 2 mm | '
        f'{_ci(t1, "unc/pearson", ".2f")} / '
        f'{_ci(t1, "unc/AUC", ".2f")} |',
    ]
    levels = (calib.get('conformal') or {}).get('levels') or []
    if levels and 'unc/conformal/coverage' in t1:
        lines.append(
            f'| Test1 conformal region at {levels[0]:g} (coverage, median '
            'area) / disc baseline | '
            f'{_ci(t1, "unc/conformal/coverage", ".2f")}, '
            f'{_num(t1.get("unc/conformal/area_mm2"), ".1f", " mm²")} / '
            f'{_num(t1.get("unc/conformal/disc_coverage"), ".2f")}, '
            f'{_num(t1.get("unc/conformal/disc_area_mm2"), ".1f", " mm²")} |')
    return '\n'.join(lines) + '\n'


def outputs_markdown():
    """The table of :data:`DEMO_OUTPUTS` in ``docs/getting_started.md``."""
    lines = ['| file | what |', '|---|---|']
    lines += [f'| `{name}` | {what} |' for name, what in DEMO_OUTPUTS.items()]
    return '\n'.join(lines) + '\n'


def missing_outputs(work_dir):
    """The :data:`DEMO_OUTPUTS` patterns that match no file in ``work_dir``.
    """
    return [
        name for name in DEMO_OUTPUTS
        if not glob.glob(osp.join(glob.escape(work_dir), name))
    ]


def remove_stale_outputs(work_dir):
    """Deletes the :data:`DEMO_OUTPUTS` an earlier run left in ``work_dir``.

    Only files matching those names are touched. Afterwards every promised
    output that exists was written by this run: a stage that fails to write
    its file cannot be hidden by the previous run's copy, and the best
    checkpoint pattern names exactly one file.

    Returns:
        list[str]: the removed paths.
    """
    removed = []
    for name in DEMO_OUTPUTS:
        for path in glob.glob(osp.join(glob.escape(work_dir), name)):
            if osp.isfile(path):
                os.remove(path)
                removed.append(path)
    return removed


def _command(argv):
    """The command line as a user would type it from the repository root."""
    script = osp.relpath(osp.abspath(__file__), os.getcwd())
    if script.startswith('..'):
        script = osp.abspath(__file__)
    return shlex.join(['python', script] + list(argv))


def prepare_run(args):
    """Loads the demo config and runs the data stages into it.

    An earlier run's promised outputs are removed first (see
    :func:`remove_stale_outputs`).

    Returns:
        tuple: (cfg, data) -- the config with every dataloader pointed at
        the converted set, and what :func:`make_demo_data` returned.
    """
    from mmchh.utils.run_config import load_run_config

    cfg = load_run_config(args.config, args.cfg_options, args.work_dir)
    removed = remove_stale_outputs(cfg.work_dir)
    if removed:
        print(f'demo: removed {len(removed)} outputs of an earlier run from '
              f'{cfg.work_dir}', flush=True)
    data = make_demo_data(
        args.data_dir,
        tuple(cfg.model.head.decoder.input_size),
        num_train=args.num_train,
        num_test1=args.num_test1,
        num_test2=args.num_test2)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                   'calib_dataloader'):
        cfg[loader].dataset.data_root = data['coco']
    return cfg, data


def train_and_test(cfg, config):
    """Trains (stage 3), then tests on Test1 (stage 4): the calibrated
    checkpoint when training wrote one, and the best one before it.

    Returns:
        tuple: (metrics, metrics_before, checkpoint) -- Test1 metrics of
        ``checkpoint`` (the calibrated one when it exists, else the best),
        and of the best checkpoint before calibration (None without one).
    """
    from mmengine.runner import Runner

    stage(3, f'train {osp.relpath(config, REPO)} '
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


def print_calibration(work_dir):
    """Prints the temperature fit of ``calibration.json`` when there is one.

    Returns:
        dict | None: the report, None when training did not calibrate.
    """
    import json
    report_path = osp.join(work_dir, 'calibration.json')
    if not osp.isfile(report_path):
        return None
    with open(report_path) as f:
        report = json.load(f)
    c = report['calib']
    print(f'Temperature scaling on the calibration split '
          f'({c["num_landmarks"]} landmarks):')
    print(f'  NLL {_pair(c["NLL_before"], c["NLL_after"], ".3f")}   '
          f'ECE {_pair(c["ECE_before"], c["ECE_after"], ".4f")}')
    for name, fmt in (('NLL', '+.3f'), ('ECE', '+.4f')):
        change = c.get('intervals', {}).get(f'{name}_change')
        if change:
            print(f'  {name} change {_num(change["estimate"], fmt)}, 95 % '
                  f'interval [{_num(change["low"], fmt)}, '
                  f'{_num(change["high"], fmt)}] over the '
                  f'{change["num_images"]} calibration images (paired '
                  'bootstrap; in-sample: the fit saw these images)')
    selection = c.get('selection')
    if selection:
        print(f'  temperatures kept: {selection["chosen"]} '
              f'({selection["reason"]})')
    if 'flagging' in report:
        print('  flag landmarks with ERE > '
              f'{_num(report["flagging"]["threshold_mm"], ".2f")} mm')
    return report


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
    (``change``: :func:`test1_calibration_change`)."""
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
            print(f'  {name} change {_num(interval["estimate"], fmt)}, 95 % '
                  f'interval [{_num(interval["low"], fmt)}, '
                  f'{_num(interval["high"], fmt)}] over the '
                  f'{interval["num_images"]} Test1 images (paired bootstrap)')
    print(f'ERE-error Pearson {_ci(metrics, "unc/pearson", ".2f")}, '
          f'AUC of ERE for errors > 2 mm {_ci(metrics, "unc/AUC", ".2f")} '
          '(95 % intervals over images)\n')


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


def print_baseline(metrics, coco):
    """Prints the model against the mean-position baseline on Test1.

    Returns:
        dict: the baseline's ``MRE``, ``SDR_2mm``... (mm, %).
    """
    from mmchh.evaluation.mean_position_baseline import \
        mean_position_baseline
    baseline = mean_position_baseline(
        osp.join(coco, 'train.json'), osp.join(coco, 'test1.json'))
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
    return baseline


def write_results(work_dir, results):
    """Writes ``demo_results.json`` and its table ``demo_results.md``.

    Returns:
        dict: ``results`` as plain JSON types (what the JSON holds).
    """
    from mmchh.utils.io import atomic_write_text, to_jsonable, write_json
    results = to_jsonable(results)
    write_json(osp.join(work_dir, 'demo_results.json'), results)
    atomic_write_text(
        osp.join(work_dir, 'demo_results.md'), results_markdown(results))
    return results


def print_summary(work_dir, data, checkpoint, mre, baseline_mre, duration):
    """The closing lines: verdict against the baseline and where things are.

    Returns:
        bool: whether the model's MRE beats the baseline's.
    """
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


def _main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    start = time.time()
    date_utc = datetime.datetime.now(datetime.timezone.utc).strftime(
        '%Y-%m-%d %H:%M UTC')
    machine = machine_info()
    import mmchh  # noqa: F401

    from mmchh.utils.cli import fail

    cfg, data = prepare_run(args)
    metrics, metrics_before, checkpoint = train_and_test(cfg, args.config)
    stage(5, 'calibration, flagging and the mean-position baseline')
    report = print_calibration(cfg.work_dir)
    print_conformal(metrics, (report or {}).get('conformal') or {})
    change = test1_calibration_change(cfg.work_dir)
    print_flagging(metrics, metrics_before, change)
    baseline = print_baseline(metrics, data['coco'])
    duration = time.time() - start
    write_results(cfg.work_dir, dict(
        run=dict(
            command=_command(argv),
            date_utc=date_utc,
            duration_s=round(duration, 1),
            commit=_git_state(),
            machine=machine,
            load_average_end=round(os.getloadavg()[0], 2)),
        test1=metrics,
        test1_uncalibrated=metrics_before,
        test1_calibration_change=change,
        calibration=report,
        mean_position_baseline=baseline,
        checkpoint=checkpoint))
    beats = print_summary(cfg.work_dir, data, checkpoint, metrics['ceph/MRE'],
                          baseline['MRE'], duration)
    missing = missing_outputs(cfg.work_dir)
    if missing:
        fail('demo.py', f'{cfg.work_dir} lacks {", ".join(missing)} (every '
             'output the docs promise must be written; see DEMO_OUTPUTS in '
             'tools/demo.py)')
    return 0 if beats else 1


def main(argv=None):
    """Runs the demo; a user error (bad option, file) is one line."""
    from mmchh.utils.cli import run_tool
    return run_tool('demo.py', _main, argv)


if __name__ == '__main__':
    sys.exit(main())
