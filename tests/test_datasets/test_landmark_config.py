"""A folder converted by convert_landmarks trains through the generic
landmark config: tools/landmark_config.py writes the config for it, and
CephalometricDataset reads any K from the folder's metainfo, with
per-image spacing, refusing what it cannot score in mm."""
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpose.registry import DATASETS
from test_datasets.test_converters.landmark_files import (KEYPOINTS,
                                                          write_landmark_set)

from mmchh.datasets.converters import convert_landmarks
from mmchh.datasets.data_checks import DatasetError, MissingDataError
from mmchh.datasets.landmark_config import (LANDMARK_LOADERS,
                                            write_landmark_config)
from mmchh.testing import load_tool
from mmchh.utils.errors import InputError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASE = osp.join(REPO, 'configs', 'landmark', 'unet_r34_onehot.py')


def convert(tmp_path, spacing=(0.1, 0.2)):
    root, out = str(tmp_path / 'set'), str(tmp_path / 'out')
    truth = write_landmark_set(root)
    convert_landmarks(out,
                      osp.join(root, 'images'),
                      KEYPOINTS,
                      labelme={a: osp.join(root, a)
                               for a in ('dr_a', 'dr_b')},
                      spacing=spacing,
                      num_val=1,
                      num_calib=1,
                      test_fraction=0.2,
                      progress=False)
    return out, truth


def build(dataset_cfg, **overrides):
    init_default_scope('mmpose')
    cfg = dict(dataset_cfg.to_dict()
               if hasattr(dataset_cfg, 'to_dict') else dataset_cfg,
               pipeline=[],
               **overrides)
    return DATASETS.build(cfg)


@pytest.fixture
def converted(tmp_path):
    out, truth = convert(tmp_path)
    config = str(tmp_path / 'own.py')
    assert write_landmark_config(out, config, BASE) == len(KEYPOINTS)
    return out, truth, Config.fromfile(config)


def test_written_config_points_every_dataset_at_the_folder(converted):
    out, _, cfg = converted
    assert cfg.model.head.out_channels == len(KEYPOINTS)
    for loader in LANDMARK_LOADERS:
        dataset = cfg[loader].dataset
        assert osp.samefile(dataset.data_root, out), loader
        assert dataset.num_keypoints == len(KEYPOINTS)
        assert osp.samefile(dataset.metainfo.from_file,
                            osp.join(out, 'metainfo.py'))
        assert dataset.pipeline[0]['type'] == 'LoadFullRangeImage'
    assert [cfg[loader].dataset.ann_file for loader in LANDMARK_LOADERS
            ] == ['train.json', 'val.json', 'test.json', 'calib.json']
    # the rest is the paper's recipe, unchanged
    base = Config.fromfile(
        osp.join(REPO, 'configs', 'ceph', 'unet_r34_onehot.py'))
    assert cfg.model.head.decoder == base.model.head.decoder
    assert cfg.val_evaluator == base.val_evaluator
    # the pipelines too, loading step included (the base's already reads
    # 16-bit images at their full range)
    for loader, pipeline in (('train_dataloader', base.train_pipeline),
                             ('test_dataloader', base.val_pipeline)):
        assert cfg[loader].dataset.pipeline == pipeline, loader


def test_dataset_reads_any_k_with_names_spacing_and_annotators(converted):
    out, truth, cfg = converted
    ds = build(cfg.test_dataloader.dataset)
    assert ds.metainfo['num_keypoints'] == len(KEYPOINTS)
    assert [ds.metainfo['keypoint_id2name'][i]
            for i in range(len(KEYPOINTS))] == list(KEYPOINTS)
    assert len(ds) == 1
    info = ds.get_data_info(0)
    np.testing.assert_allclose(info['spacing'], [0.1, 0.2])
    stem = osp.splitext(osp.basename(info['img_path']))[0]
    assert set(info['annotator_keypoints']) == {'dr_a', 'dr_b'}
    for annotator, points in truth[stem].items():
        np.testing.assert_allclose(info['annotator_keypoints'][annotator],
                                   points,
                                   rtol=1e-6)
    np.testing.assert_allclose(info['keypoints'][0],
                               np.mean(list(truth[stem].values()), 0),
                               rtol=1e-5)


def test_landmark_count_mismatch_names_both_numbers_and_the_fix(converted):
    _, _, cfg = converted
    with pytest.raises(DatasetError) as err:
        build(cfg.val_dataloader.dataset, num_keypoints=19)
    message = str(err.value)
    assert 'has 3 landmarks' in message and 'model for 19' in message
    assert 'tools/landmark_config.py' in message
    assert 'model.head.out_channels=3' in message


def test_generic_config_without_a_conversion_says_how_to_make_one(tmp_path):
    cfg = Config.fromfile(BASE)
    with pytest.raises(MissingDataError, match='tools/convert_landmarks.py'):
        build(cfg.train_dataloader.dataset, data_root=str(tmp_path))


def test_images_without_spacing_are_refused_all_named(tmp_path):
    out, _ = convert(tmp_path, spacing=None)
    cfg = Config.fromfile(BASE)
    with open(osp.join(out, 'train.json')) as f:
        names = [img['file_name'] for img in json.load(f)['images']]
    with pytest.raises(DatasetError) as err:
        build(cfg.train_dataloader.dataset, data_root=out, num_keypoints=3)
    message = str(err.value)
    assert f'{len(names)} image(s) have no pixel spacing' in message
    assert all(name in message for name in names)
    assert '--spacing' in message and 'not supported yet' in message


def test_tool_writes_the_config_and_refuses_a_folder_without_one(
        tmp_path, capsys):
    out, _ = convert(tmp_path)
    tool = load_tool('landmark_config')
    config = str(tmp_path / 'cfg.py')
    assert tool.main([out, config]) == 0
    assert 'wrote' in capsys.readouterr().out
    assert Config.fromfile(config).model.head.out_channels == 3
    with pytest.raises(SystemExit) as err:
        tool.main([str(tmp_path), str(tmp_path / 'other.py')])
    assert 'no metainfo.py' in str(err.value.code)
    assert not osp.exists(str(tmp_path / 'other.py'))
    with pytest.raises(InputError, match='overwrite the base'):
        write_landmark_config(out, BASE, BASE)


@pytest.mark.parametrize('config,expected', [
    ('own.py', 'configs/landmark/unet_r34_onehot.py'),
    ('configs/own/own.py', '../landmark/unet_r34_onehot.py'),
],
                         ids=['repo_root', 'configs_folder'])
def test_base_is_relative_within_the_repository(tmp_path, config, expected):
    from mmchh.datasets.landmark_config import landmark_config_source
    out, _ = convert(tmp_path)
    text, num = landmark_config_source(out, osp.join(REPO, config), BASE)
    assert num == 3 and f'_base_ = [{expected!r}]' in text
    # outside it (tmp_path): the absolute path
    text, _ = landmark_config_source(out, str(tmp_path / 'own.py'), BASE)
    assert f'_base_ = [{BASE!r}]' in text


def test_a_landmark_one_annotator_missed_is_nan_for_that_annotator(
        tmp_path):
    """Not a (0, 0) placeholder: annotator targets drop non-finite points,
    a placeholder would pull training towards the image corner."""
    root, out = str(tmp_path / 'set'), str(tmp_path / 'out')
    truth = write_landmark_set(root, count=3)
    # dr_b never marked the second landmark of any image
    for stem in truth:
        path = osp.join(root, 'dr_b', f'{stem}.json')
        with open(path) as f:
            doc = json.load(f)
        doc['shapes'] = [s for s in doc['shapes']
                         if s['label'] != KEYPOINTS[1]]
        with open(path, 'w') as f:
            json.dump(doc, f)
    convert_landmarks(out, osp.join(root, 'images'), KEYPOINTS,
                      labelme={a: osp.join(root, a)
                               for a in ('dr_a', 'dr_b')},
                      spacing=(0.1, 0.1), num_val=1, num_calib=1,
                      test_fraction=0.0, skip_bad=True, progress=False)
    config = str(tmp_path / 'own.py')
    write_landmark_config(out, config, BASE)
    ds = build(Config.fromfile(config).train_dataloader.dataset)
    info = ds.get_data_info(0)
    stem = osp.splitext(osp.basename(info['img_path']))[0]
    points = info['annotator_keypoints']
    assert np.isnan(points['dr_b'][1]).all()
    assert np.isfinite(np.delete(points['dr_b'], 1, axis=0)).all()
    np.testing.assert_allclose(points['dr_a'], truth[stem]['dr_a'],
                               rtol=1e-6)
    # the ground truth of that landmark is dr_a's alone
    np.testing.assert_allclose(info['keypoints'][0][1],
                               truth[stem]['dr_a'][1], rtol=1e-6)
