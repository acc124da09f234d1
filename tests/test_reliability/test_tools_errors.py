"""The tools' faults are one line, exit status 1, no traceback, and they lose
nothing: broken / malicious / other-model checkpoints through
tools/infer.py and tools/test.py, infer.py's options checked before any
work, results kept when a run fails half-way, overlay names that never
collide, test.py --out into a new folder, and the 12-bit warning."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from mmchh.testing import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class _Payload:
    """Pickles as a call to os.system: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


@pytest.fixture(scope='module')
def setup(trained_tiny, tmp_path_factory):
    """The tiny model's config as a file, its checkpoint, images, and
    broken checkpoints of every kind."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpose.registry import MODELS
    root = tmp_path_factory.mktemp('tools_errors')
    cfg_file = str(root / 'tiny_cfg.py')
    trained_tiny['cfg'].dump(cfg_file)
    ckpt = trained_tiny['checkpoint']
    data = open(ckpt, 'rb').read()
    bad = {}
    bad['truncated'] = str(root / 'truncated.pth')
    open(bad['truncated'], 'wb').write(data[:len(data) // 2])
    bad['empty'] = str(root / 'empty.pth')
    open(bad['empty'], 'wb').close()
    marker = str(root / 'PWNED')
    bad['malicious'] = str(root / 'malicious.pth')
    torch.save({'state_dict': {}, 'meta': _Payload(marker)},
               bad['malicious'])
    # another model: 5 landmarks instead of 3
    model_cfg = Config(trained_tiny['cfg'].model.to_dict())
    model_cfg.head.out_channels = 5
    with DefaultScope.overwrite_default_scope('mmpose'):
        other = MODELS.build(model_cfg)
    bad['wrong_model'] = str(root / 'wrong_model.pth')
    torch.save({'state_dict': other.state_dict()}, bad['wrong_model'])
    images = sorted(
        osp.join(trained_tiny['cfg'].train_dataloader.dataset.data_root,
                 'images', n)
        for n in os.listdir(osp.join(
            trained_tiny['cfg'].train_dataloader.dataset.data_root,
            'images')))
    # the real checkpoint with one NaN weight (a diverged run)
    nan_ckpt = torch.load(ckpt, map_location='cpu', weights_only=True)
    nan_ckpt['state_dict']['head.final_layer.weight'].view(-1)[0] = \
        float('nan')
    bad['nan_weight'] = str(root / 'nan_weight.pth')
    torch.save(nan_ckpt, bad['nan_weight'])
    return dict(cfg=cfg_file, ckpt=ckpt, bad=bad, marker=marker,
                images=images, root=root)


REASONS = dict(truncated='not a readable PyTorch checkpoint',
               empty='empty file', malicious='not plain weights',
               wrong_model='landmarks',
               nan_weight='tensor head.final_layer.weight')


def _exit_message(exc):
    msg = exc.value.code
    assert isinstance(msg, str), msg
    assert '\n' not in msg and 'Traceback' not in msg
    assert 'weights_only=False' not in msg
    return msg


@pytest.mark.parametrize('kind', sorted(REASONS))
def test_bad_checkpoints_through_infer_and_test(setup, kind, tmp_path):
    bad = setup['bad'][kind]
    with pytest.raises(SystemExit) as exc:
        load_tool('infer').main([setup['images'][0], '--config', setup['cfg'],
                                 '--checkpoint', bad, '--out-dir',
                                 str(tmp_path / 'o'), '--no-progress'])
    msg = _exit_message(exc)
    assert msg.startswith('infer.py: error: ') and bad in msg
    assert REASONS[kind] in msg, msg
    # nothing that looks like an answer was written
    assert not osp.exists(tmp_path / 'o' / 'landmarks.json')
    with pytest.raises(SystemExit) as exc:
        load_tool('test').main([setup['cfg'], bad, '--work-dir',
                                str(tmp_path / 'w')])
    msg = _exit_message(exc)
    assert msg.startswith('test.py: error: ') and bad in msg
    assert REASONS[kind] in msg, msg
    if kind == 'wrong_model':
        assert 'the checkpoint has 5 landmarks, the config 3' in msg
        assert setup['cfg'] in msg
    assert not osp.exists(setup['marker'])


def test_train_resume_and_calibrate_check_the_checkpoint(setup, tmp_path):
    """train.py --resume (auto: the work dir's latest checkpoint) and
    calibrate.py refuse a broken / other-model checkpoint before the
    Runner is built."""
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'last_checkpoint').write_text(setup['bad']['truncated'])
    with pytest.raises(SystemExit) as exc:
        load_tool('train').main([setup['cfg'], '--work-dir', str(work),
                                 '--resume'])
    msg = _exit_message(exc)
    assert msg.startswith('train.py: error: checkpoint ')
    assert setup['bad']['truncated'] in msg and 'truncated' in msg
    with pytest.raises(SystemExit) as exc:
        load_tool('train').main([setup['cfg'], '--work-dir', str(work),
                                 '--cfg-options',
                                 f'load_from={setup["bad"]["wrong_model"]}'])
    assert 'the checkpoint has 5 landmarks' in _exit_message(exc)
    with pytest.raises(SystemExit) as exc:
        load_tool('calibrate').main([setup['cfg'], setup['bad']['malicious'],
                                     '--work-dir', str(work)])
    msg = _exit_message(exc)
    assert msg.startswith('calibrate.py: error: checkpoint ')
    assert 'not plain weights' in msg


def test_real_processes_print_one_line(setup, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    for tool, args in (
            ('infer.py', [setup['images'][0], '--config', setup['cfg'],
                          '--checkpoint', setup['bad']['malicious'],
                          '--out-dir', str(tmp_path / 'o')]),
            ('test.py', [setup['cfg'], setup['bad']['truncated'],
                         '--work-dir', str(tmp_path / 'w')])):
        proc = subprocess.run(
            [sys.executable, osp.join(REPO, 'tools', tool), *args],
            capture_output=True, text=True, cwd=REPO, env=env)
        assert proc.returncode == 1, proc.stderr[-2000:]
        lines = [
            ln for ln in proc.stderr.splitlines()
            if ln.startswith(f'{tool}: error: ')
        ]
        assert len(lines) == 1, proc.stderr[-2000:]
        assert 'Traceback' not in proc.stderr
        assert 'weights_only=False' not in proc.stderr
    assert not osp.exists(setup['marker'])


@pytest.mark.parametrize('option,value,expected', [
    # numbers are refused by argparse itself (test_option_errors.py)
    ('--device', 'banana', '--device banana is not a torch device'),
    ('--device', 'cuda:7', '--device cuda:7'),
    ('--out-dir', 'FILE', 'is a file, not a folder'),
])
def test_infer_options_checked_before_any_work(setup, tmp_path, monkeypatch,
                                               option, value, expected):
    if value == 'cuda:7' and torch.cuda.device_count() > 7:
        pytest.skip('8 GPUs here')
    import mmchh.apis

    def no_model(*args, **kwargs):
        raise AssertionError('the model was loaded before the options '
                             'were checked')

    monkeypatch.setattr(mmchh.apis, 'init_landmark_model', no_model)
    out = str(tmp_path / 'out')
    if value == 'FILE':
        open(out, 'w').close()
        value = out
    args = [setup['images'][0], '--config', setup['cfg'], '--checkpoint',
            setup['ckpt'], '--out-dir', out, option, value]
    with pytest.raises(SystemExit) as exc:
        load_tool('infer').main(args)
    msg = _exit_message(exc)
    assert msg.startswith('infer.py: error: ') and expected in msg, msg


def _model(setup):
    import warnings

    from mmchh.apis import init_landmark_model
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # uncalibrated
        return init_landmark_model(setup['cfg'], setup['ckpt'])


def test_failure_mid_run_keeps_finished_images(setup, tmp_path,
                                               monkeypatch):
    import mmchh.apis.batch_infer as batch_infer
    folder = tmp_path / 'in'
    folder.mkdir()
    for p in setup['images'][:4]:
        shutil.copy(p, folder / osp.basename(p))
    real = batch_infer.predict_landmarks
    calls = []

    def fails_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError('injected failure (power cut)')
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_infer, 'predict_landmarks', fails_on_third)
    out = tmp_path / 'out'
    with pytest.raises(RuntimeError, match='injected'):
        batch_infer.infer_files(_model(setup), str(folder), str(out),
                                batch_size=1, progress=False)
    done = sorted(os.listdir(out / 'results'))
    assert done == ['000.json', '001.json']
    assert sorted(os.listdir(out / 'overlays')) == ['000.png', '001.png']
    doc = json.load(open(out / 'landmarks.json'))
    assert doc['complete'] is False and doc['num_inputs'] == 4
    assert [osp.basename(r['path']) for r in doc['results']] == [
        '000.png', '001.png']
    one = json.load(open(out / 'results' / '000.json'))
    assert one == doc['results'][0]
    assert one['overlay'] == 'overlays/000.png'
    rows = open(out / 'landmarks.csv').read().splitlines()
    assert len(rows) == 1 + 2 * 3


def test_killed_run_keeps_finished_images(setup, tmp_path):
    """A real process killed (SIGKILL) while predicting keeps what it
    wrote: every result file present is complete JSON, and landmarks.json
    (if there) lists exactly finished images."""
    import signal
    import time
    folder = tmp_path / 'in'
    folder.mkdir()
    for i in range(40):
        shutil.copy(setup['images'][i % len(setup['images'])],
                    folder / f'{i:03d}.png')
    out = tmp_path / 'out'
    proc = subprocess.Popen(
        [sys.executable, osp.join(REPO, 'tools', 'infer.py'), str(folder),
         '--config', setup['cfg'], '--checkpoint', setup['ckpt'],
         '--out-dir', str(out), '--batch-size', '1', '--no-progress'],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        results = out / 'results'
        if results.is_dir() and len(os.listdir(results)) >= 3:
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.skip('the run finished before it could be killed')
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    names = [n for n in os.listdir(out / 'results') if n.endswith('.json')]
    assert len(names) >= 3
    for n in names:  # no half-written file
        doc = json.load(open(out / 'results' / n))
        assert len(doc['landmarks']) == 3
    if (out / 'landmarks.json').exists():
        doc = json.load(open(out / 'landmarks.json'))
        assert doc['complete'] is False
        listed = {osp.splitext(osp.basename(r['path']))[0]
                  for r in doc['results']}
        assert listed <= {osp.splitext(n)[0] for n in names}


def test_overlay_names_never_collide(setup, tmp_path):
    from mmchh.apis.batch_infer import infer_files, output_names
    names = output_names(['x/a.bmp', 'x/a.png', 'x/a.bmp.png', 'x/b.png',
                          'x/B.png'])
    assert names == {'x/a.bmp': 'a.bmp', 'x/a.png': 'a.png',
                     'x/a.bmp.png': 'a.bmp~2', 'x/b.png': 'b',
                     'x/B.png': 'B~2'}
    folder = tmp_path / 'in'
    folder.mkdir()
    img = cv2.imread(setup['images'][0], cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(folder / 'a.png'), img)
    cv2.imwrite(str(folder / 'a.bmp'), img[:, ::-1])
    out = tmp_path / 'out'
    results, errors = infer_files(_model(setup), str(folder), str(out),
                                  progress=False)
    assert len(results) == 2 and not errors
    assert sorted(os.listdir(out / 'overlays')) == ['a.bmp.png', 'a.png.png']
    assert sorted(os.listdir(out / 'results')) == ['a.bmp.json', 'a.png.json']
    # a second run into the same folder is refused unless --overwrite
    args = [str(folder), '--config', setup['cfg'], '--checkpoint',
            setup['ckpt'], '--out-dir', str(out), '--no-progress']
    with pytest.raises(SystemExit) as exc:
        load_tool('infer').main(args)
    assert 'already holds the outputs of an earlier run' in _exit_message(exc)
    (out / 'notes.txt').write_text('mine')
    os.remove(folder / 'a.bmp')
    assert load_tool('infer').main(args + ['--overwrite']) == 0
    assert sorted(os.listdir(out / 'overlays')) == ['a.png']
    assert (out / 'notes.txt').read_text() == 'mine'  # not ours: kept
    text = open(out / 'landmarks.json').read()
    assert 'NaN' not in text and json.loads(text)['complete'] is True


def test_test_tool_out_into_new_folder(setup, tmp_path):
    out = tmp_path / 'new' / 'deeper' / 'metrics.json'
    code = load_tool('test').main([setup['cfg'], setup['ckpt'], '--work-dir',
                                   str(tmp_path / 'w'), '--out', str(out)])
    assert code == 0
    metrics = json.loads(out.read_text())
    assert 'EPE' in metrics
    assert os.listdir(out.parent) == ['metrics.json']  # no temp left


def test_twelve_bit_image_warns_and_is_rescaled(tmp_path):
    from mmchh.apis import load_xray
    img = (np.arange(64 * 80).reshape(64, 80) % 4001).astype(np.uint16)
    path = str(tmp_path / 'detector.png')
    cv2.imwrite(path, img)
    with pytest.warns(UserWarning, match=r'detector\.png.*maximum is 4000'):
        grey = load_xray(path)
    assert grey.max() == round(4000 * 255 / 4095)
    # 8-bit data widened by x257, and real 16-bit data: no warning
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        widened = (np.arange(64 * 80).reshape(64, 80) % 15).astype(
            np.uint16) * 257
        assert load_xray(widened).max() == 14
        assert load_xray(img.astype(np.uint16) * 16).max() > 200
