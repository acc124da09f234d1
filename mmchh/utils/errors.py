# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The one base class of mmchh's user-facing errors.

Every error caused by the user's input -- a file, a field, a flag -- derives
from :class:`InputError` and carries a message that names the file or field
and the reason. The command-line tools print such an error as one line
(``tool: error: message``) and exit with status 1 instead of showing a
traceback; any other exception is a bug and keeps its traceback.
"""

__all__ = ['InputError']


class InputError(ValueError):
    """Bad input (file, field, option); the message names it and says why.

    A ``ValueError`` so that callers catching ``ValueError`` keep working.
    """
