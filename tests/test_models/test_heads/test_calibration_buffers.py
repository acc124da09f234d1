"""The head's calibration buffers: excluded from the weights fingerprint,
bound by the seal; buffers added later keep older seals valid."""
import math

import pytest
import torch

from mmchh.models.heads.calibration_buffers import (
    CALIBRATION_STATE_DEFAULTS, LATER_CALIBRATION_STATE_NAMES,
    calibration_seal, calibration_weights_fingerprint, check_finite_weights)
from mmchh.utils.checkpoint import CheckpointError


def _values(**changes):
    values = {
        n: torch.tensor(v, dtype=torch.bool if isinstance(v, bool) else
                        torch.float32)
        for n, v in CALIBRATION_STATE_DEFAULTS.items()
        if n != 'calibration_fingerprint'
    }
    values.update({n: torch.tensor(v) for n, v in changes.items()})
    return values


def test_unset_later_buffers_do_not_change_the_seal():
    new = _values(flag_threshold=2.0)
    old = {n: v for n, v in new.items()
           if n not in LATER_CALIBRATION_STATE_NAMES}
    assert calibration_seal('ab' * 32, new) == calibration_seal('ab' * 32,
                                                                 old)


def test_a_set_later_buffer_is_sealed():
    base = calibration_seal('ab' * 32, _values())
    for name in LATER_CALIBRATION_STATE_NAMES:
        assert math.isnan(CALIBRATION_STATE_DEFAULTS[name])
        assert calibration_seal('ab' * 32, _values(**{name: 1.5})) != base


def _reference_fingerprint(state):
    """The slow way: sorted names, excluding calibration buffers, hashing
    name, dtype, shape and the raw bytes."""
    import hashlib
    h = hashlib.sha256()
    for name in sorted(state):
        if name.split('.')[-1] in ('log_temperature', 'flag_threshold',
                                   'calibration_fingerprint') or \
                name.split('.')[-1].startswith('conformal_'):
            continue
        t = state[name].detach().cpu().contiguous()
        h.update(f'{name}|{t.dtype}|{tuple(t.shape)}|'.encode())
        h.update(bytes(t.numpy().tobytes()))
    return h.hexdigest()


def test_weights_fingerprint():
    gen = torch.Generator().manual_seed(0)
    state = {
        'backbone.conv.weight': torch.randn(4, 3, 3, 3, generator=gen),
        'backbone.bn.num_batches_tracked': torch.tensor(7),
        'head.log_temperature': torch.zeros(5),
        'head.flag_threshold': torch.tensor(float('nan')),
        'head.final.bias': torch.randn(5, generator=gen, dtype=torch.float64),
    }
    fp = calibration_weights_fingerprint(state)
    assert fp == _reference_fingerprint(state)
    assert len(fp) == 64
    # calibration state does not count; the DDP prefix does not either
    calibrated = dict(state, **{'head.log_temperature': torch.ones(5)})
    assert calibration_weights_fingerprint(calibrated) == fp
    conformal = dict(state, **{
        'head.conformal_threshold': torch.rand(2, 5, generator=gen),
        'head.conformal_level': torch.tensor([0.8, 0.9])
    })
    assert calibration_weights_fingerprint(conformal) == fp
    assert calibration_weights_fingerprint(
        {'module.' + k: v for k, v in state.items()}) == fp
    # any weight change, even one ulp, does
    changed = dict(state)
    w = state['head.final.bias'].clone()
    w[2] = math.nextafter(float(w[2]), math.inf)
    changed['head.final.bias'] = w
    assert calibration_weights_fingerprint(changed) != fp


def test_calibration_seal_binds_weights_and_every_value():
    gen = torch.Generator().manual_seed(1)
    values = {
        'log_temperature': torch.randn(5, generator=gen),
        'flag_threshold': torch.tensor(2.5),
        'flag_threshold_in_mm': torch.tensor(True),
        'conformal_level': torch.tensor([float('nan')]),
    }
    weights = 'ab' * 32
    seal = calibration_seal(weights, values)
    # the slow way: a tag, the weights fingerprint, then name, dtype, shape
    # and raw bytes of each value in sorted name order
    import hashlib
    h = hashlib.sha256(b'mmchh calibration seal v2|' + weights.encode())
    for name in sorted(values):
        t = values[name]
        h.update(f'|{name}|{t.dtype}|{tuple(t.shape)}|'.encode())
        h.update(bytes(t.numpy().tobytes()))
    assert seal == h.hexdigest() and seal != weights
    assert calibration_seal(weights, dict(values)) == seal
    assert calibration_seal('cd' * 32, values) != seal
    for name, value in values.items():
        edited = dict(values)
        edited[name] = (~value if value.dtype == torch.bool else
                        torch.nan_to_num(value, nan=0.0) + 1e-3)
        assert calibration_seal(weights, edited) != seal, name
    with pytest.raises(KeyError, match='calibration_fingerprint'):
        calibration_seal(weights, dict(
            values, calibration_fingerprint=torch.zeros(32)))


@pytest.mark.parametrize('name, value, ok', [
    ('backbone.w', torch.tensor([1.0, float('nan')]), False),
    ('head.log_temperature', torch.tensor([0.0, float('inf')]), False),
    ('head.flag_threshold', torch.tensor(float('nan')), True),
    ('head.flag_threshold', torch.tensor(float('inf')), False),
    ('head.conformal_threshold', torch.full((1, 3), float('nan')), True),
    ('head.conformal_disc_radius', torch.tensor([[1.0, float('inf')]]),
     False),
    ('head.conformal_level', torch.tensor([0.9, float('-inf')]), False),
    ('bn.num_batches_tracked', torch.tensor(3), True),
    ('backbone.w', torch.randn(3, 3), True),
])
def test_check_finite_weights(name, value, ok):
    state = {'other.w': torch.zeros(2), name: value}
    if ok:
        check_finite_weights(state, 'x.pth')
    else:
        with pytest.raises(CheckpointError, match=name.replace('.', r'\.')):
            check_finite_weights(state, 'x.pth')
