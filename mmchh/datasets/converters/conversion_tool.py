# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What both converter tools do around a conversion.

``tools/dataset_converters/convert_isbi.py`` and ``convert_landmarks.py``
print every warning as one ``warning: ...`` line, add to a bad image's
error how to get past it, end on Ctrl-C with a line saying the output
folder is whole (exit status 130) and print the summary: one way for both,
so a user meets the same messages from either.
"""
import sys
import warnings
from typing import Callable

from .errors import BadImageError

__all__ = ['one_line_warnings', 'run_conversion']


def one_line_warnings() -> None:
    """Every warning from here on printed, each time, as ``warning: <msg>``
    (a conversion's warnings are findings about the user's files: each one
    counts, and Python's file:line prefix means nothing to them)."""
    warnings.simplefilter('always')
    warnings.formatwarning = lambda msg, *a, **k: f'warning: {msg}\n'


def run_conversion(tool: str, convert: Callable[[], object],
                   skip_bad_hint: str) -> None:
    """Runs ``convert()`` and prints its summary's ``format()``.

    Args:
        tool (str): The tool's file name, e.g. ``'convert_isbi.py'``.
        convert (callable): The conversion, returning its summary.
        skip_bad_hint (str): Appended in parentheses to a
            :class:`BadImageError`: how ``--skip-bad`` gets past it.

    Raises:
        BadImageError: The conversion's, with ``skip_bad_hint``.
        SystemExit: 130 after one line on stderr on Ctrl-C (the output
            folder holds the previous conversion or the new one, whole).
    """
    try:
        summary = convert()
    except BadImageError as e:
        raise BadImageError(f'{e} ({skip_bad_hint})') from e
    except KeyboardInterrupt:
        print(f'{tool}: interrupted; the output folder holds the previous '
              'conversion or the new one, complete', file=sys.stderr)
        sys.exit(130)
    print(summary.format())
