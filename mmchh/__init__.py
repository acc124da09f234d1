# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""mmchh: Contour-Hugging Heatmaps (CVPR 2022) for MMPose.

Importing the package first applies the compatibility fixes for the pinned
stack (see :mod:`mmchh.utils.compat`), then registers every mmchh module in
MMPose's registries, so configs only need
``custom_imports = dict(imports=['mmchh'], allow_failed_imports=False)``.
"""
from .utils.compat import apply_compat

apply_compat()

from . import (apis, codecs, datasets, engine,  # noqa: E402,F401
               evaluation, models)
from .version import __version__  # noqa: E402

__all__ = ['__version__']
