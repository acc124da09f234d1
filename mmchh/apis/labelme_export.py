# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Predicted landmarks as labelme files, for a clinician's review.

One labelme 5.x JSON per image (what ``tools/infer.py --format labelme``
writes): a point shape per landmark whose ``label`` is the keypoint name,
``flags`` ``{"flagged": true|false}`` (``{}`` when flagging is unavailable:
no spacing or no threshold) and a ``description`` with the ERE (mm when
the spacing is known, else pixels, and says which), the probability, the
plausibility (sigma, when the configuration model scored it) and what the
flag rests on: for a flagged landmark each of its reasons (``ERE``,
``implausible``) with its basis -- the ERE threshold with its bootstrap
interval and the calibration images it came from, the configuration
threshold in sigma with its alpha and calibration scores -- else why there
is no flag (the ``mmchh`` note holds the whole ``flag_status`` and
``configuration_status``).
``imagePath`` is the inferred image relative to the JSON's folder, so
labelme opens it wherever the output folder is; ``imageData`` is null.

labelme opens images through Pillow, which cannot show DICOM or
MetaImage/NRRD/NIfTI and shows 16-bit images wrongly. So unless the
inferred file is 8-bit (as :func:`~mmchh.datasets.image_reader.read_image`
reads it) with an extension of :data:`LABELME_OPENS`, :func:`write_labelme`
writes an 8-bit grey PNG *review copy* beside the JSON (``<name>.png``
for ``<name>.json``; the grey inference reads,
:func:`~mmchh.apis.image_loading.read_xray`, on the same pixel grid, so
every coordinate means the same pixel) and ``imagePath`` names it; the
``mmchh`` note records the inferred file (``source_image``) and the copy
(``review_copy``). The converter pairs a reviewed file with its image by
file stem and never uses ``imagePath``, so the reviewed folder converts
back against the original files (with their headers' spacing). A copy
carries a PNG text marker (:func:`is_review_copy`): a file at its path
without it was not written by mmchh and is never replaced.

Coordinates are the predicted ``x``, ``y`` exactly (full float precision;
JSON floats round-trip): :mod:`mmchh.datasets.converters.labelme_reader`
keeps labelme coordinates as given, so a reviewed folder read back by
``tools/convert_landmarks.py --labelme reviewed=DIR`` gives every
unedited point unchanged. A landmark without a prediction (``valid``
False) gets no shape, never an invented point: it is named in the
top-level ``flags`` (``"no prediction: <name>": true``, a checkbox in
labelme) and in the ``mmchh`` note, which labelme keeps when it saves.
"""
import io
import os
import os.path as osp
import warnings
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from mmchh.datasets.image_reader import (ImageLoadError, read_image,
                                         split_image_name)
from mmchh.models.heads.flag_basis import describe_flag_status
from mmchh.utils.errors import InputError
from mmchh.utils.io import atomic_write_bytes, write_json

from .flag_reasons import describe_configuration_status
from .image_loading import read_xray
from .landmark_result import LandmarkResult

__all__ = [
    'LABELME_FOLDER', 'LABELME_OPENS', 'LABELME_VERSION',
    'NO_PREDICTION_FLAG', 'REVIEW_COPY_SOFTWARE', 'is_review_copy',
    'labelme_document', 'landmarks_without_prediction', 'labelme_summary',
    'review_copy_path', 'review_copy_reason', 'write_labelme'
]

#: Sub-folder of an inference output folder holding the labelme files.
LABELME_FOLDER = 'labelme'
#: The labelme file format written (labelme warns only on another major).
LABELME_VERSION = '5.4.1'
#: Prefix of the top-level flag naming a landmark without a prediction.
NO_PREDICTION_FLAG = 'no prediction: '
#: Extensions of the files labelme (through Pillow) shows as they are,
#: when 8-bit; every other image gets a review copy.
LABELME_OPENS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
#: The PNG ``Software`` text of a review copy: how a copy is told apart
#: from a file somebody else put at its path.
REVIEW_COPY_SOFTWARE = 'mmchh labelme review copy'


def landmarks_without_prediction(result: LandmarkResult) -> List[str]:
    """The names of the landmarks the model gave no answer for."""
    return [lm['name'] for lm in result.landmarks if not lm['valid']]


def _relative_image_path(image: str, json_path: str) -> str:
    """``image`` relative to the folder of ``json_path`` (absolute where
    no relative path exists, e.g. another Windows drive)."""
    image = osp.abspath(image)
    try:
        return osp.relpath(image, osp.dirname(osp.abspath(json_path)))
    except ValueError:
        return image


def _check_has_file(result: LandmarkResult) -> None:
    """Refuses a result predicted on an array (no file for labelme)."""
    if result.path is None:
        raise ValueError('labelme_document: the result has no image file '
                         '(predicted on an array); labelme needs imagePath')


def review_copy_reason(path: str, array: np.ndarray) -> Optional[str]:
    """Why labelme cannot show an image file as it is, or None when it can.

    Args:
        path (str): The image file (its extension says its kind).
        array (np.ndarray): Its pixels as
            :func:`~mmchh.datasets.image_reader.read_image` reads them.

    Returns:
        str | None: e.g. ``'labelme cannot open .dcm files'`` or ``'a 16-bit
        .png, which labelme shows wrongly'``; None for an 8-bit file with an
        extension of :data:`LABELME_OPENS`.
    """
    ext = split_image_name(osp.basename(path))[1].lower()
    if ext not in LABELME_OPENS:
        return f'labelme cannot open {ext or "extension-less"} files'
    if array.dtype != np.uint8:
        return (f'a {8 * array.dtype.itemsize}-bit {ext}, which labelme '
                'shows wrongly')
    return None


def review_copy_path(json_path: str) -> str:
    """Where the review copy of ``json_path``'s image goes: beside it,
    ``<name>.png`` for ``<name>.json`` (the names of a run's labelme files
    are distinct, so their copies' are too)."""
    return osp.splitext(json_path)[0] + '.png'


def is_review_copy(path: str) -> bool:
    """Whether ``path`` is a review copy :func:`write_labelme` wrote (a
    plain PNG file with its ``Software`` marker; a link is never one)."""
    from PIL import Image
    if osp.islink(path) or not osp.isfile(path):
        return False
    try:
        # the marker is written before the pixels: no decoding needed
        with Image.open(path) as pil:
            return pil.format == 'PNG' and \
                pil.info.get('Software') == REVIEW_COPY_SOFTWARE
    except (OSError, ValueError):
        return False


def _png_bytes(grey: np.ndarray, source: str) -> bytes:
    """``grey`` as an 8-bit grey PNG carrying the review-copy marker."""
    from PIL import Image, PngImagePlugin
    info = PngImagePlugin.PngInfo()
    info.add_text('Software', REVIEW_COPY_SOFTWARE)
    info.add_text('Comment', f'8-bit review copy of {osp.basename(source)} '
                  '(same pixel grid); annotate the original')
    buf = io.BytesIO()
    Image.fromarray(grey, mode='L').save(buf, format='PNG', pnginfo=info)
    return buf.getvalue()


def _write_review_copy(result: LandmarkResult,
                       json_path: str) -> Optional[Dict[str, str]]:
    """Writes the review copy of ``result.path`` when labelme cannot show
    it; returns ``{'path', 'reason'}``, or None when no copy is needed.

    Raises:
        ImageLoadError: the image cannot be read any more, or is no longer
            the size it was predicted at.
        InputError: a file mmchh did not write is at the copy's path.
    """
    loaded = read_image(result.path)
    reason = review_copy_reason(result.path, loaded.array)
    if reason is None:
        return None
    if tuple(loaded.size) != tuple(result.image_size):
        raise ImageLoadError(
            result.path, f'is {loaded.size[0]}x{loaded.size[1]} pixels but '
            f'was predicted at {result.image_size[0]}x'
            f'{result.image_size[1]}: changed since; no review copy written')
    path = review_copy_path(json_path)
    if osp.lexists(path) and not is_review_copy(path):
        raise InputError(
            f'{path}: the labelme review copy of {result.path} goes there, '
            'but that file was not written by mmchh; it is left as it is: '
            'move it away or choose another --out-dir')
    with warnings.catch_warnings():
        # the 12-bit warning was given when the file was read to predict
        warnings.simplefilter('ignore', UserWarning)
        grey = read_xray(loaded.array).grey  # the one 8-bit rule
    atomic_write_bytes(path, _png_bytes(grey, result.path))
    return dict(path=path, reason=reason)


def _reason_words(reason: str, lm: Dict[str, Any],
                  result: LandmarkResult) -> str:
    """One reason of a flag with what it rests on, e.g. ``'ERE (flag ERE >
    1.42 mm ...)'`` or ``'implausible (4.1 sigma; configuration flag:
    implausible > 3 sigma ...)'``."""
    if reason == 'implausible':
        sigma = lm.get('plausibility')
        basis = [] if sigma is None else [f'{sigma:.2f} sigma']
        if result.configuration_status is not None:
            basis.append(
                describe_configuration_status(result.configuration_status))
        return 'implausible' + (f' ({"; ".join(basis)})' if basis else '')
    if reason == 'ere':
        if result.flag_status is not None:
            return f'ERE ({describe_flag_status(result.flag_status)})'
        if result.flag_threshold_mm is not None:
            return f'ERE (ERE > {result.flag_threshold_mm:g} mm)'
        return 'ERE'
    return reason


def _flag_words(lm: Dict[str, Any], result: LandmarkResult) -> str:
    """The landmark's flag, its reasons and what each rests on, in words
    ('' for a landmark under a used threshold)."""
    status = result.flag_status
    if lm['flagged']:
        # a result of a head without reasons: its flag is the ERE's
        reasons = lm.get('flag_reasons') or ['ere']
        return 'FLAGGED for review: ' + '; '.join(
            _reason_words(r, lm, result) for r in reasons)
    if status is None:  # a result built without the model's status
        return ('not flagged: flagging needs spacing and a threshold'
                if lm['flagged'] is None else '')
    if lm['flagged'] is None or not status['applied']:
        return f'not flagged: {status["reason"]}'
    return f'not flagged ({describe_flag_status(status)})'


def _description(lm: Dict[str, Any], result: LandmarkResult) -> str:
    """ERE (mm, else px, with its unit), probability and flag, in words."""
    if lm['ere_mm'] is not None:
        ere = f'ERE {lm["ere_mm"]:.3f} mm'
    else:
        ere = f'ERE {lm["ere_px"]:.2f} px (spacing unknown: not in mm)'
    text = f'{ere}; probability {lm["probability"]:.4g}'
    if lm.get('plausibility') is not None:
        text += f'; plausibility {lm["plausibility"]:.2f} sigma'
        if lm.get('plausibility_mm') is not None:
            text += f' ({lm["plausibility_mm"]:.2f} mm off the shape)'
    flag = _flag_words(lm, result)
    return f'{text}; {flag}' if flag else text


def _shape(lm: Dict[str, Any], result: LandmarkResult) -> Dict[str, Any]:
    """The labelme point shape of one predicted landmark."""
    return dict(label=lm['name'],
                points=[[lm['x'], lm['y']]],
                group_id=None,
                description=_description(lm, result),
                shape_type='point',
                flags={} if lm['flagged'] is None else dict(
                    flagged=bool(lm['flagged'])))


def labelme_document(result: LandmarkResult,
                     json_path: str,
                     review_copy: Optional[Dict[str, str]] = None
                     ) -> Dict[str, Any]:
    """The labelme 5.x document of one image's prediction.

    Args:
        result (LandmarkResult): The prediction; ``result.path`` must be
            the image file it was predicted on.
        json_path (str): Where the document will be written (``imagePath``
            is relative to its folder).
        review_copy (dict, optional): The image's review copy, ``{'path',
            'reason'}`` (what :func:`write_labelme` wrote): ``imagePath``
            names it instead of ``result.path``.

    Returns:
        dict: ``version``, ``flags``, ``shapes``, ``imagePath``,
        ``imageData`` (None), ``imageHeight``, ``imageWidth`` and the
        ``mmchh`` note (see the module docstring; with the result's
        ``flag_status``, ``source_image``: the inferred file relative to
        the JSON's folder, and ``review_copy``: None, or the copy's
        ``file``, why it was made and how).

    Raises:
        ValueError: If ``result.path`` is None (an in-memory array has no
            file for labelme to open).

    Note:
        Points are ``[[x, y]]`` in pixels of the image (``result.landmarks``
        exactly), one per valid landmark, in model order.
    """
    _check_has_file(result)
    missing = landmarks_without_prediction(result)
    ere_unit = 'mm' if result.spacing is not None else 'px'
    width, height = result.image_size
    source = _relative_image_path(result.path, json_path)
    note = 'points are the predicted positions in image pixels, kept exactly'
    if missing:
        note += '; a landmark without a prediction has no shape (add it by ' \
            'hand)'
    copy = None
    if review_copy is not None:
        copy = dict(
            file=_relative_image_path(review_copy['path'], json_path),
            reason=review_copy['reason'],
            pixels='8-bit grey as inference reads the image, on its pixel '
            'grid')
        note += (f'; imagePath names an 8-bit review copy of {source} '
                 f'({review_copy["reason"]}): the points are in its pixels '
                 'too; convert the reviewed files against the original '
                 'images (paired by file stem)')
    return dict(
        version=LABELME_VERSION,
        flags={f'{NO_PREDICTION_FLAG}{name}': True
               for name in missing},
        shapes=[
            _shape(lm, result) for lm in result.landmarks
            if lm['valid']
        ],
        imagePath=source if copy is None else copy['file'],
        imageData=None,
        imageHeight=int(height),
        imageWidth=int(width),
        mmchh=dict(
            source='tools/infer.py (mmchh)',
            calibrated=result.calibrated,
            flag_threshold_mm=result.flag_threshold_mm,
            flag_status=result.flag_status,
            configuration_status=result.configuration_status,
            spacing=None if result.spacing is None else list(result.spacing),
            ere_unit=ere_unit,
            landmarks_without_prediction=missing,
            source_image=source,
            review_copy=copy,
            note=note))


def write_labelme(result: LandmarkResult, json_path: str) -> Optional[str]:
    """Writes :func:`labelme_document` to ``json_path`` atomically (strict
    JSON, full float precision), with a review copy of the image beside it
    when labelme cannot show the image itself (see the module docstring).

    Args:
        result (LandmarkResult): The prediction; ``result.path`` is read
            (to tell whether labelme can show it).
        json_path (str): The labelme file to write.

    Returns:
        str | None: The review copy written, None when none was needed.

    Raises:
        ValueError: If ``result.path`` is None.
        ImageLoadError: If the image cannot be read any more or changed
            size since it was predicted.
        InputError: If a file mmchh did not write is where the review copy
            goes (it is left unchanged).
    """
    _check_has_file(result)
    copy = _write_review_copy(result, json_path)
    try:
        write_json(json_path, labelme_document(result, json_path, copy))
    except BaseException:
        # a copy exists only with its labelme file
        if copy is not None and osp.isfile(copy['path']):
            os.remove(copy['path'])
        raise
    return None if copy is None else copy['path']


def labelme_summary(results: Sequence[LandmarkResult],
                    folder: str,
                    max_images: int = 5) -> str:
    """What a labelme export holds, for the printed summary.

    Args:
        results (Sequence[LandmarkResult]): The exported predictions.
        folder (str): The folder of the labelme files.
        max_images (int): Images named at most in the line about landmarks
            without a prediction.

    Returns:
        str: One to three lines: the file count and flagged landmarks
        (with a used configuration flag, how many for each reason); the
        review copies in ``folder`` (when there are any); the landmarks
        left out (no prediction) with their images.
    """
    flagged = sum(
        bool(lm['flagged']) and lm['valid'] for r in results
        for lm in r.landmarks)
    # how many for each reason, once a second signal can flag
    counts = {reason: sum(reason in (lm.get('flag_reasons') or ())
                          for r in results for lm in r.landmarks
                          if lm['valid'])
              for reason in ('ere', 'implausible')}
    why = f' (ERE {counts["ere"]}, implausible {counts["implausible"]})' \
        if any(r.configuration_status is not None and
               r.configuration_status['status'] == 'used'
               for r in results) else ''
    lines = [
        f'labelme: {len(results)} review file(s) in {folder}, '
        f'{flagged} flagged landmark(s) marked{why}'
    ]
    copies = sorted(n for n in os.listdir(folder) if n.endswith('.png') and
                    is_review_copy(osp.join(folder, n))) \
        if osp.isdir(folder) else []
    if copies:
        lines.append(f'labelme: {len(copies)} 8-bit PNG review cop'
                     f'{"y" if len(copies) == 1 else "ies"} beside them, '
                     'of images labelme cannot show (DICOM, MetaImage, '
                     f'16-bit), e.g. {copies[0]}; convert the reviewed '
                     'files against the originals')
    missing = [(r.path, landmarks_without_prediction(r)) for r in results]
    missing = [(path, names) for path, names in missing if names]
    if missing:
        total = sum(len(names) for _, names in missing)
        named = '; '.join(f'{osp.basename(path)}: {", ".join(names)}'
                          for path, names in missing[:max_images])
        more = ' ...' if len(missing) > max_images else ''
        lines.append(f'labelme: {total} landmark(s) without a prediction '
                     f'left out (no point written; add them by hand): '
                     f'{named}{more}')
    return '\n'.join(lines)
