# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The review report's pieces: true errors and crops against slow float64
references, the documented review order, escaping, the report's own mark,
and one image's entry from a real prediction (the untrained tiny model).
The whole report in a browser: tests/test_tools/test_review_report_tool.py.
"""
import itertools
import math
import os
import os.path as osp
from html.parser import HTMLParser

import numpy as np
import pytest

from mmchh.utils.errors import InputError
from mmchh.visualization.review_report import (REPORT_FILE, ReviewImage,
                                               ReviewLandmark, flagged_order,
                                               is_our_report, report_html,
                                               review_image, review_order,
                                               true_errors, write_report)
from mmchh.visualization.review_report_crops import (MIN_HALF_WIDTH,
                                                     crop_half_width,
                                                     crop_transform,
                                                     crop_view)


def test_true_errors_hand_case_and_random_against_reference():
    """mm with a per-axis spacing, pixels without; None without a
    position or a true position."""
    lms = [dict(x=3.0, y=4.0), dict(x=None, y=None), dict(x=1.0, y=1.0)]
    truth = np.array([[0.0, 0.0], [1.0, 1.0], [np.nan, 2.0]])
    assert true_errors(lms, truth, None) == [5.0, None, None]
    # 0.1 mm/px along x, 0.2 along y: hypot(0.3, 0.8)
    assert true_errors(lms, truth, (0.1, 0.2))[0] == pytest.approx(
        math.sqrt(0.09 + 0.64), rel=1e-15)
    rng = np.random.default_rng(0)
    pred = rng.uniform(-50, 50, (40, 2))
    truth = rng.uniform(-50, 50, (40, 2))
    sx, sy = rng.uniform(0.05, 0.3, 2)
    got = true_errors([dict(x=x, y=y) for x, y in pred], truth, (sx, sy))
    for g, (px, py), (gx, gy) in zip(got, pred, truth):
        want = math.sqrt(((px - gx) * sx) ** 2 + ((py - gy) * sy) ** 2)
        assert g == pytest.approx(want, rel=1e-12)


def test_crop_half_width_hand_cases():
    assert crop_half_width(10, 10, None) == MIN_HALF_WIDTH
    assert crop_half_width(10, 10, 5.0) == 15.0  # three EREs
    ring = [[[10, 30], [12, 10], [10, 10]]]  # 20 px below the point
    assert crop_half_width(10, 10, 4.0, ring) == 25.0
    # the truth 40 px away would need 50: at most 8 EREs
    assert crop_half_width(10, 10, 4.0, ring, truth=[50, 10]) == 32.0
    assert crop_half_width(10, 10, 0.5, ring) == MIN_HALF_WIDTH
    assert crop_half_width(10, 10, None, ring, truth=[50, 10]) == 50.0
    assert crop_half_width(10, 10, float('nan')) == MIN_HALF_WIDTH


def test_crop_view_hand_case_bright_pixel_fills_the_centre():
    """One bright pixel at the landmark, magnified 4x into a 64 px crop:
    the centre 4x4 block (rows and columns 30..33) and nothing else."""
    grey = np.zeros((40, 50), np.uint8)
    grey[17, 23] = 255
    crop = crop_view(grey, 23, 17, half=8.0, size=64)
    assert crop_transform(23, 17, 8.0, 64)[0] == 4.0
    rows, cols = np.nonzero(crop)
    assert sorted(set(rows)) == [30, 31, 32, 33]
    assert sorted(set(cols)) == [30, 31, 32, 33]
    assert (crop[30:34, 30:34] == 255).all()


def test_crop_view_random_against_slow_reference():
    """Every crop pixel (i, j) shows image pixel round((j - tx) / s),
    round((i - ty) / s) (black outside), at integer centres and an
    integer magnification (no ties to round)."""
    rng = np.random.default_rng(1)
    for _ in range(5):
        h, w = rng.integers(20, 60, 2)
        grey = rng.integers(1, 256, (h, w)).astype(np.uint8)
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        size, zoom = 48, int(rng.integers(2, 5))
        half = size / (2.0 * zoom)
        crop = crop_view(grey, x, y, half, size)
        s, tx, ty = crop_transform(x, y, half, size)
        want = np.zeros((size, size), np.uint8)
        for i in range(size):
            for j in range(size):
                u = int(math.floor((j - tx) / s + 0.5))
                v = int(math.floor((i - ty) / s + 0.5))
                if 0 <= u < w and 0 <= v < h:
                    want[i, j] = grey[v, u]
        assert (crop == want).all()


def _image(name, invalid=0, flagged=(), mm=None, px=1.0):
    lms = [ReviewLandmark(f'l{i}', i, e, 'mm', ['ere'])
           for i, e in enumerate(flagged)]
    return ReviewImage(name=name, overlay=None, flagged=lms,
                       num_landmarks=19, num_invalid=invalid,
                       largest_ere_mm=mm, largest_ere_px=px)


def test_review_order_documented_and_random_against_reference():
    """Invalid first, then more flagged, then larger largest ERE (mm when
    every image has mm, else px), then name."""
    a = _image('a', flagged=[1.0], mm=9.0, px=10.0)
    b = _image('b', invalid=1, mm=1.0, px=1.0)
    c = _image('c', flagged=[2.0, 1.0], mm=3.0, px=90.0)
    d = _image('d', flagged=[2.0, 1.0], mm=4.0, px=5.0)
    assert [im.name for im in review_order([a, b, c, d])] == \
        ['b', 'd', 'c', 'a']
    c_px = _image('c', flagged=[2.0, 1.0], mm=None, px=90.0)
    assert [im.name for im in review_order([a, b, c_px, d])] == \
        ['b', 'c', 'd', 'a']
    rng = np.random.default_rng(2)
    images = [_image(f'n{i}', invalid=int(rng.integers(0, 2)),
                     flagged=[1.0] * int(rng.integers(0, 3)),
                     mm=float(rng.integers(0, 3)), px=1.0)
              for i in range(12)]
    for perm in itertools.islice(itertools.permutations(images), 0, 50, 7):
        got = [im.name for im in review_order(list(perm))]
        # the slow way: pick the most urgent remaining image each time
        left, want = list(perm), []
        while left:
            best = left[0]
            for im in left[1:]:
                k1 = (im.num_invalid, len(im.flagged), im.largest_ere_mm)
                k2 = (best.num_invalid, len(best.flagged),
                      best.largest_ere_mm)
                if k1 > k2 or (k1 == k2 and im.name < best.name):
                    best = im
            want.append(best.name)
            left.remove(best)
        assert got == want


def test_flagged_order_invalid_first_then_decreasing_ere():
    lms = [ReviewLandmark('a', 0, 1.0, 'mm', ['ere']),
           ReviewLandmark('b', 1, None, 'mm', ['invalid']),
           ReviewLandmark('c', 2, 3.0, 'mm', ['ere']),
           ReviewLandmark('d', 3, 3.0, 'mm', ['implausible'])]
    assert [lm.name for lm in flagged_order(lms)] == ['b', 'c', 'd', 'a']


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text, self.attrs = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [v for _, v in attrs if v]

    def handle_data(self, data):
        self.text.append(data)


def test_report_escapes_every_name():
    """A name holding markup stays text; a path holding URL characters is
    quoted; no script anywhere."""
    evil = '<script>alert("x")</script>&\'"'
    im = _image(evil, flagged=[2.0], mm=2.0)
    im.flagged[0].name = evil
    im.flagged[0].crop = f'report/{evil}#1.png'
    im.measurements = [f'ANB {evil}']
    page = _Text()
    page.feed(report_html([im], f'title {evil}', notes=[evil]))
    assert 'script' not in page.tags
    assert ''.join(page.text).count(evil) >= 4
    srcs = [a for a in page.attrs if a.startswith('report/')]
    assert srcs and all('#' not in s and '<' not in s for s in srcs)


def test_write_report_marks_its_file_and_refuses_a_foreign_one(tmp_path):
    path = write_report(str(tmp_path), [_image('a', flagged=[1.0])], 't')
    assert path == str(tmp_path / REPORT_FILE) and is_our_report(path)
    write_report(str(tmp_path), [], 'again')  # ours: replaced
    assert 'again' in open(path).read()
    other = tmp_path / 'other'
    other.mkdir()
    (other / REPORT_FILE).write_text('<html>notes</html>')
    with pytest.raises(InputError, match='did not write'):
        write_report(str(other), [], 't')
    assert (other / REPORT_FILE).read_text() == '<html>notes</html>'
    assert os.listdir(other) == [REPORT_FILE]


@pytest.fixture(scope='module')
def tiny_result(tmp_path_factory):
    """A real prediction of the untrained tiny model on a small image
    (no spacing: ERE in image pixels) and its grey pixels."""
    from mmchh.apis import init_landmark_model, predict_landmarks
    from mmchh.testing.untrained_tiny_model import write_untrained_tiny_model
    root = tmp_path_factory.mktemp('tiny_review')
    cfg, ckpt = write_untrained_tiny_model(str(root))
    model = init_landmark_model(cfg, ckpt)
    grey = np.random.default_rng(3).integers(0, 256, (60, 40)).astype(
        np.uint8)
    result = predict_landmarks(model, grey)[0]
    return result, grey


def test_review_image_from_a_real_prediction(tiny_result, tmp_path):
    """The flagged landmarks (chosen here on the real prediction) get one
    crop each, in decreasing ERE, in image pixels (no spacing); the
    largest ERE is the result's."""
    result, grey = tiny_result
    lms = result.landmarks
    chosen = [0, 2]
    assert len(lms) > 2
    for lm in lms:
        lm['flagged'] = lm['index'] in chosen
        lm['flag_reasons'] = ['ere'] if lm['flagged'] else []
    truth = np.array([[lm['x'] + 1.0, lm['y'] - 2.0] for lm in lms])
    im = review_image(result, 'img', str(tmp_path), grey, truth=truth)
    assert [lm.index for lm in im.flagged] == sorted(
        chosen, key=lambda k: -lms[k]['ere_px'])
    assert sorted(os.listdir(tmp_path / 'report')) == [
        f'img-{k + 1:02d}.png' for k in chosen]
    for entry in im.flagged:
        lm = lms[entry.index]
        assert entry.ere == lm['ere_px'] and entry.unit == 'px'
        assert entry.error == pytest.approx(math.hypot(1.0, 2.0))
        half = crop_half_width(lm['x'], lm['y'], lm['ere_px'],
                               (lm.get('regions') or [{}])[0].get(
                                   'outline', []), truth[entry.index])
        assert entry.window == pytest.approx(2 * half)
        assert osp.isfile(tmp_path / entry.crop)
    assert im.largest_ere_mm is None
    assert im.largest_ere_px == max(lm['ere_px'] for lm in lms)
