# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Each image's spacing at inference: header, then the given one, then
none; the spacing file; tools/infer.py on a folder of MetaImage and DICOM
files with their own header spacings."""
import csv
import json
import os.path as osp
import warnings

import numpy as np
import pytest

import mmchh  # noqa: F401
from mmchh.apis import init_landmark_model, predict_landmarks, read_xray
from mmchh.apis.image_spacing import (SpacingFileError, read_spacing_file,
                                      resolve_spacing)
from mmchh.datasets.transforms.load_full_range_image import \
    sixteen_bit_to_uint8
from mmchh.testing import run_tool_in_process
from test_datasets.test_converters.landmark_files import (write_dicom,
                                                          write_mha)


@pytest.mark.parametrize('header, given, overrides, want, warns', [
    ((0.1, 0.1), None, False, ((0.1, 0.1), 'header'), None),
    (None, (0.2, 0.3), False, ((0.2, 0.3), 'argument'), None),
    (None, None, False, (None, 'none'), None),
    ((0.1, 0.1), (0.10001, 0.1), False, ((0.1, 0.1), 'header'), None),
    ((0.1, 0.1), (0.2, 0.2), False, ((0.1, 0.1), 'header'),
     r"header says \[0.1, 0.1\].*--spacing says \[0.2, 0.2\]"),
    ((0.1, 0.1), (0.2, 0.2), True, ((0.2, 0.2), 'argument'),
     r'\[0.2, 0.2\] mm/px from --spacing overrides the header'),
], ids=['header_only', 'argument_only', 'none', 'agreeing_within_rtol',
        'contradicting_header_wins', 'contradicting_overrides'])
def test_resolve_spacing(header, given, overrides, want, warns):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        got = resolve_spacing(header, given, 'argument', overrides, 'a.mha')
    assert got == want
    messages = [str(w.message) for w in caught]
    if warns is None:
        assert not messages
    else:
        assert len(messages) == 1 and 'a.mha' in messages[0]
        assert __import__('re').search(warns, messages[0]), messages[0]


def _write_csv(path, rows):
    with open(path, 'w', newline='') as f:
        csv.writer(f).writerows(rows)
    return str(path)


HEAD = ('image', 'spacing_x', 'spacing_y')


def test_spacing_file_by_name_or_path(tmp_path):
    inputs = [str(tmp_path / 'a.png'), str(tmp_path / 'b.mha')]
    path = _write_csv(tmp_path / 's.csv', [HEAD, ('a.png', '0.1', '.2'),
                                           (inputs[1], '1e-1', '0.3')])
    assert read_spacing_file(path, inputs) == {
        inputs[0]: (0.1, 0.2), inputs[1]: (0.1, 0.3)}


@pytest.mark.parametrize('rows, match', [
    ([HEAD, ('c.png', '0.1', '0.1')],
     r"line 2: image 'c.png' is not among the inputs"),
    ([HEAD, ('a.png', '0.1', '0.1'), ('a.png', '0.2', '0.2')],
     r"line 3: image 'a.png' already has a spacing \(line 2\)"),
    ([HEAD, ('a.png', '1_5', '0.1')], r"line 2: spacing_x '1_5'"),
    ([HEAD, ('a.png', '0.1', 'nan')], r"line 2: spacing_y 'nan'"),
    ([HEAD, ('a.png', '0', '0.1')], r"line 2: spacing_x '0'"),
    ([HEAD, ('a.png', '0.1')], r'line 2: expected 3 cells'),
    ([('file', 'sx', 'sy'), ('a.png', '0.1', '0.1')],
     r'the first line must be image,spacing_x,spacing_y'),
], ids=['unknown_image', 'duplicate_row', 'underscore_number', 'nan',
        'zero', 'short_row', 'wrong_header'])
def test_spacing_file_faults_are_named(tmp_path, rows, match):
    path = _write_csv(tmp_path / 's.csv', rows)
    with pytest.raises(SpacingFileError, match=match) as info:
        read_spacing_file(path, [str(tmp_path / 'a.png')])
    assert 's.csv' in str(info.value)


SPACINGS = {'a.mha': (0.2, 0.2), 'b.mha': (0.35, 0.35),
            'c.dcm': (0.15, 0.15), 'd.dcm': (0.12, 0.3)}


@pytest.fixture(scope='module')
def header_folder(tmp_path_factory):
    """64x80 MetaImage and DICOM files, each with its own header spacing
    (d.dcm anisotropic: PixelSpacing (row, col) = (0.3, 0.12)), and a PNG
    without one."""
    import cv2
    folder = tmp_path_factory.mktemp('header_spacing')
    rng = np.random.default_rng(0)
    pixels = {}
    for name, (sx, sy) in SPACINGS.items():
        grey = rng.integers(0, 256, (80, 64)).astype(np.uint8)
        grey[20:40, 10:30] = 255
        pixels[name] = grey
        if name.endswith('.mha'):
            write_mha(str(folder / name), grey, (sx, sy))
        else:  # 12-bit data: grey at training's 12-bit rule
            stored = grey.astype(np.uint16) * 16
            pixels[name] = sixteen_bit_to_uint8(stored)
            write_dicom(str(folder / name), stored, PixelSpacing=[sy, sx])
    pixels['e.png'] = rng.integers(0, 256, (80, 64)).astype(np.uint8)
    cv2.imwrite(str(folder / 'e.png'), pixels['e.png'])
    return folder, pixels


def test_header_spacing_read_for_inference(header_folder):
    folder, pixels = header_folder
    for name, spacing in SPACINGS.items():
        xray = read_xray(str(folder / name))
        assert xray.header_spacing == pytest.approx(spacing)
        np.testing.assert_array_equal(xray.grey, pixels[name])
    assert read_xray(str(folder / 'e.png')).header_spacing is None


def test_infer_folder_uses_each_header_spacing(calibrated_small_demo,
                                               header_folder, tmp_path):
    folder, pixels = header_folder
    out = str(tmp_path / 'out')
    proc = run_tool_in_process('infer', [
        str(folder), '--config', calibrated_small_demo['cfg'],
        '--checkpoint', calibrated_small_demo['ckpt'], '--out-dir', out,
        '--no-overlay', '--no-progress'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.load(open(osp.join(out, 'landmarks.json')))
    assert doc['spacing']['argument'] is None and doc['spacing']['file'] \
        is None and doc['spacing']['order'][0] == 'header'
    results = {osp.basename(r['path']): r for r in doc['results']}
    assert set(results) == set(SPACINGS) | {'e.png'}
    for name, (sx, sy) in SPACINGS.items():
        r = results[name]
        assert r['spacing_source'] == 'header'
        assert r['spacing'] == pytest.approx([sx, sy])
        for lm in r['landmarks']:
            if sx == sy:
                # the box is scaled isotropically: ERE_mm = ERE_px * s
                assert lm['ere_mm'] == pytest.approx(lm['ere_px'] * sx,
                                                     rel=1e-5)
            else:
                assert lm['ere_px'] * sx < lm['ere_mm'] < lm['ere_px'] * sy
    assert results['e.png']['spacing_source'] == 'none'
    assert results['e.png']['spacing'] is None
    assert all(lm['ere_mm'] is None for lm in results['e.png']['landmarks'])
    with open(osp.join(out, 'landmarks.csv'), newline='') as f:
        rows = list(csv.DictReader(f))
    by_image = {osp.basename(r['image']): r for r in rows}
    assert by_image['d.dcm']['spacing_source'] == 'header'
    assert float(by_image['d.dcm']['spacing_x']) == pytest.approx(0.12)
    assert by_image['e.png']['spacing_source'] == 'none'

    # coordinates in the stored pixels: the same as the array's
    model = init_landmark_model(calibrated_small_demo['cfg'],
                                calibrated_small_demo['ckpt'])
    same = predict_landmarks(model, pixels['a.mha'])[0]
    assert [lm['x'] for lm in same.landmarks] == \
        [lm['x'] for lm in results['a.mha']['landmarks']]
    assert same.spacing_source == 'none'


def test_infer_spacing_against_header_warns_and_header_wins(
        calibrated_small_demo, header_folder, tmp_path):
    folder, _ = header_folder
    args = [str(folder / 'a.mha'), '--config', calibrated_small_demo['cfg'],
            '--checkpoint', calibrated_small_demo['ckpt'], '--no-overlay',
            '--no-progress', '--spacing', '0.5']
    with pytest.warns(UserWarning, match=r'a\.mha: its header says '
                      r'\[0\.2.*--spacing says \[0\.5, 0\.5\]'):
        proc = run_tool_in_process(
            'infer', args + ['--out-dir', str(tmp_path / 'o1')])
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.load(open(tmp_path / 'o1' / 'landmarks.json'))['results'][0]
    assert r['spacing_source'] == 'header'
    assert r['spacing'] == pytest.approx([0.2, 0.2])
    with pytest.warns(UserWarning, match='overrides the header'):
        proc = run_tool_in_process('infer', args + [
            '--out-dir', str(tmp_path / 'o2'), '--spacing-overrides-header'])
    r = json.load(open(tmp_path / 'o2' / 'landmarks.json'))['results'][0]
    assert (r['spacing_source'], r['spacing']) == ('argument', [0.5, 0.5])


def test_infer_spacing_file(calibrated_small_demo, header_folder, tmp_path):
    folder, _ = header_folder
    sheet = _write_csv(tmp_path / 's.csv', [HEAD, ('e.png', '0.4', '0.4')])
    proc = run_tool_in_process('infer', [
        str(folder), '--config', calibrated_small_demo['cfg'],
        '--checkpoint', calibrated_small_demo['ckpt'], '--out-dir',
        str(tmp_path / 'o'), '--no-overlay', '--no-progress',
        '--spacing-file', sheet])
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.load(open(tmp_path / 'o' / 'landmarks.json'))
    assert doc['spacing']['file'] == sheet
    results = {osp.basename(r['path']): r for r in doc['results']}
    assert (results['e.png']['spacing_source'],
            results['e.png']['spacing']) == ('file', [0.4, 0.4])
    assert results['a.mha']['spacing_source'] == 'header'
    bad = _write_csv(tmp_path / 'bad.csv', [HEAD, ('zz.png', '0.4', '0.4')])
    proc = run_tool_in_process('infer', [
        str(folder), '--config', calibrated_small_demo['cfg'],
        '--checkpoint', calibrated_small_demo['ckpt'], '--out-dir',
        str(tmp_path / 'o3'), '--spacing-file', bad])
    assert proc.returncode == 1
    assert "bad.csv line 2: image 'zz.png' is not among the inputs" in \
        proc.stderr


def test_infer_refuses_spacing_and_spacing_file_together(tmp_path):
    sheet = _write_csv(tmp_path / 's.csv', [HEAD])
    proc = run_tool_in_process('infer', [
        str(tmp_path), '--config', 'c.py', '--checkpoint', 'c.pth',
        '--out-dir', str(tmp_path / 'o'), '--spacing', '0.1',
        '--spacing-file', sheet])
    assert proc.returncode != 0
    assert '--spacing and --spacing-file: give one of them' in proc.stderr
