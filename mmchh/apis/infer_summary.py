# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The closing lines of ``tools/infer.py``: what the run's flags and
measurement intervals rest on, and its exit status with its lines."""
import os.path as osp
import sys

from mmchh.apis.batch_infer import invalid_landmarks
from mmchh.apis.flag_reasons import (configuration_status,
                                     describe_configuration_status)
from mmchh.calibration.conformal.measurement_intervals import jitter_note
from mmchh.models.heads.flag_basis import describe_flag_status, flag_status


def flag_line(model, results, prog='infer.py'):
    """What the run's flags rest on, in one line (with the images left
    unflagged for want of a spacing).

    Args:
        model: the landmark model whose head holds the flag threshold.
        results (list[LandmarkResult]): the run's predictions.
        prog (str): the tool name the line starts with.

    Returns:
        str: the line.
    """
    status = flag_status(model.head)
    line = f'{prog}: {describe_flag_status(status)}'
    unapplied = sum(1 for r in results if r.flag_status is not None
                    and not r.flag_status['applied'])
    if status['status'] == 'used' and unapplied:
        line += (f'; not applied to {unapplied} image(s) without spacing')
    return line


def configuration_line(model, prog='infer.py'):
    """What the configuration (plausibility) flag rests on, in one line:
    its threshold in sigma, alpha and calibration scores, or why it is not
    used.

    Args:
        model: the landmark model whose head holds the configuration model.
        prog (str): the tool name the line starts with.

    Returns:
        str: the line.
    """
    status = configuration_status(model.head)
    return f'{prog}: {describe_configuration_status(status)}'


def interval_line(intervals, prog='infer.py'):
    """Which measurement intervals the run reports, in one line.

    Args:
        intervals (dict): a result's ``intervals`` (``kind`` 'fitted' with
            ``scale``, ``level``, ``region_level``; else with ``note``).
        prog (str): the tool name the line starts with.

    Returns:
        str: the line.
    """
    if intervals['kind'] == 'fitted':
        return (f'{prog}: measurement intervals: fitted, interval scale '
                f'{intervals["scale"]:.3f} at level {intervals["level"]:g} '
                'stored in the checkpoint by calibration; landmarks drawn '
                f'within their {intervals["region_level"]:g} conformal '
                'regions, ' + jitter_note(bool(intervals.get('jitter'))))
    return f'{prog}: measurement intervals: FULL-MAP ({intervals["note"]})'


def infer_outcome(args, output, results, errors, model):
    """The exit status of a finished ``tools/infer.py`` run, with its
    lines; a staged run (``--overwrite``) is put in place only when it
    succeeded.

    Args:
        args (argparse.Namespace): the tool's options (``out_dir``,
            ``measurements``, ``format``).
        output (InferOutput): the run's output folder.
        results (list[LandmarkResult]): the predictions.
        errors (list): the files that could not be read.
        model: the landmark model.

    Returns:
        int: 0 when at least one valid landmark was predicted, else 1.
    """
    where = output.path
    if not results:
        output.keep()
        print(f'infer.py: no image could be predicted ({len(errors)} '
              f'file(s) skipped, see {osp.join(where, "landmarks.json")})',
              file=sys.stderr)
        return 1
    invalid, total = invalid_landmarks(results)
    if invalid == total:
        output.keep()
        print(f'infer.py: every landmark of every image was invalid '
              f'({total} landmarks of {len(results)} image(s): non-finite '
              f'heatmaps; the model is broken); the invalid outputs are in '
              f'{where}', file=sys.stderr)
        return 1
    output.commit()
    if invalid:
        print(f'infer.py: warning: {invalid} of {total} landmarks were '
              'invalid (non-finite heatmaps: "valid": false, no position); '
              f'see {osp.join(args.out_dir, "landmarks.csv")}',
              file=sys.stderr)
    print(f'infer.py: {len(results)} image(s) predicted, {len(errors)} '
          f'skipped; outputs in {args.out_dir}')
    print(flag_line(model, results))
    print(configuration_line(model))
    if args.measurements:
        print(interval_line(results[0].intervals))
    if 'labelme' in args.format:
        from mmchh.apis.labelme_export import LABELME_FOLDER, labelme_summary
        print(labelme_summary(results,
                              osp.join(args.out_dir, LABELME_FOLDER)))
    return 0
