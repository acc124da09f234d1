# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Reading labelme JSON files (labelme 5.x), one folder per annotator.

A landmark is a shape with ``shape_type`` ``'point'`` whose ``label`` is a
keypoint name; its ``points`` hold one ``[x, y]`` of JSON numbers (a
number written as a string, ``true``, ``NaN`` or an infinity is refused:
:mod:`.strict_values`). ``group_id``, ``flags`` and ``description`` are
not used. Each JSON is paired with its image by file stem (``001.json``
with ``001.tif`` in the images folder): the ``imagePath`` inside is never
trusted (renamed files keep an old one; it is only reported when it names
another file). What the file says about its image is checked against the
paired image (:func:`~.landmark_records.read_records`):
``imageWidth``/``imageHeight``, when given (not null), must be positive
whole numbers (``640``, ``640.0`` or ``"640"``; ``640.5`` or ``"abc"`` is
a fault) equal to the image's size; ``imageData``, when given, is the
image labelme embedded (base64 of its file): it is decoded once, here,
and must show the paired image (same size, same pixels up to format
conversion: :mod:`.embedded_image`), else the file was made for another
image.

Only the keys labelme writes are accepted (:data:`LABELME_KEYS`,
:data:`LABELME_SHAPE_KEYS`: labelme 5.x's, plus ``lineColor``/``fillColor``
and ``line_color``/``fill_color`` of labelme 3 and 4, and the ``mmchh``
note of :mod:`mmchh.apis.labelme_export`); a key given twice in one object
is refused. An unknown key may change what the file means (another tool's
format), so it is a fault, never ignored.

Coordinate convention: labelme stores continuous canvas coordinates. Its
canvas draws the image with pixel ``i`` covering ``[i, i + 1)`` and maps a
click back by ``pos / scale - offset`` (``labelme/widgets/canvas.py``,
``transformPos``), so a click on the centre of pixel ``i`` is stored as
``i + 0.5``, and points are clamped to ``[0, W - 1]`` while drawing;
labelme's own mask export (PIL ``ImageDraw``) instead puts pixel centres
at integers. We keep the coordinates exactly as given (no half-pixel
shift): the converted data's convention is pixel centres at integers, so
a labelme point clicked on a pixel's centre lands half a pixel right and
down of it (0.05 mm at 0.1 mm/pixel), the same for every image; points
written by mmchh and read back come back unchanged.

Faults (each reported to the :class:`~.validation.BadInputPolicy` with the
file, and the shape and label): a file that is unreadable, not labelme
JSON, has a duplicate or unknown top-level key, a bad
``imageWidth``/``imageHeight`` or an ``imageData`` that does not decode
(the file is ignored); a shape with an unknown key, a label that is not a
keypoint name, a shape that is not a point, a point without two finite
JSON numbers (the shape is ignored); two files with one stem in a folder
(both ignored).
"""
import os.path as osp
from typing import Dict, Optional, Sequence

from .embedded_image import decode_image_data, picture_signature
from .errors import ConversionError
from .records import Marks, duplicate_message, stem_files
from .strict_values import json_number, json_size, load_json
from .validation import BadInputPolicy

__all__ = [
    'LABELME_FILE_IGNORED', 'LABELME_KEYS', 'LABELME_SHAPE_KEYS',
    'read_labelme_file', 'read_labelme_dirs'
]

#: What is done with an annotation file that cannot be used.
LABELME_FILE_IGNORED = ('file ignored: its landmarks are invisible for this '
                        'annotator')
#: The top-level keys of a labelme file (5.x, 3.x/4.x colours, mmchh's
#: note in the files ``tools/infer.py --format labelme`` writes).
LABELME_KEYS = ('version', 'flags', 'shapes', 'imagePath', 'imageData',
                'imageHeight', 'imageWidth', 'lineColor', 'fillColor',
                'mmchh')
#: The keys of a labelme shape (5.x; 3.x/4.x colours).
LABELME_SHAPE_KEYS = ('label', 'points', 'group_id', 'shape_type', 'flags',
                      'description', 'mask', 'line_color', 'fill_color')


def _point_of(shape: dict):
    """(x, y) of a point shape, or None when it is not one pair of finite
    JSON numbers."""
    points = shape.get('points')
    if not isinstance(points, list) or len(points) != 1:
        return None
    pair = points[0]
    if not isinstance(pair, list) or len(pair) != 2:
        return None
    x, y = json_number(pair[0]), json_number(pair[1])
    return None if x is None or y is None else (x, y)


def _shape_problem(shape, keypoints: Sequence[str]) -> Optional[str]:
    """Why ``shape`` is not a keypoint's point shape, or None."""
    if not isinstance(shape, dict):
        return f'not a shape object: {shape!r}'
    unknown = [k for k in shape if k not in LABELME_SHAPE_KEYS]
    if unknown:
        return (f'unknown key(s) {", ".join(map(repr, unknown))} (a labelme '
                f'shape has {", ".join(LABELME_SHAPE_KEYS)})')
    label = shape.get('label')
    if label not in keypoints:
        return (f'unknown label {label!r} (not one of the keypoints '
                f'{", ".join(keypoints)})')
    shape_type = shape.get('shape_type', 'polygon')  # labelme's default
    if shape_type != 'point':
        return f'label {label!r} is a {shape_type} shape, not a point'
    if _point_of(shape) is None:
        return (f'label {label!r}: points must hold one [x, y] of finite '
                f'JSON numbers, got {shape.get("points")!r}')
    return None


def _read_shape(marks: Marks, index: int, shape, keypoints: Sequence[str],
                policy: BadInputPolicy) -> None:
    """Adds one shape's point to ``marks``, or reports why it is not one."""
    problem = _shape_problem(shape, keypoints)
    if problem is not None:
        label = shape.get('label') if isinstance(shape, dict) else None
        policy.report(marks.file,
                      f'{marks.file} (shape {index}): {problem}',
                      label=str(label),
                      action='shape ignored')
        return
    x, y = _point_of(shape)
    marks.add(shape['label'], x, y, f'shape {index}')


def _file_problem(path: str, data) -> Optional[str]:
    """Why a parsed file is not a usable labelme file, or None."""
    if not isinstance(data, dict) or not isinstance(data.get('shapes'), list):
        return f'{path}: not a labelme file (no "shapes" list)'
    unknown = [k for k in data if k not in LABELME_KEYS]
    if unknown:
        return (f'{path}: unknown key(s) {", ".join(map(repr, unknown))} '
                f'(a labelme file has {", ".join(LABELME_KEYS)})')
    if (data.get('imageWidth') is None) != (data.get('imageHeight') is None):
        return (f'{path}: imageWidth and imageHeight must both be given (or '
                'both be null)')
    for key in ('imageWidth', 'imageHeight'):
        if data.get(key) is not None and json_size(data[key]) is None:
            return (f'{path}: {key} must be a positive whole number, got '
                    f'{data[key]!r}')
    return None


def read_labelme_file(path: str, keypoints: Sequence[str],
                      policy: BadInputPolicy) -> Marks:
    """Reads one labelme JSON file (see the module docstring).

    Returns:
        Marks: the points by label, the image size and embedded image the
        file gives (``rejected`` when the file cannot be used and
        ``policy`` skips it).

    Raises:
        BadImageError: for the first fault, unless ``policy`` skips.
    """
    try:
        with open(path, 'rb') as f:
            data = load_json(f.read())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        data, problem = None, f'{path}: cannot read labelme JSON ({e})'
    else:
        problem = _file_problem(path, data)
    embedded = None
    if problem is None and data.get('imageData') is not None:
        try:
            embedded = picture_signature(decode_image_data(data['imageData']))
        except ValueError as e:
            problem = f'{path}: imageData {e}'
    if problem is not None:
        policy.report(path, problem, action=LABELME_FILE_IGNORED)
        return Marks(path, rejected=True)
    marks = Marks(path, embedded=embedded)
    for index, shape in enumerate(data['shapes']):
        _read_shape(marks, index, shape, keypoints, policy)
    width, height = data.get('imageWidth'), data.get('imageHeight')
    if width is not None and height is not None:
        marks.image_size = (json_size(width), json_size(height))
    if isinstance(data.get('imagePath'), str) and data['imagePath']:
        marks.image_path = data['imagePath']
    return marks


def read_labelme_dirs(dirs: Dict[str, str], keypoints: Sequence[str],
                      policy: BadInputPolicy) -> Dict[str, Dict[str, Marks]]:
    """Reads every annotator's folder of labelme JSON files.

    Args:
        dirs (dict): annotator name -> folder.
        keypoints (Sequence[str]): The keypoint names (labels).
        policy (BadInputPolicy): Where faults go.

    Returns:
        dict: image stem -> annotator -> :class:`~.records.Marks`.

    Raises:
        ConversionError: a folder that does not exist.
        BadImageError: for the first fault, unless ``policy`` skips.
    """
    found: Dict[str, Dict[str, Marks]] = {}
    for annotator, folder in dirs.items():
        if not osp.isdir(folder):
            raise ConversionError(f'--labelme {annotator}={folder}: not a '
                                  'folder')
        files, dups = stem_files(folder, ('.json', ))
        for stem, paths in dups.items():
            policy.report(paths[0],
                          duplicate_message(paths, 'labelme'),
                          action=LABELME_FILE_IGNORED)
            found.setdefault(stem, {})[annotator] = Marks(' and '.join(paths),
                                                          rejected=True)
        for stem, path in files.items():
            found.setdefault(stem, {})[annotator] = read_labelme_file(
                path, keypoints, policy)
    return found
