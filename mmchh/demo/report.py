# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The demo's record of a run: ``demo_results.json`` (the numbers, the
machine, the command) and its Markdown table ``demo_results.md``.

:func:`results_markdown` is the one writer of that table: ``docs/results.md``
holds its output for the recorded ``docs/results/demo_results.json``
verbatim (a test checks it). The number formats it uses
(:func:`format_number`, :func:`format_pair`, :func:`format_with_interval`)
are the ones the demo prints with too.
"""
import os
import os.path as osp
import platform

from mmchh.utils.provenance import cpu_model, git_state

__all__ = [
    'NOT_AVAILABLE', 'format_number', 'format_pair', 'format_with_interval',
    'machine_info', 'results_markdown', 'run_record', 'write_results'
]

#: How the results table shows a number that is missing (None in the JSON).
NOT_AVAILABLE = 'n/a'


def machine_info():
    """What the demo's numbers and duration depend on besides the code.

    Returns:
        dict: ``cpu`` (model name), ``logical_cpus``, ``system``,
        ``python``, ``torch``, ``torch_threads``, ``load_average``
        (1-minute load when called: other processes on the machine).
    """
    import torch
    return dict(
        cpu=cpu_model(),
        logical_cpus=os.cpu_count(),
        system=f'{platform.system()} {platform.machine()}',
        python=platform.python_version(),
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        load_average=round(os.getloadavg()[0], 2))


def run_record(command, date_utc, duration_s, machine, repo):
    """The ``run`` entry of ``demo_results.json``, read at the run's end.

    Args:
        command (str): the command line as the user typed it.
        date_utc (str): when the run started.
        duration_s (float): its wall clock so far.
        machine (dict): :func:`machine_info` at the start.
        repo (str): the checkout the code ran from (its git state).

    Returns:
        dict: ``command``, ``date_utc``, ``duration_s`` (rounded),
        ``commit`` (see :func:`~mmchh.utils.provenance.git_state`),
        ``machine`` and ``load_average_end`` (1-minute load now).
    """
    return dict(
        command=command,
        date_utc=date_utc,
        duration_s=round(duration_s, 1),
        commit=git_state(repo),
        machine=machine,
        load_average_end=round(os.getloadavg()[0], 2))


def format_number(value, fmt, unit=''):
    """``value`` formatted, or 'n/a' when it is missing (None)."""
    return NOT_AVAILABLE if value is None else f'{value:{fmt}}{unit}'


def format_pair(before, after, fmt, change=None):
    """``before → after``, with the paired change's interval when given (a
    ``BootstrapInterval`` dict)."""
    text = f'{format_number(before, fmt)} → {format_number(after, fmt)}'
    if change:
        signed = '+' + fmt
        text += (f' (change {format_number(change.get("estimate"), signed)}'
                 f', [{format_number(change.get("low"), signed)}, '
                 f'{format_number(change.get("high"), signed)}])')
    return text


def format_with_interval(metrics, key, fmt, unit=''):
    """A metric with its 95 % interval (``<key>_low`` / ``_high``) when the
    metric reported one: ``'1.80 mm [1.52, 2.10]'``."""
    text = format_number(metrics.get(key), fmt, unit)
    # no value, no interval: an interval beside 'n/a' would read as one
    if metrics.get(key) is not None and f'{key}_low' in metrics:
        text += (f' [{format_number(metrics.get(key + "_low"), fmt)}, '
                 f'{format_number(metrics.get(key + "_high"), fmt)}]')
    return text


def _run_lines(run):
    """The run line (command, date, duration, commit) and the machine line.
    """
    m = run['machine']
    return [
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
    ]


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
    num, pair, ci = format_number, format_pair, format_with_interval
    run_lines = _run_lines(results['run'])
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
    lines = run_lines + [
        '',
        '| | value |',
        '|---|---|',
        '| Test1 MRE / SDR 2 mm / SDR 4 mm | '
        f'{ci(t1, "ceph/MRE", ".2f", " mm")} / '
        f'{ci(t1, "ceph/SDR_2mm", ".1f", " %")} / '
        f'{ci(t1, "ceph/SDR_4mm", ".1f", " %")} |',
        '| mean-position baseline MRE / SDR 2 mm | '
        f'{num(base.get("MRE"), ".2f", " mm")} / '
        f'{num(base.get("SDR_2mm"), ".1f", " %")} |',
        '| calibration split NLL before → after | '
        f'{pair(c.get("NLL_before"), c.get("NLL_after"), ".3f", ci_nll)} |',
        '| calibration split ECE before → after | '
        f'{pair(c.get("ECE_before"), c.get("ECE_after"), ".3f", ci_ece)} |',
        '| Test1 NLL before → after | '
        f'{pair(before.get("unc/NLL"), t1.get("unc/NLL"), ".3f", t1_nll)} |',
        '| Test1 ECE before → after | '
        f'{pair(before.get("unc/ECE"), t1.get("unc/ECE"), ".3f", t1_ece)} |',
        f'| ERE flag threshold (TPR {num(flag.get("target_tpr"), "g")} '
        'on the calibration split) | '
        f'{num(flag.get("threshold_mm"), ".2f", " mm")} |',
        '| Test1 Good / Erroneous (count, MRE) | '
        f'{num(t1.get("unc/good/count"), ".0f")}, '
        f'{ci(t1, "unc/good/MRE", ".2f", " mm")} / '
        f'{num(t1.get("unc/erroneous/count"), ".0f")}, '
        f'{ci(t1, "unc/erroneous/MRE", ".2f", " mm")} |',
        '| ERE–error Pearson / AUC of ERE for > 2 mm | '
        f'{ci(t1, "unc/pearson", ".2f")} / '
        f'{ci(t1, "unc/AUC", ".2f")} |',
    ]
    levels = (calib.get('conformal') or {}).get('levels') or []
    if levels and 'unc/conformal/coverage' in t1:
        lines.append(
            f'| Test1 conformal region at {levels[0]:g} (coverage, median '
            'area) / disc baseline | '
            f'{ci(t1, "unc/conformal/coverage", ".2f")}, '
            f'{num(t1.get("unc/conformal/area_mm2"), ".1f", " mm²")} / '
            f'{num(t1.get("unc/conformal/disc_coverage"), ".2f")}, '
            f'{num(t1.get("unc/conformal/disc_area_mm2"), ".1f", " mm²")} |')
    return '\n'.join(lines) + '\n'


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
