# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The review report in a real browser: ``tools/infer.py --report`` and
``tools/test.py --report`` on the session's calibrated tiny model, the
report opened from disk in headless Chromium (Debian's ``chromium``,
installed by ``requirements/install.sh`` for the tests): the screenshot is
not blank, the rendered page lists the images in review order and each
image's flagged landmarks in decreasing ERE, and every image link
resolves to a file beside the report.

Without a browser the tests that open it fail, saying how to install
one; a developer without root sets ``MMCHH_BROWSER_TESTS=skip`` to skip
them (and ``MMCHH_CHROMIUM`` to point at another Chromium binary).
"""
import csv
import json
import math
import os
import os.path as osp
import re
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np
import pytest

from mmchh.apis import init_landmark_model, predict_landmarks
from mmchh.testing import run_tool_in_process
from mmchh.visualization.review_report_browser import (find_browser,
                                                       render_report)

NUM_IMAGES = 3


def _render(report: str, tmp) -> tuple:
    """(screenshot as a BGR array, the rendered DOM) of ``report``, or a
    skip (``MMCHH_BROWSER_TESTS=skip``) / failure saying how to get a
    browser."""
    if os.environ.get('MMCHH_BROWSER_TESTS', '').lower() == 'skip':
        pytest.skip('MMCHH_BROWSER_TESTS=skip: the report is not opened in '
                    'a browser')
    if find_browser() is None:
        pytest.fail('no chromium on PATH: the review report is tested in a '
                    'real browser. Install it (as root: apt-get install -y '
                    'chromium, or bash requirements/install.sh --browser), '
                    'point MMCHH_CHROMIUM at one, or set '
                    'MMCHH_BROWSER_TESTS=skip to skip this test')
    shot = str(tmp / 'shot.png')
    dom = render_report(report, shot)
    return cv2.imread(shot), dom


class _Page(HTMLParser):
    """What the tests read from the rendered DOM: the batch table's image
    order and each row's measurements, each image section's flagged
    landmarks (name, ERE) in order, every ``img src`` / ``a href``, the
    element ids."""

    def __init__(self):
        super().__init__()
        self.rows, self.sections, self.links, self.ids = [], [], [], set()
        self.text, self.measures, self._measure = [], [], False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if 'id' in a:
            self.ids.add(a['id'])
        if tag == 'tr' and 'data-image' in a:
            self.rows.append(a['data-image'])
            self.measures.append([])
        self._measure = tag == 'span' and a.get('class') == 'measurement'
        if tag == 'section' and 'image' in a.get('class', '').split():
            self.sections.append((a['data-image'], []))
        if tag == 'li' and 'landmark' in a.get('class', '').split():
            ere = a.get('data-ere')
            self.sections[-1][1].append(
                (a['data-landmark'], None if ere is None else float(ere)))
        if tag == 'img':
            self.links.append(a['src'])
        if tag == 'a':
            self.links.append(a['href'])

    def handle_data(self, data):
        self.text.append(data)
        if self._measure:
            self.measures[-1].append(data)
            self._measure = False


def _check_page(report: str, dom: str) -> _Page:
    """Every image link resolves (a file beside the report, or an id of
    the page); each image's flagged landmarks are in decreasing ERE."""
    page = _Page()
    page.feed(dom)
    folder = osp.dirname(report)
    for link in page.links:
        parts = urlsplit(link)
        if not parts.path and parts.fragment:
            assert parts.fragment in page.ids, link
            continue
        assert parts.scheme in ('', 'file') and not parts.netloc, link
        path = unquote(parts.path)
        path = path if parts.scheme == 'file' else osp.join(folder, path)
        assert osp.isfile(path), f'{link} -> {path} is not a file'
    for name, flagged in page.sections:
        eres = [e for _, e in flagged if e is not None]
        assert eres == sorted(eres, reverse=True), (name, flagged)
    assert '<script' not in dom.lower()
    return page


def _not_blank(shot: np.ndarray) -> None:
    assert shot is not None and shot.shape[0] > 100
    grey = cv2.cvtColor(shot, cv2.COLOR_BGR2GRAY).astype(np.float64)
    # text and pictures on a white page: far from one flat colour
    assert grey.var() > 100.0, grey.var()
    assert (grey < 128).mean() > 0.005


@pytest.fixture(scope='module')
def inferred(ceph_coco_small, calibrated_small_demo, tmp_path_factory):
    """tools/infer.py --report --measurements on NUM_IMAGES X-rays of the
    calibrated tiny model, with a spacing that puts its flag threshold
    amid the EREs (some landmarks flagged, some not)."""
    cfg, ckpt = calibrated_small_demo['cfg'], calibrated_small_demo['ckpt']
    xrays = tmp_path_factory.mktemp('review') / 'x rays'  # a space: quoted
    xrays.mkdir()
    source = osp.join(ceph_coco_small, 'images')
    for i, name in enumerate(sorted(os.listdir(source))[:NUM_IMAGES]):
        grey = cv2.imread(osp.join(source, name), cv2.IMREAD_GRAYSCALE)
        # names that need escaping in HTML and quoting in a URL
        cv2.imwrite(str(xrays / f'p{i}&<b>#{i}.png'), grey)
    model = init_landmark_model(cfg, ckpt)
    files = sorted(str(p) for p in xrays.iterdir())
    ere_px = [lm['ere_px'] for r in predict_landmarks(model, files)
              for lm in r.landmarks]
    spacing = float(model.head.flag_threshold) / float(
        np.quantile(ere_px, 0.7))
    out = tmp_path_factory.mktemp('review_out') / 'preds'
    proc = run_tool_in_process('infer', [
        str(xrays), '--config', cfg, '--checkpoint', ckpt, '--out-dir',
        str(out), '--spacing', repr(spacing), '--no-progress', '--report',
        '--measurements', '--num-samples', '50'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / 'landmarks.json') as f:
        doc = json.load(f)
    with open(out / 'measurements.csv', newline='') as f:
        measures = list(csv.DictReader(f))
    return dict(out=out, doc=doc, measures=measures, stdout=proc.stdout, cfg=cfg, ckpt=ckpt,
                xrays=xrays, spacing=spacing)


def _expected_order(doc):
    """Images of ``landmarks.json`` in review order, the slow way:
    invalid count, flagged count, largest ERE (mm), name."""
    keyed = []
    for r in doc['results']:
        lms = r['landmarks']
        invalid = sum(1 for lm in lms if lm['valid'] is False)
        flagged = sum(1 for lm in lms if lm['flagged'])
        largest = max(lm['ere_mm'] for lm in lms if lm['ere_mm'] is not None)
        keyed.append(((-invalid, -flagged, -largest,
                       osp.basename(r['path'])), r))
    return [r for _, r in sorted(keyed, key=lambda kv: kv[0])]


def test_infer_report_renders_in_chromium(inferred, tmp_path):
    """The last line names report.html; Chromium renders it (not blank),
    images in review order, each image's flagged landmarks in decreasing
    ERE equal to landmarks.json's, every link a file."""
    report = str(inferred['out'] / 'report.html')
    last = inferred['stdout'].strip().splitlines()[-1]
    assert last.endswith(report) and 'open this first' in last
    shot, dom = _render(report, tmp_path)
    _not_blank(shot)
    page = _check_page(report, dom)
    expected = _expected_order(inferred['doc'])
    names = [osp.basename(r['path']) for r in expected]
    assert page.rows == names
    assert [name for name, _ in page.sections] == names
    flagged_total = 0
    for (_, flagged), r in zip(page.sections, expected):
        want = sorted(((lm['name'], lm['ere_mm']) for lm in r['landmarks']
                       if lm['flagged']), key=lambda t: -t[1])
        assert [n for n, _ in flagged] == [n for n, _ in want]
        assert np.allclose([e for _, e in flagged], [e for _, e in want],
                           rtol=1e-12)
        flagged_total += len(want)
    assert flagged_total > 0, 'the spacing should flag some landmarks'
    assert not all(lm['flagged'] for r in inferred['doc']['results']
                   for lm in r['landmarks'])
    # one crop per flagged landmark, and an escaped name in the page
    crops = os.listdir(inferred['out'] / 'report')
    assert len(crops) == flagged_total
    assert 'p0&<b>#0.png' in ''.join(page.text)


def test_infer_report_measurements_are_the_csv_ones(inferred, tmp_path):
    """Each row's measurements are measurements.csv's: value and
    interval to 3 significant digits, the unit (none for a ratio)."""
    report = str(inferred['out'] / 'report.html')
    with open(report, encoding='utf-8') as f:
        page = _Page()
        page.feed(f.read())
    want = {}
    for row in inferred['measures']:
        unit = '' if row['unit'] == 'ratio' else f' {row["unit"]}'
        text = f'{row["measurement"]} ' + (
            f'{float(row["value"]):.3g}{unit}' if row['value'] else 'n/a')
        if row['interval_low'] and row['interval_high']:
            text += (f' [{float(row["interval_low"]):.3g}, '
                     f'{float(row["interval_high"]):.3g}]')
        want.setdefault(osp.basename(row['image']), []).append(text)
    assert len(want) == NUM_IMAGES
    assert {name: m for name, m in zip(page.rows, page.measures)} == want
    assert any('[' in t for texts in want.values() for t in texts)


def test_infer_report_is_ours_and_foreign_one_refused(inferred, tmp_path):
    """A report.html we did not write is never replaced: the run stops
    before predicting, naming it; ours counts as an earlier output."""
    out = tmp_path / 'theirs'
    out.mkdir()
    (out / 'report.html').write_text('<html>a clinician\'s notes</html>')
    proc = run_tool_in_process('infer', [
        str(inferred['xrays']), '--config', inferred['cfg'], '--checkpoint',
        inferred['ckpt'], '--out-dir', str(out), '--no-progress',
        '--report'])
    assert proc.returncode == 1
    assert 'report.html that mmchh did not write' in proc.stderr
    assert sorted(os.listdir(out)) == ['report.html']
    from mmchh.apis.infer_output import earlier_outputs, foreign_entries
    assert str(inferred['out'] / 'report.html') in earlier_outputs(
        str(inferred['out']))
    assert foreign_entries(str(out)) == ['report.html']


def test_test_report_renders_with_split_section(calibrated_small_demo,
                                                tmp_path):
    """tools/test.py --report on the test split: the overlays, the crops
    with the true error, the reliability diagram, ERE vs error and the
    Good/Erroneous table, rendered by Chromium."""
    out = tmp_path / 'review'
    proc = run_tool_in_process('test', [
        calibrated_small_demo['cfg'], calibrated_small_demo['ckpt'],
        '--work-dir', str(tmp_path / 'work'), '--report', str(out),
        '--out', str(tmp_path / 'metrics.json')])
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = str(out / 'report.html')
    assert proc.stdout.strip().splitlines()[-1].endswith(report)
    shot, dom = _render(report, tmp_path)
    _not_blank(shot)
    page = _check_page(report, dom)
    text = ''.join(page.text)
    for words in ('reliability diagram', 'erroneous (flagged)',
                  'good (not flagged)', 'all landmarks'):
        assert words in text.lower()
    assert 'split' in page.ids
    figures = [unquote(link) for link in page.links
               if link.endswith(('reliability.png', 'ere_vs_error.png'))]
    assert len(set(figures)) == 2
    assert len(page.sections) == len(page.rows) > 0
    flagged = [e for _, lms in page.sections for _, e in lms]
    if flagged:
        assert 'true error' in text
    assert all(math.isfinite(e) for e in flagged if e is not None)
    # the Good/Erroneous table's counts and MRE are the metrics'
    with open(tmp_path / 'metrics.json') as f:
        metrics = json.load(f)
    html_text = open(report, encoding='utf-8').read()
    for row, title in (('overall', 'all landmarks'),
                       ('good', 'good (not flagged)'),
                       ('erroneous', 'erroneous (flagged)')):
        key = next(k for k in metrics if k.endswith(f'/{row}/count'))
        mre = metrics[key[:-len('count')] + 'MRE']
        cells = re.search(rf'<th>{re.escape(title)}</th>'
                          r'<td class="num">([^<]*)</td>'
                          r'<td class="num">([^<]*)</td>', html_text)
        assert cells is not None, title
        assert cells.group(1) == f'{metrics[key]:.0f}'
        assert cells.group(2).split(' [')[0] == (
            f'{mre:.3g}' if mre is not None else '&ndash;')


def test_test_report_overlays_follow_draw(calibrated_small_demo, tmp_path):
    """tools/test.py --report --draw flagged: the report's overlays draw
    the flagged landmarks only (no "ok" colour on the X-ray part, while
    the split has unflagged landmarks that --draw all would draw)."""
    from mmengine.config import Config

    from mmchh.visualization.overlay import overlay_layout
    from mmchh.visualization.overlay_style import OK_BGR
    from mmchh.visualization.review_report import REPORT_FOLDER
    out = tmp_path / 'review'
    proc = run_tool_in_process('test', [
        calibrated_small_demo['cfg'], calibrated_small_demo['ckpt'],
        '--work-dir', str(tmp_path / 'work'), '--report', str(out),
        '--draw', 'flagged'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = Config.fromfile(calibrated_small_demo['cfg'])
    dataset = cfg.test_dataloader.dataset
    with open(osp.join(dataset.data_root, dataset.ann_file)) as f:
        images = json.load(f)['images']
    model = init_landmark_model(calibrated_small_demo['cfg'],
                                calibrated_small_demo['ckpt'])
    unflagged = 0
    for image in images:
        path = osp.join(dataset.data_root, image['file_name'])
        stem = osp.splitext(osp.basename(path))[0]
        canvas = cv2.imread(str(out / REPORT_FOLDER / f'{stem}.overlay.png'))
        assert canvas is not None, stem
        result = predict_landmarks(model, path,
                                   spacing=image.get('spacing'))[0]
        unflagged += sum(lm['valid'] and not lm['flagged']
                         for lm in result.landmarks)
        h, w = cv2.imread(path, cv2.IMREAD_GRAYSCALE).shape
        rows = overlay_layout((h, w), result, 'flagged').image_size[1]
        ok = np.abs(canvas[:rows].astype(int) - np.asarray(OK_BGR)).max(-1)
        assert not (ok <= 40).any(), stem
    assert unflagged > 0
