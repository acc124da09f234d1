"""check_cfg_options: a top-level config variable that nothing reads after
the file is read (input_size, codec, num_keypoints) is refused with one
line naming it and the landmark_config.py route; data_root, Runner
sections and dataloaders stay allowed."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmchh.testing import run_tool_in_process
from mmchh.utils.errors import InputError
from mmchh.utils.run_config import check_cfg_options

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PAPER = osp.join(REPO, 'configs', 'ceph', 'unet_r34_onehot.py')


@pytest.fixture(scope='module')
def paper_cfg():
    return Config.fromfile(PAPER)


@pytest.mark.parametrize('key,value', [
    ('input_size', (128, 160)),
    ('num_keypoints', 5),
    ('codec', dict(type='SoftmaxHeatmap')),
    ('train_pipeline', []),
], ids=['input_size', 'num_keypoints', 'codec', 'train_pipeline'])
def test_resolved_variables_are_refused(paper_cfg, key, value):
    with pytest.raises(InputError) as info:
        check_cfg_options(paper_cfg, {key: value}, PAPER)
    message = str(info.value)
    assert message.startswith(f'--cfg-options {key}: {key} is a variable')
    assert 'tools/landmark_config.py --input-size W H' in message
    assert '\n' not in message


@pytest.mark.parametrize('options', [
    {'data_root': 'elsewhere/'},
    {'randomness': dict(seed=1)},
    {'train_cfg': dict(max_epochs=2)},
    {'calib_dataloader': dict(batch_size=1)},
    {'model.head.decoder.input_size': (128, 160)},
    {'brand_new_key': 1},
], ids=['data_root', 'runner_section', 'train_cfg', 'dataloader',
        'dotted', 'new_key'])
def test_keys_that_take_effect_are_allowed(paper_cfg, options):
    check_cfg_options(paper_cfg, options, PAPER)


def test_train_tool_refuses_input_size_in_one_line(tmp_path):
    proc = run_tool_in_process('train', [
        PAPER, '--work-dir',
        str(tmp_path / 'w'), '--cfg-options', 'input_size=(128,160)'
    ])
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        'train.py: error: --cfg-options input_size: input_size is a '
        'variable'), proc.stderr
    assert not (tmp_path / 'w').exists()
