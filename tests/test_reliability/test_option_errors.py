"""Every bad option is one line before any work: numbers read by the
tools' option types (exit status 2, before a config or checkpoint is
read), ``--cfg-options`` and config errors named by key or file (exit
status 1), and calibration settings the library refuses itself."""
import math
import os.path as osp

import pytest
from mmengine.runner import Runner

from mmchh.engine import CalibrationError
from mmchh.calibration.settings import check_calibration_settings
from mmchh.testing import run_tool_in_process
from mmchh.utils import cli


@pytest.fixture
def no_runner(monkeypatch):
    """Fails the test if a tool builds a Runner."""

    def refuse(*args, **kwargs):
        raise AssertionError('a Runner was built before the option was '
                             'checked')

    monkeypatch.setattr(Runner, 'from_cfg', refuse)


def _one_line(proc, tool, status, *expected):
    assert proc.returncode == status, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'{tool}: error: '), \
        proc.stderr[-2000:]
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize('option,value,expected', [
    ('--erroneous-mm', 'nan', 'must be a finite number > 0'),
    ('--erroneous-px', '0', 'must be > 0'),
    ('--target-tpr', '1.5', 'must be in (0, 1]'),
    ('--prior-std', '-1', 'must be >= 0'),
    ('--cv-folds', '0', 'must be >= 2'),
    ('--cv-folds', '1_5', 'must be an integer'),
])
def test_calibrate_numbers_refused_before_any_work(no_runner, tmp_path,
                                                   option, value, expected):
    # neither file exists: the option is refused before either is read
    proc = run_tool_in_process('calibrate', [
        str(tmp_path / 'no_config.py'), str(tmp_path / 'no.pth'), option,
        value])
    _one_line(proc, 'calibrate.py', 2, f'argument {option}:', expected)


@pytest.mark.parametrize('tool,option,value,expected', [
    ('measure', '--num-samples', '0', 'must be >= 1'),
    ('measure', '--batch-size', '0x1', 'must be an integer >= 1'),
    ('measure', '--seed', '-1', 'must be >= 0'),
    ('measure', '--level', '1', 'must be in (0, 1)'),
    ('measure', '--region-level', 'inf', 'must be a finite number'),
    ('measure', '--device', 'banana', 'not a torch device'),
    ('test', '--wait-time', 'nan', 'must be a finite number > 0'),
    ('train', '--local-rank', '1.5', 'must be an integer'),
])
def test_tool_numbers_refused_before_any_work(no_runner, tmp_path, tool,
                                              option, value, expected):
    paths = [str(tmp_path / 'no_config.py')] + {
        'measure': [str(tmp_path / 'no.pth'), str(tmp_path / 'no.json')],
        'test': [str(tmp_path / 'no.pth')], 'train': []}[tool]
    proc = run_tool_in_process(tool, paths + [option, value])
    _one_line(proc, f'{tool}.py', 2, 'argument --', option, expected)


@pytest.mark.parametrize('tool,args,option,value,expected', [
    ('infer', ['x.png', '--checkpoint', 'k.pth'], '--spacing', '1_5',
     'must be a finite number > 0'),
    ('infer', ['x.png', '--checkpoint', 'k.pth'], '--spacing', '-0.1',
     'must be > 0'),
    ('infer', ['x.png', '--checkpoint', 'k.pth'], '--spacing', 'nan',
     'must be a finite number > 0'),
    ('infer', ['x.png', '--checkpoint', 'k.pth'], '--batch-size', '0',
     'must be >= 1'),
    ('infer', ['x.png', '--checkpoint', 'k.pth'], '--seed', '0x1',
     'must be an integer'),
    ('convert_isbi', ['in', 'out'], '--num-val', '1_5', 'must be an integer'),
    ('convert_isbi', ['in', 'out'], '--spacing', 'nan',
     'must be a finite number'),
    ('convert_landmarks', ['out', '--images', 'im', '--keypoints', 'a', 'b',
                           'c', '--csv', 'x.csv'], '--spacing', '1_5',
     'must be a finite number'),
    ('convert_landmarks', ['out', '--images', 'im', '--keypoints', 'a', 'b',
                           'c', '--csv', 'x.csv'], '--test-fraction', 'inf',
     'must be a finite number'),
], ids=['infer_spacing', 'infer_negative_spacing', 'infer_nan_spacing',
        'infer_batch', 'infer_seed', 'isbi_num_val',
        'isbi_spacing', 'landmarks_spacing', 'landmarks_test_fraction'])
def test_inference_and_converter_numbers_are_plain_decimals(
        no_runner, tmp_path, tool, args, option, value, expected):
    # float('1_5') and int('1_5') are 15: refused before any file is read
    args = [str(tmp_path / a) if not a.startswith('-') and a not in (
        'a', 'b', 'c') else a for a in args]
    proc = run_tool_in_process(tool, args + [option, value])
    _one_line(proc, f'{tool}.py', 2, f'argument {option}:', expected)


def test_measure_device_mps_is_one_line(tmp_path):
    import torch
    if torch.backends.mps.is_available():
        pytest.skip('this machine has Metal')
    proc = run_tool_in_process('measure', [
        str(tmp_path / 'c.py'), str(tmp_path / 'k.pth'),
        str(tmp_path / 's.json'), '--device', 'mps'])
    _one_line(proc, 'measure.py', 2, 'argument --device: mps',
              'not available on this machine')


def test_number_types_accept_plain_decimals_only():
    assert cli.finite_positive_float('1e-3') == 0.001
    assert cli.fraction('1') == 1.0 and cli.positive_int('+3') == 3
    for text in ('1_5', '0x1', 'inf', '-inf', 'nan', '', '1.5.2'):
        with pytest.raises(Exception, match='must be'):
            cli.finite_positive_float(text)
    with pytest.raises(Exception, match=r'must be in \(0, 1\); got 0'):
        cli.open_fraction('0')


@pytest.fixture(scope='module')
def tiny_files(trained_tiny, tmp_path_factory):
    """The tiny model's config as a file and its checkpoint."""
    root = tmp_path_factory.mktemp('option_errors')
    cfg = str(root / 'tiny_cfg.py')
    trained_tiny['cfg'].dump(cfg)
    bad = root / 'syntax_error.py'
    bad.write_text('model = dict(\n    type="TopdownPoseEstimator"\n'
                   'x = 1\n')
    return dict(cfg=cfg, ckpt=trained_tiny['checkpoint'], root=root,
                bad=str(bad))


@pytest.mark.parametrize('tool', ['test', 'calibrate'])
@pytest.mark.parametrize('option,status,expected', [
    ('foo', 2, ["argument --cfg-options: 'foo' is not a key=value pair"]),
    ('modle.head.in_channels=1', 1,
     ['--cfg-options modle.head.in_channels', 'has no modle.head',
      'unknown key']),
    ('train_cfg.max_epochs=abc', 1,
     ["--cfg-options train_cfg.max_epochs='abc'", 'give a number']),
    ('model.head.nope=1', 1,
     ['model.head.nope: SoftmaxHeatmapHead takes no argument',
      'unknown key']),
    ('model.type=Nope', 1,
     ['model.type: Nope is not in the mmpose::model registry']),
])
def test_cfg_options_errors_name_the_key(tiny_files, no_runner, tmp_path,
                                         tool, option, status, expected):
    proc = run_tool_in_process(tool, [
        tiny_files['cfg'], tiny_files['ckpt'], '--work-dir',
        str(tmp_path / 'w'), '--cfg-options', option])
    _one_line(proc, f'{tool}.py', status, *expected)
    assert not (tmp_path / 'w').exists()


def test_unknown_key_found_by_the_runner_is_one_line(tiny_files, tmp_path):
    """A key only the dataset build meets (inside runner.test()) is named
    with its dotted path; the class named is the one that refused it."""
    proc = run_tool_in_process('test', [
        tiny_files['cfg'], tiny_files['ckpt'], '--work-dir',
        str(tmp_path / 'w'), '--cfg-options',
        'test_dataloader.dataset.nope=1'])
    _one_line(proc, 'test.py', 1, 'test_dataloader.dataset.nope:',
              "takes no argument 'nope'", osp.basename(tiny_files['cfg']))


@pytest.mark.parametrize('tool', ['test', 'calibrate'])
def test_config_syntax_error_is_file_and_line(tiny_files, no_runner, tool):
    proc = run_tool_in_process(tool, [tiny_files['bad'], tiny_files['ckpt']])
    line = _one_line(proc, f'{tool}.py', 1, f'{tiny_files["bad"]}:')
    assert line.split(f'{tiny_files["bad"]}:')[1].split(':')[0].isdigit()


@pytest.mark.parametrize('setting,value', [
    ('erroneous_mm', math.nan), ('erroneous_mm', -1.0),
    ('erroneous_px', math.inf), ('target_tpr', 1.5), ('prior_std', -1.0),
    ('prior_std', math.nan), ('cv_folds', 0), ('cv_folds', 2.5)])
def test_library_refuses_calibration_settings(setting, value):
    """calibrate_model and the hook check before any image is streamed: an
    erroneous radius of NaN made every landmark good and sealed a threshold
    fitted on no erroneous landmark."""
    from mmchh.calibration import TemperatureScalingHook
    with pytest.raises(CalibrationError, match=setting):
        check_calibration_settings(**{setting: value})
    with pytest.raises(CalibrationError, match=setting):
        TemperatureScalingHook(**{setting: value})
    # the documented ways to switch a part off stay allowed
    check_calibration_settings(target_tpr=0, prior_std=None)
    check_calibration_settings(target_tpr=None, prior_std=0)
