# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The eight ISBI 2015 measurements and their classes: hand-built landmark
sets with known angles/ratios, an independent slow reference, and every
class threshold at its boundary."""
import math

import numpy as np
import pytest

from mmchh.datasets.ceph_meta import CEPH_LABEL_NAMES, CEPH_LANDMARK_NAMES
from mmchh.evaluation.functional import (CEPH_CLASS_NAMES, CEPH_THRESHOLDS,
                                         ceph_labels_tuple, ceph_measurements,
                                         classify_ceph,
                                         classify_ceph_measurements)

IDX = {n: i for i, n in enumerate(CEPH_LANDMARK_NAMES)}


def base_head():
    """19 distinct points; each test moves the landmarks it needs."""
    rng = np.random.default_rng(0)
    return rng.uniform(100, 900, (19, 2))


def put(lm, **points):
    for name, xy in points.items():
        lm[IDX[name]] = xy
    return lm


def ray(origin, deg, length):
    """origin + length * direction at ``deg`` from +x towards +y (down)."""
    r = math.radians(deg)
    return (origin[0] + length * math.cos(r), origin[1] + length * math.sin(r))


# --------------------------------------------------------------------------
# an independent reference, written the slow obvious way: direction angles
# of lines in mathematical axes (y up), differences of them, python floats
# --------------------------------------------------------------------------
def _dir(p, q):
    """Direction angle (degrees, y up) of the vector p -> q."""
    return math.degrees(math.atan2(-(q[1] - p[1]), q[0] - p[0]))


def _diff(a, b):
    """Signed a - b wrapped to (-180, 180]."""
    d = (a - b) % 360.0
    return d - 360.0 if d > 180.0 else d


def slow_reference(lm, sx=1.0, sy=1.0):
    p = {n: (float(lm[i][0]) * sx, float(lm[i][1]) * sy)
         for n, i in IDX.items()}
    s, n, a, b = p['sella'], p['nasion'], p['subspinale'], p['supramentale']
    sna = abs(_diff(_dir(n, s), _dir(n, a)))
    snb = abs(_diff(_dir(n, s), _dir(n, b)))
    fh = _dir(p['porion'], p['orbitale'])
    pal = _dir(p['posterior_nasal_spine'], p['anterior_nasal_spine'])
    # Kim: negative when the anterior end of the palate tips upward; with
    # y up, "upward" is a positive rotation of PNS->ANS from Po->Or
    pp = -_diff(pal, fh)
    ab_mp = abs(_diff(_dir(p['menton'], p['gonion']), _dir(b, a)))
    facial = abs(_diff(_dir(p['orbitale'], p['porion']),
                       _dir(n, p['pogonion'])))
    # AB to facial plane: positive when A->B is rotated forward (towards
    # +x, i.e. counterclockwise with y up when pointing down) of N->Pog
    ab_f = _diff(_dir(a, b), _dir(n, p['pogonion']))
    fhi = math.dist(s, p['gonion']) / math.dist(n, p['menton'])
    fma = abs(_diff(_dir(s, n), _dir(p['gonion'], p['gnathion'])))
    lo, up = p['lower_incisal_incision'], p['upper_incisal_incision']
    mw = math.dist(lo, up) * (1 if up[0] > lo[0] else -1)
    return dict(ANB=sna - snb, SNB=snb, SNA=sna, ODI=ab_mp + pp,
                APDI=facial + ab_f + pp, FHI=fhi, FMA=fma, MW=mw)


# --------------------------------------------------------------------------
# hand-built sets with known values
# --------------------------------------------------------------------------
def test_sna_snb_anb_known_angles():
    n = (500.0, 200.0)
    lm = put(base_head(), sella=(200.0, 200.0), nasion=n,
             # N->S points along 180 deg; A and B are rotated 82 / 78 deg
             # from it towards the face's lower side
             subspinale=ray(n, 180 - 82, 300),
             supramentale=ray(n, 180 - 78, 450))
    v = ceph_measurements(lm)
    assert v['SNA'] == pytest.approx(82.0, abs=1e-9)
    assert v['SNB'] == pytest.approx(78.0, abs=1e-9)
    assert v['ANB'] == pytest.approx(4.0, abs=1e-9)
    # B ahead of A: negative ANB (class III), not the unsigned angle
    lm = put(lm, supramentale=ray(n, 180 - 84, 450))
    v = ceph_measurements(lm)
    assert v['ANB'] == pytest.approx(-2.0, abs=1e-9)
    assert classify_ceph('ANB', v['ANB']) == 3


def test_odi_known_angles_and_palatal_sign():
    me = (500.0, 700.0)
    pns = (300.0, 400.0)
    lm = put(base_head(), porion=(100.0, 300.0), orbitale=(400.0, 300.0),
             supramentale=(500.0, 600.0), subspinale=(500.0, 400.0),
             menton=me, gonion=ray(me, 180 + 20, 250),
             # palatal plane tipped 3 deg anterior end UP -> -3
             posterior_nasal_spine=pns,
             anterior_nasal_spine=ray(pns, -3, 200))
    # AB straight up, MP 20 deg above the backward horizontal: 70 deg
    v = ceph_measurements(lm)
    assert v['ODI'] == pytest.approx(70.0 - 3.0, abs=1e-9)
    lm = put(lm, anterior_nasal_spine=ray(pns, 3, 200))  # tipped DOWN: +3
    assert ceph_measurements(lm)['ODI'] == pytest.approx(73.0, abs=1e-9)


def test_apdi_known_angles_and_signs():
    n, a, pns = (500.0, 100.0), (520.0, 400.0), (300.0, 400.0)
    # N->Pog 2 deg behind the FH perpendicular: facial angle 88
    lm = put(base_head(), porion=(100.0, 300.0), orbitale=(400.0, 300.0),
             nasion=n, pogonion=ray(n, 90 + 2, 600), subspinale=a,
             # A->B 5 deg further back than N->Pog (B behind A): -5
             supramentale=ray(a, 90 + 2 + 5, 200),
             posterior_nasal_spine=pns,
             anterior_nasal_spine=ray(pns, 2, 200))  # tipped down: +2
    v = ceph_measurements(lm)
    assert v['APDI'] == pytest.approx(88.0 - 5.0 + 2.0, abs=1e-9)
    # B ahead: A->B rotated 4 deg forward of N->Pog: +4
    lm = put(lm, supramentale=ray(a, 90 + 2 - 4, 200))
    assert ceph_measurements(lm)['APDI'] == pytest.approx(
        88.0 + 4.0 + 2.0, abs=1e-9)


def test_fhi_fma_known_values():
    lm = put(base_head(), sella=(100.0, 100.0), gonion=(100.0, 170.0),
             nasion=(300.0, 100.0), menton=(300.0, 200.0))
    v = ceph_measurements(lm)
    assert v['FHI'] == pytest.approx(0.7, abs=1e-12)
    go = (150.0, 400.0)
    lm = put(lm, sella=(100.0, 100.0), nasion=(400.0, 100.0), gonion=go,
             gnathion=ray(go, 30, 300))
    assert ceph_measurements(lm)['FMA'] == pytest.approx(30.0, abs=1e-9)
    # the S-N line is horizontal and the mandibular plane is 30 deg, which
    # is what the challenge calls FMA, whatever FH does
    lm = put(lm, porion=(0.0, 0.0), orbitale=(300.0, 100.0))
    assert ceph_measurements(lm)['FMA'] == pytest.approx(30.0, abs=1e-9)


def test_mw_signed_distance_needs_spacing():
    lm = put(base_head(), lower_incisal_incision=(100.0, 100.0),
             upper_incisal_incision=(103.0, 104.0))
    assert ceph_measurements(lm, 0.5)['MW'] == pytest.approx(2.5)
    assert ceph_measurements(lm, (0.5, 0.5))['MW'] == pytest.approx(2.5)
    mirrored = put(lm.copy(), upper_incisal_incision=(97.0, 104.0))
    assert ceph_measurements(mirrored, 0.5)['MW'] == pytest.approx(-2.5)
    # no spacing: angles still computed, MW unknown (class 0)
    v = ceph_measurements(lm)
    assert np.isnan(v['MW']) and np.isfinite(v['SNA'])
    assert classify_ceph('MW', v['MW']) == 0


def test_anisotropic_spacing_equals_points_in_mm():
    lm = base_head()
    sx, sy = 0.1, 0.25
    in_mm = ceph_measurements(lm * [sx, sy], 1.0)
    in_px = ceph_measurements(lm, (sx, sy))
    for name in CEPH_LABEL_NAMES:
        assert in_px[name] == pytest.approx(in_mm[name], abs=1e-9), name
    ref = slow_reference(lm, sx, sy)
    for name in CEPH_LABEL_NAMES:
        assert in_px[name] == pytest.approx(ref[name], abs=1e-9), name


def test_matches_slow_reference_on_random_batches():
    rng = np.random.default_rng(3)
    lm = rng.uniform(0, 2000, (3, 4, 19, 2))
    v = ceph_measurements(lm, 0.1)
    for name in CEPH_LABEL_NAMES:
        assert v[name].shape == (3, 4)
    for i in range(3):
        for j in range(4):
            ref = slow_reference(lm[i, j], 0.1, 0.1)
            for name in CEPH_LABEL_NAMES:
                assert v[name][i, j] == pytest.approx(ref[name],
                                                      abs=1e-9), name


def test_per_sample_spacing_broadcasts():
    lm = np.stack([base_head(), base_head()])
    v = ceph_measurements(lm, np.array([[0.1, 0.1], [0.2, 0.2]]))
    assert v['MW'][1] == pytest.approx(2 * v['MW'][0])
    assert v['SNA'][0] == pytest.approx(v['SNA'][1])


def test_coincident_points_give_nan_not_a_silent_zero():
    lm = put(base_head(), nasion=(300.0, 300.0), sella=(300.0, 300.0))
    v = ceph_measurements(lm, 0.1)
    assert np.isnan(v['SNA']) and np.isnan(v['SNB']) and np.isnan(v['FMA'])
    assert classify_ceph('SNA', v['SNA']) == 0
    lm = put(base_head(), lower_incisal_incision=(5.0, 5.0),
             upper_incisal_incision=(5.0, 5.0))
    # MW = 0 exactly is a valid value (edge to edge)
    assert ceph_measurements(lm, 0.1)['MW'] == 0.0
    assert classify_ceph('MW', 0.0) == 2


def test_bad_shapes_and_spacing_raise():
    with pytest.raises(ValueError, match='19, 2'):
        ceph_measurements(np.zeros((18, 2)))
    with pytest.raises(ValueError, match='spacing'):
        ceph_measurements(base_head(), -0.1)


# --------------------------------------------------------------------------
# classes
# --------------------------------------------------------------------------
#: The verified table, written out again: (low, high, below, above).
VERIFIED = dict(ANB=(3.2, 5.7, 3, 2), SNB=(74.6, 78.7, 2, 3),
                SNA=(79.4, 83.2, 3, 2), ODI=(68.4, 80.5, 3, 2),
                APDI=(77.6, 85.2, 2, 3), FHI=(0.65, 0.75, 3, 2),
                FMA=(26.8, 31.4, 3, 2))


@pytest.mark.parametrize('name', sorted(VERIFIED))
def test_class_boundaries_are_inclusive_for_normal(name):
    low, high, below, above = VERIFIED[name]
    assert CEPH_THRESHOLDS[name] == VERIFIED[name]
    eps = 1e-9
    values = [low - eps, low, (low + high) / 2, high, high + eps]
    assert classify_ceph(name, values).tolist() == [
        below, 1, 1, 1, above]
    assert set(CEPH_CLASS_NAMES[name]) == {1, 2, 3}


def test_mw_classes_at_boundaries():
    eps = 1e-9
    values = [-5.0, -eps, 0.0, 1.0, 2.0 - eps, 2.0, 3.0, 4.5, 4.5 + eps,
              np.nan]
    assert classify_ceph('MW', values).tolist() == [
        3, 3, 2, 2, 2, 1, 1, 1, 4, 0]


def test_classify_dict_and_labels_tuple():
    lm = base_head()
    v = ceph_measurements(lm, 0.1)
    c = classify_ceph_measurements(v)
    assert tuple(int(c[n]) for n in CEPH_LABEL_NAMES) == ceph_labels_tuple(
        lm, 0.1)
    with pytest.raises(KeyError, match='unknown measurement'):
        classify_ceph('XYZ', 1.0)
