# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The recipe a checkpoint carries: written by training and calibration,
read back as plain data without running anything, compared with a
config."""
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import mmchh  # noqa: F401
from mmchh.utils.checkpoint import load_checkpoint_file
from mmchh.utils.checkpoint_recipe import (RECIPE_KEY, ConfigMismatchError,
                                           check_config_matches_checkpoint,
                                           checkpoint_recipe,
                                           config_differences,
                                           parse_config_text, recipe_config,
                                           recipe_from_config, require_recipe)
from mmchh.utils.errors import InputError


def _grid(recipe):
    decoder = recipe['model']['head']['decoder']
    return tuple(decoder['input_size']), tuple(decoder['heatmap_size'])


def test_training_and_calibration_checkpoints_carry_the_recipe(
        calibrated_small_demo):
    cfg = Config.fromfile(calibrated_small_demo['cfg'])
    work = calibrated_small_demo['work']
    saved = [n for n in os.listdir(work) if n.endswith('.pth')]
    assert 'calibrated.pth' in saved and len(saved) >= 2  # + epoch/best
    for name in saved:
        ckpt = load_checkpoint_file(osp.join(work, name))  # weights_only
        recipe = ckpt['meta'][RECIPE_KEY]
        assert _grid(recipe) == (tuple(cfg.model.head.decoder.input_size),
                                 tuple(cfg.model.head.decoder.heatmap_size))
        assert recipe['model']['head']['out_channels'] == 19
        assert recipe['model']['data_preprocessor']['mean'] == list(
            cfg.model.data_preprocessor.mean)
        assert recipe['keypoint_names'][:2] == ['sella', 'nasion']
        assert recipe['test_pipeline'] == cfg.to_dict()[
            'test_dataloader']['dataset']['pipeline']
        assert config_differences(cfg, recipe) == []


def test_old_checkpoint_recipe_read_from_config_text(calibrated_small_demo):
    ckpt = load_checkpoint_file(calibrated_small_demo['ckpt'])
    stored = ckpt['meta'].pop(RECIPE_KEY)
    read = checkpoint_recipe(ckpt)  # from meta['cfg'], MMEngine's text
    assert read == stored


def test_config_text_is_read_never_run(tmp_path):
    marker = tmp_path / 'ran'
    text = (f"model = dict(type='M', size=(1, -2), on=True, x=None)\n"
            f"steps = [dict(a=1), {{'b': 2.5}}]\n"
            f"evil = __import__('os').system('touch {marker}')\n"
            f"other = open('{marker}', 'w')\n"
            f"import os\n"
            f"name = some_variable\n")
    values = parse_config_text(text)
    assert values == dict(model=dict(type='M', size=(1, -2), on=True,
                                      x=None),
                          steps=[dict(a=1), dict(b=2.5)])
    assert not marker.exists()
    with pytest.raises(ValueError, match='not a config text'):
        parse_config_text('model = dict(')


def test_checkpoint_without_recipe_needs_a_config(trained_tiny, tmp_path):
    state = torch.load(trained_tiny['checkpoint'], map_location='cpu',
                       weights_only=True)['state_dict']
    assert checkpoint_recipe(dict(state_dict=state)) is None
    with pytest.raises(InputError, match=r'x\.pth carries no recipe.*'
                       r'--config'):
        require_recipe(dict(state_dict=state), 'x.pth')
    # a config text with code where the model is: no recipe either
    coded = dict(meta=dict(cfg='model = build_model()\n'), state_dict=state)
    assert checkpoint_recipe(coded) is None


def test_recipe_not_stored_when_the_config_is_not_plain_data():
    cfg = dict(model=dict(type=torch.nn.Linear),
               test_dataloader=dict(dataset=dict(pipeline=[dict(a=1)])))
    assert recipe_from_config(cfg) is None
    assert recipe_from_config(dict(model=dict(type='M'))) is None


def test_mismatch_names_both_files_and_values(calibrated_small_demo):
    cfg = Config.fromfile(calibrated_small_demo['cfg'])
    recipe = checkpoint_recipe(
        load_checkpoint_file(calibrated_small_demo['ckpt']))
    other = dict(recipe, model=dict(recipe['model'], head=dict(
        recipe['model']['head'], decoder=dict(
            recipe['model']['head']['decoder'], input_size=(128, 160)))))
    w, h = cfg.model.head.decoder.input_size
    with pytest.raises(ConfigMismatchError) as info:
        check_config_matches_checkpoint(cfg, other, 'CFG.py', 'CKPT.pth')
    msg = str(info.value)
    assert f'config CFG.py: input size {w}x{h}, but checkpoint CKPT.pth ' \
        'was trained with input size 128x160' in msg
    assert '--allow-config-mismatch' in msg and '\n' not in msg
    with pytest.warns(UserWarning, match='input size 128x160.*allowed'):
        check_config_matches_checkpoint(cfg, other, 'CFG.py', 'CKPT.pth',
                                        allow_mismatch=True)


def test_other_landmark_names_are_a_mismatch(calibrated_small_demo):
    cfg = Config.fromfile(calibrated_small_demo['cfg'])
    recipe = checkpoint_recipe(
        load_checkpoint_file(calibrated_small_demo['ckpt']))
    names = list(recipe['keypoint_names'])
    names[3] = 'ear'
    found = config_differences(cfg, dict(recipe, keypoint_names=names))
    assert found == [('landmark 3 named', "'porion'", "'ear'")]


def test_recipe_config_holds_what_inference_reads(calibrated_small_demo):
    recipe = checkpoint_recipe(
        load_checkpoint_file(calibrated_small_demo['ckpt']))
    cfg = recipe_config(recipe)
    assert cfg.model.head.out_channels == 19
    assert cfg.default_scope == 'mmpose'
    assert [s['type'] for s in cfg.test_dataloader.dataset.pipeline] == [
        s['type'] for s in recipe['test_pipeline']]
    assert config_differences(cfg, recipe) == []
