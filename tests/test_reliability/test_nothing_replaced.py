"""Nothing we did not write is replaced, and a run of tools/infer.py is
safe: conversions replace only their own marked output, landmark_config
never overwrites a file unasked nor writes into a conversion, infer.py
--overwrite swaps its results in only after success, one run at a time per
--out-dir, outputs readable under the umask, Ctrl-C and a broken model end
with one line and a status that says so."""
import csv
import json
import os
import os.path as osp
import shutil
import subprocess
import warnings

import cv2
import pytest
import torch
from test_datasets.test_converters.landmark_files import (KEYPOINTS,
                                                          write_landmark_set)

from mmchh.datasets.converters import (CONVERSION_MARKER, ConversionError,
                                       convert_landmarks)
from mmchh.testing import (folder_digest, load_tool, run_tool_in_process,
                           write_nan_map_checkpoint)
from mmchh.utils.io import atomic_write_text, current_umask
from mmchh.utils.run_lock import RunLock

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASE = osp.join(REPO, 'configs', 'landmark', 'unet_r34_onehot.py')
NUM_IMAGES = 4


def convert(root, out):
    return convert_landmarks(out, osp.join(root, 'images'), KEYPOINTS,
                             labelme={a: osp.join(root, a)
                                      for a in ('dr_a', 'dr_b')},
                             spacing=0.1, num_val=1, num_calib=1,
                             progress=False)


@pytest.fixture
def landmark_root(tmp_path):
    root = str(tmp_path / 'set')
    write_landmark_set(root)
    return root


# ---------------------------------------------------------------------------
# conversions replace only their own, completed output
# ---------------------------------------------------------------------------
def test_convert_landmarks_refuses_foreign_folder_with_split_json_and_images(
        tmp_path, landmark_root):
    foreign = tmp_path / 'mine'
    (foreign / 'images').mkdir(parents=True)
    (foreign / 'train.json').write_text('{"my": "own annotations"}')
    cv2.imwrite(str(foreign / 'images' / 'scan.png'),
                cv2.imread(osp.join(landmark_root, 'images', '001.png')))
    before = folder_digest(str(foreign))
    with pytest.raises(ConversionError, match='does not hold a conversion'):
        convert(landmark_root, str(foreign))
    assert folder_digest(str(foreign)) == before
    assert sorted(os.listdir(tmp_path)) == ['mine', 'set']


def test_conversion_of_another_converter_is_not_replaced(tmp_path,
                                                         landmark_root):
    out = str(tmp_path / 'out')
    convert(landmark_root, out)
    convert(landmark_root, out)  # its own conversion: replaced
    marker = osp.join(out, CONVERSION_MARKER)
    with open(marker) as f:
        content = json.load(f)
    content['tool'] = 'tools/convert_isbi.py'
    with open(marker, 'w') as f:
        json.dump(content, f)
    before = folder_digest(out)
    with pytest.raises(ConversionError, match='written by tools/convert_isbi'):
        convert(landmark_root, out)
    open(marker, 'w').write('not json')  # an unreadable marker: not ours
    with pytest.raises(ConversionError, match='does not hold a conversion'):
        convert(landmark_root, out)
    before[CONVERSION_MARKER] = folder_digest(out)[CONVERSION_MARKER]
    assert folder_digest(out) == before


# ---------------------------------------------------------------------------
# landmark_config.py: no file replaced unasked, never into a conversion
# ---------------------------------------------------------------------------
def test_landmark_config_refuses_existing_file_unless_force(
        tmp_path, landmark_root):
    out = str(tmp_path / 'out')
    convert(landmark_root, out)
    config = tmp_path / 'own.py'
    config.write_text('# my own notes\n')
    result = run_tool_in_process('landmark_config', [out, str(config)])
    assert result.returncode == 1
    line = result.stderr.strip()
    assert line.startswith('landmark_config.py: error: ') and '\n' not in line
    assert str(config) in line and '--force' in line
    assert config.read_text() == '# my own notes\n'
    result = run_tool_in_process('landmark_config',
                                 [out, str(config), '--force'])
    assert result.returncode == 0, result.stderr
    assert 'num_keypoints = 3' in config.read_text()


@pytest.mark.parametrize('name', ['metainfo.py', 'new.py', 'images/cfg.py'],
                         ids=['its_metainfo', 'new_file', 'subfolder'])
def test_landmark_config_never_writes_into_a_conversion(
        tmp_path, landmark_root, name):
    out = str(tmp_path / 'out')
    convert(landmark_root, out)
    before = folder_digest(out)
    for extra in ([], ['--force']):
        result = run_tool_in_process(
            'landmark_config', [out, osp.join(out, name), *extra])
        assert result.returncode == 1
        assert 'inside the conversion folder' in result.stderr
        assert result.stderr.count('\n') == 1
    assert folder_digest(out) == before


# ---------------------------------------------------------------------------
# files honour the umask
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('umask,mode', [(0o022, 0o644), (0o077, 0o600),
                                        (0o002, 0o664)],
                         ids=['022', '077', '002'])
def test_written_files_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        path = tmp_path / 'sub' / 'table.csv'
        atomic_write_text(str(path), 'a,b\n')
        assert current_umask() == umask  # read, not changed
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == mode
    assert os.stat(path.parent).st_mode & 0o777 == 0o777 & ~umask
    assert os.listdir(path.parent) == ['table.csv']


# ---------------------------------------------------------------------------
# tools/infer.py
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def infer_setup(trained_tiny, tmp_path_factory):
    """The tiny model's config file and checkpoint, NUM_IMAGES X-rays, a
    garbage checkpoint and one whose BN variances are negative (finite,
    so it loads, but every heatmap is NaN)."""
    root = tmp_path_factory.mktemp('infer_safety')
    cfg = str(root / 'tiny_cfg.py')
    trained_tiny['cfg'].dump(cfg)
    xrays = root / 'xrays'
    xrays.mkdir()
    source = osp.join(trained_tiny['cfg'].train_dataloader.dataset.data_root,
                      'images')
    for name in sorted(os.listdir(source))[:NUM_IMAGES]:
        shutil.copy(osp.join(source, name), xrays / name)
    garbage = str(root / 'garbage.pth')
    open(garbage, 'wb').write(b'not a checkpoint')
    broken = write_nan_map_checkpoint(trained_tiny['checkpoint'],
                                      str(root / 'nan_maps.pth'))
    # one landmark's logits overflow to +-inf (finite, huge weights)
    ckpt = torch.load(trained_tiny['checkpoint'], map_location='cpu',
                      weights_only=False)
    weight = ckpt['state_dict']['head.final_layer.weight']
    weight[1] = torch.sign(weight[1]) * 3e38
    one_bad = str(root / 'one_bad_landmark.pth')
    torch.save(ckpt, one_bad)
    return dict(cfg=cfg, ckpt=trained_tiny['checkpoint'], xrays=str(xrays),
                garbage=garbage, broken=broken, one_bad=one_bad)


def infer(setup, out, *extra, checkpoint=None):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the tiny model is uncalibrated
        return run_tool_in_process('infer', [
            setup['xrays'], '--config', setup['cfg'], '--checkpoint',
            checkpoint or setup['ckpt'], '--out-dir', str(out),
            '--no-progress', '--batch-size', '1', *extra])


def siblings(out):
    base = osp.basename(out)
    return sorted(n for n in os.listdir(osp.dirname(out))
                  if n.startswith(base + '.'))


def test_infer_overwrite_with_bad_checkpoint_keeps_previous_results(
        infer_setup, tmp_path):
    out = tmp_path / 'preds'
    assert infer(infer_setup, out).returncode == 0
    (out / 'notes.txt').write_text('mine')
    before = folder_digest(str(out))
    result = infer(infer_setup, out, '--overwrite',
                   checkpoint=infer_setup['garbage'])
    assert result.returncode == 1
    assert result.stderr.startswith('infer.py: error: ')
    assert result.stderr.count('\n') == 1
    assert folder_digest(str(out)) == before
    assert siblings(str(out)) == [] and not (out / '.infer.lock').exists()
    # a good --overwrite run replaces ours; the user's file stays the same
    # file (carried over, not copied)
    inode = os.stat(out / 'notes.txt').st_ino
    result = infer(infer_setup, out, '--overwrite', '--no-overlay')
    assert result.returncode == 0, result.stderr
    assert not (out / 'overlays').exists()
    assert os.stat(out / 'notes.txt').st_ino == inode
    assert (out / 'notes.txt').read_text() == 'mine'
    assert json.loads((out / 'landmarks.json').read_text())['complete']
    assert siblings(str(out)) == [] and not (out / '.infer.lock').exists()


def test_second_run_into_one_out_dir_is_refused(infer_setup, tmp_path):
    out = tmp_path / 'preds'
    out.mkdir()
    with RunLock(str(out / '.infer.lock'), 'infer.py', 'first run'):
        result = infer(infer_setup, out)
        assert (out / '.infer.lock').exists()  # the first run's, kept
    assert result.returncode == 1
    line = result.stderr.strip()
    assert '\n' not in line and line.startswith('infer.py: error: --out-dir')
    assert f'in use by infer.py (pid {os.getpid()}' in line
    assert os.listdir(out) == []  # the second run wrote nothing
    # a lock left by a killed run (its pid is gone) is taken over
    gone = subprocess.Popen(['true'])
    gone.wait()
    lock = dict(tool='infer.py', pid=gone.pid, host=os.uname().nodename,
                started='yesterday', token='x')
    (out / '.infer.lock').write_text(json.dumps(lock))
    with pytest.warns(UserWarning, match='took over the lock'):
        result = run_tool_in_process('infer', [
            infer_setup['xrays'], '--config', infer_setup['cfg'],
            '--checkpoint', infer_setup['ckpt'], '--out-dir', str(out),
            '--no-progress', '--no-overlay'])
    assert result.returncode == 0, result.stderr
    assert not (out / '.infer.lock').exists()


def test_ctrl_c_exits_130_with_consistent_files(infer_setup, tmp_path,
                                                monkeypatch):
    from mmchh.apis import batch_infer
    real, calls = batch_infer.predict_landmarks, []

    def interrupted_at_third(*args, **kwargs):  # the interrupt only
        calls.append(args)
        if len(calls) == 3:  # one image per batch: during the third image
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_infer, 'predict_landmarks',
                        interrupted_at_third)
    out = tmp_path / 'preds'
    result = infer(infer_setup, out)
    assert result.returncode == 130
    assert result.stderr.strip() == (
        f'infer.py: interrupted after 2 of {NUM_IMAGES} images; results '
        f'for those are in {out}')
    doc = json.loads((out / 'landmarks.json').read_text())
    assert doc['complete'] is False and len(doc['results']) == 2
    listed = sorted(r['result_file'] for r in doc['results'])
    assert listed == sorted(f'results/{n}'
                            for n in os.listdir(out / 'results'))
    assert len(os.listdir(out / 'overlays')) == 2
    with open(out / 'landmarks.csv') as f:
        rows = list(csv.DictReader(f))
    assert {r['image'] for r in rows} == {r['path'] for r in doc['results']}
    assert not (out / '.infer.lock').exists()
    # interrupted under --overwrite: the earlier results stay in place
    before = folder_digest(str(out))
    calls.clear()
    result = infer(infer_setup, out, '--overwrite')
    assert result.returncode == 130
    assert 'the earlier results in' in result.stderr
    assert folder_digest(str(out)) == before


def test_every_landmark_invalid_exits_1(infer_setup, tmp_path):
    out = tmp_path / 'preds'
    result = infer(infer_setup, out, checkpoint=infer_setup['broken'])
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith('infer.py: every landmark of every image was '
                           'invalid') and str(out) in line
    doc = json.loads((out / 'landmarks.json').read_text())
    assert len(doc['results']) == NUM_IMAGES
    assert not any(lm['valid'] for r in doc['results']
                   for lm in r['landmarks'])


def test_some_landmarks_invalid_is_a_warning_with_exit_0(infer_setup,
                                                        tmp_path):
    out = tmp_path / 'preds'
    result = infer(infer_setup, out, '--no-overlay',
                   checkpoint=infer_setup['one_bad'])
    assert result.returncode == 0, result.stderr
    warning = [ln for ln in result.stderr.splitlines()
               if ln.startswith('infer.py: warning: ')]
    assert warning == [f'infer.py: warning: {NUM_IMAGES} of '
                       f'{3 * NUM_IMAGES} landmarks were invalid (non-finite '
                       'heatmaps: "valid": false, no position); see '
                       f'{out / "landmarks.csv"}']


def test_ctrl_c_in_any_tool_is_one_line_and_status_130(capsys):
    from mmchh.utils.cli import run_tool

    def main(argv):
        raise KeyboardInterrupt

    assert run_tool('some_tool.py', main, []) == 130
    assert capsys.readouterr().err == 'some_tool.py: interrupted\n'
