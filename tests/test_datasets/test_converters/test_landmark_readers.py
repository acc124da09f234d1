import json

import pytest

from mmchh.datasets.converters import BadImageError
from mmchh.datasets.converters.coco_reader import read_coco_marks
from mmchh.datasets.converters.csv_reader import read_csv_marks
from mmchh.datasets.converters.labelme_reader import read_labelme_file
from mmchh.datasets.converters.validation import BadInputPolicy
from landmark_files import Writers

KEYPOINTS = ('sella', 'nasion', 'menton')


@pytest.fixture
def writers():
    return Writers


def test_labelme_points_kept_exactly_and_image_fields_recorded(
        tmp_path, writers):
    path = str(tmp_path / '001.json')
    x = 12.345678901234567
    writers.labelme(path,
                    dict(sella=(x, 0.1), nasion=(3, 4)),
                    image_path='../old/1.tif')
    marks = read_labelme_file(path, KEYPOINTS, BadInputPolicy())
    assert marks.points['sella'] == [(x, 0.1, 'shape 0')]
    assert marks.points['nasion'] == [(3.0, 4.0, 'shape 1')]
    assert 'menton' not in marks.points
    assert marks.image_path == '../old/1.tif'
    assert marks.image_size == writers.size and not marks.rejected


@pytest.mark.parametrize(
    'shape,match', [
        (dict(label='porion', points=[[1, 2]],
              shape_type='point'), "unknown label 'porion'"),
        (dict(label='sella', points=[[1, 2], [3, 4]]), 'polygon shape'),
        (dict(label='sella', points=[[1, None]],
              shape_type='point'), 'one \\[x, y\\] of finite JSON numbers'),
    ],
    ids=['unknown_label', 'no_shape_type_is_polygon', 'bad_point'])
def test_labelme_bad_shapes_name_file_and_label(tmp_path, writers, shape,
                                                match):
    path = str(tmp_path / '001.json')
    writers.labelme(path, dict(nasion=(3, 4)), extra_shapes=[shape])
    with pytest.raises(BadImageError, match=match) as err:
        read_labelme_file(path, KEYPOINTS, BadInputPolicy())
    assert f'{path} (shape 1)' in str(err.value)
    policy = BadInputPolicy(skip_bad=True)
    with pytest.warns(UserWarning, match='shape ignored'):
        marks = read_labelme_file(path, KEYPOINTS, policy)
    assert list(marks.points) == ['nasion']
    assert policy.faults[0]['label'] == shape['label']


def test_labelme_unreadable_file_is_rejected_when_skipping(tmp_path):
    path = tmp_path / '001.json'
    path.write_text('{"shapes": [')
    with pytest.raises(BadImageError, match='cannot read labelme JSON'):
        read_labelme_file(str(path), KEYPOINTS, BadInputPolicy())
    path.write_text('[1, 2]')
    with pytest.warns(UserWarning, match='not a labelme file'):
        marks = read_labelme_file(str(path), KEYPOINTS,
                                  BadInputPolicy(skip_bad=True))
    assert marks.rejected and marks.points == {}


def test_csv_without_annotator_column(tmp_path):
    path = tmp_path / 'm.csv'
    path.write_text('x,y,keypoint,image\n'
                    '1.25,2.5,sella,sub/a1.TIF\n'
                    '3,4,nasion,a1.TIF\n')
    found = read_csv_marks(str(path), KEYPOINTS, BadInputPolicy())
    assert list(found) == ['a1'] and list(found['a1']) == ['csv']
    assert found['a1']['csv'].points['sella'] == [(1.25, 2.5, 'line 2')]
    path.write_text('image,keypoint,x\n')
    with pytest.raises(ValueError, match='missing column'):
        read_csv_marks(str(path), KEYPOINTS, BadInputPolicy())


def test_coco_plain_keypoints_are_one_annotator_and_v0_unmarked(tmp_path):
    data = dict(
        images=[dict(id=7, file_name='x/001.png', width=40, height=32)],
        annotations=[
            dict(id=1,
                 image_id=7,
                 category_id=3,
                 keypoints=[1.5, 2, 2, 0, 0, 0, 5, 6, 1, 9, 9, 2])
        ],
        categories=[
            dict(id=3, keypoints=['sella', 'nasion', 'menton', 'porion'])
        ])
    path = str(tmp_path / 'c.json')
    with open(path, 'w') as f:
        json.dump(data, f)
    with pytest.raises(BadImageError, match="unknown keypoint 'porion'"):
        read_coco_marks(path, KEYPOINTS, BadInputPolicy())
    with pytest.warns(UserWarning, match='point ignored'):
        found = read_coco_marks(path, KEYPOINTS, BadInputPolicy(skip_bad=True))
    marks = found['001']['coco']
    assert marks.points == {
        'sella': [(1.5, 2.0, 'annotation id 1')],
        'menton': [(5.0, 6.0, 'annotation id 1')]
    }
    assert marks.image_size == (40, 32)
