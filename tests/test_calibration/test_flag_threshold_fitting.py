"""The flag threshold with its bootstrap interval over images and basis."""
import numpy as np
import pytest

from mmchh.calibration.flagging import (describe_flagging,
                                                 flagging_report)
from mmchh.models.heads.flag_basis import (MIN_FLAG_ERRONEOUS,
                                           MIN_FLAG_IMAGES,
                                           flag_basis_shortfall)


def reference_threshold(ere, err, erroneous, tpr):
    """The slow obvious way: the largest observed ERE t with
    #(erroneous with ERE > t) >= ceil(tpr * P); else the largest ERE."""
    ere, err = list(map(float, ere)), list(map(float, err))
    bad = [e for e, r in zip(ere, err) if r > erroneous]
    if not bad:
        return max(ere)
    need = int(np.ceil(tpr * len(bad)))
    ok = [t for t in ere if sum(b > t for b in bad) >= need]
    return max(ok) if ok else np.nextafter(sorted(bad)[-need], -np.inf)


def test_hand_computed_case_below_minimum():
    # one image, 4 landmarks, 2 erroneous (errors 3 and 5 mm > 2 mm) with
    # ERE 0.9 and 0.7; TPR 0.5 -> flag the larger erroneous ERE: the
    # threshold is the largest ERE below 0.9, i.e. 0.8 (a good landmark)
    report = flagging_report([np.array([0.9, 0.7, 0.8, 0.1])],
                             [np.array([3.0, 5.0, 1.0, 0.5])], 2.0, 0.5)
    assert report['threshold'] == 0.8
    assert report['tpr'] == 0.5 and report['fpr'] == 0.0
    assert report['num_images'] == 1 and report['num_erroneous'] == 2
    # one image: no interval, and not used (1 < 3 images, 2 < 6 erroneous)
    assert np.isnan(report['interval']['low'])
    assert report['used'] is False
    assert report['reason'] == (
        'flag threshold not used: fitted on 1 calibration image(s) '
        '(minimum 3) and 2 erroneous landmark(s) (minimum 6), too few to '
        'fit it (docs/method.md, Flagging)')
    assert describe_flagging(report).startswith(report['reason'])


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_random_against_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 9))
    ere = [rng.gamma(2.0, 1.0, size=19) for _ in range(n)]
    err = [e * rng.uniform(0.3, 2.0, size=19) for e in ere]
    report = flagging_report(ere, err, 2.0, 0.5, num_resamples=200)
    flat_e, flat_r = np.concatenate(ere), np.concatenate(err)
    assert report['threshold'] == pytest.approx(
        reference_threshold(flat_e, flat_r, 2.0, 0.5), rel=0, abs=0)
    assert report['num_images'] == n
    assert report['num_erroneous'] == int((flat_r > 2.0).sum())
    # the interval resamples whole images, each resample refitted
    iv = report['interval']
    assert iv['num_images'] == n and iv['low'] <= iv['high']
    assert iv['low'] <= report['threshold'] <= iv['high']
    assert report['used'] == (report['num_erroneous'] >= MIN_FLAG_ERRONEOUS)


def test_shortfall_rule():
    assert flag_basis_shortfall(MIN_FLAG_IMAGES, MIN_FLAG_ERRONEOUS) is None
    assert '2 calibration image(s)' in flag_basis_shortfall(2, 100)
    assert '5 erroneous landmark(s)' in flag_basis_shortfall(10, 5)
