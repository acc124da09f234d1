"""FractionMultiStepLR: the milestones follow the run's max_epochs, in a
real Runner, and the paper config's schedule is epochs 4, 6, 8 of 15."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from mmengine.registry import PARAM_SCHEDULERS
from mmengine.runner import Runner

from mmchh.engine import fraction_milestones
from mmchh.testing.tiny_marks import tiny_runner_cfg

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_milestones_scale_with_the_span():
    paper = (4 / 15, 6 / 15, 8 / 15)
    assert fraction_milestones(paper, 0, 15) == [4, 6, 8]
    assert fraction_milestones(paper, 0, 30) == [8, 12, 16]
    assert fraction_milestones(paper, 0, 20) == [5, 8, 11]
    # never at the first step, even for a one-epoch run
    assert fraction_milestones(paper, 0, 1) == [1, 1, 1]


@pytest.mark.parametrize('fractions,end,match', [
    ((0.5, ), float('inf'), 'needs the run\'s length'),
    ((0.5, 0.2), 10, 'increasing numbers in'),
    ((0.0, ), 10, 'increasing numbers in'),
    ((), 10, 'increasing numbers in'),
], ids=['no_end', 'decreasing', 'zero', 'empty'])
def test_bad_schedules_are_named(fractions, end, match):
    optim = OptimWrapper(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))],
                                         lr=1.0))
    with pytest.raises(ValueError, match=match):
        PARAM_SCHEDULERS.build(
            dict(type='FractionMultiStepLR', milestone_fractions=fractions,
                 end=end), default_args=dict(optimizer=optim))


def test_iteration_based_conversion():
    optim = OptimWrapper(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))],
                                         lr=1.0))
    sched = PARAM_SCHEDULERS.build(
        dict(type='FractionMultiStepLR', milestone_fractions=(0.5, ),
             end=20, convert_to_iter_based=True),
        default_args=dict(optimizer=optim, epoch_length=3))
    assert not sched.by_epoch and dict(sched.milestones) == {30: 1}


class LrRecorder(Hook):
    def __init__(self):
        self.lrs = []

    def before_train_epoch(self, runner):
        self.lrs.append(runner.optim_wrapper.get_lr()['lr'][0])


def test_runner_moves_milestones_with_max_epochs(tmp_path):
    cfg = tiny_runner_cfg(str(tmp_path / 'data'), str(tmp_path / 'work'),
                          max_epochs=8)
    cfg['param_scheduler'] = [
        dict(type='FractionMultiStepLR', by_epoch=True,
             milestone_fractions=(0.5, 0.75), gamma=0.1)
    ]
    cfg = Config(cfg)
    # as --cfg-options train_cfg.max_epochs=N would, after the config
    cfg.merge_from_dict({'train_cfg.max_epochs': 4,
                         'train_cfg.val_interval': 100})
    runner = Runner.from_cfg(cfg)
    recorder = LrRecorder()
    runner.register_hook(recorder)
    runner.train()
    # at 1/2 and 3/4 of 4 epochs (of 8, they were epochs 4 and 6)
    assert recorder.lrs == pytest.approx([2e-3, 2e-3, 2e-4, 2e-5])


def test_paper_config_decays_at_epochs_4_6_8_of_15():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'ceph',
                                   'unet_r34_onehot.py'))
    sched = cfg.param_scheduler[0]
    assert sched.type == 'FractionMultiStepLR' and 'end' not in sched
    assert fraction_milestones(sched.milestone_fractions, 0,
                               cfg.train_cfg.max_epochs) == [4, 6, 8]
    demo = Config.fromfile(osp.join(REPO, 'configs', 'ceph',
                                    'unet_r34_onehot_synthetic_demo.py'))
    assert fraction_milestones(demo.param_scheduler[0].milestone_fractions,
                               0, demo.train_cfg.max_epochs) == [30, 36]
