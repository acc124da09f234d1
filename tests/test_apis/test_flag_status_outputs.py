# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What the flags rest on, in every output of a prediction: the
landmarks.json header, each image's result, the labelme description, the
overlay legend and infer.py's summary -- for a threshold that flags and for
one fitted on too little (not used, and why)."""
import json
import math
import shutil
import warnings

import numpy as np
import pytest
import torch

import mmchh  # noqa: F401
from mmchh.apis import init_landmark_model
from mmchh.apis.batch_infer import infer_files
from mmchh.models.heads.flag_basis import (describe_flag_status, flag_legend,
                                           flag_status, image_flag_status)
from mmchh.testing import run_tool_in_process
from mmchh.visualization.overlay import draw_overlay

USED_LINE = 'flag ERE > 1.42 mm [1.1, 1.9] (4 images, 12 erroneous)'
NOT_USED_REASON = ('flag threshold not used: fitted on 2 calibration '
                   'image(s) (minimum 3)')


def _set_used(head):
    head.set_flag_threshold(1.42, 'mm')
    head.set_flag_basis(1.1, 1.9, 4, 12)


def _set_not_used(head):
    with torch.no_grad():
        head.flag_threshold.fill_(float('nan'))
    head.set_flag_basis(float('nan'), float('nan'), 2, 7)


@pytest.fixture(scope='module', params=['used', 'not_used'])
def case(request, calibrated_small_demo, tmp_path_factory):
    """A copy of the session's calibrated model (and its checkpoint,
    resealed) whose threshold flags, or was fitted on too little."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        model = init_landmark_model(calibrated_small_demo['ckpt'])
    (_set_used if request.param == 'used' else _set_not_used)(model.head)
    model.head.seal_calibration(model.state_dict())
    ckpt = torch.load(calibrated_small_demo['ckpt'], map_location='cpu',
                      weights_only=False)
    ckpt['state_dict'] = {k: v.detach().cpu().clone()
                          for k, v in model.state_dict().items()}
    tmp = tmp_path_factory.mktemp(f'flags_{request.param}')
    path = str(tmp / 'calibrated.pth')
    torch.save(ckpt, path)
    images = tmp / 'in'
    images.mkdir()
    data = calibrated_small_demo['data']
    doc = json.load(open(f'{data}/test1.json'))
    shutil.copy(f'{data}/{doc["images"][0]["file_name"]}', images / 'a.png')
    return dict(kind=request.param, model=model, ckpt=path,
                images=str(images), tmp=tmp)


def test_status_of_a_used_and_a_too_small_threshold():
    """The basis in words, and the short legend form, for both cases."""
    head = torch.nn.Module()
    head.flag_threshold = torch.tensor(1.42)
    head.flag_threshold_unit = 'mm'
    head.flag_threshold_low = torch.tensor(1.1)
    head.flag_threshold_high = torch.tensor(1.9)
    head.flag_num_images = torch.tensor(4.)
    head.flag_num_erroneous = torch.tensor(12.)
    used = flag_status(head)
    assert describe_flag_status(used) == USED_LINE
    assert flag_legend(used) == 'flag: ERE > 1.42 mm [1.1, 1.9], 4 images'
    head.flag_threshold = torch.tensor(float('nan'))
    head.flag_num_images = torch.tensor(2.)
    head.flag_num_erroneous = torch.tensor(3.)
    off = flag_status(head)
    assert off['status'] == 'not_used'
    assert flag_legend(off) == ('flags off: 2 calibration images (min 3), '
                                '3 erroneous landmarks (min 6)')
    assert not image_flag_status(off, True)['applied']


def test_mm_threshold_not_applied_without_spacing():
    used = dict(status='used', reason='', threshold=1.0, unit='mm',
                low=None, high=None, num_images=5, num_erroneous=9)
    assert image_flag_status(used, True) == dict(used, applied=True)
    off = image_flag_status(used, False)
    assert not off['applied'] and off['reason'].startswith(
        'no spacing for this image')
    assert image_flag_status(dict(used, unit='px'), False)['applied']


def _expected(case):
    if case['kind'] == 'used':
        return dict(status='used', reason='', threshold=pytest.approx(1.42),
                    num_images=4, num_erroneous=12, applied=True)
    return dict(status='not_used', threshold=None, num_images=2,
                num_erroneous=7, applied=False)


def _check(status, case):
    for key, value in _expected(case).items():
        assert status[key] == value, key
    if case['kind'] == 'not_used':
        assert status['reason'].startswith(NOT_USED_REASON)


def test_header_result_and_labelme_carry_the_status(case, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        results, _ = infer_files(case['model'], case['images'],
                                 str(tmp_path), spacing=0.1, progress=False,
                                 labelme=True, overlay=False)
    doc = json.load(open(tmp_path / 'landmarks.json'))
    header = dict(doc['flag_status'], applied=case['kind'] == 'used')
    _check(header, case)
    _check(doc['results'][0]['flag_status'], case)
    _check(json.load(open(tmp_path / 'results' / 'a.json'))['flag_status'],
           case)
    labelme = json.load(open(tmp_path / 'labelme' / 'a.json'))
    _check(labelme['mmchh']['flag_status'], case)
    flagged = [lm['flagged'] for lm in results[0].landmarks]
    for shape in labelme['shapes']:
        if case['kind'] == 'used':
            assert USED_LINE in shape['description']
        else:
            assert f'not flagged: {NOT_USED_REASON}' in shape['description']
            assert shape['flags'] == {}
    if case['kind'] == 'not_used':
        assert set(flagged) == {None}


def test_overlay_legend_says_what_flags_rest_on(case, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        results, _ = infer_files(case['model'], case['images'],
                                 str(tmp_path / 'o'), spacing=0.1,
                                 progress=False)
    grey = np.full((96, 64), 60, np.uint8)
    legend = dict(used='flag: ERE > 1.42 mm [1.1, 1.9], 4 images',
                  not_used='flags off: 2 calibration images (min 3)')
    assert flag_legend(results[0].flag_status) == legend[case['kind']]
    plain = draw_overlay(grey, results[0], str(tmp_path / 'a.png'))
    results[0].flag_status = dict(results[0].flag_status, num_images=9,
                                  num_erroneous=20, low=None, high=None)
    other = draw_overlay(grey, results[0], str(tmp_path / 'b.png'))
    zoom = plain.shape[1] / 64
    image_rows = int(math.floor(96 * zoom))
    # the basis is written in the band under the X-ray, never over it
    assert plain.shape[0] > image_rows
    np.testing.assert_array_equal(plain[:image_rows], other[:image_rows])
    assert (plain[image_rows:] != other[image_rows:]).any()


def test_infer_tool_prints_the_basis(case, tmp_path):
    proc = run_tool_in_process('infer', [
        case['images'], '--checkpoint', case['ckpt'], '--out-dir',
        str(tmp_path / 'o'), '--no-progress', '--no-overlay'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    if case['kind'] == 'used':
        # no spacing: the mm threshold cannot be applied, and it says so
        assert (f'infer.py: {USED_LINE}; not applied to 1 image(s) without '
                'spacing\n') in proc.stdout
    else:
        assert f'infer.py: {NOT_USED_REASON}' in proc.stdout
