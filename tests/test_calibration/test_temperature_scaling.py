"""Temperature scaling after training: the hook, the tool and their report,
on a real Runner with the demo config shrunk by cfg-options."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import as_cli_options, small_ceph_options

import mmchh  # noqa: F401
from mmchh.engine import CalibrationError, calibrate_model
from mmchh.calibration.flagging import describe_flagging
from mmchh.testing import run_tool_in_process
from mmchh.models.heads.calibration_buffers import CALIBRATION_STATE_NAMES

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'ceph',
                  'unet_r34_onehot_synthetic_demo.py')


@pytest.fixture(scope='module')
def calibrated_run(calibrated_small_demo):
    """2 epochs of the demo config; its TemperatureScalingHook calibrated
    (the session's shared run)."""
    return calibrated_small_demo


def test_hook_writes_calibrated_checkpoint_and_report(calibrated_run):
    work = calibrated_run['work']
    ckpt = osp.join(work, 'calibrated.pth')
    assert osp.isfile(ckpt)
    assert osp.isfile(osp.join(work, 'calib_reliability_before_after.png'))
    report = json.load(open(osp.join(work, 'calibration.json')))
    calib = report['calib']
    assert calib['num_images'] == 3 and calib['num_landmarks'] == 57
    # the fit minimises exactly this NLL, starting from T = 1
    assert calib['NLL_after'] <= calib['NLL_before'] + 1e-6
    # the change comes with its paired interval over the 3 images
    change = calib['intervals']['NLL_change']
    assert change['num_images'] == 3 and change['level'] == 0.95
    assert change['estimate'] == pytest.approx(
        calib['NLL_after'] - calib['NLL_before'], abs=1e-6)
    assert change['low'] <= change['estimate'] <= change['high']
    ece = calib['intervals']['ECE_change']
    assert ece['estimate'] == pytest.approx(
        calib['ECE_after'] - calib['ECE_before'], abs=1e-9)
    assert set(report['temperature']) >= {'sella', 'articulare'}
    # the do-no-harm choice: cross-validated over the 3 images (leave one
    # out), with every candidate's out-of-fold NLL and why
    selection = calib['selection']
    assert selection['do_no_harm'] is True
    assert selection['scheme'] == 'leave-one-image-out'
    assert selection['folds'] == 3
    assert set(selection['candidates']) == {'per_landmark', 'pooled',
                                            'identity'}
    chosen = selection['candidates'][selection['chosen']]
    identity = selection['candidates']['identity']
    assert chosen['oof_nll'] <= identity['oof_nll']
    if selection['chosen'] != 'identity':
        assert chosen['change']['high'] < 0
    assert selection['reason']
    state = torch.load(ckpt, map_location='cpu')['state_dict']
    t = state['head.log_temperature'].exp()
    assert (t > 0).all()
    assert torch.allclose(t, torch.ones(19)) == (
        selection['chosen'] == 'identity')
    if selection['chosen'] == 'pooled':
        assert torch.allclose(t, t[0].expand(19))
    run = [d for d in os.listdir(work) if osp.isdir(osp.join(work, d))][0]
    log = open(osp.join(work, run, f'{run}.log')).read()
    assert f'calibration: temperatures: {selection["chosen"]} (' in log
    # 3 calibration images, the minimum: the threshold is used, reported
    # with its basis (the too-small case: test_flag_threshold_fitting)
    flagging = report['flagging']
    assert flagging['num_images'] == 3 and flagging['used'] is True
    assert flagging['interval']['num_images'] == 3
    assert torch.isfinite(state['head.flag_threshold'])
    assert flagging['threshold_mm'] == pytest.approx(
        float(state['head.flag_threshold']))
    assert float(state['head.flag_num_images']) == 3
    assert float(state['head.flag_num_erroneous']) == \
        flagging['num_erroneous']
    assert float(state['head.flag_threshold_low']) == pytest.approx(
        flagging['interval']['low'])
    assert describe_flagging(flagging) in log
    head = calibrated_run['runner'].model.head
    torch.testing.assert_close(head.temperature, t)


def test_calibration_fits_conformal_regions(calibrated_run):
    """The conformal thresholds and disc radii are fitted on the
    calibration split, stored in the head and its checkpoint under the
    fingerprint, and reported."""
    work = calibrated_run['work']
    report = json.load(open(osp.join(work, 'calibration.json')))
    conformal = report['conformal']
    head = calibrated_run['runner'].model.head
    assert conformal['levels'] == pytest.approx(list(head.conformal_levels))
    assert conformal['score'] == head.conformal_score == 'mass'
    assert set(conformal['thresholds']) == {'density', 'mass'}
    # 2 calibration images: every landmark counted twice
    assert set(conformal['num_per_landmark'].values()) == {3}
    state = torch.load(osp.join(work, 'calibrated.pth'),
                       map_location='cpu')['state_dict']
    assert head.has_conformal_regions
    for name in ('conformal_level', 'conformal_threshold',
                 'conformal_pooled_threshold', 'conformal_disc_radius',
                 'conformal_pooled_disc_radius'):
        assert torch.isfinite(state['head.' + name]).all(), name
        torch.testing.assert_close(getattr(head, name).cpu(),
                                   state['head.' + name])
    assert state['head.conformal_threshold'].shape == (1, 19)
    level = f'{head.conformal_levels[0]:g}'
    radius = conformal['disc_radius_px'][level]
    # n = 3 < 9 maps per landmark at 0.9: no per-landmark threshold
    # (reported as null), so every landmark uses the pooled fit of 57 maps
    assert all(r is None for r in radius.values())
    assert conformal['sources'][level] == 'pooled'
    pooled = conformal['pooled_disc_radius_px'][level]
    assert pooled is not None
    np.testing.assert_allclose(
        state['head.conformal_disc_radius'].double().numpy(),
        np.full((1, 19), pooled), rtol=1e-6)


def test_revalidation_logs_calibrated_uncertainty_metrics(calibrated_run):
    work = calibrated_run['work']
    run = [d for d in os.listdir(work) if osp.isdir(osp.join(work, d))][0]
    rows = [
        json.loads(line)
        for line in open(osp.join(work, run, 'vis_data', 'scalars.json'))
    ]
    vals = [r for r in rows if 'unc/NLL' in r]
    # epoch 1, epoch 2, then the calibrated re-validation
    assert len(vals) == 3
    # the Good/Erroneous table of the threshold fitted on the 3
    # calibration images, only after calibration
    assert 'unc/good/count' in vals[-1] and 'unc/good/count' not in vals[0]
    # and the conformal regions fitted with the temperatures
    assert 'unc/conformal/coverage' in vals[-1]
    assert 'unc/conformal/coverage' not in vals[0]
    # temperatures never move a mode: the calibrated (best) checkpoint
    # localises exactly as it did when it was validated
    best = min(vals[:2], key=lambda r: r['ceph/MRE'])
    assert vals[-1]['ceph/MRE'] == pytest.approx(best['ceph/MRE'])


def test_calibration_freezes_everything_but_temperature(
        calibrated_run, tmp_path):
    runner = calibrated_run['runner']
    model = runner.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    was_training = model.training
    model.train()  # calibration must switch to eval itself
    calibrate_model(runner, runner.cfg.calib_dataloader,
                    out_dir=str(tmp_path), checkpoint_name=None)
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    # refitting from the calibrated T gives (nearly) the same T; nothing
    # but the calibration buffers -- BN running statistics included -- may
    # move (the seal covers the calibration values, so it follows them; a
    # NaN buffer never equals itself)
    assert set(changed) <= {f'head.{n}' for n in CALIBRATION_STATE_NAMES}
    assert model.training  # restored
    assert all(p.requires_grad for p in model.parameters())
    model.load_state_dict(before)  # the session's run, as other tests know it
    model.train(was_training)


def test_missing_or_empty_calibration_split_fails_clearly(
        calibrated_run, tmp_path):
    runner = calibrated_run['runner']
    with pytest.raises(CalibrationError, match='calibration dataloader'):
        calibrate_model(runner, None, out_dir=str(tmp_path))
    empty = osp.join(str(tmp_path), 'empty.json')
    data = json.load(open(osp.join(calibrated_run['data'], 'calib.json')))
    data['images'], data['annotations'] = [], []
    json.dump(data, open(empty, 'w'))
    loader = dict(runner.cfg.calib_dataloader)
    loader['dataset'] = dict(loader['dataset'], ann_file=empty)
    with pytest.raises(CalibrationError, match='calibration split is empty'):
        calibrate_model(runner, loader, out_dir=str(tmp_path))


def test_calibrate_tool_on_an_existing_checkpoint(calibrated_run, tmp_path):
    ckpt = [
        f for f in os.listdir(calibrated_run['work'])
        if f.startswith('epoch_')
    ][0]
    opts = small_ceph_options(calibrated_run['data'])
    proc = subprocess.run([
        sys.executable, 'tools/calibrate.py', CONFIG,
        osp.join(calibrated_run['work'], ckpt), '--work-dir',
        str(tmp_path), '--fit', 'per-landmark', '--cfg-options',
        *as_cli_options(opts)
    ], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert osp.isfile(osp.join(str(tmp_path), 'calibrated.pth'))
    report = json.load(open(osp.join(str(tmp_path), 'calibration.json')))
    assert report['calib']['NLL_after'] <= report['calib']['NLL_before']
    assert 'NLL' in proc.stdout + proc.stderr
    # --fit per-landmark: the fit without the do-no-harm check
    selection = report['calib']['selection']
    assert selection['chosen'] == 'per_landmark'
    assert selection['do_no_harm'] is False and selection['folds'] == 0
    bad = run_tool_in_process('calibrate', [
        CONFIG, osp.join(calibrated_run['work'], ckpt), '--work-dir',
        str(tmp_path / 'b'), '--cfg-options', *as_cli_options(opts),
        'calib_dataloader.dataset.ann_file=' +
        osp.join(calibrated_run['data'], 'missing.json')
    ])
    assert bad.returncode != 0 and 'missing.json' in bad.stderr
