# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The review report: one self-contained ``report.html`` that says which
images and landmarks a clinician should look at first.

Plain HTML and CSS (no script, no server, no network): it opens from disk
in any browser. Images are PNG files beside it, linked relatively: the
overlays (``overlays/<name>.png`` of ``tools/infer.py``) and, in
:data:`REPORT_FOLDER`, the zoomed crops of flagged landmarks and, on a test
split, the figures. Every string that comes from a file, a name or a
result is escaped (:func:`html.escape`, paths also URL-quoted).

Review order of the images (:func:`review_order`): images with invalid
landmarks (the model gave no answer) first, then more flagged landmarks
first, then the larger largest ERE first (in mm when every image has a
spacing, else in image pixels), then by name. Within an image the flagged
landmarks are listed invalid first, then by decreasing ERE
(:func:`flagged_order`).

Takes results (``LandmarkResult``) as arguments; never imports
:mod:`mmchh.apis`.
"""
import html
import math
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import quote

import cv2
import numpy as np

from mmchh.utils.errors import InputError
from mmchh.utils.io import atomic_write_bytes, atomic_write_text
from .review_report_crops import landmark_crop

__all__ = [
    'REPORT_FILE', 'REPORT_FOLDER', 'REPORT_MARK', 'ReviewImage',
    'ReviewLandmark', 'SplitSummary', 'check_report_folder',
    'flagged_order', 'is_our_report', 'report_html', 'review_image',
    'review_order', 'true_errors', 'write_report'
]

#: The report's file name in its output folder.
REPORT_FILE = 'report.html'
#: The folder beside it holding the crops (and a test split's figures).
REPORT_FOLDER = 'report'
#: The ``generator`` meta tag that marks a report this package wrote.
REPORT_MARK = 'mmchh review report'

_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #111; background: #fff; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left;
         vertical-align: top; }
th { background: #eee; }
tr.invalid td { background: #f8d0d0; }
tr.flagged td { background: #fde4cc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #444; font-size: 0.92em; margin: 0.2em 0; }
section.image { border-top: 2px solid #888; padding-top: 0.4em; }
img.overlay { max-width: 100%; max-height: 80vh; border: 1px solid #888; }
ol.flagged { list-style: none; padding: 0; display: flex;
             flex-wrap: wrap; gap: 0.8em; }
ol.flagged li { border: 2px solid #ff6400; padding: 0.3em; width: 200px; }
figure { margin: 0; }
ol.flagged li.invalid { border-color: #c00000; }
ol.flagged img { width: 192px; height: 192px; image-rendering: pixelated; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
.figures img { max-width: 600px; width: 100%; border: 1px solid #bbb; }
"""


@dataclass
class ReviewLandmark:
    """One flagged landmark of the report.

    Attributes:
        name (str): Landmark name.
        index (int): 0-based index in the model's order.
        ere (float | None): ERE in ``unit`` (None for an invalid one).
        unit (str): ``'mm'`` or ``'px'`` (image pixels).
        reasons (list[str]): Why it is flagged (``invalid``, ``ere``,
            ``implausible``).
        crop (str | None): The crop's path relative to the report.
        window (float | None): The crop's side, in ``unit``.
        region (str | None): Its first-level region in words.
        error (float | None): The true radial error in ``unit`` (a split
            with ground truth only).
    """
    name: str
    index: int
    ere: Optional[float]
    unit: str
    reasons: List[str]
    crop: Optional[str] = None
    window: Optional[float] = None
    region: Optional[str] = None
    error: Optional[float] = None


@dataclass
class ReviewImage:
    """One image of the report.

    Attributes:
        name (str): What the image is called (its file name).
        overlay (str | None): The overlay's path relative to the report.
        flagged (list[ReviewLandmark]): In :func:`flagged_order`.
        num_landmarks (int): Landmarks predicted.
        num_invalid (int): Landmarks without an answer.
        largest_ere_mm (float | None): Largest ERE in mm (None without a
            spacing).
        largest_ere_px (float | None): Largest ERE in image pixels.
        measurements (list[str]): Each measurement in words, with its
            interval where there is one.
        flags (str): Whether this image's landmarks were judged.
    """
    name: str
    overlay: Optional[str]
    flagged: List[ReviewLandmark]
    num_landmarks: int
    num_invalid: int
    largest_ere_mm: Optional[float]
    largest_ere_px: Optional[float]
    measurements: List[str] = field(default_factory=list)
    flags: str = ''


@dataclass
class SplitSummary:
    """What a test split with ground truth adds to the report.

    Attributes:
        figures (list[tuple[str, str]]): (caption, path relative to the
            report) of each figure: the reliability diagram, ERE vs error.
        table (dict): The Good/Erroneous table: row (``overall``,
            ``good``, ``erroneous``) -> column (``count``, ``MRE``,
            ``SDR_2mm``...) -> value.
        intervals (dict): ``'row/column'`` -> (low, high), where there is
            one.
        unit (str): The unit of errors (``'mm'`` or ``'px'``).
        lines (list[str]): Headline numbers, one line each.
    """
    figures: List[Tuple[str, str]]
    table: Optional[Dict[str, Dict[str, float]]]
    intervals: Dict[str, Tuple[float, float]]
    unit: str
    lines: List[str] = field(default_factory=list)


def _finite(value) -> Optional[float]:
    """``value`` as a float, None when missing or not finite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def true_errors(landmarks: Sequence[dict], truth: np.ndarray,
                spacing: Optional[Sequence[float]]) -> List[Optional[float]]:
    """Radial error of each predicted landmark from its true position: mm
    with ``spacing`` (mm per pixel along x and y), else image pixels; None
    where the landmark has no position.

    Note:
        Shapes: ``truth`` (K, 2) image pixels, one row per landmark.
    """
    truth = np.asarray(truth, np.float64).reshape(-1, 2)
    sx, sy = (1.0, 1.0) if spacing is None else map(float, spacing)
    out = []
    for lm, (gx, gy) in zip(landmarks, truth):
        x, y = _finite(lm.get('x')), _finite(lm.get('y'))
        if x is None or y is None or not np.isfinite([gx, gy]).all():
            out.append(None)
            continue
        out.append(float(np.hypot((x - gx) * sx, (y - gy) * sy)))
    return out


def flagged_order(landmarks: Sequence[ReviewLandmark]
                  ) -> List[ReviewLandmark]:
    """Invalid landmarks first, then by decreasing ERE, then by index."""
    return sorted(landmarks, key=lambda lm: (
        lm.ere is not None, -(lm.ere or 0.0), lm.index))


def review_order(images: Sequence[ReviewImage]) -> List[ReviewImage]:
    """Images in the order they most need review: more invalid landmarks
    first, then more flagged landmarks, then the larger largest ERE (mm
    when every image has one, else image pixels; an image without any ERE
    last among its equals), then by name."""
    in_mm = all(im.largest_ere_mm is not None for im in images)

    def largest(im):
        value = im.largest_ere_mm if in_mm else im.largest_ere_px
        return -math.inf if value is None else value

    return sorted(images, key=lambda im: (
        -im.num_invalid, -len(im.flagged), -largest(im), im.name))


def _measurement_texts(result) -> List[str]:
    """Each measurement of ``result`` in words, e.g. ``ANB 2.31 deg
    [1.2, 3.4]``."""
    texts = []
    for name, m in (getattr(result, 'measurements', None) or {}).items():
        value = _finite(m.get('value'))
        unit = '' if m.get('unit') in (None, 'ratio') else f' {m["unit"]}'
        text = f'{name} ' + ('n/a' if value is None else
                             f'{value:.3g}{unit}')
        iv = m.get('interval') or {}
        low, high = _finite(iv.get('low')), _finite(iv.get('high'))
        if low is not None and high is not None:
            text += f' [{low:.3g}, {high:.3g}]'
        texts.append(text)
    return texts


def _region_text(lm: dict) -> Optional[str]:
    """The landmark's first-level region in words."""
    regions = lm.get('regions') or []
    if not regions:
        return None
    region = regions[0]
    area_mm = _finite(region.get('area_mm2'))
    area = (f'{area_mm:.3g} mm\u00b2' if area_mm is not None else
            f'{float(region["area_px2"]):.3g} px\u00b2')
    return f'{100 * float(region["level"]):.3g} % region {area}'


def _image_flags(result) -> str:
    """Whether the landmarks of ``result`` were judged, in words."""
    status = getattr(result, 'flag_status', None)
    if status is None:
        return ''
    if status.get('status') == 'used' and not status.get('applied', True):
        return 'ERE flags not applied: no spacing'
    return ''


def review_image(result, key: str, out_dir: str, grey: np.ndarray,
                 overlay: Optional[str] = None,
                 truth: Optional[np.ndarray] = None) -> ReviewImage:
    """One image's entry, its crops written (atomically) to
    ``out_dir/report/<key>-<NN>.png`` (``NN`` the 1-based landmark number).

    Args:
        result (LandmarkResult): The image's prediction.
        key (str): Its output name (distinct within the run).
        out_dir (str): The report's folder.
        grey (np.ndarray): (H, W) uint8 image the result is for.
        overlay (str, optional): Its overlay, relative to ``out_dir``.
        truth (np.ndarray, optional): (K, 2) true positions, image pixels.

    Returns:
        ReviewImage: The entry (no pixels kept).
    """
    spacing = getattr(result, 'spacing', None)
    unit = 'mm' if spacing is not None else 'px'
    errors = (true_errors(result.landmarks, truth, spacing)
              if truth is not None else [None] * len(result.landmarks))
    flagged = []
    for lm, error in zip(result.landmarks, errors):
        if not lm.get('flagged'):
            continue
        entry = ReviewLandmark(
            name=str(lm['name']), index=int(lm['index']),
            ere=_finite(lm.get(f'ere_{unit}')), unit=unit,
            reasons=[str(r) for r in lm.get('flag_reasons') or []],
            region=_region_text(lm), error=error)
        if lm.get('valid') is not False and _finite(lm.get('x')) is not None:
            crop, half = landmark_crop(
                grey, lm, None if truth is None else truth[lm['index']])
            entry.crop = f'{REPORT_FOLDER}/{key}-{lm["index"] + 1:02d}.png'
            entry.window = 2 * half * (float(np.mean(spacing))
                                       if spacing is not None else 1.0)
            ok, buf = cv2.imencode('.png', crop)
            if not ok:
                raise RuntimeError(f'could not encode the crop of {key}')
            atomic_write_bytes(osp.join(out_dir, entry.crop), buf.tobytes())
        flagged.append(entry)
    ere_mm = [_finite(lm.get('ere_mm')) for lm in result.landmarks]
    ere_px = [_finite(lm.get('ere_px')) for lm in result.landmarks]
    ere_mm = [v for v in ere_mm if v is not None]
    ere_px = [v for v in ere_px if v is not None]
    return ReviewImage(
        name=osp.basename(result.path) if result.path else key,
        overlay=overlay, flagged=flagged_order(flagged),
        num_landmarks=len(result.landmarks),
        num_invalid=sum(lm.get('valid') is False for lm in result.landmarks),
        largest_ere_mm=max(ere_mm) if ere_mm else None,
        largest_ere_px=max(ere_px) if ere_px else None,
        measurements=_measurement_texts(result), flags=_image_flags(result))


def _e(text: Any) -> str:
    """Escaped text (quotes too, so it is safe in an attribute)."""
    return html.escape(str(text), quote=True)


def _src(path: str) -> str:
    """A relative path as an escaped, URL-quoted attribute value."""
    return _e(quote(path.replace(os.sep, '/')))


def _number(value: Optional[float], unit: str = '') -> str:
    if value is None:
        return '&ndash;'
    return _e(f'{value:.3g}' + (f' {unit}' if unit else ''))


def _largest_text(im: ReviewImage) -> str:
    if im.largest_ere_mm is not None:
        return _number(im.largest_ere_mm, 'mm')
    return _number(im.largest_ere_px, 'px')


def _batch_table(images: Sequence[ReviewImage]) -> List[str]:
    """The batch table's rows, in review order."""
    out = ['<table class="batch"><thead><tr><th>#</th><th>image</th>'
           '<th>flagged</th><th>invalid</th><th>largest ERE</th>'
           '<th>measurements [interval]</th></tr></thead><tbody>']
    for i, im in enumerate(images, 1):
        cls = ('invalid' if im.num_invalid else
               'flagged' if im.flagged else 'ok')
        measures = '<br>'.join(f'<span class="measurement">{_e(t)}</span>'
                               for t in im.measurements) or '&ndash;'
        out.append(
            f'<tr class="{cls}" data-image="{_e(im.name)}">'
            f'<td class="num">{i}</td>'
            f'<td><a href="#image-{i}">{_e(im.name)}</a></td>'
            f'<td class="num">{len(im.flagged)} of {im.num_landmarks}</td>'
            f'<td class="num">{im.num_invalid}</td>'
            f'<td class="num">{_largest_text(im)}</td>'
            f'<td>{measures}</td></tr>')
    out.append('</tbody></table>')
    return out


def _landmark_item(lm: ReviewLandmark) -> str:
    """One flagged landmark: its crop (or why there is none) and caption."""
    why = ', '.join(lm.reasons) or 'flagged'
    lines = [f'<b>{_e(lm.name)}</b> (#{lm.index + 1})',
             f'ERE {_number(lm.ere, lm.unit)}', f'why: {_e(why)}']
    if lm.error is not None:
        lines.append(f'true error {_number(lm.error, lm.unit)}')
    if lm.region:
        lines.append(_e(lm.region))
    if lm.window is not None:
        lines.append(f'crop {_number(lm.window, lm.unit)} wide')
    ere = '' if lm.ere is None else f' data-ere="{lm.ere!r}"'
    if lm.crop is None:
        body = '<p class="note">no position: the model gave no answer</p>'
        cls = 'landmark invalid'
    else:
        body = (f'<a href="{_src(lm.crop)}"><img src="{_src(lm.crop)}" '
                f'alt="{_e(lm.name)}" loading="lazy"></a>')
        cls = 'landmark'
    return (f'<li class="{cls}" data-landmark="{_e(lm.name)}"{ere}>'
            f'<figure>{body}<figcaption>{"<br>".join(lines)}</figcaption>'
            '</figure></li>')


def _image_section(i: int, im: ReviewImage) -> List[str]:
    """One image: the overlay, then its flagged landmarks in order."""
    out = [f'<section class="image" id="image-{i}" '
           f'data-image="{_e(im.name)}">',
           f'<h2>{i}. {_e(im.name)}: {len(im.flagged)} flagged of '
           f'{im.num_landmarks}, largest ERE {_largest_text(im)}</h2>']
    if im.flags:
        out.append(f'<p class="note">{_e(im.flags)}</p>')
    if im.flagged:
        out.append('<ol class="flagged">')
        out += [_landmark_item(lm) for lm in im.flagged]
        out.append('</ol>')
    else:
        out.append('<p class="note">no flagged landmark</p>')
    if im.overlay:
        out.append(f'<a href="{_src(im.overlay)}"><img class="overlay" '
                   f'src="{_src(im.overlay)}" alt="overlay of '
                   f'{_e(im.name)}" loading="lazy"></a>')
    else:
        out.append('<p class="note">no overlay drawn</p>')
    out.append('</section>')
    return out


_ROW_TITLES = dict(overall='all landmarks', good='good (not flagged)',
                   erroneous='erroneous (flagged)')


def _column_title(column: str, unit: str) -> str:
    """A Good/Erroneous column in words, e.g. ``SDR_2mm`` ->
    ``SDR 2 mm (%)``."""
    if column == 'count':
        return 'landmarks'
    if column == 'MRE':
        return f'MRE ({unit})'
    if column.startswith('SDR_'):
        return f'SDR {column[4:].replace("mm", "")} {unit} (%)'
    return column


def _split_section(split: SplitSummary) -> List[str]:
    """The test split's figures and Good/Erroneous table."""
    out = ['<section id="split"><h2>Test split with ground truth</h2>']
    out += [f'<p class="note">{_e(line)}</p>' for line in split.lines]
    if split.table:
        columns = list(next(iter(split.table.values())))
        out.append('<table class="good-erroneous"><thead><tr><th></th>' +
                   ''.join(f'<th>{_e(_column_title(c, split.unit))}</th>'
                           for c in columns) + '</tr></thead><tbody>')
        for row, values in split.table.items():
            cells = []
            for c in columns:
                value = _finite(values.get(c))
                text = ('&ndash;' if value is None else
                        _e(f'{value:.0f}' if c == 'count' else
                           f'{value:.3g}'))
                iv = split.intervals.get(f'{row}/{c}')
                if iv is not None and None not in map(_finite, iv):
                    text += _e(f' [{iv[0]:.3g}, {iv[1]:.3g}]')
                cells.append(f'<td class="num">{text}</td>')
            title = _ROW_TITLES.get(row, row)
            out.append(f'<tr><th>{_e(title)}</th>{"".join(cells)}</tr>')
        out.append('</tbody></table>')
        out.append('<p class="note">Good/Erroneous as the model flags '
                   'them, scored against the ground truth; [interval]: '
                   'bootstrap over images.</p>')
    out.append('<div class="figures">')
    for caption, path in split.figures:
        out.append(f'<figure><a href="{_src(path)}"><img src="{_src(path)}"'
                   f' alt="{_e(caption)}"></a><figcaption>{_e(caption)}'
                   '</figcaption></figure>')
    out.append('</div></section>')
    return out


def report_html(images: Sequence[ReviewImage], title: str,
                notes: Sequence[str] = (),
                split: Optional[SplitSummary] = None) -> str:
    """The report's HTML: the batch table in :func:`review_order`, the
    test split's section (with ``split``), then each image's section.

    Args:
        images (Sequence[ReviewImage]): The run's images, any order.
        title (str): The page's title.
        notes (Sequence[str]): Lines about the run (checkpoint, flags).
        split (SplitSummary, optional): A test split's figures and table.

    Returns:
        str: The whole document.
    """
    ordered = review_order(images)
    flagged = sum(len(im.flagged) for im in ordered)
    out = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
           f'<meta name="generator" content="{REPORT_MARK}">',
           f'<title>{_e(title)}</title><style>{_CSS}</style></head><body>',
           f'<h1>{_e(title)}</h1>',
           f'<p><b>{len(ordered)} image(s), {flagged} flagged landmark(s)'
           '</b>. Images in review order: invalid landmarks first, then '
           'the most flagged landmarks, then the largest ERE (expected '
           'radial error). Within an image, flagged landmarks by '
           'decreasing ERE; each crop shows the prediction (orange cross), '
           'its conformal region (orange outline)'
           + (' and the true position (green circle)' if split else '')
           + '.</p>']
    out += [f'<p class="note">{_e(line)}</p>' for line in notes]
    out += _batch_table(ordered)
    if split is not None:
        out += _split_section(split)
    for i, im in enumerate(ordered, 1):
        out += _image_section(i, im)
    out.append('</body></html>')
    return '\n'.join(out) + '\n'


def is_our_report(path: str) -> bool:
    """Whether ``path`` is a report this package wrote (its generator
    mark within the first few kilobytes)."""
    try:
        with open(path, 'rb') as f:
            head = f.read(4096)
    except OSError:
        return False
    return f'content="{REPORT_MARK}"'.encode() in head


def check_report_folder(out_dir: str, option: str) -> None:
    """Refuses to write a report where a ``report.html`` we did not write
    stands.

    Raises:
        InputError: naming ``option``, the folder and the file.
    """
    path = osp.join(out_dir, REPORT_FILE)
    if osp.lexists(path) and (osp.islink(path) or not is_our_report(path)):
        raise InputError(f'{option} {out_dir} holds a {REPORT_FILE} that '
                         'mmchh did not write; move it or choose another '
                         'folder')


def write_report(out_dir: str, images: Sequence[ReviewImage], title: str,
                 notes: Sequence[str] = (),
                 split: Optional[SplitSummary] = None) -> str:
    """Writes ``out_dir/report.html`` atomically (:func:`report_html`).

    Returns:
        str: Its path.

    Raises:
        InputError: when ``out_dir`` holds a ``report.html`` we did not
            write (:func:`check_report_folder`).
    """
    check_report_folder(out_dir, 'the report folder')
    path = osp.join(out_dir, REPORT_FILE)
    atomic_write_text(path, report_html(images, title, notes, split))
    return path
