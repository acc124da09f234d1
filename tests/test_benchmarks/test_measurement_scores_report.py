"""benchmarks/measurement_scores.py's summary of per-image measurement rows:
normalised residuals, the refitted scale, width / MAE and coverage, and
whether landmark errors are shared -- on hand-made rows, against the
obvious loops. Predicting the rows is the API's (tested elsewhere); the
figures of docs/results/measurement_scores.json come from the full run."""
import importlib.util
import math
import os.path as osp
import sys

import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def harness():
    sys.path.insert(0, osp.join(REPO, 'benchmarks'))
    try:
        spec = importlib.util.spec_from_file_location(
            'measurement_scores_harness',
            osp.join(REPO, 'benchmarks', 'harness', 'measurement_scores.py'))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    return module


def _rows(rng, n, names=('ANB', 'SNB')):
    """n images: (truth, center, spread) per measurement and draw."""
    rows = []
    for _ in range(n):
        row = dict(image='x', errors_mm=rng.normal(size=(4, 2)))
        for kind in ('pixel_centre', 'within_pixel', 'jitter'):
            row[kind] = {name: (float(rng.normal()), float(rng.normal()),
                                float(rng.uniform(0.5, 2)))
                         for name in names}
        rows.append(row)
    return rows


def test_test_table_against_loops(harness):
    rows = _rows(np.random.default_rng(0), 9)
    scale = 1.7
    table = harness.test_table(rows, 'within_pixel', scale)
    for name in ('ANB', 'SNB'):
        errs, widths, inside = [], [], 0
        for r in rows:
            truth, center, spread = r['within_pixel'][name]
            errs.append(abs(truth - center))
            widths.append(2 * scale * spread)
            inside += abs(truth - center) <= scale * spread
        mae = sum(errs) / len(errs)
        assert table[name]['mae'] == pytest.approx(mae, abs=1e-3)
        assert table[name]['width_per_mae'] == pytest.approx(
            sum(widths) / len(widths) / mae, abs=0.01)
        assert table[name]['coverage'] == pytest.approx(inside / 9,
                                                        abs=1e-3)


def test_hand_case_and_refitted_scale(harness):
    """Two images, one measurement: residuals 0.5 and 3; with 20 images of
    residual i / 20 the 0.95 scale is the 20th smallest (k = ceil(21 *
    0.95) = 20)."""
    rows = [dict(image='a', errors_mm=np.zeros((2, 2)),
                 pixel_centre={'ANB': (1.0, 0.0, 2.0)},
                 within_pixel={'ANB': (1.0, 0.0, 2.0)},
                 jitter={'ANB': (1.0, 0.0, 4.0)}),
            dict(image='b', errors_mm=np.zeros((2, 2)),
                 pixel_centre={'ANB': (3.0, 0.0, 1.0)},
                 within_pixel={'ANB': (3.0, 0.0, 1.0)},
                 jitter={'ANB': (3.0, 0.0, 2.0)})]
    assert harness.scores(rows, 'pixel_centre')['ANB'].tolist() == [0.5, 3]
    table = harness.test_table(rows, 'pixel_centre', 1.0)['ANB']
    assert table['mae'] == 2.0 and table['width_per_mae'] == 1.5
    assert table['coverage'] == 0.5
    calib = [dict(image=str(i), errors_mm=np.zeros((2, 2)),
                  pixel_centre={'ANB': (i / 20, 0.0, 1.0)},
                  within_pixel={'ANB': (i / 40, 0.0, 1.0)},
                  jitter={'ANB': (i / 80, 0.0, 1.0)})
             for i in range(1, 21)]
    out = harness.summarise({'calib': calib, 'test': rows}, 'calib', 0.95,
                            0.9)
    assert out['draws']['pixel_centre']['scale'] == 1.0
    assert out['draws']['within_pixel']['scale'] == 0.5
    assert out['draws']['jitter']['scale'] == 0.25
    # widths from the jitter draw's spreads: 2 * 0.25 * (4 + 2) / 2 / 2
    assert out['draws']['jitter']['tests']['test']['ANB'][
        'width_per_mae'] == 0.75
    assert out['draws']['pixel_centre']['rank'] == math.ceil(21 * 0.95)
    assert out['draws']['pixel_centre']['tests']['test']['ANB'][
        'coverage'] == 0.5


@pytest.mark.parametrize('shared', [0.0, 3.0], ids=['independent', 'shift'])
def test_error_sharing_against_loops(harness, shared):
    """Independent errors give about 1 / K; a shift common to an image's
    landmarks raises the ratio; the number is the obvious loop's."""
    rng = np.random.default_rng(1)
    images = []
    for _ in range(400):
        shift = rng.normal(size=2) * shared
        images.append(dict(errors_mm=rng.normal(size=(5, 2)) + shift))
    out = harness.error_sharing({'a': images[:200], 'b': images[200:]})
    e = np.stack([r['errors_mm'] for r in images])
    for axis in (0, 1):
        means = [float(np.mean(img[:, axis])) for img in e]
        mean_var = np.var(means)
        per = np.mean([np.var(e[:, k, axis]) for k in range(5)])
        assert out['ratio_xy'][axis] == pytest.approx(mean_var / per,
                                                      abs=1e-3)
    assert out['independent'] == 0.2
    if shared:
        assert min(out['ratio_xy']) > 0.5
    else:
        assert max(out['ratio_xy']) < 0.35


def test_jitter_sds_are_the_square_roots_of_the_eigenvalues(harness):
    assert harness.jitter_sds(None) is None
    sds = harness.jitter_sds([[[4.0, 0.0], [0.0, 1.0]],
                              [[2.0, 2.0], [2.0, 2.0]],
                              [[1.0, 0.0], [0.0, 9.0]]])
    # sds, then the larger one's direction: along x, the diagonal, along y
    assert sds == [[1.0, 2.0, 0.0], [0.0, 2.0, 45.0], [1.0, 3.0, 90.0]]


def test_table_cells_hold_the_three_draws(harness):
    rows = _rows(np.random.default_rng(2), 6)
    calib = _rows(np.random.default_rng(3), 20)
    result = dict(calib_split='calib',
                  **harness.summarise({'calib': calib, 'test1': rows},
                                      'calib', 0.9, 0.9))
    text = harness.format_table(result)
    first = text.splitlines()[2].split(' | ')
    assert first[0] == '| ANB' and first[1].count(' / ') == 2
    assert ' / '.join(f"{result['draws'][k]['scale']:.3f}"
                      for k in harness.DRAWS) in text
