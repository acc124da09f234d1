"""Small data in the converter: a test-only conversion of any size (one
image included) and the warnings for splits too small to fit or to test
on (summary and conversion_report.json)."""
import json
import os
import os.path as osp

import pytest
from landmark_files import KEYPOINTS, write_landmark_set

from mmchh.datasets.converters import ConversionError, convert_landmarks
from mmchh.datasets.converters.split_sizes import (SMALL_SPLIT_IMAGES,
                                                   small_splits)
from mmchh.datasets.split_leaks import check_split
from mmchh.testing import run_tool_in_process


def load(out, name):
    with open(osp.join(out, name)) as f:
        return json.load(f)


def convert(root, out, **kwargs):
    kwargs.setdefault('progress', False)
    return convert_landmarks(out,
                             osp.join(root, 'images'),
                             KEYPOINTS,
                             labelme=dict(dr_a=osp.join(root, 'dr_a')),
                             **kwargs)


def test_one_image_converts_as_a_test_only_folder(tmp_path):
    root, out = str(tmp_path / 'set'), str(tmp_path / 'out')
    truth = write_landmark_set(root, count=1, annotators=('dr_a', ))
    summary = convert(root, out, test_fraction=1, spacing=0.1)
    assert summary.images_per_split == dict(train=0, val=0, calib=0, test=1)
    assert sorted(os.listdir(out)) == [
        'conversion.json', 'conversion_report.json', 'images',
        'metainfo.py', 'test.json'
    ]
    marker = load(out, 'conversion.json')
    assert marker['test_only'] is True
    assert marker['splits_written'] == ['test']
    assert set(marker['notes']) == {'train', 'val', 'calib'}
    assert all('--test-fraction 1' in n for n in marker['notes'].values())
    test = load(out, 'test.json')
    assert [i['original_file'] for i in test['images']] == ['001.png']
    assert test['annotations'][0]['keypoints_dr_a'][:2] == \
        truth['001']['dr_a'][0].tolist()
    # a test-only folder has no train/calib split to leak from
    assert check_split(osp.join(out, 'test.json'), 'score') is None


def test_test_only_keeps_every_image_of_a_batch(tmp_path):
    root, out = str(tmp_path / 'set'), str(tmp_path / 'out')
    write_landmark_set(root, count=7, annotators=('dr_a', ))
    summary = convert(root, out, test_fraction=1)
    assert summary.images_per_split['test'] == 7
    assert summary.written == ['test']
    assert [s['split'] for s in summary.small_splits] == []
    assert load(out, 'conversion.json')['test_only'] is True


def test_small_splits_are_warned_in_summary_and_report(tmp_path):
    root, out = str(tmp_path / 'set'), str(tmp_path / 'out')
    write_landmark_set(root, count=9, annotators=('dr_a', ))
    summary = convert(root, out)  # the defaults: 5 / 1 / 1 / 2
    assert summary.images_per_split == dict(train=5, val=1, calib=1, test=2)
    assert [(s['split'], s['images'], s['minimum'])
            for s in summary.small_splits] == [
                ('train', 5, SMALL_SPLIT_IMAGES['train'][0]),
                ('val', 1, SMALL_SPLIT_IMAGES['val'][0]),
                ('calib', 1, SMALL_SPLIT_IMAGES['calib'][0]),
                ('test', 2, SMALL_SPLIT_IMAGES['test'][0])]
    text = summary.format()
    assert 'warning: calib has 1 image(s), fewer than 10: too few to fit ' \
        'the temperatures and the ERE flag threshold' in text
    report = load(out, 'conversion_report.json')
    assert report['small_splits']['splits'] == summary.small_splits
    assert load(out, 'conversion.json')['test_only'] is False


def test_unwritten_splits_are_not_warned():
    counts = dict(train=50, val=5, calib=12, test=0)
    assert small_splits(counts, ['train', 'val', 'calib']) == []
    assert [s['split'] for s in small_splits(counts, ['test'])] == ['test']


@pytest.mark.parametrize('count,kwargs', [
    (1, dict()),
    (1, dict(test_fraction=0)),
    (3, dict(num_val=1, num_calib=1)),
], ids=['one_image_default', 'one_image_no_test', 'three_images'])
def test_too_few_images_name_the_test_only_route(tmp_path, count, kwargs):
    root = str(tmp_path / 'set')
    write_landmark_set(root, count=count, annotators=('dr_a', ))
    with pytest.raises(ConversionError, match='--test-fraction 1'):
        convert(root, str(tmp_path / 'out'), **kwargs)
    assert not osp.exists(str(tmp_path / 'out'))


def test_cli_converts_one_image_test_only(tmp_path):
    root, out = str(tmp_path / 'set'), str(tmp_path / 'out')
    write_landmark_set(root, count=1, annotators=('dr_a', ))
    done = run_tool_in_process('convert_landmarks', [
        out, '--images',
        osp.join(root, 'images'), '--keypoints', *KEYPOINTS, '--labelme',
        f'dr_a={osp.join(root, "dr_a")}', '--test-fraction', '1'
    ])
    assert done.returncode == 0, done.stderr
    assert 'test-only conversion' in done.stdout
    assert 'warning: test has 1 image(s)' in done.stdout
    done = run_tool_in_process('convert_landmarks', [
        str(tmp_path / 'o2'), '--images',
        osp.join(root, 'images'), '--keypoints', *KEYPOINTS, '--labelme',
        f'dr_a={osp.join(root, "dr_a")}', '--test-fraction', '1.5'
    ])
    assert done.returncode == 1
    assert 'error: --test-fraction must be a number in [0, 1]' in done.stderr
