# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The errors a dataset conversion raises (user errors: one line)."""
from mmchh.utils.errors import InputError

__all__ = ['ConversionError', 'BadImageError']


class ConversionError(InputError):
    """Bad input or output folder found while converting; the message names
    the file, field or option."""


class BadImageError(ConversionError):
    """One image's files are bad; ``skip_bad`` skips that image instead."""
