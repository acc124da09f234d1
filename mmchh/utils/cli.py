# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What every command-line tool does with a user's mistake: one line.

An :class:`~mmchh.utils.errors.InputError` (a bad file, field or option)
and a missing file end the tool with ``tool.py: error: <message>`` on
stderr and exit status 1 -- no traceback, which would bury the one line
that matters. Every other exception is a bug and keeps its traceback.
"""
import sys
from typing import Callable, NoReturn, Optional, Sequence

from .errors import InputError

__all__ = ['USER_ERRORS', 'fail', 'one_line', 'run_tool']

#: Exceptions that are the user's to fix: printed as one line.
USER_ERRORS = (InputError, FileNotFoundError)


def one_line(error) -> str:
    """The message of ``error`` (or a string) on one line."""
    text = str(error)
    if isinstance(error, FileNotFoundError) and error.filename and \
            error.strerror:
        text = f'{error.filename}: {error.strerror}'
    return ' '.join(text.split()) or type(error).__name__


def fail(tool: str, error) -> NoReturn:
    """Exits with status 1 after printing ``tool: error: <message>``.

    Args:
        tool (str): The tool's file name, e.g. ``'infer.py'``.
        error (Exception | str): What went wrong.
    """
    sys.exit(f'{tool}: error: {one_line(error)}')


def run_tool(tool: str, main: Callable[[Optional[Sequence[str]]], object],
             argv: Optional[Sequence[str]] = None):
    """Runs ``main(argv)``; user errors end in :func:`fail`.

    Returns:
        What ``main`` returns (the exit status, or None for 0).

    Raises:
        SystemExit: status 1 with the one-line message for
            :data:`USER_ERRORS` (``SystemExit.code`` holds the message).
    """
    try:
        return main(argv)
    except USER_ERRORS as e:
        fail(tool, e)
