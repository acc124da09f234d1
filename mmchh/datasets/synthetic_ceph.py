# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""A deterministic synthetic stand-in for the ISBI 2015 cephalometric set.

The real challenge data cannot be downloaded everywhere the demo and the
tests run, so :func:`make_synthetic_ceph` writes a small set in exactly the
same on-disk layout::

    out_root/
        RawImage/TrainingData/001.bmp ...
        RawImage/Test1Data/...
        RawImage/Test2Data/...
        AnnotationsByMD/400_senior/001.txt ...   (``nested=False``: the two
        AnnotationsByMD/400_junior/001.txt ...    folders sit in out_root)

Each image is a miniature lateral head radiograph facing +x (skull vault,
cranial base with sella turcica, orbit, ear canal, nasal bone, maxilla,
mandible, teeth, cervical spine, airway and the soft-tissue profile). The
anatomy is built first as contours in the frame of a full-size ISBI image
(1935 x 2400 px at 0.1 mm/px, Frankfort plane roughly horizontal); the 19
landmarks are knots of those contours, so they sit exactly on what is drawn.
A random pose (rotation, scale, translation) and the resize to the requested
image size are one affine map applied to contours, landmarks and landmark
tangents alike.

Two synthetic annotators ("senior" and "junior") click the true point plus
independent Gaussian noise that is three times larger along the local
contour than across it, sized so that they disagree by about 2 mm on
average, like the real clinicians.

Every image draws from its own generator seeded with ``(seed, number)``,
where ``number`` is the image's file number, so the same arguments always
give byte-identical files, and an image does not change when other splits
grow. Anatomy and annotator clicks are drawn before the pixel noise, so the
same seed at another ``image_size`` gives the same heads, resized.
"""
import math
import numbers
import os
import os.path as osp

import cv2
import numpy as np

from .ceph_meta import (CEPH_LABEL_NAMES, CEPH_LANDMARK_NAMES,
                        ISBI_ANNOTATOR_FOLDERS, ISBI_IMAGE_FOLDERS,
                        ISBI_IMAGE_SIZE, ISBI_SPACING_MM, NUM_CEPH_LANDMARKS)

__all__ = [
    'ANNOTATOR_SIGMA_NORMAL_PX', 'ANNOTATOR_TANGENT_RATIO', 'BONY_LANDMARKS',
    'MIN_IMAGE_SIZE', 'SOFT_TISSUE_LANDMARKS', 'make_synthetic_ceph',
    'synthetic_ceph_sample'
]

#: Annotator noise across the contour, in pixels of a full-size (1935 px
#: wide) image. With :data:`ANNOTATOR_TANGENT_RATIO` = 3 two independent
#: annotators then disagree by about 20 px = 2 mm on average, which is the
#: inter-observer difference reported for the real ISBI 2015 annotations.
ANNOTATOR_SIGMA_NORMAL_PX = 5.3

#: Along-contour noise over across-contour noise: clinicians agree on where
#: an edge is much better than on where along the edge a point lies.
ANNOTATOR_TANGENT_RATIO = 3.0

#: Smallest accepted ``image_size`` (W, H); below this the anatomy would be
#: a few pixels across and the landmarks would collapse onto each other.
MIN_IMAGE_SIZE = (64, 80)

_FULL_W, _FULL_H = ISBI_IMAGE_SIZE
_BACKGROUND = 16.0
_NOISE_STD = 3.0
_IDX = {name: i for i, name in enumerate(CEPH_LANDMARK_NAMES)}

#: Landmarks drawn on bright cortical bone or tooth enamel. Sella (the
#: middle of an empty fossa) and the soft-tissue points are not among them.
BONY_LANDMARKS = ('nasion', 'orbitale', 'porion', 'subspinale',
                  'supramentale', 'pogonion', 'menton', 'gnathion', 'gonion',
                  'lower_incisal_incision', 'upper_incisal_incision',
                  'posterior_nasal_spine', 'anterior_nasal_spine',
                  'articulare')
#: Soft-tissue profile landmarks: on the edge between skin and air.
SOFT_TISSUE_LANDMARKS = ('upper_lip', 'lower_lip', 'subnasale',
                         'soft_tissue_pogonion')


# --------------------------------------------------------------------------
# small geometry helpers
# --------------------------------------------------------------------------
def _v(x, y):
    return np.array([x, y], dtype=np.float64)


def _unit(vec):
    vec = np.asarray(vec, dtype=np.float64)
    return vec / np.linalg.norm(vec)


def _perp(vec):
    """Rotates by +90 degrees in image axes (x right, y down)."""
    return np.array([-vec[1], vec[0]], dtype=np.float64)


def _dir(deg_from_x):
    """Unit vector at an angle measured from +x towards +y (down)."""
    rad = math.radians(deg_from_x)
    return _v(math.cos(rad), math.sin(rad))


def _knot(point, tangent=None, tangent_out=None):
    """A contour knot; ``tangent_out`` differs from ``tangent`` at corners."""
    tin = None if tangent is None else _unit(tangent)
    tout = tin if tangent_out is None else _unit(tangent_out)
    return (np.asarray(point, dtype=np.float64), tin, tout)


def _spline(knots, closed=False, tension=0.8):
    """Cubic Hermite curve through knots.

    Knots with a given tangent keep it exactly (that is what makes a
    landmark knot the extreme point of its contour, e.g. pogonion has a
    vertical tangent); the others get a Catmull-Rom tangent. The tangent
    length is ``tension`` times the chord, which keeps each coordinate
    monotone between knots whose tangents agree with the chord.

    Returns:
        np.ndarray: (M, 2) points along the curve, knots included.
    """
    pts = [k[0] for k in knots]
    n = len(knots)
    tin, tout = [], []
    for i, (p, ti, to) in enumerate(knots):
        if ti is None:
            prev = pts[i - 1] if (i > 0 or closed) else p
            nxt = pts[(i + 1) % n] if (i < n - 1 or closed) else p
            t = _unit(nxt - prev)
            ti = to = t
        tin.append(ti)
        tout.append(to)
    out = []
    pairs = n if closed else n - 1
    for i in range(pairs):
        j = (i + 1) % n
        p0, p1 = pts[i], pts[j]
        chord = float(np.linalg.norm(p1 - p0))
        m0, m1 = tout[i] * chord * tension, tin[j] * chord * tension
        # Fritsch-Carlson limit: a tangent component more than 3x the
        # chord's (same sign) would overshoot past the knot and move the
        # extreme point of the contour off the landmark
        delta = p1 - p0
        lim = 3.0 * np.abs(delta)
        same0, same1 = m0 * delta > 0, m1 * delta > 0
        m0 = np.where(same0, np.clip(m0, -lim, lim), m0)
        m1 = np.where(same1, np.clip(m1, -lim, lim), m1)
        steps = int(min(max(chord / 6.0, 6), 80))
        s = np.arange(steps, dtype=np.float64)[:, None] / steps
        s2, s3 = s * s, s * s * s
        out.append((2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * m0 +
                   (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * m1)
    if not closed:
        out.append(pts[-1][None])
    return np.concatenate(out)


def _ellipse(center, ax, ay, start=0.0, stop=360.0, steps=64):
    """Points on an axis-aligned ellipse, angles in degrees (y down)."""
    t = np.radians(np.linspace(start, stop, steps))
    return np.stack([center[0] + ax * np.cos(t), center[1] + ay * np.sin(t)],
                    axis=1)


def _rounded_box(center, half_w, half_h, axis, radius_frac=0.35, steps=8):
    """A rounded rectangle whose long side follows ``axis`` (unit vector)."""
    r = radius_frac * min(half_w, half_h)
    quadrant, j = np.divmod(np.arange(4 * steps), steps)
    # corner arcs at quadrants 0..3, each from q*90 to q*90 + 90 degrees
    t = np.radians(quadrant * 90.0 + j * (90.0 / (steps - 1)))
    cx = np.where((quadrant == 0) | (quadrant == 3), 1.0, -1.0) * (half_w - r)
    cy = np.where(quadrant < 2, 1.0, -1.0) * (half_h - r)
    lx, ly = cx + r * np.cos(t), cy + r * np.sin(t)
    return (center + lx[:, None] * _perp(axis)[None] +
            ly[:, None] * np.asarray(axis)[None])


def _tooth(tip, apex, max_half_width, crown_frac=0.4, steps=16):
    """Outline of a single-rooted tooth from its incisal tip to its apex.

    The outline is a wedge widening from a sharp incisal tip (so the
    landmark is the outline's extreme point) to the cemento-enamel junction
    at ``crown_frac`` of the length, then a root tapering to the apex.

    Returns:
        np.ndarray: (M, 2) closed outline.
    """
    axis = _unit(apex - tip)
    length = float(np.linalg.norm(apex - tip))
    side = _perp(axis)
    f = np.linspace(0.0, 1.0, steps)
    crown = np.clip(f / crown_frac, 0, 1)**0.6
    root_len = max(1.0 - crown_frac, 1e-6)
    root = 1.0 - 0.8 * np.clip((f - crown_frac) / root_len, 0, 1)**1.6
    hw = max_half_width * np.where(f < crown_frac, crown, root)
    along = tip + (f * length)[:, None] * axis
    one = along + hw[:, None] * side
    other = along - hw[:, None] * side
    return np.concatenate([one, other[::-1][:-1]])


# --------------------------------------------------------------------------
# classification labels
# --------------------------------------------------------------------------
def _ceph_labels(lm):
    """The 8 ISBI classification labels from landmark positions.

    The challenge's definitions and thresholds live in one place,
    :mod:`mmchh.evaluation.functional.cephalometric` (sources cited
    there); the synthetic label lines come from the same functions that
    classify predictions.

    Args:
        lm (np.ndarray): (19, 2) landmarks in full-size pixels
            (``ISBI_SPACING_MM`` mm per pixel).

    Returns:
        tuple[int]: labels in the order of ``CEPH_LABEL_NAMES``.
    """
    from mmchh.evaluation.functional.cephalometric import \
        ceph_labels_tuple
    labels = ceph_labels_tuple(lm, ISBI_SPACING_MM)
    assert len(labels) == len(CEPH_LABEL_NAMES)
    return labels


# --------------------------------------------------------------------------
# anatomy in the full-size frame
# --------------------------------------------------------------------------
def _anatomy(rng):
    """Draws one head: drawing operations, landmarks and their tangents.

    All coordinates are pixels of a full-size ISBI image with the face
    towards +x and y down. Skeletal landmarks are placed first from
    clinically meaningful parameters (SN length and tilt, SNA, SNB, incisor
    inclinations, overjet, ramus and mandibular plane), then contours are
    built through them with tangents that make each landmark the point its
    name promises (deepest, most anterior, lowest, ...).

    Returns:
        tuple: ``(ops, landmarks, tangents)`` with ``ops`` a list of
        ``(points, value, thickness)`` (``thickness`` None: filled polygon;
        a negative ``thickness``: closed outline), ``landmarks`` and
        ``tangents`` (19, 2) arrays.
    """
    nrm = rng.normal

    def clip_n(mean, std, lo, hi):
        return float(np.clip(nrm(mean, std), lo, hi))

    # --- cranial base: sella, nasion, sella turcica -------------------------
    sella = _v(790, 1010) + nrm(0, 12, 2)
    sn_len = clip_n(690, 30, 610, 770)
    sn_tilt = clip_n(7.0, 2.0, 2.0, 12.0)  # N above S, degrees to FH
    nasion = sella + sn_len * _dir(-sn_tilt)
    s_to_n = _unit(sella - nasion)
    sn_ang = math.degrees(math.atan2(s_to_n[1], s_to_n[0]))
    sr = clip_n(52, 6, 38, 66)  # sella turcica radius, ~5 mm
    sella_ry = sr * clip_n(0.85, 0.08, 0.65, 1.0)
    tuberculum = sella + _v(sr * 0.98, -sella_ry * 0.2)
    dorsum_top = sella + _v(-sr * 1.15, -sella_ry * 1.05)
    # the saddle: a cup from the tuberculum down and round to the dorsum
    fossa = _ellipse(sella, sr, sella_ry, -12, 192, 40)
    porion = sella + _v(clip_n(-195, 15, -240, -150), clip_n(205, 12, 170,
                                                               240))
    ear_r = clip_n(42, 4, 32, 52)
    ear_c = porion + _v(0, ear_r)
    articulare = sella + _v(clip_n(-85, 12, -120, -50), clip_n(320, 15, 280,
                                                                  360))
    basion = articulare + _v(clip_n(-60, 10, -90, -35), clip_n(85, 10, 60,
                                                                 110))
    sphen_low = sella + _v(80, 150)
    orbitale = nasion + _v(clip_n(-150, 12, -185, -115),
                           clip_n(295, 15, 255, 335))
    orb_ax, orb_ay = clip_n(125, 8, 100, 150), clip_n(115, 8, 92, 138)
    orb_c = orbitale - _v(0, orb_ay)
    glabella = nasion + _v(clip_n(35, 6, 20, 50), clip_n(-80, 8, -100, -60))

    # --- maxilla ------------------------------------------------------------
    sna = clip_n(81.5, 2.5, 74, 89)
    anb = clip_n(4.4, 1.9, -2, 10)
    snb = sna - anb
    a_pt = nasion + clip_n(560, 25, 490, 630) * _dir(sn_ang - sna)
    ans = a_pt + _v(clip_n(70, 10, 45, 95), clip_n(-88, 8, -110, -65))
    pp_tilt = clip_n(1.0, 2.5, -6, 7)  # anterior end up, degrees
    pal_dir = _dir(-pp_tilt)  # posterior -> anterior
    pns = ans - clip_n(520, 25, 450, 590) * pal_dir
    ui_incl = clip_n(18, 5, 5, 32)  # forward tilt of upper incisor
    ui_axis = _dir(90 - ui_incl)  # apex -> tip
    ui_apex = a_pt + _v(-45, 25)
    uie = ui_apex + clip_n(235, 12, 205, 265) * ui_axis
    ui_lab = _perp(ui_axis) * -1  # labial (forward) side of the tooth
    prosthion = uie - 105 * ui_axis + 26 * ui_lab
    # A must stay behind the alveolar bone below it to be its deepest point
    a_pt[0] = min(a_pt[0], prosthion[0] - 8)

    # --- mandible -----------------------------------------------------------
    b_pt = nasion + clip_n(945, 40, 845, 1045) * _dir(sn_ang - snb)
    # overjet follows the skeletal class, overbite is independent
    overjet = float(np.clip(32 + 7 * (anb - 4.4) + nrm(0, 9), -45, 120))
    overbite = clip_n(25, 12, -20, 60)
    lie = uie + _v(-overjet, -overbite)
    li_apex = b_pt + _v(-35, -15)
    li_axis = _unit(lie - li_apex)  # apex -> tip
    li_lab = _perp(li_axis)  # labial (forward) side
    if li_lab[0] < 0:
        li_lab = -li_lab
    infradentale = lie - 95 * li_axis + 22 * li_lab
    # B must stay the deepest point between infradentale and pogonion
    b_pt[0] = min(b_pt[0], infradentale[0] - 20)
    b_pt[1] = max(b_pt[1], infradentale[1] + 60)
    pogonion = b_pt + _v(clip_n(38, 10, 18, 60), clip_n(135, 12, 105, 165))
    menton = pogonion + _v(clip_n(-85, 10, -110, -60),
                           clip_n(110, 10, 85, 135))
    chin_dx, chin_dy = pogonion[0] - menton[0], menton[1] - pogonion[1]
    c45 = math.sqrt(0.5)
    gnathion = menton + _v(c45 * chin_dx, -(1 - c45) * chin_dy)
    gn_tan = _unit(_v(chin_dx, -chin_dy))
    ramus_tilt = clip_n(3, 4, -8, 14)
    ramus_len = clip_n(505, 28, 430, 590)
    u_r = _dir(90 - ramus_tilt)  # down the posterior border
    corner = articulare + ramus_len * u_r
    u_b = _unit(menton - corner)  # forward along the lower border
    gonion = corner + _unit(u_b - u_r) * clip_n(42, 6, 28, 56)
    go_tan = _unit(u_r + u_b)

    # --- landmark table (position, contour tangent) -------------------------
    hor, ver = _v(1, 0), _v(0, 1)
    # soft tissue profile, ahead of the bones by typical thicknesses
    soft_n = nasion + _v(clip_n(65, 8, 45, 85), 10)
    subnasale = ans + _v(clip_n(100, 10, 75, 125), clip_n(35, 6, 20, 50))
    pronasale = subnasale + _v(clip_n(165, 15, 125, 205),
                               clip_n(-95, 10, -120, -70))
    columella = pronasale + _v(-80, 70)
    stomion_y = uie[1] - clip_n(20, 8, 0, 40)
    upper_lip = _v(
        max(uie[0] + clip_n(140, 12, 105, 175), subnasale[0] + 10),
        0.5 * (subnasale[1] + stomion_y) + 20)
    lower_lip = _v(max(lie[0], uie[0] - 10) + clip_n(145, 12, 110, 180),
                   stomion_y + clip_n(95, 10, 70, 120))
    stomion = _v(min(upper_lip[0], lower_lip[0]) - clip_n(35, 6, 20, 50),
                 stomion_y)
    soft_pog = pogonion + _v(clip_n(120, 12, 90, 150), 10)
    soft_b = _v(min(b_pt[0] + clip_n(112, 10, 85, 140),
                    min(lower_lip[0], soft_pog[0]) - 15),
                0.5 * (lower_lip[1] + soft_pog[1]))
    # perp of the (forward, up) chin tangent points out of the chin
    soft_gn = gnathion + _perp(gn_tan) * clip_n(100, 10, 75, 125)
    soft_me = menton + _v(-20, clip_n(75, 8, 55, 95))
    sn_tan_in, sn_tan_out = _v(-1, 0.3), _v(0.1, 1)
    sn_tan = _unit(_unit(sn_tan_in) + _unit(sn_tan_out))

    lm = {
        'sella': (sella, hor),
        'nasion': (nasion, ver),
        'orbitale': (orbitale, hor),
        'porion': (porion, hor),
        'subspinale': (a_pt, ver),
        'supramentale': (b_pt, ver),
        'pogonion': (pogonion, ver),
        'menton': (menton, hor),
        'gnathion': (gnathion, gn_tan),
        'gonion': (gonion, go_tan),
        # at an incisal tip the "contour" is the incisal edge
        'lower_incisal_incision': (lie, _perp(li_axis)),
        'upper_incisal_incision': (uie, _perp(ui_axis)),
        'upper_lip': (upper_lip, ver),
        'lower_lip': (lower_lip, ver),
        'subnasale': (subnasale, sn_tan),
        'soft_tissue_pogonion': (soft_pog, ver),
        'posterior_nasal_spine': (pns, pal_dir),
        'anterior_nasal_spine': (ans, pal_dir),
        'articulare': (articulare, u_r),
    }
    landmarks = np.stack([lm[name][0] for name in CEPH_LANDMARK_NAMES])
    tangents = np.stack([_unit(lm[name][1]) for name in CEPH_LANDMARK_NAMES])

    # --- drawing operations --------------------------------------------------
    ops = []

    def fill(pts, value):
        ops.append((pts, value, None))

    def line(pts, value, thickness, closed=False):
        ops.append((pts, value, -thickness if closed else thickness))

    # skull vault: an ellipse through the glabella, from forehead to occiput
    va, vb = clip_n(700, 25, 640, 760), clip_n(760, 25, 700, 820)
    th_g = 4.0
    v_c = glabella - _v(va * math.cos(math.radians(th_g)),
                        -vb * math.sin(math.radians(th_g)))
    vault = _ellipse(v_c, va, vb, -th_g, -th_g - 211, 90)
    occiput_end = vault[-1]
    opisthion = basion + _v(-95, 15)
    skin = clip_n(60, 6, 45, 75)
    scalp = _ellipse(v_c, va + skin, vb + skin, -th_g + 2, -th_g - 214, 90)

    # soft tissue head and neck silhouette (one polygon)
    soft_profile = _spline([
        _knot(glabella + _v(skin, 0), (0.12, 1)),
        _knot(soft_n, ver),
        _knot(soft_n + 0.55 * (pronasale - soft_n) + _v(-8, 0)),
        _knot(pronasale, ver),
        _knot(columella, (-1, 0.4)),
        _knot(subnasale, sn_tan_in, sn_tan_out),
        _knot(upper_lip, ver),
        _knot(stomion, (-1, 0.35), (1, 0.35)),
        _knot(lower_lip, ver),
        _knot(soft_b, ver),
        _knot(soft_pog, ver),
        _knot(soft_gn, (-0.7, 0.75)),
        _knot(soft_me, (-1, 0.05)),
        _knot(soft_me + _v(-330, 95), (-0.6, 0.8)),
        _knot(soft_me + _v(-380, 600)),
    ])
    neck_back = np.array([[occiput_end[0] + 40, occiput_end[1] + 260],
                          [occiput_end[0] + 170, _FULL_H - 300],
                          [occiput_end[0] + 230, _FULL_H + 400]])
    fill(np.concatenate([scalp, neck_back, soft_profile[::-1]]), 48)
    # lips and nose are thinner than the head: a touch more soft tissue in
    # the face so the profile edge stays visible after blur
    fill(
        np.concatenate([
            soft_profile[4:-2], [soft_me + _v(-200, -150),
                                 ans + _v(-30, -90)]
        ]), 8)

    # cranial contents between both sides of the skull
    base_line = np.concatenate([[occiput_end, opisthion, basion],
                                [dorsum_top], fossa[::-1],
                                [sella + _v(330, -40),
                                 nasion + _v(-45, -40)]])
    fill(np.concatenate([vault, base_line]), 30)
    # vault: outer and inner tables
    line(_ellipse(v_c, va - 20, vb - 20, -th_g - 1, -th_g - 211, 90), 52, 40)
    line(_ellipse(v_c, va - 55, vb - 55, -th_g - 4, -th_g - 209, 90), 25, 14)
    line(
        np.array([occiput_end + _v(10, -10), occiput_end + _v(100, 70),
                  opisthion]), 45, 30)
    # frontal bone down to nasion, then the nasal bone
    nasal_tip = nasion + clip_n(200, 15, 160, 240) * _unit(_v(0.45, 1))
    frontal_nasal = _spline([
        _knot(vault[4], (0.25, 1)),
        _knot(glabella, (0.02, 1)),
        _knot(nasion, ver),
        _knot(nasion + 0.5 * (nasal_tip - nasion) + _v(-4, 0), (0.45, 1)),
        _knot(nasal_tip, (0.55, 1)),
    ])
    line(frontal_nasal - _v(12, 0), 60, 26)
    # frontonasal suture: a faint dark cut just behind the anterior surface
    line(np.array([nasion - _v(14, 2), nasion - _v(40, 6)]), -18, 4)
    # frontal sinus
    fill(_ellipse(glabella + _v(-60, -40), 40, 70), -14)

    # sphenoid body and basiocciput around the sella turcica
    fill(
        np.concatenate([[tuberculum], fossa, [dorsum_top, basion, articulare,
                                              sphen_low,
                                              sella + _v(150, 40)]]), 26)
    line(fossa, 40, 16)
    line(np.array([fossa[-1], dorsum_top, dorsum_top + _v(18, 10)]), 40, 16)
    line(np.array([dorsum_top, basion]), 35, 18)
    line(np.array([sphen_low, articulare, basion]), 30, 14)
    # anterior cranial base (planum, orbital roofs)
    line(
        _spline([
            _knot(tuberculum),
            _knot(sella + _v(330, -40)),
            _knot(nasion + _v(-45, -40))
        ]), 48, 20)
    line(
        _spline([
            _knot(sella + _v(260, -20)),
            _knot(orb_c + _v(0, -orb_ay - 25)),
            _knot(nasion + _v(-40, 20))
        ]), 22, 12)

    # orbit rim (orbitale is its lowest point) and the zygoma below it
    line(_ellipse(orb_c, orb_ax, orb_ay, 0, 360, 72), 42, 16, closed=True)
    fill(
        _spline([
            _knot(orb_c + _v(-orb_ax, 60)),
            _knot(orbitale + _v(40, 40)),
            _knot(ans + _v(-60, -40)),
            _knot(pns + _v(120, -30)),
            _knot(pns + _v(40, -180))
        ], closed=True), 20)
    # pterygomaxillary fissure (teardrop above PNS)
    line(_ellipse(pns + _v(15, -150), 22, 110), 22, 8, closed=True)

    # ear canal: dark lumen, bright rim; porion is the top of the rim
    fill(_ellipse(ear_c, ear_r * 0.85, ear_r * 0.85), -22)
    line(_ellipse(ear_c, ear_r, ear_r, 0, 360, 48), 48, 12, closed=True)

    # cervical spine and airway
    vx = articulare[0] - clip_n(190, 15, 150, 230)
    vy = basion[1] + 60
    spine_axis = _unit(_v(0.12, 1))
    fill(_rounded_box(_v(vx + 10, vy + 40), 55, 55, spine_axis), 40)  # atlas
    top = _v(vx, vy + 150)
    for k, height in enumerate((300, 150, 150, 150, 150)):
        center = top + spine_axis * height / 2
        box = _rounded_box(center, 75, height / 2 - 12, spine_axis)
        fill(box, 38)
        line(box, 25, 10, closed=True)
        top = top + spine_axis * (height + 35 if k else height + 40)
    airway = _spline([
        _knot(pns + _v(-70, -40)),
        _knot(pns + _v(-150, 180)),
        _knot(_v(articulare[0] - 45, menton[1] - 60)),
        _knot(_v(articulare[0] - 20, _FULL_H + 300))
    ])
    line(airway, -26, clip_n(80, 10, 55, 105))
    # hyoid
    fill(_ellipse(menton + _v(-320, 130), 45, 18), 45)

    # maxilla: palate from PNS to ANS, anterior concavity with A point,
    # alveolar process down to the incisor
    occl_mid = 0.5 * (uie + lie)
    occl_tilt = clip_n(9, 3, 0, 18)  # occlusal plane rises posteriorly
    occl_dir = _dir(180 + occl_tilt)  # anterior -> posterior
    molar = occl_mid + occl_dir * (0.62 * (uie[0] - pns[0]) / -occl_dir[0])
    up_crest = _perp(occl_dir)  # points up when occl_dir points back
    if up_crest[1] > 0:
        up_crest = -up_crest
    tuberosity = molar + up_crest * 85 + occl_dir * 120
    tuberosity[0] = max(tuberosity[0], pns[0] + 20)  # PNS stays hindmost
    maxilla = _spline([
        _knot(pns, pal_dir),
        _knot(pns + 0.6 * (ans - pns) - 6 * up_crest, pal_dir),
        _knot(ans, pal_dir, _v(-0.45, 1)),
        _knot(a_pt, ver),
        _knot(prosthion, ui_axis, -ui_lab),
        _knot(prosthion + _v(-60, -15)),
        _knot(molar + up_crest * 80 - occl_dir * 120),
        _knot(tuberosity),
        _knot(pns + _v(30, 70)),
    ], closed=False)
    fill(maxilla, 55)
    line(np.concatenate([[pns], _spline([_knot(pns, pal_dir),
                                         _knot(ans, pal_dir)])]), 40, 22)
    line(_spline([_knot(ans, _v(-0.45, 1)), _knot(a_pt, ver),
                  _knot(prosthion, ui_axis)]), 35, 18)

    # mandible: outer cortex from articulare round the angle and chin to
    # infradentale, then back over the alveolus, coronoid and condyle
    rho = clip_n(130, 12, 100, 160)
    fwd_r = _perp(u_r)
    if fwd_r[0] < 0:
        fwd_r = -fwd_r
    outer = _spline([
        _knot(articulare, u_r),
        _knot(corner - rho * u_r, u_r),
        _knot(gonion, go_tan),
        _knot(corner + rho * u_b, u_b),
        _knot(menton, hor),
    ])
    chin = _ellipse(_v(menton[0], pogonion[1]), chin_dx, chin_dy, 90, 0, 24)
    front = _spline([
        _knot(pogonion, -ver),
        _knot(b_pt, -ver),
        _knot(infradentale, li_axis),
    ])
    retromolar = molar - up_crest * 75 + occl_dir * 140
    coronoid = _v(retromolar[0] - 40, articulare[1] + 70)
    condyle_top = articulare - u_r * 95 + fwd_r * 20
    inner = _spline([
        _knot(infradentale, li_axis),
        _knot(infradentale + _v(-70, 10)),
        _knot(molar - up_crest * 80 - occl_dir * 100),
        _knot(retromolar),
        _knot(coronoid),
        _knot(0.5 * (coronoid + condyle_top) + _v(0, 110)),
        _knot(condyle_top + fwd_r * 55 + u_r * 70),
        _knot(condyle_top + fwd_r * 40 + u_r * 10),
        _knot(condyle_top),
        _knot(articulare - u_r * 50 - fwd_r * 8, u_r),
    ])
    mandible = np.concatenate([outer, chin[1:], front[1:], inner[1:]])
    fill(mandible, 55)
    line(np.concatenate([inner[-3:], outer, chin[1:], front[1:]]), 40, 30)
    # lingual cortex of the symphysis
    line(
        _spline([
            _knot(infradentale + _v(-75, 15)),
            _knot(b_pt + _v(-95, 60)),
            _knot(menton + _v(-70, -25))
        ]), 28, 18)
    # mandibular canal
    line(
        _spline([
            _knot(condyle_top + u_r * 260 + fwd_r * 60),
            _knot(corner + rho * u_b - u_r * 90 + 0 * u_b),
            _knot(b_pt + _v(-170, 40))
        ]), -12, 12)

    # teeth: molars/premolars along the occlusal plane, then incisors
    for k in range(5):
        c = molar - occl_dir * (k * 95 - 120)
        if (c - occl_mid) @ occl_dir < 60:  # leave room for the incisors
            continue
        half = 44.0 if k < 2 else 36.0  # molars, then premolars
        for sgn in (1, -1):
            up = up_crest * sgn  # from the occlusal plane into the jaw
            for dx in ((-0.45, 0.45) if k < 2 else (0.0,)):
                root_c = c + up * 120 - occl_dir * dx * half
                fill(_rounded_box(root_c, 14, 62, up, 0.9), 32)
            fill(_rounded_box(c + up * 40, half, 36, up, 0.5), 62)
    for tip, apex, width in ((lie, li_apex, 27.0), (uie, ui_apex, 35.0)):
        shape = _tooth(tip, apex, width)
        fill(shape, 70)
        # enamel: the crown part of the same outline, brighter
        fill(_tooth(tip, tip + 0.4 * (apex - tip), width, 1.0, 8), 40)
        line(np.array([tip + 0.42 * (apex - tip), apex]), -18, 6)

    return ops, landmarks, tangents


# --------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------
def _pose_matrix(rng, image_size):
    """Random similarity pose composed with the resize to ``image_size``.

    Returns:
        tuple: (2x2 linear part, translation) mapping full-size pixel
        coordinates to pixel coordinates of the output image.
    """
    w, h = image_size
    angle = math.radians(float(np.clip(rng.normal(0, 2.5), -6, 6)))
    # mean 1.05: the heads then span x ~ 500-1820, y ~ 850-2300 in a
    # full-size image, like the real ISBI landmarks
    scale = float(np.clip(rng.normal(1.05, 0.035), 0.96, 1.14))
    shift = np.clip(rng.normal(0, 30, 2), -80, 80)
    c, s = math.cos(angle), math.sin(angle)
    rot = scale * np.array([[c, -s], [s, c]])
    centre = _v((_FULL_W - 1) / 2, (_FULL_H - 1) / 2)
    # pixel centres: full-size pixel i covers [i - .5, i + .5]
    resize = np.diag([w / _FULL_W, h / _FULL_H])
    lin = resize @ rot
    off = resize @ (centre + shift - rot @ centre + 0.5) - 0.5
    return lin, off


def _render(ops, lin, off, rng, image_size):
    """Draws the ops (full-size coordinates) into an 8-bit image."""
    w, h = image_size
    px = math.sqrt(abs(np.linalg.det(lin)))  # output px per full-size px
    acc = np.full((h, w), _BACKGROUND, np.float32)
    for pts, value, thickness in ops:
        p = pts @ lin.T + off
        if thickness is None:
            pad = 2.0
        else:
            width = max(1, int(round(abs(thickness) * px)))
            pad = width / 2.0 + 2.0
        x0 = max(int(math.floor(p[:, 0].min() - pad)), 0)
        y0 = max(int(math.floor(p[:, 1].min() - pad)), 0)
        x1 = min(int(math.ceil(p[:, 0].max() + pad)) + 1, w)
        y1 = min(int(math.ceil(p[:, 1].max() + pad)) + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue  # entirely outside the image
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        # 4 fractional bits: sub-pixel placement keeps thin structures
        # where the landmarks say they are, even at 160 x 200
        ip = np.round((p - (x0, y0)) * 16).astype(np.int32)
        if thickness is None:
            cv2.fillPoly(mask, [ip], 255, cv2.LINE_AA, shift=4)
        else:
            cv2.polylines(mask, [ip], thickness < 0, 255, width, cv2.LINE_AA,
                          shift=4)
        acc[y0:y1, x0:x1] += mask.astype(np.float32) * np.float32(
            value / 255.0)
    # mottled tissue density: a coarse random field (fixed grid, so it is
    # the same at every image size) scaled by how much tissue is there
    field = cv2.resize(
        rng.normal(0, 1, (25, 20)).astype(np.float32), (w, h),
        interpolation=cv2.INTER_CUBIC)
    acc += field * np.float32(6.0 / 100.0) * (acc - np.float32(_BACKGROUND))
    # film response: slight compression of the bright end
    acc = 255.0 * (1.0 - np.exp(-acc / 190.0)) / (1.0 - math.exp(-255 / 190))
    sigma = max(0.5, 2.0 * px)
    acc = cv2.GaussianBlur(acc, (0, 0), sigma)
    # uneven exposure, then grain after the blur so it stays sharp
    gx, gy = rng.normal(0, 0.05, 2)
    ramp_x = (np.arange(w, dtype=np.float32) / w - 0.5) * np.float32(gx)
    ramp_y = (np.arange(h, dtype=np.float32) / h - 0.5) * np.float32(gy)
    acc *= 1.0 + ramp_y[:, None] + ramp_x[None, :]
    acc += rng.standard_normal((h, w), dtype=np.float32) * np.float32(
        _NOISE_STD)
    return np.clip(np.rint(acc), 0, 255).astype(np.uint8)


def synthetic_ceph_sample(rng, image_size=(320, 400)):
    """Generates one synthetic lateral ceph with its annotations.

    Draws, in this order, the anatomy, the pose, the two annotators' clicks
    and the pixel noise from ``rng``, so everything but the pixels is
    independent of ``image_size``.

    Args:
        rng (np.random.Generator): source of randomness.
        image_size (tuple[int, int]): output (W, H) in pixels.

    Returns:
        dict: with keys

        - ``image`` (np.ndarray): (H, W) uint8 grey image.
        - ``landmarks`` (np.ndarray): (19, 2) float true positions (x, y) in
          output pixels, in ``CEPH_LANDMARK_NAMES`` order.
        - ``tangents`` (np.ndarray): (19, 2) unit vectors along the local
          contour at each landmark, in output pixel axes.
        - ``annotations`` (dict): ``'senior'`` and ``'junior'`` (19, 2)
          int64 clicked positions, inside the image.
        - ``labels`` (tuple[int]): the 8 classification labels in
          ``CEPH_LABEL_NAMES`` order.
    """
    w, h = _check_image_size(image_size)
    ops, lm_full, tan_full = _anatomy(rng)
    labels = _ceph_labels(lm_full)
    # a pose that keeps every landmark well inside (nearly always the first)
    for _ in range(20):
        lin, off = _pose_matrix(rng, (w, h))
        lm = lm_full @ lin.T + off
        if (lm.min(0) > (0.03 * w, 0.03 * h)).all() and (
                lm.max(0) < (0.97 * w, 0.97 * h)).all():
            break
    tangents = tan_full @ lin.T
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)

    # annotators click in the full-size frame: noise along/across the
    # contour, then the same pose and resize as the anatomy
    normal_full = np.stack([_perp(t) for t in tan_full])
    annotations = {}
    for _, who in ISBI_ANNOTATOR_FOLDERS:
        z = rng.standard_normal((NUM_CEPH_LANDMARKS, 2))
        noisy = (lm_full + tan_full * z[:, :1] *
                 (ANNOTATOR_SIGMA_NORMAL_PX * ANNOTATOR_TANGENT_RATIO) +
                 normal_full * z[:, 1:] * ANNOTATOR_SIGMA_NORMAL_PX)
        pts = np.rint(noisy @ lin.T + off).astype(np.int64)
        pts[:, 0] = np.clip(pts[:, 0], 0, w - 1)
        pts[:, 1] = np.clip(pts[:, 1], 0, h - 1)
        annotations[who] = pts

    image = _render(ops, lin, off, rng, (w, h))
    return dict(
        image=image,
        landmarks=lm,
        tangents=tangents,
        annotations=annotations,
        labels=labels)


# --------------------------------------------------------------------------
# writing the data set
# --------------------------------------------------------------------------
def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_image_size(image_size):
    try:
        w, h = image_size
    except (TypeError, ValueError):
        raise ValueError('image_size must be a (width, height) pair, got '
                         f'{image_size!r}') from None
    if not (_is_int(w) and _is_int(h)):
        raise ValueError('image_size must hold two integers, got '
                         f'{image_size!r}')
    if w < MIN_IMAGE_SIZE[0] or h < MIN_IMAGE_SIZE[1]:
        raise ValueError(
            f'image_size (W, H) must be at least {MIN_IMAGE_SIZE}, got '
            f'{tuple(image_size)}')
    return int(w), int(h)


def _write_atomic(path, write):
    """Writes through a temporary sibling, then renames onto ``path``.

    ``write(tmp_path)`` produces the file; a crash before the rename leaves
    at most a hidden temporary file, never a partial file under ``path``.
    The temporary name keeps the extension because cv2.imwrite picks the
    format from it.
    """
    folder, name = osp.split(path)
    tmp = osp.join(folder, f'.{name}.{os.getpid()}.tmp{osp.splitext(name)[1]}')
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def _write_bmp(path, image):

    def write(tmp):
        if not cv2.imwrite(tmp, image):
            raise OSError(f'cv2.imwrite could not write {path}')

    _write_atomic(path, write)


def _write_txt(path, points, labels):
    lines = [f'{int(x)},{int(y)}' for x, y in points]
    lines += [str(int(v)) for v in labels]
    # CRLF, as in the original challenge release
    data = ''.join(line + '\r\n' for line in lines).encode('ascii')

    def write(tmp):
        with open(tmp, 'wb') as f:
            f.write(data)

    _write_atomic(path, write)


def make_synthetic_ceph(out_root,
                        num_train=10,
                        num_test1=4,
                        num_test2=4,
                        image_size=(320, 400),
                        seed=0,
                        nested=True,
                        progress=True):
    """Writes a synthetic data set in the ISBI 2015 on-disk layout.

    Images are numbered consecutively across the splits, as in the real
    release (train ``001..num_train``, then Test1, then Test2); names have
    3 digits unless there are more than 999 images. Existing files with the
    same names are replaced; other files under ``out_root`` are left alone.

    Args:
        out_root (str): folder to write into (created if missing).
        num_train (int): images in ``RawImage/TrainingData``.
        num_test1 (int): images in ``RawImage/Test1Data``.
        num_test2 (int): images in ``RawImage/Test2Data``.
        image_size (tuple[int, int]): (W, H) of every image; the original
            is ``ISBI_IMAGE_SIZE`` = (1935, 2400).
        seed (int): non-negative seed; image ``k`` is drawn from
            ``np.random.default_rng([seed, k])``.
        nested (bool): put the annotator folders under ``AnnotationsByMD/``
            (True) or directly under ``out_root`` (False).
        progress (bool): print one line per split.

    Returns:
        dict: ``out_root``, ``image_size`` (W, H), ``spacing_mm`` (x, y:
        the anatomy is life-size at 0.1 mm/px in a 1935 x 2400 image, so
        smaller images have coarser pixels), ``seed``, ``nested``,
        ``num_images`` (total), ``splits`` (split name -> count),
        ``image_dirs`` (split name -> folder) and ``annotation_dirs``
        (annotator folder name -> folder).

    Raises:
        ValueError: on a non-positive count, a too small or malformed
            ``image_size`` or a negative seed.
    """
    counts = (num_train, num_test1, num_test2)
    for arg, value in zip(('num_train', 'num_test1', 'num_test2'), counts):
        if not _is_int(value) or value < 1:
            raise ValueError(f'{arg} must be a positive integer, got '
                             f'{value!r}')
    w, h = _check_image_size(image_size)
    if not _is_int(seed) or seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed!r}')
    out_root = os.fspath(out_root)

    total = sum(counts)
    digits = max(3, len(str(total)))
    image_dirs = {
        split: osp.join(out_root, 'RawImage', folder)
        for folder, split in ISBI_IMAGE_FOLDERS
    }
    ann_base = osp.join(out_root, 'AnnotationsByMD') if nested else out_root
    ann_dirs = {
        folder: osp.join(ann_base, folder)
        for folder, _ in ISBI_ANNOTATOR_FOLDERS
    }
    for folder in list(image_dirs.values()) + list(ann_dirs.values()):
        os.makedirs(folder, exist_ok=True)

    number = 0
    splits = {}
    for (_, split), count in zip(ISBI_IMAGE_FOLDERS, counts):
        for _ in range(count):
            number += 1
            name = f'{number:0{digits}d}'
            sample = synthetic_ceph_sample(
                np.random.default_rng([int(seed), number]), (w, h))
            for folder, who in ISBI_ANNOTATOR_FOLDERS:
                _write_txt(
                    osp.join(ann_dirs[folder], name + '.txt'),
                    sample['annotations'][who], sample['labels'])
            # the image last: a complete .bmp implies complete annotations
            _write_bmp(
                osp.join(image_dirs[split], name + '.bmp'), sample['image'])
        splits[split] = count
        if progress:
            noun = 'image' if count == 1 else 'images'
            print(f'make_synthetic_ceph: wrote {count} {split} {noun} '
                  f'({w}x{h}) to {image_dirs[split]}')
    return dict(
        out_root=out_root,
        image_size=(w, h),
        spacing_mm=(ISBI_SPACING_MM * _FULL_W / w,
                    ISBI_SPACING_MM * _FULL_H / h),
        seed=int(seed),
        nested=bool(nested),
        num_images=total,
        splits=splits,
        image_dirs=image_dirs,
        annotation_dirs=ann_dirs)
