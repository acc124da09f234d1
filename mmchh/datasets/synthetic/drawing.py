# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Contours of one synthetic head, drawn through its placed landmarks.

Each ``draw_*`` step adds the drawing operations of one region to a
:class:`Canvas`, in full-size ISBI pixel coordinates; contours pass through
the points of :func:`~.anatomy.place_landmarks` with the tangents that make
each landmark the extreme point of what is drawn. Every step is called as
``draw_*(head, rng, canvas)``: ``head`` the placed points (a step may add
points a later one needs, e.g. the occlusal plane), ``rng`` the
``np.random.Generator`` of the sample, ``canvas`` a :class:`Canvas`.
"""
import math
from functools import partial

import numpy as np

from .anatomy import FULL_H, clipped_normal
from .geometry import (direction, ellipse, knot, perp, rounded_box, spline,
                       tooth, unit, vec)

__all__ = ['Canvas', 'draw_head']


class Canvas:
    """Collects drawing operations ``(points, value, thickness)``.

    ``thickness`` None is a filled polygon, a negative ``thickness`` a
    closed outline, a positive one an open polyline; ``value`` is the
    density added (negative: darker).
    """

    def __init__(self):
        self.ops = []

    def fill(self, pts, value):
        """Adds a filled polygon."""
        self.ops.append((pts, value, None))

    def line(self, pts, value, thickness, closed=False):
        """Adds a polyline (``closed``: an outline)."""
        self.ops.append((pts, value, -thickness if closed else thickness))


def draw_head(head, rng):
    """Draws the whole head through the placed points of ``head``.

    Args:
        head (SimpleNamespace): from :func:`~.anatomy.place_landmarks`; the
            drawing steps add the points they share (occlusal plane...).
        rng (np.random.Generator): source of randomness.

    Returns:
        list[tuple]: the drawing operations, in painting order.
    """
    canvas = Canvas()
    for step in (draw_vault_and_profile, draw_cranial_base,
                 draw_spine_and_airway, draw_maxilla, draw_mandible,
                 draw_teeth):
        step(head, rng, canvas)
    return canvas.ops


def draw_vault_and_profile(head, rng, canvas):
    """Skull vault, soft-tissue silhouette, frontal and nasal bones."""
    sample = partial(clipped_normal, rng)
    # skull vault: an ellipse through the glabella, from forehead to occiput
    va, vb = sample(700, 25, 640, 760), sample(760, 25, 700, 820)
    th_g = 4.0
    v_c = head.glabella - vec(va * math.cos(math.radians(th_g)),
                              -vb * math.sin(math.radians(th_g)))
    vault = ellipse(v_c, va, vb, -th_g, -th_g - 211, 90)
    occiput_end = vault[-1]
    opisthion = head.basion + vec(-95, 15)
    skin = sample(60, 6, 45, 75)
    scalp = ellipse(v_c, va + skin, vb + skin, -th_g + 2, -th_g - 214, 90)

    # soft tissue head and neck silhouette (one polygon)
    soft_profile = spline([
        knot(head.glabella + vec(skin, 0), (0.12, 1)),
        knot(head.soft_n, head.ver),
        knot(head.soft_n + 0.55 * (head.pronasale - head.soft_n) + vec(-8, 0)),
        knot(head.pronasale, head.ver),
        knot(head.columella, (-1, 0.4)),
        knot(head.subnasale, head.sn_tan_in, head.sn_tan_out),
        knot(head.upper_lip, head.ver),
        knot(head.stomion, (-1, 0.35), (1, 0.35)),
        knot(head.lower_lip, head.ver),
        knot(head.soft_b, head.ver),
        knot(head.soft_pog, head.ver),
        knot(head.soft_gn, (-0.7, 0.75)),
        knot(head.soft_me, (-1, 0.05)),
        knot(head.soft_me + vec(-330, 95), (-0.6, 0.8)),
        knot(head.soft_me + vec(-380, 600)),
    ])
    neck_back = np.array([[occiput_end[0] + 40, occiput_end[1] + 260],
                          [occiput_end[0] + 170, FULL_H - 300],
                          [occiput_end[0] + 230, FULL_H + 400]])
    canvas.fill(np.concatenate([scalp, neck_back, soft_profile[::-1]]), 48)
    # lips and nose are thinner than the head: a touch more soft tissue in
    # the face so the profile edge stays visible after blur
    canvas.fill(
        np.concatenate([
            soft_profile[4:-2],
            [head.soft_me + vec(-200, -150), head.ans + vec(-30, -90)]
        ]), 8)

    # cranial contents between both sides of the skull
    base_line = np.concatenate(
        [[occiput_end, opisthion, head.basion], [head.dorsum_top],
         head.fossa[::-1],
         [head.sella + vec(330, -40), head.nasion + vec(-45, -40)]])
    canvas.fill(np.concatenate([vault, base_line]), 30)
    # vault: outer and inner tables
    canvas.line(ellipse(v_c, va - 20, vb - 20, -th_g - 1, -th_g - 211, 90), 52,
                40)
    canvas.line(ellipse(v_c, va - 55, vb - 55, -th_g - 4, -th_g - 209, 90), 25,
                14)
    canvas.line(
        np.array([
            occiput_end + vec(10, -10), occiput_end + vec(100, 70), opisthion
        ]), 45, 30)
    # frontal bone down to nasion, then the nasal bone
    nasal_tip = head.nasion + sample(200, 15, 160, 240) * unit(vec(0.45, 1))
    frontal_nasal = spline([
        knot(vault[4], (0.25, 1)),
        knot(head.glabella, (0.02, 1)),
        knot(head.nasion, head.ver),
        knot(head.nasion + 0.5 * (nasal_tip - head.nasion) + vec(-4, 0),
             (0.45, 1)),
        knot(nasal_tip, (0.55, 1)),
    ])
    canvas.line(frontal_nasal - vec(12, 0), 60, 26)
    # frontonasal suture: a faint dark cut just behind the anterior surface
    canvas.line(np.array([head.nasion - vec(14, 2), head.nasion - vec(40, 6)]),
                -18, 4)
    # frontal sinus
    canvas.fill(ellipse(head.glabella + vec(-60, -40), 40, 70), -14)


def draw_cranial_base(head, rng, canvas):
    """Sphenoid, anterior cranial base, orbit, zygoma and ear canal."""
    # sphenoid body and basiocciput around the sella turcica
    canvas.fill(
        np.concatenate([[head.tuberculum], head.fossa,
                        [
                            head.dorsum_top, head.basion, head.articulare,
                            head.sphen_low, head.sella + vec(150, 40)
                        ]]), 26)
    canvas.line(head.fossa, 40, 16)
    canvas.line(
        np.array(
            [head.fossa[-1], head.dorsum_top, head.dorsum_top + vec(18, 10)]),
        40, 16)
    canvas.line(np.array([head.dorsum_top, head.basion]), 35, 18)
    canvas.line(np.array([head.sphen_low, head.articulare, head.basion]), 30,
                14)
    # anterior cranial base (planum, orbital roofs)
    canvas.line(
        spline([
            knot(head.tuberculum),
            knot(head.sella + vec(330, -40)),
            knot(head.nasion + vec(-45, -40))
        ]), 48, 20)
    canvas.line(
        spline([
            knot(head.sella + vec(260, -20)),
            knot(head.orb_c + vec(0, -head.orb_ay - 25)),
            knot(head.nasion + vec(-40, 20))
        ]), 22, 12)

    # orbit rim (orbitale is its lowest point) and the zygoma below it
    canvas.line(ellipse(head.orb_c, head.orb_ax, head.orb_ay, 0, 360, 72),
                42,
                16,
                closed=True)
    canvas.fill(
        spline([
            knot(head.orb_c + vec(-head.orb_ax, 60)),
            knot(head.orbitale + vec(40, 40)),
            knot(head.ans + vec(-60, -40)),
            knot(head.pns + vec(120, -30)),
            knot(head.pns + vec(40, -180))
        ],
               closed=True), 20)
    # pterygomaxillary fissure (teardrop above PNS)
    canvas.line(ellipse(head.pns + vec(15, -150), 22, 110), 22, 8, closed=True)

    # ear canal: dark lumen, bright rim; porion is the top of the rim
    canvas.fill(ellipse(head.ear_c, head.ear_r * 0.85, head.ear_r * 0.85), -22)
    canvas.line(ellipse(head.ear_c, head.ear_r, head.ear_r, 0, 360, 48),
                48,
                12,
                closed=True)


def draw_spine_and_airway(head, rng, canvas):
    """Cervical vertebrae, airway and hyoid."""
    sample = partial(clipped_normal, rng)
    # cervical spine and airway
    vx = head.articulare[0] - sample(190, 15, 150, 230)
    vy = head.basion[1] + 60
    spine_axis = unit(vec(0.12, 1))
    canvas.fill(rounded_box(vec(vx + 10, vy + 40), 55, 55, spine_axis),
                40)  # atlas
    top = vec(vx, vy + 150)
    for k, height in enumerate((300, 150, 150, 150, 150)):
        center = top + spine_axis * height / 2
        box = rounded_box(center, 75, height / 2 - 12, spine_axis)
        canvas.fill(box, 38)
        canvas.line(box, 25, 10, closed=True)
        top = top + spine_axis * (height + 35 if k else height + 40)
    airway = spline([
        knot(head.pns + vec(-70, -40)),
        knot(head.pns + vec(-150, 180)),
        knot(vec(head.articulare[0] - 45, head.menton[1] - 60)),
        knot(vec(head.articulare[0] - 20, FULL_H + 300))
    ])
    canvas.line(airway, -26, sample(80, 10, 55, 105))
    # hyoid
    canvas.fill(ellipse(head.menton + vec(-320, 130), 45, 18), 45)


def draw_maxilla(head, rng, canvas):
    """Palate, maxilla and the occlusal plane the teeth sit on."""
    sample = partial(clipped_normal, rng)
    # maxilla: palate from PNS to ANS, anterior concavity with A point,
    # alveolar process down to the incisor
    head.occl_mid = 0.5 * (head.uie + head.lie)
    occl_tilt = sample(9, 3, 0, 18)  # occlusal plane rises posteriorly
    head.occl_dir = direction(180 + occl_tilt)  # anterior -> posterior
    head.molar = head.occl_mid + head.occl_dir * (0.62 *
                                                  (head.uie[0] - head.pns[0]) /
                                                  -head.occl_dir[0])
    head.up_crest = perp(head.occl_dir)  # points up when occl_dir points back
    if head.up_crest[1] > 0:
        up_crest = -head.up_crest
    tuberosity = head.molar + head.up_crest * 85 + head.occl_dir * 120
    tuberosity[0] = max(tuberosity[0], head.pns[0] + 20)  # PNS stays hindmost
    maxilla = spline([
        knot(head.pns, head.pal_dir),
        knot(head.pns + 0.6 *
             (head.ans - head.pns) - 6 * head.up_crest, head.pal_dir),
        knot(head.ans, head.pal_dir, vec(-0.45, 1)),
        knot(head.a_pt, head.ver),
        knot(head.prosthion, head.ui_axis, -head.ui_lab),
        knot(head.prosthion + vec(-60, -15)),
        knot(head.molar + head.up_crest * 80 - head.occl_dir * 120),
        knot(tuberosity),
        knot(head.pns + vec(30, 70)),
    ],
                     closed=False)
    canvas.fill(maxilla, 55)
    canvas.line(
        np.concatenate([[head.pns],
                        spline([
                            knot(head.pns, head.pal_dir),
                            knot(head.ans, head.pal_dir)
                        ])]), 40, 22)
    canvas.line(
        spline([
            knot(head.ans, vec(-0.45, 1)),
            knot(head.a_pt, head.ver),
            knot(head.prosthion, head.ui_axis)
        ]), 35, 18)


def draw_mandible(head, rng, canvas):
    """Mandible cortex, symphysis and mandibular canal."""
    sample = partial(clipped_normal, rng)
    # mandible: outer cortex from articulare round the angle and chin to
    # infradentale, then back over the alveolus, coronoid and condyle
    rho = sample(130, 12, 100, 160)
    fwd_r = perp(head.u_r)
    if fwd_r[0] < 0:
        fwd_r = -fwd_r
    outer = spline([
        knot(head.articulare, head.u_r),
        knot(head.corner - rho * head.u_r, head.u_r),
        knot(head.gonion, head.go_tan),
        knot(head.corner + rho * head.u_b, head.u_b),
        knot(head.menton, head.hor),
    ])
    chin = ellipse(vec(head.menton[0], head.pogonion[1]), head.chin_dx,
                   head.chin_dy, 90, 0, 24)
    front = spline([
        knot(head.pogonion, -head.ver),
        knot(head.b_pt, -head.ver),
        knot(head.infradentale, head.li_axis),
    ])
    retromolar = head.molar - head.up_crest * 75 + head.occl_dir * 140
    coronoid = vec(retromolar[0] - 40, head.articulare[1] + 70)
    condyle_top = head.articulare - head.u_r * 95 + fwd_r * 20
    inner = spline([
        knot(head.infradentale, head.li_axis),
        knot(head.infradentale + vec(-70, 10)),
        knot(head.molar - head.up_crest * 80 - head.occl_dir * 100),
        knot(retromolar),
        knot(coronoid),
        knot(0.5 * (coronoid + condyle_top) + vec(0, 110)),
        knot(condyle_top + fwd_r * 55 + head.u_r * 70),
        knot(condyle_top + fwd_r * 40 + head.u_r * 10),
        knot(condyle_top),
        knot(head.articulare - head.u_r * 50 - fwd_r * 8, head.u_r),
    ])
    mandible = np.concatenate([outer, chin[1:], front[1:], inner[1:]])
    canvas.fill(mandible, 55)
    canvas.line(np.concatenate([inner[-3:], outer, chin[1:], front[1:]]), 40,
                30)
    # lingual cortex of the symphysis
    canvas.line(
        spline([
            knot(head.infradentale + vec(-75, 15)),
            knot(head.b_pt + vec(-95, 60)),
            knot(head.menton + vec(-70, -25))
        ]), 28, 18)
    # mandibular canal
    canvas.line(
        spline([
            knot(condyle_top + head.u_r * 260 + fwd_r * 60),
            knot(head.corner + rho * head.u_b - head.u_r * 90 + 0 * head.u_b),
            knot(head.b_pt + vec(-170, 40))
        ]), -12, 12)


def draw_teeth(head, rng, canvas):
    """Molars, premolars and the two incisors."""
    # teeth: molars/premolars along the occlusal plane, then incisors
    for k in range(5):
        c = head.molar - head.occl_dir * (k * 95 - 120)
        if (c - head.occl_mid
            ) @ head.occl_dir < 60:  # leave room for the incisors
            continue
        half = 44.0 if k < 2 else 36.0  # molars, then premolars
        for sgn in (1, -1):
            up = head.up_crest * sgn  # from the occlusal plane into the jaw
            for dx in ((-0.45, 0.45) if k < 2 else (0.0, )):
                root_c = c + up * 120 - head.occl_dir * dx * half
                canvas.fill(rounded_box(root_c, 14, 62, up, 0.9), 32)
            canvas.fill(rounded_box(c + up * 40, half, 36, up, 0.5), 62)
    for tip, apex, width in ((head.lie, head.li_apex, 27.0),
                             (head.uie, head.ui_apex, 35.0)):
        shape = tooth(tip, apex, width)
        canvas.fill(shape, 70)
        # enamel: the crown part of the same outline, brighter
        canvas.fill(tooth(tip, tip + 0.4 * (apex - tip), width, 1.0, 8), 40)
        canvas.line(np.array([tip + 0.42 * (apex - tip), apex]), -18, 6)
