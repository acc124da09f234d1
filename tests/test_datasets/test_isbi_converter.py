import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mmchh.datasets import CEPH_LANDMARK_NAMES
from mmchh.testing import run_tool_in_process
from mmchh.datasets.converters import (ConversionError, convert_isbi,
                                       padded_resize_params,
                                       parse_annotation_file)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load(out, split):
    with open(osp.join(out, f'{split}.json')) as f:
        return json.load(f)


def points_of(ann, key='keypoints'):
    return np.asarray(ann[key]).reshape(-1, 3)


def by_original(out):
    """original stem -> (image record, annotation, split) over all splits."""
    found = {}
    for split in ('train', 'val', 'calib', 'test1', 'test2'):
        data = load(out, split)
        anns = {a['image_id']: a for a in data['annotations']}
        for img in data['images']:
            stem = osp.splitext(osp.basename(img['original_file']))[0]
            assert stem not in found, f'{stem} in two splits'
            found[stem] = (img, anns[img['id']], split)
    return found


@pytest.mark.parametrize('nested,crlf', [(True, True), (False, False)])
@pytest.mark.parametrize('gt', ['mean', 'senior', 'junior'])
def test_exact_coordinates_splits_and_labels(tmp_path, isbi_tree, nested,
                                             crlf, gt):
    root, out = str(tmp_path / 'isbi'), str(tmp_path / 'coco')
    truth = isbi_tree(root, nested=nested, crlf=crlf)
    summary = convert_isbi(root, out, gt=gt, num_val=1, num_calib=2)
    assert summary.images_per_split == dict(
        train=3, val=1, calib=2, test1=2, test2=2)
    assert summary.skipped == [] and summary.annotators == ['senior',
                                                            'junior']
    found = by_original(out)
    assert set(found) == set(truth)  # complete and (checked above) disjoint
    folder_split = dict(Test1Data='test1', Test2Data='test2')
    for stem, t in truth.items():
        img, ann, split = found[stem]
        assert split == folder_split.get(t['folder'], split)
        if t['folder'] == 'TrainingData':
            assert split in ('train', 'val', 'calib')
        expected = dict(
            mean=(t['senior'] + t['junior']) / 2,
            senior=t['senior'],
            junior=t['junior'])[gt]
        np.testing.assert_array_equal(points_of(ann)[:, :2], expected)
        np.testing.assert_array_equal(points_of(ann)[:, 2], 2)
        np.testing.assert_array_equal(
            points_of(ann, 'keypoints_senior')[:, :2], t['senior'])
        np.testing.assert_array_equal(
            points_of(ann, 'keypoints_junior')[:, :2], t['junior'])
        assert ann['num_keypoints'] == 19
        assert ann['bbox'] == [0, 0, 100, 120] and ann['area'] == 12000
        assert (img['width'], img['height']) == (100, 120)
        assert img['spacing'] == [0.1, 0.1]
        assert [img[n] for n in ('ANB', 'SNB', 'SNA', 'ODI', 'APDI', 'FHI',
                                 'FMA', 'MW')] == t['labels']
        # the file name resolves relative to the output folder
        assert osp.isfile(osp.join(out, img['file_name']))
    cats = load(out, 'train')['categories']
    assert cats[0]['keypoints'] == list(CEPH_LANDMARK_NAMES)


def test_split_seed_is_fixed_and_changes_selection(tmp_path, isbi_tree):
    root = str(tmp_path / 'isbi')
    isbi_tree(root, counts=(12, 1, 1))
    picks = []
    for i, seed in enumerate((0, 0, 1)):
        out = str(tmp_path / f'o{i}')
        convert_isbi(root, out, num_val=3, num_calib=3, split_seed=seed)
        picks.append([[im['original_file'] for im in load(out, s)['images']]
                      for s in ('val', 'calib')])
    assert picks[0] == picks[1] and picks[0] != picks[2]


def test_resize_maps_points_to_where_the_pixels_went(tmp_path, isbi_tree):
    root, out = str(tmp_path / 'isbi'), str(tmp_path / 'coco')
    truth = isbi_tree(root, counts=(4, 1, 1))
    convert_isbi(root, out, gt='senior', num_val=1, num_calib=1,
                 resize=(40, 50))
    # hand-computed: 100x120 padded to aspect 0.8 -> 100x125, scale 0.4
    params = padded_resize_params(100, 120, (40, 50))
    assert params['padded_size'] == (100, 125)
    assert params['scale'] == (0.4, 0.4)
    checked = 0
    for stem, (img, ann, _) in by_original(out).items():
        assert (img['width'], img['height']) == (40, 50)
        assert img['spacing'] == pytest.approx([0.25, 0.25])
        assert img['resize_scale'] == [0.4, 0.4]
        pts = points_of(ann)[:, :2]
        np.testing.assert_allclose(
            pts, (truth[stem]['senior'] + 0.5) * 0.4 - 0.5, atol=1e-6)
        np.testing.assert_allclose(
            points_of(ann, 'keypoints_junior')[:, :2],
            (truth[stem]['junior'] + 0.5) * 0.4 - 0.5, atol=1e-6)
        resized = cv2.imread(osp.join(out, img['file_name']), 0)
        assert resized.shape == (50, 40)
        # each 9x9 block's centroid lands on its transformed keypoint
        bright = (resized.astype(float) - 10).clip(0)
        for (x, y), (px, py) in zip(truth[stem]['senior'], pts):
            x0, y0 = int(round(px)), int(round(py))
            win = bright[max(y0 - 2, 0):y0 + 3, max(x0 - 2, 0):x0 + 3]
            ys, xs = np.mgrid[max(y0 - 2, 0):y0 + 3, max(x0 - 2, 0):x0 + 3]
            # a neighbouring block may share the window: only check clean ones
            others = np.abs(truth[stem]['senior'] - [x, y]).max(1)
            if (others[others > 0] < 14).any() or min(x0, y0) < 2:
                continue
            cx = (win * xs).sum() / win.sum()
            cy = (win * ys).sum() / win.sum()
            assert abs(cx - px) < 0.3 and abs(cy - py) < 0.3
            checked += 1
    assert checked >= 10
    info = load(out, 'train')['info']
    assert 'keypoint_mapping' in info['resize']
    assert not [f for f in os.listdir(osp.join(out, 'images'))
                if '.tmp' in f]


def _corrupt(root, case):
    """Applies one kind of bad input to a fixture tree; returns the file
    (and line) the error must name."""
    sen = osp.join(root, 'AnnotationsByMD', '400_senior')
    jun = osp.join(root, 'AnnotationsByMD', '400_junior')
    raw = osp.join(root, 'RawImage', 'TrainingData')
    if case == 'image_without_annotation':
        os.remove(osp.join(sen, '002.txt'))
        os.remove(osp.join(jun, '002.txt'))
        return osp.join(raw, '002.bmp')
    if case == 'annotation_without_image':
        os.remove(osp.join(raw, '002.bmp'))
        return osp.join(sen, '002.txt')
    if case == 'annotators_disagree':
        os.remove(osp.join(jun, '002.txt'))
        return osp.join(sen, '002.txt')
    path = osp.join(sen, '002.txt')
    lines = open(path, newline='').read().split('\r\n')
    if case == 'too_few_lines':
        lines = lines[:12]
        mark = path
    elif case == 'non_numeric':
        lines[4] = '51,abc'
        mark = f'{path}:5'
    elif case == 'outside_image':
        lines[7] = '100,3'  # x == width
        mark = f'{path}:8'
    elif case == 'unreadable_image':
        with open(osp.join(raw, '002.bmp'), 'wb') as f:
            f.write(b'not a bmp at all')
        return osp.join(raw, '002.bmp')
    with open(path, 'w', newline='') as f:
        f.write('\r\n'.join(lines))
    return mark


BAD_CASES = [
    'image_without_annotation', 'annotation_without_image',
    'annotators_disagree', 'too_few_lines', 'non_numeric', 'outside_image',
    'unreadable_image'
]


@pytest.mark.parametrize('case', BAD_CASES)
def test_bad_input_names_the_file_and_writes_nothing(tmp_path, isbi_tree,
                                                     case):
    root, out = str(tmp_path / 'isbi'), str(tmp_path / 'coco')
    isbi_tree(root)
    mark = _corrupt(root, case)
    with pytest.raises(ConversionError) as err:
        convert_isbi(root, out, num_val=1, num_calib=1)
    assert mark in str(err.value)
    assert not osp.exists(out) or os.listdir(out) == []
    assert os.listdir(str(tmp_path)) == ['isbi']  # no temporary folder


@pytest.mark.parametrize('case', BAD_CASES)
def test_skip_bad_counts_and_keeps_the_rest(tmp_path, isbi_tree, case):
    root, out = str(tmp_path / 'isbi'), str(tmp_path / 'coco')
    truth = isbi_tree(root)
    _corrupt(root, case)
    with pytest.warns(UserWarning, match='skipping'):
        summary = convert_isbi(root, out, num_val=1, num_calib=1,
                               skip_bad=True)
    assert len(summary.skipped) == 1
    found = by_original(out)
    assert set(found) == set(truth) - {'002'}
    assert 'skipped 1 bad image' in summary.format()


def test_parse_annotation_file_details(tmp_path):
    path = str(tmp_path / 'a.txt')
    body = '\r\n'.join([f'{i},{2 * i} ' for i in range(19)] +
                       ['1', '2', '3', '1', '2', '3', '1', '2']) + '\r\n\r\n'
    with open(path, 'w', newline='') as f:
        f.write(body)
    ann = parse_annotation_file(path, (40, 40))
    assert ann.points[18].tolist() == [18, 36]
    assert ann.labels['MW'] == 2 and len(ann.labels) == 8
    with open(path, 'w') as f:
        f.write('\n'.join([f'{i},{i}' for i in range(19)] + ['1', '2']))
    with pytest.raises(ConversionError, match=r'a.txt:20: expected no label'):
        parse_annotation_file(path)
    with open(path, 'w') as f:
        f.write('\n'.join([f'{i},{i}' for i in range(19)] + ['x'] * 8))
    with pytest.raises(ConversionError, match='label ANB must be an integer'):
        parse_annotation_file(path)


def test_missing_gt_annotator_and_too_many_held_out(tmp_path, isbi_tree):
    root = str(tmp_path / 'isbi')
    isbi_tree(root)
    with pytest.raises(ValueError, match='cannot hold out'):
        convert_isbi(root, str(tmp_path / 'o'), num_val=3, num_calib=3)
    import shutil
    shutil.rmtree(osp.join(root, 'AnnotationsByMD', '400_junior'))
    with pytest.raises(ConversionError, match='--gt junior'):
        convert_isbi(root, str(tmp_path / 'o'), gt='junior')
    summary = convert_isbi(root, str(tmp_path / 'o'), num_val=1,
                           num_calib=1)
    assert summary.annotators == ['senior']


def test_cli(tmp_path, isbi_tree):
    root, out = str(tmp_path / 'isbi'), str(tmp_path / 'coco')
    isbi_tree(root)
    tool = osp.join(REPO, 'tools', 'dataset_converters', 'convert_isbi.py')
    ok = subprocess.run([
        sys.executable, tool, root, out, '--num-val', '1', '--num-calib',
        '1', '--resize', '40', '50'
    ], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert 'train' in ok.stdout and 'skipped 0' in ok.stdout
    assert 'resized 10/10' in ok.stdout
    _corrupt(root, 'non_numeric')
    # the error path in-process (its message as the script prints it)
    bad = run_tool_in_process('dataset_converters/convert_isbi', [
        root, str(tmp_path / 'c2'), '--num-val', '1', '--num-calib', '1'])
    assert bad.returncode == 1
    assert '002.txt:5' in bad.stderr and '--skip-bad' in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith(
        'convert_isbi.py: error: ')
    assert 'Traceback' not in bad.stderr
    skip = subprocess.run([
        sys.executable, tool, root, str(tmp_path / 'c3'), '--num-val', '1',
        '--num-calib', '1', '--skip-bad'
    ], capture_output=True, text=True)
    assert skip.returncode == 0 and 'skipped 1' in skip.stdout
    assert 'warning: skipping' in skip.stderr


def test_anisotropic_spacing_and_bad_spacing(tmp_path, isbi_tree):
    root = str(tmp_path / 'isbi')
    isbi_tree(root)
    out = str(tmp_path / 'o')
    convert_isbi(root, out, num_val=1, num_calib=1, spacing=(0.5, 0.25),
                 resize=(40, 50))
    img = load(out, 'test1')['images'][0]
    assert img['spacing'] == pytest.approx([0.5 / 0.4, 0.25 / 0.4])
    for bad in (0, -1, (0.1, 0.2, 0.3), float('nan')):
        with pytest.raises(ValueError, match='spacing'):
            convert_isbi(root, str(tmp_path / 'x'), spacing=bad)


def test_default_hold_out_fits_small_and_isbi_sized_sets(tmp_path, isbi_tree):
    from mmchh.datasets.converters import (default_hold_out,
                                           hold_out_splits)
    assert [default_hold_out(n) for n in (3, 10, 60, 150, 400)] == [
        1, 1, 6, 15, 15
    ]
    stems = [f'{i:03d}' for i in range(150)]
    split = hold_out_splits(stems, None, None, 0)
    assert (len(split['val']), len(split['calib']),
            len(split['train'])) == (15, 15, 120)
    root = str(tmp_path / 'isbi')
    isbi_tree(root)  # 6 training images
    summary = convert_isbi(root, str(tmp_path / 'o'))
    assert summary.images_per_split['val'] == 1
    assert summary.images_per_split['calib'] == 1
    info = load(str(tmp_path / 'o'), 'train')['info']
    assert (info['num_val'], info['num_calib']) == (1, 1)
