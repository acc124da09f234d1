"""Buffers added to the calibration later keep older seals valid."""
import math

import torch

from mmchh.utils.checkpoint import (CALIBRATION_STATE_DEFAULTS,
                                    LATER_CALIBRATION_STATE_NAMES,
                                    calibration_seal)


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
