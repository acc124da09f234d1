# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Predictions as labelme files: the layout labelme reads, exact points
through our own labelme reader, flags, landmarks without a prediction,
``imagePath`` and the 8-bit review copies of images labelme cannot show
(the end-to-end round trips with a model are in
tests/test_tools/test_infer_labelme.py and
test_infer_labelme_review_copies.py)."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from mmchh.apis import LandmarkResult, read_xray
from mmchh.apis.batch_infer import output_names
from mmchh.apis.labelme_export import (LABELME_VERSION, NO_PREDICTION_FLAG,
                                       is_review_copy, labelme_document,
                                       labelme_summary, review_copy_reason,
                                       write_labelme)
from mmchh.codecs.utils.frame import HeatmapFrame
from mmchh.datasets.converters.labelme_reader import read_labelme_file
from mmchh.datasets.converters.validation import BadInputPolicy
from mmchh.utils.errors import InputError
from test_datasets.test_converters.landmark_files import (make_pixels,
                                                          write_dicom,
                                                          write_mha)

# the 12-bit rule's warning when the tests read the sources themselves
pytestmark = pytest.mark.filterwarnings('ignore:.*12-bit data')

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


def _result(path, spacing=None, invalid=(), size=(64, 96)):
    """A prediction on a ``size`` (64 x 96) image; ERE 1, 3, 5, 7 px."""
    landmarks = [
        _landmark(k, POINTS[k], 1.0 + 2 * k, spacing, k not in invalid)
        for k in range(len(NAMES))
    ]
    return LandmarkResult(
        path=path, image_size=size, landmarks=landmarks,
        calibrated=True,
        flag_threshold_mm=None if spacing is None else THRESHOLD_MM,
        frame=HeatmapFrame(heatmap_size=(64, 96), input_size=(64, 96),
                           spacing=spacing))


@pytest.mark.parametrize('spacing', [0.5, None], ids=['mm', 'pixels'])
def test_document_is_labelme_5_with_exact_points(tmp_path, spacing):
    image = tmp_path / 'xrays' / '001.png'
    image.parent.mkdir()
    cv2.imwrite(str(image), np.full((96, 64), 100, np.uint8))
    json_path = str(tmp_path / 'review' / '001.json')
    result = _result(str(image), spacing)
    # an 8-bit PNG: labelme opens it as it is, no review copy
    assert write_labelme(result, json_path) is None
    assert not osp.exists(tmp_path / 'review' / '001.png')
    with open(json_path, encoding='utf-8') as f:
        doc = json.load(f)
    assert doc['version'] == LABELME_VERSION
    assert doc['version'].split('.')[0] == '5'
    assert doc['imageData'] is None and doc['flags'] == {}
    assert (doc['imageWidth'], doc['imageHeight']) == (64, 96)
    assert doc['imagePath'] == osp.join('..', 'xrays', '001.png')
    assert doc['mmchh']['source_image'] == doc['imagePath']
    assert doc['mmchh']['review_copy'] is None
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


def _x_rays(folder):
    """A 16-bit (12 stored) DICOM, a MetaImage, a 16-bit and an 8-bit PNG
    of SIZE (40 x 32), with the DICOM's and MetaImage's header spacing."""
    folder.mkdir()
    write_dicom(str(folder / 'a.dcm'), make_pixels(1, np.uint16),
                PixelSpacing=[0.5, 0.25])
    write_mha(str(folder / 'b.mha'), make_pixels(2, np.uint16), (0.3, 0.3))
    cv2.imwrite(str(folder / 'c.png'), make_pixels(3, np.uint16) * 16)
    cv2.imwrite(str(folder / 'd.png'), make_pixels(4))
    return {n: str(folder / n) for n in ('a.dcm', 'b.mha', 'c.png', 'd.png')}


def test_review_copies_of_what_labelme_cannot_show(tmp_path):
    from PIL import Image
    images = _x_rays(tmp_path / 'xrays')
    labelme = tmp_path / 'out' / 'labelme'
    written = {
        name: write_labelme(_result(path, size=(40, 32)),
                            str(labelme / f'{name[0]}.json'))
        for name, path in images.items()
    }
    assert written == {'a.dcm': str(labelme / 'a.png'),
                       'b.mha': str(labelme / 'b.png'),
                       'c.png': str(labelme / 'c.png'), 'd.png': None}
    reasons = {}
    for name, path in images.items():
        with open(labelme / f'{name[0]}.json', encoding='utf-8') as f:
            doc = json.load(f)
        assert doc['imageData'] is None
        assert (doc['imageWidth'], doc['imageHeight']) == (40, 32)
        note = doc['mmchh']
        assert note['source_image'] == osp.join('..', '..', 'xrays', name)
        if written[name] is None:
            assert doc['imagePath'] == note['source_image']
            assert note['review_copy'] is None
            continue
        copy = labelme / f'{name[0]}.png'
        assert doc['imagePath'] == f'{name[0]}.png'
        assert note['review_copy']['file'] == doc['imagePath']
        assert 'review copy' in note['note']
        reasons[name] = note['review_copy']['reason']
        # 8-bit grey, the source's pixel grid, inference's grey exactly,
        # and what labelme opens it with reads it
        with Image.open(copy) as pil:
            assert pil.format == 'PNG' and pil.mode == 'L'
            assert pil.size == (40, 32)
            pixels = np.asarray(pil)
        np.testing.assert_array_equal(pixels, read_xray(path).grey)
        assert is_review_copy(str(copy))
    assert reasons == {'a.dcm': 'labelme cannot open .dcm files',
                       'b.mha': 'labelme cannot open .mha files',
                       'c.png': 'a 16-bit .png, which labelme shows wrongly'}
    assert not is_review_copy(images['d.png'])
    summary = labelme_summary([], str(labelme)).splitlines()
    assert summary[1].startswith('labelme: 3 8-bit PNG review copies')


@pytest.mark.parametrize('name,reason', [
    ('x.nii.gz', 'labelme cannot open .nii.gz files'),
    ('x.NRRD', 'labelme cannot open .nrrd files'),
    ('x.webp', 'labelme cannot open .webp files'),
    ('x.TIF', 'a 16-bit .tif, which labelme shows wrongly'),
    ('x.jpeg', None),
    ('x.tiff', None),
])
def test_review_copy_rule(name, reason):
    dtype = np.uint16 if name.endswith('TIF') else np.uint8
    assert review_copy_reason(name, np.zeros((2, 2), dtype)) == reason


def test_same_stem_sources_get_distinct_copies(tmp_path):
    """``a.dcm`` and ``a.png`` (16-bit) in one folder: infer names their
    files ``a.dcm.json`` and ``a.png.json``, the copies follow."""
    folder = tmp_path / 'xrays'
    folder.mkdir()
    sources = [str(folder / 'a.dcm'), str(folder / 'a.png')]
    write_dicom(sources[0], make_pixels(1, np.uint16))
    cv2.imwrite(sources[1], make_pixels(2, np.uint16))
    names = output_names(sources)
    labelme = tmp_path / 'labelme'
    copies = [write_labelme(_result(p, size=(40, 32)),
                            str(labelme / f'{names[p]}.json'))
              for p in sources]
    assert copies == [str(labelme / 'a.dcm.png'), str(labelme / 'a.png.png')]
    for source, copy in zip(sources, copies):
        np.testing.assert_array_equal(
            cv2.imread(copy, cv2.IMREAD_UNCHANGED), read_xray(source).grey)


def test_a_file_we_did_not_write_is_never_replaced(tmp_path):
    images = _x_rays(tmp_path / 'xrays')
    labelme = tmp_path / 'labelme'
    labelme.mkdir()
    theirs = labelme / 'a.png'
    cv2.imwrite(str(theirs), make_pixels(9))
    before = theirs.read_bytes()
    json_path = str(labelme / 'a.json')
    with pytest.raises(InputError, match=f'{theirs}: .*not written by mmchh'):
        write_labelme(_result(images['a.dcm'], size=(40, 32)), json_path)
    assert theirs.read_bytes() == before and not osp.exists(json_path)
    # our own copy (an earlier run's) is replaced
    theirs.unlink()
    for _ in range(2):
        assert write_labelme(_result(images['a.dcm'], size=(40, 32)),
                             json_path) == str(theirs)


def test_image_changed_since_prediction_gets_no_copy(tmp_path):
    images = _x_rays(tmp_path / 'xrays')
    with pytest.raises(InputError, match='changed since'):
        write_labelme(_result(images['b.mha'], size=(41, 32)),
                      str(tmp_path / 'labelme' / 'b.json'))
    assert not osp.exists(tmp_path / 'labelme' / 'b.png')
