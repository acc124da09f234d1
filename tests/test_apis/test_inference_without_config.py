# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""A checkpoint alone predicts (its recipe), a config of another grid is
refused by the API and every tool that takes one, and the override warns
and goes on."""
import json
import os
import os.path as osp
import warnings

import pytest
import torch
from mmengine.config import Config

import mmchh  # noqa: F401
from mmchh.apis import init_landmark_model, predict_landmarks
from mmchh.testing import run_tool_in_process
from mmchh.utils.checkpoint_recipe import RECIPE_KEY, ConfigMismatchError
from mmchh.utils.errors import InputError

OTHER_SIZE = (128, 160)


@pytest.fixture(scope='module')
def demo(calibrated_small_demo, tmp_path_factory):
    """The session's calibrated demo, one of its images, and its config
    resized to :data:`OTHER_SIZE` (the same recipe at another grid)."""
    data = calibrated_small_demo['data']
    image = osp.join(data, 'images', sorted(os.listdir(
        osp.join(data, 'images')))[0])
    cfg = Config.fromfile(calibrated_small_demo['cfg'])
    cfg.model.head.decoder.input_size = OTHER_SIZE
    cfg.model.head.decoder.heatmap_size = OTHER_SIZE
    for loader in ('val_dataloader', 'test_dataloader', 'calib_dataloader'):
        for step in cfg[loader].dataset.pipeline:
            if step.type == 'TopdownAffine':
                step.input_size = OTHER_SIZE
            if 'encoder' in step:
                step.encoder.input_size = OTHER_SIZE
                step.encoder.heatmap_size = OTHER_SIZE
    other = str(tmp_path_factory.mktemp('other_grid') / 'other_grid.py')
    cfg.dump(other)
    return dict(calibrated_small_demo, image=image, other=other)


def _xy(results):
    return [[(lm['x'], lm['y'], lm['ere_px']) for lm in r.landmarks]
            for r in results]


def test_checkpoint_alone_predicts_as_with_its_config(demo):
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)
        alone = init_landmark_model(demo['ckpt'])
        none_first = init_landmark_model(None, demo['ckpt'])
        configured = init_landmark_model(demo['cfg'], demo['ckpt'])
    want = _xy(predict_landmarks(configured, demo['image'], spacing=0.1))
    assert _xy(predict_landmarks(alone, demo['image'], spacing=0.1)) == want
    assert _xy(predict_landmarks(none_first, demo['image'],
                                 spacing=0.1)) == want
    assert alone.dataset_meta['keypoint_id2name'][0] == 'sella'


def test_api_refuses_a_config_of_another_grid(demo):
    with pytest.raises(ConfigMismatchError) as info:
        init_landmark_model(demo['other'], demo['ckpt'])
    msg = str(info.value)
    assert demo['other'] in msg and demo['ckpt'] in msg
    assert 'input size 128x160' in msg and 'input size 64x96' in msg


def test_api_override_warns_and_uses_the_config(demo):
    with pytest.warns(UserWarning, match='input size 128x160.*allowed'):
        model = init_landmark_model(demo['other'], demo['ckpt'],
                                    allow_config_mismatch=True)
    assert tuple(model.head.decoder.input_size) == OTHER_SIZE


def test_old_checkpoint_without_stored_recipe(demo, tmp_path):
    ckpt = torch.load(demo['ckpt'], map_location='cpu', weights_only=True)
    del ckpt['meta'][RECIPE_KEY]  # as written before the recipe was stored
    old = str(tmp_path / 'old.pth')
    torch.save(ckpt, old)
    model = init_landmark_model(old)  # read from MMEngine's config text
    want = init_landmark_model(demo['ckpt'])
    assert _xy(predict_landmarks(model, demo['image'])) == _xy(
        predict_landmarks(want, demo['image']))
    with pytest.raises(ConfigMismatchError):
        init_landmark_model(demo['other'], old)

    bare = str(tmp_path / 'bare.pth')  # a plain state dict: no recipe
    torch.save(dict(state_dict=ckpt['state_dict']), bare)
    with pytest.raises(InputError, match='carries no recipe.*--config'):
        init_landmark_model(bare)
    with pytest.warns(UserWarning, match='carries no recipe.*cannot be '
                      'checked'):
        init_landmark_model(demo['cfg'], bare)


def test_infer_tool_without_config_equals_with_config(demo, tmp_path):
    outs = {}
    for name, extra in (('alone', []), ('config', ['--config', demo['cfg']])):
        out = tmp_path / name
        proc = run_tool_in_process('infer', [
            demo['image'], '--checkpoint', demo['ckpt'], '--out-dir',
            str(out), '--no-overlay', '--no-progress', *extra])
        assert proc.returncode == 0, proc.stderr
        doc = json.load(open(out / 'landmarks.json'))
        outs[name] = [(lm['x'], lm['y'], lm['ere_px'])
                      for lm in doc['results'][0]['landmarks']]
    assert outs['alone'] == outs['config']


def test_infer_tool_refuses_and_override_goes_on(demo, tmp_path):
    args = [demo['image'], '--config', demo['other'], '--checkpoint',
            demo['ckpt'], '--no-overlay', '--no-progress']
    proc = run_tool_in_process('infer', args + ['--out-dir',
                                                str(tmp_path / 'a')])
    assert proc.returncode == 1
    line, = proc.stderr.strip().splitlines()
    assert line.startswith('infer.py: error: config ')
    assert 'input size 128x160' in line and 'input size 64x96' in line
    assert not (tmp_path / 'a' / 'landmarks.json').exists()
    with pytest.warns(UserWarning, match='input size 128x160.*allowed'):
        proc = run_tool_in_process('infer', args + [
            '--out-dir', str(tmp_path / 'b'), '--allow-config-mismatch'])
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize('tool', ['test', 'calibrate', 'measure'])
def test_tools_refuse_a_config_of_another_grid(demo, tmp_path, tool):
    args = [demo['other'], demo['ckpt']]
    if tool == 'measure':
        args += [osp.join(demo['data'], 'test1.json'), '--out-dir',
                 str(tmp_path / 'm')]
    else:
        args += ['--work-dir', str(tmp_path / 'w')]
    proc = run_tool_in_process(tool, args)
    assert proc.returncode == 1
    line, = proc.stderr.strip().splitlines()
    assert line.startswith(f'{tool}.py: error: config {demo["other"]}: ')
    assert f'checkpoint {demo["ckpt"]} was trained with input size 64x96' \
        in line and '--allow-config-mismatch' in line
