import json
import os.path as osp

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmpose.registry import DATASETS

import mmchh  # noqa: F401
from mmchh.datasets import CEPH_LANDMARK_NAMES, CEPH_METAINFO_FILE
from mmchh.datasets.converters import convert_isbi

META_KEYS = ('id', 'img_id', 'img_path', 'ori_shape', 'img_shape',
             'input_size', 'input_center', 'input_scale', 'spacing',
             'annotator_keypoints')


def build(out, split, pipeline=()):
    init_default_scope('mmpose')
    return DATASETS.build(
        dict(
            type='CephalometricDataset',
            data_root=out,
            ann_file=f'{split}.json',
            data_prefix=dict(img=''),
            pipeline=list(pipeline),
            test_mode=split != 'train'))


def test_loads_converted_data_with_spacing_and_annotators(
        tmp_path, isbi_tree):
    root, out = str(tmp_path / 'isbi'), str(tmp_path / 'coco')
    truth = isbi_tree(root)
    convert_isbi(root, out, num_val=1, num_calib=1, resize=(40, 50))
    pipeline = [
        dict(type='LoadImage', color_type='grayscale'),
        dict(type='GetBBoxCenterScale', padding=1.0),
        dict(type='TopdownAffine', input_size=(40, 50)),
        dict(type='PackPoseInputs', meta_keys=META_KEYS),
    ]
    ds = build(out, 'test1', pipeline)
    assert len(ds) == 2
    assert ds.metainfo['num_keypoints'] == 19
    assert ds.metainfo['dataset_name'] == 'isbi2015_ceph'
    item = ds[0]
    sample = item['data_samples']
    assert item['inputs'].shape == (1, 50, 40)
    np.testing.assert_allclose(sample.spacing, [0.25, 0.25])
    assert set(sample.annotator_keypoints) == {'senior', 'junior'}
    stem = osp.splitext(osp.basename(sample.img_path))[0]
    np.testing.assert_allclose(
        sample.annotator_keypoints['senior'],
        (truth[stem]['senior'] + 0.5) * 0.4 - 0.5, atol=1e-5)
    assert sample.gt_instances.keypoints.shape == (1, 19, 2)


def test_metainfo_ships_with_the_package_and_matches_names():
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    assert osp.isabs(CEPH_METAINFO_FILE) and osp.isfile(CEPH_METAINFO_FILE)
    meta = parse_pose_metainfo(dict(from_file=CEPH_METAINFO_FILE))
    assert tuple(meta['keypoint_id2name'][i]
                 for i in range(19)) == CEPH_LANDMARK_NAMES
    assert meta['flip_indices'] == list(range(19))


def test_missing_data_error_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        build(str(tmp_path), 'train')
    msg = str(err.value)
    assert 'train.json' in msg
    assert 'tools/convert_isbi.py' in msg
    assert 'tools/make_synthetic_ceph.py' in msg


def test_bad_records_are_errors_not_drops(tmp_path, isbi_tree):
    root, out = str(tmp_path / 'isbi'), str(tmp_path / 'coco')
    isbi_tree(root)
    convert_isbi(root, out, num_val=1, num_calib=1)
    path = osp.join(out, 'test1.json')
    data = json.load(open(path))
    del data['images'][1]['spacing']
    json.dump(data, open(path, 'w'))
    with pytest.raises(ValueError, match='no "spacing"'):
        build(out, 'test1')
    data['images'][1]['spacing'] = [0.1, 0.1]
    data['annotations'][0]['keypoints'] = data['annotations'][0][
        'keypoints'][:-3]
    json.dump(data, open(path, 'w'))
    with pytest.raises(ValueError, match='expected 19 keypoints'):
        build(out, 'test1')


def test_inconsistent_records_name_the_file(tmp_path, isbi_tree):
    """Records MMPose would silently drop, or score in the wrong units, are
    errors naming the JSON (an InputError, which the tools print as one
    line)."""
    from mmchh.datasets.data_checks import DatasetError
    from mmchh.utils.errors import InputError
    root, out = str(tmp_path / 'isbi'), str(tmp_path / 'coco')
    isbi_tree(root)
    convert_isbi(root, out, num_val=1, num_calib=1, resize=(40, 50),
                 progress=False)
    path = osp.join(out, 'test1.json')
    good = json.load(open(path))
    cases = {
        'no "bbox"': lambda d: d['annotations'][0].pop('bbox'),
        'positive integers': lambda d: d['images'][0].update(width=40.5),
        'exactly 1 annotation per image': lambda d: d['annotations'].append(
            dict(d['annotations'][0], id=99)),
        'records 41x50': lambda d: d['images'][0].update(width=41),
    }
    for message, corrupt in cases.items():
        data = json.loads(json.dumps(good))
        corrupt(data)
        json.dump(data, open(path, 'w'))
        with pytest.raises(DatasetError, match=message) as err:
            build(out, 'test1')
        assert isinstance(err.value, InputError) and 'test1.json' in str(
            err.value)
