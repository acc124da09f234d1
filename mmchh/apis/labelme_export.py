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

Coordinates are the predicted ``x``, ``y`` exactly (full float precision;
JSON floats round-trip): :mod:`mmchh.datasets.converters.labelme_reader`
keeps labelme coordinates as given, so a reviewed folder read back by
``tools/convert_landmarks.py --labelme reviewed=DIR`` gives every
unedited point unchanged. A landmark without a prediction (``valid``
False) gets no shape, never an invented point: it is named in the
top-level ``flags`` (``"no prediction: <name>": true``, a checkbox in
labelme) and in the ``mmchh`` note, which labelme keeps when it saves.
"""
import os.path as osp
from typing import Any, Dict, List, Sequence

from mmchh.models.heads.flag_basis import describe_flag_status
from mmchh.utils.io import write_json

from .flag_reasons import describe_configuration_status
from .landmark_result import LandmarkResult

__all__ = [
    'LABELME_FOLDER', 'LABELME_VERSION', 'NO_PREDICTION_FLAG',
    'labelme_document', 'landmarks_without_prediction', 'labelme_summary',
    'write_labelme'
]

#: Sub-folder of an inference output folder holding the labelme files.
LABELME_FOLDER = 'labelme'
#: The labelme file format written (labelme warns only on another major).
LABELME_VERSION = '5.4.1'
#: Prefix of the top-level flag naming a landmark without a prediction.
NO_PREDICTION_FLAG = 'no prediction: '


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


def labelme_document(result: LandmarkResult, json_path: str) -> Dict[str, Any]:
    """The labelme 5.x document of one image's prediction.

    Args:
        result (LandmarkResult): The prediction; ``result.path`` must be
            the image file it was predicted on.
        json_path (str): Where the document will be written (``imagePath``
            is relative to its folder).

    Returns:
        dict: ``version``, ``flags``, ``shapes``, ``imagePath``,
        ``imageData`` (None), ``imageHeight``, ``imageWidth`` and the
        ``mmchh`` note (see the module docstring; with the result's
        ``flag_status``).

    Raises:
        ValueError: If ``result.path`` is None (an in-memory array has no
            file for labelme to open).

    Note:
        Points are ``[[x, y]]`` in pixels of the image (``result.landmarks``
        exactly), one per valid landmark, in model order.
    """
    if result.path is None:
        raise ValueError('labelme_document: the result has no image file '
                         '(predicted on an array); labelme needs imagePath')
    missing = landmarks_without_prediction(result)
    ere_unit = 'mm' if result.spacing is not None else 'px'
    width, height = result.image_size
    return dict(
        version=LABELME_VERSION,
        flags={f'{NO_PREDICTION_FLAG}{name}': True
               for name in missing},
        shapes=[
            _shape(lm, result) for lm in result.landmarks
            if lm['valid']
        ],
        imagePath=_relative_image_path(result.path, json_path),
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
            note='points are the predicted positions in image pixels, '
            'kept exactly' + ('; a landmark without a prediction has no '
                              'shape (add it by hand)' if missing else '')))


def write_labelme(result: LandmarkResult, json_path: str) -> None:
    """Writes :func:`labelme_document` to ``json_path`` atomically
    (strict JSON, full float precision)."""
    write_json(json_path, labelme_document(result, json_path))


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
        str: One or two lines: the file count and flagged landmarks
        (with a used configuration flag, how many for each reason); the
        landmarks left out (no prediction) with their images.
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
