# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Overlays of 37 crowded landmarks (a hand radiograph's count) on a
1400 x 2000 image and on a small one: every label on the X-ray, none over
another or the legend (a slow pairwise reference); labels by name or by
number with a name legend; ``show`` draws what it says (pixels checked);
flagged landmarks on top; text and lines grow with the image."""
import numpy as np
import pytest

from mmchh.apis.landmark_result import LandmarkResult
from mmchh.codecs.utils import HeatmapFrame
from mmchh.datasets.ceph_meta import CEPH_LANDMARK_NAMES
from mmchh.visualization.overlay import (LEGEND_LINES, NAME_LABEL_MAX_CHARS,
                                         draw_overlay, overlay_layout)
from mmchh.visualization.overlay_style import (FLAGGED_BGR, OK_BGR,
                                               canvas_geometry)

SIZES = [(1400, 2000), (112, 160)]


def overlap_ref(a, b):
    """Two half-open boxes share an area (the slow, obvious way)."""
    ox = min(float(a[2]), float(b[2])) - max(float(a[0]), float(b[0]))
    oy = min(float(a[3]), float(b[3])) - max(float(a[1]), float(b[1]))
    return ox > 0 and oy > 0


def crowded(width, height, seed=0, names=None):
    """37 landmarks along five fingers and a wrist, every fifth flagged,
    each with a small square heatmap blob and a conformal region."""
    rng = np.random.default_rng(seed)
    hw, hh = max(8, width // 10), max(8, height // 10)
    frame = HeatmapFrame((hw, hh), (2 * hw, 2 * hh), (width / 2, height / 2),
                         (width, height), (0.1, 0.1))
    base = np.array([0.5 * width, 0.85 * height])
    pts = [base + np.array([np.sin(a), -np.cos(a)]) * (0.12 + 0.075 * j)
           * height + rng.normal(0, 0.004 * width, 2)
           for a in np.linspace(-0.9, 0.6, 5) for j in range(7)]
    pts += [base + rng.normal(0, 0.03 * width, 2) for _ in range(2)]
    names = names or [f'F{k // 7 + 1}J{k % 7 + 1}' for k in range(35)] + \
        ['wrist1', 'wrist2']
    landmarks, maps = [], []
    for k, (x, y) in enumerate(pts):
        flagged = k % 5 == 2
        ere = float(rng.gamma(2, 0.6)) + (3.0 if flagged else 0.0)
        u, v = np.clip(frame.input_to_heatmap(frame.image_to_input([x, y])),
                       1, [hw - 2, hh - 2])
        u, v = int(round(u)), int(round(v))
        m = np.zeros((hh, hw), np.float32)
        m[v - 1:v + 2, u - 1:u + 2] = 1 / 9
        maps.append(m)
        ring = frame.heatmap_to_image(np.array(
            [[u - 1.5, v - 1.5], [u + 1.5, v - 1.5], [u + 1.5, v + 1.5],
             [u - 1.5, v + 1.5]])).tolist()
        landmarks.append(dict(
            name=names[k], index=k, x=float(x), y=float(y), ere_px=ere * 10,
            ere_mm=ere, flagged=flagged, valid=True,
            flag_reasons=['ere'] if flagged else [],
            regions=[dict(level=0.9, area_px2=1.0, area_mm2=None,
                          disc_radius_px=1.0, outline=[ring],
                          outline_holes=[False])]))
    return LandmarkResult(
        path=None, image_size=(width, height), landmarks=landmarks,
        calibrated=True, flag_threshold_mm=3.0, frame=frame,
        heatmaps=np.stack(maps))


def grey(width, height):
    ys, xs = np.mgrid[0:height, 0:width]
    bump = np.exp(-((xs - width / 2)**2 + (ys - 0.55 * height)**2) /
                  (2 * (0.3 * width)**2))
    return (60 + 80 * bump).astype(np.uint8)


def is_colour(pixels, colour, tol=40):
    return np.abs(pixels.astype(int) - np.asarray(colour)).max(-1) <= tol


@pytest.mark.parametrize('size', SIZES, ids=['1400x2000', '112x160'])
def test_crowded_labels_on_canvas_apart_and_off_the_legend(size):
    r = crowded(*size)
    layout = overlay_layout((size[1], size[0]), r)
    cw, ch = layout.image_size
    assert (cw, ch) == canvas_geometry(size[1], size[0])[0]
    boxes = [lab.box for lab in layout.labels]
    assert len(boxes) == 37 and all(b is not None for b in boxes)
    for b in boxes:
        assert 0 <= b[0] and b[2] <= cw and 0 <= b[1] and b[3] <= ch, b
        assert not overlap_ref(b, layout.legend_box)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not overlap_ref(boxes[i], boxes[j]), (i, j)
    # the legend band lies under the X-ray, across it
    assert layout.legend_box[:3] == (0, ch, cw)
    # flagged labels placed first, then by decreasing ERE
    flags = [r.landmarks[lab.index]['flagged'] for lab in layout.labels]
    assert flags == sorted(flags, reverse=True)
    eres = [r.landmarks[lab.index]['ere_mm'] for lab in layout.labels
            if not r.landmarks[lab.index]['flagged']]
    assert eres == sorted(eres, reverse=True)
    # a label beside its point, or a leader line from the point to it
    for lab in layout.labels:
        lm = r.landmarks[lab.index]
        x, y = layout.style.canvas_xy([lm['x'], lm['y']])
        if lab.leader is not None:
            assert lab.leader[0] == pytest.approx((x, y))
        else:
            far = max(lab.box[0] - x, x - lab.box[2], lab.box[1] - y,
                      y - lab.box[3])
            assert far <= 8 * layout.style.thick + 3


@pytest.mark.parametrize('size', SIZES, ids=['1400x2000', '112x160'])
def test_names_in_labels_and_text_in_every_box(tmp_path, size):
    r = crowded(*size)
    canvas = draw_overlay(grey(*size), r, str(tmp_path / 'o.png'))
    layout = overlay_layout((size[1], size[0]), r)
    for lab in layout.labels:
        assert lab.text.startswith(r.landmarks[lab.index]['name'] + ': ')
        x0, y0, x1, y1 = (int(round(v)) for v in lab.box)
        # the label's own colour is written inside its box
        assert is_colour(canvas[y0:y1, x0:x1], lab.colour).sum() > 10
    assert layout.legend[0][0].startswith('label = name: ERE in mm')
    # the key and the flags' basis padded to the band's lines
    assert len(layout.legend) == LEGEND_LINES


def test_long_names_become_numbers_with_a_name_legend(tmp_path):
    names = list(CEPH_LANDMARK_NAMES) * 2 + ['sella']
    assert max(map(len, names)) > NAME_LABEL_MAX_CHARS
    r = crowded(1400, 2000, names=names)
    layout = overlay_layout((2000, 1400), r)
    for lab in layout.labels:
        assert lab.text.startswith(f'{lab.index + 1}: ')
    legend = ' '.join(text for text, _ in layout.legend)
    # the names first, then the key
    assert legend.startswith('1 sella   2 nasion')
    assert '11 lower_incisal_incision' in legend
    assert 'label = number: ERE in mm' in legend
    # the band grows to hold the names, under the X-ray
    canvas = draw_overlay(grey(1400, 2000), r, str(tmp_path / 'n.png'))
    assert canvas.shape[0] == layout.legend_box[3]
    assert (canvas[layout.legend_box[1]:].max(-1) > 200).any()
    assert layout.legend_box[3] - layout.legend_box[1] > \
        overlay_layout((2000, 1400), crowded(1400, 2000)).legend_box[3] - \
        layout.legend_box[1]


@pytest.mark.parametrize('size', SIZES, ids=['1400x2000', '112x160'])
def test_show_flagged_draws_only_flagged(tmp_path, size):
    r = crowded(*size)
    img = grey(*size)
    every = draw_overlay(img, r, str(tmp_path / 'all.png'))
    only = draw_overlay(img, r, str(tmp_path / 'flagged.png'),
                        show='flagged')
    ch = overlay_layout((size[1], size[0]), r).image_size[1]
    # green (not flagged) is drawn with 'all' and nowhere with 'flagged'
    assert is_colour(every[:ch], OK_BGR).sum() > 100
    assert not is_colour(only[:ch], OK_BGR).any()
    assert is_colour(only[:ch], FLAGGED_BGR).sum() > 100
    layout = overlay_layout((size[1], size[0]), r, show='flagged')
    assert sorted(layout.drawn) == [k for k in range(37) if k % 5 == 2]
    assert all(r.landmarks[lab.index]['flagged'] for lab in layout.labels)
    assert ('showing the flagged landmarks only (7 of 37)', (255, 255, 255)
            ) in layout.legend


def test_show_regions_and_points_leave_out_contours_and_regions(tmp_path):
    r = crowded(*SIZES[1])
    img = grey(*SIZES[1])
    bare = crowded(*SIZES[1])
    bare.heatmaps = None
    ch = overlay_layout((SIZES[1][1], SIZES[1][0]), r).image_size[1]
    regions = draw_overlay(img, r, str(tmp_path / 'r.png'), show='regions')
    # 'regions' = everything but the contours (on the X-ray; the legend
    # says what is shown)
    np.testing.assert_array_equal(
        regions[:ch], draw_overlay(img, bare, str(tmp_path / 'b.png'))[:ch])
    for lm in bare.landmarks:
        lm['regions'] = None
    # 'points' = crosses and labels only
    np.testing.assert_array_equal(
        draw_overlay(img, r, str(tmp_path / 'p.png'), show='points')[:ch],
        draw_overlay(img, bare, str(tmp_path / 'pb.png'))[:ch])
    assert not (regions[:ch] == draw_overlay(
        img, r, str(tmp_path / 'a.png'))[:ch]).all()
    legend = [text for text, _ in overlay_layout(
        (SIZES[1][1], SIZES[1][0]), r, show='points').legend]
    assert 'showing points and labels only (no contours, no regions)' in \
        legend
    with pytest.raises(ValueError, match='flagged'):
        draw_overlay(img, r, str(tmp_path / 'x.png'), show='some')


def test_flagged_drawn_on_top(tmp_path):
    # two landmarks on the same point: the flagged one's cross wins,
    # whichever comes first in the list
    for flags in ([True, False], [False, True]):
        r = crowded(*SIZES[1])
        r.landmarks = r.landmarks[:2]
        r.heatmaps = None
        for lm, flag in zip(r.landmarks, flags):
            lm.update(x=50.0, y=80.0, flagged=flag, regions=None)
        canvas = draw_overlay(grey(*SIZES[1]), r, str(tmp_path / 't.png'))
        style = overlay_layout((160, 112), r).style
        x, y = np.round(style.canvas_xy([50.0, 80.0])).astype(int)
        assert is_colour(canvas[y, x], FLAGGED_BGR)


def test_text_and_lines_grow_with_the_image():
    big = canvas_geometry(2000, 1400)[1]
    small = canvas_geometry(160, 112)[1]
    assert big.font_scale > small.font_scale
    assert big.thick > small.thick and big.text_thick > small.text_thick
    assert big.text_box_size('F1J1: 0.5')[1] > \
        small.text_box_size('F1J1: 0.5')[1]


def cross_width(tmp_path, size):
    """The cross's arm width measured on the canvas (pixels closer to the
    landmark colour than to the background), and the style's."""
    r = crowded(*size)
    r.landmarks = [dict(r.landmarks[0], regions=None, flagged=False)]
    r.heatmaps = None
    canvas = draw_overlay(np.full((size[1], size[0]), 40, np.uint8), r,
                          str(tmp_path / 'c.png'), show='points')
    style = overlay_layout((size[1], size[0]), r).style
    x, y = np.round(style.canvas_xy([r.landmarks[0]['x'],
                                     r.landmarks[0]['y']])).astype(int)
    column = canvas[y - 10 * style.thick:y + 10 * style.thick,
                    x - 3 * style.thick].astype(int)  # the left arm
    to_colour = np.abs(column - np.asarray(OK_BGR)).sum(-1)
    to_black = np.abs(column).sum(-1)  # the arm's dark outline
    to_grey = np.abs(column - 40).sum(-1)
    return int((to_colour < np.minimum(to_black, to_grey)).sum()), style


def test_cross_width_in_pixels(tmp_path):
    big, big_style = cross_width(tmp_path, SIZES[0])
    small, small_style = cross_width(tmp_path, SIZES[1])
    assert big > small
    assert big_style.thick <= big <= big_style.thick + 2
    assert small_style.thick <= small <= small_style.thick + 2


def test_an_images_overlays_line_up_with_and_without_regions():
    """The band keeps its height when the region line comes and goes, with
    a names legend too."""
    names = list(CEPH_LANDMARK_NAMES) * 2 + ['sella']
    r = crowded(112, 160, names=names)
    with_regions = overlay_layout((160, 112), r).legend_box
    for lm in r.landmarks:
        lm['regions'] = None
    assert overlay_layout((160, 112), r).legend_box == with_regions


def test_band_height_kept_when_the_key_wraps(tmp_path):
    """On a narrow canvas the key and the flags' basis wrap past the
    band's minimum; the region line (or its blank) still keeps the
    height."""
    r = crowded(40, 160)
    r.flag_status = dict(status='used', applied=True, threshold=1.42,
                         low=1.1, high=1.9, num_images=4, num_erroneous=9,
                         unit='mm', reason='')
    r.configuration_status = dict(status='used', reason='', threshold=3.0,
                                  alpha=0.01, num_scores=60)
    with_regions = overlay_layout((160, 40), r)
    assert len(with_regions.legend) > LEGEND_LINES
    for lm in r.landmarks:
        lm['regions'] = None
    assert overlay_layout((160, 40), r).legend_box == with_regions.legend_box
