import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mmchh.datasets.converters import (METAINFO_FILE, REPORT_FILE,
                                       BadImageError, ConversionError,
                                       convert_landmarks)
from mmchh.testing import folder_digest
from landmark_files import Writers, write_landmark_set

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
KEYPOINTS = ['sella', 'nasion', 'menton']
SPLITS = ('train', 'val', 'calib', 'test')


@pytest.fixture
def writers():
    return Writers


@pytest.fixture
def landmark_set():
    """Factory: ``landmark_set(root, **kwargs)`` writes a labelme set."""
    return write_landmark_set


def load(out, name):
    with open(osp.join(out, name)) as f:
        return json.load(f)


def by_stem(out):
    """stem -> (image record, annotation) over every split written."""
    found = {}
    for split in SPLITS:
        if not osp.isfile(osp.join(out, f'{split}.json')):
            continue
        data = load(out, f'{split}.json')
        anns = {a['image_id']: a for a in data['annotations']}
        for img in data['images']:
            stem = osp.splitext(img['original_file'])[0]
            assert stem not in found
            found[stem] = (img, anns[img['id']])
    return found


def kpts(ann, key='keypoints'):
    return np.asarray(ann[key]).reshape(-1, 3)


def convert(root, out, **kwargs):
    kwargs.setdefault(
        'labelme',
        dict(dr_a=osp.join(root, 'dr_a'), dr_b=osp.join(root, 'dr_b')))
    kwargs.setdefault('num_val', 1)
    kwargs.setdefault('num_calib', 1)
    kwargs.setdefault('progress', False)
    return convert_landmarks(out, osp.join(root, 'images'), KEYPOINTS,
                             **kwargs)


@pytest.mark.parametrize('embed', [False, True], ids=['no_image_data', 'image_data'])
def test_two_annotators_exact_coordinates_and_layout(tmp_path, landmark_set,
                                                     embed):
    root, out = str(tmp_path / 'set'), str(tmp_path / 'out')
    truth = landmark_set(root, count=8, embed=embed)
    summary = convert(root, out, spacing=0.1)
    assert summary.images_per_split == dict(train=4, val=1, calib=1, test=2)
    assert summary.faults == [] and summary.annotators == ['dr_a', 'dr_b']
    found = by_stem(out)
    assert set(found) == set(truth)
    for stem, (img, ann) in found.items():
        a, b = truth[stem]['dr_a'], truth[stem]['dr_b']
        # float in == float out, no rounding
        assert kpts(ann, 'keypoints_dr_a')[:, :2].tolist() == a.tolist()
        assert kpts(ann, 'keypoints_dr_b')[:, :2].tolist() == b.tolist()
        np.testing.assert_array_equal(kpts(ann)[:, :2], (a + b) / 2)
        assert kpts(ann)[:, 2].tolist() == [2, 2, 2]
        assert img['spacing'] == [0.1, 0.1]
        assert img['spacing_source'] == '--spacing'
        assert img['original_file'] == f'{stem}.png'
        # 8-bit PNG copied byte for byte
        with open(osp.join(out, img['file_name']), 'rb') as f:
            copied = f.read()
        with open(osp.join(root, 'images', f'{stem}.png'), 'rb') as f:
            assert copied == f.read()
    train = load(out, 'train.json')
    assert train['categories'][0]['keypoints'] == KEYPOINTS
    marker = load(out, 'conversion.json')
    assert marker['tool'] == 'tools/convert_landmarks.py'
    assert load(out, REPORT_FILE)['faults'] == []


def test_metainfo_is_read_by_mmpose(tmp_path, landmark_set):
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    root, out = str(tmp_path / 'set'), str(tmp_path / 'out')
    landmark_set(root)
    convert(root, out)
    meta = parse_pose_metainfo(dict(from_file=osp.join(out, METAINFO_FILE)))
    assert meta['num_keypoints'] == 3
    assert [meta['keypoint_id2name'][i] for i in range(3)] == KEYPOINTS
    assert meta['flip_indices'] == [0, 1, 2]
    assert meta['num_skeleton_links'] == 0
    assert meta['keypoint_colors'].shape == (3, 3)


def _add_shape(root, annotator, shape):
    path = osp.join(root, annotator, '002.json')
    data = load(root, osp.join(annotator, '002.json'))
    data['shapes'].append(shape)
    with open(path, 'w') as f:
        json.dump(data, f)
    return path


def _edit(root, annotator, fn):
    path = osp.join(root, annotator, '002.json')
    data = load(root, osp.join(annotator, '002.json'))
    fn(data)
    with open(path, 'w') as f:
        json.dump(data, f)
    return path


def _point(label, x=5.0, y=6.0, shape_type='point'):
    return dict(label=label,
                points=[[x, y]],
                group_id=None,
                shape_type=shape_type,
                flags={})


def _corrupt(root, case):
    """Applies one real-world fault to image 002; returns (the file the
    error names, the label it names or None, what happens to 002 under
    skip_bad: 'skipped', 'same', or (annotator, label) made invisible)."""
    images = osp.join(root, 'images')
    if case == 'labelled_twice':
        return _add_shape(root, 'dr_a',
                          _point('sella')), 'sella', ('dr_a', 'sella')
    if case == 'missing':
        path = _edit(root, 'dr_a', lambda d: d['shapes'].pop(1))
        return path, 'nasion', ('dr_a', 'nasion')
    if case == 'unknown_label':
        return _add_shape(root, 'dr_a', _point('porion')), 'porion', 'same'
    if case == 'non_point_shape':
        poly = dict(_point('menton', shape_type='polygon'),
                    points=[[1, 1], [5, 1], [5, 5]])
        return _add_shape(root, 'dr_a', poly), 'menton', 'same'
    if case == 'outside_image':
        path = _edit(root, 'dr_b',
                     lambda d: d['shapes'][2].update(points=[[45.0, 3.0]]))
        return path, 'menton', ('dr_b', 'menton')
    if case == 'annotator_lacks_file':
        os.remove(osp.join(root, 'dr_b', '002.json'))
        return osp.join(images, '002.png'), None, ('dr_b', None)
    if case == 'size_mismatch':
        path = _edit(root, 'dr_b', lambda d: d.update(imageWidth=80))
        return path, None, ('dr_b', None)
    if case == 'image_without_annotation':
        os.remove(osp.join(root, 'dr_a', '002.json'))
        os.remove(osp.join(root, 'dr_b', '002.json'))
        return osp.join(images, '002.png'), None, 'skipped'
    if case == 'annotation_without_image':
        os.remove(osp.join(images, '002.png'))
        return osp.join(root, 'dr_a', '002.json'), None, 'skipped'
    if case == 'duplicate_stems':
        cv2.imwrite(osp.join(images, '002.tif'), np.zeros((32, 40), np.uint8))
        return osp.join(images, '002.png'), None, 'skipped'
    if case == 'unreadable_image':
        with open(osp.join(images, '002.png'), 'wb') as f:
            f.write(b'not a png')
        return osp.join(images, '002.png'), None, 'skipped'
    raise AssertionError(case)


FAULTS = [
    'labelled_twice', 'missing', 'unknown_label', 'non_point_shape',
    'outside_image', 'annotator_lacks_file', 'size_mismatch',
    'image_without_annotation', 'annotation_without_image', 'duplicate_stems',
    'unreadable_image'
]


@pytest.mark.parametrize('case', FAULTS)
def test_fault_stops_naming_file_and_label(tmp_path, landmark_set, case):
    root, out = str(tmp_path / 'set'), str(tmp_path / 'out')
    landmark_set(root)
    path, label, _ = _corrupt(root, case)
    with pytest.raises(BadImageError) as err:
        convert(root, out)
    assert path in str(err.value)
    if label is not None:
        assert repr(label) in str(err.value)
    assert not osp.exists(out)
    assert sorted(os.listdir(str(tmp_path))) == ['set']  # no temporary


@pytest.mark.parametrize('case', FAULTS)
def test_skip_bad_reports_every_fault_and_keeps_the_rest(
        tmp_path, landmark_set, case):
    root, out = str(tmp_path / 'set'), str(tmp_path / 'out')
    truth = landmark_set(root)
    path, label, effect = _corrupt(root, case)
    with pytest.warns(UserWarning):
        summary = convert(root, out, skip_bad=True)
    faults = load(out, REPORT_FILE)['faults']
    assert faults == summary.faults and faults
    assert any(f['file'] == path and (label is None or f['label'] == label)
               for f in faults), faults
    assert all(f['action'] for f in faults)
    assert path in summary.format()
    found = by_stem(out)
    others = set(truth) - {'002'}
    if effect == 'skipped':
        assert set(found) == others
        return
    assert set(found) == set(truth)
    ann = found['002'][1]
    a, b = truth['002']['dr_a'], truth['002']['dr_b']
    if effect == 'same':
        np.testing.assert_array_equal(kpts(ann)[:, :2], (a + b) / 2)
        return
    annotator, lost = effect
    other = 'dr_b' if annotator == 'dr_a' else 'dr_a'
    lost_ids = [KEYPOINTS.index(lost)] if lost else [0, 1, 2]
    kept_ids = [i for i in range(3) if i not in lost_ids]
    mine = kpts(ann, f'keypoints_{annotator}')
    assert mine[lost_ids].tolist() == [[0, 0, 0]] * len(lost_ids)
    np.testing.assert_array_equal(
        kpts(ann, f'keypoints_{other}')[:, :2], truth['002'][other])
    # the ground truth of a landmark one annotator lost is the other's
    np.testing.assert_array_equal(
        kpts(ann)[lost_ids, :2], truth['002'][other][lost_ids])
    np.testing.assert_array_equal(
        kpts(ann)[kept_ids, :2], ((a + b) / 2)[kept_ids])
    assert kpts(ann)[:, 2].tolist() == [2, 2, 2]


def test_landmark_missing_for_every_annotator_is_invisible_in_gt(
        tmp_path, landmark_set):
    root, out = str(tmp_path / 'set'), str(tmp_path / 'out')
    truth = landmark_set(root)
    for annotator in ('dr_a', 'dr_b'):
        _edit(root, annotator, lambda d: d['shapes'].pop(0))  # no sella
    with pytest.warns(UserWarning):
        summary = convert(root, out, skip_bad=True)
    ann = by_stem(out)['002'][1]
    assert kpts(ann)[0].tolist() == [0, 0, 0]
    assert ann['num_keypoints'] == 2
    np.testing.assert_array_equal(
        kpts(ann)[1:, :2],
        ((truth['002']['dr_a'] + truth['002']['dr_b']) / 2)[1:])
    assert any(f['label'] == 'sella' and 'ground truth' in f['action']
               for f in summary.faults)


def test_gt_one_annotator_and_its_missing_point(tmp_path, landmark_set):
    root, out = str(tmp_path / 'set'), str(tmp_path / 'out')
    truth = landmark_set(root)
    _edit(root, 'dr_b', lambda d: d['shapes'].pop(2))  # no menton
    with pytest.warns(UserWarning):
        summary = convert(root, out, skip_bad=True, gt='dr_b')
    found = by_stem(out)
    np.testing.assert_array_equal(
        kpts(found['001'][1])[:, :2], truth['001']['dr_b'])
    gt = kpts(found['002'][1])
    assert gt[2].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(gt[:2, :2], truth['002']['dr_b'][:2])
    assert any(f['label'] == 'menton' and 'dr_b' in f['problem']
               and 'ground truth' in f['action'] for f in summary.faults)
    with pytest.raises(ConversionError, match='--gt dr_c'):
        convert(root, str(tmp_path / 'o2'), gt='dr_c')


def test_stale_image_path_is_a_note_not_a_fault(tmp_path, landmark_set):
    root, out = str(tmp_path / 'set'), str(tmp_path / 'out')
    landmark_set(root)
    _edit(root, 'dr_a', lambda d: d.update(imagePath='2.png'))
    summary = convert(root, out)
    assert summary.faults == []
    stale = load(out, REPORT_FILE)['stale_image_paths']
    assert stale['count'] == 1
    assert stale['files'][0]['imagePath'] == '2.png'
    assert stale['files'][0]['file'] == osp.join(root, 'dr_a', '002.json')
    assert summary.format().count('imagePath') == 1


def test_spacing_precedence_header_then_option_then_null(tmp_path, writers):
    root = tmp_path / 'set'
    images, labels = root / 'images', root / 'dr_a'
    images.mkdir(parents=True)
    labels.mkdir()
    pixels16 = writers.pixels(1, np.uint16)
    writers.dicom(str(images / '001.dcm'), pixels16, PixelSpacing=[0.2, 0.1])
    writers.mha(str(images / '002.mha'), pixels16, (0.3, 0.25))
    cv2.imwrite(str(images / '003.tif'), writers.pixels(3, np.uint16))
    cv2.imwrite(str(images / '004.png'), writers.pixels(4))
    for stem in ('001', '002', '003', '004'):
        writers.labelme(
            str(labels / f'{stem}.json'),
            dict(sella=(1.5, 2.25), nasion=(3, 4), menton=(30.125, 20)))
    kwargs = dict(labelme=dict(dr_a=str(labels)), test_fraction=0)
    out = str(tmp_path / 'with')
    convert(str(root), out, spacing=0.5, **kwargs)
    found = by_stem(out)
    expect = {
        '001': ([0.1, 0.2], 'PixelSpacing'),
        '002': ([0.3, 0.25], 'header'),
        '003': ([0.5, 0.5], '--spacing'),
        '004': ([0.5, 0.5], '--spacing')
    }
    for stem, (spacing, source) in expect.items():
        img = found[stem][0]
        assert (img['spacing'], img['spacing_source']) == (spacing, source)
    # DICOM, MetaImage and TIFF become 16-bit PNG copies, pixels unchanged
    for stem, pixels in (('001', pixels16), ('002', pixels16),
                         ('003', writers.pixels(3, np.uint16))):
        assert found[stem][0]['file_name'] == f'images/{stem}.png'
        copy = cv2.imread(osp.join(out, found[stem][0]['file_name']),
                          cv2.IMREAD_UNCHANGED)
        assert copy.dtype == np.uint16
        np.testing.assert_array_equal(copy, pixels)
    assert found['001'][0]['original_file'] == '001.dcm'
    assert not osp.isfile(osp.join(out, 'test.json'))  # --test-fraction 0
    out = str(tmp_path / 'without')
    summary = convert(str(root), out, **kwargs)
    found = by_stem(out)
    assert found['001'][0]['spacing'] == [0.1, 0.2]
    for stem in ('003', '004'):
        assert found[stem][0]['spacing'] is None
        assert found[stem][0]['spacing_source'] is None
    report = load(out, REPORT_FILE)
    assert sorted(report['images_without_spacing']) == ['003.tif', '004.png']
    assert '2 image(s) without spacing' in summary.format()


def test_csv_long_format_exact_and_row_faults(tmp_path, writers):
    images = tmp_path / 'images'
    images.mkdir()
    for i, stem in enumerate(('a1', 'a2', 'a3', 'a4')):
        # four different images (copies would share one split)
        cv2.imwrite(str(images / f'{stem}.png'), writers.pixels(i))
    rows = ['image,keypoint,x,y,annotator']
    truth = {}
    rng = np.random.default_rng(3)
    for stem in ('a1', 'a2', 'a3', 'a4'):
        for annotator in ('r1', 'r2'):
            pts = rng.uniform(1, 30, (3, 2))
            truth[stem, annotator] = pts
            rows += [
                f'{stem}.png,{k},{x!r},{y!r},{annotator}'
                for k, (x, y) in zip(KEYPOINTS, pts)
            ]
    rows.append('a1.png,sella,abc,3,r1')
    path = str(tmp_path / 'marks.csv')
    with open(path, 'w') as f:
        f.write('\n'.join(rows) + '\n')
    out = str(tmp_path / 'out')
    with pytest.raises(BadImageError, match=rf'marks\.csv:{len(rows)}: x, y'):
        convert_landmarks(out,
                          str(images),
                          KEYPOINTS,
                          csv=path,
                          progress=False)
    with pytest.warns(UserWarning):
        summary = convert_landmarks(out,
                                    str(images),
                                    KEYPOINTS,
                                    csv=path,
                                    skip_bad=True,
                                    num_val=1,
                                    num_calib=1,
                                    progress=False)
    assert summary.annotators == ['r1', 'r2']
    assert [f['file'] for f in summary.faults] == [path]
    assert summary.faults[0]['action'] == 'row ignored'
    for stem, (img, ann) in by_stem(out).items():
        for annotator in ('r1', 'r2'):
            assert kpts(ann, f'keypoints_{annotator}')[:, :2].tolist() == \
                truth[stem, annotator].tolist()


def test_coco_round_trip_keeps_annotators_exactly(tmp_path, landmark_set):
    root, out = str(tmp_path / 'set'), str(tmp_path / 'out')
    truth = landmark_set(root)
    convert(root, out, test_fraction=0)
    again = str(tmp_path / 'again')
    summary = convert_landmarks(again,
                                osp.join(root, 'images'),
                                KEYPOINTS,
                                coco=osp.join(out, 'train.json'),
                                skip_bad=True,
                                test_fraction=0,
                                num_val=1,
                                num_calib=1,
                                progress=False)
    assert summary.annotators == ['dr_a', 'dr_b']
    # the images held out of train.json have no annotation there: reported
    held = {s
            for s, _ in by_stem(out).items()} - {
                osp.splitext(im['original_file'])[0]
                for im in load(out, 'train.json')['images']
            }
    assert len(summary.faults) == len(held) == 2
    for stem, (img, ann) in by_stem(again).items():
        for annotator in ('dr_a', 'dr_b'):
            assert kpts(ann, f'keypoints_{annotator}')[:, :2].tolist() == \
                truth[stem][annotator].tolist()


def test_splits_are_fixed_by_seed(tmp_path, landmark_set):
    root = str(tmp_path / 'set')
    landmark_set(root, count=12)
    picks = []
    for i, seed in enumerate((0, 0, 1)):
        out = str(tmp_path / f'o{i}')
        convert(root, out, split_seed=seed, test_fraction=0.25)
        picks.append({
            s:
            [im['original_file'] for im in load(out, f'{s}.json')['images']]
            for s in SPLITS
        })
    assert picks[0] == picks[1] and picks[0] != picks[2]
    assert len(picks[0]['test']) == 3
    with pytest.raises(ConversionError, match='--test-fraction'):
        convert(root, str(tmp_path / 'x'), test_fraction=1.5)


@pytest.fixture
def earlier(tmp_path):
    """An earlier conversion: (labelme set, its output, the output's files).
    """
    root, out = str(tmp_path / 'set'), str(tmp_path / 'out')
    write_landmark_set(root)
    convert(root, out)
    return root, out, folder_digest(out)


def test_failed_conversion_leaves_the_output_as_it_was(tmp_path, earlier,
                                                       monkeypatch):
    root, out, before = earlier
    _add_shape(root, 'dr_a', _point('sella'))  # a fault: stops
    with pytest.raises(BadImageError):
        convert(root, out, resize=(20, 16))
    assert folder_digest(out) == before
    # a failure while writing (e.g. disk full) as well
    from mmchh.datasets.converters import landmarks

    def disk_full(*args, **kwargs):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(landmarks, 'write_png', disk_full)
    with pytest.raises(ConversionError, match='folder is unchanged'):
        convert(root, out, skip_bad=True, resize=(20, 16))
    assert folder_digest(out) == before
    assert sorted(os.listdir(str(tmp_path))) == ['out', 'set']


def test_resize_maps_points_and_spacing(tmp_path, landmark_set):
    root, out = str(tmp_path / 'set'), str(tmp_path / 'out')
    truth = landmark_set(root)
    convert(root, out, spacing=(0.1, 0.2), resize=(20, 16))
    for stem, (img, ann) in by_stem(out).items():
        assert (img['width'], img['height']) == (20, 16)
        assert img['resize_scale'] == [0.5, 0.5]
        assert img['spacing'] == pytest.approx([0.2, 0.4])
        np.testing.assert_allclose(kpts(ann, 'keypoints_dr_a')[:, :2],
                                   (truth[stem]['dr_a'] + 0.5) * 0.5 - 0.5,
                                   rtol=0,
                                   atol=1e-12)
        assert cv2.imread(osp.join(out, img['file_name']), 0).shape == (16, 20)


@pytest.mark.parametrize('kwargs,match', [
    (dict(keypoints=['a', 'a']), 'more than once'),
    (dict(labelme={}), 'exactly one annotation source'),
    (dict(labelme={'mean': 'x'}), 'annotator name'),
    (dict(spacing=0), '--spacing'),
    (dict(num_val=0), '--num-val'),
], ids=['repeated_keypoint', 'no_source', 'bad_annotator', 'bad_spacing',
        'zero_val'])
def test_bad_options_are_refused_before_reading(tmp_path, kwargs, match):
    args = dict(keypoints=KEYPOINTS, labelme=dict(dr_a=str(tmp_path)))
    args.update(kwargs)
    with pytest.raises(ConversionError, match=match):
        convert_landmarks(str(tmp_path / 'out'), str(tmp_path), **args)


def test_cli(tmp_path, landmark_set, capsys):
    import runpy
    root = str(tmp_path / 'set')
    landmark_set(root)
    _add_shape(root, 'dr_a', _point('porion'))
    args = [
        '--images',
        osp.join(root, 'images'), '--keypoints', *KEYPOINTS, '--labelme',
        f'dr_a={osp.join(root, "dr_a")}', '--labelme',
        f'dr_b={osp.join(root, "dr_b")}', '--num-val', '1', '--num-calib', '1',
        '--spacing', '0.1'
    ]
    main = runpy.run_path(
        osp.join(REPO, 'tools', 'dataset_converters',
                 'convert_landmarks.py'))['main']
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / 'o1')] + args)
    message = str(stop.value.code)
    assert message.startswith('convert_landmarks.py: error: ')
    assert "'porion'" in message and '--skip-bad' in message
    assert '\n' not in message
    # the documented short name, as a user runs it
    ok = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'convert_landmarks.py'),
        str(tmp_path / 'o2')
    ] + args + ['--skip-bad'],
                        capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stderr
    assert 'faults: 1' in ok.stdout and "'porion'" in ok.stdout
    assert 'read 6/6 images' in ok.stdout and 'wrote 6/6 images' in ok.stdout
    assert 'warning: ' in ok.stderr
    assert osp.isfile(osp.join(str(tmp_path / 'o2'), REPORT_FILE))


@pytest.mark.parametrize('step', ['image-2', 'written', 'checked'])
def test_killed_conversion_leaves_the_earlier_one(tmp_path, earlier, step):
    import signal

    from mmchh.datasets.converters import KILL_AT_ENV
    root, out, before = earlier
    pid = os.fork()
    if pid == 0:  # the child converts again and is killed at ``step``
        os.environ[KILL_AT_ENV] = step
        try:
            convert(root, out, resize=(20, 16))
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert folder_digest(out) == before
    convert(root, out, resize=(20, 16))  # the next run cleans up
    assert sorted(os.listdir(str(tmp_path))) == ['out', 'set']
    assert load(out, 'train.json')['images'][0]['width'] == 20
