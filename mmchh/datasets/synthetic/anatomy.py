# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Where the 19 landmarks of one synthetic head are, and their labels.

All coordinates are pixels of a full-size ISBI image (``ISBI_IMAGE_SIZE``,
0.1 mm/px) with the face towards +x and y down. Skeletal landmarks are
placed from clinically meaningful parameters (SN length and tilt, SNA, SNB,
incisor inclinations, overjet, ramus and mandibular plane) drawn from
clipped normal distributions; :data:`LANDMARK_CONTOURS` then says, as data,
which placed point each landmark is and along which direction its contour
runs there. :mod:`.drawing` builds the contours through these points.

Each ``place_*(head, rng)`` step adds its points (full-size pixels) to the
``head`` namespace, drawing from the ``np.random.Generator`` ``rng``.
"""
import math
from functools import partial
from types import SimpleNamespace

import numpy as np

from mmchh.datasets.ceph_meta import (CEPH_LABEL_NAMES, CEPH_LANDMARK_NAMES,
                                      ISBI_IMAGE_SIZE, ISBI_SPACING_MM)
from mmchh.evaluation.functional.cephalometric import ceph_labels_tuple
from .geometry import direction, ellipse, perp, unit, vec

__all__ = [
    'BONY_LANDMARKS', 'FULL_H', 'FULL_W', 'LANDMARK_CONTOURS',
    'SOFT_TISSUE_LANDMARKS', 'ceph_labels', 'clipped_normal', 'place_landmarks'
]

FULL_W, FULL_H = ISBI_IMAGE_SIZE

#: Landmarks drawn on bright cortical bone or tooth enamel. Sella (the
#: middle of an empty fossa) and the soft-tissue points are not among them.
BONY_LANDMARKS = ('nasion', 'orbitale', 'porion', 'subspinale', 'supramentale',
                  'pogonion', 'menton', 'gnathion', 'gonion',
                  'lower_incisal_incision', 'upper_incisal_incision',
                  'posterior_nasal_spine', 'anterior_nasal_spine',
                  'articulare')
#: Soft-tissue profile landmarks: on the edge between skin and air.
SOFT_TISSUE_LANDMARKS = ('upper_lip', 'lower_lip', 'subnasale',
                         'soft_tissue_pogonion')

#: Landmark name -> (placed point, direction of its contour there), both
#: attribute names of the head built by :func:`place_landmarks`. The
#: direction is what makes the point the one its name promises (deepest,
#: most anterior, lowest, ...); at an incisal tip it is the incisal edge.
LANDMARK_CONTOURS = {
    'sella': ('sella', 'hor'),
    'nasion': ('nasion', 'ver'),
    'orbitale': ('orbitale', 'hor'),
    'porion': ('porion', 'hor'),
    'subspinale': ('a_pt', 'ver'),
    'supramentale': ('b_pt', 'ver'),
    'pogonion': ('pogonion', 'ver'),
    'menton': ('menton', 'hor'),
    'gnathion': ('gnathion', 'gn_tan'),
    'gonion': ('gonion', 'go_tan'),
    'lower_incisal_incision': ('lie', 'li_edge'),
    'upper_incisal_incision': ('uie', 'ui_edge'),
    'upper_lip': ('upper_lip', 'ver'),
    'lower_lip': ('lower_lip', 'ver'),
    'subnasale': ('subnasale', 'sn_tan'),
    'soft_tissue_pogonion': ('soft_pog', 'ver'),
    'posterior_nasal_spine': ('pns', 'pal_dir'),
    'anterior_nasal_spine': ('ans', 'pal_dir'),
    'articulare': ('articulare', 'u_r'),
}


def clipped_normal(rng, mean, std, lo, hi):
    """One normal draw ``N(mean, std)`` clipped to ``[lo, hi]``."""
    return float(np.clip(rng.normal(mean, std), lo, hi))


def ceph_labels(landmarks):
    """The 8 ISBI classification labels from landmark positions.

    The challenge's definitions and thresholds live in one place,
    :mod:`mmchh.evaluation.functional.cephalometric` (sources cited
    there); the synthetic label lines come from the same functions that
    classify predictions.

    Args:
        landmarks (np.ndarray): (19, 2) landmarks in full-size pixels
            (``ISBI_SPACING_MM`` mm per pixel).

    Returns:
        tuple[int]: labels in the order of ``CEPH_LABEL_NAMES``.
    """
    labels = ceph_labels_tuple(landmarks, ISBI_SPACING_MM)
    assert len(labels) == len(CEPH_LABEL_NAMES)
    return labels


def place_landmarks(rng):
    """Places one head's points: cranial base, jaws, soft tissue.

    Args:
        rng (np.random.Generator): source of randomness.

    Returns:
        tuple: ``(head, landmarks, tangents)``: ``head`` a SimpleNamespace of
        the placed points and directions (full-size pixels) that
        :func:`~.drawing.draw_head` draws through, ``landmarks`` and
        ``tangents`` (19, 2) arrays in ``CEPH_LANDMARK_NAMES`` order.

    Note:
        The draws are made in a fixed order; changing it changes every
        synthetic image.
    """
    head = SimpleNamespace()
    place_cranial_base(head, rng)
    place_jaws(head, rng)
    place_soft_tissue(head, rng)
    contours = [LANDMARK_CONTOURS[name] for name in CEPH_LANDMARK_NAMES]
    landmarks = np.stack([getattr(head, point) for point, _ in contours])
    tangents = np.stack([unit(getattr(head, tan)) for _, tan in contours])
    return head, landmarks, tangents


def place_cranial_base(head, rng):
    """Places sella, nasion, porion, articulare, basion, orbitale."""
    sample = partial(clipped_normal, rng)
    # --- cranial base: sella, nasion, sella turcica -------------------------
    head.sella = vec(790, 1010) + rng.normal(0, 12, 2)
    sn_len = sample(690, 30, 610, 770)
    sn_tilt = sample(7.0, 2.0, 2.0, 12.0)  # N above S, degrees to FH
    head.nasion = head.sella + sn_len * direction(-sn_tilt)
    s_to_n = unit(head.sella - head.nasion)
    head.sn_ang = math.degrees(math.atan2(s_to_n[1], s_to_n[0]))
    sr = sample(52, 6, 38, 66)  # sella turcica radius, ~5 mm
    sella_ry = sr * sample(0.85, 0.08, 0.65, 1.0)
    head.tuberculum = head.sella + vec(sr * 0.98, -sella_ry * 0.2)
    head.dorsum_top = head.sella + vec(-sr * 1.15, -sella_ry * 1.05)
    # the saddle: a cup from the tuberculum down and round to the dorsum
    head.fossa = ellipse(head.sella, sr, sella_ry, -12, 192, 40)
    head.porion = head.sella + vec(sample(-195, 15, -240, -150),
                                   sample(205, 12, 170, 240))
    head.ear_r = sample(42, 4, 32, 52)
    head.ear_c = head.porion + vec(0, head.ear_r)
    head.articulare = head.sella + vec(sample(-85, 12, -120, -50),
                                       sample(320, 15, 280, 360))
    head.basion = head.articulare + vec(sample(-60, 10, -90, -35),
                                        sample(85, 10, 60, 110))
    head.sphen_low = head.sella + vec(80, 150)
    head.orbitale = head.nasion + vec(sample(-150, 12, -185, -115),
                                      sample(295, 15, 255, 335))
    head.orb_ax, head.orb_ay = sample(125, 8, 100,
                                      150), sample(115, 8, 92, 138)
    head.orb_c = head.orbitale - vec(0, head.orb_ay)
    head.glabella = head.nasion + vec(sample(35, 6, 20, 50),
                                      sample(-80, 8, -100, -60))


def place_jaws(head, rng):
    """Places maxilla and mandible (SNA, SNB, incisors, ramus, chin)."""
    sample = partial(clipped_normal, rng)
    # --- maxilla ------------------------------------------------------------
    sna = sample(81.5, 2.5, 74, 89)
    anb = sample(4.4, 1.9, -2, 10)
    snb = sna - anb
    head.a_pt = head.nasion + sample(560, 25, 490,
                                     630) * direction(head.sn_ang - sna)
    head.ans = head.a_pt + vec(sample(70, 10, 45, 95), sample(
        -88, 8, -110, -65))
    pp_tilt = sample(1.0, 2.5, -6, 7)  # anterior end up, degrees
    head.pal_dir = direction(-pp_tilt)  # posterior -> anterior
    head.pns = head.ans - sample(520, 25, 450, 590) * head.pal_dir
    ui_incl = sample(18, 5, 5, 32)  # forward tilt of upper incisor
    head.ui_axis = direction(90 - ui_incl)  # apex -> tip
    head.ui_apex = head.a_pt + vec(-45, 25)
    head.uie = head.ui_apex + sample(235, 12, 205, 265) * head.ui_axis
    head.ui_lab = perp(head.ui_axis) * -1  # labial (forward) side of the tooth
    head.prosthion = head.uie - 105 * head.ui_axis + 26 * head.ui_lab
    # A must stay behind the alveolar bone below it to be its deepest point
    head.a_pt[0] = min(head.a_pt[0], head.prosthion[0] - 8)

    # --- mandible -----------------------------------------------------------
    head.b_pt = head.nasion + sample(945, 40, 845,
                                     1045) * direction(head.sn_ang - snb)
    # overjet follows the skeletal class, overbite is independent
    overjet = float(np.clip(32 + 7 * (anb - 4.4) + rng.normal(0, 9), -45, 120))
    overbite = sample(25, 12, -20, 60)
    head.lie = head.uie + vec(-overjet, -overbite)
    head.li_apex = head.b_pt + vec(-35, -15)
    head.li_axis = unit(head.lie - head.li_apex)  # apex -> tip
    li_lab = perp(head.li_axis)  # labial (forward) side
    if li_lab[0] < 0:
        li_lab = -li_lab
    head.infradentale = head.lie - 95 * head.li_axis + 22 * li_lab
    # B must stay the deepest point between infradentale and pogonion
    head.b_pt[0] = min(head.b_pt[0], head.infradentale[0] - 20)
    head.b_pt[1] = max(head.b_pt[1], head.infradentale[1] + 60)
    head.pogonion = head.b_pt + vec(sample(38, 10, 18, 60),
                                    sample(135, 12, 105, 165))
    head.menton = head.pogonion + vec(sample(-85, 10, -110, -60),
                                      sample(110, 10, 85, 135))
    head.chin_dx, head.chin_dy = head.pogonion[0] - head.menton[
        0], head.menton[1] - head.pogonion[1]
    c45 = math.sqrt(0.5)
    head.gnathion = head.menton + vec(c45 * head.chin_dx,
                                      -(1 - c45) * head.chin_dy)
    head.gn_tan = unit(vec(head.chin_dx, -head.chin_dy))
    ramus_tilt = sample(3, 4, -8, 14)
    ramus_len = sample(505, 28, 430, 590)
    head.u_r = direction(90 - ramus_tilt)  # down the posterior border
    head.corner = head.articulare + ramus_len * head.u_r
    head.u_b = unit(head.menton -
                    head.corner)  # forward along the lower border
    head.gonion = head.corner + unit(head.u_b - head.u_r) * sample(
        42, 6, 28, 56)
    head.go_tan = unit(head.u_r + head.u_b)
    # at an incisal tip the "contour" is the incisal edge
    head.li_edge, head.ui_edge = perp(head.li_axis), perp(head.ui_axis)


def place_soft_tissue(head, rng):
    """Places the soft-tissue profile ahead of the bones."""
    sample = partial(clipped_normal, rng)
    head.hor, head.ver = vec(1, 0), vec(0, 1)
    # soft tissue profile, ahead of the bones by typical thicknesses
    head.soft_n = head.nasion + vec(sample(65, 8, 45, 85), 10)
    head.subnasale = head.ans + vec(sample(100, 10, 75, 125),
                                    sample(35, 6, 20, 50))
    head.pronasale = head.subnasale + vec(sample(165, 15, 125, 205),
                                          sample(-95, 10, -120, -70))
    head.columella = head.pronasale + vec(-80, 70)
    stomion_y = head.uie[1] - sample(20, 8, 0, 40)
    head.upper_lip = vec(
        max(head.uie[0] + sample(140, 12, 105, 175), head.subnasale[0] + 10),
        0.5 * (head.subnasale[1] + stomion_y) + 20)
    head.lower_lip = vec(
        max(head.lie[0], head.uie[0] - 10) + sample(145, 12, 110, 180),
        stomion_y + sample(95, 10, 70, 120))
    head.stomion = vec(
        min(head.upper_lip[0], head.lower_lip[0]) - sample(35, 6, 20, 50),
        stomion_y)
    head.soft_pog = head.pogonion + vec(sample(120, 12, 90, 150), 10)
    head.soft_b = vec(
        min(head.b_pt[0] + sample(112, 10, 85, 140),
            min(head.lower_lip[0], head.soft_pog[0]) - 15),
        0.5 * (head.lower_lip[1] + head.soft_pog[1]))
    # perp of the (forward, up) chin tangent points out of the chin
    head.soft_gn = head.gnathion + perp(head.gn_tan) * sample(100, 10, 75, 125)
    head.soft_me = head.menton + vec(-20, sample(75, 8, 55, 95))
    head.sn_tan_in, head.sn_tan_out = vec(-1, 0.3), vec(0.1, 1)
    head.sn_tan = unit(unit(head.sn_tan_in) + unit(head.sn_tan_out))
