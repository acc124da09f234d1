"""mmchh.utils.io (atomic, strict JSON) and mmchh.utils.checkpoint (safe
loading with one-line errors, finiteness, weights fingerprint)."""
import json
import math
import os
import os.path as osp

import numpy as np
import pytest
import torch

import mmchh  # noqa: F401
from mmchh.utils import (CheckpointError, InputError, atomic_write_text,
                         check_finite_state, checkpoint_state_dict,
                         dumps_json, load_checkpoint_file, to_jsonable,
                         weights_fingerprint, write_json)


class RunsCommand:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


@pytest.mark.parametrize('value, expected', [
    (float('nan'), None),
    (float('inf'), None),
    (np.float32(-np.inf), None),
    (np.float64(1.5), 1.5),
    (np.int64(3), 3),
    (np.bool_(True), True),
    (np.array([[1.0, np.nan]]), [[1.0, None]]),
    (torch.tensor([2.0, float('inf')]), [2.0, None]),
    ({1: (np.float32(0.5), 'a')}, {'1': [0.5, 'a']}),
])
def test_to_jsonable_is_strict(value, expected):
    assert to_jsonable(value) == expected
    json.dumps(to_jsonable(value), allow_nan=False)


def test_write_json_strict_and_atomic(tmp_path):
    path = tmp_path / 'sub' / 'r.json'
    write_json(str(path), dict(a=float('nan'), b=[np.float32(1)]))
    text = path.read_text()
    assert 'NaN' not in text
    assert json.loads(text) == dict(a=None, b=[1.0])
    # no temporary left behind
    assert os.listdir(path.parent) == ['r.json']


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path,
                                                       monkeypatch):
    path = str(tmp_path / 'keep.txt')
    atomic_write_text(path, 'old')

    def fail(src, dst):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'replace', fail)
    with pytest.raises(OSError, match='disk full'):
        atomic_write_text(path, 'new')
    monkeypatch.undo()
    assert open(path).read() == 'old'
    assert sorted(os.listdir(tmp_path)) == ['keep.txt']


def test_dumps_json_refuses_unknown_objects():
    with pytest.raises(TypeError):
        dumps_json(dict(x=object()))


def _save(path, obj):
    torch.save(obj, path)
    return str(path)


@pytest.mark.parametrize('case', ['missing', 'empty', 'truncated', 'text',
                                  'malicious', 'not_a_model'])
def test_bad_checkpoints_give_one_line(tmp_path, case):
    good = _save(tmp_path / 'good.pth',
                 dict(state_dict=dict(w=torch.ones(4, 4))))
    marker = tmp_path / 'pwned'
    path = str(tmp_path / f'{case}.pth')
    if case == 'empty':
        open(path, 'wb').close()
    elif case == 'truncated':
        data = open(good, 'rb').read()
        open(path, 'wb').write(data[:len(data) // 2])
    elif case == 'text':
        open(path, 'w').write('hello')
    elif case == 'malicious':
        _save(path, dict(state_dict=dict(w=torch.ones(1)),
                         x=RunsCommand(marker)))
    elif case == 'not_a_model':
        _save(path, dict(state_dict=dict(step=3)))
    with pytest.raises(CheckpointError) as info:
        checkpoint_state_dict(load_checkpoint_file(path), path)
    message = str(info.value)
    assert isinstance(info.value, InputError)
    assert path in message and '\n' not in message
    assert 'weights_only=False' not in message.replace(' ', '')
    assert 'weights_only` set to `False' not in message
    assert not marker.exists()


def test_state_dict_strips_ddp_prefix():
    state = checkpoint_state_dict(
        dict(state_dict={'module.a.w': torch.ones(1)}))
    assert list(state) == ['a.w']


def test_check_finite_state_allows_nan_only_where_named():
    state = {'a.w': torch.zeros(2), 'head.t': torch.tensor(float('nan'))}
    check_finite_state(state, 'x.pth', nan_allowed=('t', ))
    with pytest.raises(CheckpointError, match=r'head\.t .*1 NaN'):
        check_finite_state(state, 'x.pth')
    with pytest.raises(CheckpointError, match='infinite'):
        check_finite_state(dict(state, **{'head.t': torch.tensor(
            float('inf'))}), 'x.pth', nan_allowed=('t', ))


def test_fingerprint_of_module_equals_fingerprint_of_its_file(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    path = _save(tmp_path / 'n.pth', dict(state_dict=net.state_dict()))
    loaded = checkpoint_state_dict(load_checkpoint_file(path), path)
    assert weights_fingerprint(loaded, exclude=()) == weights_fingerprint(
        net.state_dict(), exclude=())
    assert osp.getsize(path) > 0


@pytest.mark.parametrize('own_val_root', [False, True],
                         ids=['all_loaders', 'loader_option_wins'])
def test_cfg_option_data_root_reaches_every_dataset(own_val_root):
    from mmchh.utils.run_config import load_run_config
    config = osp.join(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))), 'configs', 'ceph', 'unet_r34_onehot.py')
    options = {'data_root': 'elsewhere/'}
    if own_val_root:
        options['val_dataloader.dataset.data_root'] = 'val_root/'
    cfg = load_run_config(config, options)
    roots = {k: cfg[k].dataset.data_root for k in
             ('train_dataloader', 'val_dataloader', 'test_dataloader',
              'calib_dataloader')}
    expected = dict.fromkeys(roots, 'elsewhere/')
    if own_val_root:
        expected['val_dataloader'] = 'val_root/'
    assert roots == expected


def test_write_npz_round_trips_without_pickle(tmp_path):
    from mmchh.utils.io import write_npz
    path = str(tmp_path / 'sub' / 'rows.npz')
    write_npz(path, dict(sample=np.array(['a.png', 'bé.png']),
                         value=np.array([1.5, np.nan]), hit=[True, False]))
    with np.load(path, allow_pickle=False) as f:
        assert f['sample'].tolist() == ['a.png', 'bé.png']
        assert f['hit'].dtype == bool and math.isnan(f['value'][1])
    assert os.listdir(str(tmp_path / 'sub')) == ['rows.npz']
    with pytest.raises(ValueError, match='"bad".*object'):
        write_npz(path, dict(bad=np.array([{}, 1], dtype=object)))
