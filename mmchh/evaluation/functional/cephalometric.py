# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The eight cephalometric measurements of the ISBI 2015 challenge and their
clinical classes, as pure, vectorised functions.

Source and what was verified
----------------------------
The challenge paper is C.-W. Wang et al., "A benchmark for comparison of
dental radiography analysis algorithms", Medical Image Analysis 31:63-76,
2016 (doi:10.1016/j.media.2016.02.004; PubMed 26974042; challenge site
http://www-o.ntust.edu.tw/~cweiwang/ISBI2015/). Its PubMed record was read;
the full text and the challenge site could **not** be reached from where
this module was written. The definitions below were therefore checked
against two independent public re-implementations of the challenge's
classification table (a Python classification script and an analysis
notebook found through a GitHub code index; both quote the table's wording,
e.g. "the arithmetic sum of the angle between the AB plane (L5 to L6) to the
mandibular plane (L8 to L10) and the angle of the palatal plane (L17 to
L18) to the FH plane (L4 to L3)"), which agree with each other on every
landmark, threshold and class code, and, for the signs of Kim's two
indicators, against the definitions table of Progress in Orthodontics
17:17 (2016), doi:10.1186/s40510-016-0147-8, Table 2 ("APDI ... N-Pg-FH
(facial plane) plus/minus the angle AB-facial plane (positive when B is
ahead of A) plus/minus the angle FH-PP (negative when PP is tilted upward)";
"ODI ... AB-MP plus/minus the angle FH-PP ... negative when PP is tilted
upward"), which cites Kim 1974 (ODI) and Kim & Vietas 1978 (APDI). Kim's
original papers were not reachable.

Landmarks are numbered L1..L19 as in the annotation files (see
:data:`~mmchh.datasets.ceph_meta.CEPH_LANDMARK_NAMES`): L1 sella, L2 nasion,
L3 orbitale, L4 porion, L5 A point, L6 B point, L7 pogonion, L8 menton,
L9 gnathion, L10 gonion, L11 lower incisal incision, L12 upper incisal
incision, L17 PNS, L18 ANS.

=====  ==================================================  =================
name   definition                                          class 1 (normal)
=====  ==================================================  =================
ANB    SNA - SNB (signed: negative when B is ahead of A)   3.2 - 5.7 deg
SNB    angle L1-L2-L6                                      74.6 - 78.7 deg
SNA    angle L1-L2-L5                                      79.4 - 83.2 deg
ODI    angle(AB, MP) + signed angle(FH, PP)                74.5 +- 6.07 deg
       AB = L6->L5, MP = L8->L10, FH = L4->L3, PP = L17->L18
APDI   angle(FH, facial plane) + signed angle(facial       81.4 +- 3.79 deg
       plane, AB) + signed angle(FH, PP); facial plane =
       L2->L7, AB = L5->L6, FH backwards = L3->L4
FHI    |L1 L10| / |L2 L8| (posterior / anterior face       0.65 - 0.75
       height)
FMA    angle between S-N (L1->L2) and Go-Gn (L10->L9)      26.8 - 31.4 deg
MW     +-|L11 L12| in mm, + when x(L12) > x(L11)           2 - 4.5 mm
=====  ==================================================  =================

Classes (the label lines of the annotation files use these codes):

* ANB: 1 class I (normal), 2 class II (> 5.7), 3 class III (< 3.2).
* SNB: 1 normal mandible, 2 retrognathic mandible (< 74.6),
  3 prognathic mandible (> 78.7).
* SNA: 1 normal maxilla, 2 prognathic maxilla (> 83.2),
  3 retrognathic maxilla (< 79.4).
* ODI: 1 normal, 2 deep bite tendency (> 80.5), 3 open bite tendency
  (< 68.4).
* APDI: 1 normal, 2 class II tendency (< 77.6), 3 class III tendency
  (> 85.2).
* FHI: 1 normal, 2 short face tendency (> 0.75), 3 long face tendency
  (< 0.65).
* FMA: 1 normal, 2 mandible high angle tendency (> 31.4), 3 mandible low
  angle tendency (< 26.8).
* MW: 1 normal (2 <= MW <= 4.5 mm), 2 edge to edge, 3 anterior cross bite
  (MW < 0), 4 large overjet (MW > 4.5).

Boundaries: the sources give "less than" / "greater than" for the outer
classes and "between" for class 1, and the re-implementations test
``value < low`` and ``value > high``; so class 1 is the **closed** interval
``[low, high]`` and a value exactly on a threshold is normal.

Where the sources leave a choice, this module makes one and says so:

* ODI and APDI: the sources print 74.5 +- 6.07 and 81.4 +- 3.79 but
  classify with the rounded bounds 68.4 / 80.5 and 77.6 / 85.2 (note that
  74.5 + 6.07 = 80.57, not 80.5); the printed bounds are used.
* MW edge to edge: the table gives "MW = 0 mm" for class 2 and nothing for
  0 < MW < 2 mm. One re-implementation lets that gap fall through to class 3
  (cross bite), which contradicts the table's own "MW < 0" for class 3. Here
  0 <= MW < 2 mm is class 2 (edge to edge / reduced overjet), which keeps
  class 3 exactly "MW < 0" and class 1 exactly "2 <= MW <= 4.5".
* MW sign when x(L12) == x(L11) with distinct points: the source says
  "if x_L12 > x_L11 positive, otherwise negative"; followed literally.
* FMA: clinically "FMA" is the Frankfort-mandibular plane angle, but the
  challenge defines (and labels) it as the angle between the S-N line and
  the Go-Gn mandibular plane; the challenge's definition is used, so that
  predictions are comparable with the label lines.
* ANB: the table names the angle L5-L2-L6; an unsigned angle cannot be
  below 0 (class III), so the signed SNA - SNB is used, as the
  re-implementations do.
* Signed angles (ODI, APDI) use the orientation of the ISBI images: image
  axes x right and y down, the face towards +x. For a mirrored image (face
  towards -x) flip it, or its x coordinates, first.

Units: positions are converted to mm with the pixel spacing before any
angle is taken, so angles stay exact for non-square pixels. Without a
spacing, angles and FHI are computed on pixels (square pixels assumed) and
MW, which needs mm, is NaN (its class 0, "unknown").
"""
from typing import Dict, Mapping, Sequence, Tuple, Union

import numpy as np

from mmchh.datasets.ceph_meta import CEPH_LABEL_NAMES, CEPH_LANDMARK_NAMES
from mmchh.utils.spacing import spacing_array

__all__ = [
    'CEPH_CLASS_NAMES', 'CEPH_MEASUREMENT_LANDMARKS', 'CEPH_MEASUREMENT_NAMES',
    'CEPH_MEASUREMENT_UNITS', 'CEPH_THRESHOLDS', 'ceph_labels_tuple',
    'ceph_measurements', 'classify_ceph', 'classify_ceph_measurements',
    'missing_measurement_landmarks', 'num_ceph_classes'
]

#: The 8 measurements, in the order of the annotation files' label lines.
CEPH_MEASUREMENT_NAMES = tuple(CEPH_LABEL_NAMES)

#: Unit of each measurement.
CEPH_MEASUREMENT_UNITS = dict(
    ANB='deg', SNB='deg', SNA='deg', ODI='deg', APDI='deg', FHI='ratio',
    FMA='deg', MW='mm')

#: ``name -> (low, high, class below low, class above high)``; class 1 is
#: the closed interval ``[low, high]``. MW has its own rule (see module doc).
CEPH_THRESHOLDS = dict(
    ANB=(3.2, 5.7, 3, 2),
    SNB=(74.6, 78.7, 2, 3),
    SNA=(79.4, 83.2, 3, 2),
    ODI=(68.4, 80.5, 3, 2),
    APDI=(77.6, 85.2, 2, 3),
    FHI=(0.65, 0.75, 3, 2),
    FMA=(26.8, 31.4, 3, 2),
    MW=(2.0, 4.5, None, 4),
)

#: Class code -> clinical meaning, per measurement.
CEPH_CLASS_NAMES = dict(
    ANB={1: 'class I (normal)', 2: 'class II', 3: 'class III'},
    SNB={1: 'normal mandible', 2: 'retrognathic mandible',
         3: 'prognathic mandible'},
    SNA={1: 'normal maxilla', 2: 'prognathic maxilla',
         3: 'retrognathic maxilla'},
    ODI={1: 'normal', 2: 'deep bite tendency', 3: 'open bite tendency'},
    APDI={1: 'normal', 2: 'class II tendency', 3: 'class III tendency'},
    FHI={1: 'normal', 2: 'short face tendency', 3: 'long face tendency'},
    FMA={1: 'normal', 2: 'mandible high angle tendency',
         3: 'mandible low angle tendency'},
    MW={1: 'normal', 2: 'edge to edge', 3: 'anterior cross bite',
        4: 'large overjet'},
)

_I = {name: i for i, name in enumerate(CEPH_LANDMARK_NAMES)}
S, N, OR, PO = _I['sella'], _I['nasion'], _I['orbitale'], _I['porion']
A, B, POG, ME = (_I['subspinale'], _I['supramentale'], _I['pogonion'],
                 _I['menton'])
GN, GO = _I['gnathion'], _I['gonion']
LII, UII = _I['lower_incisal_incision'], _I['upper_incisal_incision']
PNS, ANS = _I['posterior_nasal_spine'], _I['anterior_nasal_spine']

SpacingLike = Union[None, float, Sequence[float], np.ndarray]

#: The landmarks (indices into ``CEPH_LANDMARK_NAMES``) each measurement is
#: computed from: without one of them the measurement does not exist.
CEPH_MEASUREMENT_LANDMARKS = dict(
    ANB=(S, N, A, B), SNB=(S, N, B), SNA=(S, N, A),
    ODI=(B, A, ME, GO, PO, OR, PNS, ANS),
    APDI=(OR, PO, N, POG, A, B, PNS, ANS), FHI=(S, GO, N, ME),
    FMA=(S, N, GO, GN), MW=(LII, UII))


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """z of u x v for (..., 2) vectors; in image axes (y down) it is
    positive when v is rotated clockwise (as seen) from u."""
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Unsigned angle in degrees, [0, 180], between (..., 2) vectors.

    atan2(|u x v|, u . v) is accurate at every angle (arccos of the cosine
    loses half the digits near 0 and 180 degrees). NaN where either vector
    has zero length: the angle is undefined there.
    """
    ang = np.degrees(np.arctan2(np.abs(_cross(u, v)),
                                np.sum(u * v, axis=-1)))
    degenerate = (np.all(u == 0, axis=-1) | np.all(v == 0, axis=-1))
    return np.where(degenerate, np.nan, ang)


def _pp_fh(p: np.ndarray) -> np.ndarray:
    """Palatal plane (PNS->ANS) against FH (Po->Or), degrees; negative
    when the anterior end (ANS) is tilted upward (Kim's sign)."""
    fh, pp = p[..., OR, :] - p[..., PO, :], p[..., ANS, :] - p[..., PNS, :]
    return np.where(_cross(fh, pp) < 0, -1.0, 1.0) * _angle(fh, pp)


def ceph_measurements(landmarks: np.ndarray,
                      spacing: SpacingLike = None) -> Dict[str, np.ndarray]:
    """The eight ISBI 2015 measurements from landmark positions.

    Args:
        landmarks (np.ndarray): (..., 19, 2) positions (x, y) in image
            pixels (x right, y down, face towards +x), in the order of
            ``CEPH_LANDMARK_NAMES``. Any leading batch/sample dims.
        spacing: mm per pixel: None, one number, (x, y), or an array
            broadcastable to (..., 2) (one spacing per leading index).

    Returns:
        dict[str, np.ndarray]: ``name -> (...)`` float64 values for the
        names in :data:`CEPH_MEASUREMENT_NAMES`; angles in degrees, FHI a
        ratio, MW in mm (NaN without ``spacing``). A value whose defining
        line has zero length (two landmarks on the same point) is NaN.

    Note:
        Shapes: ``landmarks`` (..., 19, 2) -> each value (...). See the
        module docstring for every definition, its source and the choices
        made where the sources are silent.
    """
    p = np.asarray(landmarks, dtype=np.float64)
    if p.ndim < 2 or p.shape[-2:] != (len(CEPH_LANDMARK_NAMES), 2):
        raise ValueError('landmarks must have shape (..., '
                         f'{len(CEPH_LANDMARK_NAMES)}, 2) in the ISBI 2015 '
                         f'order; got {p.shape}')
    sp = None if spacing is None else spacing_array(spacing)
    if sp is not None:
        p = p * sp[..., None, :]

    def vec(i, j):  # landmark i -> landmark j
        return p[..., j, :] - p[..., i, :]

    sna = _angle(vec(N, S), vec(N, A))
    snb = _angle(vec(N, S), vec(N, B))
    pp_fh = _pp_fh(p)
    # ODI: AB plane (B->A, pointing up) to mandibular plane (Me->Go,
    # pointing back): the posterior-superior angle between them
    odi = _angle(vec(ME, GO), vec(B, A)) + pp_fh
    # APDI: facial angle (FH pointing back, Or->Po, to N->Pog), plus the AB
    # plane to the facial plane, positive when A->B is rotated forward of
    # N->Pog (B ahead), plus the palatal plane angle
    facial = vec(N, POG)
    ab = vec(A, B)
    ab_facial = np.where(_cross(facial, ab) > 0, -1.0, 1.0) * _angle(
        facial, ab)
    apdi = _angle(vec(OR, PO), facial) + ab_facial + pp_fh
    pfh = np.linalg.norm(vec(S, GO), axis=-1)
    afh = np.linalg.norm(vec(N, ME), axis=-1)
    with np.errstate(divide='ignore', invalid='ignore'):
        fhi = np.where(afh > 0, pfh / np.where(afh > 0, afh, 1.0), np.nan)
    fma = _angle(vec(S, N), vec(GO, GN))
    if sp is None:
        mw = np.full(p.shape[:-2], np.nan)
    else:
        d = vec(LII, UII)
        mw = np.where(d[..., 0] > 0, 1.0, -1.0) * np.linalg.norm(d, axis=-1)
    return dict(
        ANB=sna - snb, SNB=snb, SNA=sna, ODI=odi, APDI=apdi, FHI=fhi,
        FMA=fma, MW=mw)


def missing_measurement_landmarks(
        present: Sequence[bool]) -> Dict[str, Tuple[str, ...]]:
    """Per measurement, the landmarks it needs that are absent.

    A measurement that needs an absent landmark (not annotated: COCO
    visibility 0; or an invalid prediction) has no value: it is reported
    missing, never computed from the absent point's coordinates.

    Args:
        present (Sequence[bool]): (19,) whether each landmark, in the order
            of ``CEPH_LANDMARK_NAMES``, has a position.

    Returns:
        dict[str, tuple[str, ...]]: ``name -> names of its absent
        landmarks`` (empty when it can be computed), for every name in
        :data:`CEPH_MEASUREMENT_NAMES`.
    """
    ok = np.asarray(present, dtype=bool).reshape(-1)
    if ok.shape != (len(CEPH_LANDMARK_NAMES), ):
        raise ValueError(f'present must have {len(CEPH_LANDMARK_NAMES)} '
                         f'entries; got {ok.shape}')
    return {
        name: tuple(CEPH_LANDMARK_NAMES[i]
                    for i in sorted(CEPH_MEASUREMENT_LANDMARKS[name])
                    if not ok[i])
        for name in CEPH_MEASUREMENT_NAMES
    }


def classify_ceph(name: str, value) -> np.ndarray:
    """The ISBI class code of one measurement's value(s).

    Args:
        name (str): One of :data:`CEPH_MEASUREMENT_NAMES`.
        value (float | np.ndarray): Values in the measurement's unit.

    Returns:
        np.ndarray: int64 class codes, same shape as ``value``; 0 where the
        value is NaN (unknown). Class 1 is the closed interval
        ``[low, high]`` of :data:`CEPH_THRESHOLDS`; for MW, ``MW < 0`` is 3,
        ``0 <= MW < 2`` is 2, ``2 <= MW <= 4.5`` is 1 and ``MW > 4.5`` is 4.
    """
    if name not in CEPH_THRESHOLDS:
        raise KeyError(f'unknown measurement {name!r}; expected one of '
                       f'{CEPH_MEASUREMENT_NAMES}')
    v = np.asarray(value, dtype=np.float64)
    low, high, below, above = CEPH_THRESHOLDS[name]
    out = np.ones(v.shape, dtype=np.int64)
    if name == 'MW':
        out = np.where(v < low, 2, out)
        out = np.where(v < 0, 3, out)
    else:
        out = np.where(v < low, below, out)
    out = np.where(v > high, above, out)
    return np.where(np.isnan(v), 0, out).astype(np.int64)


def classify_ceph_measurements(
        values: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """:func:`classify_ceph` for every measurement of a
    :func:`ceph_measurements` dict (same keys, int64 class codes)."""
    return {name: classify_ceph(name, v) for name, v in values.items()}


def num_ceph_classes(name: str) -> int:
    """How many class codes (1..n) a measurement has: 4 for MW, else 3."""
    return len(CEPH_CLASS_NAMES[name])


def ceph_labels_tuple(landmarks: np.ndarray,
                      spacing: SpacingLike) -> Tuple[int, ...]:
    """The 8 class codes of one landmark set, in label-line order (what an
    ISBI annotation file's last 8 lines hold)."""
    values = ceph_measurements(np.asarray(landmarks)[None], spacing)
    return tuple(int(classify_ceph(n, values[n])[0])
                 for n in CEPH_MEASUREMENT_NAMES)
