"""Every tool ends by naming what it wrote: print_written on hand-made
files (only existing files written since the run's start);
tools/calibrate.py and tools/test.py on the calibrated demo run, whose
last lines name the calibrated checkpoint, the reports and the metrics
(and the test's short log line names the JSON that holds them);
tools/convert_landmarks.py, whose last line names the dataset and its
records."""
import glob
import json
import os
import os.path as osp
import time

from test_datasets.test_converters.landmark_files import (KEYPOINTS,
                                                          write_landmark_set)

from mmchh.testing import run_tool_in_process
from mmchh.utils.cli import print_written


def test_print_written_names_only_this_runs_files(tmp_path, capsys):
    old, new = tmp_path / 'old.json', tmp_path / 'new.pth'
    old.write_text('{}')
    os.utime(old, (time.time() - 3600, ) * 2)
    start = time.time()
    new.write_text('x')
    named = print_written('x.py', [('checkpoint', str(new)),
                                   ('report', str(old)), ('log', None),
                                   ('metrics', str(tmp_path / 'none'))],
                          since=start)
    assert named == [str(new)]
    assert capsys.readouterr().out == f'x.py: wrote checkpoint {new}\n'
    print_written('x.py', [('report', str(old))], since=start)
    assert capsys.readouterr().out == 'x.py: wrote no file\n'
    # without a start: every existing file, in the order given
    print_written('x.py', [('report', str(old)), ('checkpoint', str(new))])
    assert capsys.readouterr().out == (
        f'x.py: wrote report {old}; checkpoint {new}\n')


def test_calibrate_names_calibrated_checkpoint(calibrated_small_demo,
                                                tmp_path):
    work = str(tmp_path / 'calib')
    proc = run_tool_in_process('calibrate', [
        calibrated_small_demo['cfg'], calibrated_small_demo['ckpt'],
        '--work-dir', work, '--no-validate'
    ])
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last == (f'calibrate.py: wrote calibrated checkpoint '
                    f'{work}/calibrated.pth; calibration report '
                    f'{work}/calibration.json')
    assert osp.isfile(osp.join(work, 'calibrated.pth'))


def test_test_tool_names_metrics_and_log_line_names_json(
        calibrated_small_demo, tmp_path):
    work, out = str(tmp_path / 'w'), str(tmp_path / 'metrics.json')
    proc = run_tool_in_process('test', [
        calibrated_small_demo['cfg'], calibrated_small_demo['ckpt'],
        '--work-dir', work, '--out', out
    ])
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    (stamp_json, ) = glob.glob(osp.join(work, '*', '*.json'))
    assert last == (f'test.py: wrote metrics {out}; test metrics '
                    f'{stamp_json}; uncertainty report '
                    f'{work}/unc_uncertainty.json')
    # the log's test line is short and names that JSON, which holds every
    # metric the tool returned
    (log, ) = glob.glob(osp.join(work, '*', '*.log'))
    (line, ) = [ln for ln in open(log, encoding='utf-8')
                if 'Epoch(test)' in ln and 'eta:' not in ln]
    assert len(line) < 400, line
    assert line.rstrip().endswith(
        f'in {osp.relpath(stamp_json, work)})')
    with open(stamp_json) as f:
        logged = json.load(f)
    with open(out) as f:
        assert set(json.load(f)) <= set(logged)


def test_convert_landmarks_names_the_dataset(tmp_path):
    root, out = str(tmp_path / 'set'), str(tmp_path / 'out')
    write_landmark_set(root, count=1, annotators=('dr_a', ))
    done = run_tool_in_process('convert_landmarks', [
        out, '--images', osp.join(root, 'images'), '--labelme',
        f'dr_a={osp.join(root, "dr_a")}', '--test-fraction', '1',
        '--keypoints', *KEYPOINTS
    ])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == (
        f'convert_landmarks.py: wrote dataset {out}; landmark names '
        f'{out}/metainfo.py; conversion record {out}/conversion.json; '
        f'conversion report {out}/conversion_report.json')
