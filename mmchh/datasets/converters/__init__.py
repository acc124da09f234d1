# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Dataset converters' library code, one module per step (the CLIs are
under ``tools/dataset_converters/``).

Reading:

- :mod:`.isbi_reader`: the ISBI release's layout, annotations and images
- :mod:`mmchh.datasets.image_reader` (the one image reader, shared with
  inference): any image file (PNG/JPEG/BMP/TIFF 8/16-bit, DICOM,
  MetaImage/NRRD/NIfTI) with its spacing and where it came from
- :mod:`.labelme_reader`, :mod:`.csv_reader`, :mod:`.coco_reader`:
  landmarks from labelme JSON (one folder per annotator), a long-format
  CSV, an existing COCO file; each states its coordinate convention
- :mod:`.records`: what readers produce, pairing files by stem

Generic steps (any converter):

- :mod:`.validation`: options and the bad-input policy (``skip_bad``)
- :mod:`.splits`: the test/val/calib hold-outs by seed
- :mod:`.resize`: the padded resize and its exact coordinate mapping
- :mod:`.coco_writer`: the COCO-keypoint JSON (a :class:`CocoLayout` per
  converter, a ``ConversionPlan`` per conversion) and ``conversion.json``
- :mod:`.atomic_output`: the output folder built aside and swapped in
  atomically, with recovery after a killed run
- :mod:`.summary`: what a conversion reports, its printed head

Orchestration:

- :mod:`.isbi`: :func:`convert_isbi`, the ISBI 2015 release
- :mod:`.landmarks`: :func:`convert_landmarks`, any annotated images
  (with ``metainfo.py`` and ``conversion_report.json``); its steps in
  :mod:`.landmark_options` (option checks), :mod:`.landmark_records`
  (reading, pairing, resolving annotators into records) and
  :mod:`.landmark_report` (summary, report, metainfo); the names of
  ``--keypoints-file`` in :mod:`.keypoint_names`; the small-split warnings
  in :mod:`.split_sizes`
- :mod:`.conversion_tool`: what both converter tools do around a
  conversion (one-line warnings, the ``--skip-bad`` hint, Ctrl-C)
"""
from ..image_reader import ALL_IMAGE_EXTENSIONS, LoadedImage, read_image
from .atomic_output import (KILL_AT_ENV, NO_EXCHANGE_ENV,
                            find_interrupted_conversion, recover_output_folder)
from .coco_writer import CONVERSION_MARKER, CocoLayout, ground_truth
from .errors import BadImageError, ConversionError
from .isbi import ConversionSummary, convert_isbi
from .isbi_reader import (IMAGE_EXTENSIONS, Annotation, find_annotator_dirs,
                          parse_annotation_file, read_image_size)
from .keypoint_names import read_keypoint_names
from .landmarks import (METAINFO_FILE, REPORT_FILE, LandmarkConversionSummary,
                        convert_landmarks)
from .records import Marks
from .resize import padded_resize_params
from .splits import (LANDMARK_SPLITS, SPLITS, default_hold_out,
                     hold_out_splits, hold_out_test)
from .validation import MAX_RESIZE_SIDE, validate_options

__all__ = [
    'KILL_AT_ENV', 'NO_EXCHANGE_ENV', 'find_interrupted_conversion',
    'recover_output_folder', 'CONVERSION_MARKER', 'CocoLayout',
    'ground_truth', 'BadImageError', 'ConversionError',
    'ALL_IMAGE_EXTENSIONS', 'LoadedImage', 'read_image', 'ConversionSummary',
    'convert_isbi', 'IMAGE_EXTENSIONS', 'Annotation', 'find_annotator_dirs',
    'parse_annotation_file', 'read_image_size', 'METAINFO_FILE',
    'REPORT_FILE', 'LandmarkConversionSummary', 'convert_landmarks',
    'read_keypoint_names', 'Marks',
    'padded_resize_params', 'LANDMARK_SPLITS', 'SPLITS', 'default_hold_out',
    'hold_out_splits', 'hold_out_test', 'MAX_RESIZE_SIDE', 'validate_options'
]
