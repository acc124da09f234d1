# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Dataset converters' library code, one module per step (the CLIs are
under ``tools/dataset_converters/``).

- :mod:`.isbi_reader`: the ISBI release's layout, annotations and images
- :mod:`.validation`: options and the bad-input policy (``skip_bad``)
- :mod:`.splits`: the val/calib hold-out by seed
- :mod:`.resize`: the padded resize and its exact coordinate mapping
- :mod:`.coco_writer`: the COCO-keypoint JSON and ``conversion.json``
- :mod:`.atomic_output`: the output folder built aside and swapped in
  atomically, with recovery after a killed run (any converter)
- :mod:`.isbi`: :func:`convert_isbi`, the steps in order
"""
from .atomic_output import (KILL_AT_ENV, NO_EXCHANGE_ENV,
                            find_interrupted_conversion, recover_output_folder)
from .coco_writer import CONVERSION_MARKER
from .errors import BadImageError, ConversionError
from .isbi import ConversionSummary, convert_isbi
from .isbi_reader import (IMAGE_EXTENSIONS, Annotation, find_annotator_dirs,
                          parse_annotation_file, read_image_size)
from .resize import padded_resize_params
from .splits import SPLITS, default_hold_out, hold_out_splits
from .validation import MAX_RESIZE_SIDE, validate_options

__all__ = [
    'KILL_AT_ENV', 'NO_EXCHANGE_ENV', 'find_interrupted_conversion',
    'recover_output_folder', 'CONVERSION_MARKER', 'BadImageError',
    'ConversionError', 'ConversionSummary', 'convert_isbi', 'IMAGE_EXTENSIONS',
    'Annotation', 'find_annotator_dirs', 'parse_annotation_file',
    'read_image_size', 'padded_resize_params', 'SPLITS', 'default_hold_out',
    'hold_out_splits', 'MAX_RESIZE_SIDE', 'validate_options'
]
