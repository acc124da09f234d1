# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The synthetic ISBI-layout generator: layout, file format, determinism,
annotator noise, anatomy under the landmarks and the command line tool."""
import importlib.util
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mmchh.datasets.ceph_meta import (CEPH_LABEL_NAMES, CEPH_LANDMARK_NAMES,
                                      ISBI_ANNOTATOR_FOLDERS,
                                      NUM_CEPH_LANDMARKS)
from mmchh.datasets.synthetic import (BONY_LANDMARKS, SOFT_TISSUE_LANDMARKS,
                                      make_synthetic_ceph,
                                      synthetic_ceph_sample)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLI = osp.join(REPO, 'tools', 'make_synthetic_ceph.py')
SIZE = (160, 200)  # (W, H): small keeps the suite fast
IDX = {name: i for i, name in enumerate(CEPH_LANDMARK_NAMES)}
COORD_LINE = re.compile(rb'^\d+,\d+$')
LABEL_LINE = re.compile(rb'^\d+$')


def _make(root, seed=7, nested=True, counts=(3, 2, 2), size=SIZE):
    return make_synthetic_ceph(
        str(root),
        num_train=counts[0],
        num_test1=counts[1],
        num_test2=counts[2],
        image_size=size,
        seed=seed,
        nested=nested,
        progress=False)


def _files(root):
    """All files under root as sorted '/'-joined relative paths."""
    out = []
    for folder, _, names in os.walk(root):
        for name in names:
            rel = osp.relpath(osp.join(folder, name), root)
            out.append(rel.replace(os.sep, '/'))
    return sorted(out)


def _contents(root):
    out = {}
    for rel in _files(root):
        with open(osp.join(root, rel), 'rb') as f:
            out[rel] = f.read()
    return out


def _parse_txt(data):
    """(19, 2) int points and the 8 labels of one annotation file."""
    assert data.endswith(b'\r\n')
    lines = data[:-2].split(b'\r\n')
    points = np.array([[int(v) for v in line.split(b',')]
                       for line in lines[:NUM_CEPH_LANDMARKS]])
    labels = [int(line) for line in lines[NUM_CEPH_LANDMARKS:]]
    return points, labels


def _expected_layout(nested, counts=(3, 2, 2)):
    ann = 'AnnotationsByMD/' if nested else ''
    folders = ('TrainingData', 'Test1Data', 'Test2Data')
    files, number = [], 0
    for folder, count in zip(folders, counts):
        for _ in range(count):
            number += 1
            files.append(f'RawImage/{folder}/{number:03d}.bmp')
            files.append(f'{ann}400_senior/{number:03d}.txt')
            files.append(f'{ann}400_junior/{number:03d}.txt')
    return sorted(files)


@pytest.fixture(scope='module')
def nested_set(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic_nested')
    return str(root), _make(root)


@pytest.fixture(scope='module')
def samples():
    """Many in-memory samples for the statistical checks."""
    return [
        synthetic_ceph_sample(np.random.default_rng([123, i]), SIZE)
        for i in range(120)
    ]


def test_nested_layout_and_numbering(nested_set):
    root, summary = nested_set
    assert _files(root) == _expected_layout(nested=True)
    assert summary['num_images'] == 7
    assert summary['splits'] == dict(train=3, test1=2, test2=2)
    assert summary['image_size'] == SIZE
    assert summary['out_root'] == root
    assert summary['image_dirs']['test1'] == osp.join(root, 'RawImage',
                                                      'Test1Data')
    assert summary['annotation_dirs']['400_junior'] == osp.join(
        root, 'AnnotationsByMD', '400_junior')
    assert summary['spacing_mm'] == pytest.approx(
        (0.1 * 1935 / SIZE[0], 0.1 * 2400 / SIZE[1]))


def test_flat_layout(tmp_path):
    summary = _make(tmp_path, nested=False)
    assert _files(str(tmp_path)) == _expected_layout(nested=False)
    assert not summary['nested']
    assert summary['annotation_dirs']['400_senior'] == osp.join(
        str(tmp_path), '400_senior')


def test_names_grow_past_999_images(tmp_path, monkeypatch):
    import mmchh.datasets.synthetic.writer as module

    # only the naming matters here: a constant cheap sample keeps it fast
    sample = synthetic_ceph_sample(np.random.default_rng(0), (64, 80))
    monkeypatch.setattr(module, 'synthetic_ceph_sample',
                        lambda rng, image_size: sample)
    _make(tmp_path, counts=(998, 1, 1), size=(64, 80))
    names = sorted(os.listdir(osp.join(tmp_path, 'RawImage', 'Test2Data')))
    assert names == ['1000.bmp']
    train = sorted(os.listdir(osp.join(tmp_path, 'RawImage', 'TrainingData')))
    assert train[0] == '0001.bmp' and train[-1] == '0998.bmp'


def test_annotation_files_format(nested_set):
    root, _ = nested_set
    for rel, data in _contents(root).items():
        if not rel.endswith('.txt'):
            continue
        # CRLF everywhere, no bare LF or CR
        assert data.count(b'\r\n') == NUM_CEPH_LANDMARKS + 8, rel
        assert data.count(b'\n') == data.count(b'\r') == data.count(b'\r\n')
        lines = data.split(b'\r\n')
        assert lines[-1] == b''
        lines = lines[:-1]
        assert all(COORD_LINE.match(x) for x in lines[:NUM_CEPH_LANDMARKS])
        assert all(LABEL_LINE.match(x) for x in lines[NUM_CEPH_LANDMARKS:])
        _, labels = _parse_txt(data)
        assert len(labels) == len(CEPH_LABEL_NAMES)
        assert all(1 <= v <= 3 for v in labels[:7]), labels
        assert 1 <= labels[7] <= 4


def test_images_are_8bit_grey_bmp(nested_set):
    root, _ = nested_set
    for rel in _files(root):
        if not rel.endswith('.bmp'):
            continue
        path = osp.join(root, rel)
        with open(path, 'rb') as f:
            header = f.read(30)
        assert header[:2] == b'BM'
        assert int.from_bytes(header[28:30], 'little') == 8  # bits/pixel
        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        assert img.dtype == np.uint8 and img.shape == (SIZE[1], SIZE[0])


def test_landmarks_inside_image_for_both_annotators(nested_set):
    root, _ = nested_set
    ann_root = osp.join(root, 'AnnotationsByMD')
    for folder, _ in ISBI_ANNOTATOR_FOLDERS:
        for name in os.listdir(osp.join(ann_root, folder)):
            with open(osp.join(ann_root, folder, name), 'rb') as f:
                points, _ = _parse_txt(f.read())
            assert points.shape == (NUM_CEPH_LANDMARKS, 2)
            assert (points >= 0).all()
            assert (points[:, 0] < SIZE[0]).all()
            assert (points[:, 1] < SIZE[1]).all()


def test_same_seed_same_bytes_other_seed_other_files(tmp_path):
    a, b, c = (tmp_path / 'a', tmp_path / 'b', tmp_path / 'c')
    _make(a, seed=5)
    _make(b, seed=5)
    _make(c, seed=6)
    ca, cb, cc = _contents(str(a)), _contents(str(b)), _contents(str(c))
    assert ca == cb
    assert set(ca) == set(cc)
    assert all(ca[rel] != cc[rel] for rel in ca)


def test_files_match_sample_of_seed_and_number(nested_set):
    """Image k is drawn from default_rng([seed, k]); heads vary."""
    root, summary = nested_set
    folders = {'train': 'TrainingData', 'test1': 'Test1Data',
               'test2': 'Test2Data'}
    number, seen = 0, []
    for split, count in summary['splits'].items():
        for _ in range(count):
            number += 1
            s = synthetic_ceph_sample(
                np.random.default_rng([summary['seed'], number]), SIZE)
            img = cv2.imread(
                osp.join(root, 'RawImage', folders[split],
                         f'{number:03d}.bmp'), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(img, s['image'])
            for folder, who in ISBI_ANNOTATOR_FOLDERS:
                with open(
                        osp.join(root, 'AnnotationsByMD', folder,
                                 f'{number:03d}.txt'), 'rb') as f:
                    points, labels = _parse_txt(f.read())
                np.testing.assert_array_equal(points, s['annotations'][who])
                assert tuple(labels) == s['labels']
            seen.append(s['landmarks'])
    # anatomy and pose differ between images by more than a few pixels
    for i in range(1, len(seen)):
        assert np.abs(seen[i] - seen[0]).max() > 3


def test_sample_outputs(samples):
    s = samples[0]
    assert s['image'].shape == (SIZE[1], SIZE[0])
    assert s['image'].dtype == np.uint8
    assert s['landmarks'].shape == s['tangents'].shape == (19, 2)
    np.testing.assert_allclose(np.linalg.norm(s['tangents'], axis=1), 1)
    for pts in s['annotations'].values():
        assert pts.shape == (19, 2) and pts.dtype.kind == 'i'
    # true landmarks are strictly inside, with a margin
    for s in samples:
        lm = s['landmarks']
        assert (lm > 1).all()
        assert (lm[:, 0] < SIZE[0] - 2).all() and (lm[:, 1] <
                                                     SIZE[1] - 2).all()


def test_labels_vary_and_are_in_range(samples):
    labels = np.array([s['labels'] for s in samples])
    assert labels.shape == (len(samples), 8)
    assert labels.min() >= 1 and labels[:, :7].max() <= 3
    assert labels[:, 7].max() <= 4
    for j, name in enumerate(CEPH_LABEL_NAMES):
        assert len(set(labels[:, j])) >= 2, name


def _diff_along_across(samples, names):
    """senior - junior projected on the contour tangent and normal."""
    along, across = [], []
    for s in samples:
        d = (s['annotations']['senior'] -
             s['annotations']['junior']).astype(float)
        for name in names:
            t = s['tangents'][IDX[name]]
            n = np.array([-t[1], t[0]])
            along.append(d[IDX[name]] @ t)
            across.append(d[IDX[name]] @ n)
    return np.array(along), np.array(across)


@pytest.mark.parametrize('name', ['menton', 'soft_tissue_pogonion', 'nasion'])
def test_annotators_disagree_more_along_the_contour(samples, name):
    along, across = _diff_along_across(samples, [name])
    # 3x in the generator; integer rounding at 160 px narrows it a little
    assert along.std() > 2.0 * across.std(), (along.std(), across.std())
    assert abs(along.mean()) < 0.5 and abs(across.mean()) < 0.3


def test_annotator_disagreement_is_about_2mm(samples):
    along, across = _diff_along_across(samples, CEPH_LANDMARK_NAMES)
    assert along.std() > 2.2 * across.std()
    # in pixels of a full-size 1935 px wide image: ~20 px = 2 mm
    dist = np.hypot(along, across) * 1935 / SIZE[0]
    assert 15 < dist.mean() < 25, dist.mean()


def _background(img):
    # the top-right corner is air above the face in every pose
    return float(np.median(img[:6, -6:]))


def test_bony_landmarks_sit_on_bright_bone(samples):
    for s in samples[:60]:
        img = s['image'].astype(float)
        bg = _background(img)
        for name in BONY_LANDMARKS:
            x, y = np.rint(s['landmarks'][IDX[name]]).astype(int)
            patch = img[y - 1:y + 2, x - 1:x + 2]
            assert patch.mean() > bg + 60, (name, patch.mean(), bg)


def test_soft_tissue_landmarks_sit_on_the_skin_edge(samples):
    """Skin on one side (brighter than air), air on the other."""
    for s in samples[:60]:
        img = s['image'].astype(float)
        bg = _background(img)
        for name in SOFT_TISSUE_LANDMARKS:
            p, t = s['landmarks'][IDX[name]], s['tangents'][IDX[name]]
            n = np.array([-t[1], t[0]])
            vals = []
            for q in (p + 2 * n, p - 2 * n):
                x, y = np.rint(q).astype(int)
                vals.append(img[y, x])
            lo, hi = sorted(vals)
            # subnasale is a concave corner: its air side is a narrow wedge
            assert hi > bg + 30 and hi - lo > 30, (name, vals, bg)


def test_bright_bone_brighter_than_skin(samples):
    for s in samples[:20]:
        img = s['image'].astype(float)
        bone = [
            img[tuple(np.rint(s['landmarks'][IDX[n]]).astype(int)[::-1])]
            for n in ('menton', 'pogonion', 'gonion')
        ]
        skin_pt = 0.5 * (s['landmarks'][IDX['pogonion']] +
                         s['landmarks'][IDX['soft_tissue_pogonion']])
        skin = img[tuple(np.rint(skin_pt).astype(int)[::-1])]
        assert min(bone) > skin + 20


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_train=0), 'num_train must be a positive integer'),
    (dict(num_test1=-1), 'num_test1 must be a positive integer'),
    (dict(num_test2=1.5), 'num_test2 must be a positive integer'),
    (dict(num_train=True), 'num_train must be a positive integer'),
    (dict(image_size=(63, 200)), 'at least'),
    (dict(image_size=(160, 79)), 'at least'),
    (dict(image_size=(160, )), 'pair'),
    (dict(image_size=(160.0, 200)), 'two integers'),
    (dict(seed=-1), 'seed must be a non-negative integer'),
])
def test_bad_arguments_raise_value_error(tmp_path, kwargs, match):
    args = dict(image_size=SIZE, progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        make_synthetic_ceph(str(tmp_path / 'x'), **args)
    assert not osp.exists(tmp_path / 'x')  # nothing written


def test_progress_prints_one_line_per_split(tmp_path, capsys):
    make_synthetic_ceph(
        str(tmp_path), 2, 1, 1, image_size=(64, 80), progress=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith('make_synthetic_ceph: wrote 2 train images')
    assert lines[1].startswith('make_synthetic_ceph: wrote 1 test1 image ')
    make_synthetic_ceph(
        str(tmp_path), 1, 1, 1, image_size=(64, 80), progress=False)
    assert capsys.readouterr().out == ''


def test_interrupted_run_leaves_no_partial_files(tmp_path, monkeypatch):
    clean = _contents(str(_make(tmp_path / 'clean')['out_root']))
    real_replace, calls = os.replace, []

    def flaky_replace(src, dst):
        calls.append(dst)
        if len(calls) == 8:  # in the middle of the third image
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, 'replace', flaky_replace)
    with pytest.raises(KeyboardInterrupt):
        _make(tmp_path / 'broken')
    monkeypatch.undo()
    broken = _contents(str(tmp_path / 'broken'))
    assert len(broken) == 7  # 2 full images (3 files each) + 1 txt
    for rel, data in broken.items():
        assert not osp.basename(rel).startswith('.'), rel  # no temp left
        assert data == clean[rel]


def test_cli_end_to_end(tmp_path):
    out = tmp_path / 'cli'
    # run from elsewhere: the script must find the package by itself
    proc = subprocess.run([
        sys.executable, CLI,
        str(out), '--num-train', '2', '--num-test1', '1', '--num-test2',
        '1', '--size', '160', '200', '--seed', '3', '--flat'
    ],
                          cwd=str(tmp_path),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert 'make_synthetic_ceph: 4 images' in proc.stdout
    assert _files(str(out)) == _expected_layout(False, (2, 1, 1))
    ref = tmp_path / 'ref'
    _make(ref, seed=3, nested=False, counts=(2, 1, 1), size=(160, 200))
    assert _contents(str(out)) == _contents(str(ref))


def test_cli_rejects_bad_size(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('make_synthetic_ceph_cli',
                                                  CLI)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    with pytest.raises(SystemExit) as exc:
        cli.main([str(tmp_path / 'x'), '--size', '10', '10'])
    assert 'at least' in str(exc.value.code)


def test_generated_set_converts_cleanly_and_loads(tmp_path):
    """The demo's path: generate -> convert (resized) -> MMPose dataset."""
    from mmengine.registry import init_default_scope
    from mmpose.registry import DATASETS

    from mmchh.datasets.converters import convert_isbi
    made = make_synthetic_ceph(str(tmp_path / 'raw'), num_train=6,
                               num_test1=2, num_test2=2,
                               image_size=(160, 200), progress=False)
    out = str(tmp_path / 'coco')
    summary = convert_isbi(str(tmp_path / 'raw'), out, num_val=1,
                           num_calib=1, resize=(64, 80),
                           spacing=tuple(made['spacing_mm']), progress=False)
    assert summary.skipped == []
    assert summary.images_per_split == dict(
        train=4, val=1, calib=1, test1=2, test2=2)
    init_default_scope('mmpose')
    ds = DATASETS.build(
        dict(type='CephalometricDataset', data_root=out,
             ann_file='train.json', data_prefix=dict(img=''), pipeline=[]))
    info = ds[0]
    assert info['keypoints'].shape == (1, 19, 2)
    assert ((info['keypoints'] >= 0) & (info['keypoints'] < [64, 80])).all()
    assert np.allclose(info['spacing'],
                       np.asarray(made['spacing_mm']) * 160 / 64 * 1.0,
                       rtol=0.02)
