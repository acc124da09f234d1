"""The annotation readers refuse what they cannot read exactly: duplicate
ids and columns, non-decimal numbers, unknown fields, sizes that disagree
by value, and an annotation file embedding another image."""
import base64
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from mmchh.datasets.converters import BadImageError, ConversionError
from mmchh.datasets.converters.coco_reader import read_coco_marks
from mmchh.datasets.converters.csv_reader import read_csv_marks
from mmchh.datasets.converters.embedded_image import (MIN_CORRELATION,
                                                      picture_mismatch,
                                                      picture_signature)
from mmchh.datasets.converters.labelme_reader import (read_labelme_dirs,
                                                      read_labelme_file)
from mmchh.datasets.converters.landmark_records import (pair_images,
                                                        read_records)
from mmchh.datasets.converters.strict_values import (decimal_value,
                                                     json_number, json_size)
from mmchh.datasets.converters.validation import BadInputPolicy
from mmchh.datasets.synthetic.sample import synthetic_ceph_sample
from landmark_files import Writers

KEYPOINTS = ('sella', 'nasion', 'menton')
POINTS = dict(sella=(3.25, 4.5), nasion=(10.0, 20.125), menton=(30.5, 7.75))


def ceph(seed, size=(64, 80)):
    """A small synthetic cephalogram (H, W) uint8: smooth, X-ray like."""
    return synthetic_ceph_sample(np.random.default_rng(seed), size)['image']


def coco_file(tmp_path, images, annotations, name='c.json'):
    path = str(tmp_path / name)
    with open(path, 'w') as f:
        json.dump(
            dict(images=images,
                 annotations=annotations,
                 categories=[dict(id=1, keypoints=list(KEYPOINTS))]), f)
    return path


def kpts(points=POINTS):
    return [v for name in KEYPOINTS for v in (*points[name], 2)]


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize('text,value', [('12.5', 12.5), ('-3', -3.0),
                                        ('.5', 0.5), ('5.', 5.0),
                                        ('+8e2', 800.0), (' 7 ', 7.0),
                                        ('1E-2', 0.01)])
def test_plain_decimal_spellings_are_numbers(text, value):
    assert decimal_value(text) == value


@pytest.mark.parametrize(
    'text', [
        '1_5', '0x1', ' inf', 'nan', 'infinity', '-Infinity', '1e400', '',
        'true', '\u0661\u0662', '1,5', '--1', '1e', 'e5', '.', '12.5\n'
    ])
def test_other_spellings_are_not_numbers(text):
    assert decimal_value(text) is None


def test_json_values_bool_string_and_overflow_are_not_numbers():
    assert json_number(2) == 2.0 and json_number(-0.5) == -0.5
    for value in (True, '12.5', None, float('nan'), float('inf'), 10**400):
        assert json_number(value) is None
    assert [json_size(v) for v in (640, 640.0, '640')] == [640] * 3
    for value in (640.5, 'abc', True, 0, -640, '0x280', '640.5'):
        assert json_size(value) is None


# ---------------------------------------------------------------- CSV


def test_csv_one_five_with_underscore_is_refused(tmp_path):
    path = tmp_path / 'm.csv'
    path.write_text('image,keypoint,x,y\na.png,sella,1_5,2\n')
    with pytest.raises(BadImageError,
                       match=r"m\.csv:2: x, y must be finite plain decimal "
                       r"numbers, got '1_5', '2'"):
        read_csv_marks(str(path), KEYPOINTS, BadInputPolicy())


def test_csv_repeated_column_is_refused_naming_file_and_column(tmp_path):
    path = tmp_path / 'm.csv'
    path.write_text('image,keypoint,x,y,x\na.png,sella,1,2,3\n')
    with pytest.raises(ConversionError,
                       match=r"m\.csv: column\(s\) 'x' named more than once"):
        read_csv_marks(str(path), KEYPOINTS, BadInputPolicy(skip_bad=True))


@pytest.mark.parametrize('column', ['visible', 'note', ''],
                         ids=['visible', 'note', 'trailing_comma'])
def test_csv_unknown_column_is_refused(tmp_path, column):
    path = tmp_path / 'm.csv'
    path.write_text(f'image,keypoint,x,y,{column}\na.png,sella,1,2,0\n')
    with pytest.raises(ConversionError,
                       match=rf"m\.csv: unknown column\(s\) '{column}'"):
        read_csv_marks(str(path), KEYPOINTS, BadInputPolicy())


def test_csv_row_with_another_cell_count_is_a_fault(tmp_path):
    path = tmp_path / 'm.csv'
    path.write_text('image,keypoint,x,y\na.png,sella,1,2\na.png,nasion,3\n')
    with pytest.raises(BadImageError, match=r'm\.csv:3: 3 cells but the '
                       'header names 4 columns'):
        read_csv_marks(str(path), KEYPOINTS, BadInputPolicy())


def test_csv_group_column_sets_the_image_group(tmp_path):
    path = tmp_path / 'm.csv'
    path.write_text('image,keypoint,x,y,annotator,group\n'
                    'a.png,sella,1,2,r1,p7\n'
                    'a.png,nasion,3,4,r2,\n'
                    'b.png,sella,5,6,r1,\n')
    found = read_csv_marks(str(path), KEYPOINTS, BadInputPolicy())
    assert {m.group for m in found['a'].values()} == {'p7'}
    assert found['b']['r1'].group is None


def test_csv_image_in_two_groups_names_lines_and_groups(tmp_path):
    path = tmp_path / 'm.csv'
    path.write_text('image,keypoint,x,y,group\n'
                    'a.png,sella,1,2,p7\n'
                    'b.png,sella,1,2,p8\n'
                    'a.png,nasion,3,4,p9\n')
    with pytest.raises(BadImageError,
                       match=r"m\.csv:2 and .*m\.csv:4: image a given two "
                       r"groups, 'p7' and 'p9'"):
        read_csv_marks(str(path), KEYPOINTS, BadInputPolicy())
    policy = BadInputPolicy(skip_bad=True)
    with pytest.warns(UserWarning, match='two groups'):
        found = read_csv_marks(str(path), KEYPOINTS, policy)
    assert found['a']['csv'].rejected and not found['b']['csv'].rejected
    assert len(policy.faults) == 1


# ---------------------------------------------------------------- COCO


def test_coco_duplicate_image_id_names_file_id_and_both_names(tmp_path):
    path = coco_file(tmp_path, [
        dict(id=7, file_name='001.png', width=40, height=32),
        dict(id=7, file_name='002.png', width=40, height=32)
    ], [dict(id=1, image_id=7, category_id=1, keypoints=kpts())])
    with pytest.raises(ConversionError) as err:
        read_coco_marks(path, KEYPOINTS, BadInputPolicy(skip_bad=True))
    message = str(err.value)
    assert path in message and 'one id 7' in message
    assert "'001.png'" in message and "'002.png'" in message


def test_coco_duplicate_annotation_id_is_refused(tmp_path):
    path = coco_file(tmp_path, [
        dict(id=1, file_name='001.png'),
        dict(id=2, file_name='002.png')
    ], [
        dict(id=5, image_id=1, category_id=1, keypoints=kpts()),
        dict(id=5, image_id=2, category_id=1, keypoints=kpts())
    ])
    with pytest.raises(ConversionError,
                       match=r'annotations\[0\] and annotations\[1\] have '
                       'one id 5'):
        read_coco_marks(path, KEYPOINTS, BadInputPolicy())


@pytest.mark.parametrize('block,key', [('images', 'rotation'),
                                       ('annotations', 'score'),
                                       ('categories', 'flip_pairs')])
def test_coco_unknown_record_key_is_refused(tmp_path, block, key):
    images = [dict(id=1, file_name='001.png')]
    anns = [dict(id=1, image_id=1, category_id=1, keypoints=kpts())]
    path = coco_file(tmp_path, images, anns)
    with open(path) as f:
        data = json.load(f)
    data[block][0][key] = 1
    with open(path, 'w') as f:
        json.dump(data, f)
    with pytest.raises(ConversionError,
                       match=rf"\({block}\[0\]\): unknown key\(s\) '{key}'"):
        read_coco_marks(path, KEYPOINTS, BadInputPolicy())


@pytest.mark.parametrize('bad', ['12.5', True, None, 3],
                         ids=['string', 'bool', 'null', 'v_3'])
def test_coco_keypoint_values_must_be_numbers_and_v_0_1_2(tmp_path, bad):
    values = kpts()
    values[8 if bad == 3 else 0] = bad
    path = coco_file(tmp_path, [dict(id=1, file_name='001.png')],
                     [dict(id=4, image_id=1, category_id=1, keypoints=values)])
    with pytest.raises(BadImageError,
                       match=r'annotation id 4\): "keypoints" must hold 9 '
                       'finite JSON numbers'):
        read_coco_marks(path, KEYPOINTS, BadInputPolicy())


def test_coco_float_size_and_group_read_back(tmp_path):
    path = coco_file(tmp_path, [
        dict(id=1, file_name='001.png', width=40.0, height='32', group='p1')
    ], [dict(id=1, image_id=1, category_id=1, keypoints=kpts())])
    marks = read_coco_marks(path, KEYPOINTS, BadInputPolicy())['001']['coco']
    assert marks.image_size == (40, 32) and marks.group == 'p1'
    assert marks.points['nasion'] == [(10.0, 20.125, 'annotation id 1')]


# ---------------------------------------------------------------- labelme


def labelme_data(path):
    with open(path) as f:
        return json.load(f)


def rewrite(path, **changes):
    data = labelme_data(path)
    data.update(changes)
    with open(path, 'w') as f:
        json.dump(data, f)


@pytest.mark.parametrize('change,match', [
    (dict(foo=1), r"unknown key\(s\) 'foo'"),
    (dict(imageWidth=40.5), 'imageWidth must be a positive whole number'),
    (dict(imageHeight='abc'), 'imageHeight must be a positive whole number'),
    (dict(imageHeight=None), 'must both be given'),
    (dict(imageData='aGVsbG8='), 'imageData does not decode as an image'),
    (dict(imageData='not base64!'), 'imageData not base64'),
],
                         ids=[
                             'unknown_key', 'width_640_5', 'height_abc',
                             'height_missing', 'data_not_image',
                             'data_not_base64'
                         ])
def test_labelme_file_faults_name_file_and_field(tmp_path, change, match):
    path = str(tmp_path / '001.json')
    Writers.labelme(path, POINTS)
    rewrite(path, **change)
    with pytest.raises(BadImageError, match=match) as err:
        read_labelme_file(path, KEYPOINTS, BadInputPolicy())
    assert str(err.value).startswith(path)
    policy = BadInputPolicy(skip_bad=True)
    with pytest.warns(UserWarning, match='file ignored'):
        marks = read_labelme_file(path, KEYPOINTS, policy)
    assert marks.rejected and marks.points == {}


def test_labelme_duplicate_json_key_is_refused(tmp_path):
    path = tmp_path / '001.json'
    Writers.labelme(str(path), POINTS)
    text = path.read_text()
    path.write_text(text[:-1] + ', "imageWidth": 99}')
    with pytest.raises(BadImageError,
                       match="key 'imageWidth' given twice in one object"):
        read_labelme_file(str(path), KEYPOINTS, BadInputPolicy())


@pytest.mark.parametrize('key', ['text', 'score'])
def test_labelme_unknown_shape_key_ignores_the_shape(tmp_path, key):
    path = str(tmp_path / '001.json')
    Writers.labelme(path, POINTS)
    data = labelme_data(path)
    data['shapes'][1][key] = 'x'
    rewrite(path, shapes=data['shapes'])
    with pytest.raises(BadImageError,
                       match=rf"\(shape 1\): unknown key\(s\) '{key}'"):
        read_labelme_file(path, KEYPOINTS, BadInputPolicy())


@pytest.mark.parametrize('coordinate', ['12.5', True, 10**400],
                         ids=['string', 'bool', 'huge_int'])
def test_labelme_coordinate_must_be_a_finite_json_number(tmp_path,
                                                         coordinate):
    path = str(tmp_path / '001.json')
    Writers.labelme(path, POINTS)
    data = labelme_data(path)
    data['shapes'][0]['points'] = [[coordinate, 1.0]]
    rewrite(path, shapes=data['shapes'])
    with pytest.raises(BadImageError, match=r'\(shape 0\): label .sella.: '
                       'points must hold one'):
        read_labelme_file(path, KEYPOINTS, BadInputPolicy())


def test_labelme_3_colours_and_mmchh_note_are_read(tmp_path):
    path = str(tmp_path / '001.json')
    Writers.labelme(path, POINTS)
    data = labelme_data(path)
    data['shapes'][0].update(line_color=None, fill_color=[255, 0, 0, 128])
    rewrite(path,
            shapes=data['shapes'],
            lineColor=[0, 255, 0, 128],
            fillColor=[255, 0, 0, 128],
            mmchh=dict(source='tools/infer.py (mmchh)'))
    marks = read_labelme_file(path, KEYPOINTS, BadInputPolicy())
    assert marks.points['sella'] == [(3.25, 4.5, 'shape 0')]


# ------------------------------------------- the image a file was made for


def convert_reads(root, skip_bad=False):
    """The labelme set under ``root`` read, paired and resolved (no
    output written): (records, policy)."""
    policy = BadInputPolicy(skip_bad=skip_bad)
    marks = read_labelme_dirs({'dr_a': osp.join(root, 'dr_a')}, KEYPOINTS,
                              policy)
    paired = pair_images(osp.join(root, 'images'), marks, 'labelme', policy)
    records, _ = read_records(paired, marks, ['dr_a'], KEYPOINTS, 'dr_a',
                              np.array([0.1, 0.1]), policy, False)
    return records, policy


def write_pair(root, pixels, image_data=None, size=None, ext='.png'):
    """``root/images/001<ext>`` and ``root/dr_a/001.json``."""
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    os.makedirs(osp.join(root, 'dr_a'), exist_ok=True)
    cv2.imwrite(osp.join(root, 'images', '001' + ext), pixels)
    json_path = osp.join(root, 'dr_a', '001.json')
    Writers.labelme(json_path,
                    POINTS,
                    image_data=image_data,
                    size=size or (pixels.shape[1], pixels.shape[0]))
    return json_path


def b64(pixels, ext='.png', params=()):
    return base64.b64encode(cv2.imencode(ext, pixels,
                                         list(params))[1]).decode()


@pytest.mark.parametrize('width,height', [(64.0, 80.0), ('64', '80.0')],
                         ids=['floats', 'strings'])
def test_labelme_size_as_float_or_string_matching_is_accepted(
        tmp_path, width, height):
    json_path = write_pair(str(tmp_path), ceph(0))
    rewrite(json_path, imageWidth=width, imageHeight=height)
    records, policy = convert_reads(str(tmp_path))
    assert records[0]['anns']['dr_a'].visible.all() and not policy.faults


def test_labelme_width_640_float_with_a_wrong_size_is_caught(tmp_path):
    json_path = write_pair(str(tmp_path), ceph(0))
    rewrite(json_path, imageWidth=640.0, imageHeight=800.0)
    with pytest.raises(BadImageError,
                       match=r'001\.json: made for a 640x800 image but .*'
                       r'001\.png is 64x80'):
        convert_reads(str(tmp_path))


@pytest.mark.parametrize('embedded', ['same_png', 'jpeg_copy', 'from_16_bit'])
def test_embedded_image_of_the_same_picture_passes(tmp_path, embedded):
    pixels = ceph(0)
    paired = pixels
    if embedded == 'jpeg_copy':
        data = b64(pixels, '.jpg', (cv2.IMWRITE_JPEG_QUALITY, 50))
    elif embedded == 'from_16_bit':  # the paired file is a 12-bit TIFF
        paired = pixels.astype(np.uint16) * 16 + 7
        data = b64(pixels)
    else:
        data = b64(pixels)
    write_pair(str(tmp_path), paired, image_data=data,
               ext='.tif' if embedded == 'from_16_bit' else '.png')
    records, policy = convert_reads(str(tmp_path))
    assert records[0]['anns']['dr_a'].visible.all() and not policy.faults


def test_embedded_image_of_another_picture_names_both_files(tmp_path):
    json_path = write_pair(str(tmp_path), ceph(0), image_data=b64(ceph(1)))
    image = osp.join(str(tmp_path), 'images', '001.png')
    with pytest.raises(BadImageError) as err:
        convert_reads(str(tmp_path))
    assert str(err.value).startswith(
        f'{json_path}: its embedded image (imageData) is not {image}: '
        'their pixels differ (correlation')
    with pytest.warns(UserWarning):
        records, policy = convert_reads(str(tmp_path), skip_bad=True)
    assert records == []  # its only annotator's points unused
    assert policy.faults[0]['file'] == json_path
    assert policy.faults[0]['action'].startswith('file ignored')


def test_embedded_image_of_another_size_is_named(tmp_path):
    write_pair(str(tmp_path), ceph(0), image_data=b64(ceph(0, (72, 90))))
    with pytest.raises(BadImageError, match='imageData.* it is 72x90, the '
                       'image 64x80'):
        convert_reads(str(tmp_path))


def test_picture_comparison_margin_on_cephalograms():
    a, b = picture_signature(ceph(0)), picture_signature(ceph(1))
    assert float(np.mean(a.thumbnail * a.thumbnail)) > 0.999
    assert float(np.mean(a.thumbnail * b.thumbnail)) < MIN_CORRELATION - 0.05
    flat = picture_signature(np.full((80, 64), 9, np.uint8))
    assert picture_mismatch(flat, flat) is None
    assert 'constant' in picture_mismatch(flat, a)
