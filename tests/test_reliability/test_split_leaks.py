"""The tools refuse to calibrate on a test split, or to calibrate on or
score a split whose images are in the training (or calibration) split of
the same conversion; ``--allow-split-overlap`` proceeds and the outputs
record it."""
import json
import os.path as osp
import shutil

import pytest

from mmchh.datasets.split_leaks import SplitLeakError, check_split
from mmchh.testing import run_tool_in_process


def _rewrite(path, change):
    data = json.load(open(path))
    change(data)
    with open(path, 'w') as f:
        json.dump(data, f)


@pytest.fixture
def leaky_copy(calibrated_small_demo, tmp_path):
    """A copy of the demo's conversion whose test1.json also holds the
    first training image (a copy under another record)."""
    copy = str(tmp_path / 'coco')
    shutil.copytree(calibrated_small_demo['data'], copy)
    first = json.load(open(osp.join(copy, 'train.json')))['images'][0]

    def add(data):
        data['images'].append(dict(first, id=999))
        ann = dict(data['annotations'][0], id=999, image_id=999)
        data['annotations'].append(ann)

    _rewrite(osp.join(copy, 'test1.json'), add)
    return copy, first['file_name']


def test_calibrating_on_the_test_split_is_refused(calibrated_small_demo,
                                                  tmp_path):
    """``calibrate.py CONFIG CKPT --cfg-options
    calib_dataloader.dataset.ann_file=test1.json`` stops with one line;
    with the override it calibrates and calibration.json records it."""
    run = calibrated_small_demo
    argv = [run['cfg'], run['ckpt'], '--no-validate', '--cfg-options',
            'calib_dataloader.dataset.ann_file=test1.json']
    proc = run_tool_in_process(
        'calibrate', argv + ['--work-dir', str(tmp_path / 'a')])
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert '\n' not in line and line.startswith('calibrate.py: error: ')
    assert 'test1.json' in line and "conversion's test split" in line
    assert '--allow-split-overlap' in line
    assert not osp.exists(tmp_path / 'a' / 'calibration.json')
    proc = run_tool_in_process(
        'calibrate', argv + ['--work-dir', str(tmp_path / 'b'),
                             '--allow-split-overlap'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'calibrate.py: warning: --allow-split-overlap' in proc.stderr
    report = json.load(open(tmp_path / 'b' / 'calibration.json'))
    check = report['split_check']
    assert check['overridden'] and check['use'] == 'calibrate'
    assert check['split'].endswith('test1.json')
    assert "test split" in check['problems'][0]['reason']


def test_scoring_a_split_that_overlaps_train_is_refused(
        calibrated_small_demo, leaky_copy, tmp_path):
    """tools/test.py on a test split holding a training image names both
    files and the pair; the override scores it and --out records it."""
    copy, shared = leaky_copy
    run = calibrated_small_demo
    argv = [run['cfg'], run['ckpt'], '--work-dir', str(tmp_path / 'w'),
            '--cfg-options', f'test_dataloader.dataset.data_root={copy}']
    proc = run_tool_in_process('test', argv)
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert '\n' not in line and line.startswith('test.py: error: ')
    assert osp.join(copy, 'test1.json') in line
    assert osp.join(copy, 'train.json') in line
    assert f'e.g. {shared} and {shared} (same pixels)' in line
    out = tmp_path / 'metrics.json'
    proc = run_tool_in_process(
        'test', argv + ['--allow-split-overlap', '--out', str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'test.py: warning: --allow-split-overlap' in proc.stderr
    check = json.load(open(out))['split_check']
    assert check['use'] == 'score'
    assert check['problems'][0]['other_split'] == osp.join(copy,
                                                           'train.json')
    assert check['problems'][0]['count'] == 1


def test_measuring_on_the_calibration_split_is_refused(
        calibrated_small_demo, tmp_path):
    run = calibrated_small_demo
    calib = osp.join(run['data'], 'calib.json')
    proc = run_tool_in_process('measure', [
        run['cfg'], run['ckpt'], calib, '--out-dir', str(tmp_path / 'm'),
        '--num-samples', '10', '--no-progress'])
    assert proc.returncode == 1
    assert proc.stderr.startswith('measure.py: error: refusing to score '
                                  f'{calib}')
    assert '(the calib split)' in proc.stderr
    assert not osp.exists(tmp_path / 'm')


def test_group_shared_across_splits_counts_as_overlap(leaky_copy):
    copy, _ = leaky_copy

    def group(name):
        def change(data):
            for img in data['images']:
                img['pixel_sha256'] = img['file_name']  # all different
                img['group'] = name
        return change

    for split in ('train', 'val', 'calib', 'test1', 'test2'):
        _rewrite(osp.join(copy, f'{split}.json'),
                 group('p1' if split in ('train', 'test1') else split))
    with pytest.raises(SplitLeakError, match=r'\(same group\)'):
        check_split(osp.join(copy, 'test1.json'), 'score')
    assert check_split(osp.join(copy, 'test2.json'), 'score') is None


def test_old_conversion_without_hashes_checks_roles_only(leaky_copy,
                                                         capsys):
    """Splits written before hashes: one warning, the overlap is not
    seen, calibrating on a test split is still refused."""
    copy, _ = leaky_copy
    for split in ('train', 'val', 'calib', 'test1', 'test2'):

        def strip(data):
            data['info'].pop('role', None)
            for img in data['images']:
                img.pop('pixel_sha256', None)

        _rewrite(osp.join(copy, f'{split}.json'), strip)
    test1 = osp.join(copy, 'test1.json')
    assert check_split(test1, 'score', tool='t') is None
    assert 't: warning:' in capsys.readouterr().err
    with pytest.raises(SplitLeakError, match="conversion's test split"):
        check_split(test1, 'calibrate')
    # a split outside any conversion is not checked
    shutil.copy(test1, osp.join(osp.dirname(copy), 'loose.json'))
    assert check_split(osp.join(osp.dirname(copy), 'loose.json'),
                       'calibrate') is None
