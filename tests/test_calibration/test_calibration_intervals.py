"""The calibration report's paired intervals of the NLL and ECE change."""
import numpy as np

from mmchh.calibration.calibrate import calibration_change_intervals
from mmchh.evaluation.functional import expected_calibration_error


def _maps(rng, b, k):
    return (rng.random((b, k)), rng.random((b, k)) < 0.5,
            rng.random((b, k)) * 3)


def test_paired_change_matches_the_report_and_survives_unannotated_images():
    rng = np.random.default_rng(0)
    before, after = _maps(rng, 5, 19), _maps(rng, 5, 19)
    mask = np.ones((5, 19), bool)
    mask[4] = False  # an image with no annotated landmark
    mask[0, :3] = False
    out = calibration_change_intervals(dict(before=before, after=after), mask)
    nll = out['NLL_change']
    assert abs(nll['estimate'] -
               (after[2][mask].mean() - before[2][mask].mean())) < 1e-12
    assert nll['low'] <= nll['estimate'] <= nll['high']
    ece = out['ECE_change']
    want = (expected_calibration_error(after[0][mask], after[1][mask], 10,
                                       'max')['ece'] -
            expected_calibration_error(before[0][mask], before[1][mask], 10,
                                       'max')['ece'])
    assert abs(ece['estimate'] - want) < 1e-12
    # resamples of only the unannotated image have no ECE: counted, and
    # rare enough (5 ** -5) that the interval stands
    assert ece['num_failed'] <= 1 and np.isfinite(ece['low'])


def test_two_images_one_unannotated_gives_no_ece_interval_not_a_crash():
    rng = np.random.default_rng(1)
    before, after = _maps(rng, 2, 19), _maps(rng, 2, 19)
    mask = np.zeros((2, 19), bool)
    mask[0] = True
    ece = calibration_change_intervals(dict(before=before, after=after),
                            mask)['ECE_change']
    # a quarter of the resamples draw the unannotated image twice
    assert 150 < ece['num_failed'] < 350
    assert np.isnan(ece['low']) and 'resamples undefined' in ece['reason']
    assert np.isfinite(ece['estimate'])
