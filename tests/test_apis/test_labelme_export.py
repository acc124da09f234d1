# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Predictions as labelme files: the layout labelme reads, exact points
through our own labelme reader, flags, landmarks without a prediction,
``imagePath`` (the end-to-end round trip with a trained model is in
tests/test_tools/test_infer_labelme.py)."""
import json
import os.path as osp

import pytest

from mmchh.apis import LandmarkResult
from mmchh.apis.labelme_export import (LABELME_VERSION, NO_PREDICTION_FLAG,
                                       labelme_document, labelme_summary,
                                       write_labelme)
from mmchh.codecs.utils.frame import HeatmapFrame
from mmchh.datasets.converters.labelme_reader import read_labelme_file
from mmchh.datasets.converters.validation import BadInputPolicy

NAMES = ('sella', 'nasion', 'menton', 'gonion')
#: floats whose shortest repr is long: a rounding writer would change them
POINTS = ((0.1 + 0.2, 1 / 3), (12.345678901234567, 40.00000000000001),
          (63.49999999999999, 2.0 / 7.0), (5.5, 7.25))
THRESHOLD_MM = 2.0


def _landmark(index, point, ere_px, spacing, valid=True):
    name = NAMES[index]
    if not valid:
        return dict(name=name, index=index, x=None, y=None, x_mm=None,
                    y_mm=None, probability=None, ere_px=None, ere_mm=None,
                    flagged=True, valid=False)
    ere_mm = None if spacing is None else ere_px * spacing
    return dict(name=name, index=index, x=point[0], y=point[1],
                x_mm=None if spacing is None else point[0] * spacing,
                y_mm=None if spacing is None else point[1] * spacing,
                probability=0.05 * (index + 1), ere_px=ere_px,
                ere_mm=ere_mm,
                flagged=None if spacing is None else ere_mm > THRESHOLD_MM,
                valid=True)


def _result(path, spacing=None, invalid=()):
    """A prediction on a 64 x 96 image; ERE 1, 3, 5, 7 px."""
    landmarks = [
        _landmark(k, POINTS[k], 1.0 + 2 * k, spacing, k not in invalid)
        for k in range(len(NAMES))
    ]
    return LandmarkResult(
        path=path, image_size=(64, 96), landmarks=landmarks,
        calibrated=True,
        flag_threshold_mm=None if spacing is None else THRESHOLD_MM,
        frame=HeatmapFrame(heatmap_size=(64, 96), input_size=(64, 96),
                           spacing=spacing))


@pytest.mark.parametrize('spacing', [0.5, None], ids=['mm', 'pixels'])
def test_document_is_labelme_5_with_exact_points(tmp_path, spacing):
    image = tmp_path / 'xrays' / '001.png'
    json_path = str(tmp_path / 'review' / '001.json')
    result = _result(str(image), spacing)
    write_labelme(result, json_path)
    with open(json_path, encoding='utf-8') as f:
        doc = json.load(f)
    assert doc['version'] == LABELME_VERSION
    assert doc['version'].split('.')[0] == '5'
    assert doc['imageData'] is None and doc['flags'] == {}
    assert (doc['imageWidth'], doc['imageHeight']) == (64, 96)
    assert doc['imagePath'] == osp.join('..', 'xrays', '001.png')
    assert [s['label'] for s in doc['shapes']] == list(NAMES)
    for shape, lm in zip(doc['shapes'], result.landmarks):
        assert shape['shape_type'] == 'point' and shape['group_id'] is None
        assert shape['points'] == [[lm['x'], lm['y']]]  # float equality
        if spacing is None:
            assert shape['flags'] == {}
            assert 'px' in shape['description']
            assert 'not in mm' in shape['description']
        else:
            assert shape['flags'] == dict(flagged=lm['flagged'])
            assert f'{lm["ere_mm"]:.3f} mm' in shape['description']
            assert ('FLAGGED' in shape['description']) == lm['flagged']
    if spacing is not None:  # ERE 0.5 ... 3.5 mm around a 2 mm threshold
        assert [s['flags']['flagged'] for s in doc['shapes']] == [
            False, False, True, True]
    # our own reader gives back every point exactly
    marks = read_labelme_file(json_path, NAMES, BadInputPolicy(False))
    assert {n: [p[:2] for p in marks.points[n]]
            for n in NAMES} == {n: [POINTS[k]]
                                for k, n in enumerate(NAMES)}
    assert marks.image_size == (64, 96)
    assert osp.normpath(osp.join(osp.dirname(json_path),
                                 marks.image_path)) == str(image)


def test_landmark_without_prediction_gets_no_point(tmp_path):
    image = str(tmp_path / 'a.png')
    result = _result(image, 0.5, invalid=(1, 3))
    doc = labelme_document(result, str(tmp_path / 'labelme' / 'a.json'))
    assert [s['label'] for s in doc['shapes']] == ['sella', 'menton']
    assert doc['flags'] == {
        f'{NO_PREDICTION_FLAG}nasion': True,
        f'{NO_PREDICTION_FLAG}gonion': True
    }
    note = doc['mmchh']
    assert note['landmarks_without_prediction'] == ['nasion', 'gonion']
    assert 'add it by hand' in note['note'] and note['ere_unit'] == 'mm'
    json.dumps(doc, allow_nan=False)  # strict JSON: no NaN anywhere
    summary = labelme_summary([result, _result(image, 0.5)], 'DIR')
    first, second = summary.splitlines()
    # flagged and valid: menton (ERE 2.5 mm) in the first, 2 in the second
    assert first == ('labelme: 2 review file(s) in DIR, 3 flagged '
                     'landmark(s) marked')
    assert second.startswith('labelme: 2 landmark(s) without a prediction')
    assert second.endswith('a.png: nasion, gonion')


def test_result_without_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match='imagePath'):
        labelme_document(_result(None), str(tmp_path / 'x.json'))
