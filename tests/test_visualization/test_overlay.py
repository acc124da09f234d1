# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""draw_overlay on hand-made results: contours where the frame puts the
heatmap, crosses in the flag colour, the invalid line, an atomic PNG."""
import os

import cv2
import numpy as np
import pytest

from mmchh.apis.landmark_result import LandmarkResult
from mmchh.codecs.utils import HeatmapFrame
from mmchh.visualization.overlay import REGION_ALPHA, draw_overlay

FLAGGED, OK, UNKNOWN = (0, 100, 255), (60, 200, 60), (230, 200, 40)
W, H = 400, 300  # image; heatmap 20 x 15 on an input of 40 x 30


def blob(u, v, sigma=1.0):
    ys, xs = np.mgrid[0:15, 0:20]
    m = np.exp(-((xs - u)**2 + (ys - v)**2) / (2 * sigma**2))
    return (m / m.sum()).astype(np.float32)


def result(flags, valid=None, with_maps=True):
    frame = HeatmapFrame((20, 15), (40, 30), (W / 2, H / 2), (W, H),
                         (0.1, 0.1))
    centres = [(4, 3), (15, 10), (10, 7)][:len(flags)]
    valid = valid or [True] * len(flags)
    landmarks = []
    for k, ((u, v), flag, ok) in enumerate(zip(centres, flags, valid)):
        x, y = frame.heatmap_to_image([u, v])
        landmarks.append(dict(
            name=f'lm{k}', index=k, x=float(x) if ok else None,
            y=float(y) if ok else None, ere_px=2.0, ere_mm=0.2,
            flagged=flag if ok else True, valid=ok))
    maps = np.stack([blob(u, v) for u, v in centres])
    return LandmarkResult(
        path=None, image_size=(W, H), landmarks=landmarks, calibrated=True,
        flag_threshold_mm=1.0, frame=frame,
        heatmaps=maps if with_maps else None)


def is_colour(pixels, colour):
    """Pixels (..., 3) drawn in ``colour`` (anti-aliasing blends lines a
    little with the grey background)."""
    diff = np.abs(pixels.astype(int) - np.asarray(colour)).max(-1)
    return diff <= 40


def colour_near(canvas, xy, colour, radius):
    x, y = int(round(xy[0])), int(round(xy[1]))
    patch = canvas[max(0, y - radius):y + radius + 1,
                   max(0, x - radius):x + radius + 1]
    return bool(is_colour(patch, colour).any())


@pytest.mark.parametrize('flag,colour', [(True, FLAGGED), (False, OK),
                                         (None, UNKNOWN)],
                         ids=['flagged', 'ok', 'cannot_judge'])
def test_cross_and_contours_where_the_frame_puts_them(tmp_path, flag,
                                                      colour):
    r = result([flag])
    out = str(tmp_path / 'o.png')
    canvas = draw_overlay(np.full((H, W), 40, np.uint8), r, out)
    zoom = canvas.shape[1] / W  # small images are magnified
    lm = r.landmarks[0]
    centre = (lm['x'] * zoom, lm['y'] * zoom)
    assert colour_near(canvas, centre, colour, 1)
    # a heatmap pixel is 20 image pixels; the 5 % contour of a sigma-1
    # blob runs through the pixels 2 heatmap pixels from its centre: 40
    # image pixels left of the cross, where a result without maps has
    # nothing coloured ...
    bare = draw_overlay(np.full((H, W), 40, np.uint8),
                        result([flag], with_maps=False),
                        str(tmp_path / 'bare.png'))
    ring = ((lm['x'] - 40) * zoom, lm['y'] * zoom)
    assert not colour_near(bare, ring, colour, 6)
    # ... but the contour does, in image pixels through the frame
    assert colour_near(canvas, ring, colour, 6)
    assert sorted(os.listdir(tmp_path)) == ['bare.png', 'o.png']
    np.testing.assert_array_equal(cv2.imread(out), canvas)


def test_invalid_landmark_not_drawn_but_listed(tmp_path):
    grey = np.full((H, W), 40, np.uint8)
    both = draw_overlay(grey, result([False, False], valid=[True, False]),
                        str(tmp_path / 'a.png'))
    one = draw_overlay(grey, result([False]), str(tmp_path / 'b.png'))
    zoom = both.shape[1] / W
    # the legend area gains the orange-red INVALID line
    bottom = slice(int(both.shape[0] - 60 * zoom), None)
    assert is_colour(both[bottom], FLAGGED).any()
    assert not is_colour(one[bottom], FLAGGED).any()
    # and nothing else differs above it: the invalid landmark has no cross
    top = slice(0, int(both.shape[0] - 60 * zoom))
    np.testing.assert_array_equal(both[top], one[top])


def _square_region(frame, u, v, half, level=0.9):
    """A region of (2 half + 1)^2 heatmap pixels around (u, v), with a
    one-pixel hole at its centre, as LandmarkResult holds it."""
    from mmchh.codecs.utils import region_outlines
    mask = np.zeros((15, 20), bool)
    mask[v - half:v + half + 1, u - half:u + half + 1] = True
    mask[v, u] = False
    rings = region_outlines(mask)
    return dict(level=level, area_px2=float(mask.sum()) * 400.0,
                area_mm2=None, disc_radius_px=10.0,
                outline=[frame.heatmap_to_image(r).tolist() for r in rings],
                outline_holes=[False, True])


@pytest.mark.parametrize('flag,colour', [(True, FLAGGED), (False, OK)],
                         ids=['flagged', 'ok'])
def test_region_outline_drawn_in_landmark_colour(tmp_path, flag, colour):
    r = result([flag], with_maps=False)
    lm = r.landmarks[0]
    lm['regions'] = [_square_region(r.frame, 4, 3, 2),
                     _square_region(r.frame, 4, 3, 3, level=0.95)]
    grey = np.full((H, W), 40, np.uint8)
    canvas = draw_overlay(grey, r, str(tmp_path / 'r.png'))
    lm['regions'] = None
    bare = draw_overlay(grey, r, str(tmp_path / 'bare.png'))
    zoom = canvas.shape[1] / W
    # a thin line in the landmark colour, blended with the X-ray
    blend = tuple(REGION_ALPHA * c + (1 - REGION_ALPHA) * 40 for c in colour)
    # the first level's outer ring runs 2.5 heatmap pixels (50 image
    # pixels) left of the cross, its hole 0.5 pixel (10 image pixels)
    for dx in (-50, -10):
        at = ((lm['x'] + dx) * zoom, lm['y'] * zoom)
        assert colour_near(canvas, at, blend, 2)
        assert not colour_near(bare, at, blend, 2)
    # the second level is not drawn (first level only), nor anything
    # between the rings
    for dx in (-70, -30):
        at = ((lm['x'] + dx) * zoom, lm['y'] * zoom)
        assert not colour_near(canvas, at, blend, 2)
    # the legend says what the outline is (white text at the bottom)
    bottom = slice(int(canvas.shape[0] - 80 * zoom), None)
    assert (canvas[bottom] != bare[bottom]).any()


def test_flagged_label_says_why_and_legend_explains(tmp_path):
    """A flagged landmark's label ends with its reasons (ERE, implausible,
    both); the legend gains the configuration flag's basis, or says it is
    not fitted."""
    grey = np.full((H, W), 40, np.uint8)

    def draw(reasons, status, name):
        r = result([True], with_maps=False)
        r.landmarks[0]['flag_reasons'] = reasons
        r.configuration_status = status
        return draw_overlay(grey, r, str(tmp_path / f'{name}.png'))

    used = dict(status='used', reason='', threshold=3.0, alpha=0.01,
                num_scores=60)
    none = dict(status='none', reason='configuration flag not fitted',
                threshold=None, alpha=None, num_scores=None)
    ere = draw(['ere'], used, 'ere')
    implausible = draw(['implausible'], used, 'implausible')
    both = draw(['ere', 'implausible'], used, 'both')
    zoom = ere.shape[1] / W
    image_rows = int(H * zoom)
    # the label (right of the cross, in the X-ray) differs with the reason
    assert (ere[:image_rows] != implausible[:image_rows]).any()
    assert (implausible[:image_rows] != both[:image_rows]).any()
    # orange-red text: the longer label covers more of the row
    row = slice(0, image_rows)
    assert is_colour(both[row], FLAGGED).sum() > \
        is_colour(ere[row], FLAGGED).sum()
    # the legend: used vs not fitted (cyan: cannot flag)
    unfitted = draw(['ere'], none, 'none')
    np.testing.assert_array_equal(ere[:image_rows], unfitted[:image_rows])
    assert is_colour(unfitted[image_rows:], UNKNOWN).any()
    assert not is_colour(ere[image_rows:], UNKNOWN).any()
